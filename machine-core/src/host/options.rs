//! What `create` and `env` take: [`CreateOptions`] (driver options, the
//! engine options declared in [`engine_options`], TLS settings) and
//! [`EnvOptions`].

use super::HostError;
use crate::cert::KeyAlgorithm;
use crate::config::{EngineOptions, SwarmOptions};
use crate::driver::{DriverOption, OptionValue};

/// Everything `create` needs besides the name.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Driver name.
    pub driver: String,
    /// Driver options keyed by flag name (`generic-ip-address`).
    pub driver_options: Vec<(String, OptionValue)>,
    /// Engine settings (`--engine-*` flags).
    pub engine: EngineOptions,
    /// Extra server certificate SANs (`--tls-san`).
    pub tls_san: Vec<String>,
    /// Key algorithm for new certificates.
    pub key_algorithm: KeyAlgorithm,
    /// Read driver options' environment variables from the process environment.
    pub use_environment: bool,
    /// Swarm-mode settings (`--swarm*` flags, see [`crate::swarm`]), saved
    /// as the machine's `SwarmOptions`; a new machine initializes or joins
    /// a cluster once Docker runs.
    pub swarm: SwarmOptions,
    /// Adopt a daemon that already has its TLS set up: the CA certificate,
    /// client certificate and client key it trusts are copied into the
    /// machine's directory instead of the store's. Only for drivers that
    /// provision nothing (`none`); checked by connecting before the
    /// machine is added.
    pub adopt_tls: Option<AdoptTls>,
}

/// The TLS files of a daemon to adopt (see [`CreateOptions::adopt_tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptTls {
    /// The CA certificate that signed the daemon's server certificate.
    pub ca_cert: std::path::PathBuf,
    /// A client certificate the daemon accepts.
    pub client_cert: std::path::PathBuf,
    /// The client certificate's private key.
    pub client_key: std::path::PathBuf,
}

/// The engine and TLS options `create` takes besides the driver's, declared
/// as data like driver options (flag, kind, default, environment variable,
/// help). The CLI builds its flags from this list; Python and Node expose it.
pub fn engine_options() -> Vec<DriverOption> {
    use crate::driver::OptionKind::{String as Text, StringList as List};
    vec![
        DriverOption::new(
            "engine-install-url",
            Text,
            "Custom URL to use for engine installation (`distro`: the distribution's package, `none`: never install)",
        )
        .env("MACHINE_DOCKER_INSTALL_URL")
        .default_value(crate::config::DEFAULT_INSTALL_URL),
        DriverOption::new(
            "engine-opt",
            List,
            "Specify arbitrary flags to include with the created engine in the form flag=value",
        ),
        DriverOption::new(
            "engine-insecure-registry",
            List,
            "Specify insecure registries to allow with the created engine",
        ),
        DriverOption::new("engine-registry-mirror", List, "Specify registry mirrors to use")
            .env("ENGINE_REGISTRY_MIRROR"),
        DriverOption::new("engine-label", List, "Specify labels for the created engine"),
        DriverOption::new(
            "engine-storage-driver",
            Text,
            "Specify a storage driver to use with the engine",
        ),
        DriverOption::new(
            "engine-env",
            List,
            "Specify environment variables to set in the engine",
        ),
        DriverOption::new("tls-san", List, "Support extra SANs for TLS certs"),
        DriverOption::new(
            "tls-key-algorithm",
            Text,
            "Key algorithm of new certificates: rsa (RSA 2048, as the original) or ecdsa (P-256)",
        ),
    ]
}

impl CreateOptions {
    /// Options for `driver` with the default engine settings.
    pub fn new(driver: &str) -> Self {
        CreateOptions {
            driver: driver.to_string(),
            driver_options: Vec::new(),
            engine: EngineOptions::default(),
            tls_san: Vec::new(),
            key_algorithm: KeyAlgorithm::default(),
            use_environment: true,
            swarm: SwarmOptions::default(),
            adopt_tls: None,
        }
    }

