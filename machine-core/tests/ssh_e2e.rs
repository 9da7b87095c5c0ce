//! The SSH client against a real OpenSSH server on a test host
//! (`scripts/testhosts.sh`): host 0 of `MT_HOSTS`, suite `ssh_e2e` of
//! test-support/hosts.json. Without it the tests fail when CI is set and are
//! skipped otherwise (`machine_test_support::test_hosts::for_suite`).

use machine_core::driver::SshTarget;
use machine_core::ssh::{CommandRunner, HostKeyCheck, SshClient, SshConfig, SshError};
use machine_test_support::test_hosts::{for_suite, Suite};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Env {
    host: String,
    key: PathBuf,
    state: PathBuf,
}

fn test_env() -> Option<Env> {
    let hosts = for_suite(Suite::SshE2e)?;
    Some(Env {
        host: hosts.addr(0).to_string(),
        key: hosts.key().to_path_buf(),
        state: hosts.state().to_path_buf(),
    })
}

fn target(env: &Env, key: Option<&Path>, user: &str) -> SshTarget {
    SshTarget {
        host: env.host.clone(),
        port: 22,
        user: user.into(),
        key_path: key.map(Path::to_path_buf),
    }
}

fn quick() -> SshConfig {
    SshConfig {
        attempts: 2,
        connect_timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(200),
        ..SshConfig::default()
    }
}

/// Authorize an extra client key of `kind` (ssh-keygen -t) on every test host.
fn extra_key(env: &Env, dir: &Path, kind: &str, bits: Option<&str>) -> PathBuf {
    let p = dir.join(format!("id_{kind}"));
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-N", "", "-t", kind, "-f"]).arg(&p);
    if let Some(b) = bits {
        c.args(["-b", b]);
    }
    assert!(c.status().expect("ssh-keygen").success());
    let public = std::fs::read_to_string(p.with_extension("pub"))
        .unwrap_or_else(|_| std::fs::read_to_string(format!("{}.pub", p.display())).expect("pub"));
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(env.state.join("authorized_keys"))
        .expect("authorized_keys");
    f.write_all(public.as_bytes()).expect("append");
    p
}

#[tokio::test]
async fn keys_commands_files_and_host_key_pinning() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");

    // first contact: trust on first use, report the key
    let c = SshClient::connect(
        &target(&env, Some(&env.key), "root"),
        &HostKeyCheck::TrustOnFirstUse,
        &quick(),
    )
    .await
    .expect("connect");
    let pinned = c.host_key().to_string();
    assert!(pinned.starts_with("ssh-ed25519 "), "{pinned}");
    let known = std::fs::read_to_string(env.state.join("known_hosts")).expect("known_hosts");
    assert!(
        known.contains(pinned.split(' ').nth(1).expect("b64")),
        "the key sshd really has"
    );

    // exit status, stdout and stderr apart; output larger than a window
    let out = c.run("echo out; echo err >&2; exit 7").await.expect("run");
    assert_eq!(
        (
            out.stdout_text().as_str(),
            out.stderr_text().as_str(),
            out.exit_status
        ),
        ("out\n", "err\n", 7)
    );
    let out = c
        .run("head -c 3000000 /dev/zero | tr '\\0' x")
        .await
        .expect("run");
    assert_eq!(out.stdout.len(), 3_000_000);
    assert!(out.success());
    let out = c.run_with_input("wc -c", b"12345").await.expect("stdin");
    assert_eq!(out.stdout_text().trim(), "5");

    // channels are multiplexed on the one connection
    let (a, b) = tokio::join!(c.run("sleep 1; echo a"), c.run("sleep 1; echo b"));
    assert_eq!(a.expect("a").stdout_text(), "a\n");
    assert_eq!(b.expect("b").stdout_text(), "b\n");

    // files with modes, replaced atomically
    c.write_file("/tmp/mt-ssh-test", b"secret", 0o600)
        .await
        .expect("write");
    c.write_file("/tmp/mt-ssh-test", b"secret2", 0o640)
        .await
        .expect("rewrite");
    let out = c
        .run("stat -c %a /tmp/mt-ssh-test; cat /tmp/mt-ssh-test")
        .await
        .expect("stat");
    assert_eq!(out.stdout_text(), "640\nsecret2");
    assert_eq!(
        c.read_file("/tmp/mt-ssh-test").await.expect("read"),
        b"secret2"
    );
    let e = c.read_file("/nonexistent/file").await.expect_err("missing");
    assert!(matches!(e, SshError::Transfer { .. }), "{e}");
    c.close().await;

    // pinned: the same key passes, another key is refused with both fingerprints
    SshClient::connect(
        &target(&env, Some(&env.key), "root"),
        &HostKeyCheck::Pinned(pinned.clone()),
        &quick(),
    )
    .await
    .expect("pinned key accepted");
    let other = machine_core::ssh::client::generate_key(&tmp.path().join("other")).expect("key");
    let e = SshClient::connect(
        &target(&env, Some(&env.key), "root"),
        &HostKeyCheck::Pinned(other),
        &quick(),
    )
    .await
    .expect_err("mismatch");
    match e {
        SshError::HostKeyMismatch {
            expected,
            presented,
            ..
        } => {
            assert_ne!(expected, presented);
            assert_eq!(presented, machine_core::ssh::client::fingerprint(&pinned));
        }
        other => panic!("expected HostKeyMismatch, got {other}"),
    }

    // RSA (rsa-sha2-*) and ECDSA client keys
    for (kind, bits) in [("rsa", Some("3072")), ("ecdsa", Some("256"))] {
        let k = extra_key(&env, tmp.path(), kind, bits);
        let c = SshClient::connect(
            &target(&env, Some(&k), "root"),
            &HostKeyCheck::Pinned(pinned.clone()),
            &quick(),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind} key: {e}"));
        assert!(c.run("true").await.expect("run").success());
    }

    // a key the server does not know: an authentication error, not retried forever
    let stranger = tmp.path().join("stranger");
    machine_core::ssh::client::generate_key(&stranger).expect("key");
    let e = SshClient::connect(
        &target(&env, Some(&stranger), "root"),
        &HostKeyCheck::Pinned(pinned.clone()),
        &quick(),
    )
    .await
    .expect_err("refused");
    assert!(matches!(e, SshError::Auth { .. }), "{e}");
}

