//! End-to-end: the generic driver against real hosts brought up by
//! `scripts/testhosts.sh` (network namespaces with their own sshd; Debian's
//! docker.io installed, no daemon running until we provision it).
//!
//! The hosts are announced by `MT_HOSTS` (addresses), `MT_HOST_NAMES`,
//! `MT_KEY` (client key) and `MT_SUDO_USER` (a non-root user with passwordless
//! sudo), as printed by `scripts/testhosts.sh env`. This suite (`e2e_generic`
//! in test-support/hosts.json) owns hosts 0, 1, 2, 3 and 9; without them the
//! tests fail when CI is set and are skipped otherwise
//! (`machine_test_support::test_hosts::for_suite`). Each test uses its own
//! host, so they may run in parallel.

use machine_core::driver::OptionValue;
use machine_core::host::{error_chain, CreateOptions, HostError, Settings};
use machine_core::ssh::SshError;
use machine_core::store::{FileStore, StoreError};
use machine_core::{Host, State, Store};
use machine_test_support::test_hosts::{for_suite, Hosts, Suite};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Env {
    hosts: Hosts,
    key: PathBuf,
    sudo_user: String,
}

fn test_env() -> Option<Env> {
    let hosts = for_suite(Suite::E2eGeneric)?;
    Some(Env {
        key: hosts.key().to_path_buf(),
        sudo_user: hosts.sudo_user().to_string(),
        hosts,
    })
}

fn store(dir: &Path, engine_timeout: u64) -> Store {
    Store::new(FileStore::new(dir), machine_drivers::builtin_registry()).with_settings(Settings {
        engine_timeout: Duration::from_secs(engine_timeout),
        running_timeout: Duration::from_secs(30),
        ..Settings::default()
    })
}

