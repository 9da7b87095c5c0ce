//! End-to-end: `ssh-config` with the system `ssh`, docker contexts with the
//! real `docker` CLI, export/import between two stores, and a Docker host
//! adopted with certificates from an unrelated CA. Hosts 19 and 20 of
//! `MT_HOSTS` (suite `export_e2e` of test-support/hosts.json). Without them
//! the tests fail when CI is set and are skipped otherwise.

mod common;

use common::{bin, ok, text};

use machine_test_support::test_hosts::{for_suite, Hosts, Suite};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Cli {
    store: PathBuf,
    docker_config: PathBuf,
}

impl Cli {
    fn new(dir: &Path, name: &str) -> Cli {
        Cli {
            store: dir.join(name),
            docker_config: dir.join(format!("{name}-docker")),
        }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("MACHINE_STORAGE_PATH", &self.store)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("SHELL")
            .env_remove("MACHINE_NATIVE_SSH")
            .env_remove("MACHINE_EXPORT_PASSPHRASE")
            .env_remove("MACHINE_DRIVER");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().expect("run machine");
        eprintln!("machine {} -> {:?}", args.join(" "), out.status.code());
        out
    }
    /// `script` in bash with `$M` the binary, this store and docker config.
    fn bash(&self, script: &str) -> Output {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("MACHINE_STORAGE_PATH", &self.store)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("M", bin())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .output()
            .expect("bash")
    }
}

fn hosts() -> Option<Hosts> {
    for_suite(Suite::ExportE2e)
}

fn create_generic(cli: &Cli, ip: &str, key: &str, name: &str, extra: &[&str]) {
    let mut args = vec![
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        ip,
        "--generic-ssh-key",
        key,
        "--generic-ssh-user",
        "root",
        "--engine-opt",
        "bridge=none",
        "--engine-opt",
        "iptables=false",
        "--engine-opt",
        "ip6tables=false",
        "--engine-install-url",
        "none",
    ];
    args.extend_from_slice(extra);
    args.push(name);
    let said = ok(&cli.run(&args));
    assert!(said.contains("Docker is up and running!"), "{said}");
}

/// `ssh -F FILE NAME true` with the system's ssh and nothing else
/// (no user config, no agent).
fn system_ssh(config: &Path, name: &str) -> Output {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"])
        .arg(name)
        .args(["cat", "/etc/hostname"])
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("ssh")
}

