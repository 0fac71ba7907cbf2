//! The panic boundary and the checked conversions every `extern "C"` function uses, and the
//! error object ([`docauth_error`]) the boundary hands to the caller.

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Error, ResultCode};

/// An error: a `docauth_result` code and a human-readable message.
///
/// Ownership: created by the library when a call fails and the caller passed a non-NULL
/// `docauth_error **err`; owned by the caller, who frees it with `docauth_error_free`.
/// Threads: immutable; may be read from any thread, freed once.
pub struct docauth_error {
    pub(super) code: ResultCode,
    pub(super) message: CString,
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

/// Runs an `extern "C"` body. Two forms:
///
/// - `ffi_boundary!(err, "docauth_fn_name", { ...; Ok(()) })` for the functions that return
///   a `docauth_result`: `Ok(())` becomes `DOCAUTH_RESULT_OK`; an `Err` or a panic becomes
///   its code, and the error is stored in `*err` when `err` is not NULL.
/// - `ffi_boundary!(default: VALUE, "docauth_fn_name", { ...; value })` for the functions
///   that return a value (accessors, `_free`, `docauth_version`): the body's value, or
///   `VALUE` (the documented default, e.g. NULL, 0, false, `()`) when the body panics.
/// - `ffi_boundary!(string: handle, "docauth_fn_name", |h| h.field.as_c_str())` for the string
///   accessors: the string the handle holds (see [`str_of`]), or an empty string for a NULL
///   handle and when the body panics.
///
/// Every `extern "C"` function's body is exactly one of these (tests/ffi_exports.rs checks).
/// A panic never crosses into C: it would abort the host process, or worse.
macro_rules! ffi_boundary {
    (default: $default:expr, $name:literal, $body:block) => {
        $crate::ffi::boundary::run_value($name, $default, || $body)
    };
    (string: $handle:ident, $name:literal, $field:expr) => {
        $crate::ffi::boundary::run_value($name, c"".as_ptr(), || {
            // SAFETY: `handle` is NULL or a live handle: the contract of every string
            // accessor, written in its `# Safety`.
            unsafe { $crate::ffi::boundary::str_of($handle, $field) }
        })
    };
    ($err:expr, $name:literal, $body:block) => {{
        let body = || -> $crate::Result<()> { $body };
        // SAFETY: `err` is NULL or writable storage for one pointer: the contract of every
        // exported function that takes a `docauth_error **`.
        unsafe { $crate::ffi::boundary::run($err, $name, body) }
    }};
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// Drops a panic payload without letting a panicking `Drop` of the payload escape.
fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

/// See [`ffi_boundary!`]: the result-code form.
///
/// # Safety
/// `err` is NULL or points to writable storage for one `*mut docauth_error`.
pub(crate) unsafe fn run(
    err: *mut *mut docauth_error,
    function: &'static str,
    body: impl FnOnce() -> crate::Result<()>,
) -> ResultCode {
    // A panic leaves no Rust value half-updated that a later call could observe: handles are
    // only replaced wholesale, so treating the body as unwind-safe is sound.
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let detail = panic_detail(&*payload);
        drop_payload(payload);
        Err(Error::new(
            ResultCode::Panic,
            format!("internal error: {function} panicked ({detail}); please report this bug"),
        ))
    });
    match outcome {
        Ok(()) => ResultCode::Ok,
        Err(error) => {
            let code = error.code();
            // SAFETY: `err` is NULL or writable, as this function's caller promised.
            unsafe { store_error(err, error) };
            code
        }
    }
}

/// See [`ffi_boundary!`]: the value form. A panic returns `default`; the panic message has
/// already gone to standard error through the panic hook (there is no `err` to fill).
pub(crate) fn run_value<T>(_function: &'static str, default: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            drop_payload(payload);
            default
        }
    }
}

fn null(name: &str) -> Error {
    Error::new(
        ResultCode::NullParameter,
        format!("`{name}` must not be NULL"),
    )
}

/// A shared reference to a handle, or a NULL_PARAMETER error naming the parameter.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that outlives the returned reference.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> crate::Result<&'a T> {
    // SAFETY: NULL or a live `T` outliving the reference, per this function's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(name))
}

/// A shared reference to an optional handle: `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that outlives the returned reference.
pub(crate) unsafe fn arg_opt_ref<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: NULL or a live `T` outliving the reference, per this function's contract.
    unsafe { ptr.as_ref() }
}

/// An exclusive reference to a handle, or a NULL_PARAMETER error naming the parameter.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that nothing else uses during the call.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> crate::Result<&'a mut T> {
    // SAFETY: NULL or a live `T` used by nothing else, per this function's contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(name))
}

/// A required NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the returned reference.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> crate::Result<&'a str> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL (checked above) and NUL-terminated, per this function's contract.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|e| {
        Error::new(
            ResultCode::InvalidUtf8,
            format!(
                "`{name}` is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// An optional NUL-terminated UTF-8 string: NULL means absent.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> crate::Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: this function's contract is `arg_str`'s.
        unsafe { arg_str(ptr, name) }.map(Some)
    }
}

/// A byte buffer given as pointer + length; NULL is accepted only with length 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that outlive the returned slice.
pub(crate) unsafe fn arg_bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> crate::Result<&'a [u8]> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(null(name));
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            ResultCode::InvalidArgument,
            format!("`{name}` length {len} is larger than any buffer can be"),
        ));
    }
    // SAFETY: non-NULL, `len` readable bytes (the contract), and at most isize::MAX bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An out-parameter, checked for NULL before any work is done and written only on success.
