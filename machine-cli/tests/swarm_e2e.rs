//! End-to-end: a Swarm-mode cluster of generic machines, built and taken
//! apart with the `machine` binary on the test hosts of suite `swarm_e2e`
//! (hosts 10-14 of `MT_HOSTS`, see test-support/hosts.json). Without them
//! the cluster test fails when CI is set and is skipped otherwise; the
//! checks of wrong input need no host.
//!
//! The hosts share this machine's kernel, so their daemons run without a
//! bridge or iptables rules (`--engine-opt bridge=none --engine-opt
//! iptables=false`). Swarm mode works that way: init, join, Raft and
//! scheduling use the nodes' own addresses; the service here publishes no
//! port and attaches to no overlay network.
//!
//! Figures (time to form the cluster, to reschedule after a node loss, to
//! elect a new leader) are printed on stderr as `TIMING ...` lines.

mod common;

use common::{bin, ok, test_image, text};

use machine_core::bollard;
use machine_test_support::test_hosts::{for_suite, Hosts, Suite};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Cli {
    store: PathBuf,
    tmp: PathBuf,
}

impl Cli {
    fn new(tmp: &Path) -> Cli {
        Cli {
            store: tmp.join("store"),
            tmp: tmp.to_path_buf(),
        }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("MACHINE_STORAGE_PATH", &self.store)
            .env("DOCKER_CONFIG", self.tmp.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("MACHINE_DRIVER")
            .env_remove("MACHINE_SWARM_IMAGE");
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
    /// `script` in bash with the client pointed at machine `name`'s
    /// cluster (`eval "$(machine env --swarm NAME)"`).
    fn docker(&self, name: &str, script: &str) -> Output {
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -e; eval \"$(\"$M\" env --swarm {name})\"; {script}"
            ))
            .env("MACHINE_STORAGE_PATH", &self.store)
            .env("DOCKER_CONFIG", self.tmp.join("docker-config"))
            .env("M", bin())
            .env_remove("DOCKER_HOST")
            .output()
            .expect("bash")
    }
    fn store(&self) -> machine_core::Store {
        machine_core::Store::open(
            Some(self.store.clone()),
            machine_drivers::builtin_registry(),
        )
        .expect("store")
    }
}

fn create_args<'a>(ip: &'a str, key: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        ip,
        "--generic-ssh-key",
        key,
        "--engine-opt",
        "bridge=none",
        "--engine-opt",
        "iptables=false",
        "--engine-opt",
        "ip6tables=false",
        "--engine-install-url",
        "none",
    ];
    v.extend_from_slice(extra);
    v.push(name);
    v
}

/// Run `script` as root on the test host at `ip` with plain OpenSSH.
fn on_host(hosts: &Hosts, ip: &str, script: &str) -> Output {
    Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            hosts.state().join("known_hosts").display()
        ))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "LogLevel=ERROR", "-i"])
        .arg(hosts.key())
        .arg(format!("root@{ip}"))
        .arg(script)
        .output()
        .expect("ssh")
}

/// A host left in a cluster by an earlier run would refuse to start a new
/// one: stop a daemon we started there and forget its swarm state.
fn reset_host(hosts: &Hosts, ip: &str) {
    let out = on_host(
        hosts,
        ip,
        "p=$(cat /var/run/machine-dockerd.pid 2>/dev/null || true); \
         if [ -n \"$p\" ] && kill \"$p\" 2>/dev/null; then \
           for i in $(seq 100); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.2; done; fi; \
         rm -rf /var/lib/docker/swarm",
    );
    ok(&out);
}

/// Poll `f` every 500 ms until it returns `Some`, at most `limit`.
#[track_caller]
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `docker node ls` through `name`'s cluster: hostname → (status, manager status).
fn node_ls(cli: &Cli, name: &str) -> Option<BTreeMap<String, (String, String)>> {
    let out = cli.docker(
        name,
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'",
    );
    if !out.status.success() {
        eprintln!("docker node ls: {}", text(&out.stderr).trim());
        return None;
    }
    Some(
        text(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let host = w.next()?.to_string();
                let status = w.next()?.to_string();
                Some((host, (status, w.next().unwrap_or("").to_string())))
            })
            .collect(),
    )
}

