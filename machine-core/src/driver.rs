//! Drivers: what creates, removes and reports on the machine underneath a host.
//!
//! A driver is kept small: seven required methods (name, create, remove, state,
//! ip, ssh target, saved state). Lifecycle operations a driver may not support
//! (start, stop, restart, kill) default to [`DriverError::NotSupported`].
//!
//! A driver's create options are data ([`DriverOption`]): flag name, kind, default,
//! environment variable and help. The CLI turns them into `--<flag>` arguments and
//! the bindings accept the same flag names as dictionary keys, so one set of
//! documentation serves every language.
//!
//! Drivers are built by a [`DriverFactory`] found by name in a [`DriverRegistry`].
//! The registry is a plain value owned by the embedding program: the built-in
//! drivers and any the program adds, with no global state.

use crate::config::BaseDriver;
use crate::state::State;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// The driver `create` uses when none is named, in every front end (the CLI,
/// Python, Node): a local VM, as the original's default (VirtualBox) was.
pub const DEFAULT_DRIVER: &str = "qemu";

/// Everything that can go wrong in a driver or while resolving its options.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The driver cannot perform this operation at all.
    #[error("driver {driver} does not support {operation}")]
    NotSupported { driver: String, operation: String },
    /// No driver of that name is registered.
    #[error("no driver named {name:?} (known drivers: {known})")]
    UnknownDriver { name: String, known: String },
    /// Neither a registered driver nor a plugin executable of that name exists.
    #[error("no driver named {name:?}: not built in (known drivers: {known}) and no plugin executable {executable:?} on PATH")]
    PluginNotFound {
        name: String,
        executable: String,
        known: String,
    },
    /// A required option was not given.
    #[error("driver {driver} needs option {flag}")]
    MissingOption { driver: String, flag: String },
    /// An option the driver does not declare.
    #[error("driver {driver} has no option {flag}")]
    UnknownOption { driver: String, flag: String },
    /// An option value that does not fit the option's kind or rules.
    #[error("invalid value {value:?} for option {flag} of driver {driver}: {reason}")]
    InvalidOption {
        driver: String,
        flag: String,
        value: String,
        reason: String,
    },
    /// The pre-create check refused (the original exits with status 3 for this).
    #[error("pre-create check of driver {driver} failed: {reason}")]
    PreCreateCheck { driver: String, reason: String },
    /// The saved driver state in config.json does not fit this driver.
    #[error("saved state of driver {driver} cannot be read")]
    BadSavedState {
        driver: String,
        #[source]
        source: serde_json::Error,
    },
    /// Any other failure of the driver, with what it was doing.
    #[error("driver {driver} failed to {operation}: {message}")]
    Failed {
        driver: String,
        operation: String,
        message: String,
    },
    /// A failure from a lower layer, with what the driver was doing.
    #[error("driver {driver} failed to {operation}")]
    Source {
        driver: String,
        operation: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The kind of value an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionKind {
    String,
    Int,
    Bool,
    /// Repeatable flag; collects a list of strings.
    StringList,
}

/// A value for a driver option.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    Bool(bool),
    Int(i64),
    String(String),
    List(Vec<String>),
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Bool(b) => write!(f, "{b}"),
            OptionValue::Int(i) => write!(f, "{i}"),
            OptionValue::String(s) => f.write_str(s),
            OptionValue::List(l) => f.write_str(&l.join(",")),
        }
    }
}

/// One create option a driver declares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DriverOption {
    /// Flag name without dashes, e.g. `generic-ip-address`.
    pub flag: String,
    pub kind: OptionKind,
    /// Default as the user would type it (`None`: no default).
    pub default: Option<String>,
    /// Environment variable read when the option is not given, e.g. `GENERIC_IP_ADDRESS`.
    pub env_var: Option<String>,
    pub help: String,
    /// Creation fails with [`DriverError::MissingOption`] when no value is found.
    pub required: bool,
}

