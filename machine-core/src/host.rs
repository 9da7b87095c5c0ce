//! A machine and its operations, and [`Store`], the entry point that finds,
//! creates and removes machines.
//!
//! ```no_run
//! # async fn demo() -> Result<(), machine_core::host::HostError> {
//! use machine_core::host::{CreateOptions, Store};
//! use machine_core::driver::{DriverRegistry, OptionValue};
//! use machine_core::store::FileStore;
//!
//! let drivers = DriverRegistry::new(); // add drivers, e.g. machine_drivers::builtin_registry()
//! let store = Store::new(FileStore::new("/tmp/machines"), drivers);
//! let mut opts = CreateOptions::new("generic");
//! opts.driver_option("generic-ip-address", OptionValue::String("192.0.2.10".into()));
//! let host = store.create("web1", opts, &|step: &str| println!("{step}")).await?;
//! println!("{}", host.url().await?);
//! # Ok(()) }
//! ```

// Errors carry the machine name and the failing step; they are the cold path of
// operations that take milliseconds to minutes, so their size does not matter.
#![allow(clippy::result_large_err)]

use crate::cert::{self, CertError, CertPaths, CertificateAuthority, KeyAlgorithm};
use crate::config::{EngineOptions, HostConfig};
use crate::driver::{
    Driver, DriverContext, DriverError, DriverOption, DriverOptions, DriverRegistry, OptionValue,
};
use crate::engine::{self, EngineError, EngineVersion};
use crate::env::MachineEnv;
use crate::error_code::ErrorCode;
use crate::provision::{self, ProvisionError, ProvisionRequest, ProvisionerSet};
use crate::ssh::{
    known_hosts, CommandRunner, HostKeyCheck, Output, SshClient, SshConfig, SshError,
};
use crate::state::State;
use crate::store::{FileStore, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use crate::progress::Progress;

/// File in a machine's directory recording why its last create or provision failed.
pub const ERROR_FILE: &str = "last-error";

/// Errors of host operations. Each names the machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The store failed (the error names the machine or path).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The driver failed.
    #[error("machine {name}")]
    Driver {
        name: String,
        #[source]
        source: DriverError,
    },
    /// Certificates could not be made, loaded or checked.
    #[error("TLS certificates of machine {name}")]
    Cert {
        name: String,
        #[source]
        source: Box<CertError>,
    },
    /// The machine's server certificate does not fit its address any more.
    #[error("the server certificate of machine {name} is not valid for {address}")]
    CertCheck {
        name: String,
        address: String,
        #[source]
        source: Box<CertError>,
    },
    /// SSH failed.
    #[error("SSH to machine {name}")]
    Ssh {
        name: String,
        #[source]
        source: SshError,
    },
    /// Provisioning failed.
    #[error("provisioning machine {name}")]
    Provision {
        name: String,
        #[source]
        source: ProvisionError,
    },
    /// The Docker daemon did not answer over TLS.
    #[error("the Docker daemon of machine {name} is not answering{}", log_suffix(.log_tail))]
    Engine {
        name: String,
        log_tail: String,
        #[source]
        source: EngineError,
    },
    /// The driver gives no SSH access.
    #[error("machine {name} (driver {driver}) has no SSH access")]
    NoSsh { name: String, driver: String },
    /// The machine must be running for this.
    #[error("machine {name} is not running (state: {state})")]
    NotRunning { name: String, state: State },
    /// A waiting step ran out of time.
    #[error("machine {name}: {what} did not happen within {seconds} s")]
    Timeout {
        name: String,
        what: String,
        seconds: u64,
    },
    /// A bad engine or create option.
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidOption {
        flag: String,
        value: String,
        reason: String,
    },
    /// Local file I/O.
    #[error("machine {name}: file {path}")]
    Io {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HostError {
    /// A stable, language-neutral code for this error (the bindings expose it as
    /// the exception class in Python and the `code` property in Node).
    pub fn code(&self) -> ErrorCode {
        use crate::driver::DriverError as D;
        match self {
            HostError::Store(StoreError::NotFound { .. }) => ErrorCode::NotFound,
            HostError::Store(StoreError::AlreadyExists { .. }) => ErrorCode::AlreadyExists,
            HostError::Store(StoreError::InvalidName { .. }) => ErrorCode::InvalidName,
            HostError::Store(_) => ErrorCode::Store,
            HostError::Driver {
                source: D::NotSupported { .. },
                ..
            } => ErrorCode::NotSupported,
            HostError::Driver {
                source: D::UnknownDriver { .. },
                ..
            } => ErrorCode::UnknownDriver,
            HostError::Driver {
                source: D::MissingOption { .. } | D::UnknownOption { .. } | D::InvalidOption { .. },
                ..
            } => ErrorCode::InvalidOption,
            HostError::Driver {
                source: D::PreCreateCheck { .. },
                ..
            } => ErrorCode::PreCreateCheck,
            HostError::Driver { .. } => ErrorCode::Driver,
            HostError::Cert { .. } => ErrorCode::Cert,
            HostError::CertCheck { .. } => ErrorCode::CertCheck,
            HostError::Ssh {
                source: SshError::HostKeyMismatch { .. },
                ..
            } => ErrorCode::HostKeyMismatch,
            HostError::Ssh { .. } | HostError::NoSsh { .. } => ErrorCode::Ssh,
            HostError::Provision { .. } => ErrorCode::Provision,
            HostError::Engine { .. } => ErrorCode::Engine,
            HostError::NotRunning { .. } => ErrorCode::NotRunning,
            HostError::Timeout { .. } => ErrorCode::Timeout,
            HostError::InvalidOption { .. } => ErrorCode::InvalidOption,
            HostError::Io { .. } => ErrorCode::Io,
        }
    }

    /// The machine the error is about, when there is one.
    pub fn machine(&self) -> Option<&str> {
        let name = match self {
            HostError::Store(
                StoreError::NotFound { name }
                | StoreError::AlreadyExists { name }
                | StoreError::InvalidName { name }
                | StoreError::Corrupt { name, .. }
                | StoreError::FromTheFuture { name, .. },
            ) => name,
            HostError::Driver { name, .. }
            | HostError::Cert { name, .. }
            | HostError::CertCheck { name, .. }
            | HostError::Ssh { name, .. }
            | HostError::Provision { name, .. }
            | HostError::Engine { name, .. }
            | HostError::NoSsh { name, .. }
            | HostError::NotRunning { name, .. }
            | HostError::Timeout { name, .. }
            | HostError::Io { name, .. } => name,
            _ => return None,
        };
        Some(name.as_str()).filter(|n| !n.is_empty())
    }
}

fn log_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; daemon log:\n{}", tail.trim_end())
    }
}

