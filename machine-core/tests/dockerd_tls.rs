//! A real `dockerd` (Debian's docker.io) serving our server certificate, reached
//! by the real `docker` client and by our own TLS client with our client
//! certificate. Needs root and `dockerd`; `scripts/dockerd-tls.sh` runs the
//! daemon in its own mount namespace with private data and exec roots.
//! Without dockerd the test fails when CI is set and is skipped otherwise
//! (`machine_test_support::skip_or_fail`).

use machine_core::cert::{self, CertificateAuthority, KeyAlgorithm};
use machine_core::engine;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/dockerd-tls.sh")
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Daemon(PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.0)
            .status();
    }
}

fn docker(dir: &Path, port: u16, cert_dir: &Path) -> std::process::Output {
    Command::new("docker")
        .env("DOCKER_CONFIG", dir.join("docker-config"))
        .args([
            "--tlsverify",
            &format!("--tlscacert={}", cert_dir.join("ca.pem").display()),
            &format!("--tlscert={}", cert_dir.join("cert.pem").display()),
            &format!("--tlskey={}", cert_dir.join("key.pem").display()),
            &format!("-H=tcp://127.0.0.1:{port}"),
            "version",
            "--format",
            "{{.Server.Version}}",
        ])
        .output()
        .expect("run docker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_dockerd_accepts_our_certificates() {
    if !have("dockerd") || !have("docker") {
        machine_test_support::skip_or_fail(
            "dockerd or docker not installed",
            "scripts/testhosts.sh install installs them",
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let ca = CertificateAuthority::generate("tester", KeyAlgorithm::Rsa2048).expect("ca");
    let client = ca
        .issue_client("tester.client", KeyAlgorithm::Rsa2048)
        .expect("client");
    let server = ca
        .issue_server(
            "tester.daemon",
            &["127.0.0.1".into(), "localhost".into()],
            KeyAlgorithm::Rsa2048,
        )
        .expect("server");
    let w = |name: &str, s: &str| std::fs::write(dir.join(name), s).expect("write");
    w("ca.pem", ca.cert_pem());
    w("server.pem", &server.cert_pem);
    w("server-key.pem", &server.key_pem);
    let good = dir.join("good");
    std::fs::create_dir_all(&good).expect("mkdir");
    std::fs::write(good.join("ca.pem"), ca.cert_pem()).expect("w");
    std::fs::write(good.join("cert.pem"), &client.cert_pem).expect("w");
    std::fs::write(good.join("key.pem"), &client.key_pem).expect("w");

    let port = free_port();
    let st = Command::new("bash")
        .arg(script())
        .arg("start")
        .arg(dir)
        .arg(port.to_string())
        .status()
        .expect("start dockerd");
    let _daemon = Daemon(dir.to_path_buf());
    assert!(st.success(), "dockerd-tls.sh start failed");

    // the real docker client with our client certificate
    let out = docker(dir, port, &good);
    assert!(
        out.status.success(),
        "docker version failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!version.is_empty());

    // our own client: same answer
    let tls =
        cert::client_tls_config(ca.cert_pem(), &client.cert_pem, &client.key_pem).expect("tls");
    let v = engine::version("127.0.0.1", port, tls, Duration::from_secs(20))
        .await
        .expect("version over TLS");
    assert_eq!(v.version, version);

    // a client certificate from another CA is refused by the daemon
    let other = CertificateAuthority::generate("intruder", KeyAlgorithm::EcdsaP256).expect("ca2");
    let bad_client = other
        .issue_client("intruder.client", KeyAlgorithm::EcdsaP256)
        .expect("client2");
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("ca.pem"), ca.cert_pem()).expect("w");
    std::fs::write(bad.join("cert.pem"), &bad_client.cert_pem).expect("w");
    std::fs::write(bad.join("key.pem"), &bad_client.key_pem).expect("w");
    let out = docker(dir, port, &bad);
    assert!(
        !out.status.success(),
        "a foreign client certificate must be refused"
    );
    let tls = cert::client_tls_config(ca.cert_pem(), &bad_client.cert_pem, &bad_client.key_pem)
        .expect("tls");
    assert!(
        engine::version("127.0.0.1", port, tls, Duration::from_secs(20))
            .await
            .is_err()
    );

    // our client refuses a daemon whose certificate comes from another CA
    let tls = cert::client_tls_config(other.cert_pem(), &bad_client.cert_pem, &bad_client.key_pem)
        .expect("tls");
    let e = engine::version("127.0.0.1", port, tls, Duration::from_secs(20))
        .await
        .expect_err("wrong CA");
    assert!(matches!(e, engine::EngineError::Tls { .. }), "{e}");
}
