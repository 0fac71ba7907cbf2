//! MONGODB-AWS client-final payloads per second, one thread.
//!
//! Each iteration is one whole client conversation: `ClientConversation::with_nonce_and_time`
//! (fixed nonce and time) + `client_first` + `client_final` from a precomputed server-first,
//! giving the client-final BSON `{a, d, t?}`.
//!
//! - `fast/*`: the library's path (cached signing key, pre-hashed canonical request).
//! - `aws_sigv4_full/*`: the baseline, the same payload through aws-sigv4's full
//!   `http_request::sign` + `bson::Document` (also the tests' reference).
//!
//! Run: `cargo bench --bench signing -- --warm-up-time 1 --measurement-time 3`

#[path = "shared/mod.rs"]
mod shared;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use docauth::aws::{ClientConversation, Credentials};

fn bench_client_final(c: &mut Criterion) {
    let (nonce, server_first, time) = shared::signing_inputs();
    let token = shared::session_token();
    let long_term = Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
    )
    .unwrap();
    let temporary = Credentials::new(
        "ASIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some(&token),
    )
    .unwrap();

    let mut group = c.benchmark_group("client_final");
    group.throughput(Throughput::Elements(1));
    for (name, credentials) in [("long_term", &long_term), ("session_token", &temporary)] {
        // Both paths must produce the same bytes, or the comparison means nothing.
        let mut a = ClientConversation::with_nonce_and_time(credentials.clone(), nonce, time);
        a.client_first().unwrap();
        let mut b = ClientConversation::with_nonce_and_time(credentials.clone(), nonce, time);
        b.client_first().unwrap();
        assert_eq!(
            a.client_final(&server_first).unwrap(),
            b.client_final_reference(&server_first).unwrap()
        );

        group.bench_function(format!("fast/{name}"), |bench| {
            bench.iter(|| {
                let mut conv =
                    ClientConversation::with_nonce_and_time(credentials.clone(), nonce, time);
                let first = conv.client_first().unwrap();
                black_box(first);
                black_box(conv.client_final(black_box(&server_first)).unwrap())
            })
        });
        group.bench_function(format!("aws_sigv4_full/{name}"), |bench| {
            bench.iter(|| {
                let mut conv =
                    ClientConversation::with_nonce_and_time(credentials.clone(), nonce, time);
                let first = conv.client_first().unwrap();
                black_box(first);
                black_box(
                    conv.client_final_reference(black_box(&server_first))
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_client_final);
criterion_main!(benches);
