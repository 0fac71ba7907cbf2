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

use std::time::{Duration, UNIX_EPOCH};

use bson::spec::BinarySubtype;
use bson::{doc, Binary};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use docauth::aws::{ClientConversation, Credentials};

/// A session token of the size and alphabet AssumeRole returns (~800 base64 characters).
fn session_token() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut token = String::from("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ");
    let mut x: u32 = 12345;
    while token.len() < 800 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        token.push(alphabet[(x >> 16) as usize % alphabet.len()] as char);
    }
    token.push_str("==");
    token
}

fn bench_client_final(c: &mut Criterion) {
    let nonce = [0x5au8; 32];
    let mut s = nonce.to_vec();
    s.extend([0xa5u8; 32]);
    let server_first = bson::to_vec(&doc! {
        "s": Binary { subtype: BinarySubtype::Generic, bytes: s },
        "h": "sts.us-west-2.amazonaws.com",
    })
    .unwrap();
    let time = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    let token = session_token();
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