impl From<crate::config::EngineValueError> for HostError {
    fn from(e: crate::config::EngineValueError) -> Self {
        HostError::InvalidOption {
            flag: e.flag,
            value: e.value,
            reason: e.reason,
        }
    }
}

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
        }
    }

    /// Set a driver option by flag name.
    pub fn driver_option(&mut self, flag: &str, value: OptionValue) -> &mut Self {
        self.driver_options
            .push((flag.trim_start_matches('-').to_string(), value));
        self
    }

    /// Set an engine flag by name (one of [`engine_options`]); list flags append.
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

/// Timeouts and SSH settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub ssh: SshConfig,
    /// How long to wait for a new machine to reach Running.
    pub running_timeout: Duration,
    /// How long to wait for the daemon to answer over TLS after (re)starting it.
    pub engine_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ssh: SshConfig::default(),
            running_timeout: Duration::from_secs(300),
            engine_timeout: Duration::from_secs(120),
        }
    }
}

/// The machines of one store, with the drivers and provisioners that serve them.
#[derive(Debug, Clone)]
pub struct Store {
    files: FileStore,
    drivers: DriverRegistry,
    provisioners: ProvisionerSet,
    settings: Settings,
}

/// One row of a listing: the same fields as `ls`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListEntry {
    pub name: String,
    pub driver_name: String,
    pub state: State,
    pub url: String,
    pub swarm: String,
    pub docker_version: String,
    pub error: String,
    /// How long querying this machine took, in milliseconds.
    pub response_time_ms: u64,
}

impl Store {
    /// A store over `files` using `drivers`.
    pub fn new(files: FileStore, drivers: DriverRegistry) -> Self {
        Store {
            files,
            drivers,
            provisioners: ProvisionerSet::builtin(),
            settings: Settings::default(),
        }
    }
    /// The store at `path`, or at `MACHINE_STORAGE_PATH`, or at
    /// `~/.docker/machine`; [`StoreError::NoLocation`] when none is set.
    pub fn open(path: Option<PathBuf>, drivers: DriverRegistry) -> Result<Self, StoreError> {
        let root = path
            .or_else(|| {
                let env = std::env::var("MACHINE_STORAGE_PATH").ok();
                let home = std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(PathBuf::from);
                FileStore::default_root(env.as_deref(), home.as_deref())
            })
            .ok_or(StoreError::NoLocation)?;
        Ok(Store::new(FileStore::new(root), drivers))
    }

    /// Replace the timeouts and SSH settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }
    /// Replace the provisioners.
    pub fn with_provisioners(mut self, p: ProvisionerSet) -> Self {
        self.provisioners = p;
        self
    }
    /// The file store underneath.
    pub fn files(&self) -> &FileStore {
        &self.files
    }
    /// The driver registry.
    pub fn drivers(&self) -> &DriverRegistry {
        &self.drivers
    }
    /// The driver registry, to add drivers.
    pub fn drivers_mut(&mut self) -> &mut DriverRegistry {
        &mut self.drivers
    }
    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Machine names, sorted case-insensitively.
    pub fn names(&self) -> Result<Vec<String>, HostError> {
        Ok(self.files.names()?)
    }

