//! Relay throughput and latency: small request/reply round trips through a docauth session
//! (framing, analysis, judging by the policy engine, audit off) beside a plain byte relay
//! (`tokio::io::copy_bidirectional`) between the same blocking client and the same
//! in-process OP_MSG server, in the same run. First the memory of 1,000 idle sessions.
//!
//!     cargo bench --bench relay
//!
//! Two measurements of the same pair:
//! - `relay_round_trip/*` (criterion): each relay measured for 8 s, one after the other;
//!   latency per round trip = 1 / throughput.
//! - `relay_paired` (printed): the two relays alternate in blocks of 500 round trips (order
//!   swapped every block), each round trip timed. Machine-wide slow phases (another
//!   process, the VM's neighbours) then hit both rows alike instead of whichever criterion
//!   happened to be measuring, so this is the figure the acceptance targets are read from:
//!   throughput ratio = plain total time / session total time, added latency = difference
//!   of the medians.
//! - `relay_paired_1000_sessions` (printed): the same alternation with 1,000 open sessions
//!   and 1,000 plain relays, each round trip on the next client in turn: the relay's cost
//!   when its runtime carries many connections.
//! - `relay_paired_16mb` (printed): a `find` answered with a 16 MB reply, alternating
//!   between the two relays: MB/s through each.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/round_trip.rs"]
mod round_trip;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use docauth::policy::PolicyEngine;
use docauth::session::{Runtime, Session};
use round_trip::{find_request, median_us, round_trip};

/// A session judged by `engine` (shared by every session, as in a proxy).
fn session_client(
    runtime: &Runtime,
    server: &TestServer,
    engine: &Arc<PolicyEngine>,
) -> (Client, Session) {
    let (client, proxy_side) = socket_pair();
    let p = params(
        &format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
        None,
    );
    let session = Session::start(
        runtime,
        tokio_stream(runtime, proxy_side),
        p,
        Arc::clone(engine),
        static_credentials(),
        None,
    )
    .unwrap();
    let mut client = Client::new(client);
    let (_, reply) = client.command(doc! {"ping": 1, "$db": "admin"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    (client, session)
}

/// A plain byte relay on the same kind of runtime: accept, connect upstream, copy both ways.
fn plain_relay_client(rt: &tokio::runtime::Runtime, server: &TestServer) -> Client {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = server.addr;
    listener.set_nonblocking(true).unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let (mut c, _) = listener.accept().await.unwrap();
        c.set_nodelay(true).unwrap();
        let mut u = tokio::net::TcpStream::connect(upstream).await.unwrap();
        u.set_nodelay(true).unwrap();
        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
    });
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    Client::new(s)
}

/// `n` clients through docauth sessions and `n` through plain relays, to the same server;
/// the runtimes, the server and the sessions live as long as the set.
struct Relays {
    plain: Vec<Client>,
    session: Vec<Client>,
    _sessions: Vec<Session>,
    _runtime: Runtime,
    _plain_rt: tokio::runtime::Runtime,
    _server: TestServer,
}

impl Relays {
    fn start(n: usize) -> Relays {
        let server = TestServer::start(ServerOptions {
            no_auth_required: true,
            forget_commands: true,
            ..Default::default()
        });
        let runtime = Runtime::new(2).unwrap();
        let plain_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = engine(&["test"]);
        let (mut session, mut sessions) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let (client, handle) = session_client(&runtime, &server, &engine);
            client.stream.set_nodelay(true).unwrap();
            session.push(client);
            sessions.push(handle);
        }
        Relays {
            plain: (0..n)
                .map(|_| plain_relay_client(&plain_rt, &server))
                .collect(),
            session,
            _sessions: sessions,
            _runtime: runtime,
            _plain_rt: plain_rt,
            _server: server,
        }
    }
}

fn round_trips(c: &mut Criterion) {
    let mut pair = Relays::start(1);
    let request = find_request();
    let mut group = c.benchmark_group("relay_round_trip");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("plain_copy_bidirectional", |b| {
        b.iter(|| round_trip(&mut pair.plain[0], &request))
    });
    group.bench_function("docauth_session", |b| {
        b.iter(|| round_trip(&mut pair.session[0], &request))
    });
    group.finish();
}

