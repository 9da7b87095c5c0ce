//! Loading a store of 1,000 machines (what `ls` does before querying drivers).

use criterion::{criterion_group, criterion_main, Criterion};
use machine_core::config::HostConfig;
use machine_core::store::FileStore;
use std::hint::black_box;

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let files = FileStore::new(dir.path());
    for i in 0..1000 {
        let name = format!("machine-{i:04}");
        let mut cfg = HostConfig::new(&name, "generic", dir.path());
        cfg.driver.insert(
            "IPAddress".into(),
            serde_json::Value::from(format!("10.0.{}.{}", i / 250, i % 250)),
        );
        files.create(&cfg).expect("create");
    }
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.bench_function("names/1000", |b| {
        b.iter(|| black_box(files.names().expect("names")))
    });
    g.bench_function("load_all/1000", |b| {
        b.iter(|| {
            let all = files.load_all().expect("load_all");
            assert_eq!(all.len(), 1000);
            black_box(all)
        })
    });
    let one = files.load("machine-0500").expect("load");
    g.bench_function("save_one", |b| {
        b.iter(|| files.save(black_box(&one)).expect("save"))
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
