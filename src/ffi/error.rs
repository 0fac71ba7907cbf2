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

/// Hands `error` to the caller through `slot` (nothing happens when `slot` is NULL).
///
/// # Safety
/// `slot` is NULL or points to writable storage for one `*mut docauth_error`.
pub(crate) unsafe fn store_error(slot: *mut *mut docauth_error, error: Error) {
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
    // SAFETY: `slot` is non-NULL and, per this function's contract, writable.
    unsafe { *slot = Box::into_raw(boxed) };
}

/// The error's code. Returns `DOCAUTH_RESULT_NULL_PARAMETER` when `err` is NULL, and
/// `DOCAUTH_RESULT_PANIC` if the library panicked (a bug).
///
/// # Safety
/// `err` is NULL or a live error from this library.
#[no_mangle]
pub unsafe extern "C" fn docauth_error_code(err: *const docauth_error) -> ResultCode {
    ffi_boundary!(default: ResultCode::Panic, "docauth_error_code", {
        // SAFETY: the caller passes NULL or a live error from this library.
        match unsafe { err.as_ref() } {
            Some(e) => e.code,
            None => ResultCode::NullParameter,
        }
    })
}

/// The error's message, NUL-terminated UTF-8. Valid until `docauth_error_free(err)`.
/// Returns an empty string when `err` is NULL (and if the library panicked, a bug).
/// Messages never contain secrets.
///
/// # Safety
/// `err` is NULL or a live error from this library.
#[no_mangle]
pub unsafe extern "C" fn docauth_error_message(err: *const docauth_error) -> *const c_char {
    ffi_boundary!(default: c"".as_ptr(), "docauth_error_message", {
        // SAFETY: the caller passes NULL or a live error from this library.
        match unsafe { err.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => c"".as_ptr(),
        }
    })
}

/// Frees an error. `NULL` is a no-op. Must not be called twice on the same pointer.
/// A panic while freeing (a bug) is contained: the call returns, the error may leak.
///
/// # Safety
/// `err` is NULL or an error from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_error_free(err: *mut docauth_error) {
    ffi_boundary!(default: (), "docauth_error_free", {
        // SAFETY: the caller passes NULL or an error from this library, not freed before.
        unsafe { super::boundary::free_boxed(err) }
    })
}
