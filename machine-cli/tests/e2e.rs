//! End-to-end: the `machine` binary against real hosts brought up by
//! `scripts/testhosts.sh` (network namespaces with their own sshd; Debian's
//! docker.io installed, no daemon running until provisioning starts one).
//! These tests use hosts 4 and 5 of `MT_HOSTS` (suite `cli_e2e` of
//! test-support/hosts.json; the other hosts belong to other suites). Without
//! them they fail when CI is set and are skipped otherwise
//! (`machine_test_support::test_hosts::for_suite`).

mod common;

use common::{bin, ok, test_image, text};

use machine_test_support::test_hosts::{for_suite, Hosts, Suite};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Env {
    hosts: Hosts,
    key: PathBuf,
    sudo_user: String,
}

fn test_env() -> Option<Env> {
    let hosts = for_suite(Suite::CliE2e)?;
    Some(Env {
        key: hosts.key().to_path_buf(),
        sudo_user: hosts.sudo_user().to_string(),
        hosts,
    })
}
struct Cli {
    store: PathBuf,
    tmp: PathBuf,
}

impl Cli {
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("MACHINE_STORAGE_PATH", &self.store)
            .env("DOCKER_CONFIG", self.tmp.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("SHELL")
            .env_remove("MACHINE_NATIVE_SSH")
            .env_remove("MACHINE_DRIVER");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = self.cmd().args(args).output().expect("run machine");
        eprintln!(
            "machine {} -> {:?} in {:?}",
            args.join(" "),
            out.status.code(),
            started.elapsed()
        );
        out
    }
    /// Run `script` in bash with MACHINE_STORAGE_PATH and the binary's directory set.
    fn bash(&self, script: &str) -> Output {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("MACHINE_STORAGE_PATH", &self.store)
            .env("DOCKER_CONFIG", self.tmp.join("docker-config"))
            .env("M", bin())
            .env_remove("DOCKER_HOST")
            .output()
            .expect("bash")
    }
}

/// The certificate the machine's daemon serves (read on the machine, where
/// the original's test read it) names the `--tls-san` values.
fn assert_extra_sans(cli: &Cli, name: &str) {
    let pem = ok(&cli.run(&["ssh", name, "cat", "/etc/docker/server.pem"]));
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("openssl");
    let sans = text(&out.stdout);
    assert!(sans.contains("DNS:foo.bar.tld"), "{sans}");
    assert!(sans.contains("IP Address:10.42.42.42"), "{sans}");
}

/// A TCP relay on 127.0.0.1 to `target`; returns its port. Runs until the
/// test process ends.
fn relay_to(target: &str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let target = target.to_string();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            let pump = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pump(client, server);
            pump(s2, c2);
        }
    });
    port
}
fn create_args<'a>(ip: &'a str, key: &'a str, user: &'a str, name: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        ip,
        "--generic-ssh-key",
        key,
        "--generic-ssh-user",
        user,
        // The hosts share this machine's kernel: no bridge or iptables for their daemons.
        "--engine-opt",
        "bridge=none",
        "--engine-opt",
        "iptables=false",
        "--engine-opt",
        "ip6tables=false",
        "--engine-install-url",
        "none",
        name,
    ]
}

