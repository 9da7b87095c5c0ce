//! Rendering a machine's environment for each shell.

use criterion::{criterion_group, criterion_main, Criterion};
use machine_core::env::{render, MachineEnv, Shell};
use std::hint::black_box;

fn env(c: &mut Criterion) {
    let e = MachineEnv::new(
        "default",
        "tcp://192.168.99.100:2376",
        "/home/user/.docker/machine/machines/default",
        true,
    )
    .with_no_proxy("192.168.99.100", Some("localhost,127.0.0.1"), None);
    let hint = "machine env default";
    let mut g = c.benchmark_group("env_render");
    for shell in Shell::ALL {
        g.bench_function(shell.as_str(), |b| {
            b.iter(|| black_box(render(black_box(&e), shell, Some(hint)).expect("render")))
        });
    }
    let hostile = MachineEnv::new("m", "tcp://h:2376", "/tmp/it's \"a\" $path `x`", true);
    g.bench_function("bash_escaped", |b| {
        b.iter(|| black_box(render(black_box(&hostile), Shell::Bash, Some(hint)).expect("render")))
    });
    g.finish();
}

criterion_group!(benches, env);
criterion_main!(benches);
