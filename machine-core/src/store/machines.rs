//! [`Store`]: the entry point that finds, creates, lists and removes the
//! machines of one [`FileStore`], with the drivers and provisioners that
//! serve them. A machine's own operations are on [`crate::host::Host`].

// Errors carry the machine name and the failing step; they are the cold path of
// operations that take milliseconds to minutes, so their size does not matter.
#![allow(clippy::result_large_err)]

use super::{FileStore, StoreError};
use crate::cert::{self, CertPaths, KeyAlgorithm};
use crate::config::HostConfig;
use crate::driver::{Checkpoint, DriverContext, DriverOptions, DriverRegistry};
use crate::engine::EngineError;
use crate::host::{error_chain, CreateOptions, Host, HostError, Leave};
use crate::progress::Progress;
use crate::provision::ProvisionerSet;
use crate::ssh::SshConfig;
use crate::ssh::{Connector, RusshConnector};
use crate::state::State;
use crate::swarm::Membership;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    pub(crate) files: FileStore,
    pub(crate) drivers: DriverRegistry,
    pub(crate) provisioners: ProvisionerSet,
    pub(crate) settings: Settings,
    pub(crate) connector: Arc<dyn Connector>,
}

/// How long a listing waits for a daemon's answer before it asks the
/// driver for the machine's state as well.
const DAEMON_FIRST: Duration = Duration::from_millis(100);

/// What a listing asks of each machine ([`Store::list_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListQuery {
    /// How long each machine may take to answer.
    pub timeout: Duration,
    /// Ask each driver for the state and, for a running machine, the URL;
    /// without it a row holds the saved configuration only (state `None`).
    pub state: bool,
    /// Ask each running machine's daemon for its version.
    pub version: bool,
}