/// An interactive `machine ssh NAME` on a pseudo-terminal made by `script`;
/// `input` is typed once the shell had time to start.
fn interactive(cli: &Cli, name: &str, input: &str) -> Output {
    let mut child = Command::new("script")
        .arg("-qec")
        .arg(format!("{} ssh {name}", bin()))
        .arg("/dev/null")
        .env("MACHINE_STORAGE_PATH", &cli.store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    std::thread::sleep(Duration::from_millis(1500));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("type");
    stdin.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    let _ = child.kill();
    child.wait_with_output().expect("output")
}

#[test]
fn generic_machine_through_the_cli() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let cli = Cli {
        store: tmp.path().join("store"),
        tmp: tmp.path().to_path_buf(),
    };
    let ip = env.hosts.addr(4);
    let key = env.key.display().to_string();
    let name = "e2e-cli";

    let mut args = create_args(ip, &key, "root", name);
    args.splice(
        1..1,
        ["--tls-san", "foo.bar.tld", "--tls-san", "10.42.42.42"],
    );
    let out = cli.run(&args);
    let said = ok(&out);
    assert!(said.contains("Docker is up and running!"), "{said}");
    assert_extra_sans(&cli, name);
    let ls = ok(&cli.run(&[
        "ls",
        "--format",
        "{{.Name}} {{.State}} {{.URL}} {{.DockerVersion}}",
    ]));
    assert!(
        ls.starts_with(&format!("{name} Running tcp://{ip}:2376 v")),
        "{ls}"
    );

    // The real docker CLI, configured by `eval "$(machine env NAME)"` in bash.
    let image = test_image(tmp.path());
    let out = cli.bash(&format!(
        "set -e; eval \"$(\"$M\" env {name})\"; docker import {} mt-busybox:latest >/dev/null; \
         docker run --rm --network none mt-busybox:latest echo hello-from-container",
        image.display()
    ));
    assert_eq!(ok(&out).trim(), "hello-from-container");
    let active = cli.bash(&format!("eval \"$(\"$M\" env {name})\"; \"$M\" active"));
    assert_eq!(ok(&active), format!("{name}\n"));

    // ssh: remote exit status, output, the built-in client, debug logging.
    let out = cli.run(&["ssh", name, "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        ok(&cli.run(&["ssh", name, "cat", "/etc/hostname"])),
        format!("{name}\n")
    );
    let out = cli.run(&["--native-ssh", "ssh", name, "echo native; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "native\n");
    let out = cli.run(&["-D", "--native-ssh", "ssh", name, "echo debug-marker"]);
    assert!(
        text(&out.stderr).contains("echo debug-marker"),
        "{}",
        text(&out.stderr)
    );

    // ssh: options before the command go to ssh (-C: compression), as with the original
    assert_eq!(ok(&cli.run(&["ssh", name, "-C", "echo", "foo"])), "foo\n");
    assert_eq!(
        ok(&cli.run(&[
            "ssh",
            name,
            "-o",
            "Compression=yes",
            "--",
            "echo",
            "-n",
            "bar"
        ])),
        "bar"
    );

    // ssh: an interactive shell on a pseudo-terminal.
    let out = interactive(&cli, name, "echo tty=$(tty); exit 3\n");
    let seen = text(&out.stdout).replace('\r', "");
    assert!(seen.contains("tty=/dev/pts/"), "{seen}");
    assert_eq!(out.status.code(), Some(3), "{seen}");

    // scp both ways, a directory with --delta (rsync), quiet mode.
    let local = tmp.path().join("hello.txt");
    std::fs::write(&local, "hello over scp\n").expect("write");
    ok(&cli.run(&[
        "scp",
        &local.display().to_string(),
        &format!("{name}:/tmp/hello.txt"),
    ]));
    let back = tmp.path().join("back.txt");
    ok(&cli.run(&[
        "scp",
        "-q",
        &format!("{name}:/tmp/hello.txt"),
        &back.display().to_string(),
    ]));
    assert_eq!(
        std::fs::read_to_string(&back).expect("read"),
        "hello over scp\n"
    );
    let dir = tmp.path().join("tree");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("sub/a.txt"), "a\n").expect("write");
    ok(&cli.run(&[
        "scp",
        "-r",
        "-d",
        "-q",
        &dir.display().to_string(),
        &format!("{name}:/tmp/"),
    ]));
    assert_eq!(
        ok(&cli.run(&["ssh", name, "cat /tmp/tree/sub/a.txt"])),
        "a\n"
    );
    let copy = tmp.path().join("copy");
    ok(&cli.run(&[
        "scp",
        "-r",
        &format!("{name}:/tmp/tree"),
        &copy.display().to_string(),
    ]));
    assert_eq!(
        std::fs::read_to_string(copy.join("sub/a.txt")).expect("read"),
        "a\n"
    );

    // mount through sshfs, when it can run here.
    let fuse = Path::new("/dev/fuse").exists()
        && Command::new("sshfs")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty());
    if fuse {
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&mnt).expect("mkdir");
        let m = mnt.display().to_string();
        ok(&cli.run(&["mount", &format!("{name}:/tmp/tree"), &m]));
        let listed = std::fs::read_to_string(mnt.join("sub/a.txt"));
        ok(&cli.run(&["mount", "-u", &format!("{name}:/tmp/tree"), &m]));
        assert_eq!(listed.expect("read through sshfs"), "a\n");
        assert!(!mnt.join("sub").exists(), "unmounted");
    } else {
        eprintln!("SKIPPED: mount (no /dev/fuse or sshfs)");
    }

    // regenerate-certs: a new server certificate, and the daemon still answers.
    let server = cli.store.join("machines").join(name).join("server.pem");
    let before = std::fs::read(&server).expect("server.pem");
    ok(&cli.run(&["regenerate-certs", "-f", name]));
    assert_ne!(before, std::fs::read(&server).expect("server.pem"));
    assert_extra_sans(&cli, name);
    let out = cli.bash(&format!("eval \"$(\"$M\" env --check {name})\" && docker run --rm --network none mt-busybox:latest hostname"));
    assert!(!ok(&out).trim().is_empty());

    // scp from one machine to another. The second machine reaches the same
    // host through a local TCP relay: another address and port, its own
    // pinned key, which one scp run could not hold apart.
    let relay = relay_to(&format!("{ip}:22"));
    let twin = "e2e-cli-relay";
    let twin_dir = cli.store.join("machines").join(twin);
    std::fs::create_dir_all(&twin_dir).expect("mkdir");
    let here = cli.store.join("machines").join(name);
    for f in [
        "ca.pem",
        "cert.pem",
        "key.pem",
        "server.pem",
        "server-key.pem",
    ] {
        std::fs::copy(here.join(f), twin_dir.join(f)).expect("copy");
    }
    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(here.join("config.json")).expect("config.json"),
    )
    .expect("json");
    config["Name"] = twin.into();
    config["Driver"]["MachineName"] = twin.into();
    config["Driver"]["IPAddress"] = "127.0.0.1".into();
    config["Driver"]["SSHPort"] = relay.into();
    std::fs::write(
        twin_dir.join("config.json"),
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .expect("write config.json");
    ok(&cli.run(&["ssh", name, "echo A file hopping around! >/tmp/hop.txt"]));
    ok(&cli.run(&[
        "scp",
        &format!("{name}:/tmp/hop.txt"),
        &format!("{twin}:/tmp/hopped.txt"),
    ]));
    assert_eq!(
        ok(&cli.run(&["ssh", twin, "cat /tmp/hopped.txt"])),
        "A file hopping around!\n"
    );
    let pinned = std::fs::read_to_string(twin_dir.join("known_hosts")).expect("pinned");
    assert!(
        pinned.starts_with(&format!("[127.0.0.1]:{relay} ")),
        "{pinned}"
    );
    ok(&cli.run(&["rm", "-y", "-f", twin]));

    // The generic driver refuses start, stop and kill clearly.
    let out = cli.run(&["stop", name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not support stop"),
        "{}",
        text(&out.stderr)
    );

    let out = ok(&cli.run(&["rm", "-y", name]));
    assert!(
        out.contains(&format!("Successfully removed {name}")),
        "{out}"
    );
    assert_eq!(ok(&cli.run(&["ls", "-q"])), "");
}

#[test]
fn sudo_user_env_variables_and_host_key_pinning() {
    let Some(env) = test_env() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let cli = Cli {
        store: tmp.path().join("store"),
        tmp: tmp.path().to_path_buf(),
    };
    let ip = env.hosts.addr(5);
    let name = "e2e-cli-sudo";
    // Driver options from their environment variables, a non-root user with sudo.
    let out = cli
        .cmd()
        .env("MACHINE_DRIVER", "generic")
        .env("GENERIC_IP_ADDRESS", ip)
        .env("GENERIC_SSH_KEY", &env.key)
        .env("GENERIC_SSH_USER", &env.sudo_user)
        .args([
            "create",
            "--engine-opt",
            "bridge=none",
            "--engine-opt",
            "iptables=false",
            "--engine-opt",
            "ip6tables=false",
            "--engine-install-url",
            "none",
            "--engine-label",
            "purpose=e2e",
            name,
        ])
        .output()
        .expect("create");
    ok(&out);
    assert_eq!(
        ok(&cli.run(&["ls", "-q", "--filter", "label=purpose=e2e"])),
        format!("{name}\n")
    );
    assert_eq!(
        ok(&cli.run(&["ssh", name, "whoami"])),
        format!("{}\n", env.sudo_user)
    );
    let v = ok(&cli.run(&["version", name]));
    assert!(!v.trim().is_empty());
    ok(&cli.run(&["provision", name]));

    // A changed host key: a clear error with the way to re-pin, then re-pinning.
    let kh = cli.store.join("machines").join(name).join("known_hosts");
    let real = std::fs::read_to_string(&kh).expect("known_hosts");
    let fake_key = tmp.path().join("fake");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&fake_key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let fake_pub = std::fs::read_to_string(fake_key.with_extension("pub")).expect("pub");
    let pattern = real.split_whitespace().next().expect("pattern").to_string();
    let fake_line: Vec<&str> = fake_pub.split_whitespace().take(2).collect();
    std::fs::write(&kh, format!("{pattern} {}\n", fake_line.join(" "))).expect("write");
    for args in [
        &["ssh", name, "true"][..],
        &["--native-ssh", "ssh", name, "true"],
    ] {
        let out = cli.run(args);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains("host key"), "{err}");
        assert!(err.contains(&format!("ssh --repin {name}")), "{err}");
    }
    assert_eq!(
        ok(&cli.run(&["ssh", "--repin", name, "echo", "repinned"])),
        "repinned\n"
    );
    assert_eq!(std::fs::read_to_string(&kh).expect("known_hosts"), real);

    // A machine without a pin (imported, or its file deleted): the first
    // connection says which key it trusts.
    std::fs::remove_file(&kh).expect("rm known_hosts");
    let out = cli.run(&["ssh", name, "true"]);
    ok(&out);
    let err = text(&out.stderr);
    let fp = real.split_whitespace().nth(1).expect("key type");
    assert!(
        err.contains("no SSH host key was pinned; pinning SHA256:"),
        "{err}"
    );
    assert!(!fp.is_empty());
    assert_eq!(std::fs::read_to_string(&kh).expect("known_hosts"), real);

    ok(&cli.run(&["rm", "-y", name]));
    assert!(!cli.store.join("machines").join(name).exists());
}
