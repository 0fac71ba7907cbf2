//! What the metrics cost: the same code with counting on and off, in the same run
//! (`docauth::metrics::set_counting`, a process-wide switch read with one relaxed load at
//! each counting site; "off" skips every counter and histogram, the switch's load stays).
//!
//!     cargo bench --bench metrics
//!
//! - `metrics/policy_cached/{on,off}`: a decision answered by the cache, the policy bench's
//!   engine of 200 roles (target ≤ 100 ns; the difference is the counters' cost);
//! - `metrics/policy_uncached/{on,off}`: a decision the rules evaluate (within 5 %);
//! - `metrics/signing/{on,off}`: a whole MONGODB-AWS client conversation (no counter on that
//!   path: the two must agree);
//! - `metrics_relay_paired` (printed): small find round trips through one docauth session,
//!   counting switched on and off every block of 500 round trips (order swapped every block),
//!   so machine-wide slow phases hit both alike (within 2 %).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/round_trip.rs"]
mod round_trip;
#[path = "shared/mod.rs"]
mod shared;

use std::time::Duration;

use common::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use docauth::aws::{ClientConversation, Credentials};
use docauth::metrics::set_counting;
use docauth::session::{Runtime, Session};
use round_trip::{find_request, median_us, round_trip};

fn policy(c: &mut Criterion) {
    let (engine, request) = shared::setup();
    assert!(engine.decide(&request).allowed);
    let mut group = c.benchmark_group("metrics/policy_cached");
    for (name, on) in [("on", true), ("off", false)] {
        set_counting(on);
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.decide(black_box(&request))))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("metrics/policy_uncached");
    for (name, on) in [("on", true), ("off", false)] {
        set_counting(on);
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.decide_uncached(black_box(&request))))
        });
    }
    group.finish();
    set_counting(true);
}

fn signing(c: &mut Criterion) {
    let (nonce, server_first, time) = shared::signing_inputs();
    let token = shared::session_token();
    let credentials = Credentials::new(
        "ASIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some(&token),
    )
    .unwrap();
    let mut group = c.benchmark_group("metrics/signing");
    for (name, on) in [("on", true), ("off", false)] {
        set_counting(on);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut conv =
                    ClientConversation::with_nonce_and_time(credentials.clone(), nonce, time);
                black_box(conv.client_first().unwrap());
                black_box(conv.client_final(black_box(&server_first)).unwrap())
            })
        });
    }
    group.finish();
    set_counting(true);
}

fn relay_paired(_c: &mut Criterion) {
    const BLOCKS: usize = 60;
    const PER_BLOCK: usize = 500;
    // Printed, not measured by criterion: run it only when no filter excludes it.
    if !std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .all(|a| "metrics_relay_paired".contains(&a))
    {
        return;
    }
    let server = TestServer::start(ServerOptions {
        no_auth_required: true,
        ..Default::default()
    });
    let runtime = Runtime::new(2).unwrap();
    let (client, proxy_side) = socket_pair();
    let p = params(
        &format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
        None,
    );
    let _session = Session::start(
        &runtime,
        tokio_stream(&runtime, proxy_side),
        p,
        engine(&["test"]),
        static_credentials(),
        None,
    )
    .unwrap();
    let mut client = Client::new(client);
    client.stream.set_nodelay(true).unwrap();
    let request = find_request();
    for _ in 0..2 * PER_BLOCK {
        round_trip(&mut client, &request);
    }
    let mut on = Vec::with_capacity(BLOCKS * PER_BLOCK);
    let mut off = Vec::with_capacity(BLOCKS * PER_BLOCK);
    for block in 0..BLOCKS {
        for turn in 0..2 {
            let counting = (block + turn) % 2 == 0;
            set_counting(counting);
            let samples = if counting { &mut on } else { &mut off };
            for _ in 0..PER_BLOCK {
                samples.push(round_trip(&mut client, &request));
            }
        }
    }
    set_counting(true);
    let total = |s: &[Duration]| s.iter().sum::<Duration>().as_secs_f64();
    let (on_total, off_total) = (total(&on), total(&off));
    let n = on.len();
    let (on_median, off_median) = (median_us(&mut on), median_us(&mut off));
    println!(
        "metrics_relay_paired: {n} round trips each, one session, counting switched every block of {PER_BLOCK}: on {:.0}/s (median {on_median:.1} us), off {:.0}/s (median {off_median:.1} us); on/off throughput {:.3}x, added median latency {:+.2} us",
        n as f64 / on_total,
        n as f64 / off_total,
        off_total / on_total,
        on_median - off_median,
    );
}

criterion_group! {
    name = metrics;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = policy, signing, relay_paired
}
criterion_main!(metrics);
