//! Driver plugins against real Go peers (Debian's golang-go, standard
//! library only): `tests/goplugin` holds a plugin (`docker-machine-driver-gotest`,
//! a machine at a given address, like the generic driver) and a host
//! (`gohost`, which drives a plugin the way libmachine does). Both are built
//! here with `go build`.
//!
//! - our host (`machine`) with the Go plugin: flags, lifecycle, errors,
//!   crashes, a plugin that never answers, a host that dies;
//! - the Go host with our drivers served as plugins (`machine` linked as
//!   `docker-machine-driver-NAME`);
//! - end to end on test host 17 (suite `plugin`): a machine created through
//!   the Go plugin is provisioned and runs a container; on test host 18 the
//!   Go host creates a machine through our generic driver.

mod common;

use common::{bin, ok, test_image, text};
use machine_test_support::test_hosts::{for_suite, Suite};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Go peers, built once per test binary; `None` when Go is missing and
/// CI is not set (the test is then skipped).
fn go_bin() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if Command::new("go").arg("version").output().is_err() {
            machine_test_support::skip_or_fail(
                "go (Debian package golang-go) is not installed",
                "apt-get install golang-go (scripts/test.sh does)",
            );
            return None;
        }
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("goplugin");
        let out = tmp.join("bin");
        std::fs::create_dir_all(&out).expect("go out dir");
        let st = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg("./cmd/...")
            .current_dir(common::repo().join("tests/goplugin"))
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOCACHE", tmp.join("cache"))
            .env("GOPATH", tmp.join("gopath"))
            .output()
            .expect("go build");
        assert!(st.status.success(), "go build: {}", text(&st.stderr));
        Some(out)
    })
    .as_deref()
}

/// A store, a PATH directory with the plugins, and a call log.
struct World {
    tmp: tempfile::TempDir,
    path: String,
}

