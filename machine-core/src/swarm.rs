//! Swarm mode across the machines of a store.
//!
//! The original docker-machine ran the classic `swarm` container; Docker
//! Engine has had Swarm mode built in since 1.12, and that is what this
//! module drives, through the Engine API of each machine (see
//! [`crate::docker_api`]): init, join tokens, join, leave, node list, node
//! update and removal. The create flags keep the original's names and are
//! stored in the same `SwarmOptions` fields of `config.json`:
//!
//! | flag | field | meaning in Swarm mode |
//! |---|---|---|
//! | `--swarm` | `IsSwarm`, `Agent` | the machine is in a cluster |
//! | `--swarm-master` | `IsSwarm`, `Master` | the machine is a manager |
//! | `--swarm-discovery machine://NAME` | `Discovery` | the cluster of machine NAME |
//! | `--swarm-addr` | `Address` | the address advertised to the other nodes |
//! | `--swarm-opt KEY=VALUE` | `ArbitraryFlags` | settings of a new cluster ([`INIT_KEYS`]) |
//! | `--swarm-join-opt KEY=VALUE` | `ArbitraryJoinFlags` | settings of a joining node ([`JOIN_KEYS`]) |
//!
//! `--swarm-image`, `--swarm-strategy`, `--swarm-host` and
//! `--swarm-experimental` configured the classic Swarm container and have no
//! meaning here: they are stored and a warning says they are ignored.
//!
//! A machine with `Master` and no discovery (or a discovery naming itself)
//! initializes a cluster; its `Discovery` becomes `machine://ITSELF`, the
//! cluster's name. A machine whose discovery names another machine joins the
//! cluster that machine manages, as a manager with `Master`, as a worker
//! otherwise; it stores the cluster's name (the discovery of the machine it
//! joined through), so every member of one cluster has the same `Discovery`
//! and `ls` shows the cluster as the original did: `NAME (master)` on
//! managers, `NAME` on the others.

use crate::config::{HostConfig, SwarmOptions};
use crate::driver::{DriverOption, OptionKind};
use bollard::models::{
    LocalNodeState, Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, SwarmInitRequest,
    SwarmJoinRequest, SwarmSpec, SwarmSpecCaConfig, SwarmSpecDispatcher, SwarmSpecEncryptionConfig,
    SwarmSpecOrchestration, SwarmSpecRaft,
};
use bollard::Docker;
use std::collections::BTreeMap;

/// The scheme of a discovery that names a machine of the store.
pub const DISCOVERY_SCHEME: &str = "machine://";

/// The port managers listen on for the other nodes (Swarm mode's default).
pub const SWARM_PORT: u16 = 2377;

/// The keys `--swarm-opt` takes: the settings of a new cluster, as the
/// flags of `docker swarm init` name them.
pub const INIT_KEYS: &[&str] = &[
    "listen-addr",
    "data-path-addr",
    "data-path-port",
    "default-addr-pool",
    "default-addr-pool-mask-length",
    "autolock",
    "task-history-limit",
    "dispatcher-heartbeat",
    "cert-expiry",
    "snapshot-interval",
    "max-snapshots",
    "availability",
];

/// The keys `--swarm-join-opt` takes: the settings of a joining node, as the
/// flags of `docker swarm join` name them.
pub const JOIN_KEYS: &[&str] = &["listen-addr", "data-path-addr", "availability"];

/// Create flags of the classic Swarm that mean nothing in Swarm mode.
pub const IGNORED_FLAGS: &[&str] = &[
    "swarm-image",
    "swarm-strategy",
    "swarm-host",
    "swarm-experimental",
];

