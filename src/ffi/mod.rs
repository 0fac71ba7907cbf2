//! The C ABI. The only module with raw pointers.
//!
//! Conventions (see `docs/C-ABI.md` and the header's comments):
//! - every `extern "C"` body runs inside [`ffi_boundary!`], which catches panics and turns
//!   the body's `Result` into a `docauth_result`, filling the optional `docauth_error **`;
//! - pointer arguments are read through the helpers in [`boundary`], which check NULL and
//!   UTF-8 and name the offending parameter in the error;
//! - out-params are written only on success, through [`boundary::Out`];
//! - handles are `Box`ed (or `Arc`ed where shared) Rust values; every `_free(NULL)` is a no-op.

#![allow(non_camel_case_types)]
// Every exported function that takes a pointer is an `unsafe extern "C" fn`: its pointer
// contract is in its doc comment (`# Safety`, also in the header), and the boundary helpers
// check what can be checked (NULL, UTF-8).

/// Unit tests call the C ABI as a C caller does.
#[cfg(test)]
macro_rules! c_call {
    ($call:expr) => {{
        // SAFETY: the tests pass NULL, or pointers to live values they own, as the called
        // function's contract asks.
        unsafe { $call }
    }};
}

#[macro_use]
mod boundary;
mod aws;
mod bytes;
mod credentials_provider;
mod error;
mod metrics;
mod policy;
mod session;

pub use aws::{
    docauth_aws_conversation, docauth_aws_conversation_client_final,
    docauth_aws_conversation_client_first, docauth_aws_conversation_free,
    docauth_aws_conversation_new, docauth_aws_conversation_new_for_testing, docauth_credentials,
    docauth_credentials_access_key_id, docauth_credentials_expiry, docauth_credentials_free,
    docauth_credentials_new,
};
pub use bytes::{docauth_bytes, docauth_bytes_data, docauth_bytes_free, docauth_bytes_len};
pub use credentials_provider::{
    docauth_credentials_provider, docauth_credentials_provider_free,
    docauth_credentials_provider_invalidate, docauth_credentials_provider_new,
    docauth_credentials_provider_resolve,
};
pub use error::{docauth_error, docauth_error_code, docauth_error_free, docauth_error_message};
pub use metrics::{
    docauth_metrics_content_type, docauth_metrics_format, docauth_metrics_render,
    DOCAUTH_METRICS_FORMAT_OPENMETRICS, DOCAUTH_METRICS_FORMAT_PROMETHEUS,
};
pub use policy::{
    docauth_decision, docauth_decision_allowed, docauth_decision_free, docauth_decision_json,
    docauth_decision_matched_role, docauth_decision_matched_roles_count, docauth_decision_reason,
    docauth_engine, docauth_engine_decide, docauth_engine_free, docauth_engine_new,
    docauth_engine_new_from_file, docauth_engine_reload, docauth_engine_reload_from_file,
};
pub use session::{
    docauth_audit_fn, docauth_runtime, docauth_runtime_audit_dropped, docauth_runtime_free,
    docauth_runtime_new, docauth_runtime_set_max_sessions, docauth_session,
    docauth_session_audit_dropped, docauth_session_free, docauth_session_is_finished,
    docauth_session_shutdown, docauth_session_start, docauth_session_stats, docauth_session_wait,
    docauth_user_data_free_fn,
};

use std::ffi::c_char;

/// The library version (the crate's `major.minor.patch`), as a NUL-terminated static string.
///
/// Never NULL (also if the library panicked, a bug: then an empty string); never free it.
/// Callable from any thread.
#[no_mangle]
pub extern "C" fn docauth_version() -> *const c_char {
    ffi_boundary!(default: c"".as_ptr(), "docauth_version", {
        static VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
        VERSION_C.as_ptr().cast()
    })
}

/// The name of a result code's C constant (e.g. `"DOCAUTH_RESULT_NULL_PARAMETER"`), or
/// `"DOCAUTH_RESULT_UNKNOWN"` for a number this library does not define (and if the library
/// panicked, a bug).
///
/// Never NULL; a static string, never free it. Callable from any thread.
#[no_mangle]
pub extern "C" fn docauth_result_name(result: u32) -> *const c_char {
    ffi_boundary!(default: c"DOCAUTH_RESULT_UNKNOWN".as_ptr(), "docauth_result_name", {
        let name = crate::error::ResultCode::from_number(result)
            .map(|code| code.c_name())
            .unwrap_or(c"DOCAUTH_RESULT_UNKNOWN");
        name.as_ptr()
    })
}