    fn context(&self, name: &str) -> DriverContext {
        DriverContext {
            machine_name: name.to_string(),
            store_root: self.files.root().to_path_buf(),
            machine_dir: self.files.machine_dir(name),
        }
    }

    /// Load the machine `name`.
    pub fn get(&self, name: &str) -> Result<Host, HostError> {
        let config = self.files.load(name)?;
        let driver = self
            .drivers
            .get(&config.driver_name)
            .and_then(|f| f.load_driver(&self.context(name), &config.driver))
            .map_err(|source| HostError::Driver {
                name: name.to_string(),
                source,
            })?;
        Ok(Host {
            config,
            driver,
            store: self.clone(),
            new_machine: false,
        })
    }

    /// Make sure the CA and client certificate exist (under the store lock).
    pub fn bootstrap_certs(&self, alg: KeyAlgorithm) -> Result<cert::BootstrapOutcome, HostError> {
        let _lock = self.files.lock_store()?;
        cert::bootstrap(
            &CertPaths::in_dir(&self.files.certs_dir()),
            &cert::default_org(),
            alg,
        )
        .map_err(|source| HostError::Cert {
            name: String::new(),
            source: Box::new(source),
        })
    }

    /// Create a machine: certificates, pre-create check, claim the name, let the
    /// driver create it, wait until it runs, provision Docker and wait until the
    /// daemon answers over TLS. When a step after the name claim fails, the
    /// machine stays in the store with the failure recorded (its state reads
    /// Error) so that `remove` can clean it up.
    pub async fn create(
        &self,
        name: &str,
        opts: CreateOptions,
        progress: Progress<'_>,
    ) -> Result<Host, HostError> {
        FileStore::validate_name(name)?;
        opts.engine.validate()?;
        if self.files.exists(name) {
            return Err(StoreError::AlreadyExists {
                name: name.to_string(),
            }
            .into());
        }
        let drv_err = |source| HostError::Driver {
            name: name.to_string(),
            source,
        };
        let factory = self.drivers.get(&opts.driver).map_err(drv_err)?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let no_env = |_: &str| None;
        let env_fn: &dyn Fn(&str) -> Option<String> =
            if opts.use_environment { &env } else { &no_env };
        let resolved = DriverOptions::resolve(
            &opts.driver,
            &factory.options(),
            opts.driver_options.clone(),
            env_fn,
        )
        .map_err(drv_err)?;
        progress("Creating CA and client certificates");
        self.bootstrap_certs(opts.key_algorithm)?;
        let ctx = self.context(name);
        let driver = factory.new_driver(&ctx, &resolved).map_err(drv_err)?;
        progress("Running pre-create checks");
        driver.pre_create_check().await.map_err(drv_err)?;

        let mut config = HostConfig::new(name, &opts.driver, self.files.root());
        config.host_options.engine_options = opts.engine.clone();
        config.host_options.auth_options.server_cert_sans = Some(opts.tls_san.clone());
        config.driver = driver.saved_state().map_err(drv_err)?;
        // lock first: a remove of the same name waits until create is done
        let _lock = self.files.lock_machine(name)?;
        self.files.create(&config)?;
        let mut host = Host {
            config,
            driver,
            store: self.clone(),
            new_machine: true,
        };
        let result = host.finish_create(opts.key_algorithm, progress).await;
        match result {
            Ok(()) => {
                host.clear_error();
                progress("Docker is up and running!");
                Ok(host)
            }
            Err(e) => {
                host.record_error(&e);
                Err(e)
            }
        }
    }