/// The swarm flags `create` takes, declared as data like the engine
/// options ([`crate::host::engine_options`]).
pub fn swarm_options() -> Vec<DriverOption> {
    use OptionKind::{Bool, String as Text, StringList as List};
    let ignored = "Classic Swarm only; accepted and ignored (with a warning) in Swarm mode";
    vec![
        DriverOption::new(
            "swarm",
            Bool,
            "Join the Swarm-mode cluster named by --swarm-discovery machine://MANAGER (a manager machine of this store)",
        ),
        DriverOption::new(
            "swarm-master",
            Bool,
            "Make the machine a Swarm-mode manager: it initializes a new cluster, or joins the cluster of --swarm-discovery as a manager",
        ),
        DriverOption::new(
            "swarm-discovery",
            Text,
            "The cluster to join: machine://MANAGER, MANAGER being a manager machine of the same store (Swarm mode has no discovery service)",
        ),
        DriverOption::new(
            "swarm-addr",
            Text,
            "Address to advertise to the other nodes (default: the machine's IP)",
        ),
        DriverOption::new(
            "swarm-opt",
            List,
            &format!(
                "Setting of the new cluster (with --swarm-master), KEY=VALUE; keys: {}",
                INIT_KEYS.join(", ")
            ),
        ),
        DriverOption::new(
            "swarm-join-opt",
            List,
            &format!(
                "Setting of the joining machine, KEY=VALUE; keys: {}",
                JOIN_KEYS.join(", ")
            ),
        ),
        DriverOption::new("swarm-image", Text, &format!("Docker image of the classic Swarm. {ignored}"))
            .env("MACHINE_SWARM_IMAGE")
            .default_value("swarm:latest"),
        DriverOption::new(
            "swarm-strategy",
            Text,
            &format!("Scheduling strategy of the classic Swarm. {ignored}"),
        )
        .default_value("spread"),
        DriverOption::new(
            "swarm-host",
            Text,
            &format!("Address the classic Swarm master listened on. {ignored}"),
        )
        .default_value("tcp://0.0.0.0:3376"),
        DriverOption::new(
            "swarm-experimental",
            Bool,
            &format!("Experimental features of the classic Swarm. {ignored}"),
        ),
    ]
}

/// Why a swarm operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The discovery names no machine of the store.
    #[error("the swarm discovery names machine {name:?}, which is not in the store")]
    UnknownMachine { name: String },
    /// The machine to join through is not a manager.
    #[error("machine {name} is not a swarm manager ({why})")]
    NotManager { name: String, why: String },
    /// The machine is in no cluster.
    #[error("machine {name} is not in a swarm")]
    NotInSwarm { name: String },
    /// The machine is in a cluster already.
    #[error("machine {name} is already in a swarm{}", other_cluster(.cluster))]
    AlreadyInSwarm { name: String, cluster: String },
    /// Leaving would leave the workers without a manager.
    #[error(
        "machine {name} is the last manager of its swarm; its workers ({}) would be left without one (force to leave anyway)",
        workers.join(", ")
    )]
    LastManager { name: String, workers: Vec<String> },
    /// No manager of the cluster answered.
    #[error("no manager of the swarm {cluster} answers (tried {})", tried.join(", "))]
    NoManager { cluster: String, tried: Vec<String> },
    /// A call of the Docker API failed.
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The daemon answered, but not what Swarm mode should answer.
    #[error("{what}: {reason}")]
    Answer { what: String, reason: String },
    /// A wait ran out of time.
    #[error("{what} did not happen within {seconds} s")]
    Timeout { what: String, seconds: u64 },
}

fn other_cluster(c: &str) -> String {
    if c.is_empty() {
        "; it must leave that swarm first".to_string()
    } else {
        format!(" ({c}); it must leave that swarm first")
    }
}

impl SwarmError {
    pub(crate) fn api(
        what: impl Into<String>,
    ) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
        let what = what.into();
        move |source| SwarmError::Api { what, source }
    }
}

/// One node of a cluster, as a manager lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SwarmNode {
    /// The node's ID.
    pub id: String,
    /// Its host name (the machine's name for the machines we provisioned).
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    /// The address the node is reached at.
    pub addr: String,
    /// The Raft leader among the managers.
    pub leader: bool,
    /// For managers: `reachable`, `unreachable` or `unknown`; empty for workers.
    pub reachability: String,
    /// The node's Docker Engine version.
    pub engine_version: String,
}

