//! A panic inside a session task (a bug) ends that session alone: its connections close, its
//! `wait` returns PANIC (what `docauth_session_wait` returns), its `db.session.end` audit event
//! carries the error, and the runtime's other sessions, running or new, go on.
//!
//! The panic comes from a judge that panics on one database, given through the Rust-only
//! `Session::start_with_judge`: nothing reachable from the C ABI can make a session panic on
//! purpose.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use common::*;
use docauth::session::{CommandAccess, Judge, Runtime, Session, Verdict};
use docauth::ResultCode;

/// Allows everything, except that judging a message addressed to database `boom` panics.
struct PanickingJudge;

impl Judge for PanickingJudge {
    fn admit(&self) -> Verdict {
        Verdict::new(true, "test judge: every session is admitted")
    }

    fn judge(&self, access: &CommandAccess) -> Verdict {
        if access.database == "boom" {
            panic!("test judge: a message for database boom");
        }
        Verdict::new(true, "test judge: every message is allowed")
    }
}

fn start(runtime: &Runtime, uri: &str, audit: Arc<Collected>) -> (Client, Session) {
    let (client, proxy_side) = socket_pair();
    let session = Session::start_with_judge(
        runtime,
        tokio_stream(runtime, proxy_side),
        params(uri, None),
        Arc::new(PanickingJudge),
        static_credentials(),
        Some(audit),
    )
    .unwrap();
    (Client::new(client), session)
}

fn find_ok(client: &mut Client, db: &str) {
    let (id, reply) = client.command(doc! {"find": "people", "filter": {}, "$db": db});
    assert_eq!(reply.response_to, id);
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);
}

#[test]
fn a_panicking_session_ends_alone_with_panic_and_an_end_event() {
    let server = TestServer::start(ServerOptions::default());
    let uri = format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port());
    let runtime = Runtime::new(2).unwrap();
    let (audit_a, audit_b) = (
        Arc::new(Collected::default()),
        Arc::new(Collected::default()),
    );
    let (mut a, session_a) = start(&runtime, &uri, audit_a.clone());
    let (mut b, session_b) = start(&runtime, &uri, audit_b.clone());
    find_ok(&mut a, "test");
    find_ok(&mut b, "test");

    // The message that makes the judge panic: no reply, the connection closes.
    a.send_raw(&op_msg(
        7,
        &doc! {"find": "people", "filter": {}, "$db": "boom"},
    ));
    assert!(a.read_frame().is_none(), "the panicking session replied");
    let outcome = session_a
        .wait_timeout(Some(Duration::from_secs(10)))
        .expect("the panicking session ended");
    let error = outcome.expect_err("a panicking session ends with an error");
    assert_eq!(error.code(), ResultCode::Panic);
    assert!(
        error
            .message()
            .contains("test judge: a message for database boom"),
        "{}",
        error.message()
    );
    let end = audit_a.wait_for("db.session.end");
    assert_eq!(end["error_code"], "DOCAUTH_RESULT_PANIC", "{end}");
    assert!(end["error"].as_str().unwrap().contains("panicked"), "{end}");
    assert_eq!(end["messages_from_client"], 2, "{end}");
    assert_eq!(audit_a.of_kind("db.session.end").len(), 1);
    // The message that panicked never reached the database.
    assert!(!server
        .seen
        .commands
        .lock()
        .unwrap()
        .iter()
        .any(|d| d.get_str("$db") == Ok("boom")));

    // The other session goes on, and the runtime takes new sessions.
    find_ok(&mut b, "test");
    assert!(!session_b.is_finished());
    let audit_c = Arc::new(Collected::default());
    let (mut c, session_c) = start(&runtime, &uri, audit_c.clone());
    find_ok(&mut c, "test");
    for (client, session, sent) in [(b, session_b, 2), (c, session_c, 1)] {
        drop(client);
        let stats = session
            .wait_timeout(Some(Duration::from_secs(10)))
            .expect("the session ended")
            .expect("a session whose client closed ends normally");
        assert_eq!(stats.messages_from_client, sent);
    }
    assert!(audit_b
        .wait_for("db.session.end")
        .get("error_code")
        .is_none());
}

#[test]
fn start_with_judge_needs_a_database_uri() {
    let runtime = Runtime::new(1).unwrap();
    let (_client, proxy_side) = socket_pair();
    let mut p = params("mongodb://127.0.0.1:1/?tls=false", None);
    p.database_uri = None;
    let e = Session::start_with_judge(
        &runtime,
        tokio_stream(&runtime, proxy_side),
        p,
        Arc::new(PanickingJudge),
        static_credentials(),
        None,
    )
    .err()
    .expect("no URI, no session");
    assert_eq!(e.code(), ResultCode::InvalidConfig);
    assert!(e.message().contains("database_uri"), "{}", e.message());
}

/// Not about panics: the session parameters' defaults that bound a session's life.
#[test]
fn the_idle_timeout_has_a_default() {
    let p = docauth::session::SessionParams::from_json(
        r#"{"identity": "alice", "database": "my-docdb", "db_user": "u"}"#,
    )
    .unwrap();
    assert_eq!(p.idle_timeout_ms, 30 * 60 * 1000);
    assert_eq!(p.idle_timeout_ms, docauth::session::DEFAULT_IDLE_TIMEOUT_MS);
    let p = docauth::session::SessionParams::from_json(
        r#"{"identity": "alice", "database": "my-docdb", "db_user": "u", "idle_timeout_ms": 0}"#,
    )
    .unwrap();
    assert_eq!(p.idle_timeout_ms, 0, "0 still turns the idle timeout off");
}
