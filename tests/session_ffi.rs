//! The session's C ABI called directly: runtime, session start from a file descriptor, audit
//! callback with user_data freed exactly once, a blocking call from inside the callback
//! refused, shutdown from another thread, the fd owned (closed) even when start fails.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::fd::IntoRawFd;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use bson::doc;
use common::*;
use docauth::ffi::*;

/// Calls the C ABI as a C caller does.
macro_rules! c_call {
    ($call:expr) => {{
        // SAFETY: the tests pass NULL, or pointers to live values they own, as the called
        // function's contract asks.
        unsafe { $call }
    }};
}
use docauth::ResultCode;

struct HostState {
    events: Mutex<Vec<String>>,
    session: AtomicPtr<docauth_session>,
    wait_from_callback: AtomicU32,
    frees: &'static AtomicUsize,
}

unsafe extern "C" fn on_event(user_data: *mut c_void, json: *const c_char, len: usize) {
    let state = &*(user_data as *const HostState);
    let text = CStr::from_ptr(json).to_str().unwrap();
    assert_eq!(text.len(), len);
    state.events.lock().unwrap().push(text.to_string());
    let session = state.session.load(Ordering::SeqCst);
    if !session.is_null() && state.wait_from_callback.load(Ordering::SeqCst) == 0 {
        let mut err: *mut docauth_error = ptr::null_mut();
        let r = docauth_session_wait(session, ptr::null_mut(), &mut err);
        state.wait_from_callback.store(r as u32, Ordering::SeqCst);
        docauth_error_free(err);
    }
}

unsafe extern "C" fn free_state(user_data: *mut c_void) {
    let state = Box::from_raw(user_data as *mut HostState);
    state.frees.fetch_add(1, Ordering::SeqCst);
}

fn engine_handle(allow: &[&str]) -> *mut docauth_engine {
    let config = CString::new(engine_config(allow, "")).unwrap();
    let mut engine = ptr::null_mut();
    let r = c_call!(docauth_engine_new(
        config.as_ptr(),
        &mut engine,
        ptr::null_mut()
    ));
    assert_eq!(r, ResultCode::Ok);
    engine
}

/// A provider whose service credentials are moto's IAM user: it assumes the db user's role
/// through moto's STS (signature checking on).
fn provider_handle(moto: &Moto, setup: &Setup) -> *mut docauth_credentials_provider {
    let config = CString::new(
        serde_json::json!({
            "source": {"type": "static", "access_key_id": setup.access_key_id,
                       "secret_access_key": setup.secret_access_key},
            "region": "us-east-1", "sts_endpoint": moto.url,
        })
        .to_string(),
    )
    .unwrap();
    let mut provider = ptr::null_mut();
    let r = c_call!(docauth_credentials_provider_new(
        config.as_ptr(),
        &mut provider,
        ptr::null_mut()
    ));
    assert_eq!(r, ResultCode::Ok);
    provider
}

/// A provider that is never asked (its STS endpoint is a closed port).
fn offline_provider() -> *mut docauth_credentials_provider {
    let config = CString::new(
        serde_json::json!({
            "source": {"type": "static", "access_key_id": TEST_AKID, "secret_access_key": TEST_SECRET},
            "region": "us-east-1", "sts_endpoint": format!("http://127.0.0.1:{}", free_port()),
        })
        .to_string(),
    )
    .unwrap();
    let mut provider = ptr::null_mut();
    let r = c_call!(docauth_credentials_provider_new(
        config.as_ptr(),
        &mut provider,
        ptr::null_mut()
    ));
    assert_eq!(r, ResultCode::Ok);
    provider
}

fn any_key_server() -> TestServer {
    TestServer::start(ServerOptions {
        any_access_key: true,
        ..Default::default()
    })
}

