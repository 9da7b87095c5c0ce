//! Golden-output tests of the `machine` binary against stores built in
//! temporary directories: outputs must be byte-identical to docker-machine
//! 0.16.2's for the same machines.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn version_and_docker_machine_symlink() {
    let s = TestStore::new();
    let out = ok(&s.run(&["version"]));
    let re = regex::Regex::new(r"^machine version \d+\.\d+\.\d+, build \S+\n$").expect("re");
    assert!(re.is_match(&out), "{out:?}");
    assert_eq!(ok(&s.run(&["--version"])), out);
    assert_eq!(ok(&s.run(&["-v"])), out);

    // Invoked through a symlink named docker-machine, it names itself so.
    let dir = tempfile::tempdir().expect("tmp");
    let link = dir.path().join("docker-machine");
    std::os::unix::fs::symlink(bin(), &link).expect("symlink");
    let run = |args: &[&str]| {
        std::process::Command::new(&link)
            .env("MACHINE_STORAGE_PATH", s.path())
            .env_remove("SHELL")
            .env_remove("DOCKER_HOST")
            .args(args)
            .output()
            .expect("run")
    };
    let out = ok(&run(&["version"]));
    assert_eq!(
        out.replacen("docker-machine version", "machine version", 1),
        ok(&s.run(&["version"]))
    );
    assert!(out.starts_with("docker-machine version "), "{out}");
    let help = ok(&run(&["--help"]));
    assert!(
        help.contains("Usage: docker-machine [OPTIONS] [COMMAND]"),
        "{help}"
    );

    s.add_generic("gen", "127.0.0.1", silent_listener(), 2376);
    let env = ok(&run(&["env", "gen"]));
    assert!(
        env.ends_with(&format!("# eval $({} env gen)\n", link.display())),
        "{env}"
    );
    let missing = run(&["ip", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("Use \"docker-machine ls\" to list machines"),
        "{}",
        stderr(&missing)
    );
}

fn env_golden(shell: &str, root: &str, hint: &str) -> String {
    let cert_path = format!("{root}/machines/gen");
    let vars = [
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
        ("DOCKER_CERT_PATH", cert_path.as_str()),
        ("DOCKER_MACHINE_NAME", "gen"),
    ];
    let mut out = String::new();
    for (k, v) in vars {
        out.push_str(&match shell {
            "bash" => format!("export {k}=\"{v}\"\n"),
            "fish" => format!("set -gx {k} \"{v}\";\n"),
            "powershell" => format!("$Env:{k} = \"{v}\"\n"),
            "cmd" => format!("SET {k}={v}\n"),
            "tcsh" => format!("setenv {k} \"{v}\";\n"),
            "emacs" => format!("(setenv \"{k}\" \"{v}\")\n"),
            _ => unreachable!(),
        });
    }
    let (c, h) = match shell {
        "bash" => ("#", format!("eval $({hint})")),
        "fish" => ("#", format!("eval ({hint})")),
        "powershell" => ("#", format!("& {hint} | Invoke-Expression")),
        "cmd" => (
            "REM",
            format!("\t@FOR /f \"tokens=*\" %i IN ('{hint}') DO @%i"),
        ),
        "tcsh" => (":", format!("eval `{hint}`")),
        "emacs" => (
            ";;",
            format!("(with-temp-buffer (shell-command \"{hint}\" (current-buffer)) (eval-buffer))"),
        ),
        _ => unreachable!(),
    };
    out.push_str(&format!(
        "{c} Run this command to configure your shell: \n{c} {h}\n"
    ));
    out
}

#[test]
fn env_for_every_shell() {
    let s = TestStore::new();
    s.add_generic("gen", "127.0.0.1", silent_listener(), 2376);
    let root = s.root();
    let b = bin();
    assert_eq!(
        ok(&s.run(&["env", "gen"])),
        env_golden("bash", &root, &format!("{b} env gen"))
    );
    for shell in ["bash", "fish", "powershell", "cmd", "tcsh", "emacs"] {
        let got = ok(&s.run(&["env", "--shell", shell, "gen"]));
        assert_eq!(
            got,
            env_golden(shell, &root, &format!("{b} env --shell {shell} gen")),
            "shell {shell}"
        );
    }
    // The shell comes from $SHELL when --shell is not given.
    let got = ok(&s
        .cmd()
        .env("SHELL", "/usr/bin/fish")
        .args(["env", "gen"])
        .output()
        .expect("run"));
    assert_eq!(got, env_golden("fish", &root, &format!("{b} env gen")));
    // The implicit machine "default".
    s.add_generic("default", "127.0.0.1", silent_listener(), 2376);
    let got = ok(&s.run(&["env"]));
    assert!(
        got.contains("export DOCKER_MACHINE_NAME=\"default\"\n"),
        "{got}"
    );
    assert!(got.ends_with(&format!("# eval $({b} env)\n")), "{got}");
}

