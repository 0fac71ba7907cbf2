//! Load: many concurrent clients through one runtime. Its own test binary (one test), so that
//! counting the process's open file descriptors is not disturbed by other tests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use common::*;
use docauth::session::Runtime;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn concurrent_clients_each_get_their_own_replies_and_nothing_leaks() {
    const CLIENTS: usize = 100;
    const ROUND_TRIPS: usize = 200;
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(2).unwrap();
    let uri = format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port());
    // Warm up (lazy statics, the runtime's threads) before counting fds.
    {
        let audit = Arc::new(Collected::default());
        let (mut c, s) = start_session(&runtime, &uri, None, &["test"], audit);
        c.command(doc! {"ping": 1, "$db": "admin"});
        drop(c);
        s.wait().unwrap();
    }
    let fds_before = open_fds();
    let audit = Arc::new(Collected::default());
    let mut handles = Vec::new();
    for n in 0..CLIENTS {
        let (mut client, session) = start_session(&runtime, &uri, None, &["test"], audit.clone());
        handles.push(std::thread::spawn(move || {
            for i in 0..ROUND_TRIPS {
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
        assert_eq!(stats.messages_from_client, ROUND_TRIPS as u64);
        assert_eq!(stats.messages_to_client, ROUND_TRIPS as u64);
        total += stats.messages_from_client;
    }
    assert_eq!(total, (CLIENTS * ROUND_TRIPS) as u64);
    // Every session closed both of its connections.
    for _ in 0..3000 {
        if open_fds() <= fds_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // `<=`: a connection of the warm-up may still have been closing when counted.
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} -> {fds_after}"
    );
    for _ in 0..3000 {
        if audit.of_kind("db.session.end").len() == CLIENTS {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // One event per message, unless the (bounded) queue overflowed: then it was counted.
    assert_eq!(
        audit.of_kind("db.session.query").len() as u64 + runtime.audit_dropped(),
        (CLIENTS * ROUND_TRIPS) as u64
    );
    assert_eq!(audit.of_kind("db.session.end").len(), CLIENTS);
}