impl SwarmNode {
    /// A node from the API's document.
    pub fn from_api(n: &Node) -> SwarmNode {
        let spec = n.spec.as_ref();
        let status = n.status.as_ref();
        let ms = n.manager_status.as_ref();
        SwarmNode {
            id: n.id.clone().unwrap_or_default(),
            hostname: n
                .description
                .as_ref()
                .and_then(|d| d.hostname.clone())
                .unwrap_or_default(),
            role: spec
                .and_then(|s| s.role.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
            availability: spec
                .and_then(|s| s.availability.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
            state: status
                .and_then(|s| s.state.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
            addr: status.and_then(|s| s.addr.clone()).unwrap_or_default(),
            leader: ms.and_then(|m| m.leader).unwrap_or(false),
            reachability: ms
                .and_then(|m| m.reachability.as_ref())
                .map(ToString::to_string)
                .unwrap_or_default(),
            engine_version: n
                .description
                .as_ref()
                .and_then(|d| d.engine.as_ref())
                .and_then(|e| e.engine_version.clone())
                .unwrap_or_default(),
        }
    }
}

/// The machines of the store in one cluster, by their saved configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SwarmMembers {
    /// The cluster's name: its `Discovery` (`machine://FIRST_MANAGER`).
    pub cluster: String,
    /// The managers, sorted by name.
    pub managers: Vec<String>,
    /// The workers, sorted by name.
    pub workers: Vec<String>,
}

/// `machine://NAME` for machine `name`.
pub fn discovery_of(name: &str) -> String {
    format!("{DISCOVERY_SCHEME}{name}")
}

/// The machine a `machine://NAME` discovery names.
pub fn discovery_machine(discovery: &str) -> Option<&str> {
    discovery
        .strip_prefix(DISCOVERY_SCHEME)
        .map(|n| n.trim_end_matches('/'))
        .filter(|n| !n.is_empty())
}

/// What a machine's `SwarmOptions` ask of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// Nothing: the machine is not in a cluster.
    None,
    /// Initialize a new cluster as its first manager.
    Init,
    /// Join the cluster that machine `via` manages.
    Join {
        /// The manager machine to join through.
        via: String,
        /// Join as a manager (else as a worker).
        as_manager: bool,
    },
}

/// Why `SwarmOptions` cannot be acted on: (flag, value, reason).
pub type OptionProblem = (String, String, String);

fn problem(flag: &str, value: &str, reason: impl Into<String>) -> OptionProblem {
    (flag.to_string(), value.to_string(), reason.into())
}

/// The options describe a cluster of the classic Swarm (a discovery
/// service such as `token://` or `consul://`), which Swarm mode leaves alone:
/// such machines, made by the original, are listed as before and neither
/// joined nor taken out of anything.
pub fn is_classic(s: &SwarmOptions) -> bool {
    let d = s.discovery.trim();
    (s.is_swarm || s.master) && !d.is_empty() && !d.starts_with(DISCOVERY_SCHEME)
}

/// What the options of machine `name` ask for.
pub fn membership(name: &str, s: &SwarmOptions) -> Result<Membership, OptionProblem> {
    if !s.is_swarm && !s.master {
        return Ok(Membership::None);
    }
    let discovery = s.discovery.trim();
    if discovery.is_empty() {
        return if s.master {
            Ok(Membership::Init)
        } else {
            Err(problem(
                "swarm-discovery",
                "",
                "joining a swarm needs the manager to join through: machine://MANAGER, MANAGER being a machine of this store",
            ))
        };
    }
    let Some(via) = discovery_machine(discovery) else {
        return Err(problem(
            "swarm-discovery",
            discovery,
            "Swarm mode takes machine://MANAGER, MANAGER being a manager machine of this store (the discovery services of the classic Swarm are not used)",
        ));
    };
    if crate::store::FileStore::validate_name(via).is_err() {
        return Err(problem(
            "swarm-discovery",
            discovery,
            "the part after machine:// is not a machine name",
        ));
    }
    if via == name {
        return if s.master {
            Ok(Membership::Init)
        } else {
            Err(problem(
                "swarm-discovery",
                discovery,
                "a worker cannot join a swarm through itself; name a manager machine",
            ))
        };
    }
    Ok(Membership::Join {
        via: via.to_string(),
        as_manager: s.master,
    })
}

/// `KEY=VALUE` settings, checked against `known`; unknown keys come back as
/// warnings.
fn settings<'a>(
    flag: &str,
    values: &'a [String],
    known: &[&str],
    warnings: &mut Vec<String>,
) -> Result<Vec<(&'a str, &'a str)>, OptionProblem> {
    let mut out = Vec::new();
    for v in values {
        let Some((k, val)) = v.split_once('=') else {
            return Err(problem(flag, v, "expected KEY=VALUE"));
        };
        let k = k.trim().trim_start_matches('-');
        if known.contains(&k) {
            out.push((k, val.trim()));
        } else {
            warnings.push(format!(
                "swarm option {flag} {v} is ignored: {k} has no meaning in Swarm mode here (keys: {})",
                known.join(", ")
            ));
        }
    }
    Ok(out)
}

