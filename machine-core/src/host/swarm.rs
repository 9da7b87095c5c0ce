//! A machine's place in a Swarm-mode cluster (see [`crate::swarm`]): the
//! Docker API client of a machine, init and join (at create, on
//! `provision` when the daemon lost its membership, or asked for), leave,
//! the node list and the manager a client should talk to.

// Errors carry the machine name and the failing step (see `host/mod.rs`).
#![allow(clippy::result_large_err)]

use super::{Host, HostError, Progress};
use crate::config::SwarmOptions;
use crate::engine::{self, EngineError};
use crate::store::StoreError;
use crate::swarm::{self, LocalNode, Membership, SwarmError, SwarmMembers, SwarmNode};
use bollard::Docker;
use std::time::{Duration, Instant};

/// Bound of one Docker API request of the swarm operations. Joining as a
/// manager waits for the Raft log to be replicated; that can take a while
/// on a busy machine.
const API_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of each request while looking for a manager that answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a demoted manager may take to become a worker.
const DEMOTE_WAIT: Duration = Duration::from_secs(60);

/// How a machine leaves its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leave {
    /// Asked for: a worker leaves and is removed from the node list; a
    /// manager is demoted first; the last manager leaves only with `force`.
    Asked { force: bool },
    /// The machine is being removed: as `Asked`, and a daemon that does not
    /// answer is no reason to stop (the node is removed from the list).
    Removal { force: bool },
    /// Its cluster is ending (the last manager is being removed): leave
    /// without telling a manager; failures are warnings.
    Dissolve,
}

fn clear(s: &mut SwarmOptions) {
    s.is_swarm = false;
    s.master = false;
    s.agent = false;
    s.discovery.clear();
}

impl Host {
    pub(crate) fn swarm_err(&self, source: SwarmError) -> HostError {
        HostError::Swarm {
            name: self.name().to_string(),
            source,
        }
    }

    /// A Docker Engine API client ([`bollard`]) for this machine's daemon,
    /// over mutual TLS with the machine's client certificate and CA, in the
    /// API version the daemon speaks.
    pub async fn docker(&self) -> Result<Docker, HostError> {
        self.docker_within(API_TIMEOUT).await
    }

    async fn docker_within(&self, timeout: Duration) -> Result<Docker, HostError> {
        let url = self.url().await?;
        let (h, p) = engine::parse_tcp_url(&url).ok_or_else(|| HostError::InvalidOption {
            flag: "url".into(),
            value: url.clone(),
            reason: "expected tcp://HOST:PORT".into(),
        })?;
        let tls = self.tls_client_config()?;
        crate::docker_api::connect(&h, p, tls, timeout)
            .await
            .map_err(|source| HostError::Engine {
                name: self.name().to_string(),
                log_tail: String::new(),
                source: EngineError::Api {
                    addr: format!("{h}:{p}"),
                    source,
                },
            })
    }

    async fn local_node(&self, d: &Docker) -> Result<LocalNode, HostError> {
        swarm::local_node(d).await.map_err(|e| self.swarm_err(e))
    }

    fn swarm_options(&self) -> &SwarmOptions {
        &self.config.host_options.swarm_options
    }

    /// The machines of this machine's cluster, by the saved configurations
    /// of the store (no network): the managers and the workers.
    pub fn swarm_members(&self) -> Result<SwarmMembers, HostError> {
        let s = self.swarm_options();
        if !(s.is_swarm || s.master) || s.discovery.is_empty() {
            return Err(self.swarm_err(SwarmError::NotInSwarm {
                name: self.name().to_string(),
            }));
        }
        let configs = self.store.configs()?;
        Ok(swarm::members(
            &s.discovery,
            configs.iter().map(|(n, c)| (n.as_str(), c)),
        ))
    }

    /// The manager of this machine's cluster a client should talk to: this
    /// machine when it is a manager whose daemon answers as one, else the
    /// first such machine among the cluster's managers (the one the cluster
    /// is named after first).
    pub async fn swarm_manager(&self) -> Result<Host, HostError> {
        self.find_manager(None).await
    }