impl DriverOption {
    /// An option of `kind` named `flag`.
    pub fn new(flag: &str, kind: OptionKind, help: &str) -> Self {
        DriverOption {
            flag: flag.to_string(),
            kind,
            default: None,
            env_var: None,
            help: help.to_string(),
            required: false,
        }
    }
    /// Set the default value.
    pub fn default_value(mut self, v: &str) -> Self {
        self.default = Some(v.to_string());
        self
    }
    /// Set the environment variable.
    pub fn env(mut self, var: &str) -> Self {
        self.env_var = Some(var.to_string());
        self
    }
    /// Mark as required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    fn parse(&self, driver: &str, raw: &str) -> Result<OptionValue, DriverError> {
        let bad = |reason: &str| DriverError::InvalidOption {
            driver: driver.to_string(),
            flag: self.flag.clone(),
            value: raw.to_string(),
            reason: reason.to_string(),
        };
        Ok(match self.kind {
            OptionKind::String => OptionValue::String(raw.to_string()),
            OptionKind::Int => OptionValue::Int(
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| bad("expected a whole number"))?,
            ),
            OptionKind::Bool => OptionValue::Bool(match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => return Err(bad("expected true or false")),
            }),
            OptionKind::StringList => OptionValue::List(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
        })
    }

    fn coerce(&self, driver: &str, v: OptionValue) -> Result<OptionValue, DriverError> {
        match (self.kind, v) {
            (OptionKind::String, OptionValue::String(s)) => Ok(OptionValue::String(s)),
            (OptionKind::Int, OptionValue::Int(i)) => Ok(OptionValue::Int(i)),
            (OptionKind::Bool, OptionValue::Bool(b)) => Ok(OptionValue::Bool(b)),
            (OptionKind::StringList, OptionValue::List(l)) => Ok(OptionValue::List(l)),
            (OptionKind::StringList, OptionValue::String(s)) => Ok(OptionValue::List(vec![s])),
            (_, OptionValue::String(s)) => self.parse(driver, &s),
            (_, other) => self.parse(driver, &other.to_string()),
        }
    }
}

/// Resolved option values of one driver, keyed by flag name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverOptions {
    driver: String,
    values: BTreeMap<String, OptionValue>,
}

impl DriverOptions {
    /// Resolve values for `driver` from what was `given` (flag name to value), then
    /// the environment (through `env`, so callers decide what the environment is),
    /// then defaults. Unknown flags, values of the wrong kind and missing required
    /// options are errors naming the flag.
    pub fn resolve(
        driver: &str,
        declared: &[DriverOption],
        given: impl IntoIterator<Item = (String, OptionValue)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, DriverError> {
        let mut given: BTreeMap<String, OptionValue> = given
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches('-').to_string(), v))
            .collect();
        let mut values = BTreeMap::new();
        for opt in declared {
            let value = if let Some(v) = given.remove(&opt.flag) {
                Some(opt.coerce(driver, v)?)
            } else if let Some(raw) = opt.env_var.as_deref().and_then(env) {
                Some(opt.parse(driver, &raw)?)
            } else if let Some(d) = &opt.default {
                Some(opt.parse(driver, d)?)
            } else {
                None
            };
            match value {
                Some(v) => {
                    values.insert(opt.flag.clone(), v);
                }
                None if opt.required => {
                    return Err(DriverError::MissingOption {
                        driver: driver.to_string(),
                        flag: opt.flag.clone(),
                    })
                }
                None => {}
            }
        }
        if let Some(flag) = given.into_keys().next() {
            return Err(DriverError::UnknownOption {
                driver: driver.to_string(),
                flag,
            });
        }
        Ok(DriverOptions {
            driver: driver.to_string(),
            values,
        })
    }

    /// The raw value of `flag`.
    pub fn get(&self, flag: &str) -> Option<&OptionValue> {
        self.values.get(flag)
    }
    /// A string option (empty when unset).
    pub fn string(&self, flag: &str) -> String {
        match self.values.get(flag) {
            Some(OptionValue::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }
    /// An integer option, `None` when unset.
    pub fn int(&self, flag: &str) -> Option<i64> {
        match self.values.get(flag) {
            Some(OptionValue::Int(i)) => Some(*i),
            _ => None,
        }
    }
    /// A boolean option (false when unset).
    pub fn bool(&self, flag: &str) -> bool {
        matches!(self.values.get(flag), Some(OptionValue::Bool(true)))
    }
    /// A list option (empty when unset).
    pub fn list(&self, flag: &str) -> Vec<String> {
        match self.values.get(flag) {
            Some(OptionValue::List(l)) => l.clone(),
            Some(OptionValue::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
    /// A port option checked to be in 1..=65535.
    pub fn port(&self, flag: &str) -> Result<Option<u16>, DriverError> {
        match self.int(flag) {
            None => Ok(None),
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .map(Some)
                .ok_or_else(|| DriverError::InvalidOption {
                    driver: self.driver.clone(),
                    flag: flag.to_string(),
                    value: p.to_string(),
                    reason: "expected a port between 1 and 65535".to_string(),
                }),
        }
    }
    /// The values as a JSON object keyed by flag name (what drivers written in
    /// other languages receive).
    pub fn to_json_map(&self) -> Map<String, Value> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect()
    }

    /// Iterate over (flag, value).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &OptionValue)> {
        self.values.iter()
    }
}

/// How to reach a machine over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key file; `None` means use the SSH agent.
    pub key_path: Option<PathBuf>,
}

/// Where a driver's machine lives in the store, given to factories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverContext {
    /// The machine's name.
    pub machine_name: String,
    /// The store root (`~/.docker/machine`).
    pub store_root: PathBuf,
    /// The machine's directory (`<store>/machines/<name>`).
    pub machine_dir: PathBuf,
}