/// The running tasks of service `service`, by host name of their node,
/// read through the Docker API of machine `via` (the library's
/// `Host::docker`, a bollard client over mutual TLS).
fn running_tasks(
    rt: &tokio::runtime::Runtime,
    cli: &Cli,
    via: &str,
    service: &str,
) -> Option<BTreeMap<String, usize>> {
    rt.block_on(async {
        let host = cli.store().get(via).ok()?.swarm_manager().await.ok()?;
        let names: BTreeMap<String, String> = host
            .swarm_nodes()
            .await
            .ok()?
            .into_iter()
            .map(|n| (n.id, n.hostname))
            .collect();
        let d = host.docker().await.ok()?;
        let filters: std::collections::HashMap<String, Vec<String>> = [
            ("service".to_string(), vec![service.to_string()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]
        .into();
        let opts = bollard::query_parameters::ListTasksOptions {
            filters: Some(filters),
        };
        let tasks = d.list_tasks(Some(opts)).await.ok()?;
        let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            let running =
                t.status.and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING);
            if running {
                let node = t.node_id.unwrap_or_default();
                let name = names.get(&node).cloned().unwrap_or(node);
                *by_node.entry(name).or_default() += 1;
            }
        }
        Some(by_node)
    })
}

fn stop_daemon(cli: &Cli, name: &str) {
    ok(&cli.run(&["ssh", name, "kill $(cat /var/run/machine-dockerd.pid)"]));
}

