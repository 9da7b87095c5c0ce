//! Which test hosts a suite owns, and where they are.
//!
//! See the crate documentation for the variables, the allocation file and
//! the rule for missing hosts.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The allocation file, as embedded at build time.
pub const ALLOCATION_JSON: &str = include_str!("../hosts.json");

/// Where the allocation file is, relative to the repository.
pub const ALLOCATION_PATH: &str = "test-support/hosts.json";

/// The user `MT_SUDO_USER` names when it is not set.
pub const DEFAULT_SUDO_USER: &str = "mtuser";

/// A Rust end-to-end suite (one test binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `machine-core/tests/ssh_e2e.rs`: the SSH client.
    SshE2e,
    /// `machine-drivers/tests/e2e_generic.rs`: creates with the generic driver.
    E2eGeneric,
    /// `machine-cli/tests/e2e.rs`: the `machine` binary.
    CliE2e,
    /// `examples/tests/inventory_e2e.rs`: the inventory driver example.
    Examples,
    /// `machine-cli/tests/swarm_e2e.rs`: a Swarm-mode cluster across machines.
    SwarmE2e,
    /// `machine-cli/tests/ec2.rs`: the `amazonec2` driver against moto.
    Ec2,
    /// `machine-cli/tests/plugin.rs`: driver plugins (Go peers) both ways.
    Plugin,
    /// `machine-cli/tests/export_e2e.rs`: ssh-config, docker contexts,
    /// export/import and adopted hosts.
    ExportE2e,
}

impl Suite {
    /// Every Rust suite.
    pub const ALL: [Suite; 8] = [
        Suite::SshE2e,
        Suite::E2eGeneric,
        Suite::CliE2e,
        Suite::Examples,
        Suite::SwarmE2e,
        Suite::Ec2,
        Suite::Plugin,
        Suite::ExportE2e,
    ];

    /// The suite's key in the allocation file.
    pub fn name(self) -> &'static str {
        match self {
            Suite::SshE2e => "ssh_e2e",
            Suite::E2eGeneric => "e2e_generic",
            Suite::CliE2e => "cli_e2e",
            Suite::Examples => "examples",
            Suite::SwarmE2e => "swarm_e2e",
            Suite::Ec2 => "ec2",
            Suite::Plugin => "plugin",
            Suite::ExportE2e => "export_e2e",
        }
    }

    /// The suite's entry in the allocation file.
    pub fn entry(self) -> &'static SuiteEntry {
        allocation()
            .suites
            .get(self.name())
            .unwrap_or_else(|| panic!("{ALLOCATION_PATH} has no suite {:?}", self.name()))
    }

    /// The indices into `MT_HOSTS` that the suite owns, ascending.
    pub fn indices(self) -> &'static [usize] {
        &self.entry().hosts
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The allocation file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// What the file is (JSON has no comments).
    pub about: String,
    /// How many hosts `scripts/test.sh` brings up: one more than the
    /// highest index.
    pub count: usize,
    /// Suite name → entry.
    pub suites: BTreeMap<String, SuiteEntry>,
}

/// One suite of the allocation file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteEntry {
    /// The suite's test file, relative to the repository.
    pub test: String,
    /// Indices into `MT_HOSTS`, ascending.
    pub hosts: Vec<usize>,
}

impl Allocation {
    /// Parse and check an allocation file: indices ascending and below
    /// `count`, `count` one more than the highest index, every suite owning
    /// at least one host.
    pub fn parse(json: &str) -> Result<Allocation, String> {
        let a: Allocation = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut highest = None;
        for (name, s) in &a.suites {
            if s.hosts.is_empty() {
                return Err(format!("suite {name} owns no host"));
            }
            if !s.hosts.windows(2).all(|w| w[0] < w[1]) {
                return Err(format!(
                    "suite {name}: host indices must ascend: {:?}",
                    s.hosts
                ));
            }
            if let Some(&i) = s.hosts.iter().find(|&&i| i >= a.count) {
                return Err(format!(
                    "suite {name}: host {i} is not below count {}",
                    a.count
                ));
            }
            highest = highest.max(s.hosts.last().copied());
        }
        if highest.map(|h| h + 1) != Some(a.count) {
            return Err(format!(
                "count is {} but the highest host index is {highest:?}",
                a.count
            ));
        }
        Ok(a)
    }
}