    /// Remove the machine: the driver removes what it made, then the store entry
    /// goes. With `force`, the store entry goes even when the driver fails.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), HostError> {
        let _lock = self.files.lock_machine(name)?;
        match self.get(name) {
            Ok(mut host) => {
                if let Err(source) = host.driver.remove().await {
                    if !force {
                        return Err(HostError::Driver {
                            name: name.to_string(),
                            source,
                        });
                    }
                    tracing::warn!(machine = name, error = %source, "driver failed to remove the machine; removing it from the store anyway");
                }
            }
            Err(e) if !force => return Err(e),
            Err(_) => {}
        }
        Ok(self.files.remove(name)?)
    }

    /// Query every machine at once, each bounded by `timeout`; the listing takes
    /// about as long as the slowest machine and never much more than `timeout`.
    pub async fn list(&self, timeout: Duration) -> Result<Vec<ListEntry>, HostError> {
        let names = self.files.names()?;
        let mut set = tokio::task::JoinSet::new();
        for (i, name) in names.iter().enumerate() {
            let store = self.clone();
            let name = name.clone();
            set.spawn(async move { (i, store.list_one(&name, timeout).await) });
        }
        let mut rows: Vec<Option<ListEntry>> = vec![None; names.len()];
        while let Some(r) = set.join_next().await {
            if let Ok((i, entry)) = r {
                rows[i] = Some(entry);
            }
        }
        Ok(rows
            .into_iter()
            .zip(names)
            .map(|(r, name)| {
                r.unwrap_or_else(|| ListEntry {
                    name,
                    driver_name: String::new(),
                    state: State::Error,
                    url: String::new(),
                    swarm: String::new(),
                    docker_version: "Unknown".into(),
                    error: "internal error while querying the machine".into(),
                    response_time_ms: 0,
                })
            })
            .collect())
    }

    async fn list_one(&self, name: &str, timeout: Duration) -> ListEntry {
        let start = Instant::now();
        let mut e = ListEntry {
            name: name.to_string(),
            driver_name: String::new(),
            state: State::Error,
            url: String::new(),
            swarm: String::new(),
            docker_version: "Unknown".into(),
            error: String::new(),
            response_time_ms: 0,
        };
        // Loading runs the driver's factory, which may be foreign code (Python,
        // JavaScript) that blocks: off the async threads, and within the timeout.
        let store = self.clone();
        let owned = name.to_string();
        let load = tokio::task::spawn_blocking(move || store.get(&owned));
        let host = match tokio::time::timeout(timeout, load).await {
            Ok(Ok(Ok(h))) => h,
            Ok(Ok(Err(err))) => {
                e.driver_name = "not found".into();
                e.error = error_chain(&err);
                return e;
            }
            Ok(Err(join)) => {
                e.driver_name = "not found".into();
                e.error = format!("loading the machine failed: {join}");
                return e;
            }
            Err(_) => {
                e.state = State::Timeout;
                e.error = format!(
                    "loading the machine's driver took longer than {} s",
                    timeout.as_secs()
                );
                e.response_time_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                return e;
            }
        };
        e.driver_name = host.driver_name().to_string();
        let remaining = timeout.saturating_sub(start.elapsed());
        let q = async {
            let state = host.state().await?;
            e.state = state;
            if state == State::Running {
                e.url = host.url().await?;
                let v = host.docker_version(timeout).await?;
                e.docker_version = format!("v{}", v.version);
            }
            Ok::<(), HostError>(())
        };
        match tokio::time::timeout(remaining, q).await {
            Ok(Ok(())) => {
                if let Some(msg) = host.last_error() {
                    e.state = State::Error;
                    e.error = msg;
                }
            }
            Ok(Err(err)) => {
                if let HostError::Engine {
                    source: EngineError::Timeout { .. },
                    ..
                } = err
                {
                    e.state = State::Timeout;
                }
                e.error = error_chain(&err)
            }
            Err(_) => {
                e.state = State::Timeout;
                e.error = format!("no answer within {} s", timeout.as_secs());
            }
        }
        e.response_time_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        e
    }
}

/// An error with its sources, joined by `: `.
///
/// Errors often quote what a machine said (a step's stderr, a daemon's log
/// tail): control characters other than line breaks and tabs are shown as
/// `?`, so a remote escape sequence never reaches a terminal raw.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    printable(&s)
}

/// `text` with control characters other than `\n` and `\t` replaced by `?`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// A named machine: its driver plus engine, swarm and TLS options.
#[derive(Debug)]
pub struct Host {
    config: HostConfig,
    driver: Box<dyn Driver>,
    store: Store,
    /// A first SSH contact is expected (during create): pinning the host
    /// key then is routine, not worth a warning.
    new_machine: bool,
}

impl Host {
    /// The machine's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }
    /// The driver's name.
    pub fn driver_name(&self) -> &str {
        &self.config.driver_name
    }
    /// The saved configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }
    /// The driver.
    pub fn driver(&self) -> &dyn Driver {
        self.driver.as_ref()
    }
    /// The machine's directory.
    pub fn dir(&self) -> PathBuf {
        self.store.files.machine_dir(self.name())
    }

    fn drv(&self, source: DriverError) -> HostError {
        HostError::Driver {
            name: self.name().to_string(),
            source,
        }
    }
    fn io(&self, path: &Path, source: std::io::Error) -> HostError {
        HostError::Io {
            name: self.name().to_string(),
            path: path.to_path_buf(),
            source,
        }
    }
    fn cert_err(&self, source: CertError) -> HostError {
        HostError::Cert {
            name: self.name().to_string(),
            source: Box::new(source),
        }
    }

    /// The failure recorded by the last create or provision, if it failed.
    pub fn last_error(&self) -> Option<String> {
        std::fs::read_to_string(self.dir().join(ERROR_FILE))
            .ok()
            .map(|s| printable(s.trim()))
            .filter(|s| !s.is_empty())
    }
    fn record_error(&self, e: &HostError) {
        let p = self.dir().join(ERROR_FILE);
        if let Err(err) = crate::fsutil::write_atomic(&p, error_chain(e).as_bytes(), 0o600) {
            tracing::warn!(path = %p.display(), error = %err, "cannot record the failure");
        }
    }
    fn clear_error(&self) {
        let _ = std::fs::remove_file(self.dir().join(ERROR_FILE));
    }