/// A Go duration (`90s`, `1h30m`, `500ms`) in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        let n: f64 = num.parse().ok()?;
        let add = n * scale;
        if !add.is_finite() || add > i64::MAX as f64 {
            return None;
        }
        total = total.checked_add(add as i64)?;
        rest = next;
    }
    Some(total)
}

fn availability(flag: &str, v: &str) -> Result<NodeSpecAvailabilityEnum, OptionProblem> {
    match v {
        "active" => Ok(NodeSpecAvailabilityEnum::ACTIVE),
        "pause" => Ok(NodeSpecAvailabilityEnum::PAUSE),
        "drain" => Ok(NodeSpecAvailabilityEnum::DRAIN),
        _ => Err(problem(
            flag,
            v,
            "availability is one of active, pause, drain",
        )),
    }
}

fn number<T: std::str::FromStr>(flag: &str, k: &str, v: &str) -> Result<T, OptionProblem> {
    v.parse()
        .map_err(|_| problem(flag, &format!("{k}={v}"), "expected a whole number"))
}

fn duration(flag: &str, k: &str, v: &str) -> Result<i64, OptionProblem> {
    parse_go_duration(v).ok_or_else(|| {
        problem(
            flag,
            &format!("{k}={v}"),
            "expected a duration such as 5s, 1m30s or 2160h",
        )
    })
}

/// What initializing a cluster sends, and the availability to set afterwards.
#[derive(Debug, Clone, Default)]
pub struct InitPlan {
    pub request: SwarmInitRequest,
    pub availability: Option<NodeSpecAvailabilityEnum>,
}

/// What joining a cluster sends (without the token and the managers'
/// addresses, read from a manager when joining), and the availability.
#[derive(Debug, Clone, Default)]
pub struct JoinPlan {
    pub request: SwarmJoinRequest,
    pub availability: Option<NodeSpecAvailabilityEnum>,
}

/// The advertised address: `--swarm-addr`, else the machine's IP.
fn advertise(address: &str, ip: &str) -> String {
    let a = address.trim();
    let a = a.strip_prefix("tcp://").unwrap_or(a);
    if a.is_empty() {
        ip.to_string()
    } else {
        a.to_string()
    }
}

/// The init request for a machine at `ip` with `s`'s settings
/// (`ArbitraryFlags`); settings without a meaning are added to `warnings`.
pub fn init_plan(
    s: &SwarmOptions,
    ip: &str,
    warnings: &mut Vec<String>,
) -> Result<InitPlan, OptionProblem> {
    const F: &str = "swarm-opt";
    let flags = s.arbitrary_flags.clone().unwrap_or_default();
    let mut req = SwarmInitRequest {
        advertise_addr: Some(advertise(&s.address, ip)),
        listen_addr: Some(format!("0.0.0.0:{SWARM_PORT}")),
        ..Default::default()
    };
    let mut spec = SwarmSpec::default();
    let mut plan_availability = None;
    for (k, v) in settings(F, &flags, INIT_KEYS, warnings)? {
        match k {
            "listen-addr" => req.listen_addr = Some(v.to_string()),
            "data-path-addr" => req.data_path_addr = Some(v.to_string()),
            "data-path-port" => req.data_path_port = Some(number(F, k, v)?),
            "default-addr-pool" => req
                .default_addr_pool
                .get_or_insert_with(Vec::new)
                .push(v.to_string()),
            "default-addr-pool-mask-length" => req.subnet_size = Some(number(F, k, v)?),
            "autolock" => {
                let on = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(problem(F, &format!("{k}={v}"), "expected true or false")),
                };
                spec.encryption_config = Some(SwarmSpecEncryptionConfig {
                    auto_lock_managers: Some(on),
                })
            }
            "task-history-limit" => {
                spec.orchestration = Some(SwarmSpecOrchestration {
                    task_history_retention_limit: Some(number(F, k, v)?),
                })
            }
            "dispatcher-heartbeat" => {
                spec.dispatcher = Some(SwarmSpecDispatcher {
                    heartbeat_period: Some(duration(F, k, v)?),
                })
            }
            "cert-expiry" => {
                spec.ca_config = Some(SwarmSpecCaConfig {
                    node_cert_expiry: Some(duration(F, k, v)?),
                    ..Default::default()
                })
            }
            "snapshot-interval" => {
                spec.raft
                    .get_or_insert_with(SwarmSpecRaft::default)
                    .snapshot_interval = Some(number(F, k, v)?)
            }
            "max-snapshots" => {
                spec.raft
                    .get_or_insert_with(SwarmSpecRaft::default)
                    .keep_old_snapshots = Some(number(F, k, v)?)
            }
            "availability" => plan_availability = Some(availability(F, v)?),
            _ => {}
        }
    }
    if spec != SwarmSpec::default() {
        req.spec = Some(spec);
    }
    Ok(InitPlan {
        request: req,
        availability: plan_availability,
    })
}