#[test]
fn env_unset_and_no_proxy() {
    let s = TestStore::new();
    s.add_generic("gen", "127.0.0.1", silent_listener(), 2376);
    let b = bin();
    assert_eq!(
        ok(&s.run(&["env", "-u"])),
        format!(
            "unset DOCKER_TLS_VERIFY\nunset DOCKER_HOST\nunset DOCKER_CERT_PATH\nunset DOCKER_MACHINE_NAME\n\
             # Run this command to configure your shell: \n# eval $({b} env -u)\n"
        )
    );
    assert_eq!(
        ok(&s.run(&["env", "--unset", "--shell", "fish"])),
        format!(
            "set -e DOCKER_TLS_VERIFY;\nset -e DOCKER_HOST;\nset -e DOCKER_CERT_PATH;\nset -e DOCKER_MACHINE_NAME;\n\
             # Run this command to configure your shell: \n# eval ({b} env --unset --shell fish)\n"
        )
    );
    let e = s.run(&["env", "-u", "gen"]);
    assert_eq!(e.status.code(), Some(1));
    assert_eq!(
        stderr(&e),
        "Error: Expected no machine name when the -u flag is present\n"
    );

    let got = ok(&s
        .cmd()
        .env("NO_PROXY", "localhost")
        .args(["env", "--no-proxy", "gen"])
        .output()
        .expect("run"));
    assert!(
        got.contains(
            "export DOCKER_MACHINE_NAME=\"gen\"\nexport NO_PROXY=\"localhost,127.0.0.1\"\n# Run"
        ),
        "{got}"
    );
    let got = ok(&s
        .cmd()
        .env("no_proxy", "127.0.0.1")
        .args(["env", "--no-proxy", "gen"])
        .output()
        .expect("run"));
    assert!(got.contains("export no_proxy=\"127.0.0.1\"\n"), "{got}");
    let got = ok(&s
        .cmd()
        .env("NO_PROXY", "x")
        .args(["env", "-u", "--no-proxy"])
        .output()
        .expect("run"));
    assert!(
        got.contains("unset DOCKER_MACHINE_NAME\nunset NO_PROXY\n# Run"),
        "{got}"
    );
}