/// The allocation file embedded in this crate (checked; panics if invalid).
pub fn allocation() -> &'static Allocation {
    static A: OnceLock<Allocation> = OnceLock::new();
    A.get_or_init(|| {
        Allocation::parse(ALLOCATION_JSON)
            .unwrap_or_else(|e| panic!("{ALLOCATION_PATH} is invalid: {e}"))
    })
}

/// How to bring the hosts up, for messages.
pub fn setup_hint() -> String {
    format!(
        "run `bash scripts/testhosts.sh up {}` and `eval \"$(bash scripts/testhosts.sh env)\"` (as root)",
        allocation().count
    )
}

/// One test host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its index in `MT_HOSTS`.
    pub index: usize,
    /// Its address (`MT_HOSTS`).
    pub addr: String,
    /// Its name, also the name of its network namespace (`MT_HOST_NAMES`).
    pub name: Option<String>,
}

/// Why the environment names no usable hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// `MT_HOSTS` is not set or empty.
    NoHosts,
    /// The variables contradict each other or one is missing.
    Invalid(String),
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::NoHosts => write!(f, "MT_HOSTS is not set: {}", setup_hint()),
            EnvError::Invalid(why) => write!(
                f,
                "{why}: eval the whole output of `bash scripts/testhosts.sh env`"
            ),
        }
    }
}

impl std::error::Error for EnvError {}

/// Every host the environment announces, with the shared key, state
/// directory and sudo user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestHosts {
    hosts: Vec<Host>,
    key: PathBuf,
    state: PathBuf,
    sudo_user: String,
}

impl TestHosts {
    /// The hosts of this process's environment, read once.
    pub fn from_env() -> Result<&'static TestHosts, &'static EnvError> {
        static ENV: OnceLock<Result<TestHosts, EnvError>> = OnceLock::new();
        ENV.get_or_init(|| {
            TestHosts::from_vars(|name| {
                std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
            })
        })
        .as_ref()
    }

    /// The hosts that the variables from `var` announce.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<TestHosts, EnvError> {
        let addrs: Vec<String> = var("MT_HOSTS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if addrs.is_empty() {
            return Err(EnvError::NoHosts);
        }
        let names: Option<Vec<String>> = var("MT_HOST_NAMES")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .filter(|n: &Vec<String>| !n.is_empty());
        if let Some(names) = &names {
            if names.len() != addrs.len() {
                return Err(EnvError::Invalid(format!(
                    "MT_HOSTS names {} hosts but MT_HOST_NAMES {}",
                    addrs.len(),
                    names.len()
                )));
            }
        }
        let path = |name: &str| match var(name) {
            Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
            _ => Err(EnvError::Invalid(format!(
                "MT_HOSTS is set but {name} is not"
            ))),
        };
        let key = path("MT_KEY")?;
        let state = path("MT_STATE")?;
        let sudo_user = var("MT_SUDO_USER")
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_SUDO_USER.to_string());
        let hosts = addrs
            .into_iter()
            .enumerate()
            .map(|(index, addr)| Host {
                index,
                addr,
                name: names.as_ref().map(|n| n[index].clone()),
            })
            .collect();
        Ok(TestHosts {
            hosts,
            key,
            state,
            sudo_user,
        })
    }

    /// Every host, in `MT_HOSTS` order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `index`, if the environment names it.
    pub fn get(&self, index: usize) -> Option<&Host> {
        self.hosts.get(index)
    }

    /// The client's private key (`MT_KEY`).
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The state directory (`MT_STATE`).
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The user with passwordless sudo (`MT_SUDO_USER`).
    pub fn sudo_user(&self) -> &str {
        &self.sudo_user
    }
}

/// The hosts a suite owns.
#[derive(Debug, Clone)]
pub struct Hosts {
    suite: Suite,
    env: TestHosts,
}

