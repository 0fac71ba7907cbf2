//! Relay throughput and latency: small request/reply round trips through a docauth session
//! (framing, analysis, judging by the policy engine, audit off) beside a plain byte relay
//! (`tokio::io::copy_bidirectional`) between the same blocking client and the same
//! in-process OP_MSG server, in the same run. Then the memory of 1,000 idle sessions.
//!
//!     cargo bench --bench relay
//!
//! Latency per round trip = 1 / throughput; the session's added latency is the difference
//! of the two medians criterion prints.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::time::Duration;

use bson::doc;
use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use docauth::session::{Runtime, Session};

fn session_client(runtime: &Runtime, server: &TestServer) -> (Client, Session) {
    let (client, proxy_side) = socket_pair();
    let p = params(
        &format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
        None,
    );
    let session = Session::start(
        runtime,
        tokio_stream(runtime, proxy_side),
        p,
        engine(&["test"]),
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

fn round_trips(c: &mut Criterion) {
    let server = TestServer::start(ServerOptions {
        no_auth_required: true,
        ..Default::default()
    });
    let runtime = Runtime::new(2).unwrap();
    let plain_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut through_session, _session) = session_client(&runtime, &server);
    through_session.stream.set_nodelay(true).unwrap();
    let mut through_plain = plain_relay_client(&plain_rt, &server);
    let request =
        doc! {"find": "people", "filter": {"age": {"$gt": 30}}, "limit": 1, "$db": "test"};

    let mut group = c.benchmark_group("relay_round_trip");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("plain_copy_bidirectional", |b| {
        b.iter(|| {
            let (_, reply) = through_plain.command(request.clone());
            assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
        })
    });
    group.bench_function("docauth_session", |b| {
        b.iter(|| {
            let (_, reply) = through_session.command(request.clone());
            assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
        })
    });
    group.finish();
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
    let warm: Vec<_> = (0..10).map(|_| session_client(&runtime, &server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    let sessions: Vec<_> = (0..N).map(|_| session_client(&runtime, &server)).collect();
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

criterion_group!(benches, round_trips, idle_memory);
criterion_main!(benches);