#[test]
fn env_checks_certificates_locally_and_hints_regenerate() {
    let s = TestStore::new();
    // The server certificate covers another address than the machine's.
    s.write_machine(
        "moved",
        &s.generic_config("moved", "127.0.0.1", silent_listener(), 2376),
    );
    s.server_cert("moved", &["127.0.0.2"]);
    let started = Instant::now();
    let out = s.run(&["env", "moved"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.starts_with("Error checking TLS connection: "), "{err}");
    assert!(err.contains("not valid for 127.0.0.1"), "{err}");
    assert!(err.contains("'machine regenerate-certs moved'"), "{err}");
    let out = s.run(&["config", "moved"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("regenerate-certs moved"),
        "{}",
        stderr(&out)
    );

    // --check also dials the daemon: nothing listens on the engine port.
    s.add_generic("gen", "127.0.0.1", silent_listener(), closed_port());
    assert!(s.run(&["env", "gen"]).status.success());
    let out = s.run(&["env", "--check", "gen"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not answering"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_output() {
    let s = TestStore::new();
    s.add_generic("gen", "127.0.0.1", silent_listener(), 2376);
    let d = s.machine_dir("gen");
    let d = d.display();
    assert_eq!(
        ok(&s.run(&["config", "gen"])),
        format!(
            "--tlsverify\n--tlscacert=\"{d}/ca.pem\"\n--tlscert=\"{d}/cert.pem\"\n--tlskey=\"{d}/key.pem\"\n-H=tcp://127.0.0.1:2376\n"
        )
    );
}

/// Four machines: two `none` machines at fake daemons (names of different
/// lengths), a stopped generic machine and one with a corrupt config.json.
fn ls_store() -> (TestStore, u16, u16) {
    let s = TestStore::new();
    let p1 = fake_daemon(&s, "dev", "24.0.7");
    let p2 = fake_daemon(&s, "production-east", "26.1.5");
    assert!(
        p1 >= 10000 && p2 >= 10000,
        "the goldens assume 5-digit ports"
    );
    s.add_none("dev", &format!("tcp://127.0.0.1:{p1}"));
    s.add_none("production-east", &format!("tcp://127.0.0.1:{p2}"));
    s.add_generic("gen", "127.0.0.1", closed_port(), closed_port());
    let broken = s.machine_dir("zz-broken");
    std::fs::create_dir_all(&broken).expect("dir");
    std::fs::write(broken.join("config.json"), "{ this is not json").expect("write");
    (s, p1, p2)
}

#[test]
fn ls_pads_like_tabwriter_and_survives_a_corrupt_machine() {
    let (s, p1, p2) = ls_store();
    let out = s
        .cmd()
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{p1}"))
        .arg("ls")
        .output()
        .expect("ls");
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0], "NAME              ACTIVE   DRIVER      STATE     URL                     SWARM   DOCKER    ERRORS");
    assert_eq!(lines[1], format!("dev               *        none        Running   tcp://127.0.0.1:{p1}           v24.0.7   "));
    assert_eq!(lines[2], "gen               -        generic     Stopped                                   Unknown   ");
    assert_eq!(lines[3], format!("production-east   -        none        Running   tcp://127.0.0.1:{p2}           v26.1.5   "));
    let broken = "zz-broken                  not found   Error                                               ";
    assert!(lines[4].starts_with(broken), "{:?}", lines[4]);
    assert!(
        lines[4][broken.len()..].contains("zz-broken"),
        "{:?}",
        lines[4]
    );
    assert!(text.ends_with('\n'));

    let active = s
        .cmd()
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{p2}"))
        .arg("active")
        .output()
        .expect("active");
    assert_eq!(ok(&active), "production-east\n");
    let none = s.run(&["active"]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(stderr(&none), "No active host found\n");
}

#[test]
fn ls_quiet_filters_and_natural_order() {
    let (s, _, _) = ls_store();
    s.add_none("m10", "tcp://127.0.0.1:1");
    s.add_none("M2", "tcp://127.0.0.1:1");
    assert_eq!(
        ok(&s.run(&["ls", "-q"])),
        "dev\ngen\nM2\nm10\nproduction-east\n"
    );
    assert_eq!(
        ok(&s.run(&["ls", "-q", "--filter", "driver=NONE"])),
        "dev\nM2\nm10\nproduction-east\n"
    );
    assert_eq!(
        ok(&s.run(&["ls", "-q", "--filter", "name=^(dev|gen)$"])),
        "dev\ngen\n"
    );
    assert_eq!(
        ok(&s.run(&["ls", "-q", "--filter", "name=^m", "--filter", "name=^d"])),
        "dev\nm10\n"
    );
    assert_eq!(
        ok(&s.run(&["ls", "-q", "--filter", "label=team=r&d"])),
        "gen\n"
    );
    assert_eq!(
        ok(&s.run(&["ls", "-q", "--filter", "label=team=other"])),
        ""
    );
    assert_eq!(ok(&s.run(&["ls", "-q", "--filter", "swarm=anything"])), "");
    assert_eq!(
        ok(&s.run(&["ls", "-q", "--filter", "state=stopped"])),
        "gen\n"
    );
    let rows = ok(&s.run(&[
        "ls",
        "--filter",
        "state=Running",
        "--filter",
        "driver=none",
        "--format",
        "{{.Name}}",
    ]));
    assert_eq!(rows, "dev\nM2\nm10\nproduction-east\n");
    let bad = s.run(&["ls", "--filter", "color=red"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad), "Unsupported filter key 'color'\n");
    let bad = s.run(&["ls", "--filter", "nonsense"]);
    assert_eq!(stderr(&bad), "Unsupported filter syntax\n");
}

#[test]
fn ls_formats() {
    let (s, p1, p2) = ls_store();
    let f = |fmt: &str| {
        ok(&s.run(&[
            "ls",
            "--filter",
            "name=^(dev|gen|production-east)$",
            "--format",
            fmt,
        ]))
    };
    assert_eq!(f("{{.Name}}"), "dev\ngen\nproduction-east\n");
    assert_eq!(
        f("{{.Name}}: {{.DriverName}} {{.State}}"),
        "dev: none Running\ngen: generic Stopped\nproduction-east: none Running\n"
    );
    assert_eq!(
        f("table {{.Name}}\t{{.State}}"),
        "NAME              STATE\ndev               Running\ngen               Stopped\nproduction-east   Running\n"
    );
    // The two-character sequence \t works too, as users type it in shells.
    assert_eq!(
        f("table {{.Name}}\\t{{.URL}}\\t{{.ActiveHost}}"),
        format!(
            "NAME              URL                     ACTIVE_HOST\n\
         dev               tcp://127.0.0.1:{p1}   false\n\
         gen                                       false\n\
         production-east   tcp://127.0.0.1:{p2}   false\n"
        )
    );
    assert_eq!(
        f("{{.Name}} {{.EngineOptions.StorageDriver}} {{.SwarmOptions.Host}}")
            .lines()
            .nth(1),
        Some("gen overlay2 tcp://0.0.0.0:3376")
    );
    let rt = f("{{.ResponseTime}}");
    assert!(
        rt.lines().all(|l| l.ends_with("ms") || l.ends_with('s')),
        "{rt}"
    );
    let bad = s.run(&["ls", "--format", "{{.Nope}}"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("can't evaluate field Nope"),
        "{}",
        stderr(&bad)
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["ls", "--format", "json"]))).expect("json");
    let rows = json.as_array().expect("array");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["Name"], "dev");
    assert_eq!(rows[0]["DockerVersion"], "v24.0.7");
    assert_eq!(rows[0]["State"], "Running");
    assert_eq!(rows[3]["Name"], "zz-broken");
    assert_eq!(rows[3]["DriverName"], "not found");
    assert_eq!(rows[3]["State"], "Error");
}

#[test]
fn ls_bounded_by_timeout_with_a_silent_host() {
    let s = TestStore::new();
    let live = fake_daemon(&s, "live", "24.0.7");
    s.add_none("live", &format!("tcp://127.0.0.1:{live}"));
    let silent = silent_listener();
    s.add_none("silent", &format!("tcp://127.0.0.1:{silent}"));
    let started = Instant::now();
    let text = ok(&s.run(&[
        "ls",
        "-t",
        "1",
        "--format",
        "{{.Name}} {{.State}} {{.DockerVersion}} {{.Error}}",
    ]));
    let took = started.elapsed();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "live Running v24.0.7 ");
    assert!(lines[1].starts_with("silent Timeout "), "{text}");
    assert!(
        lines[1].contains("1 s"),
        "the error tells the timeout: {text}"
    );
    assert!(took < Duration::from_millis(1900), "took {took:?}");
}