impl Hosts {
    /// Whose hosts these are.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The indices the suite owns.
    pub fn indices(&self) -> &'static [usize] {
        self.suite.indices()
    }

    /// Host `index` (an index into `MT_HOSTS`). Panics when the suite does
    /// not own it: another suite may be using it at the same time.
    #[track_caller]
    pub fn host(&self, index: usize) -> &Host {
        assert!(
            self.indices().contains(&index),
            "test host {index} is not allocated to suite {} (it owns {:?}; see {ALLOCATION_PATH})",
            self.suite,
            self.indices()
        );
        &self.env.hosts[index]
    }

    /// The address of host `index`; panics as [`Hosts::host`] does.
    #[track_caller]
    pub fn addr(&self, index: usize) -> &str {
        &self.host(index).addr
    }

    /// The client's private key (`MT_KEY`).
    pub fn key(&self) -> &Path {
        self.env.key()
    }

    /// The state directory (`MT_STATE`).
    pub fn state(&self) -> &Path {
        self.env.state()
    }

    /// The user with passwordless sudo (`MT_SUDO_USER`).
    pub fn sudo_user(&self) -> &str {
        self.env.sudo_user()
    }
}

/// Why a suite cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Some of the suite's hosts are not up: skip, or fail under CI.
    Missing(String),
    /// The environment is inconsistent: always a failure.
    Invalid(String),
}

/// The suite's hosts from `env`, without applying the rule for missing
/// hosts (see [`for_suite`]).
pub fn select(suite: Suite, env: Result<&TestHosts, &EnvError>) -> Result<Hosts, Unavailable> {
    let want = suite.indices();
    let missing = |have: usize| {
        Unavailable::Missing(format!(
            "suite {suite} ({}) needs test host{} {} of MT_HOSTS, {}: {}",
            suite.entry().test,
            if want.len() == 1 { "" } else { "s" },
            want.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if have == 0 {
                "which is not set".to_string()
            } else {
                format!("which names {have}")
            },
            setup_hint()
        ))
    };
    match env {
        Err(EnvError::NoHosts) => Err(missing(0)),
        Err(e @ EnvError::Invalid(_)) => Err(Unavailable::Invalid(e.to_string())),
        Ok(env) if want.iter().any(|&i| i >= env.hosts.len()) => Err(missing(env.hosts.len())),
        Ok(env) => Ok(Hosts {
            suite,
            env: env.clone(),
        }),
    }
}

