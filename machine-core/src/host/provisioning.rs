//! Bringing a machine to a working Docker daemon, top to bottom:
//!
//! 1. [`Host::finish_create`] (called by [`crate::store::Store::create`]
//!    once the machine is in the store): the driver creates the machine, we
//!    wait for it to run, copy the client certificates beside it and, when the
//!    driver asks for it, provision.
//! 2. [`Host::provision_with`]: validate the engine options again, issue a
//!    server certificate for the machine's address, connect, run the
//!    provisioner's steps (one reconnect when the connection drops), then
//!    wait for the daemon to answer over mutual TLS.
//! 3. `provision`, `upgrade` and `regenerate_certs` re-enter step 2 under the
//!    machine's lock, then join the machine's swarm again if its daemon is
//!    in none (see `host/swarm.rs`), and record the outcome (`last-error`).

// Errors carry the machine name and the failing step (see `host/mod.rs`).
#![allow(clippy::result_large_err)]

use super::{Host, HostError, Progress};
use crate::cert::{self, CertPaths, CertificateAuthority, KeyAlgorithm};
use crate::driver::{BootEngine, BootTarget};
use crate::provision::{self, ProvisionError, ProvisionRequest};
use crate::ssh::Session;
use crate::state::State;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A machine's daemon TLS material: CA certificate, server certificate and
/// server key (PEM).
type Material = (String, String, String);

/// Issues server certificates for one machine: signed by the store's CA,
/// for the machine's extra names plus the address and `localhost`, saved
/// in the machine's directory (0600).
struct CertIssuer {
    certs_dir: PathBuf,
    machine_dir: PathBuf,
    sans: Vec<String>,
    org: String,
    alg: KeyAlgorithm,
}

#[derive(Debug, thiserror::Error)]
enum IssueError {
    #[error(transparent)]
    Cert(cert::CertError),
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CertIssuer {
    fn issue(&self, ip: &str) -> Result<Material, IssueError> {
        let certs = CertPaths::in_dir(&self.certs_dir);
        let ca =
            CertificateAuthority::load(&certs.ca_cert, &certs.ca_key).map_err(IssueError::Cert)?;
        let mut sans = self.sans.clone();
        for extra in [ip.to_string(), "localhost".to_string()] {
            if !sans.contains(&extra) {
                sans.push(extra);
            }
        }
        let bundle = ca
            .issue_server(&self.org, &sans, self.alg)
            .map_err(IssueError::Cert)?;
        let (cp, kp) = (
            self.machine_dir.join("server.pem"),
            self.machine_dir.join("server-key.pem"),
        );
        crate::fsutil::write_atomic(&cp, bundle.cert_pem.as_bytes(), 0o600).map_err(|source| {
            IssueError::Io {
                path: cp.clone(),
                source,
            }
        })?;
        crate::fsutil::write_atomic(&kp, bundle.key_pem.as_bytes(), 0o600).map_err(|source| {
            IssueError::Io {
                path: kp.clone(),
                source,
            }
        })?;
        Ok((ca.cert_pem().to_string(), bundle.cert_pem, bundle.key_pem))
    }
}

impl Host {
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

    pub(crate) async fn finish_create(
        &mut self,
        alg: KeyAlgorithm,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        progress("Creating machine");
        let issued = Arc::new(Mutex::new(None));
        if self.driver.needs_provisioning() {
            self.config
                .host_options
                .engine_options
                .validate()
                .map_err(HostError::from)?;
            let boot = self.boot_engine(alg, Arc::clone(&issued));
            self.driver.set_boot_engine(boot);
        }
        let created = crate::progress::forward(progress, self.driver.create()).await;
        // Save whatever the driver made before it failed (an instance id),
        // so that `rm` can remove it.
        if let Err(e) = created {
            if let Err(save) = self.save() {
                tracing::warn!(machine = self.name(), error = %save, "cannot save the driver's state after a failed create");
            }
            return Err(self.drv(e));
        }
        self.save()?;
        self.wait_running(progress).await?;
        self.copy_client_certs()?;
        if self.driver.needs_provisioning() {
            let material = issued.lock().ok().and_then(|mut m| m.take());
            self.provision_with_material(alg, material, progress)
                .await?;
        }
        Ok(())
    }