    /// A manager of the cluster that answers, other than `except`.
    async fn find_manager(&self, except: Option<&str>) -> Result<Host, HostError> {
        let members = self.swarm_members()?;
        let mut wanted: Vec<&str> = vec![self.name()];
        wanted.extend(swarm::discovery_machine(&members.cluster));
        wanted.extend(members.managers.iter().map(String::as_str));
        let mut order: Vec<String> = Vec::new();
        for n in wanted {
            if members.managers.iter().any(|m| m == n)
                && Some(n) != except
                && !order.iter().any(|o| o == n)
            {
                order.push(n.to_string());
            }
        }
        let mut tried = Vec::new();
        for name in &order {
            let name = name.as_str();
            tried.push(name.to_string());
            let Ok(host) = self.store.get(name) else {
                continue;
            };
            let answers = async {
                let d = host.docker_within(PROBE_TIMEOUT).await?;
                host.local_node(&d).await
            };
            match tokio::time::timeout(PROBE_TIMEOUT * 2, answers).await {
                Ok(Ok(me)) if me.control_available => return Ok(host),
                Ok(Ok(_)) => tracing::debug!(machine = name, "not a manager of an active swarm"),
                Ok(Err(e)) => {
                    tracing::debug!(machine = name, error = %e, "manager does not answer")
                }
                Err(_) => tracing::debug!(machine = name, "manager does not answer in time"),
            }
        }
        Err(self.swarm_err(SwarmError::NoManager {
            cluster: members.cluster,
            tried,
        }))
    }

    /// The nodes of this machine's cluster, as a manager lists them.
    pub async fn swarm_nodes(&self) -> Result<Vec<SwarmNode>, HostError> {
        let m = self.swarm_manager().await?;
        let d = m.docker().await?;
        swarm::nodes(&d).await.map_err(|e| m.swarm_err(e))
    }

    /// Initialize a new cluster with this machine as its first manager
    /// (advertising `--swarm-addr` or its IP, with its `--swarm-opt`
    /// settings). The machine's `SwarmOptions` then name the cluster after it.
    pub async fn swarm_init(&mut self, progress: Progress<'_>) -> Result<(), HostError> {
        let _lock = self.lock_fresh()?;
        let saved = self.config.host_options.swarm_options.clone();
        {
            let s = &mut self.config.host_options.swarm_options;
            s.is_swarm = true;
            s.master = true;
            s.discovery = swarm::discovery_of(&self.config.name);
        }
        let r = self.apply_swarm(progress, true).await;
        if r.is_err() {
            self.config.host_options.swarm_options = saved;
        }
        r
    }

    /// Join the cluster that machine `manager` (of the same store) manages,
    /// as a manager or a worker, with this machine's `--swarm-join-opt`
    /// settings.
    pub async fn swarm_join(
        &mut self,
        manager: &str,
        as_manager: bool,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        let _lock = self.lock_fresh()?;
        let saved = self.config.host_options.swarm_options.clone();
        {
            let s = &mut self.config.host_options.swarm_options;
            s.is_swarm = true;
            s.master = as_manager;
            s.agent = !as_manager;
            s.discovery = swarm::discovery_of(manager);
        }
        let r = self.apply_swarm(progress, true).await;
        if r.is_err() {
            self.config.host_options.swarm_options = saved;
        }
        r
    }

    /// Leave the cluster. A worker leaves and is removed from the managers'
    /// node list; a manager is demoted to a worker first (the others keep
    /// their quorum), then leaves likewise. The last manager leaves only
    /// with `force` when workers remain: the cluster then ends.
    pub async fn swarm_leave(
        &mut self,
        force: bool,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        let _lock = self.lock_fresh()?;
        self.leave(Leave::Asked { force }, progress).await
    }

