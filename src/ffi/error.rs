//! Error objects handed to C: a code and a message, owned by the caller.

use std::ffi::{c_char, CString};

use crate::{Error, ResultCode};

/// An error: a `docauth_result` code and a human-readable message.
///
/// Ownership: created by the library when a call fails and the caller passed a non-NULL
/// `docauth_error **err`; owned by the caller, who frees it with `docauth_error_free`.
/// Threads: immutable; may be read from any thread, freed once.
pub struct docauth_error {
    code: ResultCode,
    message: CString,
}

pub(crate) fn store_error(slot: *mut *mut docauth_error, error: Error) {
    if slot.is_null() {
        return;
    }
    // Interior NULs cannot come from our own messages, but a message may quote caller input.
    let message = CString::new(error.message().replace('\0', "\\0"))
        .unwrap_or_else(|_| CString::from(c"error message unavailable"));
    let boxed = Box::new(docauth_error {
        code: error.code(),
        message,
    });
    // SAFETY: `slot` is non-NULL and, per every function's contract, writable.
    unsafe { *slot = Box::into_raw(boxed) };
}

/// The error's code. Returns `DOCAUTH_RESULT_NULL_PARAMETER` when `err` is NULL.
#[no_mangle]
pub extern "C" fn docauth_error_code(err: *const docauth_error) -> ResultCode {
    // SAFETY: the caller passes NULL or a live error from this library.
    match unsafe { err.as_ref() } {
        Some(e) => e.code,
        None => ResultCode::NullParameter,
    }
}

/// The error's message, NUL-terminated UTF-8. Valid until `docauth_error_free(err)`.
/// Returns an empty string when `err` is NULL. Messages never contain secrets.
#[no_mangle]
pub extern "C" fn docauth_error_message(err: *const docauth_error) -> *const c_char {
    // SAFETY: the caller passes NULL or a live error from this library.
    match unsafe { err.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Frees an error. `NULL` is a no-op. Must not be called twice on the same pointer.
#[no_mangle]
pub extern "C" fn docauth_error_free(err: *mut docauth_error) {
    // SAFETY: the caller passes NULL or an error from this library, not freed before.
    unsafe { super::boundary::free_boxed(err) }
}