#[test]
fn inspect_prints_the_original_config() {
    let s = TestStore::new();
    let ssh_port = closed_port();
    let config = s.generic_config("web-1", "127.0.0.1", ssh_port, 2376);
    s.write_machine("web-1", &config);
    assert_eq!(ok(&s.run(&["inspect", "web-1"])), format!("{config}\n"));
    // A file exactly as the original wrote it comes back byte for byte.
    let original = common::fixture("v3-none.json");
    s.write_machine("existing-daemon", &original);
    assert_eq!(
        ok(&s.run(&["inspect", "existing-daemon"])),
        format!("{original}\n")
    );
    assert_eq!(
        ok(&s.run(&[
            "inspect",
            "-f",
            "{{.Driver.IPAddress}}:{{.Driver.SSHPort}}",
            "web-1"
        ])),
        format!("127.0.0.1:{ssh_port}\n")
    );
    assert_eq!(
        ok(&s.run(&[
            "inspect",
            "--format",
            "{{json .HostOptions.EngineOptions.Labels}}",
            "web-1"
        ])),
        "[\"team=R\\u0026D\",\"note=\\u003cunset\\u003e\"]\n"
    );
    assert_eq!(
        ok(&s.run(&["inspect", "-f", "{{.DriverName}} {{.Nope}}", "web-1"])),
        "generic <no value>\n"
    );
    let pretty = ok(&s.run(&[
        "inspect",
        "-f",
        "{{prettyjson .HostOptions.AuthOptions.ServerCertSANs}}",
        "web-1",
    ]));
    assert_eq!(
        pretty,
        "[\n    \"web-1.example.com\",\n    \"127.0.0.1\"\n]\n"
    );
}