#[test]
fn a_session_through_the_c_abi() {
    static FREES: AtomicUsize = AtomicUsize::new(0);
    let (moto, setup) = Moto::start(0);
    let server = any_key_server();
    let mut runtime = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_runtime_new(2, &mut runtime, ptr::null_mut())),
        ResultCode::Ok
    );
    let engine = engine_handle(&["test"]);
    let provider = provider_handle(&moto, &setup);
    let (client, proxy_side) = socket_pair();
    let params = CString::new(
        serde_json::json!({
            "identity": {"user": "alice", "roles": ["docdb-access"]},
            "database": TEST_DATABASE,
            "database_uri": format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
            "db_user": "teleport-docdb-user",
            "db_name": "test",
        })
        .to_string(),
    )
    .unwrap();
    let state = Box::into_raw(Box::new(HostState {
        events: Mutex::new(Vec::new()),
        session: AtomicPtr::new(ptr::null_mut()),
        wait_from_callback: AtomicU32::new(0),
        frees: &FREES,
    }));
    let mut session = ptr::null_mut();
    let mut err: *mut docauth_error = ptr::null_mut();
    let r = c_call!(docauth_session_start(
        runtime,
        proxy_side.into_raw_fd(),
        params.as_ptr(),
        engine,
        provider,
        Some(on_event),
        state.cast(),
        Some(free_state),
        &mut session,
        &mut err,
    ));
    assert_eq!(r, ResultCode::Ok);
    // The session keeps its own references to the engine and the provider.
    c_call!(docauth_engine_free(engine));
    c_call!(docauth_credentials_provider_free(provider));
    // SAFETY: `state` lives until free_state runs, which cannot happen while the session runs.
    unsafe { (*state).session.store(session, Ordering::SeqCst) };

    let mut client = Client::new(client);
    let (id, reply) = client.command(doc! {"find": "c", "$db": "test"});
    assert_eq!(reply.response_to, id);
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0, "{:?}", reply.doc);
    // The session authenticated with the role's temporary credentials from moto's STS.
    let finals = server.seen.client_finals.lock().unwrap().clone();
    assert_eq!(finals.len(), 1);
    assert!(finals[0]
        .get_str("a")
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256 Credential=ASIA"));
    assert!(finals[0].get_str("t").is_ok(), "a session token is sent");
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);
    let (_, reply) = client.command(doc! {"find": "c", "$db": "admin"});
    assert_eq!(reply.doc.get_i32("code").unwrap(), 13);
    assert!(!c_call!(docauth_session_is_finished(session)));

    // Shutdown from another thread; wait from this one.
    let s = session as usize;
    std::thread::spawn(move || c_call!(docauth_session_shutdown(s as *const docauth_session)))
        .join()
        .unwrap();
    let mut stats = docauth_session_stats::default();
    assert_eq!(
        c_call!(docauth_session_wait(session, &mut stats, ptr::null_mut())),
        ResultCode::Ok
    );
    assert_eq!(stats.messages_from_client, 2);
    assert_eq!(stats.messages_denied, 1);
    assert!(c_call!(docauth_session_is_finished(session)));
    assert_eq!(c_call!(docauth_session_audit_dropped(session)), 0);
    assert!(client.is_closed());
    // SAFETY: the state lives while the session handle does (it holds the audit sink).
    let state_ref = unsafe { &*state };
    for _ in 0..1000 {
        if state_ref
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("db.session.end"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let kinds: Vec<String> = state_ref
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "db.session.start",
            "db.session.query",
            "db.session.query.failed",
            "db.session.end"
        ]
    );
    assert_eq!(
        state_ref.wait_from_callback.load(Ordering::SeqCst),
        ResultCode::CalledFromAuditCallback as u32,
        "docauth_session_wait from inside the callback must refuse, not deadlock"
    );
    c_call!(docauth_session_free(session));
    // Freeing the runtime delivers the queued events and stops the dispatcher.
    c_call!(docauth_runtime_free(runtime));
    assert_eq!(
        FREES.load(Ordering::SeqCst),
        1,
        "user_data_free is called exactly once"
    );
}

