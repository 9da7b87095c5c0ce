//! Several processes bootstrapping the certificates of one store at once end
//! up with one CA and one client certificate that chains to it.
//!
//! The test re-runs its own binary in child mode (`MT_BOOTSTRAP_CHILD`), so the
//! store lock is exercised across real processes.

use machine_core::cert::{self, CertPaths, KeyAlgorithm};
use machine_core::driver::DriverRegistry;
use machine_core::store::FileStore;
use machine_core::Store;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD: &str = "MT_BOOTSTRAP_CHILD";

/// Entry point of the child processes of `concurrent_bootstraps_make_one_ca`;
/// not a test of its own (ignored in a normal run, run with `--ignored`).
#[test]
#[ignore = "entry point of child processes"]
fn bootstrap_child() {
    let Ok(root) = std::env::var(CHILD) else {
        return;
    };
    let root = PathBuf::from(root);
    // all children start together
    let go = root.join("go");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let store = Store::new(FileStore::new(&root), DriverRegistry::new());
    match store.bootstrap_certs(KeyAlgorithm::Rsa2048) {
        Ok(outcome) => {
            println!("OUTCOME {outcome:?}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("bootstrap failed: {}", machine_core::host::error_chain(&e));
            std::process::exit(1)
        }
    }
}

#[test]
fn concurrent_bootstraps_make_one_ca() {
    let dir = tempfile::tempdir().expect("tmp");
    let exe = std::env::current_exe().expect("exe");
    let kids: Vec<_> = (0..6)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "--ignored",
                    "bootstrap_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.path().join("go"), b"").expect("go");
    let mut created = 0;
    for k in kids {
        let out = k.wait_with_output().expect("wait");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("OUTCOME Created") {
            created += 1;
        } else {
            assert!(text.contains("OUTCOME Existing"), "{text}");
        }
    }
    assert_eq!(created, 1, "exactly one process creates the CA");
    let p = CertPaths::in_dir(&dir.path().join("certs"));
    let ca = std::fs::read_to_string(&p.ca_cert).expect("ca");
    let client = std::fs::read_to_string(&p.client_cert).expect("client");
    cert::verify_client_cert(&ca, &client, std::time::SystemTime::now())
        .expect("client chains to the one CA");
    assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1);
}
