//! Policy decision speed (issue 3 targets, one thread unless named):
//! - `uncached_5_of_200`: a user holding 5 of 200 stored roles, cache bypassed (≤ 20 µs);
//! - `cached_decide` / `cached_is_allowed`: a per-message check answered by the cache (≤ 100 ns);
//! - `uncached_threads/{1,2}`: time per decision with 1 and 2 threads deciding at once
//!   (2 threads should give ≥ 1.8× the throughput of 1).
//!
//! `*_cpu_time` variants measure the thread's CPU time instead of wall-clock time.
//!
//! Run: `cargo bench --bench policy`

#[path = "shared/mod.rs"]
mod shared;

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shared::setup;

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