#[test]
fn url_ip_status() {
    let s = TestStore::new();
    s.add_generic("gen", "127.0.0.1", closed_port(), 2376);
    s.add_generic("up", "127.0.0.1", silent_listener(), 2376);
    s.add_none("daemon", "tcp://192.0.2.7:2376");
    assert_eq!(ok(&s.run(&["url", "up"])), "tcp://127.0.0.1:2376\n");
    assert_eq!(ok(&s.run(&["url", "daemon"])), "tcp://192.0.2.7:2376\n");
    assert_eq!(
        ok(&s.run(&["ip", "gen", "daemon"])),
        "127.0.0.1\n192.0.2.7\n"
    );
    assert_eq!(ok(&s.run(&["status", "gen"])), "Stopped\n");
    assert_eq!(ok(&s.run(&["status", "daemon"])), "Running\n");
}

#[test]
fn exit_status_for_missing_machines() {
    let s = TestStore::new();
    for args in [
        &["ip", "ghost"][..],
        &["url", "ghost"],
        &["inspect", "ghost"],
        &["env", "ghost"],
        &["status", "ghost"],
        &["ssh", "ghost", "true"],
    ] {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&out),
            "Docker machine \"ghost\" does not exist. Use \"machine ls\" to list machines. Use \"machine create\" to add a new one.\n",
            "{args:?}"
        );
    }
    let out = s.run(&["url"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: No machine name(s) specified and no \"default\" machine exists\n"
    );
}