    /// Create's steps for an adopted daemon: the driver records it, and the
    /// certificates it trusts (`files`: CA, client certificate, client key,
    /// checked by [`crate::store::Store::create`]) go into the machine's
    /// directory.
    pub(crate) async fn finish_adoption(
        &mut self,
        files: &[Vec<u8>; 3],
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        progress("Creating machine");
        crate::progress::forward(progress, self.driver.create())
            .await
            .map_err(|e| self.drv(e))?;
        self.save()?;
        let dir = self.dir();
        for (file, bytes) in ["ca.pem", "cert.pem", "key.pem"].iter().zip(files) {
            let dst = dir.join(file);
            crate::fsutil::write_atomic(&dst, bytes, 0o600).map_err(|e| self.io(&dst, e))?;
        }
        let a = &mut self.config.host_options.auth_options;
        let s = |f: &str| dir.join(f).to_string_lossy().into_owned();
        a.cert_dir = dir.to_string_lossy().into_owned();
        a.ca_cert_path = s("ca.pem");
        a.client_cert_path = s("cert.pem");
        a.client_key_path = s("key.pem");
        a.ca_private_key_path = String::new();
        self.save()
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
    fn issue_server_cert(&mut self, ip: &str, alg: KeyAlgorithm) -> Result<Material, HostError> {
        let issuer = self.server_cert_issuer(alg);
        issuer.issue(ip).map_err(|e| match e {
            IssueError::Cert(e) => self.cert_err(e),
            IssueError::Io { path, source } => self.io(&path, source),
        })
    }

    /// What issues this machine's server certificates (see [`CertIssuer`]).
    fn server_cert_issuer(&self, alg: KeyAlgorithm) -> CertIssuer {
        CertIssuer {
            certs_dir: self.store.files.certs_dir(),
            machine_dir: self.dir(),
            sans: self
                .config
                .host_options
                .auth_options
                .server_cert_sans
                .clone()
                .unwrap_or_default(),
            org: format!("{}.{}", cert::default_org(), self.name()),
            alg,
        }
    }

    /// The request provisioning carries out with `material`.
    fn provision_request(&self, material: Material) -> ProvisionRequest {
        let (ca_pem, server_cert_pem, server_key_pem) = material;
        ProvisionRequest {
            hostname: self.name().to_string(),
            driver_name: self.driver_name().to_string(),
            engine: self.config.host_options.engine_options.clone(),
            engine_port: self.driver.engine_port(),
            ca_pem,
            server_cert_pem,
            server_key_pem,
        }
    }

    /// The daemon's configuration for the first boot, handed to the driver
    /// before `create`: asking for it issues the server certificate for the
    /// address the driver names, which `issued` keeps for provisioning.
    fn boot_engine(&self, alg: KeyAlgorithm, issued: Arc<Mutex<Option<Material>>>) -> BootEngine {
        let issuer = self.server_cert_issuer(alg);
        let base = self.provision_request((String::new(), String::new(), String::new()));
        BootEngine::new(move |target: &BootTarget| {
            let material = issuer.issue(&target.address).map_err(|e| e.to_string())?;
            let mut req = base.clone();
            req.engine_port = target.port;
            (req.ca_pem, req.server_cert_pem, req.server_key_pem) = material.clone();
            let files = provision::boot_files(&req, &target.dockerd);
            if let Ok(mut slot) = issued.lock() {
                *slot = Some(material);
            }
            Ok(files)
        })
    }

    async fn provision_with(
        &mut self,
        alg: KeyAlgorithm,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        self.provision_with_material(alg, None, progress).await
    }

    /// [`Self::provision_with`], with the server certificate already issued
    /// (`material`: CA, certificate, key) when the machine took it at boot.
    async fn provision_with_material(
        &mut self,
        alg: KeyAlgorithm,
        material: Option<Material>,
        progress: Progress<'_>,
    ) -> Result<(), HostError> {
        // nothing to provision without SSH, and no server certificate to
        // issue either (an adopted daemon's certificates stay as they are)
        if self.driver.ssh_target().is_none() {
            return Err(HostError::NoSsh {
                name: self.name().to_string(),
                driver: self.driver_name().to_string(),
            });
        }
        // config.json may have been edited since create: check again
        self.config
            .host_options
            .engine_options
            .validate()
            .map_err(HostError::from)?;
        let material = match material {
            Some(m) => m,
            None => {
                let ip = self.ip().await?;
                progress("Generating the server certificate");
                self.issue_server_cert(&ip, alg)?
            }
        };
        {
            let a = &mut self.config.host_options.auth_options;
            a.ca_cert_remote_path = provision::engine::REMOTE_CA.into();
            a.server_cert_remote_path = provision::engine::REMOTE_SERVER_CERT.into();
            a.server_key_remote_path = provision::engine::REMOTE_SERVER_KEY.into();
        }
        self.save()?;
        let req = self.provision_request(material);
        // A connection lost mid-way is retried once on a new connection (the
        // steps are idempotent); connecting again is itself bounded by the
        // SSH settings' attempts and deadlines.
        let mut retried = false;
        loop {
            progress("Connecting over SSH");
            let client = self.connect().await?;
            let result = self.provision_over(&*client, &req, progress).await;
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
        client: &dyn Session,
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
        let url = self.url().await?;
        let limit = self.store.settings.engine_timeout;
        match self.poll_daemon(&url, limit, false, |_| false).await {
            Err(HostError::Engine { source, .. }) => {
                let tail = client
                    .run(&report.log_command)
                    .await
                    .map(|o| o.stdout_text())
                    .unwrap_or_default();
                Err(HostError::Engine {
                    name: self.name().to_string(),
                    log_tail: tail,
                    source,
                })
            }
            r => r,
        }
    }

    /// Provision again: re-detect the OS, install Docker if missing, rewrite the
    /// daemon configuration with a fresh server certificate and restart it.
    pub async fn provision(&mut self, progress: Progress<'_>) -> Result<(), HostError> {
        let _lock = self.lock_fresh()?;
        self.provision_locked(progress).await
    }

    async fn provision_locked(&mut self, progress: Progress<'_>) -> Result<(), HostError> {
        // a machine nothing is provisioned on keeps its certificates (an
        // adopted daemon's are not the store's)
        if self.driver.needs_provisioning() {
            self.copy_client_certs()?;
        }
        let mut r = self.provision_with(self.key_algorithm(), progress).await;
        if r.is_ok() {
            // a machine whose daemon lost its cluster (or never joined it) joins again
            r = self.apply_swarm(progress, false).await;
        }
        match &r {
            Ok(()) => {
                self.clear_error();
                // new certificates: a context made for the machine follows them
                self.refresh_docker_context().await;
            }
            Err(e) => self.record_error(e),
        }
        r
    }

    /// Upgrade Docker: run the install method again (the install script, or the
    /// distribution's package), then restart the daemon with our configuration.
    /// A machine that is not running is started first.
    pub async fn upgrade(&mut self, progress: Progress<'_>) -> Result<(), HostError> {
        let _lock = self.lock_fresh()?;
        // a stopped machine is started first, as docker-machine did
        let state = self.driver.state().await.map_err(|e| self.drv(e))?;
        if state != State::Running {
            progress("Starting the machine so it can be upgraded");
            self.driver.start().await.map_err(|e| self.drv(e))?;
            self.save()?;
            self.wait_running(progress).await?;
        }
        let client = self.connect().await?;
        let prov_err = |source| HostError::Provision {
            name: self.name().to_string(),
            source,
        };
        let r = async {
            let facts = provision::probe(&*client).await.map_err(prov_err)?;
            let p = self
                .store
                .provisioners
                .detect(&facts.os)
                .map_err(prov_err)?;
            let url = self
                .driver
                .upgrade_install_url()
                .unwrap_or_else(|| self.config.host_options.engine_options.install_url.clone());
            let method = provision::InstallMethod::from_install_url(&url);
            let steps = p.install_steps(&facts, &method).map_err(prov_err)?;
            progress("Upgrading Docker");
            provision::run_steps(&*client, &steps, facts.is_root, progress)
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
}