    /// Check what the options ask for, then do it: initialize or join when
    /// the daemon is in no cluster. `strict` (a new machine, or an explicit
    /// request): a daemon already in another cluster is an error; otherwise
    /// (`provision`) a daemon in a cluster is left as it is.
    pub(crate) async fn apply_swarm(
        &mut self,
        progress: Progress<'_>,
        strict: bool,
    ) -> Result<(), HostError> {
        let s = self.swarm_options().clone();
        if !strict && swarm::is_classic(&s) {
            tracing::debug!(machine = self.name(), "a classic Swarm machine: left alone");
            return Ok(());
        }
        let (membership, warnings) =
            swarm::check(self.name(), &s).map_err(|(flag, value, reason)| {
                HostError::InvalidOption {
                    flag,
                    value,
                    reason,
                }
            })?;
        if strict {
            for w in warnings {
                tracing::warn!("{w}");
            }
        }
        match membership {
            Membership::None => Ok(()),
            Membership::Init => self.init_cluster(&s, progress, strict).await,
            Membership::Join { via, as_manager } => {
                self.join_cluster(&s, &via, as_manager, progress, strict)
                    .await
            }
        }
    }

    async fn init_cluster(
        &mut self,
        s: &SwarmOptions,
        progress: Progress<'_>,
        strict: bool,
    ) -> Result<(), HostError> {
        let d = self.docker().await?;
        let me = self.local_node(&d).await?;
        if me.active() {
            if strict {
                return Err(self.swarm_err(SwarmError::AlreadyInSwarm {
                    name: self.name().to_string(),
                    cluster: me.cluster_id,
                }));
            }
            return Ok(());
        }
        progress("Initializing a swarm with this machine as its manager");
        let ip = self.ip().await?;
        let plan = swarm::init_plan(s, &ip, &mut Vec::new()).map_err(|(flag, value, reason)| {
            HostError::InvalidOption {
                flag,
                value,
                reason,
            }
        })?;
        swarm::init(&d, &plan)
            .await
            .map_err(|e| self.swarm_err(e))?;
        let o = &mut self.config.host_options.swarm_options;
        o.is_swarm = true;
        o.master = true;
        o.discovery = swarm::discovery_of(&self.config.name);
        self.save()
    }

    /// The machine `via` as a manager to join through: in the store, made a
    /// manager, and its daemon says it is one.
    pub(crate) fn manager_config_check(
        store: &crate::store::Store,
        name: &str,
        via: &str,
    ) -> Result<crate::config::HostConfig, HostError> {
        let err = |source| HostError::Swarm {
            name: name.to_string(),
            source,
        };
        let c = match store.files.load(via) {
            Ok(c) => c,
            Err(StoreError::NotFound { .. }) => {
                return Err(err(SwarmError::UnknownMachine {
                    name: via.to_string(),
                }))
            }
            Err(e) => return Err(e.into()),
        };
        let s = &c.host_options.swarm_options;
        if !(s.master && s.is_swarm) {
            return Err(err(SwarmError::NotManager {
                name: via.to_string(),
                why: "its configuration does not make it one: create it with --swarm-master".into(),
            }));
        }
        Ok(c)
    }