#[test]
fn create_exit_3_when_the_pre_create_check_fails() {
    let s = TestStore::new();
    let out = s.run(&[
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        "127.0.0.1",
        "--generic-ssh-key",
        "/nonexistent/id_ed25519",
        "web",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("pre-create check"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("/nonexistent/id_ed25519"),
        "{}",
        stderr(&out)
    );
    assert!(!s.machine_dir("web").exists(), "nothing is left behind");
    assert_eq!(ok(&s.run(&["ls", "-q"])), "");

    // The same through the driver's environment variables.
    let out = s
        .cmd()
        .env("MACHINE_DRIVER", "generic")
        .env("GENERIC_IP_ADDRESS", "127.0.0.1")
        .env("GENERIC_SSH_KEY", "/nonexistent/key")
        .args(["create", "web"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Other failures exit with 1 and name what is wrong.
    let out = s.run(&["create", "-d", "generic", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("generic-ip-address"),
        "{}",
        stderr(&out)
    );
    let out = s.run(&["create", "-d", "nosuch", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nosuch") && stderr(&out).contains("generic, none"),
        "{}",
        stderr(&out)
    );
    let out = s.run(&[
        "create",
        "-d",
        "none",
        "--generic-ip-address",
        "127.0.0.1",
        "--url",
        "tcp://127.0.0.1:1",
        "web",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("generic-ip-address"),
        "{}",
        stderr(&out)
    );
    let out = s.run(&[
        "create",
        "-d",
        "none",
        "--url",
        "tcp://127.0.0.1:1",
        "bad name",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = s.run(&["create", "-d", "none"]);
    assert_eq!(stderr(&out), "Error: No machine name specified\n");
}

#[test]
fn create_none_then_rm() {
    let s = TestStore::new();
    let p = fake_daemon(&s, "x", "24.0.7");
    let url = format!("tcp://127.0.0.1:{p}");
    let out = s.run(&[
        "create",
        "-d",
        "none",
        "--url",
        &url,
        "--engine-label",
        "env=test",
        "--tls-san",
        "alias.example",
        "nd",
    ]);
    let text = ok(&out);
    assert!(text.contains("Running pre-create checks...\n"), "{text}");
    assert!(text.ends_with(&format!(
        "To see how to connect your Docker Client to the Docker Engine running on this virtual machine, run: {} env nd\n",
        bin()
    )), "{text}");
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.machine_dir("nd").join("config.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(
        cfg["HostOptions"]["EngineOptions"]["Labels"],
        serde_json::json!(["env=test"])
    );
    assert_eq!(
        cfg["HostOptions"]["AuthOptions"]["ServerCertSANs"],
        serde_json::json!(["alias.example"])
    );
    assert_eq!(
        ok(&s.run(&["ls", "--format", "{{.Name}} {{.DockerVersion}}"])),
        "nd v24.0.7\n"
    );
    assert_eq!(ok(&s.run(&["version", "nd"])), "24.0.7\n");

    let again = s.run(&["create", "-d", "none", "--url", &url, "nd"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // rm asks first; anything but yes keeps the machine.
    let mut child = s
        .cmd()
        .args(["rm", "nd"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"n\n")
            .expect("answer");
    }
    let out = child.wait_with_output().expect("rm");
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "About to remove nd\nWARNING: This action will delete both local reference and remote instance.\nAre you sure? (y/n): "
    );
    assert!(s.machine_dir("nd").exists());
    let out = ok(&s.run(&["rm", "-y", "nd"]));
    assert_eq!(
        out,
        "About to remove nd\nWARNING: This action will delete both local reference and remote instance.\nSuccessfully removed nd\n"
    );
    assert!(!s.machine_dir("nd").exists());
    let out = s.run(&["rm", "-y", "nd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error removing host \"nd\": "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rm_force_removes_a_corrupt_machine() {
    let s = TestStore::new();
    let d = s.machine_dir("broken");
    std::fs::create_dir_all(&d).expect("dir");
    std::fs::write(d.join("config.json"), "garbage").expect("write");
    let out = s.run(&["rm", "-y", "broken"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "without -f the driver cannot be asked"
    );
    assert!(d.exists());
    let out = s.run(&["rm", "-f", "broken"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!d.exists());
}

#[test]
fn create_help_lists_driver_flags_with_env_vars() {
    let s = TestStore::new();
    let help = ok(&s.run(&["create", "--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "--driver <DRIVER>",
        "MACHINE_DRIVER",
        "[default: qemu]",
        "--engine-install-url",
        "MACHINE_DOCKER_INSTALL_URL",
        "--engine-opt",
        "--engine-insecure-registry",
        "--engine-registry-mirror",
        "--engine-label",
        "--engine-storage-driver",
        "--engine-env",
        "--qemu-memory",
        "QEMU_MEMORY",
        "--tls-san",
        "Driver generic:",
        "--generic-ip-address",
        "[env: GENERIC_IP_ADDRESS]",
        "--generic-ssh-user",
        "[env: GENERIC_SSH_USER] [default: root]",
        "--generic-ssh-key",
        "[env: GENERIC_SSH_KEY]",
        "--generic-ssh-port",
        "[env: GENERIC_SSH_PORT] [default: 22]",
        "--generic-engine-port",
        "[env: GENERIC_ENGINE_PORT] [default: 2376]",
        "Driver none:",
        "--url <VALUE>",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
}

#[test]
fn unknown_flags_and_commands_are_named() {
    let s = TestStore::new();
    let out = s.run(&["ls", "--colour"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("'--colour'"), "{}", stderr(&out));
    let out = s.run(&["create", "--generic-ip", "1.2.3.4", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("'--generic-ip'"), "{}", stderr(&out));
    let out = s.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("'frobnicate'"), "{}", stderr(&out));
    assert!(s.run(&["--help"]).status.success());
    for cmd in [
        "active",
        "config",
        "create",
        "env",
        "inspect",
        "ip",
        "kill",
        "ls",
        "mount",
        "provision",
        "regenerate-certs",
        "restart",
        "rm",
        "scp",
        "ssh",
        "start",
        "status",
        "stop",
        "upgrade",
        "url",
        "version",
        "completion",
    ] {
        let out = s.run(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
    }
}

#[test]
fn global_flags_and_their_environment() {
    let s = TestStore::new();
    s.add_none("daemon", "tcp://192.0.2.7:2376");
    let other = tempfile::tempdir().expect("tmp");
    // -s wins over MACHINE_STORAGE_PATH.
    let out = s.run(&["-s", &other.path().display().to_string(), "ls", "-q"]);
    assert_eq!(ok(&out), "");
    let out = s.run(&["--storage-path", &s.root(), "ls", "-q"]);
    assert_eq!(ok(&out), "daemon\n");
    // Global flags are accepted before and after the command.
    assert_eq!(ok(&s.run(&["ls", "-q", "-D", "--native-ssh"])), "daemon\n");
    assert_eq!(
        ok(&s.run(&[
            "--tls-ca-cert",
            "/x/ca.pem",
            "--tls-client-key",
            "/x/key.pem",
            "ip",
            "daemon"
        ])),
        "192.0.2.7\n"
    );
    let out = s
        .cmd()
        .env("MACHINE_NATIVE_SSH", "true")
        .args(["ls", "-q"])
        .output()
        .expect("run");
    assert_eq!(ok(&out), "daemon\n");
}

#[test]
fn completions() {
    let s = TestStore::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(&s.run(&["completion", shell]));
        assert!(out.contains("machine"), "{shell}");
        assert!(out.contains("regenerate-certs"), "{shell}");
        assert!(out.contains("generic-ip-address"), "{shell}");
    }
    let out = s.run(&["completion", "tcsh"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ssh_of_a_driver_without_ssh() {
    let s = TestStore::new();
    s.add_none("daemon", "tcp://192.0.2.7:2376");
    let out = s.run(&["ssh", "daemon", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: machine daemon (driver none) has no SSH access\n"
    );
    let out = s.run(&["scp", "/etc/hostname", "daemon:/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    let out = s.run(&["scp", "/etc/hostname", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NAME:PATH"));
}

#[test]
fn generic_lifecycle_refusals_are_clear() {
    let s = TestStore::new();
    // a machine that answers on its SSH port counts as running, one that
    // does not as stopped: each refusal is reached from the other state
    s.add_generic("up", "127.0.0.1", silent_listener(), 2376);
    s.add_generic("down", "127.0.0.1", closed_port(), 2376);
    for (op, name) in [("start", "down"), ("stop", "up"), ("kill", "up")] {
        let out = s.run(&[op, name]);
        assert_eq!(out.status.code(), Some(1), "{op}");
        assert!(
            stderr(&out).contains(&format!("does not support {op}")),
            "{op}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn state_errors_match_the_original() {
    let s = TestStore::new();
    // stopped: url, env, config and version refuse with the original's words
    s.add_generic("down", "127.0.0.1", closed_port(), 2376);
    for args in [
        &["url", "down"][..],
        &["env", "down"],
        &["config", "down"],
        &["version", "down"],
    ] {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("Host is not running"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // running: starting it again is an error; so is stopping a stopped one
    s.add_none("up", "tcp://127.0.0.1:2376");
    let out = s.run(&["start", "up"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Machine \"up\" is already running."),
        "{}",
        stderr(&out)
    );
    let out = s.run(&["stop", "down"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Machine \"down\" is already stopped."),
        "{}",
        stderr(&out)
    );
    // a name in use: the original's first line, exit 1
    let out = s.run(&[
        "create",
        "-d",
        "none",
        "--url",
        "tcp://127.0.0.1:2376",
        "up",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).lines().next(),
        Some("Docker machine \"up\" already exists"),
        "{}",
        stderr(&out)
    );
}

/// Every on/off flag also takes `=true` / `=false` (GitLab Runner passes
/// `--amazonec2-private-address-only=true`); the bare flag still means true
/// and never swallows the next word.
#[test]
fn boolean_flags_take_explicit_values() {
    let s = TestStore::new();
    s.add_none("daemon", "tcp://192.0.2.7:2376");
    for args in [
        &["--native-ssh=true", "ls", "-q"][..],
        &["--native-ssh=false", "ls", "-q"],
        &["--native-ssh", "ls", "-q"],
        &["ls", "--native-ssh=1", "-q", "-D=false"],
        &["ls", "--quiet=true"],
        &["ls", "-q=yes"],
    ] {
        assert_eq!(ok(&s.run(args)), "daemon\n", "{args:?}");
    }
    let table = ok(&s.run(&["ls", "--quiet=false"]));
    assert!(table.starts_with("NAME"), "{table}");
    let out = s.run(&["--native-ssh=maybe", "ls"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--native-ssh"));
    // a driver's boolean flag: parsed, then the driver refuses the region
    let out = s.run(&[
        "create",
        "-d",
        "amazonec2",
        "--amazonec2-private-address-only=true",
        "--amazonec2-use-private-address=false",
        "--amazonec2-region",
        "mars-1",
        "x1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(err.contains("amazonec2-region"), "{err}");
    let out = s.run(&[
        "create",
        "-d",
        "amazonec2",
        "--amazonec2-private-address-only=sure",
        "x2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && err.contains("amazonec2-private-address-only"),
        "{err}"
    );
}