    /// Read the configuration and the driver's state again from the store
    /// (under the machine's lock, before changing anything: another process
    /// may have changed or removed the machine since this `Host` was loaded).
    fn reload(&mut self) -> Result<(), HostError> {
        let fresh = self.store.get(self.name())?;
        self.config = fresh.config;
        self.driver = fresh.driver;
        Ok(())
    }

    /// Save the configuration (the driver's state included).
    pub fn save(&mut self) -> Result<(), HostError> {
        let mut fresh = self.driver.saved_state().map_err(|e| self.drv(e))?;
        crate::config::keep_unknown_fields(&mut fresh, &self.config.driver);
        self.config.driver = fresh;
        self.store.files.save(&self.config)?;
        Ok(())
    }

    /// The state: the driver's, or Error when the last create or provision failed.
    pub async fn state(&self) -> Result<State, HostError> {
        if self.last_error().is_some() {
            return Ok(State::Error);
        }
        self.driver.state().await.map_err(|e| self.drv(e))
    }
    /// The machine's IP address or host name.
    pub async fn ip(&self) -> Result<String, HostError> {
        self.driver.ip().await.map_err(|e| self.drv(e))
    }
    /// The Docker daemon's URL.
    pub async fn url(&self) -> Result<String, HostError> {
        self.driver.url().await.map_err(|e| self.drv(e))
    }

    /// Where the client certificates for this machine live (`DOCKER_CERT_PATH`).
    pub fn cert_path(&self) -> PathBuf {
        self.dir()
    }

    fn read(&self, p: &Path) -> Result<String, HostError> {
        std::fs::read_to_string(p).map_err(|e| self.io(p, e))
    }

    /// rustls client configuration with this machine's client certificate.
    pub fn tls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, HostError> {
        let d = self.cert_path();
        let (ca, cert, key) = (
            self.read(&d.join("ca.pem"))?,
            self.read(&d.join("cert.pem"))?,
            self.read(&d.join("key.pem"))?,
        );
        cert::client_tls_config(&ca, &cert, &key).map_err(|e| self.cert_err(e))
    }

    /// Check locally, without dialing the daemon, that the machine's server
    /// certificate chains to its CA, covers its address and is unexpired.
    pub async fn check_certs(&self) -> Result<(), HostError> {
        let url = self.url().await?;
        let host = engine::parse_tcp_url(&url)
            .map(|(h, _)| h)
            .unwrap_or_default();
        let d = self.cert_path();
        let server = d.join("server.pem");
        if !server.exists() && !self.driver.needs_provisioning() {
            return Ok(());
        }
        let (ca, srv) = (self.read(&d.join("ca.pem"))?, self.read(&server)?);
        cert::verify_server_cert(&ca, &srv, &host, SystemTime::now()).map_err(|source| {
            HostError::CertCheck {
                name: self.name().to_string(),
                address: host.clone(),
                source: Box::new(source),
            }
        })
    }

    /// The `DOCKER_*` variables for this machine, after the local certificate check.
    pub async fn env(&self) -> Result<MachineEnv, HostError> {
        self.check_certs().await?;
        let url = self.url().await?;
        Ok(MachineEnv::new(
            self.name(),
            &url,
            &self.cert_path().to_string_lossy(),
            // the daemon we provision always verifies clients
            true,
        ))
    }

    /// The environment as shell text, per `opts` (see [`crate::env::render`]).
    pub async fn env_text(&self, opts: &EnvOptions) -> Result<String, HostError> {
        let shell = opts.shell.unwrap_or(crate::env::Shell::Bash);
        let bad = |e: crate::env::EnvError| HostError::InvalidOption {
            flag: "shell".into(),
            value: shell.to_string(),
            reason: e.to_string(),
        };
        let hint = opts.hint_command.as_deref();
        if opts.unset {
            let lower_set = opts
                .no_proxy_lower
                .as_deref()
                .is_some_and(|v| !v.is_empty());
            let u = MachineEnv::unset(opts.no_proxy, lower_set);
            return crate::env::render_unset(&u.clear, shell, hint).map_err(bad);
        }
        let mut env = self.env().await?;
        if opts.no_proxy {
            let ip = self.ip().await?;
            env = env.with_no_proxy(
                &ip,
                opts.no_proxy_lower.as_deref(),
                opts.no_proxy_upper.as_deref(),
            );
        }
        crate::env::render(&env, shell, hint).map_err(bad)
    }