impl DriverContext {
    /// The base fields a new driver starts with.
    pub fn base(&self) -> BaseDriver {
        BaseDriver {
            machine_name: self.machine_name.clone(),
            store_path: self.store_root.to_string_lossy().into_owned(),
            ..BaseDriver::default()
        }
    }
}

/// A way for a driver to save its state (the driver object of config.json)
/// while `create` is still running: a driver that makes something costly or
/// billed (a cloud instance) saves its id as soon as it has one, so that a
/// failure or a crash later in `create` never leaves it unknown to `rm`.
///
/// The store hands one to the driver ([`Driver::set_checkpoint`]) just before
/// `create`, while it holds the machine's lock; saving goes through the same
/// atomic write as every other save and keeps fields of config.json the
/// driver does not know.
#[derive(Clone)]
pub struct Checkpoint {
    save: Arc<SaveFn>,
}

/// What a [`Checkpoint`] calls with the driver object.
type SaveFn = dyn Fn(Map<String, Value>) -> Result<(), String> + Send + Sync;

impl Checkpoint {
    /// A checkpoint that calls `save` with the driver object.
    pub fn new(
        save: impl Fn(Map<String, Value>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Checkpoint {
            save: Arc::new(save),
        }
    }

    /// Save `driver`'s state now ([`Driver::saved_state`]).
    pub fn save(&self, driver: &dyn Driver) -> Result<(), DriverError> {
        let object = driver.saved_state()?;
        (self.save)(object).map_err(|message| DriverError::Failed {
            driver: driver.driver_name().to_string(),
            operation: "save its state while creating".into(),
            message,
        })
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Checkpoint")
    }
}

/// One file of the Docker daemon's configuration, as it must be on the
/// machine: its absolute path there, its contents and its mode.
#[derive(Clone, PartialEq, Eq)]
pub struct BootFile {
    pub path: String,
    /// May hold the server's private key: never logged.
    pub contents: Vec<u8>,
    pub mode: u32,
}

impl fmt::Debug for BootFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootFile")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Where the daemon a driver hands its configuration to at first boot will
/// listen and run: the address its server certificate must cover (known
/// before the machine exists, e.g. a VM's forwarded loopback address), the
/// TCP port it listens on in the machine (the driver's
/// [`Driver::engine_port`] once created) and the path of `dockerd` on the
/// machine's image (run by systemd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTarget {
    pub address: String,
    pub port: u16,
    pub dockerd: String,
}

/// What [`BootEngine::files`] calls.
type BootFilesFn = dyn Fn(&BootTarget) -> Result<Vec<BootFile>, String> + Send + Sync;

