//! Shared fixtures of the CLI tests: a store in a temporary directory with
//! machines written in the original docker-machine's config.json format,
//! certificates made by `machine_core::cert`, and a fake Docker daemon that
//! answers `GET /version` over mutual TLS.

#![allow(dead_code)]

use machine_core::cert::{self, CertPaths, CertificateAuthority, KeyAlgorithm};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const ALG: KeyAlgorithm = KeyAlgorithm::EcdsaP256;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_machine")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A busybox root file system tarball in `dir`, for `docker import` (no
/// registry is reachable from the tests).
pub fn test_image(dir: &Path) -> PathBuf {
    let image = dir.join("busybox.tar");
    let st = Command::new("bash")
        .arg(repo().join("scripts/make-test-image.sh"))
        .arg(&image)
        .status()
        .expect("make image");
    assert!(
        st.success(),
        "cannot build the test image (busybox-static installed?)"
    );
    image
}

/// A config fixture of the repository, in the original's format.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/config").join(name)).expect("fixture")
}

pub struct TestStore {
    pub dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = TestStore { dir };
        cert::bootstrap(&CertPaths::in_dir(&s.path().join("certs")), "tester", ALG)
            .expect("bootstrap");
        s
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn root(&self) -> String {
        self.path().display().to_string()
    }

    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.path().join("machines").join(name)
    }

    /// Write `config` (text) as the machine's config.json and give the
    /// machine copies of the client certificates.
    pub fn write_machine(&self, name: &str, config: &str) {
        let d = self.machine_dir(name);
        std::fs::create_dir_all(&d).expect("machine dir");
        std::fs::write(d.join("config.json"), config).expect("config");
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::copy(self.path().join("certs").join(f), d.join(f)).expect("copy cert");
        }
    }

    /// A server certificate and key from the store's CA covering `sans`.
    pub fn issue_server(&self, name: &str, sans: &[&str]) -> (String, String) {
        let certs = CertPaths::in_dir(&self.path().join("certs"));
        let ca = CertificateAuthority::load(&certs.ca_cert, &certs.ca_key).expect("ca");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let b = ca
            .issue_server(&format!("tester.{name}"), &sans, ALG)
            .expect("server cert");
        (b.cert_pem, b.key_pem)
    }

    /// A server certificate for machine `name` covering `sans`, in its directory.
    pub fn server_cert(&self, name: &str, sans: &[&str]) -> (String, String) {
        let b = self.issue_server(name, sans);
        let d = self.machine_dir(name);
        std::fs::create_dir_all(&d).expect("machine dir");
        std::fs::write(d.join("server.pem"), &b.0).expect("server.pem");
        std::fs::write(d.join("server-key.pem"), &b.1).expect("server-key.pem");
        b
    }

    /// The original's config of a `none` machine at `url`.
    pub fn none_config(&self, name: &str, url: &str) -> String {
        let host = url
            .trim_start_matches("tcp://")
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or_default();
        fixture("v3-none.json")
            .replace("/home/user/.docker/machine", &self.root())
            .replace("existing-daemon", name)
            .replace("tcp://10.0.0.5:2376", url)
            .replace("\"IPAddress\": \"\"", &format!("\"IPAddress\": \"{host}\""))
    }

    pub fn add_none(&self, name: &str, url: &str) {
        self.write_machine(name, &self.none_config(name, url));
    }

    /// The original's config of a `generic` machine at `ip`.
    pub fn generic_config(&self, name: &str, ip: &str, ssh_port: u16, engine_port: u16) -> String {
        let text = fixture("v3-generic.json")
            .replace("/home/user/.docker/machine", &self.root())
            .replace("web-1", name)
            .replace("203.0.113.10", ip);
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["Driver"]["SSHPort"] = ssh_port.into();
        v["Driver"]["EnginePort"] = engine_port.into();
        let bytes = machine_core::config::to_go_json(&v).expect("encode");
        String::from_utf8(bytes).expect("utf8")
    }

    /// A generic machine with a server certificate covering `ip`.
    pub fn add_generic(&self, name: &str, ip: &str, ssh_port: u16, engine_port: u16) {
        self.write_machine(name, &self.generic_config(name, ip, ssh_port, engine_port));
        self.server_cert(name, &[ip, "localhost"]);
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("MACHINE_STORAGE_PATH", self.path());
        for v in [
            "DOCKER_HOST",
            "SHELL",
            "NO_PROXY",
            "no_proxy",
            "MACHINE_DRIVER",
            "MACHINE_DEBUG",
            "MACHINE_NATIVE_SSH",
            "GENERIC_IP_ADDRESS",
            "GENERIC_SSH_KEY",
            "GENERIC_SSH_USER",
            "GENERIC_SSH_PORT",
            "GENERIC_ENGINE_PORT",
            "MACHINE_DOCKER_INSTALL_URL",
            "ENGINE_REGISTRY_MIRROR",
        ] {
            c.env_remove(v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run machine")
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success and return stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed ({:?}): {}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// A TCP port nothing listens on (bound once, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A fake Docker daemon on 127.0.0.1 answering `GET /version` with `version`
/// over mutual TLS with the store's CA; returns its port. Runs until the
/// test process ends.
pub fn fake_daemon(store: &TestStore, machine: &str, version: &str) -> u16 {
    let (cert_pem, key_pem) = store.issue_server(machine, &["127.0.0.1", "localhost"]);
    let ca = std::fs::read_to_string(store.path().join("certs/ca.pem")).expect("ca");
    let config = cert::server_tls_config(&ca, &cert_pem, &key_pem).expect("server tls");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let body = format!(
        "{{\"Version\":\"{version}\",\"ApiVersion\":\"1.43\",\"Os\":\"linux\",\"Arch\":\"amd64\"}}"
    );
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                let Ok((tcp, _)) = l.accept().await else { continue };
                let acceptor = acceptor.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else { return };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
    });
    port
}

/// A listener that accepts connections and never answers; returns its port.
pub fn silent_listener() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}