#[test]
fn swarm_cluster_across_machines() {
    let Some(hosts) = for_suite(Suite::SwarmE2e) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let cli = Cli::new(tmp.path());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let key = hosts.key().display().to_string();
    let (m1_ip, w1_ip, w2_ip, m2_ip, m3_ip) = (
        hosts.addr(10),
        hosts.addr(11),
        hosts.addr(12),
        hosts.addr(13),
        hosts.addr(14),
    );
    for ip in [m1_ip, w1_ip, w2_ip, m2_ip, m3_ip] {
        reset_host(&hosts, ip);
    }

    // A manager, then two workers joining it at the same time.
    let start = Instant::now();
    let out = cli.run(&create_args(
        m1_ip,
        &key,
        "m1",
        &["--swarm-master", "--swarm-opt", "dispatcher-heartbeat=2s"],
    ));
    assert!(
        ok(&out).contains("Docker is up and running!"),
        "{}",
        text(&out.stdout)
    );
    let workers: Vec<std::process::Child> = [("w1", w1_ip), ("w2", w2_ip)]
        .iter()
        .map(|(name, ip)| {
            cli.cmd()
                .args(create_args(
                    ip,
                    &key,
                    name,
                    &["--swarm", "--swarm-discovery", "machine://m1"],
                ))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn create")
        })
        .collect();
    for w in workers {
        ok(&w.wait_with_output().expect("create worker"));
    }
    let (_, _) = wait_for("three Ready nodes", Duration::from_secs(60), || {
        let nodes = node_ls(&cli, "m1")?;
        (nodes.len() == 3 && nodes.values().all(|(s, _)| s == "Ready")).then_some(())
    });
    let formed = start.elapsed();
    eprintln!(
        "TIMING cluster of 3 nodes (1 manager, 2 workers created in parallel) formed in {formed:?}"
    );
    let nodes = node_ls(&cli, "m1").expect("node ls");
    assert_eq!(
        nodes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["m1", "w1", "w2"]
    );
    assert_eq!(nodes["m1"].1, "Leader");

    // ls: the SWARM column as the original showed it; inspect keeps the options.
    let ls = ok(&cli.run(&["ls", "--format", "{{.Name}}={{.Swarm}}"]));
    assert_eq!(ls, "m1=m1 (master)\nw1=m1\nw2=m1\n");
    let table = ok(&cli.run(&["ls"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("w2 ") && l.contains(" m1 ")),
        "{table}"
    );
    assert_eq!(
        ok(&cli.run(&[
            "inspect",
            "--format",
            "{{.HostOptions.SwarmOptions.IsSwarm}} {{.HostOptions.SwarmOptions.Master}} {{.HostOptions.SwarmOptions.Discovery}}",
            "w1"
        ])),
        "true false machine://m1\n"
    );
    assert_eq!(
        ok(&cli.run(&[
            "inspect",
            "--format",
            "{{.HostOptions.SwarmOptions.Master}} {{.HostOptions.SwarmOptions.Discovery}} {{range .HostOptions.SwarmOptions.ArbitraryFlags}}{{.}}{{end}}",
            "m1"
        ])),
        "true machine://m1 dispatcher-heartbeat=2s\n"
    );
    // env --swarm of a worker points at the manager.
    let env = ok(&cli.run(&["env", "--swarm", "w1"]));
    assert!(
        env.contains(&format!("DOCKER_HOST=\"tcp://{m1_ip}:2376\"")),
        "{env}"
    );
    assert!(env.contains("DOCKER_MACHINE_NAME=\"m1\""), "{env}");

    // A service of 6 replicas of a local image, on every node.
    let image = test_image(tmp.path());
    for name in ["m1", "w1", "w2"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -e; eval \"$(\"$M\" env {name})\"; docker import \"$1\" mt-busybox:latest >/dev/null"
            ))
            .arg("import")
            .arg(&image)
            .env("MACHINE_STORAGE_PATH", &cli.store)
            .env("DOCKER_CONFIG", tmp.path().join("docker-config"))
            .env("M", bin())
            .output()
            .expect("import");
        ok(&out);
    }
    ok(&cli.docker(
        "m1",
        "docker service create -d --quiet --name probe --replicas 6 --no-resolve-image \
         --stop-grace-period 1s mt-busybox:latest sleep 1000000 >/dev/null",
    ));
    let (spread, took) = wait_for("6 running replicas", Duration::from_secs(90), || {
        running_tasks(&rt, &cli, "m1", "probe").filter(|t| t.values().sum::<usize>() == 6)
    });
    eprintln!("TIMING 6 replicas running in {took:?}: {spread:?}");
    assert_eq!(
        spread.keys().map(String::as_str).collect::<Vec<_>>(),
        ["m1", "w1", "w2"],
        "the replicas should run on all three nodes"
    );

    // w2's daemon stops: its replicas move to the other nodes.
    stop_daemon(&cli, "w2");
    let (moved, took) = wait_for(
        "replicas rescheduled off w2",
        Duration::from_secs(120),
        || {
            running_tasks(&rt, &cli, "m1", "probe")
                .filter(|t| t.values().sum::<usize>() == 6 && !t.contains_key("w2"))
        },
    );
    eprintln!("TIMING replicas rescheduled after w2's daemon stopped in {took:?}: {moved:?}");
    let (_, _) = wait_for("w2 Down", Duration::from_secs(60), || {
        node_ls(&cli, "m1")?
            .get("w2")
            .filter(|(s, _)| s == "Down")
            .map(|_| ())
    });

    // rm of the dead worker: its node goes from the list (found by name).
    ok(&cli.run(&["rm", "-y", "w2"]));
    let nodes = node_ls(&cli, "m1").expect("node ls");
    assert_eq!(
        nodes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["m1", "w1"],
        "{nodes:?}"
    );

    // Two more managers: one through m1, one through m2 (the cluster keeps m1's name).
    ok(&cli.run(&create_args(
        m2_ip,
        &key,
        "m2",
        &["--swarm-master", "--swarm-discovery", "machine://m1"],
    )));
    ok(&cli.run(&create_args(
        m3_ip,
        &key,
        "m3",
        &[
            "--swarm-master",
            "--swarm-discovery",
            "machine://m2",
            "--swarm-join-opt",
            "availability=active",
        ],
    )));
    let ls = ok(&cli.run(&["ls", "--format", "{{.Name}}={{.Swarm}}"]));
    assert_eq!(
        ls,
        "m1=m1 (master)\nm2=m1 (master)\nm3=m1 (master)\nw1=m1\n"
    );
    let nodes = node_ls(&cli, "m1").expect("node ls");
    let managers: BTreeSet<&str> = nodes
        .iter()
        .filter(|(_, (_, m))| m == "Leader" || m == "Reachable")
        .map(|(h, _)| h.as_str())
        .collect();
    assert_eq!(managers, BTreeSet::from(["m1", "m2", "m3"]), "{nodes:?}");

    // The first manager goes down: two of three managers keep the quorum,
    // elect a leader and still schedule work.
    stop_daemon(&cli, "m1");
    let (leader, took) = wait_for("a new leader", Duration::from_secs(60), || {
        let nodes = node_ls(&cli, "m1")?;
        nodes
            .iter()
            .find(|(h, (_, m))| m == "Leader" && h.as_str() != "m1")
            .map(|(h, _)| h.clone())
    });
    eprintln!("TIMING new leader {leader} elected {took:?} after m1's daemon stopped");
    let env = ok(&cli.run(&["env", "--swarm", "m1"]));
    assert!(!env.contains("DOCKER_MACHINE_NAME=\"m1\""), "{env}");
    for name in ["m2", "m3"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -e; eval \"$(\"$M\" env {name})\"; docker import \"$1\" mt-busybox:latest >/dev/null"
            ))
            .arg("import")
            .arg(&image)
            .env("MACHINE_STORAGE_PATH", &cli.store)
            .env("DOCKER_CONFIG", tmp.path().join("docker-config"))
            .env("M", bin())
            .output()
            .expect("import");
        ok(&out);
    }
    ok(&cli.docker(
        "m1",
        "docker service create -d --quiet --name after --replicas 2 --no-resolve-image \
         --stop-grace-period 1s mt-busybox:latest sleep 1000000 >/dev/null",
    ));
    let (after, _) = wait_for("2 replicas without m1", Duration::from_secs(90), || {
        running_tasks(&rt, &cli, "m1", "after").filter(|t| t.values().sum::<usize>() == 2)
    });
    assert!(!after.contains_key("m1"), "{after:?}");

    // m1 comes back (provision restarts its daemon) and is a manager again.
    ok(&cli.run(&["provision", "m1"]));
    wait_for("m1 reachable again", Duration::from_secs(60), || {
        node_ls(&cli, "m2")?
            .get("m1")
            .filter(|(s, m)| s == "Ready" && (m == "Reachable" || m == "Leader"))
            .map(|_| ())
    });

    // A new worker joins through m3; rm of a live worker: it leaves, and
    // its node goes from the list.
    reset_host(&hosts, w2_ip);
    ok(&cli.run(&create_args(
        w2_ip,
        &key,
        "w3",
        &["--swarm", "--swarm-discovery", "machine://m3"],
    )));
    wait_for("w3 Ready", Duration::from_secs(60), || {
        node_ls(&cli, "m1")?
            .get("w3")
            .filter(|(s, _)| s == "Ready")
            .map(|_| ())
    });
    ok(&cli.run(&["rm", "-y", "w3"]));
    let nodes = node_ls(&cli, "m1").expect("node ls");
    assert!(!nodes.contains_key("w3"), "{nodes:?}");
    let state = on_host(
        &hosts,
        w2_ip,
        "docker info --format '{{.Swarm.LocalNodeState}}'",
    );
    assert_eq!(ok(&state).trim(), "inactive");

    // rm of managers: m3 and m2 are demoted first and leave.
    ok(&cli.run(&["rm", "-y", "m3"]));
    let nodes = node_ls(&cli, "m1").expect("node ls");
    assert!(!nodes.contains_key("m3"), "{nodes:?}");
    ok(&cli.run(&["rm", "-y", "m2"]));
    let nodes = node_ls(&cli, "m1").expect("node ls");
    assert_eq!(
        nodes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["m1", "w1"],
        "{nodes:?}"
    );
    assert_eq!(nodes["m1"].1, "Leader");

    // The last manager: rm says what happens to the worker and asks; no
    // answer keeps everything.
    let out = cli
        .cmd()
        .args(["rm", "m1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("rm");
    let said = ok(&out);
    assert!(
        said.contains("WARNING: m1 is the last manager of its swarm: the swarm ends, and its workers w1 leave it"),
        "{said}"
    );
    assert!(cli.store.join("machines/m1").exists());
    // -y: the worker leaves, then the manager.
    ok(&cli.run(&["rm", "-y", "m1"]));
    for ip in [m1_ip, w1_ip, m2_ip, m3_ip] {
        let state = on_host(
            &hosts,
            ip,
            "docker info --format '{{.Swarm.LocalNodeState}}'",
        );
        assert_eq!(ok(&state).trim(), "inactive", "{ip}");
    }
    assert_eq!(
        ok(&cli.run(&["ls", "--format", "{{.Name}}={{.Swarm}}"])),
        "w1=\n"
    );
    assert_eq!(
        ok(&cli.run(&[
            "inspect",
            "--format",
            "{{.HostOptions.SwarmOptions.IsSwarm}}",
            "w1"
        ])),
        "false\n"
    );
    ok(&cli.run(&["rm", "-y", "w1"]));
}

/// Wrong input, refused before any machine is made (no host needed).
#[test]
fn wrong_input_gets_clear_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cli = Cli::new(tmp.path());
    let none = |name: &'static str, extra: &[&'static str]| {
        let mut v = vec!["create", "-d", "none", "--url", "tcp://127.0.0.1:9"];
        v.extend_from_slice(extra);
        v.push(name);
        v
    };
    ok(&cli.run(&none("plain", &[])));

    let fails = |args: Vec<&str>, want: &str| {
        let out = cli.run(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains(want), "{err}");
        assert!(!cli.store.join("machines/w").exists(), "{err}");
    };
    fails(
        none("w", &["--swarm", "--swarm-discovery", "machine://nope"]),
        "the swarm discovery names machine \"nope\", which is not in the store",
    );
    fails(
        none("w", &["--swarm", "--swarm-discovery", "machine://plain"]),
        "machine plain is not a swarm manager",
    );
    fails(none("w", &["--swarm"]), "joining a swarm needs the manager");
    fails(
        none("w", &["--swarm", "--swarm-discovery", "token://0123"]),
        "Swarm mode takes machine://MANAGER",
    );
    fails(
        none("w", &["--swarm-master", "--swarm-opt", "autolock=maybe"]),
        "expected true or false",
    );

    // Flags of the classic Swarm: accepted, one warning line each.
    let out = cli.run(&none(
        "classic",
        &[
            "--swarm-image",
            "swarm:1.2.9",
            "--swarm-strategy",
            "binpack",
        ],
    ));
    ok(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains("swarm option swarm-image=swarm:1.2.9 is ignored"),
        "{err}"
    );
    assert!(
        err.contains("swarm option swarm-strategy=binpack is ignored"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("is ignored")).count(),
        2,
        "{err}"
    );
    assert_eq!(
        ok(&cli.run(&[
            "inspect",
            "--format",
            "{{.HostOptions.SwarmOptions.Image}}",
            "classic"
        ])),
        "swarm:1.2.9\n"
    );

    // A machine of the classic Swarm, as the original wrote it: listed as
    // before, and removed without any Swarm-mode step.
    ok(&cli.run(&none("legacy", &[])));
    let cfg = cli.store.join("machines/legacy/config.json");
    let legacy = std::fs::read_to_string(&cfg).expect("config");
    let legacy = legacy
        .replace("\"IsSwarm\": false", "\"IsSwarm\": true")
        .replace("\"Master\": false", "\"Master\": true")
        .replace(
            "\"Discovery\": \"\"",
            "\"Discovery\": \"token://0123456789abcdef\"",
        );
    std::fs::write(&cfg, legacy).expect("write");
    let ls = ok(&cli.run(&[
        "ls",
        "--filter",
        "swarm=legacy",
        "--format",
        "{{.Name}}={{.Swarm}}",
    ]));
    assert_eq!(ls, "legacy=legacy (master)\n");
    ok(&cli.run(&["rm", "-y", "legacy"]));

    // A machine in no swarm.
    let out = cli.run(&["env", "--swarm", "plain"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("machine plain is not in a swarm"),
        "{}",
        text(&out.stderr)
    );

    // The last manager of a cluster with workers: rm says so and asks.
    // (A manager whose daemon does not answer fails to initialize, and stays
    // listed in state Error with its swarm options, which is all rm reads.)
    let out = cli.run(&none("mgr", &["--swarm-master"]));
    assert_eq!(out.status.code(), Some(1));
    let cfg = cli.store.join("machines/mgr/config.json");
    let fake_worker = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace("\"Master\": true", "\"Master\": false")
        .replace("\"Name\": \"mgr\"", "\"Name\": \"wk\"");
    let wk = cli.store.join("machines/wk");
    std::fs::create_dir_all(&wk).expect("mkdir");
    std::fs::write(wk.join("config.json"), fake_worker).expect("write");
    let ls = ok(&cli.run(&["ls", "--format", "{{.Name}}={{.Swarm}}"]));
    assert!(
        ls.contains("mgr=mgr (master)\n") && ls.contains("wk=mgr\n"),
        "{ls}"
    );
    let out = cli
        .cmd()
        .args(["rm", "mgr"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("rm");
    let said = text(&out.stdout);
    assert!(
        said.contains("WARNING: mgr is the last manager of its swarm: the swarm ends, and its workers wk leave it"),
        "{said}"
    );
    assert!(said.contains("Are you sure? (y/n)"), "{said}");
    assert!(cli.store.join("machines/mgr").exists());

    // A worker whose managers do not answer: rm says so and how to go on.
    let out = cli.run(&["rm", "-y", "wk"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no manager of the swarm machine://mgr answers"),
        "{err}"
    );
    assert!(err.contains("rm -f wk"), "{err}");
    ok(&cli.run(&["rm", "-f", "wk"]));
    assert!(!wk.exists());
}
