//! Load: 100 concurrent clients × 1,000 round trips through one runtime, every message judged
//! by the policy engine. Its own test binary (one test), so that counting the process's open
//! file descriptors and its resident memory is not disturbed by other tests.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::doc;
use common::*;
use docauth::session::{AuditCallback, Runtime};

const CLIENTS: usize = 100;
const ROUND_TRIPS: usize = 1_000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident memory of the process, in bytes (`/proc/self/statm`, second field).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Counts audit events by kind without keeping them (keeping 100,000 events would hide
/// the library's own memory behaviour).
#[derive(Default)]
struct Counting {
    kinds: Mutex<HashMap<String, u64>>,
}

impl AuditCallback for Counting {
    fn event(&self, json: &str) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let kind = v["event"].as_str().unwrap().to_string();
        *self.kinds.lock().unwrap().entry(kind).or_default() += 1;
    }
}

impl Counting {
    fn count(&self, kind: &str) -> u64 {
        self.kinds.lock().unwrap().get(kind).copied().unwrap_or(0)
    }
}

/// `CLIENTS` clients at once, `round_trips` each; every reply must be the client's own.
fn round(runtime: &Runtime, uri: &str, round_trips: usize, audit: &Arc<Counting>) {
    let engine = engine(&["test"]);
    let mut handles = Vec::new();
    for n in 0..CLIENTS {
        let (client, proxy_side) = socket_pair();
        let session = docauth::session::Session::start(
            runtime,
            tokio_stream(runtime, proxy_side),
            params(uri, None),
            Arc::clone(&engine),
            static_credentials(),
            Some(audit.clone() as Arc<dyn AuditCallback>),
        )
        .unwrap();
        let mut client = Client::new(client);
        handles.push(std::thread::spawn(move || {
            for i in 0..round_trips {
                let marker = format!("client-{n}-message-{i}");
                let (id, reply) =
                    client.command(doc! {"find": "c", "filter": {"m": &marker}, "$db": "test"});
                assert_eq!(reply.response_to, id);
                let echoed = reply.doc.get_document("echo").unwrap();
                assert_eq!(
                    echoed.get_document("filter").unwrap().get_str("m").unwrap(),
                    marker
                );
            }
            drop(client);
            session.wait().unwrap()
        }));
    }
    let mut total = 0;
    for h in handles {
        let stats = h.join().unwrap();
        assert_eq!(stats.messages_from_client, round_trips as u64);
        assert_eq!(stats.messages_to_client, round_trips as u64);
        assert_eq!(stats.denied, 0);
        total += stats.messages_from_client;
    }
    assert_eq!(total, (CLIENTS * round_trips) as u64);
}

fn settle(audit: &Counting, ends: u64, fds_target: Option<usize>) {
    for _ in 0..3000 {
        let fds_ok = fds_target.is_none_or(|t| open_fds() <= t);
        if audit.count("db.session.end") == ends && fds_ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn concurrent_clients_each_get_their_own_replies_and_nothing_leaks() {
    let server = TestServer::start(ServerOptions {
        forget_commands: true,
        ..Default::default()
    });
    let runtime = Runtime::new(2).unwrap();
    let uri = format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port());
    let audit = Arc::new(Counting::default());

    // Warm-up round: lazy statics, the runtime's and the server's threads, the allocator's
    // per-thread arenas, the decision cache — everything a steady state has.
    round(&runtime, &uri, 100, &audit);
    settle(&audit, CLIENTS as u64, None);
    let fds_before = open_fds();
    let rss_before = rss_bytes();

    round(&runtime, &uri, ROUND_TRIPS, &audit);
    settle(&audit, 2 * CLIENTS as u64, Some(fds_before));

    // Every session closed both of its connections. `<=`: a connection of the warm-up may
    // still have been closing when counted.
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} -> {fds_after}"
    );
    // No memory growth beyond noise: 100,000 messages leaking even 100 bytes each would
    // exceed the bound.
    let rss_after = rss_bytes();
    const BOUND: u64 = 8 * 1024 * 1024;
    assert!(
        rss_after <= rss_before + BOUND,
        "resident memory grew from {rss_before} to {rss_after} bytes"
    );
    eprintln!(
        "rss before {} KiB, after {} KiB; fds {fds_before} -> {fds_after}",
        rss_before / 1024,
        rss_after / 1024
    );

    // One event per message, unless the (bounded) queue overflowed: then it was counted.
    assert_eq!(audit.count("db.session.end"), 2 * CLIENTS as u64);
    assert_eq!(
        audit.count("db.session.query") + runtime.audit_dropped(),
        (CLIENTS * (ROUND_TRIPS + 100)) as u64
    );
    assert_eq!(audit.count("db.session.query.failed"), 0);
}