#[test]
fn ssh_config_contexts_and_export_import() {
    let Some(hosts) = hosts() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let ip = hosts.addr(19);
    let key = hosts.key().display().to_string();
    let a = Cli::new(tmp.path(), "a");
    let name = "exp1";
    create_generic(&a, ip, &key, name, &["--docker-context"]);

    // ssh-config: the real ssh reaches the machine by its name, with the pin.
    let conf = tmp.path().join("ssh_config");
    let text_conf = ok(&a.run(&["ssh-config", name]));
    assert!(
        text_conf.starts_with(&format!("Host {name}\n")),
        "{text_conf}"
    );
    assert!(
        text_conf.contains("StrictHostKeyChecking yes"),
        "{text_conf}"
    );
    std::fs::write(&conf, &text_conf).expect("write");
    let out = system_ssh(&conf, name);
    assert_eq!(ok(&out), format!("{name}\n"), "{}", text(&out.stderr));
    // every machine when no name is given: the same block
    assert_eq!(ok(&a.run(&["ssh-config"])), text_conf);
    // a pin that does not match is refused by ssh (StrictHostKeyChecking yes)
    let pin = a.store.join("machines").join(name).join("known_hosts");
    let good = std::fs::read_to_string(&pin).expect("pin");
    let stranger = tmp.path().join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let other = std::fs::read_to_string(stranger.with_extension("pub")).expect("pub");
    let pattern = good.split_whitespace().next().expect("pattern").to_string();
    let fields: Vec<&str> = other.split_whitespace().collect();
    std::fs::write(&pin, format!("{pattern} {} {}\n", fields[0], fields[1])).expect("tamper");
    let out = system_ssh(&conf, name);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    std::fs::write(&pin, &good).expect("restore");
    assert_eq!(ok(&system_ssh(&conf, name)), format!("{name}\n"));

    contexts_and_archives(&a, tmp.path(), name);
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

/// The names of a plain tar archive's entries.
fn tar_list(archive: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(archive)
        .output()
        .expect("tar");
    ok(&out).lines().map(str::to_string).collect()
}

/// What is in a store's `machines/` (hidden entries included, lock files not).
fn machines(cli: &Cli) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cli.store.join("machines"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The server's version through `docker --context NAME` of `cli`'s docker config.
fn docker_via_context(cli: &Cli, name: &str) -> Output {
    cli.bash(&format!(
        "docker --context {name} version --format '{{{{.Server.Version}}}}'"
    ))
}

fn contexts_and_archives(a: &Cli, tmp: &Path, name: &str) {
    // the context written by create --docker-context reaches the daemon
    let out = docker_via_context(a, name);
    assert!(!ok(&out).trim().is_empty(), "{}", text(&out.stderr));
    let listed = ok(&a.bash("docker context ls --format '{{.Name}}'"));
    assert!(listed.lines().any(|l| l.trim() == name), "{listed}");
    let id = machine_core::docker_context::context_id(name);
    let cert = a
        .docker_config
        .join("contexts/tls")
        .join(&id)
        .join("docker/cert.pem");
    assert_eq!(mode(&cert), 0o600);
    let before = std::fs::read(&cert).expect("context cert");
    // regenerate-certs with a new CA and client certificate refreshes it
    ok(&a.run(&["regenerate-certs", "-f", "--client-certs", name]));
    let after = std::fs::read(&cert).expect("context cert");
    assert_ne!(before, after, "the context kept the old client certificate");
    assert_eq!(
        after,
        std::fs::read(a.store.join("machines").join(name).join("cert.pem")).expect("cert")
    );
    assert!(docker_via_context(a, name).status.success());
    // `context NAME` writes it again after it was removed
    assert!(ok(&a.run(&["context", "--rm", name])).contains("removed"));
    assert!(!docker_via_context(a, name).status.success());
    ok(&a.run(&["context", name]));
    assert!(docker_via_context(a, name).status.success());

    // export: a plain archive without the CA key, mode 0600
    let b = Cli::new(tmp, "b");
    // store b gets a CA of its own
    ok(&b.run(&[
        "create",
        "-d",
        "none",
        "--url",
        "tcp://127.0.0.1:9",
        "placeholder",
    ]));
    let ca_a = std::fs::read(a.store.join("certs/ca.pem")).expect("ca a");
    assert_ne!(
        ca_a,
        std::fs::read(b.store.join("certs/ca.pem")).expect("ca b")
    );
    let archive = tmp.join("exp1.tar");
    let archive_s = archive.display().to_string();
    ok(&a.run(&["export", name, "-o", &archive_s]));
    assert_eq!(mode(&archive), 0o600);
    let entries = tar_list(&archive);
    for want in [
        "manifest.json",
        "config.json",
        "ca.pem",
        "cert.pem",
        "key.pem",
        "server.pem",
        "known_hosts",
        "ssh-key",
    ] {
        assert!(
            entries.iter().any(|e| e == want),
            "{want} missing: {entries:?}"
        );
    }
    assert!(!entries.iter().any(|e| e == "ca-key.pem"), "{entries:?}");

    // import into store b, whose CA is another: env, docker and ssh work
    let said = ok(&b.run(&["import", &archive_s]));
    assert!(said.contains("imported"), "{said}");
    let out = b.bash(&format!(
        "set -e; eval \"$(\"$M\" env {name})\"; docker version --format '{{{{.Server.Version}}}}'"
    ));
    assert!(!ok(&out).trim().is_empty());
    assert_eq!(
        ok(&b.run(&["ssh", name, "cat", "/etc/hostname"])),
        format!("{name}\n")
    );
    assert_eq!(
        ok(&b.run(&["--native-ssh", "ssh", name, "cat", "/etc/hostname"])),
        format!("{name}\n")
    );
    let bdir = b.store.join("machines").join(name);
    assert_eq!(mode(&bdir), 0o700);
    for f in [
        "key.pem",
        "id_rsa",
        "server-key.pem",
        "config.json",
        "known_hosts",
    ] {
        assert_eq!(mode(&bdir.join(f)), 0o600, "{f}");
    }
    let inspected = ok(&b.run(&["inspect", name]));
    assert!(
        !inspected.contains(&a.store.display().to_string()),
        "{inspected}"
    );
    assert!(
        inspected.contains(&bdir.join("id_rsa").display().to_string()),
        "{inspected}"
    );
    // the same name again is refused, with the way out
    let out = b.run(&["import", &archive_s]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--name"),
        "{}",
        text(&out.stderr)
    );

    // encrypted, with the passphrase from the environment
    let enc = tmp.join("exp1.tar.age");
    let enc_s = enc.display().to_string();
    let out = a
        .cmd()
        .args(["export", name, "--with-ca-key", "-o", &enc_s])
        .env("MACHINE_EXPORT_PASSPHRASE", "correct horse")
        .output()
        .expect("export");
    ok(&out);
    assert!(
        text(&out.stderr).contains("CA's private key"),
        "{}",
        text(&out.stderr)
    );
    let bytes = std::fs::read(&enc).expect("archive");
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    let before = machines(&b);
    let import_enc = |file: &str, pass: Option<&str>, new: &str| {
        let mut c = b.cmd();
        c.args(["import", file, "--name", new]);
        if let Some(p) = pass {
            c.env("MACHINE_EXPORT_PASSPHRASE", p);
        }
        c.output().expect("import")
    };
    // no passphrase (no terminal), a wrong one, a changed archive: nothing written
    assert!(!import_enc(&enc_s, None, "exp2").status.success());
    let out = import_enc(&enc_s, Some("wrong horse"), "exp2");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("passphrase"),
        "{}",
        text(&out.stderr)
    );
    let mut changed = bytes.clone();
    let n = changed.len();
    changed[n - 40] ^= 0x20;
    let tampered = tmp.join("tampered.tar.age");
    std::fs::write(&tampered, &changed).expect("write");
    let out = import_enc(
        &tampered.display().to_string(),
        Some("correct horse"),
        "exp2",
    );
    assert!(!out.status.success());
    assert_eq!(
        machines(&b),
        before,
        "a refused import left something behind"
    );
    // a changed plain archive is refused too
    let mut plain = std::fs::read(&archive).expect("archive");
    let pos = plain
        .windows(11)
        .position(|w| w == b"-----BEGIN ")
        .expect("a PEM block");
    plain[pos + 30] ^= 0x01;
    let tampered_plain = tmp.join("tampered.tar");
    std::fs::write(&tampered_plain, &plain).expect("write");
    assert!(
        !import_enc(&tampered_plain.display().to_string(), None, "exp2")
            .status
            .success()
    );
    assert_eq!(machines(&b), before);
    // the right passphrase, under another name
    ok(&import_enc(&enc_s, Some("correct horse"), "exp2"));
    assert_eq!(mode(&b.store.join("machines/exp2/ca-key.pem")), 0o600);
    assert_eq!(
        ok(&b.run(&["ssh", "exp2", "cat", "/etc/hostname"])),
        format!("{name}\n")
    );

    // rm removes the context made for the machine
    ok(&a.run(&["rm", "-y", name]));
    let listed = ok(&a.bash("docker context ls --format '{{.Name}}'"));
    assert!(!listed.lines().any(|l| l.trim() == name), "{listed}");
    assert!(!a.docker_config.join("contexts/meta").join(&id).exists());
}

/// `openssl` with `args` in `dir`; panics when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

/// A CA made by the `openssl` command in `dir/<prefix>ca.pem`, with a
/// client certificate `<prefix>cert.pem`/`<prefix>key.pem` and, when `ip` is
/// given, a server certificate `server.pem`/`server-key.pem` for it.
fn openssl_ca(dir: &Path, prefix: &str, ip: Option<&str>) {
    let f = |n: &str| format!("{prefix}{n}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &f("ca-key.pem"),
            "-out",
            &f("ca.pem"),
            "-subj",
            &format!("/CN=unrelated {prefix}CA"),
        ],
    );
    let mut pairs = vec![(
        "cert.pem".to_string(),
        "key.pem".to_string(),
        "client",
        "extendedKeyUsage=clientAuth\n".to_string(),
    )];
    if let Some(ip) = ip {
        pairs.push((
            "server.pem".into(),
            "server-key.pem".into(),
            "server",
            format!("extendedKeyUsage=serverAuth\nsubjectAltName=IP:{ip}\n"),
        ));
    }
    for (cert, key, cn, ext) in pairs {
        let (cert, key) = if cn == "client" {
            (f(&cert), f(&key))
        } else {
            (cert, key)
        };
        let ext_file = dir.join(format!("{prefix}{cn}.ext"));
        std::fs::write(&ext_file, ext).expect("ext");
        let csr = format!("{prefix}{cn}.csr");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &f("ca.pem"),
                "-CAkey",
                &f("ca-key.pem"),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                &ext_file.display().to_string(),
            ],
        );
    }
}

