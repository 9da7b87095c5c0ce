//! The Docker daemon's command line and service configuration for each init system.

use crate::config::EngineOptions;
use crate::ssh::shell_quote;

/// Where the daemon's TLS material goes on the machine.
pub const REMOTE_CA: &str = "/etc/docker/ca.pem";
/// Server certificate on the machine.
pub const REMOTE_SERVER_CERT: &str = "/etc/docker/server.pem";
/// Server key on the machine.
pub const REMOTE_SERVER_KEY: &str = "/etc/docker/server-key.pem";
/// systemd drop-in that overrides the packaged unit's `ExecStart`.
pub const SYSTEMD_DROP_IN: &str = "/etc/systemd/system/docker.service.d/10-machine.conf";
/// OpenRC's settings file for the docker service.
pub const OPENRC_CONF: &str = "/etc/conf.d/docker";
/// Without an init system: the start script, pid file and log file.
pub const PLAIN_SCRIPT: &str = "/etc/docker/machine-dockerd.sh";
/// Pid file of a daemon started without an init system.
pub const PLAIN_PID: &str = "/var/run/machine-dockerd.pid";
/// Log file of a daemon started without an init system.
pub const PLAIN_LOG: &str = "/var/log/machine-dockerd.log";

/// The daemon's arguments (without the program), in the original's order:
/// listeners, storage driver, TLS, labels (the `provider` label first),
/// insecure registries, registry mirrors, then `--engine-opt` flags.
pub fn dockerd_args(engine: &EngineOptions, port: u16, driver_name: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-H".into(),
        format!("tcp://0.0.0.0:{port}"),
        "-H".into(),
        "unix:///var/run/docker.sock".into(),
    ];
    if !engine.storage_driver.is_empty() {
        a.push("--storage-driver".into());
        a.push(engine.storage_driver.clone());
    }
    // Always: whoever reaches the port would otherwise be root on the machine.
    a.push("--tlsverify".into());
    for (flag, path) in [
        ("--tlscacert", REMOTE_CA),
        ("--tlscert", REMOTE_SERVER_CERT),
        ("--tlskey", REMOTE_SERVER_KEY),
    ] {
        a.push(flag.into());
        a.push(path.into());
    }
    let provider = format!("provider={driver_name}");
    let labels = engine.labels.as_deref().unwrap_or_default();
    if !labels.iter().any(|l| l.starts_with("provider=")) {
        a.push("--label".into());
        a.push(provider);
    }
    let lists: [(&str, &Option<Vec<String>>); 4] = [
        ("--label", &engine.labels),
        ("--insecure-registry", &engine.insecure_registry),
        ("--registry-mirror", &engine.registry_mirror),
        ("--dns", &engine.dns),
    ];
    for (flag, list) in lists {
        for v in list.as_deref().unwrap_or_default() {
            a.push(flag.into());
            a.push(v.clone());
        }
    }
    if !engine.log_level.is_empty() {
        a.push("--log-level".into());
        a.push(engine.log_level.clone());
    }
    if !engine.graph_dir.is_empty() {
        a.push("--data-root".into());
        a.push(engine.graph_dir.clone());
    }
    if engine.ipv6 {
        a.push("--ipv6".into());
    }
    if engine.selinux_enabled {
        a.push("--selinux-enabled".into());
    }
    for f in engine.arbitrary_flags.as_deref().unwrap_or_default() {
        let f = f.trim_start_matches('-');
        if !f.is_empty() {
            a.push(format!("--{f}"));
        }
    }
    a
}

/// Quote one word for a systemd `ExecStart=` line, where `$` expands
/// variables and `%` specifiers.
fn systemd_word(w: &str) -> String {
    systemd_quote(w, true)
}

/// Quote one `Environment=` assignment, where `%` is a specifier but `$` is
/// plain text.
fn systemd_env_word(w: &str) -> String {
    systemd_quote(w, false)
}

