//! Hostile input against the `machine` binary: values a careless user or an
//! attacker can put in flags and config.json. Each test checks that nothing
//! runs, nothing is written where it should not be, and the error names the
//! problem.

mod common;

use common::*;

/// A store machine `name` whose config.json field `Driver.<field>` is `value`.
fn generic_with(s: &TestStore, name: &str, port: u16, field: &str, value: &str) {
    let mut v: serde_json::Value =
        serde_json::from_str(&s.generic_config(name, "127.0.0.1", port, 2376)).expect("json");
    v["Driver"][field] = value.into();
    let bytes = machine_core::config::to_go_json(&v).expect("encode");
    s.write_machine(name, &String::from_utf8(bytes).expect("utf8"));
    s.server_cert(name, &["127.0.0.1", "localhost"]);
}

#[test]
fn ssh_user_from_config_never_becomes_an_ssh_option() {
    let s = TestStore::new();
    let port = silent_listener();
    let marker = s.path().join("pwned-sshuser");
    let user = format!("-oProxyCommand=touch {} #", marker.display());
    generic_with(&s, "g1", port, "SSHUser", &user);
    // a pinned key, so that the system ssh would be run straight away
    machine_core::ssh::known_hosts::write(
        &s.machine_dir("g1"),
        "127.0.0.1",
        port,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    )
    .expect("pin");
    for args in [
        vec!["ssh", "g1", "uptime"],
        vec!["scp", "g1:/etc/hostname", "."],
    ] {
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("invalid SSH user"), "{args:?}: {err}");
        assert!(!marker.exists(), "{args:?} ran the ProxyCommand");
    }
    // and a user given on the scp command line
    s.add_generic("g2", "127.0.0.1", port, 2376);
    let out = s.run(&["scp", "--", "-oProxyCommand=x@g2:/etc/hostname", "."]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid SSH user"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn generic_flags_refuse_option_like_users_and_hosts() {
    let s = TestStore::new();
    for (flag, value) in [
        ("--generic-ssh-user", "-oProxyCommand=id"),
        ("--generic-ip-address", "-oProxyCommand=id"),
        ("--generic-ip-address", "host;id"),
    ] {
        let pair = format!("{flag}={value}");
        let mut args = vec!["create", "-d", "generic", pair.as_str()];
        if flag != "--generic-ip-address" {
            args.extend(["--generic-ip-address", "127.0.0.1"]);
        }
        args.push("bad");
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(flag.trim_start_matches('-')),
            "{}",
            stderr(&out)
        );
        assert!(!s.machine_dir("bad").exists(), "{args:?} left a machine");
    }
}