impl World {
    fn new() -> Option<World> {
        let go = go_bin()?;
        let tmp = tempfile::tempdir().expect("tmp");
        let plugins = tmp.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        let gotest = go.join("docker-machine-driver-gotest");
        // the Go plugin under its own name and over the names of built-in drivers
        for name in ["gotest", "none", "generic"] {
            symlink(
                &gotest,
                plugins.join(format!("docker-machine-driver-{name}")),
            )
            .expect("link");
        }
        // our binary, serving its built-in drivers
        for name in ["ournone", "ourgeneric"] {
            symlink(bin(), plugins.join(format!("docker-machine-driver-{name}"))).expect("link");
        }
        let path = format!(
            "{}:{}:{}",
            plugins.display(),
            go.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Some(World { tmp, path })
    }
    fn store(&self) -> PathBuf {
        self.tmp.path().join("store")
    }
    fn log(&self) -> PathBuf {
        self.tmp.path().join("calls.log")
    }
    fn calls(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("MACHINE_STORAGE_PATH", self.store())
            .env("PATH", &self.path)
            .env("GOTEST_CALL_LOG", self.log())
            .env("DOCKER_CONFIG", self.tmp.path().join("docker-config"))
            .env_remove("MACHINE_DRIVER")
            .env_remove("MACHINE_PLUGIN_DRIVERS")
            .env_remove("MACHINE_PLUGIN_TOKEN")
            .env_remove("GOTEST_LABEL")
            .env_remove("GOTEST_SSH_PORT")
            .env_remove("DOCKER_HOST");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let started = Instant::now();
        let mut c = self.cmd();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run machine");
        eprintln!(
            "machine {} -> {:?} in {:?}",
            args.join(" "),
            out.status.code(),
            started.elapsed()
        );
        out
    }
    /// The Go host: `gohost -driver NAME ... OPS`; its JSON lines.
    fn gohost(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = Command::new(go_bin().expect("go").join("gohost"))
            .args(args)
            .env("PATH", &self.path)
            .env("MACHINE_STORAGE_PATH", self.store())
            .env_remove("MACHINE_PLUGIN_DRIVERS")
            .output()
            .expect("gohost");
        eprintln!("gohost {args:?}: {}", text(&out.stderr));
        assert!(
            out.status.success(),
            "gohost failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
    /// Process ids the plugin logged.
    fn pids(&self) -> Vec<i32> {
        self.calls()
            .lines()
            .filter_map(|l| l.strip_prefix("pid "))
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }
}

fn alive(pid: i32) -> bool {
    // a zombie counts as gone
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
}

fn wait_gone(pids: &[i32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "plugin processes still running: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn op<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["op"] == name)
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

#[test]
fn flags_listed_and_passed_and_errors_carried() {
    let Some(w) = World::new() else { return };
    let help = ok(&w.run(&["create", "--help", "-d", "gotest"]));
    for (flag, extra) in [
        ("--gotest-ip-address <VALUE>", "[env: GOTEST_IP_ADDRESS]"),
        (
            "--gotest-ssh-port <N>",
            "[env: GOTEST_SSH_PORT] [default: 22]",
        ),
        ("--gotest-verbose[=<true|false>]", "[env: GOTEST_VERBOSE]"),
        ("--gotest-tags <VALUE>", "[default: a,b]"),
    ] {
        let line = help
            .lines()
            .find(|l| l.contains(flag))
            .unwrap_or_else(|| panic!("{flag} missing: {help}"));
        assert!(line.contains(extra), "{line}");
    }
    // the chosen driver's flags only
    assert!(!help.contains("--generic-ip-address"), "{help}");
    assert!(!help.contains("--amazonec2-region"), "{help}");

    let out = w.run_env(
        &[
            "create",
            "-d",
            "gotest",
            "--gotest-ip-address",
            "127.0.0.1",
            "--gotest-tags",
            "x",
            "--gotest-tags",
            "y",
            "--gotest-verbose",
            "--gotest-engine-port",
            "2377",
            "--gotest-fail-create",
            "fl",
        ],
        &[("GOTEST_LABEL", "from-env"), ("GOTEST_SSH_PORT", "2222")],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("the test plugin was told to fail: quota exceeded"),
        "{err}"
    );
    // its log line before failing is shown; debug lines only with --debug
    let said = text(&out.stdout);
    assert!(said.contains("(fl) creating the machine"), "{said}");
    assert!(!said.contains("is created"), "{said}");
    assert!(!err.contains("debug line from create"), "{err}");
    let calls = w.calls();
    assert!(
        calls.contains("PreCreateCheck fl\n")
            && calls.contains("Create fl label=from-env tags=[x y] port=2222 verbose=true\n"),
        "{calls}"
    );
    // config.json's Driver object is the plugin's own JSON
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.store().join("machines/fl/config.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(config["DriverName"], "gotest");
    assert_eq!(config["Driver"]["EnginePort"], 2377);
    assert_eq!(config["Driver"]["Tags"], serde_json::json!(["x", "y"]));
    assert_eq!(config["Driver"]["IPAddress"], "127.0.0.1");
    assert_eq!(
        config["Driver"]["StorePath"],
        w.store().display().to_string()
    );
    let ls = ok(&w.run(&["ls", "--format", "{{.Name}} {{.DriverName}} {{.State}}"]));
    assert_eq!(ls.trim(), "fl gotest Error");
    ok(&w.run(&["rm", "-y", "fl"]));
    assert!(w.calls().contains("Remove fl\n"));
    assert!(!w.store().join("machines/fl").exists());
    wait_gone(&w.pids(), Duration::from_secs(10));

    // an unknown driver names the executable looked for
    let out = w.run(&["create", "-d", "nosuchdriver", "x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("docker-machine-driver-nosuchdriver"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_plugin_is_held_to_the_rules_of_every_foreign_driver() {
    let Some(w) = World::new() else { return };
    // an engine port that is no port, in the plugin's own configuration: refused
    // when the driver is made, as for a Python or JavaScript driver object
    let out = w.run(&[
        "create",
        "-d",
        "gotest",
        "--gotest-ip-address",
        "127.0.0.1",
        "--gotest-engine-port",
        "70000",
        "bp",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "driver gotest failed to make its driver object: \
             EnginePort 70000 is not a port (a whole number in 1..=65535)"
        ),
        "{err}"
    );
    // the plugin was never asked to create anything, and has ended
    assert!(!w.calls().contains("Create bp"), "{}", w.calls());
    assert!(!w.store().join("machines/bp").exists());
    wait_gone(&w.pids(), Duration::from_secs(10));
}

#[test]
fn plugins_on_path_are_listed_with_the_drivers_without_being_started() {
    let Some(w) = World::new() else { return };
    let help = ok(&w.run(&["create", "--help"]));
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let list = flat
        .split_once("Driver to create machine with (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("no driver list: {help}"));
    let names: Vec<&str> = list.split(", ").collect();
    for n in [
        "amazonec2",
        "generic",
        "gotest",
        "none",
        "ourgeneric",
        "ournone",
        "qemu",
    ] {
        assert_eq!(names.iter().filter(|x| **x == n).count(), 1, "{n}: {list}");
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    // listing asked no plugin for anything: none was started
    assert!(w.pids().is_empty(), "{}", w.calls());
    // an unknown driver's error lists them too
    let out = w.run(&["create", "-d", "nosuchdriver", "x"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("gotest") && err.contains("ournone"), "{err}");
    assert!(w.pids().is_empty(), "{}", w.calls());
}

#[test]
fn lifecycle_through_a_plugin_forced_over_a_built_in_name() {
    let Some(w) = World::new() else { return };
    // "none" is built in; forced, its plugin serves it (and, being called
    // none, is not provisioned): the plugin's flags replace the built-in's
    let env = [("MACHINE_PLUGIN_DRIVERS", "none")];
    let help = ok(&w.run_env(&["create", "--help", "-d", "none"], &env));
    assert!(
        help.contains("--none-ip-address") && !help.contains("--url "),
        "{help}"
    );
    let out = w.run_env(
        &[
            "--debug",
            "create",
            "-d",
            "none",
            "--none-ip-address",
            "127.0.0.3",
            "--none-ssh-user",
            "docker",
            "lc",
        ],
        &env,
    );
    // the plugin's log lines during Create are steps of the create, labelled
    // with the machine's name as the original does, the last one printed just
    // before Create answered included; its stderr lines are debug output
    let said = ok(&out);
    let steps: Vec<&str> = said.lines().filter(|l| l.starts_with("(lc) ")).collect();
    assert_eq!(
        steps,
        [
            "(lc) creating the machine...",
            "(lc) machine lc is created..."
        ],
        "{said}"
    );
    assert!(!said.contains("debug line from create"), "{said}");
    let err = text(&out.stderr);
    assert!(err.contains("(lc) DBG | debug line from create"), "{err}");
    let fmt = "{{.Name}} {{.State}} {{.URL}}";
    assert_eq!(
        ok(&w.run_env(&["ls", "--format", fmt], &env)).trim(),
        "lc Running tcp://127.0.0.3:2376"
    );
    assert_eq!(ok(&w.run_env(&["ip", "lc"], &env)).trim(), "127.0.0.3");
    ok(&w.run_env(&["stop", "lc"], &env));
    assert_eq!(ok(&w.run_env(&["status", "lc"], &env)).trim(), "Stopped");
    ok(&w.run_env(&["start", "lc"], &env));
    assert_eq!(ok(&w.run_env(&["status", "lc"], &env)).trim(), "Running");
    ok(&w.run_env(&["kill", "lc"], &env));
    assert_eq!(ok(&w.run_env(&["status", "lc"], &env)).trim(), "Stopped");
    let inspect = ok(&w.run_env(&["inspect", "--format", "{{.Driver.SSHUser}}", "lc"], &env));
    assert_eq!(inspect.trim(), "docker");
    ok(&w.run_env(&["rm", "-y", "lc"], &env));
    let calls = w.calls();
    for c in ["Create lc", "Stop lc", "Start lc", "Kill lc", "Remove lc"] {
        assert!(calls.contains(c), "{c}: {calls}");
    }
    wait_gone(&w.pids(), Duration::from_secs(10));
}

#[test]
fn a_plugin_declaring_generic_flags_works() {
    let Some(w) = World::new() else { return };
    let env = [("MACHINE_PLUGIN_DRIVERS", "generic")];
    let help = ok(&w.run_env(&["create", "--help", "-d", "generic"], &env));
    assert!(help.contains("--generic-crash-create"), "{help}");
    let out = w.run_env(
        &[
            "create",
            "-d",
            "generic",
            "--generic-ip-address",
            "127.0.0.1",
            "--generic-fail-create",
            "gp",
        ],
        &env,
    );
    assert!(
        text(&out.stderr).contains("quota exceeded"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        w.calls()
            .contains("Create gp label=none tags=[a b] port=22"),
        "{}",
        w.calls()
    );
    // without the variable the built-in generic driver is used
    let help = ok(&w.run(&["create", "--help", "-d", "generic"]));
    assert!(!help.contains("--generic-crash-create"), "{help}");
    ok(&w.run_env(&["rm", "-y", "gp"], &env));
}

#[test]
fn crash_mid_create_leaves_error_and_rm_cleans_up() {
    let Some(w) = World::new() else { return };
    let out = w.run(&[
        "create",
        "-d",
        "gotest",
        "--gotest-ip-address",
        "127.0.0.1",
        "--gotest-crash-create",
        "cr",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exited"),
        "{}",
        text(&out.stderr)
    );
    let ls = ok(&w.run(&["ls", "--format", "{{.Name}} {{.State}}"]));
    assert_eq!(ls.trim(), "cr Error");
    ok(&w.run(&["rm", "-y", "cr"]));
    assert!(w.calls().contains("Remove cr\n"));
    assert!(!w.store().join("machines/cr").exists());
    wait_gone(&w.pids(), Duration::from_secs(10));
}

#[test]
fn a_plugin_that_never_prints_its_address_is_ended() {
    let Some(w) = World::new() else { return };
    let started = Instant::now();
    let out = w.run_env(
        &[
            "create",
            "-d",
            "gotest",
            "--gotest-ip-address",
            "127.0.0.1",
            "sl",
        ],
        &[
            ("GOTEST_MODE", "silent"),
            ("MACHINE_PLUGIN_START_TIMEOUT", "1"),
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("docker-machine-driver-gotest printed no address within 1.0 s"),
        "{err}"
    );
    eprintln!("failed after {:?}", started.elapsed());
    let pids = w.pids();
    assert!(!pids.is_empty());
    wait_gone(&pids, Duration::from_secs(5));
}

#[test]
fn the_plugin_ends_when_its_host_dies() {
    let Some(w) = World::new() else { return };
    let mut child = w
        .cmd()
        .args([
            "create",
            "-d",
            "gotest",
            "--gotest-ip-address",
            "127.0.0.1",
            "--gotest-sleep-create",
            "120",
            "hd",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.calls().contains("Create hd") {
        assert!(
            Instant::now() < deadline,
            "create never reached the plugin: {}",
            w.calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pids = w.pids();
    let creating = *pids.last().expect("pid");
    assert!(alive(creating));
    child.kill().expect("kill the host");
    child.wait().expect("wait");
    // no more heartbeats: the plugin exits on its own (10 s in the protocol)
    wait_gone(&[creating], Duration::from_secs(30));
}

#[test]
fn the_go_host_drives_our_none_driver_served_as_a_plugin() {
    let Some(w) = World::new() else { return };
    let store = w.store();
    std::fs::create_dir_all(store.join("machines/sv")).expect("dir");
    // our binary in place of the Go plugin's link
    let plugins = w.tmp.path().join("plugins");
    std::fs::remove_file(plugins.join("docker-machine-driver-none")).expect("unlink");
    symlink(bin(), plugins.join("docker-machine-driver-none")).expect("link");
    let lines = w.gohost(&[
        "-driver",
        "none",
        "-machine",
        "sv",
        "-store",
        &store.display().to_string(),
        "-set",
        "url=tcp://10.1.2.3:2376",
        "flags",
        "config",
        "precreate",
        "create",
        "state",
        "url",
        "ip",
        "raw",
        "machine",
        "name",
        "stop",
        "bogus",
        "remove",
    ]);
    let flags = op(&lines, "flags")["value"]
        .as_array()
        .expect("flags")
        .clone();
    let url = flags
        .iter()
        .find(|f| f["flag"]["Name"] == "url")
        .expect("url flag");
    assert_eq!(url["kind"], "*mcnflag.StringFlag");
    assert_eq!(op(&lines, "config").get("error"), None, "{lines:?}");
    assert_eq!(op(&lines, "create").get("error"), None, "{lines:?}");
    assert_eq!(op(&lines, "state")["value"], 1);
    assert_eq!(op(&lines, "url")["value"], "tcp://10.1.2.3:2376");
    assert_eq!(op(&lines, "ip")["value"], "10.1.2.3");
    assert_eq!(op(&lines, "raw")["value"]["URL"], "tcp://10.1.2.3:2376");
    assert_eq!(op(&lines, "raw")["value"]["MachineName"], "sv");
    assert_eq!(op(&lines, "machine")["value"], "sv");
    assert_eq!(op(&lines, "name")["value"], "none");
    // errors come back with their text
    let stop = op(&lines, "stop")["error"]
        .as_str()
        .expect("stop error")
        .to_string();
    assert!(stop.contains("does not support stop"), "{stop}");
    let bogus = op(&lines, "bogus")["error"]
        .as_str()
        .expect("bogus error")
        .to_string();
    assert!(bogus.contains("NoSuchMethod"), "{bogus}");
    assert_eq!(op(&lines, "close").get("error"), None);

    // the saved JSON loads again in a new plugin process
    let raw = serde_json::to_vec(&op(&lines, "raw")["value"]).expect("raw");
    let raw_file = w.tmp.path().join("raw.json");
    std::fs::write(&raw_file, raw).expect("write");
    let lines = w.gohost(&[
        "-driver",
        "none",
        "-raw",
        &raw_file.display().to_string(),
        "url",
        "state",
    ]);
    assert_eq!(op(&lines, "url")["value"], "tcp://10.1.2.3:2376");
    assert_eq!(op(&lines, "state")["value"], 1);
}

#[test]
fn our_binary_refuses_to_serve_without_the_token() {
    let Some(w) = World::new() else { return };
    let out = Command::new(
        w.tmp
            .path()
            .join("plugins/docker-machine-driver-ourgeneric"),
    )
    .env_remove("MACHINE_PLUGIN_TOKEN")
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("driver plugin"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn e2e_go_plugin_machine_runs_a_container() {
    let Some(hosts) = for_suite(Suite::Plugin) else {
        return;
    };
    let Some(w) = World::new() else { return };
    let ip = hosts.addr(17);
    let key = hosts.key().display().to_string();
    let out = w.run(&[
        "create",
        "-d",
        "gotest",
        "--gotest-ip-address",
        ip,
        "--gotest-ssh-key",
        &key,
        "--engine-opt",
        "bridge=none",
        "--engine-opt",
        "iptables=false",
        "--engine-opt",
        "ip6tables=false",
        "--engine-install-url",
        "none",
        "gp1",
    ]);
    let said = ok(&out);
    assert!(said.contains("Docker is up and running!"), "{said}");
    let ls = ok(&w.run(&[
        "ls",
        "--format",
        "{{.Name}} {{.DriverName}} {{.State}} {{.URL}} {{.DockerVersion}}",
    ]));
    assert!(
        ls.starts_with(&format!("gp1 gotest Running tcp://{ip}:2376 v")),
        "{ls}"
    );
    let image = test_image(w.tmp.path());
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; eval \"$(\"$M\" env gp1)\"; docker import {} mt-busybox:latest >/dev/null; \
             docker run --rm --network none mt-busybox:latest echo hello-from-plugin-machine",
            image.display()
        ))
        .env("M", bin())
        .env("PATH", &w.path)
        .env("MACHINE_STORAGE_PATH", w.store())
        .env("GOTEST_CALL_LOG", w.log())
        .env("DOCKER_CONFIG", w.tmp.path().join("docker-config"))
        .env_remove("DOCKER_HOST")
        .output()
        .expect("bash");
    assert_eq!(ok(&out).trim(), "hello-from-plugin-machine");
    assert_eq!(
        ok(&w.run(&["ssh", "gp1", "echo", "over-ssh"])).trim(),
        "over-ssh"
    );
    ok(&w.run(&["rm", "-y", "gp1"]));
    assert!(w.calls().contains("Remove gp1"));
    wait_gone(&w.pids(), Duration::from_secs(10));
}

#[test]
fn e2e_go_host_creates_through_our_generic_driver() {
    let Some(hosts) = for_suite(Suite::Plugin) else {
        return;
    };
    let Some(w) = World::new() else { return };
    let ip = hosts.addr(18);
    let key = hosts.key().display().to_string();
    let plugins = w.tmp.path().join("plugins");
    let _ = std::fs::remove_file(plugins.join("docker-machine-driver-generic"));
    symlink(bin(), plugins.join("docker-machine-driver-generic")).expect("link");
    let store = w.store();
    std::fs::create_dir_all(store.join("machines/gh")).expect("dir");
    let lines = w.gohost(&[
        "-driver",
        "generic",
        "-machine",
        "gh",
        "-store",
        &store.display().to_string(),
        "-set",
        &format!("generic-ip-address={ip}"),
        "-set",
        &format!("generic-ssh-key={key}"),
        "flags",
        "config",
        "precreate",
        "create",
        "state",
        "ssh",
        "url",
        "raw",
        "remove",
    ]);
    for o in ["config", "precreate", "create", "remove"] {
        assert_eq!(op(&lines, o).get("error"), None, "{o}: {lines:?}");
    }
    assert_eq!(op(&lines, "state")["value"], 1, "{lines:?}");
    assert_eq!(op(&lines, "ssh")["value"]["host"], ip);
    assert_eq!(op(&lines, "ssh")["value"]["port"], 22);
    assert_eq!(op(&lines, "ssh")["value"]["user"], "root");
    assert_eq!(op(&lines, "url")["value"], format!("tcp://{ip}:2376"));
    assert_eq!(op(&lines, "raw")["value"]["IPAddress"], ip);
}