fn systemd_quote(w: &str, dollar_special: bool) -> String {
    let plain = |c: char| {
        !(c.is_whitespace()
            || c.is_control()
            || matches!(c, '"' | '\'' | '\\' | ';' | '%')
            || (dollar_special && c == '$'))
    };
    if !w.is_empty() && w.chars().all(plain) {
        return w.to_string();
    }
    let mut s = String::from("\"");
    for c in w.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '%' => s.push_str("%%"),
            '$' if dollar_special => s.push_str("$$"),
            // never a raw line break or other control character in a unit file
            c if c.is_control() => s.push_str(&format!("\\x{:02x}", u32::from(c) & 0xff)),
            _ => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The systemd drop-in that runs `dockerd` with our arguments and environment.
pub fn systemd_drop_in(dockerd: &str, args: &[String], env: &[String]) -> String {
    let mut out = String::from("[Service]\nExecStart=\nExecStart=");
    out.push_str(&systemd_word(dockerd));
    for w in args {
        out.push(' ');
        out.push_str(&systemd_word(w));
    }
    out.push('\n');
    out.push_str("Environment=");
    let envs: Vec<String> = env.iter().map(|e| systemd_env_word(e)).collect();
    out.push_str(&envs.join(" "));
    out.push('\n');
    out
}

/// OpenRC's `/etc/conf.d/docker`: the daemon's options and environment.
pub fn openrc_conf(args: &[String], env: &[String]) -> String {
    let mut out = String::new();
    for e in env {
        match e.split_once('=') {
            Some((k, v)) if crate::config::is_variable_name(k) => {
                out.push_str(&format!("export {k}={}\n", shell_quote(v)))
            }
            // the file is sourced by a shell: a name that is not a name is code
            _ => tracing::warn!(value = %e, "engine environment entry skipped: not NAME=VALUE"),
        }
    }
    let words: Vec<String> = args.iter().map(|w| shell_quote(w)).collect();
    out.push_str(&format!("DOCKER_OPTS={}\n", shell_quote(&words.join(" "))));
    out.push_str("DOCKER_LOGFILE=/var/log/docker.log\n");
    out
}

/// A script that starts `dockerd` in the background without an init system,
/// recording its pid and logging to [`PLAIN_LOG`].
pub fn plain_start_script(dockerd: &str, args: &[String], env: &[String]) -> String {
    let mut cmd: Vec<String> = Vec::new();
    if !env.is_empty() {
        cmd.push("env".into());
        cmd.extend(env.iter().map(|e| shell_quote(e)));
    }
    cmd.push(shell_quote(dockerd));
    cmd.extend(args.iter().map(|w| shell_quote(w)));
    format!(
        "#!/bin/sh\n# Starts the Docker daemon configured for this machine.\nset -e\nif [ -f {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; then exit 0; fi\n\
         nohup {cmd} >>{log} 2>&1 </dev/null &\necho $! >{pid}\n",
        pid = PLAIN_PID,
        log = PLAIN_LOG,
        cmd = cmd.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> EngineOptions {
        EngineOptions {
            labels: Some(vec!["env=test".into()]),
            insecure_registry: Some(vec!["reg:5000".into()]),
            registry_mirror: Some(vec!["http://mirror".into()]),
            arbitrary_flags: Some(vec!["bridge=none".into(), "--iptables=false".into()]),
            env: Some(vec!["HTTP_PROXY=http://p:3128".into()]),
            ..EngineOptions::default()
        }
    }

    #[test]
    fn args_follow_original_order() {
        let a = dockerd_args(&engine(), 2376, "generic").join(" ");
        assert_eq!(
            a,
            "-H tcp://0.0.0.0:2376 -H unix:///var/run/docker.sock --storage-driver overlay2 --tlsverify \
             --tlscacert /etc/docker/ca.pem --tlscert /etc/docker/server.pem --tlskey /etc/docker/server-key.pem \
             --label provider=generic --label env=test --insecure-registry reg:5000 --registry-mirror http://mirror \
             --bridge=none --iptables=false"
        );
    }

    #[test]
    fn drop_in_has_empty_execstart_and_quotes() {
        let d = systemd_drop_in(
            "/usr/sbin/dockerd",
            &["--label".into(), "a b".into()],
            &["X=1 2".into()],
        );
        assert_eq!(
            d,
            "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --label \"a b\"\nEnvironment=\"X=1 2\"\n"
        );
    }

    #[test]
    fn a_newline_in_an_engine_value_never_starts_a_unit_line() {
        let env = vec!["A=1\nExecStartPre=/usr/bin/touch /pwned\n#".to_string()];
        let args = vec![
            "--label".to_string(),
            "x\nExecStartPre=/bin/false".to_string(),
        ];
        let d = systemd_drop_in("/usr/bin/dockerd", &args, &env);
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), 4, "{d}");
        assert!(lines.iter().all(|l| !l.starts_with("ExecStartPre")), "{d}");
        assert!(d.contains("\\x0a"), "{d}");
        // and such values never get that far
        let e = crate::config::check_engine_value("engine-env", &env[0]).expect_err("newline");
        assert_eq!(e.flag, "engine-env");
        assert!(crate::config::check_engine_value("engine-label", "x\ry").is_err());
    }

    #[test]
    fn environment_keeps_dollar_signs_as_written() {
        let d = systemd_drop_in("/usr/bin/dockerd", &[], &["PASS=pa$$w0rd 1%".into()]);
        assert!(d.ends_with("Environment=\"PASS=pa$$w0rd 1%%\"\n"), "{d}");
        let d = systemd_drop_in("/usr/bin/dockerd", &["a$b".into()], &[]);
        assert!(d.contains("\"a$$b\""), "{d}");
    }

    #[test]
    fn openrc_conf_exports_only_variable_names() {
        let c = openrc_conf(
            &[],
            &["X;touch /pwned-openrc;Y=1".into(), "OK_1=a b".into()],
        );
        assert!(!c.contains("touch"), "{c}");
        assert!(c.contains("export OK_1='a b'\n"), "{c}");
        let e = crate::config::check_engine_value("engine-env", "X;touch /p;Y=1").expect_err("key");
        assert!(e.reason.contains("not a variable name"), "{e}");
        assert!(crate::config::check_engine_value("engine-env", "_A9=;|&$`").is_ok());
        assert!(crate::config::check_engine_value("engine-env", "9A=1").is_err());
        assert!(crate::config::check_engine_value("engine-env", "NOVALUE").is_err());
    }

    #[test]
    fn the_daemon_always_verifies_clients() {
        let e = EngineOptions {
            tls_verify: false,
            ..engine()
        };
        let a = dockerd_args(&e, 2376, "generic");
        assert!(a.iter().any(|w| w == "--tlsverify"), "{a:?}");
        assert!(!a.iter().any(|w| w == "--tls"), "{a:?}");
        let parsed: EngineOptions = serde_json::from_str("{}").expect("empty EngineOptions");
        assert!(parsed.tls_verify);
    }

    #[test]
    fn plain_script_quotes_everything() {
        let s = plain_start_script(
            "/usr/sbin/dockerd",
            &["--label".into(), "x=$(reboot)".into()],
            &[],
        );
        assert!(s.contains("'x=$(reboot)'"), "{s}");
        assert!(s.contains(PLAIN_PID));
    }
}
