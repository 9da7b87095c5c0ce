//! Create and provision orchestration against a scripted [`Connector`]: no
//! SSH server is involved (the real SSH runs are in the end-to-end suites).
//! The daemon that must answer at the end is a small TLS responder on
//! loopback serving the server certificate that provisioning wrote, so the
//! client side (our CA, mutual-TLS configuration, address check) is real.

use super::*;
use crate::config::BaseDriver;
use crate::driver::{
    DriverContext, DriverFactory, DriverOption, DriverOptions, DriverRegistry, SshTarget,
};
use crate::provision::engine::{REMOTE_SERVER_CERT, REMOTE_SERVER_KEY};
use crate::provision::ProvisionError;
use crate::ssh::{CommandRunner, Connector, SshConfig, SshError};
use crate::store::FileStore;
use crate::ErrorCode;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qta2V5LXRlc3Qta2V5LXRlc3Qta2V5LXRlc3Qt";

fn os_probe() -> Output {
    let os = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/os-release/debian-12"),
    )
    .expect("os-release fixture");
    Output {
        stdout: format!(
            "@@os-release\n{os}\n@@facts\ninit=systemd\nuid=0\ndocker=/usr/bin/docker\ndockerd=/usr/sbin/dockerd\n"
        )
        .into_bytes(),
        ..Output::default()
    }
}

/// What every session of one connector saw and wrote.
#[derive(Debug, Default)]
struct Seen {
    connects: AtomicUsize,
    checks: Mutex<Vec<HostKeyCheck>>,
    commands: Mutex<Vec<String>>,
    files: Mutex<Vec<(String, Vec<u8>, u32)>>,
}

impl Seen {
    fn file(&self, path: &str) -> Option<Vec<u8>> {
        let files = self.files.lock().expect("lock");
        files
            .iter()
            .rev()
            .find(|f| f.0 == path)
            .map(|f| f.1.clone())
    }
}

/// Sessions that answer the OS probe and succeed otherwise; session `n`
/// (0-based) breaks at its `k`-th command when `breaks` lists `(n, k)`.
#[derive(Debug, Default)]
struct ScriptedConnector {
    seen: Arc<Seen>,
    breaks: Vec<(usize, usize)>,
}

#[async_trait]
impl Connector for ScriptedConnector {
    async fn connect(
        &self,
        target: &SshTarget,
        check: &HostKeyCheck,
        _config: &SshConfig,
    ) -> Result<Box<dyn Session>, SshError> {
        let n = self.seen.connects.fetch_add(1, Ordering::SeqCst);
        self.seen.checks.lock().expect("lock").push(check.clone());
        if let HostKeyCheck::Pinned(k) = check {
            if k.trim() != HOST_KEY {
                return Err(SshError::HostKeyMismatch {
                    host: target.host.clone(),
                    expected: k.clone(),
                    presented: HOST_KEY.into(),
                });
            }
        }
        let break_at = self
            .breaks
            .iter()
            .find(|(session, _)| *session == n)
            .map(|(_, k)| *k);
        Ok(Box::new(ScriptedSession {
            seen: self.seen.clone(),
            ran: AtomicUsize::new(0),
            break_at,
        }))
    }
}

#[derive(Debug)]
struct ScriptedSession {
    seen: Arc<Seen>,
    ran: AtomicUsize,
    break_at: Option<usize>,
}

#[async_trait]
impl CommandRunner for ScriptedSession {
    async fn run(&self, command: &str) -> Result<Output, SshError> {
        let i = self.ran.fetch_add(1, Ordering::SeqCst);
        if self.break_at.is_some_and(|k| i >= k) {
            return Err(SshError::Session {
                host: "127.0.0.1".into(),
                command: command.into(),
                reason: "connection reset".into(),
            });
        }
        self.seen
            .commands
            .lock()
            .expect("lock")
            .push(command.to_string());
        if command.contains("@@os-release") {
            return Ok(os_probe());
        }
        if command.contains("sha256sum --") {
            // what the machine holds now, and a running daemon
            let files = self.seen.files.lock().expect("lock").clone();
            let mut out = String::new();
            for (path, contents, _) in &files {
                out.push_str(&format!(
                    "{}  {path}\n",
                    crate::archive::sha256_hex(contents)
                ));
            }
            out.push_str("@@docker=active\n");
            return Ok(Output {
                stdout: out.into_bytes(),
                ..Output::default()
            });
        }
        if command.contains("journalctl") {
            return Ok(Output {
                stdout: b"dockerd: failed to start daemon: bad config\n".to_vec(),
                ..Output::default()
            });
        }
        Ok(Output::default())
    }
    async fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), SshError> {
        self.seen
            .files
            .lock()
            .expect("lock")
            .push((path.to_string(), contents.to_vec(), mode));
        Ok(())
    }
}