/// Run `script` as root on test host `ip` over SSH.
fn on_host(hosts: &Hosts, ip: &str, script: &str) -> Output {
    Command::new("ssh")
        .arg("-i")
        .arg(hosts.key())
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("root@{ip}"))
        .arg(script)
        .output()
        .expect("ssh")
}

#[test]
fn adopting_a_daemon_with_its_own_tls_setup() {
    let Some(hosts) = hosts() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let ip = hosts.addr(20);
    openssl_ca(d, "", Some(ip));
    openssl_ca(d, "other-", None);
    // a dockerd on host 20 serving the openssl certificates, clients verified
    let pem = |f: &str| std::fs::read_to_string(d.join(f)).expect("pem");
    let script = format!(
        "set -e; mkdir -p /tmp/adopt; cd /tmp/adopt; \
         if [ -f dockerd.pid ]; then kill \"$(cat dockerd.pid)\" || true; sleep 2; fi; \
         printf '%s' '{}' > ca.pem; printf '%s' '{}' > server.pem; printf '%s' '{}' > server-key.pem; \
         chmod 600 server-key.pem; \
         nohup dockerd --pidfile /tmp/adopt/dockerd.pid --bridge=none --iptables=false --ip6tables=false \
           --tlsverify --tlscacert /tmp/adopt/ca.pem --tlscert /tmp/adopt/server.pem --tlskey /tmp/adopt/server-key.pem \
           -H tcp://0.0.0.0:2376 -H unix:///var/run/docker.sock >/var/log/dockerd-adopt.log 2>&1 </dev/null & \
         for i in $(seq 1 120); do docker -H unix:///var/run/docker.sock version >/dev/null 2>&1 && exit 0; sleep 0.5; done; \
         tail -20 /var/log/dockerd-adopt.log; exit 1",
        pem("ca.pem"),
        pem("server.pem"),
        pem("server-key.pem")
    );
    let out = on_host(&hosts, ip, &script);
    assert!(
        out.status.success(),
        "dockerd: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let cli = Cli::new(d, "s");
    let url = format!("tcp://{ip}:2376");
    let p = |f: &str| d.join(f).display().to_string();
    let adopt = |ca: &str, cert: &str, key: &str, name: &str| {
        cli.run(&[
            "--tls-ca-cert",
            &p(ca),
            "--tls-client-cert",
            &p(cert),
            "--tls-client-key",
            &p(key),
            "create",
            "-d",
            "none",
            "--url",
            &url,
            name,
        ])
    };
    // a CA that did not sign the daemon's certificate, a client certificate
    // the daemon does not trust, a key that is not the certificate's: refused,
    // nothing added
    for (ca, cert, key) in [
        ("other-ca.pem", "cert.pem", "key.pem"),
        ("ca.pem", "other-cert.pem", "other-key.pem"),
        ("ca.pem", "cert.pem", "other-key.pem"),
    ] {
        let out = adopt(ca, cert, key, "bad");
        assert!(!out.status.success(), "{ca} {cert} {key} was accepted");
        let err = text(&out.stderr);
        assert!(err.contains("Error creating machine"), "{err}");
        assert!(
            !cli.store.join("machines/bad").exists(),
            "{ca} {cert} {key}"
        );
    }
    let name = "adopted";
    ok(&adopt("ca.pem", "cert.pem", "key.pem", name));
    let mdir = cli.store.join("machines").join(name);
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert_eq!(
            std::fs::read(mdir.join(f)).expect(f),
            std::fs::read(d.join(f)).expect(f)
        );
        assert_eq!(mode(&mdir.join(f)), 0o600);
    }
    // docker through our env runs a container
    let image = common::test_image(d);
    let out = cli.bash(&format!(
        "set -e; eval \"$(\"$M\" env {name})\"; docker import {} mt-busybox:latest >/dev/null; \
         docker run --rm --network none mt-busybox:latest echo hello-adopted",
        image.display()
    ));
    assert_eq!(ok(&out).trim(), "hello-adopted");
    let config = ok(&cli.run(&["config", name]));
    assert!(config.contains(&format!("-H={url}")), "{config}");
    let ls = ok(&cli.run(&["ls", "--format", "{{.Name}} {{.State}} {{.DockerVersion}}"]));
    assert!(ls.contains(&format!("{name} Running v")), "{ls}");

    // --format json
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(&cli.run(args))).expect("json")
    };
    let st = json(&["status", "-f", "json", name]);
    assert_eq!(
        st,
        serde_json::json!({"Name": name, "State": "Running", "Error": ""})
    );
    let v = json(&["version", "--format", "json", name]);
    assert_eq!(v["Name"], name);
    assert!(v["Version"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(
        v["ApiVersion"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    let v = json(&["version", "-f", "json"]);
    assert!(v["Version"].is_string() && v["Build"].is_string(), "{v}");
    let e = json(&["env", "-f", "json", name]);
    assert_eq!(e["DOCKER_HOST"], url.as_str());
    assert_eq!(e["DOCKER_CERT_PATH"], mdir.display().to_string());
    let i = json(&["inspect", "-f", "json", name]);
    assert_eq!(i["Driver"]["URL"], url.as_str());
    assert_eq!(
        i["HostOptions"]["AuthOptions"]["CaCertPath"],
        mdir.join("ca.pem").display().to_string()
    );
    // no SSH is involved
    assert!(!cli.run(&["ssh", name, "true"]).status.success());
    ok(&cli.run(&["rm", "-y", name]));
    let _ = on_host(&hosts, ip, "kill \"$(cat /tmp/adopt/dockerd.pid)\"");
}
