//! A machine and its operations ([`Host`]); what they take ([`CreateOptions`],
//! the engine options, [`EnvOptions`]) and how they fail ([`HostError`]).
//! [`Store`] (in [`crate::store`]) finds, creates and removes machines.
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

use crate::cert::{self, CertError};
use crate::config::HostConfig;
use crate::driver::{Driver, DriverError};
use crate::engine::{self, EngineVersion};
use crate::env::MachineEnv;
use crate::ssh::{known_hosts, HostKeyCheck, Output, Session};
use crate::state::State;
pub use crate::store::{ListEntry, ListQuery, Settings, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use crate::progress::Progress;

mod context;
mod error;
mod options;
mod portable;
mod provisioning;
mod sshconfig;
mod swarm;
#[cfg(test)]
mod tests;

pub(crate) use swarm::Leave;

pub use error::{error_chain, printable, HostError};
pub use options::{engine_options, AdoptTls, CreateOptions, EnvOptions};
pub use portable::{ExportOptions, ImportOptions};
pub use sshconfig::host_block as ssh_config_block;

/// File in a machine's directory recording why its last create or provision failed.
pub const ERROR_FILE: &str = "last-error";

/// A machine's state with the failure of its last create or provision
/// (`status`; `state` is `Error` when `error` is not empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub name: String,
    pub state: State,
    /// Why the last create or provision failed; empty when it did not.
    pub error: String,
}