#[async_trait]
impl Session for ScriptedSession {
    fn host_key(&self) -> &str {
        HOST_KEY
    }
    async fn download(&self, path: &str, _local: &Path) -> Result<u32, SshError> {
        Err(SshError::Transfer {
            host: "127.0.0.1".into(),
            path: path.into(),
            reason: "not scripted".into(),
        })
    }
    async fn close(self: Box<Self>) {}
}

/// A machine on loopback whose daemon listens on `engine_port`, at the
/// address the test sets in `addr` (it may change, as a cloud instance's
/// public address does across a stop and start).
#[derive(Debug)]
struct LoopDriver {
    base: BaseDriver,
    engine_port: u16,
    upgrade_url: Option<&'static str>,
    addr: Arc<Mutex<String>>,
    /// A machine that takes the daemon's files at boot: `create` asks for
    /// them and they land on the scripted machine.
    takes_boot: Option<Arc<Seen>>,
    boot: Option<crate::driver::BootEngine>,
}

impl LoopDriver {
    fn addr(&self) -> String {
        self.addr.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Driver for LoopDriver {
    fn driver_name(&self) -> &str {
        "loop"
    }
    async fn create(&mut self) -> Result<(), DriverError> {
        if let (Some(seen), Some(boot)) = (&self.takes_boot, &self.boot) {
            let target = crate::driver::BootTarget {
                address: self.addr(),
                port: self.engine_port,
                dockerd: "/usr/sbin/dockerd".into(),
            };
            for f in boot.files("loop", &target)? {
                seen.files
                    .lock()
                    .expect("lock")
                    .push((f.path, f.contents, f.mode));
            }
        }
        Ok(())
    }
    fn set_boot_engine(&mut self, boot: crate::driver::BootEngine) {
        self.boot = Some(boot);
    }
    async fn start(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    async fn remove(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    async fn state(&self) -> Result<State, DriverError> {
        Ok(State::Running)
    }
    async fn ip(&self) -> Result<String, DriverError> {
        Ok(self.addr())
    }
    fn ssh_target(&self) -> Option<SshTarget> {
        Some(SshTarget {
            host: self.addr(),
            port: 22,
            user: "root".into(),
            key_path: None,
        })
    }
    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        let mut m = Map::new();
        m.insert("MachineName".into(), self.base.machine_name.clone().into());
        m.insert("EnginePort".into(), self.engine_port.into());
        Ok(m)
    }
    async fn url(&self) -> Result<String, DriverError> {
        Ok(format!("tcp://{}:{}", self.addr(), self.engine_port))
    }
    fn engine_port(&self) -> u16 {
        self.engine_port
    }
    fn upgrade_install_url(&self) -> Option<String> {
        self.upgrade_url.map(str::to_string)
    }
}

#[derive(Debug)]
struct LoopFactory {
    engine_port: u16,
    upgrade_url: Option<&'static str>,
    addr: Arc<Mutex<String>>,
    takes_boot: Option<Arc<Seen>>,
}

impl DriverFactory for LoopFactory {
    fn name(&self) -> &str {
        "loop"
    }
    fn options(&self) -> Vec<DriverOption> {
        Vec::new()
    }
    fn new_driver(
        &self,
        ctx: &DriverContext,
        _: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(LoopDriver {
            base: BaseDriver {
                machine_name: ctx.machine_name.clone(),
                ..BaseDriver::default()
            },
            engine_port: self.engine_port,
            upgrade_url: self.upgrade_url,
            addr: self.addr.clone(),
            takes_boot: self.takes_boot.clone(),
            boot: None,
        }))
    }
    fn load_driver(
        &self,
        _: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let name = saved
            .get("MachineName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let port = saved
            .get("EnginePort")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_default();
        Ok(Box::new(LoopDriver {
            base: BaseDriver {
                machine_name: name.into(),
                ..BaseDriver::default()
            },
            engine_port: port,
            upgrade_url: self.upgrade_url,
            addr: self.addr.clone(),
            takes_boot: self.takes_boot.clone(),
            boot: None,
        }))
    }
}

/// Answers `GET /version` over TLS with the server certificate and key that
/// provisioning wrote to the scripted machine.
async fn serve_engine(listener: tokio::net::TcpListener, seen: Arc<Seen>) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (Some(cert), Some(key)) = (seen.file(REMOTE_SERVER_CERT), seen.file(REMOTE_SERVER_KEY))
        else {
            continue; // not provisioned yet: drop the connection
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(&key).expect("server key PEM");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = tls.read(&mut buf).await;
            let body = r#"{"Version":"27.5.1","ApiVersion":"1.47","Os":"linux","Arch":"amd64"}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    seen: Arc<Seen>,
    steps: Arc<Mutex<Vec<String>>>,
    addr: Arc<Mutex<String>>,
}

impl World {
    /// A store whose `loop` machines are reached through a scripted
    /// connector; with `engine`, a daemon answers once provisioned.
    async fn new(breaks: Vec<(usize, usize)>, engine: bool) -> World {
        Self::with_upgrade_url(breaks, engine, None).await
    }

    async fn with_upgrade_url(
        breaks: Vec<(usize, usize)>,
        engine: bool,
        upgrade_url: Option<&'static str>,
    ) -> World {
        Self::build(breaks, engine, upgrade_url, false).await
    }

    /// Machines that take the daemon's configuration at boot.
    async fn booting() -> World {
        Self::build(vec![], true, None, true).await
    }

    async fn build(
        breaks: Vec<(usize, usize)>,
        engine: bool,
        upgrade_url: Option<&'static str>,
        takes_boot: bool,
    ) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Seen::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let engine_port = listener.local_addr().expect("addr").port();
        if engine {
            tokio::spawn(serve_engine(listener, seen.clone()));
            // the same daemon at a second loopback address, for machines
            // whose address changes
            if let Ok(second) = tokio::net::TcpListener::bind(("127.0.0.2", engine_port)).await {
                tokio::spawn(serve_engine(second, seen.clone()));
            }
        } else {
            drop(listener); // nothing listens: the daemon never answers
        }
        let addr = Arc::new(Mutex::new("127.0.0.1".to_string()));
        let mut drivers = DriverRegistry::new();
        drivers.register(Arc::new(LoopFactory {
            engine_port,
            upgrade_url,
            addr: addr.clone(),
            takes_boot: takes_boot.then(|| seen.clone()),
        }));
        let settings = Settings {
            engine_timeout: Duration::from_secs(1),
            ..Settings::default()
        };
        let store = Store::new(FileStore::new(dir.path()), drivers)
            .with_settings(settings)
            .with_connector(Arc::new(ScriptedConnector {
                seen: seen.clone(),
                breaks,
            }));
        World {
            _dir: dir,
            store,
            seen,
            steps: Arc::new(Mutex::new(Vec::new())),
            addr,
        }
    }

    /// From now on the machines are at `addr`.
    fn move_to(&self, addr: &str) {
        *self.addr.lock().expect("lock") = addr.to_string();
    }

    async fn create(&self, name: &str) -> Result<Host, HostError> {
        let steps = self.steps.clone();
        let progress = move |s: &str| steps.lock().expect("lock").push(s.to_string());
        self.store
            .create(name, CreateOptions::new("loop"), &progress)
            .await
    }

    fn steps(&self) -> Vec<String> {
        self.steps.lock().expect("lock").clone()
    }

    fn connects(&self) -> usize {
        self.seen.connects.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn create_provisions_over_one_connection_and_pins_the_host_key() {
    let w = World::new(vec![], true).await;
    let host = w.create("m1").await.expect("create");
    assert_eq!(w.connects(), 1, "one SSH connection per create");
    assert_eq!(
        w.seen.checks.lock().expect("lock").as_slice(),
        [HostKeyCheck::TrustOnFirstUse]
    );
    assert!(host.last_error().is_none());
    // the daemon answered with the certificate we issued for 127.0.0.1
    let v = host
        .docker_version(Duration::from_secs(5))
        .await
        .expect("version");
    assert_eq!(v.version, "27.5.1");
    let commands = w.seen.commands.lock().expect("lock").clone();
    assert!(
        commands
            .iter()
            .any(|c| c.contains("systemctl restart docker")),
        "{commands:?}"
    );
    let pinned = known_hosts::read_machine(&host.dir())
        .expect("known_hosts")
        .expect("a pinned key");
    assert_eq!(pinned.1.trim(), HOST_KEY);
    assert!(w.steps().iter().any(|s| s == "Docker is up and running!"));

    // later connections require the pinned key
    host.connect().await.expect("connect").close().await;
    assert_eq!(
        w.seen.checks.lock().expect("lock").last(),
        Some(&HostKeyCheck::Pinned(HOST_KEY.into()))
    );
}

/// The machine's address changes under it (a cloud instance's public
/// address after a stop and start): its certificate no longer covers the
/// address, `env` refuses with the certificate error, and
/// `regenerate-certs` issues one for the new address that the daemon there
/// serves and the client accepts.
#[tokio::test]
async fn regenerate_certs_covers_a_changed_address() {
    let w = World::new(vec![], true).await;
    let mut host = w.create("moved").await.expect("create");
    host.check_certs().await.expect("made for 127.0.0.1");
    w.move_to("127.0.0.2");
    let e = host
        .env_vars()
        .await
        .expect_err("an address the certificate lacks");
    assert_eq!(e.code(), ErrorCode::CertCheck, "{e}");
    assert!(e.to_string().contains("127.0.0.2"), "{e}");
    host.regenerate_certs(false, &|_: &str| {})
        .await
        .expect("regenerate-certs");
    host.check_certs().await.expect("made for 127.0.0.2");
    let env = host.env_vars().await.expect("env");
    let docker_host = env.vars.iter().find(|(k, _)| k == "DOCKER_HOST");
    assert_eq!(
        docker_host.map(|(_, v)| v.clone()),
        Some(format!("tcp://127.0.0.2:{}", host.driver().engine_port()))
    );
    let v = host
        .docker_version(Duration::from_secs(5))
        .await
        .expect("the daemon at the new address answers");
    assert_eq!(v.version, "27.5.1");
}

#[tokio::test]
async fn a_dropped_connection_is_retried_once_on_a_new_connection() {
    // the first session breaks at its third command
    let w = World::new(vec![(0, 2)], true).await;
    let host = w.create("m1").await.expect("create after one reconnect");
    assert_eq!(w.connects(), 2);
    assert!(
        w.steps()
            .iter()
            .any(|s| s == "Connection lost; reconnecting"),
        "{:?}",
        w.steps()
    );
    assert!(host.last_error().is_none());
}

#[tokio::test]
async fn a_second_drop_fails_create_records_the_error_and_rm_cleans_up() {
    let w = World::new(vec![(0, 2), (1, 0)], true).await;
    let e = w.create("m1").await.expect_err("two drops");
    assert!(
        matches!(
            e,
            HostError::Provision {
                source: ProvisionError::Transport { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), crate::ErrorCode::Provision);
    assert_eq!(w.connects(), 2, "one retry, no more");
    // the machine stays in the store with the reason recorded
    let host = w.store.get("m1").expect("kept after a failed create");
    let recorded = host.last_error().expect("recorded error");
    assert!(recorded.contains("connection reset"), "{recorded}");
    let listed = w.store.list(Duration::from_secs(2)).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].error.contains("connection reset"), "{listed:?}");
    // rm after the failure removes everything
    let dir = host.dir();
    w.store.remove("m1", false).await.expect("rm");
    assert!(!dir.exists());
    assert!(w.store.names().expect("names").is_empty());
}

#[tokio::test]
async fn a_daemon_that_never_answers_is_reported_with_its_log() {
    let w = World::new(vec![], false).await;
    let e = w.create("m1").await.expect_err("no daemon");
    match &e {
        HostError::Engine { log_tail, .. } => {
            assert!(log_tail.contains("bad config"), "{log_tail}")
        }
        other => panic!("{other:?}"),
    }
    let host = w.store.get("m1").expect("kept");
    let recorded = host.last_error().expect("recorded error");
    assert!(recorded.contains("127.0.0.1"), "{recorded}");
}

#[tokio::test]
async fn a_changed_host_key_is_refused_after_pinning() {
    let w = World::new(vec![], true).await;
    let host = w.create("m1").await.expect("create");
    // the machine now presents another key than the one pinned
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG90aGVyLWtleS1vdGhlci1rZXktb3RoZXIta2V5";
    known_hosts::write(&host.dir(), "127.0.0.1", 22, other).expect("re-pin");
    let e = match host.connect().await {
        Err(e) => e,
        Ok(_) => panic!("a changed key must be refused"),
    };
    assert_eq!(e.code(), crate::ErrorCode::HostKeyMismatch);
}

#[tokio::test]
async fn upgrade_follows_the_drivers_install_method() {
    for (driver_says, expect_script) in [(None, true), (Some("none"), false)] {
        let w = World::with_upgrade_url(vec![], true, driver_says).await;
        let mut opts = CreateOptions::new("loop");
        opts.engine.install_url = "https://get.docker.com".into();
        let steps = w.steps.clone();
        let progress = move |s: &str| steps.lock().expect("lock").push(s.to_string());
        let mut host = w.store.create("m1", opts, &progress).await.expect("create");
        w.seen.commands.lock().expect("lock").clear();
        host.upgrade(&|_: &str| {}).await.expect("upgrade");
        let commands = w.seen.commands.lock().expect("lock").clone();
        let fetched = commands.iter().any(|c| c.contains("get.docker.com"));
        assert_eq!(fetched, expect_script, "{driver_says:?}: {commands:?}");
        // either way Docker is restarted with the machine's configuration
        assert!(
            commands
                .iter()
                .any(|c| c.contains("systemctl restart docker")),
            "{commands:?}"
        );
    }
}

/// A driver that records a made resource through its checkpoint, then fails.
#[derive(Debug, Default)]
struct CheckpointDriver {
    name: String,
    made: String,
    checkpoint: Option<crate::driver::Checkpoint>,
    removed: Arc<Mutex<Vec<String>>>,
    /// config.json as it was on disk right after the checkpoint
    seen: Arc<Mutex<String>>,
    dir: std::path::PathBuf,
}

#[async_trait]
impl Driver for CheckpointDriver {
    fn driver_name(&self) -> &str {
        "ckpt"
    }
    fn set_checkpoint(&mut self, c: crate::driver::Checkpoint) {
        self.checkpoint = Some(c);
    }
    async fn create(&mut self) -> Result<(), DriverError> {
        self.made = "res-1".into();
        if let Some(c) = &self.checkpoint {
            c.save(self)?;
        }
        *self.seen.lock().expect("lock") =
            std::fs::read_to_string(self.dir.join("config.json")).unwrap_or_default();
        Err(crate::driver::not_supported("ckpt", "the rest of create"))
    }
    async fn remove(&mut self) -> Result<(), DriverError> {
        self.removed.lock().expect("lock").push(self.made.clone());
        Ok(())
    }
    async fn state(&self) -> Result<State, DriverError> {
        Ok(State::Running)
    }
    async fn ip(&self) -> Result<String, DriverError> {
        Ok("127.0.0.1".into())
    }
    fn ssh_target(&self) -> Option<SshTarget> {
        None
    }
    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        let mut m = Map::new();
        m.insert("MachineName".into(), self.name.clone().into());
        m.insert("Made".into(), self.made.clone().into());
        Ok(m)
    }
}

#[derive(Debug, Default)]
struct CheckpointFactory {
    removed: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<String>>,
}

impl DriverFactory for CheckpointFactory {
    fn name(&self) -> &str {
        "ckpt"
    }
    fn options(&self) -> Vec<DriverOption> {
        Vec::new()
    }
    fn new_driver(
        &self,
        ctx: &DriverContext,
        _: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(CheckpointDriver {
            name: ctx.machine_name.clone(),
            removed: self.removed.clone(),
            seen: self.seen.clone(),
            dir: ctx.machine_dir.clone(),
            ..CheckpointDriver::default()
        }))
    }
    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(CheckpointDriver {
            name: ctx.machine_name.clone(),
            made: saved
                .get("Made")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            removed: self.removed.clone(),
            ..CheckpointDriver::default()
        }))
    }
}