/// The Docker daemon's configuration for a machine's first boot: its TLS
/// material (a server certificate issued for the target's address) and its
/// service settings, exactly the files provisioning writes over SSH.
///
/// The store hands one to the driver ([`Driver::set_boot_engine`]) before
/// `create` when the machine is to be provisioned. A driver whose machine
/// can take files at boot (a VM image that reads them from the hypervisor)
/// asks for them during `create`; the daemon then starts once, already
/// secured, and provisioning finds it configured and only checks it. A
/// driver that never asks changes nothing.
#[derive(Clone)]
pub struct BootEngine {
    make: Arc<BootFilesFn>,
}

impl BootEngine {
    /// A source of boot files made by `make`.
    pub fn new(
        make: impl Fn(&BootTarget) -> Result<Vec<BootFile>, String> + Send + Sync + 'static,
    ) -> Self {
        BootEngine {
            make: Arc::new(make),
        }
    }

    /// The daemon's files for a machine reached at `target`. `driver` names
    /// the driver in the error.
    pub fn files(&self, driver: &str, target: &BootTarget) -> Result<Vec<BootFile>, DriverError> {
        (self.make)(target).map_err(|message| DriverError::Failed {
            driver: driver.to_string(),
            operation: "prepare the Docker daemon's configuration for the first boot".into(),
            message,
        })
    }
}

impl fmt::Debug for BootEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BootEngine")
    }
}

/// A machine's driver.
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug {
    /// The driver's registered name (`generic`, `none`, `qemu`, ...).
    fn driver_name(&self) -> &str;
    /// Create the machine. Called once, after the pre-create check.
    async fn create(&mut self) -> Result<(), DriverError>;
    /// Remove the machine and everything the driver made for it.
    async fn remove(&mut self) -> Result<(), DriverError>;
    /// The machine's current state.
    async fn state(&self) -> Result<State, DriverError>;
    /// The machine's IP address or host name.
    async fn ip(&self) -> Result<String, DriverError>;
    /// How to reach the machine over SSH; `None` when the driver has no SSH access.
    fn ssh_target(&self) -> Option<SshTarget>;
    /// The driver object saved in config.json: the base fields first, then the driver's own.
    fn saved_state(&self) -> Result<Map<String, Value>, DriverError>;

    /// The Docker daemon's URL. Default: `tcp://<ip>:<engine_port>`.
    async fn url(&self) -> Result<String, DriverError> {
        let ip = self.ip().await?;
        Ok(engine_url(&ip, self.engine_port()))
    }
    /// The daemon's TCP port. Default 2376.
    fn engine_port(&self) -> u16 {
        crate::config::DEFAULT_ENGINE_PORT
    }
    /// Whether create should provision Docker over SSH. Default true.
    fn needs_provisioning(&self) -> bool {
        true
    }
    /// How `upgrade` installs Docker on this machine, when the driver knows
    /// better than the machine's engine install URL (an `--engine-install-url`
    /// value: a script URL, `distro` or `none`). A driver whose image brings
    /// Docker and whose machine reaches no package source says `none`: the
    /// upgrade then only restarts Docker with the machine's configuration.
    /// Default: no opinion.
    fn upgrade_install_url(&self) -> Option<String> {
        None
    }
    /// Receive a [`Checkpoint`] before `create`, to save state while creating.
    /// Default: ignored (the store saves once `create` returns, whether it
    /// succeeded or not).
    fn set_checkpoint(&mut self, _checkpoint: Checkpoint) {}
    /// Receive the daemon's configuration for the machine's first boot
    /// before `create` (see [`BootEngine`]). Default: ignored.
    fn set_boot_engine(&mut self, _boot: BootEngine) {}
    /// Checks that can refuse creation before anything is made.
    async fn pre_create_check(&self) -> Result<(), DriverError> {
        Ok(())
    }
    /// Start a stopped machine.
    async fn start(&mut self) -> Result<(), DriverError> {
        Err(not_supported(self.driver_name(), "start"))
    }
    /// Stop the machine gracefully.
    async fn stop(&mut self) -> Result<(), DriverError> {
        Err(not_supported(self.driver_name(), "stop"))
    }
    /// Restart the machine.
    async fn restart(&mut self) -> Result<(), DriverError> {
        Err(not_supported(self.driver_name(), "restart"))
    }
    /// Stop the machine at once.
    async fn kill(&mut self) -> Result<(), DriverError> {
        Err(not_supported(self.driver_name(), "kill"))
    }
}