/// A named machine: its driver plus engine, swarm and TLS options.
#[derive(Debug)]
pub struct Host {
    pub(crate) config: HostConfig,
    pub(crate) driver: Box<dyn Driver>,
    pub(crate) store: Store,
    /// A first SSH contact is expected (during create): pinning the host
    /// key then is routine, not worth a warning.
    pub(crate) new_machine: bool,
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
    pub fn inspect(&self) -> &HostConfig {
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
    pub(crate) fn record_error(&self, e: &HostError) {
        let p = self.dir().join(ERROR_FILE);
        if let Err(err) = crate::fsutil::write_atomic(&p, error_chain(e).as_bytes(), 0o600) {
            tracing::warn!(path = %p.display(), error = %err, "cannot record the failure");
        }
    }
    pub(crate) fn clear_error(&self) {
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

    /// Take the machine's lock, then read the machine again: the start of
    /// every operation that changes it.
    fn lock_fresh(&mut self) -> Result<crate::store::Lock, HostError> {
        let lock = self.store.files.lock_machine(self.name())?;
        self.reload()?;
        Ok(lock)
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
    /// The state with the recorded failure, if any (`status --format json`).
    pub async fn status(&self) -> Result<Status, HostError> {
        Ok(Status {
            name: self.name().to_string(),
            state: self.state().await?,
            error: self.last_error().unwrap_or_default(),
        })
    }
    /// The machine's IP address or host name.
    pub async fn ip(&self) -> Result<String, HostError> {
        self.driver.ip().await.map_err(|e| self.drv(e))
    }
    /// The Docker daemon's URL; [`HostError::NotRunning`] when the machine
    /// is not running (its address may not be valid then).
    pub async fn url(&self) -> Result<String, HostError> {
        let state = self.driver.state().await.map_err(|e| self.drv(e))?;
        if state != State::Running {
            return Err(HostError::NotRunning {
                name: self.name().to_string(),
                state,
            });
        }
        self.url_unchecked().await
    }

    /// The driver's URL, for a caller that has just seen the machine running.
    pub(crate) async fn url_unchecked(&self) -> Result<String, HostError> {
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
        cert::shared_client_tls_config(&ca, &cert, &key).map_err(|e| self.cert_err(e))
    }

    /// Check locally, without dialing the daemon, that the machine's server
    /// certificate chains to its CA, covers its address and is unexpired.
    pub async fn check_certs(&self) -> Result<(), HostError> {
        let url = self.url().await?;
        self.check_certs_for(&url)
    }

    fn check_certs_for(&self, url: &str) -> Result<(), HostError> {
        let host = engine::parse_tcp_url(url)
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
    pub async fn env_vars(&self) -> Result<MachineEnv, HostError> {
        let url = self.url().await?;
        self.check_certs_for(&url)?;
        Ok(MachineEnv::new(
            self.name(),
            &url,
            &self.cert_path().to_string_lossy(),
            // the daemon we provision always verifies clients
            true,
        ))
    }

    /// The environment as shell text, per `opts` (see [`crate::env::render`]).
    pub async fn env(&self, opts: &EnvOptions) -> Result<String, HostError> {
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
        let mut env = self.env_vars().await?;
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

    /// The `docker` client arguments for this machine, one per element and
    /// unquoted, ready for a process's argument list:
    /// `["--tlsverify", "--tlscacert=DIR/ca.pem", "--tlscert=…", "--tlskey=…", "-H=tcp://…"]`.
    pub async fn config(&self) -> Result<Vec<String>, HostError> {
        let url = self.url().await?;
        self.check_certs_for(&url)?;
        let d = self.cert_path();
        Ok(vec![
            "--tlsverify".to_string(),
            format!("--tlscacert={}", d.join("ca.pem").display()),
            format!("--tlscert={}", d.join("cert.pem").display()),
            format!("--tlskey={}", d.join("key.pem").display()),
            format!("-H={url}"),
        ])
    }

    /// Ask the daemon for its version over mutual TLS.
    pub async fn docker_version(&self, timeout: Duration) -> Result<EngineVersion, HostError> {
        let url = self.url().await?;
        self.version_at(&url, timeout).await
    }

    /// Ask the daemon at `url` (this machine's) for its version.
    pub(crate) async fn version_at(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<EngineVersion, HostError> {
        self.ask_version(url, timeout, false).await
    }

    /// [`Self::version_at`] through `GET /_ping` (see [`engine::ping_version`]).
    pub(crate) async fn ping_version_at(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<EngineVersion, HostError> {
        self.ask_version(url, timeout, true).await
    }

    async fn ask_version(
        &self,
        url: &str,
        timeout: Duration,
        ping: bool,
    ) -> Result<EngineVersion, HostError> {
        let (h, p) = engine::parse_tcp_url(url).ok_or_else(|| HostError::InvalidOption {
            flag: "url".into(),
            value: url.to_string(),
            reason: "expected tcp://HOST:PORT".into(),
        })?;
        let tls = self.tls_client_config()?;
        let answer = if ping {
            engine::ping_version(&h, p, tls, timeout).await
        } else {
            engine::version(&h, p, tls, timeout).await
        };
        answer.map_err(|source| HostError::Engine {
            name: self.name().to_string(),
            log_tail: String::new(),
            source,
        })
    }

    /// Open one SSH connection to the machine, pinning its host key on first use.
    pub async fn connect(&self) -> Result<Box<dyn Session>, HostError> {
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
        let client = self
            .store
            .connector
            .connect(&target, &check, &self.store.settings.ssh)
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

    /// Start the machine (driver-dependent).
    pub async fn start(&mut self) -> Result<(), HostError> {
        self.lifecycle(Lifecycle::Start).await
    }
    /// Stop the machine (driver-dependent).
    pub async fn stop(&mut self) -> Result<(), HostError> {
        self.lifecycle(Lifecycle::Stop).await
    }
    /// Restart the machine (driver-dependent).
    pub async fn restart(&mut self) -> Result<(), HostError> {
        self.lifecycle(Lifecycle::Restart).await
    }
    /// Kill the machine (driver-dependent).
    pub async fn kill(&mut self) -> Result<(), HostError> {
        self.lifecycle(Lifecycle::Kill).await
    }

    /// One driver lifecycle operation under the machine's lock, on the
    /// machine as it is on disk, saved afterwards.
    async fn lifecycle(&mut self, op: Lifecycle) -> Result<(), HostError> {
        let _lock = self.lock_fresh()?;
        let d = &mut self.driver;
        let r = match op {
            Lifecycle::Start => d.start().await,
            Lifecycle::Stop => d.stop().await,
            Lifecycle::Restart => d.restart().await,
            Lifecycle::Kill => d.kill().await,
        };
        r.map_err(|e| self.drv(e))?;
        self.save()?;
        if matches!(op, Lifecycle::Start | Lifecycle::Restart) && self.runs_our_daemon() {
            self.wait_daemon().await?;
        }
        Ok(())
    }

    /// Whether the machine's daemon was configured with a server
    /// certificate of this store (by us or by docker-machine) and comes up
    /// with the machine: provisioned, without a recorded failure.
    fn runs_our_daemon(&self) -> bool {
        let cert = &self.config.host_options.auth_options.server_cert_path;
        self.driver.needs_provisioning()
            && !cert.is_empty()
            && Path::new(cert).is_file()
            && self.last_error().is_none()
    }

    /// Wait until the daemon answers (bounded by the engine timeout), so that
    /// `docker` works as soon as `start` returns. A daemon that answers with
    /// a certificate that no longer covers its address (a cloud machine with
    /// a new public IP) is up: `env` and `regenerate-certs` deal with that.
    async fn wait_daemon(&self) -> Result<(), HostError> {
        let limit = self.store.settings.engine_timeout;
        let url = self.url().await?;
        let up = |e: &engine::EngineError| matches!(e, engine::EngineError::Tls { source, .. } if refused_certificate(source));
        match self.poll_daemon(&url, limit, true, up).await {
            Err(HostError::Engine { .. }) => Err(HostError::Timeout {
                name: self.name().to_string(),
                what: format!("the Docker daemon at {url} to answer after the start"),
                seconds: limit.as_secs(),
            }),
            r => r,
        }
    }

    /// Ask the daemon at `url` (through `GET /_ping` with `ping`, else `GET
    /// /version`) until it answers or a failure counts as `up`, for at most
    /// `limit`; then the last failure ([`HostError::Engine`]). Other errors
    /// end it at once. A daemon usually answers within a second of
    /// starting: it polls quickly at first, then backs off.
    pub(crate) async fn poll_daemon(
        &self,
        url: &str,
        limit: Duration,
        ping: bool,
        up: impl Fn(&engine::EngineError) -> bool,
    ) -> Result<(), HostError> {
        let begun = Instant::now();
        loop {
            match self.ask_version(url, Duration::from_secs(10), ping).await {
                Ok(_) => return Ok(()),
                Err(HostError::Engine { source, .. }) if up(&source) => return Ok(()),
                Err(e @ HostError::Engine { .. }) if begun.elapsed() >= limit => return Err(e),
                Err(HostError::Engine { .. }) => {
                    let pause = if begun.elapsed() < Duration::from_secs(5) {
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
}

/// Whether a TLS failure is the daemon's certificate being refused (the
/// daemon is up) rather than the connection failing.
fn refused_certificate(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::AlertReceived(_)
            )
        })
}

#[derive(Debug, Clone, Copy)]
enum Lifecycle {
    Start,
    Stop,
    Restart,
    Kill,
}