    async fn join_cluster(
        &mut self,
        s: &SwarmOptions,
        via: &str,
        as_manager: bool,
        progress: Progress<'_>,
        strict: bool,
    ) -> Result<(), HostError> {
        let role = if as_manager { "manager" } else { "worker" };
        if strict {
            // wrong input first, before the network
            Self::manager_config_check(&self.store, self.name(), via)?;
        }
        let d = self.docker().await?;
        let me = self.local_node(&d).await?;
        if me.active() && !strict {
            return Ok(());
        }
        let mconfig = Self::manager_config_check(&self.store, self.name(), via)?;
        let manager = self.store.get(via)?;
        let md = manager.docker().await.map_err(|e| {
            self.swarm_err(SwarmError::NotManager {
                name: via.to_string(),
                why: format!("its daemon does not answer: {}", super::error_chain(&e)),
            })
        })?;
        let ml = manager.local_node(&md).await?;
        if !ml.control_available {
            return Err(self.swarm_err(SwarmError::NotManager {
                name: via.to_string(),
                why: format!(
                    "its daemon reports swarm state {:?}, not a manager",
                    ml.state
                ),
            }));
        }
        let cluster = match mconfig.host_options.swarm_options.discovery.as_str() {
            "" => swarm::discovery_of(via),
            d => d.to_string(),
        };
        if me.active() {
            // Already in a swarm: fine if it is this one (a repeated join).
            let here = md.inspect_node(&me.node_id).await.is_ok();
            if !here {
                return Err(self.swarm_err(SwarmError::AlreadyInSwarm {
                    name: self.name().to_string(),
                    cluster: me.cluster_id,
                }));
            }
        } else {
            progress(&format!("Joining the swarm of {via} as a {role}"));
            let ip = self.ip().await?;
            let plan =
                swarm::join_plan(s, &ip, &mut Vec::new()).map_err(|(flag, value, reason)| {
                    HostError::InvalidOption {
                        flag,
                        value,
                        reason,
                    }
                })?;
            let token = swarm::join_token(&md, as_manager)
                .await
                .map_err(|e| manager.swarm_err(e))?;
            let mut managers = ml.managers.clone();
            if managers.is_empty() {
                let mip = manager.ip().await?;
                managers.push(format!("{mip}:{}", swarm::SWARM_PORT));
            }
            swarm::join(&d, &plan, managers, token)
                .await
                .map_err(|e| self.swarm_err(e))?;
            if let (Some(a), false) = (&plan.availability, as_manager) {
                let joined = self.local_node(&d).await?;
                swarm::set_availability(&md, &joined.node_id, *a)
                    .await
                    .map_err(|e| manager.swarm_err(e))?;
            }
        }
        let o = &mut self.config.host_options.swarm_options;
        o.is_swarm = true;
        o.master = as_manager;
        o.discovery = cluster;
        self.save()
    }

    /// Leave the cluster as `how` says, then forget it in `SwarmOptions`
    /// (saved unless the machine is being removed).
    pub(crate) async fn leave(
        &mut self,
        how: Leave,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        let s = self.swarm_options().clone();
        if !(s.is_swarm || s.master) || swarm::is_classic(&s) {
            return match how {
                Leave::Asked { .. } => Err(self.swarm_err(SwarmError::NotInSwarm {
                    name: self.name().to_string(),
                })),
                _ => Ok(()),
            };
        }
        let force = match how {
            Leave::Asked { force } | Leave::Removal { force } => force,
            Leave::Dissolve => true,
        };
        let tolerant = !matches!(how, Leave::Asked { .. });
        let live = async {
            let d = self.docker().await?;
            let me = self.local_node(&d).await?;
            Ok::<_, HostError>((d, me))
        }
        .await;
        // The node to take out of the managers' list once this machine has
        // left: its ID, or "" to find it by name.
        let mut unlist: Option<String> = None;
        match live {
            Ok((d, me)) if me.active() => {
                if how == Leave::Dissolve {
                    progress("Leaving the swarm, which ends with its last manager");
                    if let Err(e) = swarm::leave(&d, true).await {
                        tracing::warn!("machine {}: {e}", self.name());
                    }
                } else if me.control_available {
                    // the removal of the last manager has taken its workers out already
                    let end_ok = force || matches!(how, Leave::Removal { .. });
                    unlist = self.leave_as_manager(&d, &me, end_ok, progress).await?;
                } else {
                    progress("Leaving the swarm");
                    swarm::leave(&d, false)
                        .await
                        .map_err(|e| self.swarm_err(e))?;
                    unlist = Some(me.node_id.clone());
                }
            }
            Ok(_) => {
                // Already out (left by hand, or an earlier attempt that could
                // not reach a manager): the list may still name it.
                tracing::debug!(machine = self.name(), "the daemon is in no swarm");
                if how != Leave::Dissolve {
                    unlist = Some(String::new());
                }
            }
            Err(e) if tolerant && how != Leave::Dissolve && !s.master => {
                // A worker whose daemon is gone: its node goes from the list.
                tracing::warn!(
                    "machine {}: cannot leave the swarm ({}); removing its node from the managers' list",
                    self.name(),
                    super::error_chain(&e)
                );
                unlist = Some(String::new());
            }
            Err(e) if tolerant || force => {
                tracing::warn!(
                    "machine {}: cannot leave the swarm: {}",
                    self.name(),
                    super::error_chain(&e)
                );
            }
            Err(e) => return Err(e),
        }
        let unlisted = match &unlist {
            Some(id) => self.remove_from_list(id, force).await,
            None => Ok(()),
        };
        if matches!(how, Leave::Removal { .. }) {
            // nothing is saved: the machine goes (or stays as it was, on error)
            unlisted?;
            clear(&mut self.config.host_options.swarm_options);
            return Ok(());
        }
        // The daemon has left: the configuration says so even when its node
        // could not be taken out of the list.
        clear(&mut self.config.host_options.swarm_options);
        self.save()?;
        unlisted
    }