#[tokio::test]
async fn a_checkpoint_saves_mid_create_and_remove_sees_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let factory = Arc::new(CheckpointFactory::default());
    let removed = factory.removed.clone();
    let seen = factory.seen.clone();
    let store = Store::new(
        FileStore::new(dir.path()),
        DriverRegistry::new().with(factory),
    );
    let e = store
        .create("c1", CreateOptions::new("ckpt"), &|_: &str| {})
        .await
        .expect_err("create fails");
    assert!(e.to_string().contains("c1"), "{e}");
    let mid = seen.lock().expect("lock").clone();
    assert!(
        mid.contains("\"Made\": \"res-1\""),
        "saved while creating: {mid}"
    );
    let cfg = std::fs::read_to_string(dir.path().join("machines/c1/config.json")).expect("config");
    assert!(cfg.contains("\"Made\": \"res-1\""), "{cfg}");
    let host = store.get("c1").expect("kept");
    assert_eq!(host.state().await.expect("state"), State::Error);
    store.remove("c1", false).await.expect("remove");
    assert_eq!(removed.lock().expect("lock").as_slice(), ["res-1"]);
}

/// A machine that took the daemon's files at its first boot: the server
/// certificate is issued once, for the address the driver named before the
/// machine existed; provisioning finds every file in place and the daemon
/// running, so it neither rewrites nor restarts anything.
#[tokio::test]
async fn a_machine_configured_at_boot_is_only_checked() {
    let w = World::booting().await;
    let host = w.create("b1").await.expect("create");
    let commands = w.seen.commands.lock().expect("lock").clone();
    assert!(
        !commands.iter().any(|c| c.contains("restart docker")),
        "{commands:?}"
    );
    assert!(commands.iter().any(|c| c.contains("sha256sum --")));
    assert!(
        w.steps()
            .iter()
            .any(|s| s == "Docker is already configured with this machine's certificates"),
        "{:?}",
        w.steps()
    );
    assert!(!w
        .steps()
        .iter()
        .any(|s| s == "Generating the server certificate"));
    // the certificate on the machine is the one saved beside it
    let saved = std::fs::read(host.dir().join("server.pem")).expect("server.pem");
    assert_eq!(w.seen.file(REMOTE_SERVER_CERT), Some(saved));
    let files = w.seen.files.lock().expect("lock").clone();
    assert_eq!(files.len(), 4, "CA, certificate, key, drop-in: {files:?}");
    let (_, dropin, mode) = files
        .iter()
        .find(|f| f.0.ends_with("docker.service.d/10-machine.conf"))
        .expect("drop-in");
    assert_eq!(*mode, 0o644);
    let dropin = String::from_utf8_lossy(dropin);
    assert!(dropin.contains("ExecStart=/usr/sbin/dockerd"), "{dropin}");
    assert!(dropin.contains("--tlsverify"), "{dropin}");
    assert_eq!(
        files.iter().find(|f| f.0 == REMOTE_SERVER_KEY).map(|f| f.2),
        Some(0o600)
    );
    host.docker_version(Duration::from_secs(5))
        .await
        .expect("the daemon answers with the boot certificate");
    assert!(host.last_error().is_none());
}