/// The join request for a machine at `ip` with `s`'s settings
/// (`ArbitraryJoinFlags`).
pub fn join_plan(
    s: &SwarmOptions,
    ip: &str,
    warnings: &mut Vec<String>,
) -> Result<JoinPlan, OptionProblem> {
    const F: &str = "swarm-join-opt";
    let flags = s.arbitrary_join_flags.clone().unwrap_or_default();
    let mut req = SwarmJoinRequest {
        advertise_addr: Some(advertise(&s.address, ip)),
        listen_addr: Some(format!("0.0.0.0:{SWARM_PORT}")),
        ..Default::default()
    };
    let mut plan_availability = None;
    for (k, v) in settings(F, &flags, JOIN_KEYS, warnings)? {
        match k {
            "listen-addr" => req.listen_addr = Some(v.to_string()),
            "data-path-addr" => req.data_path_addr = Some(v.to_string()),
            "availability" => plan_availability = Some(availability(F, v)?),
            _ => {}
        }
    }
    Ok(JoinPlan {
        request: req,
        availability: plan_availability,
    })
}

/// Check everything about `s` that can be checked without the network:
/// the membership and the settings of the init or join it asks for.
/// Returns the membership and the warnings (settings that mean nothing).
pub fn check(name: &str, s: &SwarmOptions) -> Result<(Membership, Vec<String>), OptionProblem> {
    let m = membership(name, s)?;
    let mut warnings = Vec::new();
    let empty = |l: &Option<Vec<String>>| l.as_ref().is_none_or(Vec::is_empty);
    match &m {
        Membership::None => {}
        Membership::Init => {
            init_plan(s, "", &mut warnings)?;
            if !empty(&s.arbitrary_join_flags) {
                warnings.push(
                    "swarm option swarm-join-opt is ignored: this machine initializes the swarm (its settings are swarm-opt)"
                        .to_string(),
                );
            }
        }
        Membership::Join { .. } => {
            join_plan(s, "", &mut warnings)?;
            if !empty(&s.arbitrary_flags) {
                warnings.push(
                    "swarm option swarm-opt is ignored: it sets up a new swarm, and this machine joins one (its settings are swarm-join-opt)"
                        .to_string(),
                );
            }
        }
    }
    Ok((m, warnings))
}

/// The managers of each cluster, as the original's `ls` found them: the
/// discovery of every machine with `Master` → that machine's name. A
/// machine named by its own `machine://` discovery (the one that
/// initialized the cluster) names the cluster; otherwise the last manager in
/// name order does, as in the original.
pub fn masters<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a HostConfig)>,
) -> BTreeMap<String, String> {
    let mut sorted: Vec<(&str, &HostConfig)> = configs.into_iter().collect();
    sorted.sort_by_key(|(n, _)| n.to_lowercase());
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut named_by_itself: Vec<String> = Vec::new();
    for (name, c) in sorted {
        let s = &c.host_options.swarm_options;
        if !s.master {
            continue;
        }
        let own = discovery_machine(&s.discovery) == Some(name);
        if own {
            named_by_itself.push(s.discovery.clone());
            out.insert(s.discovery.clone(), name.to_string());
        } else if !named_by_itself.contains(&s.discovery) {
            out.insert(s.discovery.clone(), name.to_string());
        }
    }
    out
}

/// The `SWARM` column of `ls` for a machine with options `s`: the cluster's
/// manager name, with ` (master)` on managers; empty outside a cluster.
pub fn column(s: &SwarmOptions, masters: &BTreeMap<String, String>) -> String {
    if s.discovery.is_empty() {
        return String::new();
    }
    let name = masters.get(&s.discovery).cloned().unwrap_or_default();
    if s.master {
        format!("{name} (master)")
    } else {
        name
    }
}

