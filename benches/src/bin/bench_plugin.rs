//! The driver plugin protocol's costs, against a real plugin executable:
//! how long a plugin takes to start (process start, address line, connect,
//! GetVersion), and the per-call overhead of 1,000 `GetState` calls, raw
//! (one RPC) and through the `Driver` trait (a blocking-pool hop each).
//!
//! ```sh
//! (cd tests/goplugin && go build -o /tmp/goplugin ./cmd/...)
//! cargo run --release -p benches --bin bench_plugin -- /tmp/goplugin/docker-machine-driver-gotest [CALLS]
//! ```

use machine_core::driver::{DriverContext, DriverFactory};
use machine_drivers::plugin::rpc::{empty, empty_type};
use machine_drivers::plugin::{Plugin, PluginFactory};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(exe) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: bench_plugin PLUGIN_EXECUTABLE [CALLS]");
        std::process::exit(2);
    };
    let calls: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let name = "gotest";

    let mut starts = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let p = Plugin::launch(name, &exe).expect("launch");
        starts.push(t.elapsed());
        drop(p);
    }
    starts.sort();
    println!(
        "plugin start (launch to GetVersion answered), 10 runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(starts[5]),
        ms(starts[0]),
        ms(starts[9])
    );

    let p = Plugin::launch(name, &exe).expect("launch");
    let t = Instant::now();
    for _ in 0..calls {
        p.call("GetState", &empty_type(), &empty(), None)
            .expect("GetState");
    }
    let raw = t.elapsed();
    println!(
        "{calls} GetState calls (raw RPC): {:.1} ms, {:.1} µs per call",
        ms(raw),
        raw.as_secs_f64() * 1e6 / f64::from(calls)
    );
    drop(p);

    let dir = tempfile::tempdir().expect("tmp");
    let ctx = DriverContext {
        machine_name: "bench".into(),
        store_root: dir.path().to_path_buf(),
        machine_dir: dir.path().join("machines/bench"),
    };
    let saved = serde_json::json!({"MachineName": "bench", "IPAddress": "127.0.0.1", "StorePath": dir.path()});
    let factory = PluginFactory::new(name, exe.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t = Instant::now();
    let driver = factory
        .load_driver(&ctx, saved.as_object().expect("object"))
        .expect("load");
    let load = t.elapsed();
    let t = Instant::now();
    rt.block_on(async {
        for _ in 0..calls {
            driver.state().await.expect("state");
        }
    });
    let through = t.elapsed();
    println!(
        "load_driver (start + SetConfigRaw + config and SSH getters): {:.1} ms",
        ms(load)
    );
    println!(
        "{calls} Driver::state calls: {:.1} ms, {:.1} µs per call",
        ms(through),
        through.as_secs_f64() * 1e6 / f64::from(calls)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