/// The hosts of `suite` from this process's environment. When some are
/// missing: panics if CI is set ([`crate::ci_is_set`]), otherwise prints
/// `SKIPPED: …` to stderr and returns `None`. Panics on an inconsistent
/// environment either way.
#[track_caller]
pub fn for_suite(suite: Suite) -> Option<Hosts> {
    match select(suite, TestHosts::from_env()) {
        Ok(hosts) => Some(hosts),
        Err(Unavailable::Invalid(why)) => panic!("{why}"),
        Err(Unavailable::Missing(why)) if crate::ci_is_set() => {
            panic!("test hosts are required when CI is set: {why}")
        }
        Err(Unavailable::Missing(why)) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> Result<TestHosts, EnvError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TestHosts::from_vars(|k| m.get(k).cloned())
    }

    fn ten() -> Vec<(&'static str, String)> {
        let addrs: Vec<String> = (1..=10).map(|i| format!("10.0.0.{i}")).collect();
        let names: Vec<String> = (1..=10).map(|i| format!("h{i}")).collect();
        vec![
            ("MT_HOSTS", addrs.join(" ")),
            ("MT_HOST_NAMES", names.join(" ")),
            ("MT_KEY", "/s/id".into()),
            ("MT_STATE", "/s".into()),
            ("MT_SUDO_USER", "bob".into()),
        ]
    }

    #[test]
    fn the_embedded_allocation_is_valid_and_names_every_suite() {
        let a = allocation();
        for s in Suite::ALL {
            assert!(!s.indices().is_empty(), "{s}");
        }
        assert_eq!(a.count, 30);
    }

    #[test]
    fn allocation_checks() {
        let ok = r#"{"about":"","count":3,"suites":{"a":{"test":"t","hosts":[0,2]}}}"#;
        assert!(Allocation::parse(ok).is_ok());
        for bad in [
            r#"{"about":"","count":4,"suites":{"a":{"test":"t","hosts":[0,2]}}}"#,
            r#"{"about":"","count":2,"suites":{"a":{"test":"t","hosts":[0,2]}}}"#,
            r#"{"about":"","count":3,"suites":{"a":{"test":"t","hosts":[2,0]}}}"#,
            r#"{"about":"","count":3,"suites":{"a":{"test":"t","hosts":[]}}}"#,
            r#"{"about":"","count":3,"suites":{"a":{"test":"t","hosts":[2],"x":1}}}"#,
        ] {
            assert!(Allocation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_the_variables() {
        let pairs = ten();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let env = vars(&refs).expect("env");
        assert_eq!(env.hosts().len(), 10);
        assert_eq!(
            env.get(9),
            Some(&Host {
                index: 9,
                addr: "10.0.0.10".into(),
                name: Some("h10".into())
            })
        );
        assert_eq!(env.key(), Path::new("/s/id"));
        assert_eq!(env.state(), Path::new("/s"));
        assert_eq!(env.sudo_user(), "bob");

        let hosts = select(Suite::CliE2e, Ok(&env)).expect("cli hosts");
        assert_eq!(hosts.addr(4), "10.0.0.5");
        assert_eq!(hosts.addr(5), "10.0.0.6");
        let hosts = select(Suite::E2eGeneric, Ok(&env)).expect("generic hosts");
        assert_eq!(hosts.host(9).name.as_deref(), Some("h10"));
    }

    #[test]
    #[should_panic(expected = "not allocated to suite cli_e2e")]
    fn a_suite_cannot_use_another_suites_host() {
        let pairs = ten();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let env = vars(&refs).expect("env");
        let hosts = select(Suite::CliE2e, Ok(&env)).expect("cli hosts");
        let _ = hosts.addr(6);
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(vars(&[]), Err(EnvError::NoHosts));
        assert_eq!(vars(&[("MT_HOSTS", "  ")]), Err(EnvError::NoHosts));
        let env = vars(&[("MT_HOSTS", "a b"), ("MT_KEY", "k"), ("MT_STATE", "s")]).expect("env");
        assert_eq!(env.sudo_user(), DEFAULT_SUDO_USER);
        assert_eq!(env.get(1).and_then(|h| h.name.clone()), None);
        assert!(matches!(
            vars(&[("MT_HOSTS", "a"), ("MT_STATE", "s")]),
            Err(EnvError::Invalid(m)) if m.contains("MT_KEY")
        ));
        assert!(matches!(
            vars(&[("MT_HOSTS", "a"), ("MT_KEY", "k")]),
            Err(EnvError::Invalid(m)) if m.contains("MT_STATE")
        ));
        assert!(matches!(
            vars(&[
                ("MT_HOSTS", "a b"),
                ("MT_HOST_NAMES", "x"),
                ("MT_KEY", "k"),
                ("MT_STATE", "s")
            ]),
            Err(EnvError::Invalid(_))
        ));
    }

    #[test]
    fn missing_hosts_name_the_suite_and_the_fix() {
        let env = vars(&[
            ("MT_HOSTS", "a b c d e f"),
            ("MT_KEY", "k"),
            ("MT_STATE", "s"),
        ])
        .expect("env");
        assert!(select(Suite::CliE2e, Ok(&env)).is_ok());
        let Err(Unavailable::Missing(m)) = select(Suite::E2eGeneric, Ok(&env)) else {
            panic!("host 9 is missing")
        };
        assert!(m.contains("e2e_generic"), "{m}");
        assert!(m.contains("0, 1, 2, 3, 9"), "{m}");
        assert!(m.contains("which names 6"), "{m}");
        assert!(m.contains("bash scripts/testhosts.sh up 30"), "{m}");
        let Err(Unavailable::Missing(m)) = select(Suite::SshE2e, Err(&EnvError::NoHosts)) else {
            panic!("no hosts")
        };
        assert!(m.contains("which is not set"), "{m}");
        let bad = EnvError::Invalid("MT_HOSTS is set but MT_KEY is not".into());
        assert!(matches!(
            select(Suite::SshE2e, Err(&bad)),
            Err(Unavailable::Invalid(m)) if m.contains("testhosts.sh env")
        ));
    }
}