    /// Set a swarm flag by name (one of [`crate::swarm::swarm_options`]);
    /// list flags append. The flags of the classic Swarm that mean nothing
    /// in Swarm mode are kept in the options and logged as ignored.
    pub fn swarm_flag(&mut self, flag: &str, value: OptionValue) -> Result<&mut Self, HostError> {
        let flag = flag.trim_start_matches('-');
        let list = match &value {
            OptionValue::List(l) => l.clone(),
            other => vec![other.to_string()],
        };
        let invalid = |reason: &str| HostError::InvalidOption {
            flag: flag.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let one = || list.first().cloned().unwrap_or_default();
        let yes = || match &value {
            OptionValue::Bool(b) => Ok(*b),
            OptionValue::String(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" | "" => Ok(false),
                _ => Err(invalid("expected true or false")),
            },
            _ => Err(invalid("expected true or false")),
        };
        for v in &list {
            if v.chars().any(char::is_control) {
                return Err(invalid("control characters are not allowed"));
            }
        }
        if crate::swarm::IGNORED_FLAGS.contains(&flag) {
            let shown = match &value {
                OptionValue::Bool(_) => String::new(),
                v => format!("={v}"),
            };
            tracing::warn!(
                "swarm option {flag}{shown} is ignored: it configured the classic Swarm container; Swarm mode is built into Docker Engine"
            );
        }
        let s = &mut self.swarm;
        match flag {
            "swarm" => {
                let on = yes()?;
                s.agent = on;
                s.is_swarm = on || s.master;
            }
            "swarm-master" => {
                let on = yes()?;
                s.master = on;
                s.is_swarm = on || s.agent;
            }
            "swarm-discovery" => s.discovery = one().trim().to_string(),
            "swarm-addr" => s.address = one().trim().to_string(),
            "swarm-opt" => s.arbitrary_flags.get_or_insert_with(Vec::new).extend(list),
            "swarm-join-opt" => s
                .arbitrary_join_flags
                .get_or_insert_with(Vec::new)
                .extend(list),
            "swarm-image" => s.image = one(),
            "swarm-strategy" => s.strategy = one(),
            "swarm-host" => s.host = one(),
            "swarm-experimental" => s.is_experimental = yes()?,
            _ => {
                return Err(invalid(&format!(
                    "not a swarm option (known: {})",
                    crate::swarm::swarm_options()
                        .iter()
                        .map(|o| o.flag.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
        Ok(self)
    }

    /// Set a driver option by flag name.
    pub fn driver_option(&mut self, flag: &str, value: OptionValue) -> &mut Self {
        self.driver_options
            .push((flag.trim_start_matches('-').to_string(), value));
        self
    }

    /// Set an engine flag by name (one of [`engine_options`]); list flags
    /// append. `tls-ca-cert`, `tls-client-cert` and `tls-client-key` (the
    /// CLI's global flags) fill [`Self::adopt_tls`].
    pub fn engine_flag(&mut self, flag: &str, value: OptionValue) -> Result<&mut Self, HostError> {
        let flag = flag.trim_start_matches('-');
        let list = match &value {
            OptionValue::List(l) => l.clone(),
            other => vec![other.to_string()],
        };
        let one = || list.first().cloned().unwrap_or_default();
        let push = |target: &mut Option<Vec<String>>| {
            target
                .get_or_insert_with(Vec::new)
                .extend(list.iter().cloned())
        };
        if engine_options().iter().any(|o| o.flag == flag) {
            for v in &list {
                crate::config::check_engine_value(flag, v)?;
            }
        }
        let e = &mut self.engine;
        match flag {
            "engine-install-url" => e.install_url = one(),
            "engine-storage-driver" => e.storage_driver = one(),
            "engine-opt" => {
                for v in &list {
                    if v.trim_start_matches('-').is_empty() {
                        return Err(HostError::InvalidOption {
                            flag: flag.into(),
                            value: v.clone(),
                            reason: "expected a daemon flag such as log-level=debug".into(),
                        });
                    }
                }
                push(&mut e.arbitrary_flags)
            }
            "engine-insecure-registry" => push(&mut e.insecure_registry),
            "engine-registry-mirror" => push(&mut e.registry_mirror),
            "engine-label" => push(&mut e.labels),
            "engine-env" => push(&mut e.env),
            "tls-san" => self.tls_san.extend(list),
            // the CLI's global flags; with the `none` driver they adopt a
            // daemon (see `adopt_tls`)
            "tls-ca-cert" | "tls-client-cert" | "tls-client-key" => {
                let a = self.adopt_tls.get_or_insert_with(|| AdoptTls {
                    ca_cert: Default::default(),
                    client_cert: Default::default(),
                    client_key: Default::default(),
                });
                let path = std::path::PathBuf::from(one());
                match flag {
                    "tls-ca-cert" => a.ca_cert = path,
                    "tls-client-cert" => a.client_cert = path,
                    _ => a.client_key = path,
                }
            }
            "tls-key-algorithm" => {
                self.key_algorithm = one().parse().map_err(|_| HostError::InvalidOption {
                    flag: flag.into(),
                    value: one(),
                    reason: "expected rsa or ecdsa".into(),
                })?
            }
            _ => {
                return Err(HostError::InvalidOption {
                    flag: flag.into(),
                    value: value.to_string(),
                    reason: format!(
                        "not an engine option (known: {})",
                        engine_options()
                            .iter()
                            .map(|o| o.flag.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
        }
        Ok(self)
    }
}

/// How to render a machine's environment (`env` command).
#[derive(Debug, Clone, Default)]
pub struct EnvOptions {
    /// Target shell.
    pub shell: Option<crate::env::Shell>,
    /// Print the lines that undo the settings instead.
    pub unset: bool,
    /// Add the machine's address to `no_proxy`/`NO_PROXY`.
    pub no_proxy: bool,
    /// Current `no_proxy` and `NO_PROXY` values (the caller reads its environment).
    pub no_proxy_lower: Option<String>,
    pub no_proxy_upper: Option<String>,
    /// The command line to show in the usage hint; `None`: no hint lines.
    pub hint_command: Option<String>,
}