/// The members of cluster `discovery` among `configs`.
pub fn members<'a>(
    discovery: &str,
    configs: impl IntoIterator<Item = (&'a str, &'a HostConfig)>,
) -> SwarmMembers {
    let mut m = SwarmMembers {
        cluster: discovery.to_string(),
        ..Default::default()
    };
    if discovery.is_empty() {
        return m;
    }
    for (name, c) in configs {
        let s = &c.host_options.swarm_options;
        if !(s.is_swarm || s.master) || s.discovery != discovery {
            continue;
        }
        if s.master {
            m.managers.push(name.to_string());
        } else {
            m.workers.push(name.to_string());
        }
    }
    m.managers.sort();
    m.workers.sort();
    m
}

/// What a daemon says about its own place in a cluster (`GET /info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNode {
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    pub state: String,
    /// The node's ID (empty when inactive).
    pub node_id: String,
    /// The node is a manager (it can answer the cluster's API).
    pub control_available: bool,
    /// The managers' addresses (`HOST:2377`).
    pub managers: Vec<String>,
    /// The cluster's ID (known to managers).
    pub cluster_id: String,
    /// How many managers the cluster has (known to managers).
    pub manager_count: i64,
}

impl LocalNode {
    /// The node is part of a cluster.
    pub fn active(&self) -> bool {
        self.state == "active" || self.state == "pending" || self.state == "locked"
    }
}

/// The daemon's own view of its cluster membership.
pub async fn local_node(d: &Docker) -> Result<LocalNode, SwarmError> {
    let info = d
        .info()
        .await
        .map_err(SwarmError::api("reading the daemon's swarm state"))?;
    let s = info.swarm.unwrap_or_default();
    Ok(LocalNode {
        state: s
            .local_node_state
            .unwrap_or(LocalNodeState::INACTIVE)
            .to_string(),
        node_id: s.node_id.unwrap_or_default(),
        control_available: s.control_available.unwrap_or(false),
        managers: s
            .remote_managers
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.addr)
            .collect(),
        cluster_id: s.cluster.and_then(|c| c.id).unwrap_or_default(),
        manager_count: s.managers.unwrap_or(0),
    })
}

/// Initialize a cluster; returns the new node's ID.
pub async fn init(d: &Docker, plan: &InitPlan) -> Result<String, SwarmError> {
    let id = d
        .init_swarm(plan.request.clone())
        .await
        .map_err(SwarmError::api("initializing the swarm"))?;
    if let Some(a) = &plan.availability {
        set_availability(d, &id, *a).await?;
    }
    Ok(id)
}

/// The join token for a worker or a manager, read from a manager.
pub async fn join_token(d: &Docker, manager: bool) -> Result<String, SwarmError> {
    let s = d
        .inspect_swarm()
        .await
        .map_err(SwarmError::api("reading the join tokens"))?;
    let tokens = s.join_tokens.unwrap_or_default();
    let t = if manager {
        tokens.manager
    } else {
        tokens.worker
    };
    t.filter(|t| !t.is_empty())
        .ok_or_else(|| SwarmError::Answer {
            what: "reading the join tokens".into(),
            reason: "the manager gave no token".into(),
        })
}

/// Join the cluster whose managers are at `managers` with `token`.
pub async fn join(
    d: &Docker,
    plan: &JoinPlan,
    managers: Vec<String>,
    token: String,
) -> Result<(), SwarmError> {
    let mut req = plan.request.clone();
    req.remote_addrs = Some(managers);
    req.join_token = Some(token);
    d.join_swarm(req)
        .await
        .map_err(SwarmError::api("joining the swarm"))?;
    if let Some(a) = &plan.availability {
        let me = local_node(d).await?;
        if me.control_available {
            set_availability(d, &me.node_id, *a).await?;
        } else {
            // A worker cannot update nodes: the caller does it through a manager.
            tracing::debug!("availability of a worker is set through a manager");
        }
    }
    Ok(())
}

/// Leave the cluster.
pub async fn leave(d: &Docker, force: bool) -> Result<(), SwarmError> {
    let opts = bollard::query_parameters::LeaveSwarmOptions { force };
    d.leave_swarm(Some(opts))
        .await
        .map_err(SwarmError::api("leaving the swarm"))
}