/// Running when `host:port` accepts a TCP connection within `timeout`, else
/// Stopped: the state of a machine whose power is not the driver's to know.
pub async fn tcp_probe_state(host: &str, port: u16, timeout: std::time::Duration) -> State {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => State::Running,
        _ => State::Stopped,
    }
}

impl BaseDriver {
    /// The SSH target the base fields describe (port 22 and user root when unset;
    /// the SSH agent when no key path is recorded).
    pub fn ssh_target(&self) -> SshTarget {
        SshTarget {
            host: self.ip_address.clone(),
            port: if self.ssh_port == 0 {
                22
            } else {
                self.ssh_port
            },
            user: if self.ssh_user.is_empty() {
                "root".into()
            } else {
                self.ssh_user.clone()
            },
            key_path: (!self.ssh_key_path.is_empty()).then(|| PathBuf::from(&self.ssh_key_path)),
        }
    }
}

/// The driver object for config.json: the base fields, then the fields of `own`
/// (a struct serializing to a JSON object). Drivers call it in `saved_state`.
pub fn save_driver_object<T: serde::Serialize>(
    driver: &str,
    base: &BaseDriver,
    own: &T,
) -> Result<Map<String, Value>, DriverError> {
    let bad = |source| DriverError::BadSavedState {
        driver: driver.to_string(),
        source,
    };
    let own = match serde_json::to_value(own).map_err(bad)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    base.merge_driver_object(own, &Map::new()).map_err(bad)
}

/// Read a saved driver object back: the base fields and the driver's own
/// fields (`T` ignores keys it does not name). Drivers call it in `load_driver`.
pub fn load_driver_object<T: serde::de::DeserializeOwned>(
    driver: &str,
    saved: &Map<String, Value>,
) -> Result<(BaseDriver, T), DriverError> {
    let bad = |source| DriverError::BadSavedState {
        driver: driver.to_string(),
        source,
    };
    let base = BaseDriver::from_driver_object(saved).map_err(bad)?;
    let own = serde_json::from_value(Value::Object(saved.clone())).map_err(bad)?;
    Ok((base, own))
}

/// `tcp://host:port`, with brackets around IPv6 literals.
pub fn engine_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    }
}

/// The [`DriverError::NotSupported`] error for `driver` and `operation`.
pub fn not_supported(driver: &str, operation: &str) -> DriverError {
    DriverError::NotSupported {
        driver: driver.to_string(),
        operation: operation.to_string(),
    }
}