    /// The `docker` client flags for this machine, one per element, as `config` prints them.
    pub async fn config_flags(&self) -> Result<Vec<String>, HostError> {
        self.check_certs().await?;
        let d = self.cert_path();
        let url = self.url().await?;
        Ok(vec![
            "--tlsverify".to_string(),
            format!("--tlscacert=\"{}\"", d.join("ca.pem").display()),
            format!("--tlscert=\"{}\"", d.join("cert.pem").display()),
            format!("--tlskey=\"{}\"", d.join("key.pem").display()),
            format!("-H={url}"),
        ])
    }

    /// Ask the daemon for its version over mutual TLS.
    pub async fn docker_version(&self, timeout: Duration) -> Result<EngineVersion, HostError> {
        let url = self.url().await?;
        let (h, p) = engine::parse_tcp_url(&url).ok_or_else(|| HostError::InvalidOption {
            flag: "url".into(),
            value: url.clone(),
            reason: "expected tcp://HOST:PORT".into(),
        })?;
        let tls = self.tls_client_config()?;
        engine::version(&h, p, tls, timeout)
            .await
            .map_err(|source| HostError::Engine {
                name: self.name().to_string(),
                log_tail: String::new(),
                source,
            })
    }

    /// Open one SSH connection to the machine, pinning its host key on first use.
    pub async fn connect(&self) -> Result<SshClient, HostError> {
        let target = self.driver.ssh_target().ok_or_else(|| HostError::NoSsh {
            name: self.name().to_string(),
            driver: self.driver_name().to_string(),
        })?;
        let ssh = |source| HostError::Ssh {
            name: self.name().to_string(),
            source,
        };
        crate::ssh::check_user(&target.user).map_err(ssh)?;
        crate::ssh::check_host(&target.host).map_err(ssh)?;
        let dir = self.dir();
        // The pin belongs to the machine, not to an address: a VM whose forwarded
        // port changed keeps its pin, and the file is rewritten for the new address.
        let pin = known_hosts::read_machine(&dir).map_err(ssh)?;
        let want = known_hosts::host_pattern(&target.host, target.port);
        let check = match &pin {
            Some((_, key)) => HostKeyCheck::Pinned(key.clone()),
            None => HostKeyCheck::TrustOnFirstUse,
        };
        let client = SshClient::connect(&target, &check, &self.store.settings.ssh)
            .await
            .map_err(ssh)?;
        if pin.is_none() && !client.host_key().is_empty() {
            let fp = crate::ssh::client::fingerprint(client.host_key());
            if self.new_machine {
                tracing::info!(machine = self.name(), fingerprint = %fp, "pinning the SSH host key");
            } else {
                // an imported or edited machine: say what is being trusted
                tracing::warn!(
                    "machine {}: no SSH host key was pinned; pinning {fp} as presented by {}:{}",
                    self.name(),
                    target.host,
                    target.port
                );
            }
        }
        let stale = pin.as_ref().is_some_and(|(pattern, _)| *pattern != want);
        if (pin.is_none() || stale) && !client.host_key().is_empty() {
            known_hosts::write(&dir, &target.host, target.port, client.host_key()).map_err(ssh)?;
        }
        Ok(client)
    }

    /// Forget the pinned SSH host key; the next connection pins what it is shown.
    pub fn forget_host_key(&self) -> Result<(), HostError> {
        known_hosts::forget(&self.dir()).map_err(|source| HostError::Ssh {
            name: self.name().to_string(),
            source,
        })
    }

    /// Run a command over SSH.
    pub async fn ssh(&self, command: &str) -> Result<Output, HostError> {
        let c = self.connect().await?;
        let out = c.run(command).await.map_err(|source| HostError::Ssh {
            name: self.name().to_string(),
            source,
        });
        c.close().await;
        out
    }

    /// Copy a local file to the machine (mode taken from the local file).
    pub async fn copy_to(&self, local: &Path, remote: &str) -> Result<(), HostError> {
        use std::os::unix::fs::PermissionsExt;
        let bytes = std::fs::read(local).map_err(|e| self.io(local, e))?;
        let mode = std::fs::metadata(local)
            .map_err(|e| self.io(local, e))?
            .permissions()
            .mode()
            & 0o7777;
        let c = self.connect().await?;
        let r = c
            .write_file(remote, &bytes, mode)
            .await
            .map_err(|source| HostError::Ssh {
                name: self.name().to_string(),
                source,
            });
        c.close().await;
        r
    }

    /// Copy a file from the machine to `local`, streaming; the copy keeps the
    /// remote file's permission bits (0600 when unknown).
    pub async fn copy_from(&self, remote: &str, local: &Path) -> Result<(), HostError> {
        let c = self.connect().await?;
        let r = c
            .download(remote, local)
            .await
            .map_err(|source| HostError::Ssh {
                name: self.name().to_string(),
                source,
            });
        c.close().await;
        r.map(|_| ())
    }

