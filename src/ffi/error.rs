//! The C accessors of the error objects the boundary hands to the caller ([`docauth_error`]).

use std::ffi::c_char;

pub use super::boundary::docauth_error;
use super::boundary::free_boxed;
use crate::ResultCode;

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
    ffi_boundary!(string: err, "docauth_error_message", |e| e.message.as_c_str())
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
        unsafe { free_boxed(err) }
    })
}