/// A driver that never asks for the boot files: provisioning issues the
/// certificate, finds the files missing, writes them and restarts the
/// daemon, as before.
#[tokio::test]
async fn a_machine_without_the_boot_files_is_configured_over_ssh() {
    let w = World::new(vec![], true).await;
    let host = w.create("b2").await.expect("create");
    let commands = w.seen.commands.lock().expect("lock").clone();
    assert!(
        commands.iter().any(|c| c.contains("restart docker")),
        "{commands:?}"
    );
    assert!(!w
        .steps()
        .iter()
        .any(|s| s.starts_with("Docker is already configured")));
    host.docker_version(Duration::from_secs(5))
        .await
        .expect("version");
}

/// `start` returns once the daemon answers; a daemon that never answers
/// makes it fail with a timeout that names the daemon's URL.
#[tokio::test]
async fn start_waits_for_the_daemon() {
    let w = World::new(vec![], true).await;
    w.create("s1").await.expect("create");
    let mut host = w.store.get("s1").expect("get");
    host.start().await.expect("start");
    host.docker_version(Duration::from_secs(5))
        .await
        .expect("answers right after start");

    // the machine comes back where no daemon answers: a timeout naming it
    w.move_to("127.0.0.3");
    let err = host.start().await.expect_err("no daemon answers");
    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
    assert!(err.to_string().contains("127.0.0.3"), "{err}");

    let w = World::new(vec![], false).await;
    assert!(w.create("s2").await.is_err(), "no daemon: create fails");
    let mut host = w.store.get("s2").expect("get");
    // a machine whose provisioning failed is not waited for
    host.start().await.expect("start without waiting");
}
