//! The C ABI of the policy engine: build, reload, decide, read decisions.

use std::ffi::{c_char, CString};
use std::sync::Arc;

use crate::policy::{Decision, PolicyEngine};
use crate::ResultCode;

use super::boundary::{arg_ref, arg_str, free_boxed, new_from_str, Out};

/// A policy engine: roles, databases and operator Rego modules, compiled once.
///
/// Ownership: created by `docauth_engine_new` / `docauth_engine_new_from_file`, freed by
/// `docauth_engine_free` (after every other call on it has returned).
/// Threads: shareable. `docauth_engine_decide` and `docauth_engine_reload` may be called
/// from any number of threads at once; a reload swaps the rules atomically and each decision
/// sees either the old or the new rules, never a mix.
/// Sessions started with it (`docauth_session_start`) keep their own reference: the engine
/// may be freed while they run, and a reload applies to them from their next message.
pub struct docauth_engine {
    pub(crate) inner: Arc<PolicyEngine>,
}

/// One decision: allowed or denied, a reason, the roles that decided.
///
/// Ownership: created by `docauth_engine_decide`, owned by the caller, freed by
/// `docauth_decision_free`. Strings it returns are valid until then.
/// Threads: immutable; may be read from any thread.
pub struct docauth_decision {
    decision: Arc<Decision>,
    reason: CString,
    roles: Vec<CString>,
    json: CString,
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

fn engine_from_text(config: &str) -> crate::Result<PolicyEngine> {
    PolicyEngine::from_config_str("config", config, None)
}

/// Builds an engine from a configuration document (JSON or YAML text; see docs/policy.md):
/// `roles` (inline role documents or file paths, relative to the current directory),
/// `databases`, optional `identities` and `modules` (operator Rego).
///
/// Errors: DOCAUTH_RESULT_NULL_PARAMETER, DOCAUTH_RESULT_INVALID_UTF8,
/// DOCAUTH_RESULT_POLICY_CONFIG_SYNTAX (the message names the file, line and problem),
/// DOCAUTH_RESULT_POLICY_ROLE_INVALID, DOCAUTH_RESULT_POLICY_REGO_INVALID,
/// DOCAUTH_RESULT_POLICY_CONFIG_TOO_LARGE, DOCAUTH_RESULT_POLICY_CONFIG_TOO_DEEP,
/// DOCAUTH_RESULT_POLICY_CONFIG_UNREADABLE, DOCAUTH_RESULT_INVALID_CONFIG.
/// On success `*out` receives an engine the caller frees with `docauth_engine_free`.
///
/// # Safety
/// `config` is NULL or a NUL-terminated string; `out` and `err` are NULL or
/// writable storage for one pointer. All live for the call.
#[no_mangle]
pub unsafe extern "C" fn docauth_engine_new(
    config: *const c_char,
    out: *mut *mut docauth_engine,
    err: *mut *mut super::docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_engine_new", {
        // SAFETY: per the contract, NULL or a NUL-terminated string and writable storage for
        // one pointer, live for the call.
        unsafe {
            new_from_str(config, "config", out, |text| {
                Ok(docauth_engine {
                    inner: Arc::new(engine_from_text(text)?),
                })
            })
        }
    })
}

/// Builds an engine from a configuration file (JSON or YAML); relative paths inside it are
/// resolved against the file's directory. Errors as `docauth_engine_new`.
///
/// # Safety
/// As `docauth_engine_new` (`path` in place of `config`).
#[no_mangle]
pub unsafe extern "C" fn docauth_engine_new_from_file(
    path: *const c_char,
    out: *mut *mut docauth_engine,
    err: *mut *mut super::docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_engine_new_from_file", {
        // SAFETY: per the contract, NULL or a NUL-terminated string and writable storage for
        // one pointer, live for the call.
        unsafe {
            new_from_str(path, "path", out, |path| {
                Ok(docauth_engine {
                    inner: Arc::new(PolicyEngine::from_file(path)?),
                })
            })
        }
    })
}

/// Replaces the engine's rules with those of a new configuration document (as
/// `docauth_engine_new`). The handle stays valid; decisions running concurrently finish with
/// the old rules, later ones see the new rules; cached decisions are dropped. On error the
/// old rules stay in force. Safe to call concurrently with `docauth_engine_decide`.
///
/// # Safety
/// `engine` is NULL or a live engine; `config` is NULL or a NUL-terminated
/// string; `err` is NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_engine_reload(
    engine: *const docauth_engine,
    config: *const c_char,
    err: *mut *mut super::docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_engine_reload", {
        // SAFETY: per the contract, NULL or a live engine.
        let engine = unsafe { arg_ref(engine, "engine") }?;
        // SAFETY: per the contract, NULL or a NUL-terminated string live for the call.
        let config = unsafe { arg_str(config, "config") }?;
        let next = crate::policy::Config::from_str("config", config, None)?;
        engine.inner.reload(next)
    })
}

/// As `docauth_engine_reload`, reading the configuration from a file.
///
/// # Safety
/// As `docauth_engine_reload` (`path` in place of `config`).
#[no_mangle]
pub unsafe extern "C" fn docauth_engine_reload_from_file(
    engine: *const docauth_engine,
    path: *const c_char,
    err: *mut *mut super::docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_engine_reload_from_file", {
        // SAFETY: per the contract, NULL or a live engine.
        let engine = unsafe { arg_ref(engine, "engine") }?;
        // SAFETY: per the contract, NULL or a NUL-terminated string live for the call.
        let path = unsafe { arg_str(path, "path") }?;
        let next = crate::policy::Config::from_file(path)?;
        engine.inner.reload(next)
    })
}

