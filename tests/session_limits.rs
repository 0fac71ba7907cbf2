//! The session bounds of docs/limits.md: a client that stops reading (client write timeout),
//! the idle timeout while a write is stuck, the cap on sessions per runtime, and the runtime's
//! thread limit through the C ABI.

mod common;

use std::io::Write;
use std::ptr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bson::{doc, spec::BinarySubtype, Binary};
use common::*;
use docauth::session::{Runtime, Session, SessionParams};
use docauth::ResultCode;

/// Calls the C ABI as a C caller does.
macro_rules! c_call {
    ($call:expr) => {{
        // SAFETY: the tests pass NULL, or pointers to live values they own, as the called
        // function's contract asks.
        unsafe { $call }
    }};
}

fn session_params(server: &TestServer) -> SessionParams {
    params(
        &format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
        None,
    )
}

/// A session whose first ping went through.
fn working_session(
    runtime: &Runtime,
    p: SessionParams,
    audit: Arc<Collected>,
) -> (Client, Session) {
    let (mut client, session) = start_session_with(runtime, p, engine(&["test"]), audit);
    let (_, reply) = client.command(doc! {"ping": 1, "$db": "admin"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    (client, session)
}

/// Sends 64 inserts of 1 MiB each and never reads: the stand-in echoes every command, so
/// 64 MiB of replies head for a client that takes none of them (far more than the loopback
/// socket buffers hold). Returns when the proxy closes the connection or all were sent.
fn flood_without_reading(client: &Client) -> JoinHandle<()> {
    let mut stream = client.stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let blob = Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![7u8; 1 << 20],
        };
        for id in 0..64 {
            let insert = doc! {"insert": "c", "documents": [{"blob": blob.clone()}], "$db": "test"};
            if stream.write_all(&op_msg(1000 + id, &insert)).is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_client_that_stops_reading_ends_with_client_write_timeout_and_frees_the_database_side() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(2).unwrap();
    let (mut good, good_session) = working_session(
        &runtime,
        session_params(&server),
        Arc::new(Collected::default()),
    );

    let audit = Arc::new(Collected::default());
    let mut p = session_params(&server);
    p.client_write_timeout_ms = 300;
    p.idle_timeout_ms = 0; // only the write timeout may end it
    let (stuck, session) = working_session(&runtime, p, audit.clone());
    let flood = flood_without_reading(&stuck);

    let e = session.wait().unwrap_err();
    assert_eq!(e.code(), ResultCode::ClientWriteTimeout, "{e:?}");
    assert!(e.message().contains("stopped reading"), "{}", e.message());
    assert!(e.message().contains("300 ms"), "{}", e.message());
    let end = audit.wait_for("db.session.end");
    assert_eq!(end["error_code"], "DOCAUTH_RESULT_CLIENT_WRITE_TIMEOUT");
    assert!(end["reason"].as_str().unwrap().contains("stopped reading"));
    flood.join().unwrap();

    // The other session went on; once it ends too, the database has no connection left:
    // the stuck session's upstream connection was closed, not left blocked.
    assert_undisturbed_then_nothing_left_open(&runtime, &server, &mut good, good_session);
}

#[test]
fn the_idle_timeout_ends_a_session_whose_write_to_the_client_is_stuck() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    let audit = Arc::new(Collected::default());
    let mut p = session_params(&server);
    // The write timeout is far away: only the idle check, running while both relay
    // directions are stuck in writes, can end this session.
    p.client_write_timeout_ms = 600_000;
    p.idle_timeout_ms = 500;
    let (stuck, session) = working_session(&runtime, p, audit.clone());
    let flood = flood_without_reading(&stuck);

    let stats = session
        .wait_timeout(Some(Duration::from_secs(120)))
        .expect("the idle timeout did not end a session stuck in a write")
        .unwrap();
    assert_eq!(stats.end_reason, "idle timeout");
    assert_eq!(audit.wait_for("db.session.end")["reason"], "idle timeout");
    flood.join().unwrap();
    assert!(server.seen.all_connections_closed());
}

#[test]
fn the_client_write_timeout_has_a_default_and_cannot_be_turned_off() {
    let p = SessionParams::from_json(
        r#"{"identity": "alice", "database": "my-docdb", "db_user": "u"}"#,
    )
    .unwrap();
    assert_eq!(p.client_write_timeout_ms, 30_000);
    assert_eq!(
        p.client_write_timeout_ms,
        docauth::session::DEFAULT_CLIENT_WRITE_TIMEOUT_MS
    );
    let e = SessionParams::from_json(
        r#"{"identity": "alice", "database": "my-docdb", "db_user": "u", "client_write_timeout_ms": 0}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), ResultCode::InvalidConfig);
    assert!(e.message().contains("client_write_timeout_ms"), "{e:?}");
}

#[test]
fn the_session_past_the_cap_gets_an_error_reply_and_an_audit_event() {
    let server = TestServer::start(ServerOptions::default());
    let runtime = Runtime::new(1).unwrap();
    assert_eq!(runtime.max_sessions(), 10_000);
    assert_eq!(
        runtime.max_sessions(),
        docauth::session::DEFAULT_MAX_SESSIONS
    );
    assert_eq!(
        runtime.set_max_sessions(0).unwrap_err().code(),
        ResultCode::InvalidArgument
    );
    runtime.set_max_sessions(2).unwrap();
    let collected = Arc::new(Collected::default());
    let (_first, first) = working_session(&runtime, session_params(&server), collected.clone());
    let (mut second_client, second) = working_session(&runtime, session_params(&server), collected);
    assert_eq!(runtime.running_sessions(), 2);

    let audit = Arc::new(Collected::default());
    let (mut refused, session) = start_session_with(
        &runtime,
        session_params(&server),
        engine(&["test"]),
        audit.clone(),
    );
    let (id, reply) = refused.command(doc! {"hello": 1, "$db": "admin"});
    assert_eq!(reply.response_to, id);
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 0.0);
    assert_eq!(reply.doc.get_i32("code").unwrap(), 6);
    let errmsg = reply.doc.get_str("errmsg").unwrap();
    assert!(errmsg.contains("already runs 2 sessions"), "{errmsg}");
    assert!(errmsg.contains("cap"), "{errmsg}");
    let e = session.wait().unwrap_err();
    assert_eq!(e.code(), ResultCode::SessionLimit);
    let start = audit.wait_for("db.session.start");
    assert_eq!(start["success"], false);
    assert_eq!(start["error_code"], "DOCAUTH_RESULT_SESSION_LIMIT");
    assert_eq!(
        audit.wait_for("db.session.end")["error_code"],
        "DOCAUTH_RESULT_SESSION_LIMIT"
    );
    assert!(refused.is_closed());
    // No database connection was made for it; the running sessions were not touched.
    assert_eq!(
        server
            .seen
            .open_connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let (_, reply) = second_client.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);

    // A session that ended gives its place back before its `wait` returns.
    first.shutdown();
    first.wait().unwrap();
    assert_eq!(runtime.running_sessions(), 1);
    let (_third_client, third) = working_session(
        &runtime,
        session_params(&server),
        Arc::new(Collected::default()),
    );
    assert_eq!(runtime.running_sessions(), 2);
    third.shutdown();
    second.shutdown();
    third.wait().unwrap();
    second.wait().unwrap();
    assert_eq!(runtime.running_sessions(), 0);
}

#[test]
fn the_c_abi_takes_a_session_cap_and_at_most_1024_threads() {
    use docauth::ffi::*;
    let mut runtime = ptr::null_mut();
    let mut err = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_runtime_new(1025, &mut runtime, &mut err)),
        ResultCode::InvalidArgument
    );
    assert!(runtime.is_null());
    assert_eq!(
        c_call!(docauth_error_code(err)),
        ResultCode::InvalidArgument
    );
    c_call!(docauth_error_free(err));

    assert_eq!(
        c_call!(docauth_runtime_new(1024, &mut runtime, ptr::null_mut())),
        ResultCode::Ok
    );
    assert!(!runtime.is_null());
    let mut err = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_runtime_set_max_sessions(runtime, 0, &mut err)),
        ResultCode::InvalidArgument
    );
    c_call!(docauth_error_free(err));
    assert_eq!(
        c_call!(docauth_runtime_set_max_sessions(
            runtime,
            5,
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    assert_eq!(
        c_call!(docauth_runtime_set_max_sessions(
            ptr::null(),
            5,
            ptr::null_mut()
        )),
        ResultCode::NullParameter
    );
    c_call!(docauth_runtime_free(runtime));
}
