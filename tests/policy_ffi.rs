//! The policy C ABI called directly from Rust: allow, deny, reload, bad config, NULLs,
//! reload concurrent with decide through the same handle.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

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

/// The engine configuration shared with the Python and Go binding tests.
const CONFIG: &str = include_str!("fixtures/engine.yaml");

fn cstr(p: *const c_char) -> String {
    // SAFETY: the library returns NUL-terminated strings valid while the owner lives.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

fn new_engine(config: &str) -> Result<*mut docauth_engine, (ResultCode, String)> {
    let c = CString::new(config).unwrap();
    let mut engine = ptr::null_mut();
    let mut err = ptr::null_mut();
    let r = c_call!(docauth_engine_new(c.as_ptr(), &mut engine, &mut err));
    if r == ResultCode::Ok {
        assert!(err.is_null());
        Ok(engine)
    } else {
        assert!(engine.is_null());
        let msg = cstr(c_call!(docauth_error_message(err)));
        assert_eq!(c_call!(docauth_error_code(err)), r);
        c_call!(docauth_error_free(err));
        Err((r, msg))
    }
}

fn decide(engine: *const docauth_engine, db_name: &str) -> (bool, String, Vec<String>) {
    let req = CString::new(format!(
        r#"{{"identity": "alice", "database": "my-docdb", "db_user": "u", "db_name": "{db_name}"}}"#
    ))
    .unwrap();
    let mut d = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_engine_decide(
            engine,
            req.as_ptr(),
            &mut d,
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    let allowed = c_call!(docauth_decision_allowed(d));
    let reason = cstr(c_call!(docauth_decision_reason(d)));
    let roles = (0..c_call!(docauth_decision_matched_roles_count(d)))
        .map(|i| cstr(c_call!(docauth_decision_matched_role(d, i))))
        .collect();
    let json: serde_json::Value =
        serde_json::from_str(&cstr(c_call!(docauth_decision_json(d)))).unwrap();
    assert_eq!(json["allowed"], allowed);
    c_call!(docauth_decision_free(d));
    (allowed, reason, roles)
}

#[test]
fn allow_deny_reload_free() {
    let engine = new_engine(CONFIG).unwrap();
    let (allowed, reason, roles) = decide(engine, "test");
    assert!(allowed, "{reason}");
    assert_eq!(roles, ["access"]);
    let (allowed, reason, roles) = decide(engine, "admin");
    assert!(!allowed);
    assert!(reason.contains("deny.db_names"), "{reason}");
    assert_eq!(roles, ["no-admin"]);

    let next = CString::new(CONFIG.replace("db_names: [admin]", "db_names: [test]")).unwrap();
    assert_eq!(
        c_call!(docauth_engine_reload(
            engine,
            next.as_ptr(),
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    assert!(!decide(engine, "test").0);
    assert!(decide(engine, "admin").0);

    let bad = CString::new("roles: [").unwrap();
    let mut err = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_engine_reload(engine, bad.as_ptr(), &mut err)),
        ResultCode::PolicyConfigSyntax
    );
    assert!(cstr(c_call!(docauth_error_message(err))).contains("line"));
    c_call!(docauth_error_free(err));
    assert!(decide(engine, "admin").0, "a failed reload keeps the rules");
    c_call!(docauth_engine_free(engine));
}

#[test]
fn bad_config_and_null_arguments() {
    let (code, msg) = new_engine("roles:\n  - {kind: role, version: v7, metadata: {name: r}, spec: {allow: {db_users: ['{{internal.db_users']}}}\n").unwrap_err();
    assert_eq!(code, ResultCode::PolicyRoleInvalid);
    assert!(msg.contains("db_users"), "{msg}");
    let mut engine = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_engine_new(
            ptr::null(),
            &mut engine,
            ptr::null_mut()
        )),
        ResultCode::NullParameter
    );
    let c = CString::new(CONFIG).unwrap();
    assert_eq!(
        c_call!(docauth_engine_new(
            c.as_ptr(),
            ptr::null_mut(),
            ptr::null_mut()
        )),
        ResultCode::NullParameter
    );
    let mut d = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_engine_decide(
            ptr::null(),
            c.as_ptr(),
            &mut d,
            ptr::null_mut()
        )),
        ResultCode::NullParameter
    );
    assert!(d.is_null());
    let bad_utf8 = b"{\"a\": \"\xff\"}\0";
    let engine = new_engine(CONFIG).unwrap();
    assert_eq!(
        c_call!(docauth_engine_decide(
            engine,
            bad_utf8.as_ptr().cast(),
            &mut d,
            ptr::null_mut()
        )),
        ResultCode::InvalidUtf8
    );
    assert!(!c_call!(docauth_decision_allowed(ptr::null())));
    assert!(c_call!(docauth_decision_matched_role(ptr::null(), 0)).is_null());
    c_call!(docauth_decision_free(ptr::null_mut()));
    c_call!(docauth_engine_free(engine));
    c_call!(docauth_engine_free(ptr::null_mut()));
}

struct SendPtr(*mut docauth_engine);
// SAFETY: the engine is documented as shareable between threads.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

#[test]
fn reload_concurrent_with_decide_through_one_handle() {
    let engine = SendPtr(new_engine(CONFIG).unwrap());
    let other = CString::new(CONFIG.replace("db_names: [admin]", "db_names: [test]")).unwrap();
    let same = CString::new(CONFIG).unwrap();
    std::thread::scope(|s| {
        let e = &engine;
        s.spawn(move || {
            for _ in 0..300 {
                // `reports` is allowed under both rule sets.
                assert!(decide(e.0, "reports").0);
            }
        });
        for i in 0..200 {
            let cfg = if i % 2 == 0 { &other } else { &same };
            assert_eq!(
                c_call!(docauth_engine_reload(e.0, cfg.as_ptr(), ptr::null_mut())),
                ResultCode::Ok
            );
        }
    });
    c_call!(docauth_engine_free(engine.0));
}

#[test]
fn a_decision_request_over_1_mib_is_refused_and_one_of_1_mib_is_decided() {
    let engine = new_engine(CONFIG).unwrap();
    let request =
        r#"{"identity": "alice", "database": "my-docdb", "db_user": "u", "db_name": "test"}"#;
    let padded = |len: usize| {
        // Trailing whitespace keeps the JSON valid at any length.
        let mut text = request.to_string();
        text.push_str(&" ".repeat(len - text.len()));
        CString::new(text).unwrap()
    };
    let mut d = ptr::null_mut();
    let at_limit = padded(1 << 20);
    assert_eq!(
        c_call!(docauth_engine_decide(
            engine,
            at_limit.as_ptr(),
            &mut d,
            ptr::null_mut()
        )),
        ResultCode::Ok
    );
    assert!(c_call!(docauth_decision_allowed(d)));
    c_call!(docauth_decision_free(d));

    let over = padded((1 << 20) + 1);
    let mut d = ptr::null_mut();
    let mut err = ptr::null_mut();
    assert_eq!(
        c_call!(docauth_engine_decide(
            engine,
            over.as_ptr(),
            &mut d,
            &mut err
        )),
        ResultCode::PolicyRequestInvalid
    );
    assert!(d.is_null());
    let msg = cstr(c_call!(docauth_error_message(err)));
    assert!(msg.contains("1048577 bytes"), "{msg}");
    assert!(msg.contains("limit of 1048576"), "{msg}");
    c_call!(docauth_error_free(err));
    c_call!(docauth_engine_free(engine));
}