/// Builds drivers of one kind: from create options, or from saved state.
pub trait DriverFactory: Send + Sync + fmt::Debug {
    /// The name machines refer to this driver by.
    fn name(&self) -> &str;
    /// The create options this driver accepts.
    fn options(&self) -> Vec<DriverOption>;
    /// Whether the driver can be used at all; a driver whose options come
    /// from elsewhere (a plugin process) says here why they could not be had.
    fn check(&self) -> Result<(), DriverError> {
        Ok(())
    }
    /// A driver for a machine about to be created.
    fn new_driver(
        &self,
        ctx: &DriverContext,
        options: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError>;
    /// A driver for an existing machine, from its saved driver object.
    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError>;
}

/// Drivers found by name outside the registry's own list: driver plugins
/// (`docker-machine-driver-NAME` executables), asked for names the registry
/// does not hold, and first for the names it [`forces`](Self::forces).
pub trait DriverSource: Send + Sync + fmt::Debug {
    /// Whether `name` comes from this source even when a driver of that name
    /// is registered.
    fn forces(&self, name: &str) -> bool;
    /// The driver named `name`, or an error saying what was looked for
    /// (`known`: the registered names, for the message).
    fn find(&self, name: &str, known: &str) -> Result<Arc<dyn DriverFactory>, DriverError>;
    /// The names of the drivers the source can find now, for listings
    /// (plugins: the `docker-machine-driver-NAME` executables on `PATH`).
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The drivers an embedding program makes available, by name.
#[derive(Debug, Clone, Default)]
pub struct DriverRegistry {
    factories: BTreeMap<String, Arc<dyn DriverFactory>>,
    source: Option<Arc<dyn DriverSource>>,
}

impl DriverRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add (or replace) a driver.
    pub fn register(&mut self, factory: Arc<dyn DriverFactory>) -> &mut Self {
        self.factories.insert(factory.name().to_string(), factory);
        self
    }
    /// Builder form of [`register`](Self::register).
    pub fn with(mut self, factory: Arc<dyn DriverFactory>) -> Self {
        self.register(factory);
        self
    }
    /// Where drivers the registry does not hold come from (plugins).
    pub fn set_source(&mut self, source: Arc<dyn DriverSource>) -> &mut Self {
        self.source = Some(source);
        self
    }
    /// Builder form of [`set_source`](Self::set_source).
    pub fn with_source(mut self, source: Arc<dyn DriverSource>) -> Self {
        self.set_source(source);
        self
    }
    /// The driver named `name`: a registered one unless the source forces
    /// the name, else the source's.
    pub fn get(&self, name: &str) -> Result<Arc<dyn DriverFactory>, DriverError> {
        let known = || self.names().join(", ");
        if let Some(source) = self.source.as_ref().filter(|s| s.forces(name)) {
            return source.find(name, &known());
        }
        match (self.factories.get(name), &self.source) {
            (Some(f), _) => Ok(f.clone()),
            (None, Some(source)) => source.find(name, &known()),
            (None, None) => Err(DriverError::UnknownDriver {
                name: name.to_string(),
                known: known(),
            }),
        }
    }
    /// Whether `name` is served by the source rather than by a registered
    /// driver (a plugin, found or not).
    pub fn is_external(&self, name: &str) -> bool {
        match &self.source {
            Some(s) => s.forces(name) || !self.factories.contains_key(name),
            None => false,
        }
    }
    /// Every driver name, sorted: the registered drivers and those the
    /// source can find (driver plugins on `PATH`). Listing asks no plugin
    /// anything.
    pub fn names(&self) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> =
            self.factories.keys().cloned().collect();
        if let Some(source) = &self.source {
            names.extend(source.names());
        }
        names.into_iter().collect()
    }
    /// The registered driver names only, sorted (their factories are at
    /// hand: asking them for their options starts nothing).
    pub fn registered_names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl() -> Vec<DriverOption> {
        vec![
            DriverOption::new("x-ip-address", OptionKind::String, "ip")
                .env("X_IP_ADDRESS")
                .required(),
            DriverOption::new("x-ssh-port", OptionKind::Int, "port")
                .default_value("22")
                .env("X_SSH_PORT"),
            DriverOption::new("x-flag", OptionKind::Bool, "flag"),
            DriverOption::new("x-list", OptionKind::StringList, "list"),
        ]
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn resolve_precedence_given_env_default() {
        let env = |k: &str| match k {
            "X_IP_ADDRESS" => Some("10.0.0.1".to_string()),
            "X_SSH_PORT" => Some("2222".to_string()),
            _ => None,
        };
        let o = DriverOptions::resolve("x", &decl(), [], &env).expect("resolve");
        assert_eq!(o.string("x-ip-address"), "10.0.0.1");
        assert_eq!(o.int("x-ssh-port"), Some(2222));
        let o = DriverOptions::resolve(
            "x",
            &decl(),
            [
                ("x-ip-address".to_string(), OptionValue::String("h".into())),
                ("x-ssh-port".to_string(), OptionValue::String("2200".into())),
                ("--x-flag".to_string(), OptionValue::String("true".into())),
                ("x-list".to_string(), OptionValue::String("a".into())),
            ],
            &env,
        )
        .expect("resolve");
        assert_eq!(o.string("x-ip-address"), "h");
        assert_eq!(o.port("x-ssh-port").expect("port"), Some(2200));
        assert!(o.bool("x-flag"));
        assert_eq!(o.list("x-list"), vec!["a"]);
        let o = DriverOptions::resolve(
            "x",
            &decl(),
            [("x-ip-address".to_string(), OptionValue::String("h".into()))],
            &no_env,
        )
        .expect("resolve");
        assert_eq!(o.int("x-ssh-port"), Some(22));
    }

    #[test]
    fn resolve_errors_name_the_flag() {
        let e = DriverOptions::resolve("x", &decl(), [], &no_env).expect_err("missing");
        assert!(e.to_string().contains("x-ip-address"), "{e}");
        let e = DriverOptions::resolve(
            "x",
            &decl(),
            [
                ("x-ip-address".to_string(), OptionValue::String("h".into())),
                (
                    "x-ssh-port".to_string(),
                    OptionValue::String("twenty".into()),
                ),
            ],
            &no_env,
        )
        .expect_err("bad int");
        assert!(
            e.to_string().contains("x-ssh-port") && e.to_string().contains("twenty"),
            "{e}"
        );
        let e = DriverOptions::resolve(
            "x",
            &decl(),
            [
                ("x-ip-address".to_string(), OptionValue::String("h".into())),
                ("x-bogus".to_string(), OptionValue::Bool(true)),
            ],
            &no_env,
        )
        .expect_err("unknown");
        assert!(matches!(e, DriverError::UnknownOption { ref flag, .. } if flag == "x-bogus"));
        let o = DriverOptions::resolve(
            "x",
            &decl(),
            [
                ("x-ip-address".to_string(), OptionValue::String("h".into())),
                ("x-ssh-port".to_string(), OptionValue::Int(70000)),
            ],
            &no_env,
        )
        .expect("resolve");
        assert!(o.port("x-ssh-port").is_err());
    }

    #[test]
    fn registry_lookup() {
        let r = DriverRegistry::new();
        let e = r.get("nope").expect_err("unknown");
        assert!(e.to_string().contains("nope"));
    }

    #[derive(Debug)]
    struct Named(&'static str);
    impl DriverFactory for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn options(&self) -> Vec<DriverOption> {
            Vec::new()
        }
        fn new_driver(
            &self,
            _: &DriverContext,
            _: &DriverOptions,
        ) -> Result<Box<dyn Driver>, DriverError> {
            Err(not_supported(self.0, "create"))
        }
        fn load_driver(
            &self,
            _: &DriverContext,
            _: &Map<String, Value>,
        ) -> Result<Box<dyn Driver>, DriverError> {
            Err(not_supported(self.0, "load"))
        }
    }

    /// Serves "ext" and "forced" (as factories named `source:NAME`).
    #[derive(Debug)]
    struct Source;
    impl DriverSource for Source {
        fn forces(&self, name: &str) -> bool {
            name == "forced"
        }
        fn find(&self, name: &str, known: &str) -> Result<Arc<dyn DriverFactory>, DriverError> {
            match name {
                "ext" => Ok(Arc::new(Named("source:ext"))),
                "forced" => Ok(Arc::new(Named("source:forced"))),
                _ => Err(DriverError::PluginNotFound {
                    name: name.into(),
                    executable: format!("plugin-{name}"),
                    known: known.into(),
                }),
            }
        }
        fn names(&self) -> Vec<String> {
            vec!["forced".into(), "ext".into()]
        }
    }

    #[test]
    fn registered_names_win_unless_the_source_forces_them() {
        let r = DriverRegistry::new()
            .with(Arc::new(Named("builtin")))
            .with(Arc::new(Named("forced")))
            .with_source(Arc::new(Source));
        assert_eq!(r.get("builtin").expect("builtin").name(), "builtin");
        assert_eq!(r.get("ext").expect("ext").name(), "source:ext");
        assert_eq!(r.get("forced").expect("forced").name(), "source:forced");
        assert!(!r.is_external("builtin"));
        assert!(r.is_external("ext") && r.is_external("forced"));
        let e = r.get("nope").expect_err("unknown").to_string();
        assert!(
            e.contains("plugin-nope") && e.contains("builtin, ext, forced"),
            "{e}"
        );
        assert!(!DriverRegistry::new().is_external("x"));
        // listings: the source's names too, once each, sorted
        assert_eq!(r.names(), ["builtin", "ext", "forced"]);
        assert_eq!(r.registered_names(), ["builtin", "forced"]);
    }

    #[test]
    fn url_brackets_ipv6() {
        assert_eq!(engine_url("10.0.0.1", 2376), "tcp://10.0.0.1:2376");
        assert_eq!(engine_url("fe80::1", 2376), "tcp://[fe80::1]:2376");
    }
}