    async fn wait_running(&self, progress: Progress<'_>) -> Result<(), HostError> {
        progress("Waiting for the machine to be running");
        let limit = self.store.settings.running_timeout;
        let deadline = Instant::now() + limit;
        loop {
            let st = self.driver.state().await.map_err(|e| self.drv(e))?;
            if st == State::Running {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HostError::Timeout {
                    name: self.name().to_string(),
                    what: format!("reaching state Running (last state {st})"),
                    seconds: limit.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn finish_create(
        &mut self,
        alg: KeyAlgorithm,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        progress("Creating machine");
        crate::progress::forward(progress, self.driver.create())
            .await
            .map_err(|e| self.drv(e))?;
        self.save()?;
        self.wait_running(progress).await?;
        self.copy_client_certs()?;
        if self.driver.needs_provisioning() {
            self.provision_with(alg, progress).await?;
        }
        Ok(())
    }

    fn copy_client_certs(&self) -> Result<(), HostError> {
        let certs = self.store.files.certs_dir();
        let dir = self.dir();
        for (from, to) in [
            ("ca.pem", "ca.pem"),
            ("cert.pem", "cert.pem"),
            ("key.pem", "key.pem"),
        ] {
            let src = certs.join(from);
            let dst = dir.join(to);
            let bytes = std::fs::read(&src).map_err(|e| self.io(&src, e))?;
            crate::fsutil::write_atomic(&dst, &bytes, 0o600).map_err(|e| self.io(&dst, e))?;
        }
        Ok(())
    }

    /// Make and save a new server certificate for the machine's current address.
    fn issue_server_cert(
        &mut self,
        ip: &str,
        alg: KeyAlgorithm,
    ) -> Result<(String, String, String), HostError> {
        let certs = CertPaths::in_dir(&self.store.files.certs_dir());
        let ca = CertificateAuthority::load(&certs.ca_cert, &certs.ca_key)
            .map_err(|e| self.cert_err(e))?;
        let mut sans: Vec<String> = self
            .config
            .host_options
            .auth_options
            .server_cert_sans
            .clone()
            .unwrap_or_default();
        for extra in [ip.to_string(), "localhost".to_string()] {
            if !sans.contains(&extra) {
                sans.push(extra);
            }
        }
        let org = format!("{}.{}", cert::default_org(), self.name());
        let bundle = ca
            .issue_server(&org, &sans, alg)
            .map_err(|e| self.cert_err(e))?;
        let dir = self.dir();
        let (cp, kp) = (dir.join("server.pem"), dir.join("server-key.pem"));
        crate::fsutil::write_atomic(&cp, bundle.cert_pem.as_bytes(), 0o600)
            .map_err(|e| self.io(&cp, e))?;
        crate::fsutil::write_atomic(&kp, bundle.key_pem.as_bytes(), 0o600)
            .map_err(|e| self.io(&kp, e))?;
        Ok((ca.cert_pem().to_string(), bundle.cert_pem, bundle.key_pem))
    }

    async fn provision_with(
        &mut self,
        alg: KeyAlgorithm,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        // config.json may have been edited since create: check again
        self.config
            .host_options
            .engine_options
            .validate()
            .map_err(HostError::from)?;
        let ip = self.ip().await?;
        progress("Generating the server certificate");
        let (ca_pem, server_cert_pem, server_key_pem) = self.issue_server_cert(&ip, alg)?;
        {
            let a = &mut self.config.host_options.auth_options;
            a.ca_cert_remote_path = provision::engine::REMOTE_CA.into();
            a.server_cert_remote_path = provision::engine::REMOTE_SERVER_CERT.into();
            a.server_key_remote_path = provision::engine::REMOTE_SERVER_KEY.into();
        }
        self.save()?;
        let req = ProvisionRequest {
            hostname: self.name().to_string(),
            driver_name: self.driver_name().to_string(),
            engine: self.config.host_options.engine_options.clone(),
            engine_port: self.driver.engine_port(),
            ca_pem,
            server_cert_pem,
            server_key_pem,
        };
        // A connection lost mid-way is retried once on a new connection (the
        // steps are idempotent); connecting again is itself bounded by the
        // SSH settings' attempts and deadlines.
        let mut retried = false;
        loop {
            progress("Connecting over SSH");
            let client = self.connect().await?;
            let result = self.provision_over(&client, &req, progress).await;
            client.close().await;
            match result {
                Err(HostError::Provision {
                    source: ProvisionError::Transport { .. },
                    ..
                }) if !retried => {
                    retried = true;
                    progress("Connection lost; reconnecting");
                }
                r => return r,
            }
        }
    }

    async fn provision_over(
        &self,
        client: &SshClient,
        req: &ProvisionRequest,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        let report = provision::provision(client, &self.store.provisioners, req, progress)
            .await
            .map_err(|source| HostError::Provision {
                name: self.name().to_string(),
                source,
            })?;
        progress("Waiting for the Docker daemon to answer over TLS");
        let limit = self.store.settings.engine_timeout;
        let deadline = Instant::now() + limit;
        loop {
            let attempt = self.docker_version(Duration::from_secs(10)).await;
            match attempt {
                Ok(_) => return Ok(()),
                Err(HostError::Engine { source, .. }) if Instant::now() >= deadline => {
                    let tail = client
                        .run(&report.log_command)
                        .await
                        .map(|o| o.stdout_text())
                        .unwrap_or_default();
                    return Err(HostError::Engine {
                        name: self.name().to_string(),
                        log_tail: tail,
                        source,
                    });
                }
                Err(HostError::Engine { .. }) => {
                    // A daemon usually answers within a second of starting: poll
                    // quickly at first, then back off.
                    let waited =
                        limit.saturating_sub(deadline.saturating_duration_since(Instant::now()));
                    let pause = if waited < Duration::from_secs(5) {
                        100
                    } else {
                        500
                    };
                    tokio::time::sleep(Duration::from_millis(pause)).await
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Provision again: re-detect the OS, install Docker if missing, rewrite the
    /// daemon configuration with a fresh server certificate and restart it.
    pub async fn provision(&mut self, progress: Progress<'_>) -> Result<(), HostError> {
        let _lock = self.store.files.lock_machine(self.name())?;
        self.reload()?;
        self.provision_locked(progress).await
    }

    async fn provision_locked(&mut self, progress: Progress<'_>) -> Result<(), HostError> {
        self.copy_client_certs()?;
        let r = self.provision_with(self.key_algorithm(), progress).await;
        match &r {
            Ok(()) => self.clear_error(),
            Err(e) => self.record_error(e),
        }
        r
    }

    /// Upgrade Docker: run the install method again (the install script, or the
    /// distribution's package), then restart the daemon with our configuration.
    pub async fn upgrade(&mut self, progress: Progress<'_>) -> Result<(), HostError> {
        let _lock = self.store.files.lock_machine(self.name())?;
        self.reload()?;
        let client = self.connect().await?;
        let prov_err = |source| HostError::Provision {
            name: self.name().to_string(),
            source,
        };
        let r = async {
            let facts = provision::probe(&client).await.map_err(prov_err)?;
            let p = self
                .store
                .provisioners
                .detect(&facts.os)
                .map_err(prov_err)?;
            let method = provision::InstallMethod::from_install_url(
                &self.config.host_options.engine_options.install_url,
            );
            let steps = p.install_steps(&facts, &method).map_err(prov_err)?;
            progress("Upgrading Docker");
            provision::run_steps(&client, &steps, facts.is_root, progress)
                .await
                .map_err(prov_err)
        }
        .await;
        client.close().await;
        r?;
        self.provision_locked(progress).await
    }

    fn key_algorithm(&self) -> KeyAlgorithm {
        let p = self.dir().join("server-key.pem");
        match std::fs::read_to_string(p) {
            Ok(k) if k.contains("RSA PRIVATE KEY") => KeyAlgorithm::Rsa2048,
            Ok(k) if k.contains("EC PRIVATE KEY") => KeyAlgorithm::EcdsaP256,
            _ => KeyAlgorithm::default(),
        }
    }

    /// Make a new server certificate and restart the daemon with it. With
    /// `client_certs`, the CA and client certificate are made anew first (every
    /// machine of the store must then be regenerated too).
    pub async fn regenerate_certs(
        &mut self,
        client_certs: bool,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        if client_certs {
            progress("Regenerating the CA and client certificates");
            let _lock = self.store.files.lock_store()?;
            let certs = CertPaths::in_dir(&self.store.files.certs_dir());
            cert::regenerate(&certs, &cert::default_org(), self.key_algorithm())
                .map_err(|e| self.cert_err(e))?;
        }
        self.provision(progress).await
    }

    /// Start the machine (driver-dependent).
    pub async fn start(&mut self) -> Result<(), HostError> {
        let _lock = self.store.files.lock_machine(self.name())?;
        self.reload()?;
        self.driver.start().await.map_err(|e| self.drv(e))?;
        self.save()
    }
    /// Stop the machine (driver-dependent).
    pub async fn stop(&mut self) -> Result<(), HostError> {
        let _lock = self.store.files.lock_machine(self.name())?;
        self.reload()?;
        self.driver.stop().await.map_err(|e| self.drv(e))?;
        self.save()
    }
    /// Restart the machine (driver-dependent).
    pub async fn restart(&mut self) -> Result<(), HostError> {
        let _lock = self.store.files.lock_machine(self.name())?;
        self.reload()?;
        self.driver.restart().await.map_err(|e| self.drv(e))?;
        self.save()
    }
    /// Kill the machine (driver-dependent).
    pub async fn kill(&mut self) -> Result<(), HostError> {
        let _lock = self.store.files.lock_machine(self.name())?;
        self.reload()?;
        self.driver.kill().await.map_err(|e| self.drv(e))?;
        self.save()
    }
}