pub(crate) struct Out<T> {
    slot: *mut *mut T,
}

impl<T> Out<T> {
    /// # Safety
    /// `slot` is NULL or points to writable storage for one `*mut T`.
    pub(crate) unsafe fn new(slot: *mut *mut T, name: &str) -> crate::Result<Self> {
        if slot.is_null() {
            Err(null(name))
        } else {
            Ok(Out { slot })
        }
    }

    /// Hands `value` to the caller as an owned, boxed handle.
    pub(crate) fn set_boxed(self, value: T) {
        // SAFETY: `new` checked that `slot` is non-NULL and the caller promised it is writable.
        unsafe { *self.slot = Box::into_raw(Box::new(value)) };
    }
}

/// The shape of every constructor that builds a handle from one string argument: the string
/// and the out slot checked (in that order), the value built, then boxed into the slot.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string live for the call; `out` is NULL or writable
/// storage for one pointer.
pub(crate) unsafe fn new_from_str<T>(
    text: *const c_char,
    text_name: &str,
    out: *mut *mut T,
    build: impl FnOnce(&str) -> crate::Result<T>,
) -> crate::Result<()> {
    // SAFETY: per this function's contract, NULL or a NUL-terminated string live for the call.
    let text = unsafe { arg_str(text, text_name) }?;
    // SAFETY: per this function's contract, NULL or writable storage for one pointer.
    let out = unsafe { Out::new(out, "out") }?;
    out.set_boxed(build(text)?);
    Ok(())
}

/// The shape of every string accessor: the string a handle holds, valid while the handle
/// lives, or an empty string for a NULL handle.
///
/// # Safety
/// `handle` is NULL or a live handle of type `T`.
pub(crate) unsafe fn str_of<T>(handle: *const T, field: impl FnOnce(&T) -> &CStr) -> *const c_char {
    // SAFETY: per this function's contract, NULL or a live handle.
    match unsafe { arg_opt_ref(handle) } {
        Some(h) => field(h).as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Frees a handle created by [`Out::set_boxed`]. NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or came from `Out::set_boxed` for the same `T` and was not freed before.
pub(crate) unsafe fn free_boxed<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL and from `Box::into_raw` of a `T`, not freed before (the contract).
        drop(unsafe { Box::from_raw(ptr) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{docauth_error_code, docauth_error_free, docauth_error_message};
    use std::ptr;

    extern "C" fn panicking_call(err: *mut *mut docauth_error) -> ResultCode {
        ffi_boundary!(err, "panicking_call", {
            let items: Vec<u8> = Vec::new();
            // An out-of-bounds index panics: the boundary must turn it into a result.
            let _ = items[std::hint::black_box(3)];
            Ok(())
        })
    }

    #[test]
    fn a_panic_inside_a_call_returns_panic_instead_of_aborting() {
        let mut err: *mut docauth_error = ptr::null_mut();
        let result = panicking_call(&mut err);
        assert_eq!(result, ResultCode::Panic);
        assert!(!err.is_null());
        assert_eq!(c_call!(docauth_error_code(err)), ResultCode::Panic);
        let message = c_call!(docauth_error_message(err));
        // SAFETY: a live error's message is a NUL-terminated string, valid until it is freed.
        let message = unsafe { CStr::from_ptr(message) }
            .to_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("panicking_call panicked"), "{message}");
        assert!(message.contains("index out of bounds"), "{message}");
        c_call!(docauth_error_free(err));
        // And with no error out-param at all.
        assert_eq!(panicking_call(ptr::null_mut()), ResultCode::Panic);
    }

    extern "C" fn panicking_accessor() -> usize {
        ffi_boundary!(default: 7, "panicking_accessor", {
            let items: Vec<usize> = Vec::new();
            items[std::hint::black_box(3)]
        })
    }

    extern "C" fn panicking_free() {
        ffi_boundary!(default: (), "panicking_free", {
            struct Bomb;
            impl Drop for Bomb {
                fn drop(&mut self) {
                    panic!("a Drop that panics");
                }
            }
            drop(Bomb);
        })
    }

    #[test]
    fn a_panic_inside_an_accessor_or_a_free_returns_the_default() {
        assert_eq!(panicking_accessor(), 7);
        panicking_free(); // returns instead of unwinding into the caller
    }

    #[test]
    fn invalid_utf8_names_the_parameter() {
        let bad = b"ab\xffcd\0";
        // SAFETY: `bad` is NUL-terminated and lives for the call.
        let e = unsafe { arg_str(bad.as_ptr().cast(), "secret_access_key") }.unwrap_err();
        assert_eq!(e.code(), ResultCode::InvalidUtf8);
        assert_eq!(
            e.message(),
            "`secret_access_key` is not valid UTF-8 (invalid byte at offset 2)"
        );
    }

    #[test]
    fn null_bytes_only_with_zero_length() {
        // SAFETY: NULL with length 0 is never dereferenced.
        let empty = unsafe { arg_bytes(ptr::null(), 0, "b") }.unwrap();
        assert_eq!(empty, &[] as &[u8]);
        // SAFETY: NULL with a length is rejected before any read.
        let e = unsafe { arg_bytes(ptr::null(), 5, "b") }.unwrap_err();
        assert_eq!(e.code(), ResultCode::NullParameter);
    }
}
