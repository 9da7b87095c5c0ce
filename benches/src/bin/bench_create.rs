//! End-to-end bench: `create -d generic` on a test host where Docker is
//! installed, then `regenerate-certs` and running `true` over SSH. Counts SSH
//! connections, commands and file writes from the library's debug events.
//!
//! ```text
//! eval "$(scripts/testhosts.sh env)"; cargo run --release -p benches --bin bench_create -- HOST_INDEX [ROUNDS] [cold]
//! ```
//!
//! The hosts are read as the end-to-end tests read them
//! (`machine_test_support::test_hosts::TestHosts`). HOST_INDEX (default 0)
//! indexes `MT_HOSTS`; run the bench when no tests use that host.

use machine_core::driver::OptionValue;
use machine_core::host::{error_chain, CreateOptions};
use machine_core::store::FileStore;
use machine_core::Store;
use machine_test_support::test_hosts::TestHosts;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    commands: AtomicU64,
    files: AtomicU64,
}

struct Counter(Arc<Counts>);

struct Message(String);
impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let c = &self.0;
        match m.0.as_str() {
            "ssh connected" => c.connections.fetch_add(1, Ordering::Relaxed),
            "ssh run" => c.commands.fetch_add(1, Ordering::Relaxed),
            "ssh write file" => c.files.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

impl Counts {
    fn take(&self) -> (u64, u64, u64) {
        (
            self.connections.swap(0, Ordering::Relaxed),
            self.commands.swap(0, Ordering::Relaxed),
            self.files.swap(0, Ordering::Relaxed),
        )
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let index: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5).max(1);
    // "cold": the daemon is stopped before each create; otherwise create must restart a running one
    let cold_daemon = args.get(2).map(String::as_str) == Some("cold");
    let hosts = TestHosts::from_env().unwrap_or_else(|e| {
        eprintln!("bench_create: {e}");
        std::process::exit(2);
    });
    let Some(host) = hosts.get(index) else {
        eprintln!(
            "bench_create: MT_HOSTS names {} test host(s), not host {index}",
            hosts.hosts().len()
        );
        std::process::exit(2);
    };
    let ip = host.addr.clone();
    let key = hosts.key().display().to_string();
    let counts = Arc::new(Counts::default());
    let subscriber = tracing_subscriber::registry()
        .with(Counter(counts.clone()).with_filter(tracing_subscriber::filter::LevelFilter::DEBUG));
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("bench_create: cannot install the event counter");
        std::process::exit(2);
    }
    let tmp = std::env::temp_dir().join(format!("bench-create-{}", std::process::id()));
    let store = Store::new(FileStore::new(&tmp), machine_drivers::builtin_registry());
    // certificates once, as for a store in use
    store
        .bootstrap_certs(Default::default())
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    let (mut create, mut regen, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    let mut per_create = (0, 0, 0);
    for round in 0..rounds {
        let name = format!("bench{round}");
        let mut o = CreateOptions::new("generic");
        o.use_environment = false;
        o.driver_option("generic-ip-address", OptionValue::String(ip.clone()))
            .driver_option("generic-ssh-key", OptionValue::String(key.clone()));
        for f in ["bridge=none", "iptables=false", "ip6tables=false"] {
            let _ = o.engine_flag("engine-opt", OptionValue::String(f.into()));
        }
        let _ = o.engine_flag("engine-install-url", OptionValue::String("none".into()));
        if cold_daemon {
            // Docker installed, daemon not running: stop the one a previous round left.
            let stop = "p=$(cat /var/run/machine-dockerd.pid 2>/dev/null) && kill $p && while kill -0 $p 2>/dev/null; do sleep 0.05; done; rm -f /var/run/machine-dockerd.pid; true";
            let st = std::process::Command::new("ssh")
                .args([
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "LogLevel=error",
                    "-i",
                    &key,
                ])
                .arg(format!("root@{ip}"))
                .arg(stop)
                .status();
            assert!(
                st.map(|s| s.success()).unwrap_or(false),
                "stopping the daemon failed"
            );
        }
        counts.take();
        let t = Instant::now();
        let mut host = store
            .create(&name, o, &|_: &str| {})
            .await
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
        create.push(t.elapsed());
        per_create = counts.take();
        let t = Instant::now();
        host.regenerate_certs(false, &|_: &str| {})
            .await
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
        regen.push(t.elapsed());
        let t = Instant::now();
        let out = host
            .ssh("true")
            .await
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
        assert!(out.success());
        truth.push(t.elapsed());
        store
            .remove(&name, false)
            .await
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let mode = if cold_daemon {
        "daemon not running before create"
    } else {
        "daemon running before create"
    };
    println!("generic create (Docker installed, {mode}), {rounds} rounds:");
    println!(
        "  create           median {:>6} ms  (min {} ms)",
        median(create.clone()).as_millis(),
        create.iter().min().map(|d| d.as_millis()).unwrap_or(0)
    );
    println!(
        "  regenerate-certs median {:>6} ms",
        median(regen).as_millis()
    );
    println!(
        "  ssh true         median {:>6} ms  (connect + run)",
        median(truth).as_millis()
    );
    println!(
        "  per create: {} SSH connection(s), {} commands, {} file uploads over SFTP",
        per_create.0, per_create.1, per_create.2
    );
}