/// Decides a request (a JSON document):
/// `{"identity": {"user": "alice", "roles": ["access"], "traits": {"db_users": ["*"]}},
///   "database": "my-docdb", "db_user": "teleport-docdb-user", "db_name": "test",
///   "command": "find", "namespaces": ["test.orders"]}`
/// (`identity` may be the name of an identity from the config; `command` and `namespaces`
/// are optional).
///
/// A deny is a decision (DOCAUTH_RESULT_OK with `docauth_decision_allowed` false), never an
/// error. Errors: DOCAUTH_RESULT_NULL_PARAMETER, DOCAUTH_RESULT_INVALID_UTF8,
/// DOCAUTH_RESULT_POLICY_REQUEST_INVALID (malformed request document).
/// On success `*out` receives a decision the caller frees with `docauth_decision_free`.
/// Callable from any number of threads at once.
///
/// # Safety
/// `engine` is NULL or a live engine; `request_json` is NULL or a
/// NUL-terminated string; `out` and `err` are NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_engine_decide(
    engine: *const docauth_engine,
    request_json: *const c_char,
    out: *mut *mut docauth_decision,
    err: *mut *mut super::docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_engine_decide", {
        // SAFETY: per the contract, NULL or a live engine.
        let engine = unsafe { arg_ref(engine, "engine") }?;
        // SAFETY: per the contract, NULL or a NUL-terminated string live for the call.
        let request_json = unsafe { arg_str(request_json, "request_json") }?;
        // SAFETY: per the contract, NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        let request = engine.inner.request_from_json(request_json)?;
        let decision = engine.inner.decide(&request);
        out.set_boxed(docauth_decision {
            reason: c_string(&decision.reason),
            roles: decision.matched_roles.iter().map(|r| c_string(r)).collect(),
            json: c_string(&decision.to_json()),
            decision,
        });
        Ok(())
    })
}

/// Frees an engine. `NULL` is a no-op. No other call may be using it. Sessions started
/// with it keep their own reference and go on judging with it. A panic while freeing (a
/// bug) is contained: the call returns, the engine may leak.
///
/// # Safety
/// `engine` is NULL or an engine from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_engine_free(engine: *mut docauth_engine) {
    ffi_boundary!(default: (), "docauth_engine_free", {
        // SAFETY: the caller passes NULL or an engine from this library, not freed before.
        unsafe { free_boxed(engine) }
    })
}

/// True when the decision allows the request; false when it denies it, when `decision` is
/// NULL, and if the library panicked (a bug).
///
/// # Safety
/// `decision` is NULL or a live decision.
#[no_mangle]
pub unsafe extern "C" fn docauth_decision_allowed(decision: *const docauth_decision) -> bool {
    ffi_boundary!(default: false, "docauth_decision_allowed", {
        // SAFETY: the caller passes NULL or a live decision.
        unsafe { decision.as_ref() }.is_some_and(|d| d.decision.allowed)
    })
}

/// The reason, naming the deciding role(s) and rule; valid until the decision is freed.
/// An empty string when `decision` is NULL (and if the library panicked, a bug).
///
/// # Safety
/// `decision` is NULL or a live decision.
#[no_mangle]
pub unsafe extern "C" fn docauth_decision_reason(
    decision: *const docauth_decision,
) -> *const c_char {
    ffi_boundary!(string: decision, "docauth_decision_reason", |d| d.reason.as_c_str())
}

/// How many roles decided (allowing roles, or roles whose deny rules matched); 0 for NULL
/// (and if the library panicked, a bug).
///
/// # Safety
/// `decision` is NULL or a live decision.
#[no_mangle]
pub unsafe extern "C" fn docauth_decision_matched_roles_count(
    decision: *const docauth_decision,
) -> usize {
    ffi_boundary!(default: 0, "docauth_decision_matched_roles_count", {
        // SAFETY: the caller passes NULL or a live decision.
        unsafe { decision.as_ref() }.map_or(0, |d| d.roles.len())
    })
}

/// The `index`-th deciding role name, valid until the decision is freed; NULL when
/// `decision` is NULL or `index` is out of range (and if the library panicked, a bug).
///
/// # Safety
/// `decision` is NULL or a live decision.
#[no_mangle]
pub unsafe extern "C" fn docauth_decision_matched_role(
    decision: *const docauth_decision,
    index: usize,
) -> *const c_char {
    ffi_boundary!(default: std::ptr::null(), "docauth_decision_matched_role", {
        // SAFETY: the caller passes NULL or a live decision.
        match unsafe { decision.as_ref() }.and_then(|d| d.roles.get(index)) {
            Some(r) => r.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// The decision as JSON: `{"allowed": bool, "reason": "...", "matched_roles": ["..."]}`;
/// valid until the decision is freed. An empty string when `decision` is NULL (and if the
/// library panicked, a bug).
///
/// # Safety
/// `decision` is NULL or a live decision.
#[no_mangle]
pub unsafe extern "C" fn docauth_decision_json(decision: *const docauth_decision) -> *const c_char {
    ffi_boundary!(string: decision, "docauth_decision_json", |d| d.json.as_c_str())
}

/// Frees a decision. `NULL` is a no-op. A panic while freeing (a bug) is contained: the
/// call returns, the decision may leak.
///
/// # Safety
/// `decision` is NULL or a decision from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_decision_free(decision: *mut docauth_decision) {
    ffi_boundary!(default: (), "docauth_decision_free", {
        // SAFETY: the caller passes NULL or a decision from this library, not freed before.
        unsafe { free_boxed(decision) }
    })
}