#[test]
fn engine_values_with_line_breaks_or_bad_names_are_refused_up_front() {
    let s = TestStore::new();
    for (flag, value, says) in [
        (
            "--engine-env",
            "A=1\nExecStartPre=/usr/bin/touch /pwned\n#",
            "control character",
        ),
        (
            "--engine-env",
            "X;touch /pwned-openrc;Y=1",
            "not a variable name",
        ),
        ("--engine-label", "a=b\nc", "control character"),
        ("--engine-opt", "log-level=debug\rx", "control character"),
        (
            "--engine-insecure-registry",
            "r:5000\n",
            "control character",
        ),
    ] {
        let pair = format!("{flag}={value}");
        let out = s.run(&[
            "create",
            "-d",
            "none",
            "--url",
            "tcp://127.0.0.1:1",
            &pair,
            "e1",
        ]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{flag} {value:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains(flag.trim_start_matches('-')), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(
            !s.machine_dir("e1").exists(),
            "{flag} {value:?} left a machine"
        );
    }
}

#[test]
fn a_config_without_tls_verify_still_verifies() {
    let s = TestStore::new();
    let mut v: serde_json::Value =
        serde_json::from_str(&s.none_config("n1", "tcp://127.0.0.1:2376")).expect("json");
    v["HostOptions"]["EngineOptions"]
        .as_object_mut()
        .expect("EngineOptions")
        .remove("TlsVerify");
    let bytes = machine_core::config::to_go_json(&v).expect("encode");
    s.write_machine("n1", &String::from_utf8(bytes).expect("utf8"));
    s.server_cert("n1", &["127.0.0.1", "localhost"]);
    let env = ok(&s.run(&["env", "n1"]));
    assert!(env.starts_with("export DOCKER_TLS_VERIFY=\"1\"\n"), "{env}");
    let config = ok(&s.run(&["config", "n1"]));
    assert!(config.starts_with("--tlsverify\n"), "{config}");
}

#[test]
fn without_home_or_storage_path_nothing_is_created_here() {
    let cwd = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(bin())
        .current_dir(cwd.path())
        .env_remove("HOME")
        .env_remove("MACHINE_STORAGE_PATH")
        .args(["create", "-d", "none", "--url", "tcp://127.0.0.1:1", "n1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no store location"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(cwd.path()).expect("ls").count(), 0);
}

#[test]
fn long_machine_names_are_refused_before_any_certificate_is_made() {
    let store = tempfile::tempdir().expect("tmp");
    let name = "a".repeat(64);
    let out = std::process::Command::new(bin())
        .env("MACHINE_STORAGE_PATH", store.path())
        .args(["create", "-d", "none", "--url", "tcp://127.0.0.1:1", &name])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("at most 63 characters"),
        "{}",
        stderr(&out)
    );
    assert!(
        !store.path().join("certs").exists(),
        "a CA was made for a refused name"
    );
}

#[test]
fn remote_text_reaches_ls_without_escape_sequences() {
    let s = TestStore::new();
    let p = fake_daemon(&s, "n1", "24.0.7");
    s.add_none("n1", &format!("tcp://127.0.0.1:{p}"));
    std::fs::write(
        s.machine_dir("n1").join("last-error"),
        "Starting Docker failed: \x1b[2J\x1b]0;owned\x07 journal says \x1b[31mred",
    )
    .expect("write");
    for args in [
        vec!["ls"],
        vec!["ls", "--format", "json"],
        vec!["ls", "-f", "{{.Error}}"],
    ] {
        let out = ok(&s.run(&args));
        assert!(
            !out.contains('\x1b') && !out.contains('\x07'),
            "{args:?}: {out:?}"
        );
        assert!(out.contains("journal says"), "{args:?}: {out}");
    }
}

#[test]
fn format_templates_that_would_crash_are_refused() {
    let s = TestStore::new();
    let p = fake_daemon(&s, "n1", "24.0.7");
    s.add_none("n1", &format!("tcp://127.0.0.1:{p}"));
    for (args, says) in [
        (
            vec![
                "ls",
                "--format",
                r#"{{define "x"}}{{template "x" .}}{{end}}{{template "x" .}}"#,
            ],
            "define",
        ),
        (
            vec!["ls", "--format", r#"{{printf "%*d" 999999999 1}}"#],
            "printf width",
        ),
        (
            vec!["ls", "--format", r#"{{printf "%999999999d" 1}}"#],
            "printf width",
        ),
        (
            vec!["inspect", "n1", "-f", r#"{{printf "%.99999s" .Name}}"#],
            "printf width",
        ),
        // found by the go_template fuzz target: the library's lexer never ends
        (vec!["inspect", "n1", "-f", "{{eq ."], "unclosed action"),
        (vec!["ls", "-f", "{{.Name}}{{$x := ."], "unclosed action"),
        (
            vec!["inspect", "n1", "-f", "{{printf \"%d}}x"],
            "unclosed action",
        ),
        // found by the go_template fuzz target: the library's lexer panics
        (
            vec!["inspect", "n1", "-f", "{{ranieL\u{2d8}t}}"],
            "outside a string",
        ),
    ] {
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // ordinary widths still work, and non-ASCII text and strings
    let out = ok(&s.run(&["ls", "--format", r#"{{printf "%-8s|" .Name}}"#]));
    assert_eq!(out, "n1      |\n");
    let out = ok(&s.run(&["ls", "--format", r#"é {{.Name}} {{"ü"}}"#]));
    assert_eq!(out, "é n1 ü\n");
}

#[test]
fn cmd_output_keeps_operators_in_values_as_text() {
    // a store path with cmd.exe operators in it reaches DOCKER_CERT_PATH
    let s = TestStore::new();
    let p = fake_daemon(&s, "n1", "24.0.7");
    s.add_none("n1", &format!("tcp://127.0.0.1:{p}"));
    let outer = tempfile::tempdir().expect("tmp");
    let root = outer.path().join("a&calc|b");
    std::fs::rename(s.path(), &root).expect("move store");
    std::fs::create_dir_all(s.path()).expect("keep the temp dir");
    let cfg_path = root.join("machines/n1/config.json");
    let cfg = std::fs::read_to_string(&cfg_path)
        .expect("config")
        .replace(&s.root(), &root.to_string_lossy());
    std::fs::write(&cfg_path, cfg).expect("config");
    let out = std::process::Command::new(bin())
        .env("MACHINE_STORAGE_PATH", &root)
        .args(["env", "--shell", "cmd", "n1"])
        .output()
        .expect("run");
    let text = ok(&out);
    let cert_line = text
        .lines()
        .find(|l| l.contains("DOCKER_CERT_PATH"))
        .expect("a DOCKER_CERT_PATH line");
    assert_eq!(
        cert_line,
        format!(
            "SET \"DOCKER_CERT_PATH={}\"",
            root.join("machines/n1").display()
        )
    );
    assert!(text.contains("SET DOCKER_MACHINE_NAME=n1\n"), "{text}");
}

#[test]
fn swarm_flags_refuse_paths_and_control_characters() {
    let s = TestStore::new();
    for (flag, value, want) in [
        (
            "--swarm-discovery",
            "machine://../../etc",
            "not a machine name",
        ),
        (
            "--swarm-discovery",
            "machine://m1/../x",
            "not a machine name",
        ),
        (
            "--swarm-discovery",
            "machine://m1\u{1b}[31m",
            "control characters",
        ),
        (
            "--swarm-addr",
            "10.0.0.1\nX-Injected: 1",
            "control characters",
        ),
        (
            "--swarm-join-opt",
            "listen-addr=0.0.0.0:2377\r",
            "control characters",
        ),
    ] {
        let pair = format!("{flag}={value}");
        let args = [
            "create",
            "-d",
            "none",
            "--url",
            "tcp://127.0.0.1:9",
            "--swarm",
            pair.as_str(),
            "bad",
        ];
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains('\u{1b}'), "{args:?}: raw escape in {err:?}");
        assert!(!s.machine_dir("bad").exists(), "{args:?} left a machine");
    }
}