#[test]
fn the_callback_cannot_block_on_its_own_dispatcher() {
    static FREES: AtomicUsize = AtomicUsize::new(0);
    let (moto, setup) = Moto::start(0);
    let server = any_key_server();
    let mut runtime = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_runtime_new(1, &mut runtime, ptr::null_mut())),
        ResultCode::Ok
    );
    let engine = engine_handle(&["*"]);
    let provider = provider_handle(&moto, &setup);
    let (client, proxy_side) = socket_pair();
    // The identity by name, from the engine configuration's identities.
    let params = CString::new(
        serde_json::json!({
            "identity": "alice",
            "database": TEST_DATABASE,
            "database_uri": format!("mongodb://127.0.0.1:{}/?tls=false", server.addr.port()),
            "db_user": setup.db_user_role_arn,
        })
        .to_string(),
    )
    .unwrap();
    let events = Box::leak(Box::new(Mutex::new(Vec::<String>::new())));
    let state = Box::into_raw(Box::new(HostState {
        events: Mutex::new(Vec::new()),
        session: AtomicPtr::new(ptr::null_mut()),
        wait_from_callback: AtomicU32::new(0),
        frees: &FREES,
    }));
    let mut session = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_session_start(
            runtime,
            proxy_side.into_raw_fd(),
            params.as_ptr(),
            engine,
            provider,
            Some(on_event),
            state.cast(),
            Some(free_state),
            &mut session,
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    // SAFETY: as above.
    unsafe { (*state).session.store(session, Ordering::SeqCst) };
    let mut client = Client::new(client);
    let (_, reply) = client.command(doc! {"ping": 1, "$db": "admin"});
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    drop(client);
    assert_eq!(
        c_call!(docauth_session_wait(
            session,
            ptr::null_mut(),
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    c_call!(docauth_session_free(session));
    // The dispatcher has delivered the start event by now (or delivers it at free).
    c_call!(docauth_runtime_free(runtime));
    assert_eq!(FREES.load(Ordering::SeqCst), 1);
    let _ = events;
    c_call!(docauth_engine_free(engine));
    c_call!(docauth_credentials_provider_free(provider));
}

#[test]
fn a_failed_start_still_owns_the_fd_and_frees_user_data_once() {
    static FREES: AtomicUsize = AtomicUsize::new(0);
    let mut runtime = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_runtime_new(1, &mut runtime, ptr::null_mut())),
        ResultCode::Ok
    );
    let engine = engine_handle(&["test"]);
    let provider = offline_provider();
    for (params, expected, named) in [
        ("{not json", ResultCode::InvalidConfig, ""),
        (
            r#"{"identity": {"user": "a"}, "database": "my-docdb", "database_uri": "mongodb://h", "db_user": "u", "typo": 1}"#,
            ResultCode::InvalidConfig,
            "typo",
        ),
        (
            r#"{"identity": {"user": "a"}, "database": "my-docdb", "database_uri": "mongodb://u:p@h", "db_user": "u"}"#,
            ResultCode::DatabaseUriInvalid,
            "credentials",
        ),
        (
            r#"{"identity": {}, "database": "my-docdb", "database_uri": "mongodb://h", "db_user": "u"}"#,
            ResultCode::InvalidConfig,
            "user",
        ),
        (
            r#"{"identity": {"user": "a"}, "database": "elsewhere", "db_user": "u"}"#,
            ResultCode::InvalidConfig,
            "\"elsewhere\"",
        ),
        (
            r#"{"identity": "bob", "database": "my-docdb", "database_uri": "mongodb://h", "db_user": "u"}"#,
            ResultCode::InvalidConfig,
            "\"bob\"",
        ),
        (
            // The engine's database has no uri and none is given.
            r#"{"identity": {"user": "a"}, "database": "my-docdb", "db_user": "u"}"#,
            ResultCode::InvalidConfig,
            "database_uri",
        ),
        (
            r#"{"identity": {"user": "a"}, "database": "my-docdb", "database_uri": "mongodb://h", "db_user": "u", "allow_db_names": ["*"]}"#,
            ResultCode::InvalidConfig,
            "allow_db_names",
        ),
        (
            // TLS without a CA bundle: refused by the start, before any connection.
            r#"{"identity": {"user": "a"}, "database": "my-docdb", "database_uri": "mongodb://h/?tls=true", "db_user": "u"}"#,
            ResultCode::CaBundleInvalid,
            "set ca_file",
        ),
        (
            // The CA bundle is read during the start: a missing file is the start's error.
            r#"{"identity": {"user": "a"}, "database": "my-docdb", "database_uri": "mongodb://h/?tls=true", "ca_file": "/nonexistent/global-bundle.pem", "db_user": "u"}"#,
            ResultCode::CaBundleInvalid,
            "/nonexistent/global-bundle.pem",
        ),
    ] {
        let (mut client, proxy_side) = socket_pair();
        let before = FREES.load(Ordering::SeqCst);
        let state = Box::into_raw(Box::new(HostState {
            events: Mutex::new(Vec::new()),
            session: AtomicPtr::new(ptr::null_mut()),
            wait_from_callback: AtomicU32::new(0),
            frees: &FREES,
        }));
        let params = CString::new(params).unwrap();
        let mut session = ptr::null_mut();
        let mut err: *mut docauth_error = ptr::null_mut();
        let r = c_call!(docauth_session_start(
            runtime,
            proxy_side.into_raw_fd(),
            params.as_ptr(),
            engine,
            provider,
            Some(on_event),
            state.cast(),
            Some(free_state),
            &mut session,
            &mut err,
        ));
        assert_eq!(r, expected, "{params:?}");
        assert!(session.is_null(), "out is untouched on failure");
        assert_eq!(c_call!(docauth_error_code(err)), expected);
        // SAFETY: err was set by the failing call.
        let msg = unsafe { CStr::from_ptr(docauth_error_message(err)) }
            .to_str()
            .unwrap()
            .to_string();
        assert!(msg.contains(named), "{params:?}: {msg}");
        c_call!(docauth_error_free(err));
        assert_eq!(FREES.load(Ordering::SeqCst), before + 1);
        // The library closed its end of the connection.
        use std::io::Read;
        let mut b = [0u8; 1];
        assert_eq!(client.read(&mut b).unwrap(), 0);
    }
    // NULL arguments: named, fd still closed.
    let params = CString::new(
        r#"{"identity": {"user": "a"}, "database": "my-docdb", "database_uri": "mongodb://h", "db_user": "u"}"#,
    )
    .unwrap();
    for (p, e, c, named) in [
        (ptr::null(), engine, provider, "params_json"),
        (params.as_ptr(), ptr::null_mut(), provider, "engine"),
        (params.as_ptr(), engine, ptr::null_mut(), "credentials"),
    ] {
        let (mut client, proxy_side) = socket_pair();
        let mut err: *mut docauth_error = ptr::null_mut();
        let mut session = ptr::null_mut();
        let r = c_call!(docauth_session_start(
            runtime,
            proxy_side.into_raw_fd(),
            p,
            e,
            c,
            None,
            ptr::null_mut(),
            None,
            &mut session,
            &mut err,
        ));
        assert_eq!(r, ResultCode::NullParameter);
        assert!(session.is_null());
        // SAFETY: err was set by the failing call.
        let msg = unsafe { CStr::from_ptr(docauth_error_message(err)) }
            .to_str()
            .unwrap()
            .to_string();
        assert!(msg.contains(named), "{msg}");
        c_call!(docauth_error_free(err));
        use std::io::Read;
        let mut b = [0u8; 1];
        assert_eq!(client.read(&mut b).unwrap(), 0);
    }
    c_call!(docauth_engine_free(engine));
    c_call!(docauth_credentials_provider_free(provider));
    c_call!(docauth_runtime_free(runtime));
    c_call!(docauth_runtime_free(ptr::null_mut()));
    c_call!(docauth_session_free(ptr::null_mut()));
    c_call!(docauth_session_shutdown(ptr::null()));
}