#[tokio::test]
async fn agent_authentication() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .spawn()
        .expect("ssh-agent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&env.key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .expect("ssh-add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // The client reads SSH_AUTH_SOCK; this test binary sets it for itself only.
    std::env::set_var("SSH_AUTH_SOCK", &sock);
    let r = SshClient::connect(
        &target(&env, None, "root"),
        &HostKeyCheck::TrustOnFirstUse,
        &quick(),
    )
    .await;
    let _ = agent.kill();
    let _ = agent.wait();
    let c = r.expect("agent auth");
    assert_eq!(c.run("id -u").await.expect("run").stdout_text().trim(), "0");
}

#[tokio::test]
async fn unreachable_port_gives_up_after_bounded_retries() {
    let Some(env) = test_env() else { return };
    let mut t = target(&env, Some(&env.key), "root");
    t.port = 1;
    let cfg = SshConfig {
        attempts: 3,
        connect_timeout: Duration::from_secs(2),
        backoff: Duration::from_millis(100),
        ..SshConfig::default()
    };
    let start = Instant::now();
    let e = SshClient::connect(&t, &HostKeyCheck::TrustOnFirstUse, &cfg)
        .await
        .expect_err("refused");
    assert!(start.elapsed() < Duration::from_secs(10));
    match e {
        SshError::Connect { attempts, port, .. } => assert_eq!((attempts, port), (3, 1)),
        other => panic!("{other}"),
    }
}

/// A symlink planted where the old predictable temp name was, or anywhere
/// beside the target, is never written through; downloads keep the remote
/// mode; output past the capture limit is dropped, not buffered.
#[tokio::test]
async fn writes_never_follow_planted_links_and_output_is_bounded() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let c = SshClient::connect(
        &target(&env, Some(&env.key), "root"),
        &HostKeyCheck::TrustOnFirstUse,
        &quick(),
    )
    .await
    .expect("connect");
    let dir = format!("/tmp/mt-link-{}", std::process::id());
    let setup = format!(
        "rm -rf {dir} && mkdir {dir} && printf precious > {dir}/victim && chmod 600 {dir}/victim \
         && ln -s {dir}/victim {dir}/target.machine-tmp"
    );
    assert!(c.run(&setup).await.expect("setup").success());
    c.write_file(&format!("{dir}/target"), b"new", 0o644)
        .await
        .expect("write");
    let out = c
        .run(&format!(
            "cat {dir}/victim; echo; stat -c %a {dir}/victim; cat {dir}/target; echo; stat -c %a {dir}/target; \
             ls -A {dir} | wc -l"
        ))
        .await
        .expect("check");
    assert_eq!(
        out.stdout_text(),
        "precious\n600\nnew\n644\n3\n",
        "{}",
        out.stderr_text()
    );

    // download: the remote 0600 stays 0600 locally, 0640 stays 0640
    use std::os::unix::fs::PermissionsExt;
    let local = tmp.path().join("victim");
    assert_eq!(
        c.download(&format!("{dir}/victim"), &local)
            .await
            .expect("dl"),
        0o600
    );
    assert_eq!(std::fs::read(&local).expect("read"), b"precious");
    let mode = std::fs::metadata(&local)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(c
        .run(&format!("chmod 640 {dir}/target"))
        .await
        .expect("chmod")
        .success());
    c.download(&format!("{dir}/target"), &local)
        .await
        .expect("dl2");
    let mode = std::fs::metadata(&local)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);

    // 40 MiB of output: the first 32 MiB are kept, the rest dropped and said
    let limit = machine_core::ssh::client::MAX_CAPTURE;
    let out = c
        .run("head -c 41943040 /dev/zero")
        .await
        .expect("big output");
    assert_eq!(out.stdout.len(), limit);
    assert!(
        out.stderr_text().contains("dropped"),
        "{}",
        out.stderr_text()
    );
    let _ = c.run(&format!("rm -rf {dir}")).await;
    c.close().await;
}
