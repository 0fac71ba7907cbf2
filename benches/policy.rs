//! Policy decision speed (issue 3 targets, one thread unless named):
//! - `uncached_5_of_200`: a user holding 5 of 200 stored roles, cache bypassed (≤ 20 µs);
//! - `cached_decide` / `cached_is_allowed`: a per-message check answered by the cache (≤ 100 ns);
//! - `uncached_threads/{1,2}`: time per decision with 1 and 2 threads deciding at once
//!   (2 threads should give ≥ 1.8× the throughput of 1).
//!
//! `*_cpu_time` variants measure the thread's CPU time instead of wall-clock time.
//!
//! Run: `cargo bench --bench policy`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use docauth::policy::{Identity, PolicyEngine, Request};

fn config() -> String {
    let mut roles = String::from("roles:\n");
    for i in 0..200 {
        let labels = match i % 4 {
            0 => format!("{{env: dev-{i}, team: 'team-*'}}"),
            1 => format!("{{env: '^(dev|staging)-{i}$'}}"),
            2 => format!("{{env: [prod-{i}, qa-{i}]}}"),
            _ => "{'*': '*'}".to_string(),
        };
        roles.push_str(&format!(
            "  - kind: role\n    version: v7\n    metadata: {{name: role-{i}}}\n    spec:\n      allow:\n        db_labels: {labels}\n        db_users: ['{{{{internal.db_users}}}}', 'svc-{i}']\n        db_names: ['{{{{internal.db_names}}}}', 'db-{i}']\n      deny:\n        db_names: ['forbidden-{i}']\n"
        ));
    }
    roles.push_str(
        "databases:\n  - name: my-docdb\n    labels: {env: dev-8, team: team-payments}\n    aws: {account_id: '123456789012', region: us-east-1}\n",
    );
    roles
}

fn setup() -> (PolicyEngine, Request) {
    let engine = PolicyEngine::from_config_str("bench.yaml", &config(), None).unwrap();
    let mut traits = std::collections::BTreeMap::new();
    traits.insert(
        "db_users".to_string(),
        vec!["teleport-docdb-user".to_string()],
    );
    traits.insert(
        "db_names".to_string(),
        vec!["test".to_string(), "reports".to_string()],
    );
    let identity = Arc::new(Identity::new(
        "alice",
        ["role-1", "role-2", "role-5", "role-7", "role-8"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        traits,
    ));
    let request = Request::new(identity, "my-docdb", "teleport-docdb-user", "test")
        .with_command("find")
        .with_namespaces(vec!["test.orders".into()]);
    let d = engine.decide_uncached(&request);
    assert!(d.allowed, "{}", d.reason);
    assert_eq!(
        d.matched_roles,
        vec!["role-7".to_string(), "role-8".to_string()]
    );
    (engine, request)
}

/// CPU time consumed by the calling thread: unaffected by other processes competing for the
/// cores (the shared build machine), unlike wall-clock time.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn benches(c: &mut Criterion) {
    let (engine, request) = setup();
    c.bench_function("policy/uncached_5_of_200", |b| {
        b.iter(|| black_box(engine.decide_uncached(black_box(&request))))
    });
    c.bench_function("policy/uncached_5_of_200_cpu_time", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu_time();
            for _ in 0..iters {
                black_box(engine.decide_uncached(black_box(&request)));
            }
            thread_cpu_time() - start
        })
    });
    engine.decide(&request);
    c.bench_function("policy/cached_decide_cpu_time", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu_time();
            for _ in 0..iters {
                black_box(engine.decide(black_box(&request)));
            }
            thread_cpu_time() - start
        })
    });
    c.bench_function("policy/cached_decide", |b| {
        b.iter(|| black_box(engine.decide(black_box(&request))))
    });
    c.bench_function("policy/cached_is_allowed", |b| {
        b.iter(|| black_box(engine.is_allowed(black_box(&request))))
    });
    let mut group = c.benchmark_group("policy/uncached_threads");
    for threads in [1usize, 2] {
        group.bench_function(format!("{threads}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..iters {
                                black_box(engine.decide_uncached(black_box(&request)));
                            }
                        });
                    }
                });
                // Time per decision across all threads: lower is better; 1-thread time
                // divided by 2-thread time is the speed-up.
                start.elapsed() / threads as u32
            })
        });
    }
    // The same, in CPU time per decision of each thread (the mean over threads): when two
    // threads contend (locks, shared cache lines), this grows; when it stays flat, two
    // threads on two free cores give 2x the throughput of one.
    for threads in [1usize, 2] {
        group.bench_function(format!("{threads}_cpu_time"), |b| {
            b.iter_custom(|iters| {
                let total: Duration = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|_| {
                            s.spawn(|| {
                                let start = thread_cpu_time();
                                for _ in 0..iters {
                                    black_box(engine.decide_uncached(black_box(&request)));
                                }
                                thread_cpu_time() - start
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).sum()
                });
                total / threads as u32
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = policy;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(policy);