/// Round trips alternating between the plain relays and the sessions in blocks of
/// `per_block` (order swapped every block), each block cycling through the clients; prints
/// both rates, their ratio and the added median latency (and MB/s when the reply size is
/// given).
fn paired(
    label: &str,
    relays: &mut Relays,
    request: &bson::Document,
    blocks: usize,
    per_block: usize,
    reply_bytes: Option<usize>,
) {
    let clients = relays.plain.len();
    for i in 0..clients.max(2 * per_block.min(1000)) {
        round_trip(&mut relays.plain[i % clients], request);
        round_trip(&mut relays.session[i % clients], request);
    }
    let mut plain_samples = Vec::with_capacity(blocks * per_block);
    let mut session_samples = Vec::with_capacity(blocks * per_block);
    let mut next = 0;
    for block in 0..blocks {
        for turn in 0..2 {
            let (pool, samples) = if (block + turn) % 2 == 0 {
                (&mut relays.plain, &mut plain_samples)
            } else {
                (&mut relays.session, &mut session_samples)
            };
            for i in 0..per_block {
                samples.push(round_trip(&mut pool[(next + i) % clients], request));
            }
        }
        next += per_block;
    }
    let total = |s: &[Duration]| s.iter().sum::<Duration>().as_secs_f64();
    let (plain_total, session_total) = (total(&plain_samples), total(&session_samples));
    let n = plain_samples.len();
    let plain_median = median_us(&mut plain_samples);
    let session_median = median_us(&mut session_samples);
    let rate = |t: f64| match reply_bytes {
        Some(bytes) => format!(
            "{:.0}/s = {:.0} MB/s",
            n as f64 / t,
            (n * bytes) as f64 / t / 1e6
        ),
        None => format!("{:.0}/s", n as f64 / t),
    };
    println!(
        "{label}: {n} round trips each over {clients} client(s) per relay, alternating blocks of {per_block}: plain {} (median {plain_median:.1} us), session {} (median {session_median:.1} us); session/plain throughput {:.3}x, added median latency {:+.1} us",
        rate(plain_total),
        rate(session_total),
        plain_total / session_total,
        session_median - plain_median,
    );
}

fn paired_round_trips(_c: &mut Criterion) {
    paired(
        "relay_paired",
        &mut Relays::start(1),
        &find_request(),
        60,
        500,
        None,
    );
}

fn paired_1000_sessions(_c: &mut Criterion) {
    paired(
        "relay_paired_1000_sessions",
        &mut Relays::start(1000),
        &find_request(),
        60,
        1000,
        None,
    );
}

fn paired_16mb_replies(_c: &mut Criterion) {
    let request = doc! {"find": BIG_REPLY_COLLECTION, "$db": "test"};
    paired(
        "relay_paired_16mb",
        &mut Relays::start(1),
        &request,
        20,
        10,
        Some(BIG_REPLY_BYTES),
    );
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn idle_memory(_c: &mut Criterion) {
    const N: usize = 1000;
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(2).unwrap();
    // Warm up allocator and runtime with a few sessions first.
    let engine = engine(&["test"]);
    let warm: Vec<_> = (0..10)
        .map(|_| session_client(&runtime, &server, &engine))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    let sessions: Vec<_> = (0..N)
        .map(|_| session_client(&runtime, &server, &engine))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib();
    // Counts the whole process: the session (both sockets' buffers in the library), the
    // test server's per-connection state and the client sockets' user-space objects.
    println!(
        "idle_memory: {N} idle authenticated sessions: RSS +{} KiB = {:.1} KiB per session (upper bound: includes the in-process test server's connection)",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / N as f64
    );
    drop(sessions);
    drop(warm);
}

// Idle memory first: later groups free memory the allocator would hand back to the idle
// sessions, hiding their growth.
criterion_group!(
    benches,
    idle_memory,
    round_trips,
    paired_round_trips,
    paired_1000_sessions,
    paired_16mb_replies
);
criterion_main!(benches);
