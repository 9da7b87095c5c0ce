//! Certificate bundle generation: CA, client and server certificates.

use criterion::{criterion_group, criterion_main, Criterion};
use machine_core::cert::{CertificateAuthority, KeyAlgorithm};
use std::hint::black_box;

fn bundle(c: &mut Criterion) {
    let mut g = c.benchmark_group("cert_bundle");
    g.sample_size(10);
    for (label, alg) in [
        ("rsa2048", KeyAlgorithm::Rsa2048),
        ("ecdsa_p256", KeyAlgorithm::EcdsaP256),
    ] {
        g.bench_function(format!("ca+client+server/{label}"), |b| {
            b.iter(|| {
                let ca = CertificateAuthority::generate("bench", alg).expect("ca");
                let client = ca.issue_client("bench.client", alg).expect("client");
                let server = ca
                    .issue_server("bench.m1", &["10.0.0.1".into(), "localhost".into()], alg)
                    .expect("server");
                black_box((client, server))
            })
        });
        let ca = CertificateAuthority::generate("bench", alg).expect("ca");
        g.bench_function(format!("server_only/{label}"), |b| {
            b.iter(|| {
                black_box(
                    ca.issue_server("bench.m1", &["10.0.0.1".into()], alg)
                        .expect("server"),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bundle);
criterion_main!(benches);