/// The cluster's nodes (asked of a manager).
pub async fn nodes(d: &Docker) -> Result<Vec<SwarmNode>, SwarmError> {
    let list = d
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .map_err(SwarmError::api("listing the swarm's nodes"))?;
    let mut out: Vec<SwarmNode> = list.iter().map(SwarmNode::from_api).collect();
    out.sort_by(|a, b| a.hostname.cmp(&b.hostname).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Remove node `id` from the cluster's list (asked of a manager).
pub async fn remove_node(d: &Docker, id: &str, force: bool) -> Result<(), SwarmError> {
    let opts = bollard::query_parameters::DeleteNodeOptions { force };
    match d.delete_node(id, Some(opts)).await {
        // not (or no longer) in the list
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        r => r.map_err(SwarmError::api(format!(
            "removing node {id} from the swarm"
        ))),
    }
}

async fn update_node(
    d: &Docker,
    id: &str,
    what: &str,
    change: impl FnOnce(&mut bollard::models::NodeSpec),
) -> Result<(), SwarmError> {
    let node = d
        .inspect_node(id)
        .await
        .map_err(SwarmError::api(format!("reading node {id}")))?;
    let version = node
        .version
        .and_then(|v| v.index)
        .and_then(|i| i64::try_from(i).ok())
        .ok_or_else(|| SwarmError::Answer {
            what: format!("reading node {id}"),
            reason: "no version index".into(),
        })?;
    let mut spec = node.spec.unwrap_or_default();
    change(&mut spec);
    let opts = bollard::query_parameters::UpdateNodeOptions { version };
    d.update_node(id, spec, opts)
        .await
        .map_err(SwarmError::api(format!("{what} node {id}")))
}

/// Set node `id`'s availability (asked of a manager).
pub async fn set_availability(
    d: &Docker,
    id: &str,
    a: NodeSpecAvailabilityEnum,
) -> Result<(), SwarmError> {
    update_node(d, id, "setting the availability of", |s| {
        s.availability = Some(a)
    })
    .await
}

/// Make manager node `id` a worker (asked of a manager).
pub async fn demote(d: &Docker, id: &str) -> Result<(), SwarmError> {
    update_node(d, id, "demoting", |s| {
        s.role = Some(NodeSpecRoleEnum::WORKER)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(master: bool, swarm: bool, discovery: &str) -> SwarmOptions {
        SwarmOptions {
            is_swarm: swarm || master,
            master,
            agent: swarm,
            discovery: discovery.to_string(),
            ..SwarmOptions::default()
        }
    }

    #[test]
    fn membership_from_the_flags() {
        assert_eq!(
            membership("m", &SwarmOptions::default()),
            Ok(Membership::None)
        );
        assert_eq!(
            membership("m", &opts(true, false, "")),
            Ok(Membership::Init)
        );
        assert_eq!(
            membership("m", &opts(true, true, "machine://m")),
            Ok(Membership::Init)
        );
        assert_eq!(
            membership("w", &opts(false, true, "machine://m")),
            Ok(Membership::Join {
                via: "m".into(),
                as_manager: false
            })
        );
        assert_eq!(
            membership("m2", &opts(true, false, "machine://m")),
            Ok(Membership::Join {
                via: "m".into(),
                as_manager: true
            })
        );
        for (o, want) in [
            (opts(false, true, ""), "needs the manager"),
            (opts(false, true, "token://abc"), "machine://MANAGER"),
            (
                opts(false, true, "consul://1.2.3.4:8500"),
                "machine://MANAGER",
            ),
            (opts(false, true, "machine://"), "machine://MANAGER"),
            (opts(false, true, "machine://a/b"), "not a machine name"),
            (opts(false, true, "machine://w"), "through itself"),
        ] {
            let (flag, _, why) = membership("w", &o).expect_err("refused");
            assert_eq!(flag, "swarm-discovery");
            assert!(why.contains(want), "{why}");
        }
    }

    #[test]
    fn classic_swarm_options_are_recognized() {
        assert!(is_classic(&opts(true, true, "token://abc")));
        assert!(is_classic(&opts(false, true, "consul://10.0.0.1:8500/x")));
        assert!(!is_classic(&opts(true, false, "machine://m1")));
        assert!(!is_classic(&opts(true, false, "")));
        let off = SwarmOptions {
            discovery: "token://abc".into(),
            ..SwarmOptions::default()
        };
        assert!(!is_classic(&off), "not in a swarm at all");
    }

    #[test]
    fn init_settings_become_the_request() {
        let s = SwarmOptions {
            arbitrary_flags: Some(vec![
                "dispatcher-heartbeat=1s".into(),
                "task-history-limit=2".into(),
                "default-addr-pool=10.20.0.0/16".into(),
                "default-addr-pool=10.30.0.0/16".into(),
                "availability=drain".into(),
                "strategy=binpack".into(),
            ]),
            address: "tcp://192.0.2.7".into(),
            ..opts(true, false, "")
        };
        let mut w = Vec::new();
        let p = init_plan(&s, "192.0.2.1", &mut w).expect("plan");
        assert_eq!(p.request.advertise_addr.as_deref(), Some("192.0.2.7"));
        assert_eq!(p.request.listen_addr.as_deref(), Some("0.0.0.0:2377"));
        assert_eq!(
            p.request.default_addr_pool,
            Some(vec!["10.20.0.0/16".into(), "10.30.0.0/16".into()])
        );
        let spec = p.request.spec.expect("spec");
        assert_eq!(
            spec.dispatcher.and_then(|d| d.heartbeat_period),
            Some(1_000_000_000)
        );
        assert_eq!(
            spec.orchestration
                .and_then(|o| o.task_history_retention_limit),
            Some(2)
        );
        assert_eq!(p.availability, Some(NodeSpecAvailabilityEnum::DRAIN));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("strategy=binpack"), "{w:?}");

        for bad in [
            "autolock=maybe",
            "dispatcher-heartbeat=fast",
            "task-history-limit=-x",
            "availability=sleep",
            "noequals",
        ] {
            let s = SwarmOptions {
                arbitrary_flags: Some(vec![bad.into()]),
                ..opts(true, false, "")
            };
            assert!(
                init_plan(&s, "192.0.2.1", &mut Vec::new()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn join_settings_and_misplaced_flags() {
        let s = SwarmOptions {
            arbitrary_join_flags: Some(vec![
                "availability=pause".into(),
                "listen-addr=0.0.0.0:4000".into(),
            ]),
            arbitrary_flags: Some(vec!["autolock=true".into()]),
            ..opts(false, true, "machine://m")
        };
        let mut w = Vec::new();
        let p = join_plan(&s, "192.0.2.2", &mut w).expect("plan");
        assert_eq!(p.request.advertise_addr.as_deref(), Some("192.0.2.2"));
        assert_eq!(p.request.listen_addr.as_deref(), Some("0.0.0.0:4000"));
        assert_eq!(p.availability, Some(NodeSpecAvailabilityEnum::PAUSE));
        let (m, warnings) = check("w", &s).expect("check");
        assert!(matches!(m, Membership::Join { .. }));
        assert!(
            warnings.iter().any(|w| w.contains("swarm-opt is ignored")),
            "{warnings:?}"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("2160h"), Some(2160 * 3_600_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        for bad in ["", "5", "s", "5x", "1e400h", "99999999999999999999h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    fn cfg(name: &str, s: SwarmOptions) -> HostConfig {
        let mut c = HostConfig::new(name, "none", std::path::Path::new("/s"));
        c.host_options.swarm_options = s;
        c
    }

    #[test]
    fn ls_column_and_members() {
        let d = "machine://m1";
        let configs = [
            cfg("m1", opts(true, false, d)),
            cfg("m2", opts(true, false, d)),
            cfg("w1", opts(false, true, d)),
            cfg("solo", SwarmOptions::default()),
        ];
        let refs: Vec<(&str, &HostConfig)> = configs.iter().map(|c| (c.name.as_str(), c)).collect();
        let masters = masters(refs.iter().copied());
        assert_eq!(masters.get(d).map(String::as_str), Some("m1"));
        let col = |i: usize| column(&configs[i].host_options.swarm_options, &masters);
        assert_eq!(col(0), "m1 (master)");
        assert_eq!(col(1), "m1 (master)");
        assert_eq!(col(2), "m1");
        assert_eq!(col(3), "");
        let m = members(d, refs.iter().copied());
        assert_eq!(m.managers, ["m1", "m2"]);
        assert_eq!(m.workers, ["w1"]);

        // the original's rule for other discoveries: the last manager by name
        let t = "token://abc";
        let legacy = [cfg("b", opts(true, true, t)), cfg("a", opts(true, true, t))];
        let refs: Vec<(&str, &HostConfig)> = legacy.iter().map(|c| (c.name.as_str(), c)).collect();
        assert_eq!(super::masters(refs).get(t).map(String::as_str), Some("b"));
    }
}