fn options(ip: &str, key: &Path, user: &str) -> CreateOptions {
    let mut o = CreateOptions::new("generic");
    o.use_environment = false;
    o.driver_option("generic-ip-address", OptionValue::String(ip.into()))
        .driver_option(
            "generic-ssh-key",
            OptionValue::String(key.display().to_string()),
        )
        .driver_option("generic-ssh-user", OptionValue::String(user.into()));
    // The hosts share the machine's kernel: no bridge or iptables for their daemons.
    for f in ["bridge=none", "iptables=false", "ip6tables=false"] {
        o.engine_flag("engine-opt", OptionValue::String(f.into()))
            .expect("engine-opt");
    }
    o.engine_flag("engine-install-url", OptionValue::String("none".into()))
        .expect("install url");
    o
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run the real `docker` CLI with the machine's environment, rendered for bash
/// and evaluated by bash.
fn docker_via_bash_env(
    host_env: &machine_core::env::MachineEnv,
    tmp: &Path,
    args: &str,
) -> std::process::Output {
    let text =
        machine_core::env::render(host_env, machine_core::env::Shell::Bash, None).expect("render");
    let envfile = tmp.join("env.sh");
    std::fs::write(&envfile, text).expect("env file");
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "eval \"$(cat {})\" && docker {args}",
            envfile.display()
        ))
        .env("DOCKER_CONFIG", tmp.join("docker-config"))
        .env_remove("DOCKER_HOST")
        .output()
        .expect("bash")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn create(s: &Store, name: &str, o: CreateOptions) -> Host {
    match s
        .create(name, o, &|step: &str| eprintln!("[{name}] {step}"))
        .await
    {
        Ok(h) => h,
        Err(e) => panic!("create {name}: {}", error_chain(&e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_run_container_regenerate_and_pin() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let s = store(&tmp.path().join("store"), 120);
    let ip = env.hosts.addr(0);
    let mut host = create(&s, "e2e-root", options(ip, &env.key, "root")).await;
    assert_eq!(host.state().await.expect("state"), State::Running);
    assert_eq!(host.url().await.expect("url"), format!("tcp://{ip}:2376"));

    // the real docker client, configured by our env output evaluated in bash
    let e = host.env_vars().await.expect("env");
    let image = tmp.path().join("busybox.tar");
    let st = Command::new("bash")
        .arg(repo().join("scripts/make-test-image.sh"))
        .arg(&image)
        .status()
        .expect("make image");
    assert!(st.success());
    ok(&docker_via_bash_env(
        &e,
        tmp.path(),
        &format!("import {} mt-busybox:latest", image.display()),
    ));
    let said = ok(&docker_via_bash_env(
        &e,
        tmp.path(),
        "run --rm --network none mt-busybox:latest echo hello-from-container",
    ));
    assert_eq!(said.trim(), "hello-from-container");
    let info = ok(&docker_via_bash_env(
        &e,
        tmp.path(),
        "info --format '{{json .Labels}}'",
    ));
    assert!(info.contains("provider=generic"), "{info}");

    // the none driver: an existing daemon at a URL, reached with the store's client certificate
    let mut o = CreateOptions::new("none");
    o.use_environment = false;
    o.driver_option("url", OptionValue::String(format!("tcp://{ip}:2376")));
    let none = create(&s, "e2e-none", o).await;
    assert_eq!(none.state().await.expect("state"), State::Running);
    let ne = none.env_vars().await.expect("env");
    let said = ok(&docker_via_bash_env(
        &ne,
        tmp.path(),
        "run --rm --network none mt-busybox:latest hostname",
    ));
    assert!(!said.trim().is_empty());
    let rows = s.list(Duration::from_secs(10)).await.expect("ls");
    let docker_versions: Vec<&str> = rows.iter().map(|r| r.docker_version.as_str()).collect();
    assert!(
        docker_versions.iter().all(|v| v.starts_with('v')),
        "{rows:?}"
    );
    s.remove("e2e-none", false).await.expect("rm none");

    // the machine's files are on the remote with the right modes
    let out = host
        .ssh("stat -c '%a %n' /etc/docker/server-key.pem /etc/docker/ca.pem && hostname")
        .await
        .expect("ssh");
    let text = out.stdout_text();
    assert!(text.contains("600 /etc/docker/server-key.pem"), "{text}");
    assert!(
        text.trim_end().ends_with("e2e-root"),
        "hostname set: {text}"
    );

    // regenerate-certs: a new server certificate, and the daemon still answers
    let before = std::fs::read(host.dir().join("server.pem")).expect("server.pem");
    host.regenerate_certs(false, &|_: &str| {})
        .await
        .expect("regenerate");
    let after = std::fs::read(host.dir().join("server.pem")).expect("server.pem");
    assert_ne!(before, after);
    let remote = host
        .ssh("cat /etc/docker/server.pem")
        .await
        .expect("ssh")
        .stdout;
    assert_eq!(remote, after, "the new certificate is on the machine");
    ok(&docker_via_bash_env(&e, tmp.path(), "version"));

    // copy both ways
    let local = tmp.path().join("up.txt");
    std::fs::write(&local, "payload\n").expect("w");
    host.copy_to(&local, "/tmp/up.txt").await.expect("copy_to");
    let back = tmp.path().join("down.txt");
    host.copy_from("/tmp/up.txt", &back)
        .await
        .expect("copy_from");
    assert_eq!(std::fs::read_to_string(&back).expect("r"), "payload\n");

    // a host key other than the pinned one is refused, naming both fingerprints
    let pin_file = host.dir().join("known_hosts");
    let real_pin = std::fs::read_to_string(&pin_file).expect("pin recorded at create");
    let other = tmp.path().join("otherkey");
    let other_pub = machine_core::ssh::client::generate_key(&other).expect("key");
    let pattern = real_pin.split(' ').next().expect("pattern");
    std::fs::write(&pin_file, format!("{pattern} {other_pub}\n")).expect("w");
    let err = host.ssh("true").await.expect_err("mismatch must fail");
    match &err {
        HostError::Ssh {
            source:
                SshError::HostKeyMismatch {
                    expected,
                    presented,
                    ..
                },
            ..
        } => {
            assert!(
                expected.starts_with("SHA256:") && presented.starts_with("SHA256:"),
                "{expected} {presented}"
            );
            assert_ne!(expected, presented);
        }
        other => panic!("expected a host key mismatch, got {}", error_chain(other)),
    }
    // re-pin explicitly, then it works again
    host.forget_host_key().expect("forget");
    assert!(host.ssh("true").await.expect("ssh").success());
    assert_eq!(std::fs::read_to_string(&pin_file).expect("pin"), real_pin);

    s.remove("e2e-root", false).await.expect("rm");
    assert!(!s.files().exists("e2e-root"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_root_user_with_sudo() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let s = store(&tmp.path().join("store"), 120);
    let host = create(
        &s,
        "e2e-sudo",
        options(env.hosts.addr(1), &env.key, &env.sudo_user),
    )
    .await;
    let v = host
        .docker_version(Duration::from_secs(10))
        .await
        .expect("daemon answers");
    assert!(!v.version.is_empty());
    let who = host.ssh("id -un").await.expect("ssh").stdout_text();
    assert_eq!(who.trim(), env.sudo_user);
    let mode = host
        .ssh("sudo -n stat -c %a /etc/docker/server-key.pem")
        .await
        .expect("ssh")
        .stdout_text();
    assert_eq!(mode.trim(), "600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_that_cannot_start_reports_its_log_and_rm_cleans_up() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let s = store(&tmp.path().join("store"), 15);
    let mut o = options(env.hosts.addr(2), &env.key, "root");
    o.engine_flag(
        "engine-opt",
        OptionValue::String("no-such-daemon-flag=1".into()),
    )
    .expect("opt");
    let err = s
        .create("e2e-bad", o, &|_: &str| {})
        .await
        .expect_err("dockerd must fail");
    let msg = error_chain(&err);
    assert!(matches!(err, HostError::Engine { .. }), "{msg}");
    assert!(
        msg.contains("no-such-daemon-flag"),
        "the daemon's log is quoted: {msg}"
    );
    // the machine stays listed, in state Error, with what failed
    let h = s.get("e2e-bad").expect("still in the store");
    assert_eq!(h.state().await.expect("state"), State::Error);
    assert!(h
        .last_error()
        .expect("recorded")
        .contains("no-such-daemon-flag"));
    let rows = s.list(Duration::from_secs(10)).await.expect("ls");
    assert_eq!(rows[0].state, State::Error);
    s.remove("e2e-bad", false).await.expect("rm");
    assert!(s.names().expect("names").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_name_one_wins() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let s = store(&tmp.path().join("store"), 120);
    let o = options(env.hosts.addr(3), &env.key, "root");
    let (a, b) = tokio::join!(
        s.create("e2e-race", o.clone(), &|_: &str| {}),
        s.create("e2e-race", o, &|_: &str| {})
    );
    let (won, lost) = match (a, b) {
        (Ok(h), Err(e)) | (Err(e), Ok(h)) => (h, e),
        (Ok(_), Ok(_)) => panic!("both creates succeeded"),
        (Err(a), Err(b)) => panic!("both failed: {} / {}", error_chain(&a), error_chain(&b)),
    };
    assert!(
        matches!(lost, HostError::Store(StoreError::AlreadyExists { .. })),
        "{}",
        error_chain(&lost)
    );
    assert!(won.docker_version(Duration::from_secs(10)).await.is_ok());
    assert_eq!(s.names().expect("names"), ["e2e-race"]);
    assert!(s.get("e2e-race").expect("loads").last_error().is_none());

    // an unreachable SSH port: bounded retries, then a clean Error state
    let mut o = options("127.0.0.1", &env.key, "root");
    o.driver_option("generic-ssh-port", OptionValue::Int(1));
    let s2 = Store::new(
        FileStore::new(tmp.path().join("store2")),
        machine_drivers::builtin_registry(),
    )
    .with_settings(Settings {
        ssh: machine_core::ssh::SshConfig {
            attempts: 2,
            connect_timeout: Duration::from_secs(3),
            ..Default::default()
        },
        running_timeout: Duration::from_secs(3),
        ..Settings::default()
    });
    let started = std::time::Instant::now();
    let err = s2
        .create("e2e-down", o, &|_: &str| {})
        .await
        .expect_err("unreachable");
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
    let h = s2.get("e2e-down").expect("kept for rm");
    assert_eq!(
        h.state().await.expect("state"),
        State::Error,
        "{}",
        error_chain(&err)
    );
    s2.remove("e2e-down", false).await.expect("rm");
}

/// Kill every sshd in network namespace `ns` (a test host's listener and
/// sessions).
fn kill_sshd(ns: &str) {
    let pids = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sshd" {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_killed_during_provisioning_gives_bounded_retry_then_error() {
    let Some(env) = test_env() else { return };
    let ns = env
        .hosts
        .host(9)
        .name
        .clone()
        .expect("MT_HOST_NAMES names the test hosts' network namespaces");
    let tmp = tempfile::tempdir().expect("tmp");
    let s = Store::new(
        FileStore::new(tmp.path().join("store")),
        machine_drivers::builtin_registry(),
    )
    .with_settings(Settings {
        ssh: machine_core::ssh::SshConfig {
            attempts: 3,
            connect_timeout: Duration::from_secs(3),
            backoff: Duration::from_millis(300),
            ..Default::default()
        },
        running_timeout: Duration::from_secs(10),
        engine_timeout: Duration::from_secs(10),
    });
    let killed = std::sync::atomic::AtomicBool::new(false);
    let steps = std::sync::Mutex::new(Vec::new());
    let progress = |step: &str| {
        steps.lock().expect("lock").push(step.to_string());
        if step == "Copying CA certificate"
            && !killed.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            kill_sshd(&ns);
        }
    };
    let started = std::time::Instant::now();
    let err = s
        .create(
            "e2e-cut",
            options(env.hosts.addr(9), &env.key, "root"),
            &progress,
        )
        .await
        .expect_err("sshd is gone");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded: {:?}",
        started.elapsed()
    );
    let msg = error_chain(&err);
    assert!(
        matches!(
            err,
            HostError::Ssh {
                source: SshError::Connect { .. },
                ..
            }
        ),
        "{msg}"
    );
    let steps = steps.lock().expect("lock").clone();
    assert!(
        steps.iter().any(|s| s == "Connection lost; reconnecting"),
        "{steps:?}"
    );
    let h = s.get("e2e-cut").expect("kept");
    assert_eq!(h.state().await.expect("state"), State::Error);
    assert!(h.last_error().expect("recorded").contains("cannot connect"));
    s.remove("e2e-cut", false).await.expect("rm");
    assert!(s.names().expect("names").is_empty());
}