    async fn leave_as_manager(
        &self,
        d: &Docker,
        me: &LocalNode,
        end_ok: bool,
        progress: Progress<'_>,
    ) -> Result<Option<String>, HostError> {
        if me.manager_count <= 1 {
            let nodes = swarm::nodes(d).await.map_err(|e| self.swarm_err(e))?;
            let workers: Vec<String> = nodes
                .iter()
                .filter(|n| n.id != me.node_id && n.state != "down")
                .map(|n| n.hostname.clone())
                .collect();
            if !workers.is_empty() && !end_ok {
                return Err(self.swarm_err(SwarmError::LastManager {
                    name: self.name().to_string(),
                    workers,
                }));
            }
            progress("Leaving the swarm (its last manager: the swarm ends)");
            swarm::leave(d, true).await.map_err(|e| self.swarm_err(e))?;
            return Ok(None);
        }
        progress("Demoting this manager to a worker");
        swarm::demote(d, &me.node_id)
            .await
            .map_err(|e| self.swarm_err(e))?;
        let deadline = Instant::now() + DEMOTE_WAIT;
        loop {
            let now = self.local_node(d).await?;
            if !now.control_available {
                break;
            }
            if Instant::now() >= deadline {
                return Err(self.swarm_err(SwarmError::Timeout {
                    what: "the demotion to a worker".into(),
                    seconds: DEMOTE_WAIT.as_secs(),
                }));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        progress("Leaving the swarm");
        swarm::leave(d, false)
            .await
            .map_err(|e| self.swarm_err(e))?;
        Ok(Some(me.node_id.clone()))
    }

    /// Remove this machine's node (`id`, or found by host name and address
    /// when empty) from the list of another manager of the store. Without a
    /// manager that answers: an error, or a warning with `force`.
    async fn remove_from_list(&self, id: &str, force: bool) -> Result<(), HostError> {
        let others = self
            .swarm_members()
            .map(|m| m.managers.iter().any(|n| n != self.name()));
        if !others.unwrap_or(false) {
            // no other manager machine keeps a list to remove it from
            return Ok(());
        }
        let r = async {
            let m = self.find_manager(Some(self.name())).await?;
            let md = m.docker().await?;
            let id = if id.is_empty() {
                let ip = self.ip().await.unwrap_or_default();
                let nodes = swarm::nodes(&md).await.map_err(|e| m.swarm_err(e))?;
                match nodes
                    .iter()
                    .find(|n| n.hostname == self.name() && (ip.is_empty() || n.addr == ip))
                {
                    Some(n) => n.id.clone(),
                    None => return Ok(()),
                }
            } else {
                id.to_string()
            };
            swarm::remove_node(&md, &id, true)
                .await
                .map_err(|e| m.swarm_err(e))
        }
        .await;
        match r {
            Err(e) if force => {
                tracing::warn!(
                    "machine {}: its node stays in the swarm's list: {}",
                    self.name(),
                    super::error_chain(&e)
                );
                Ok(())
            }
            r => r,
        }
    }
}