impl ListQuery {
    /// Everything, each machine bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        ListQuery {
            timeout,
            state: true,
            version: true,
        }
    }
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
            connector: Arc::new(RusshConnector),
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
    /// Replace how machines are reached over SSH (the default is
    /// [`RusshConnector`]).
    pub fn with_connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = connector;
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
        self.host_from(self.files.load(name)?)
    }

    /// The machine whose configuration was just read.
    pub(crate) fn host_from(&self, config: HostConfig) -> Result<Host, HostError> {
        let name = config.name.as_str();
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
        let (membership, warnings) =
            crate::swarm::check(name, &opts.swarm).map_err(|(flag, value, reason)| {
                HostError::InvalidOption {
                    flag,
                    value,
                    reason,
                }
            })?;
        let mut swarm_options = opts.swarm.clone();
        match &membership {
            Membership::None => {}
            Membership::Init => swarm_options.discovery = crate::swarm::discovery_of(name),
            Membership::Join { via, .. } => {
                let manager = Host::manager_config_check(self, name, via)?;
                // every member of a cluster carries the cluster's name
                swarm_options.discovery = manager.host_options.swarm_options.discovery;
            }
        }
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
        factory.check().map_err(drv_err)?;
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
        for w in warnings {
            tracing::warn!("{w}");
        }
        progress("Creating CA and client certificates");
        self.bootstrap_certs(opts.key_algorithm)?;
        let ctx = self.context(name);
        let driver = factory.new_driver(&ctx, &resolved).map_err(drv_err)?;
        progress("Running pre-create checks");
        driver.pre_create_check().await.map_err(drv_err)?;
        let adopted = match &opts.adopt_tls {
            None => None,
            Some(tls) => {
                progress("Checking the daemon with the given certificates");
                Some(self.check_adoption(name, driver.as_ref(), tls).await?)
            }
        };

        let mut config = HostConfig::new(name, &opts.driver, self.files.root());
        config.host_options.engine_options = opts.engine.clone();
        config.host_options.auth_options.server_cert_sans = Some(opts.tls_san.clone());
        config.host_options.swarm_options = swarm_options;
        config.driver = driver.saved_state().map_err(drv_err)?;
        // lock first: a remove of the same name waits until create is done
        let _lock = self.files.lock_machine(name)?;
        self.files.create(&config)?;
        let mut driver = driver;
        driver.set_checkpoint(self.checkpoint(&config));
        let mut host = Host {
            config,
            driver,
            store: self.clone(),
            new_machine: true,
        };
        let mut result = match adopted {
            None => host.finish_create(opts.key_algorithm, progress).await,
            Some(files) => host.finish_adoption(&files, progress).await,
        };
        if result.is_ok() && membership != Membership::None {
            result = host.apply_swarm(progress, true).await;
        }
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

    /// Read the TLS files of a daemon to adopt and check them by asking the
    /// daemon at the driver's URL for its version over mutual TLS: a CA
    /// that did not sign the daemon's certificate, or a client certificate
    /// the daemon does not accept, fails here, before the machine is added.
    async fn check_adoption(
        &self,
        name: &str,
        driver: &dyn crate::driver::Driver,
        tls: &crate::host::AdoptTls,
    ) -> Result<[Vec<u8>; 3], HostError> {
        if driver.needs_provisioning() {
            return Err(HostError::InvalidOption {
                flag: "tls-ca-cert".into(),
                value: tls.ca_cert.display().to_string(),
                reason: format!(
                    "adopting a daemon's certificates is for drivers that provision nothing (none), not {}",
                    driver.driver_name()
                ),
            });
        }
        for (flag, p) in [
            ("tls-ca-cert", &tls.ca_cert),
            ("tls-client-cert", &tls.client_cert),
            ("tls-client-key", &tls.client_key),
        ] {
            if p.as_os_str().is_empty() {
                return Err(HostError::InvalidOption {
                    flag: flag.into(),
                    value: String::new(),
                    reason: "adopting a daemon takes tls-ca-cert, tls-client-cert and tls-client-key together".into(),
                });
            }
        }
        let mut files: [Vec<u8>; 3] = Default::default();
        for (slot, p) in files
            .iter_mut()
            .zip([&tls.ca_cert, &tls.client_cert, &tls.client_key])
        {
            *slot = std::fs::read(p).map_err(|source| HostError::Io {
                name: name.to_string(),
                path: p.clone(),
                source,
            })?;
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let config = cert::client_tls_config(&text(&files[0]), &text(&files[1]), &text(&files[2]))
            .map_err(|source| HostError::Cert {
                name: name.to_string(),
                source: Box::new(source),
            })?;
        let url = driver.url().await.map_err(|source| HostError::Driver {
            name: name.to_string(),
            source,
        })?;
        let (h, p) =
            crate::engine::parse_tcp_url(&url).ok_or_else(|| HostError::InvalidOption {
                flag: "url".into(),
                value: url.clone(),
                reason: "expected tcp://HOST:PORT".into(),
            })?;
        crate::engine::version(&h, p, config, Duration::from_secs(20))
            .await
            .map_err(|source| HostError::Engine {
                name: name.to_string(),
                log_tail: String::new(),
                source,
            })?;
        Ok(files)
    }

    /// A [`Checkpoint`] saving a driver object into `config` (as it is when
    /// create begins) in the store.
    fn checkpoint(&self, config: &HostConfig) -> Checkpoint {
        let files = self.files.clone();
        let config = std::sync::Mutex::new(config.clone());
        Checkpoint::new(move |mut object| {
            let mut config = config
                .lock()
                .map_err(|_| "state lock poisoned".to_string())?;
            crate::config::keep_unknown_fields(&mut object, &config.driver);
            config.driver = object;
            files.save(&config).map_err(|e| e.to_string())
        })
    }

    /// Remove the machine: the driver removes what it made, then the store entry
    /// goes. With `force`, the store entry goes even when the driver fails.
    ///
    /// A machine in a swarm leaves it first (see [`Host::swarm_leave`]): a
    /// worker is removed from the managers' node list, a manager is demoted
    /// first. Removing the last manager ends the swarm: its workers leave it
    /// too and keep running as standalone engines.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), HostError> {
        let _lock = self.files.lock_machine(name)?;
        match self.get(name) {
            Ok(mut host) => {
                let quiet = |_: &str| {};
                if let Err(e) = self.leave_swarm_for_removal(&mut host, force, &quiet).await {
                    if !force {
                        return Err(e);
                    }
                    tracing::warn!("{}", error_chain(&e));
                }
                if let Err(source) = host.driver.remove().await {
                    if !force {
                        return Err(HostError::Driver {
                            name: name.to_string(),
                            source,
                        });
                    }
                    tracing::warn!(machine = name, error = %source, "driver failed to remove the machine; removing it from the store anyway");
                }
                if let Err(e) = host.remove_docker_context() {
                    tracing::warn!("{}", error_chain(&e));
                }
            }
            Err(e) if !force => return Err(e),
            Err(_) => {}
        }
        Ok(self.files.remove(name)?)
    }

    /// The swarm part of removing `host`: the last manager of a cluster
    /// takes its workers out of it first.
    async fn leave_swarm_for_removal(
        &self,
        host: &mut Host,
        force: bool,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        let s = &host.config.host_options.swarm_options;
        if !(s.is_swarm || s.master) || crate::swarm::is_classic(s) {
            return Ok(());
        }
        let members = host.swarm_members().unwrap_or_default();
        let last_manager = s.master && members.managers.iter().all(|m| m == host.name());
        if last_manager {
            for w in &members.workers {
                let r = async {
                    let _lock = self.files.lock_machine(w)?;
                    let mut worker = self.get(w)?;
                    worker.leave(Leave::Dissolve, progress).await
                }
                .await;
                if let Err(e) = r {
                    tracing::warn!("{}", error_chain(&e));
                }
            }
        }
        host.leave(Leave::Removal { force }, progress).await
    }

    /// Every machine of the store whose configuration loads.
    pub(crate) fn configs(&self) -> Result<Vec<(String, HostConfig)>, HostError> {
        Ok(self
            .files
            .load_all()?
            .into_iter()
            .filter_map(|(n, c)| c.ok().map(|c| (n, c)))
            .collect())
    }

    /// Query every machine at once, each bounded by `timeout`; the listing takes
    /// about as long as the slowest machine and never much more than `timeout`.
    pub async fn list(&self, timeout: Duration) -> Result<Vec<ListEntry>, HostError> {
        self.list_with(self.files.load_all()?, ListQuery::new(timeout))
            .await
    }

    /// [`Self::list`] over configurations already read (as
    /// [`FileStore::load_all`] returns them), asking each machine only what
    /// `query` names. Machines sharing a client certificate share one TLS
    /// client configuration. A daemon that answers (`GET /_ping`) shows its
    /// machine running; the driver's state check is made only when the
    /// daemon fails or is slow to answer, and then next to the daemon call.
    pub async fn list_with(
        &self,
        loaded: Vec<(String, Result<HostConfig, StoreError>)>,
        query: ListQuery,
    ) -> Result<Vec<ListEntry>, HostError> {
        let masters = crate::swarm::masters(
            loaded
                .iter()
                .filter_map(|(n, c)| c.as_ref().ok().map(|c| (n.as_str(), c))),
        );
        let mut names = Vec::with_capacity(loaded.len());
        let mut columns = Vec::with_capacity(loaded.len());
        let mut set = tokio::task::JoinSet::new();
        // one deadline for all: a row that starts late does not end late
        let deadline = tokio::time::Instant::now() + query.timeout;
        for (i, (name, config)) in loaded.into_iter().enumerate() {
            columns.push(
                config
                    .as_ref()
                    .map(|c| crate::swarm::column(&c.host_options.swarm_options, &masters))
                    .unwrap_or_default(),
            );
            names.push(name.clone());
            let store = self.clone();
            set.spawn(async move { (i, store.list_one(name, config, query, deadline).await) });
        }
        let mut rows: Vec<Option<ListEntry>> = vec![None; names.len()];
        while let Some(r) = set.join_next().await {
            if let Ok((i, entry)) = r {
                if let Some(slot) = rows.get_mut(i) {
                    *slot = Some(entry);
                }
            }
        }
        Ok(rows
            .into_iter()
            .zip(names)
            .zip(columns)
            .map(|((r, name), swarm)| {
                let mut row = r.unwrap_or_else(|| ListEntry {
                    name,
                    driver_name: String::new(),
                    state: State::Error,
                    url: String::new(),
                    swarm: String::new(),
                    docker_version: "Unknown".into(),
                    error: "internal error while querying the machine".into(),
                    response_time_ms: 0,
                });
                row.swarm = swarm;
                row
            })
            .collect())
    }

    async fn list_one(
        &self,
        name: String,
        config: Result<HostConfig, StoreError>,
        query: ListQuery,
        deadline: tokio::time::Instant,
    ) -> ListEntry {
        let start = Instant::now();
        let timeout = query.timeout;
        let mut e = ListEntry {
            name,
            driver_name: String::new(),
            state: State::Error,
            url: String::new(),
            swarm: String::new(),
            docker_version: "Unknown".into(),
            error: String::new(),
            response_time_ms: 0,
        };
        let elapsed_ms =
            |start: Instant| u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let config = match config {
            Ok(c) => c,
            Err(err) => {
                e.driver_name = "not found".into();
                e.error = error_chain(&HostError::from(err));
                return e;
            }
        };
        // Loading runs the driver's factory, which may be foreign code (Python,
        // JavaScript) that blocks: off the async threads, and within the timeout.
        let store = self.clone();
        let load = tokio::task::spawn_blocking(move || store.host_from(config));
        let host = match tokio::time::timeout_at(deadline, load).await {
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
                e.response_time_ms = elapsed_ms(start);
                return e;
            }
        };
        e.driver_name = host.driver_name().to_string();
        if !query.state {
            e.state = State::None;
            e.response_time_ms = elapsed_ms(start);
            return e;
        }
        let q = async {
            // the URL, and (when asked) the daemon's answer at it: a URL is
            // shown even when its daemon does not answer
            let version = async {
                let url = host.url_unchecked().await?;
                let v = if query.version {
                    Some(host.ping_version_at(&url, timeout).await)
                } else {
                    None
                };
                Ok::<_, HostError>((url, v))
            };
            let mut version = std::pin::pin!(version);
            // A daemon that answers shows its machine running: the driver's
            // state check (a TCP probe, a cloud API call) is made only when
            // the daemon fails or has not answered within DAEMON_FIRST, and
            // then runs next to the version call.
            let mut early = None;
            if query.version {
                tokio::select! {
                    v = &mut version => early = Some(v),
                    () = tokio::time::sleep(DAEMON_FIRST) => {}
                }
            }
            if let Some(Ok((url, v))) = &early {
                if !matches!(v, Some(Err(_))) {
                    e.state = State::Running;
                    e.url = url.clone();
                    if let Some(Ok(v)) = v {
                        e.docker_version = format!("v{}", v.version);
                    }
                    return Ok(());
                }
            }
            let mut state = std::pin::pin!(host.state());
            let state = loop {
                tokio::select! {
                    s = &mut state => break s?,
                    v = &mut version, if early.is_none() => early = Some(v),
                }
            };
            e.state = state;
            if state == State::Running {
                let answer = match early {
                    Some(v) => v,
                    None => version.await,
                };
                let (url, v) = answer?;
                e.url = url;
                if let Some(v) = v {
                    e.docker_version = format!("v{}", v?.version);
                }
            }
            Ok::<(), HostError>(())
        };
        match tokio::time::timeout_at(deadline, q).await {
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
        e.response_time_ms = elapsed_ms(start);
        e
    }
}
