//! Owned byte buffers handed to C.

/// An owned, immutable byte buffer produced by the library (e.g. a SASL payload).
///
/// Ownership: owned by the caller, freed with `docauth_bytes_free`.
/// Threads: immutable; may be read from any thread, freed once.
pub struct docauth_bytes {
    data: Vec<u8>,
}

impl docauth_bytes {
    pub(crate) fn new(data: Vec<u8>) -> Self {
        docauth_bytes { data }
    }
}

/// Pointer to the buffer's first byte; valid until `docauth_bytes_free(b)`.
/// Returns NULL when `b` is NULL (and if the library panicked, a bug).
/// Not NUL-terminated: use `docauth_bytes_len`.
///
/// # Safety
/// `b` is NULL or a live buffer from this library.
#[no_mangle]
pub unsafe extern "C" fn docauth_bytes_data(b: *const docauth_bytes) -> *const u8 {
    ffi_boundary!(default: std::ptr::null(), "docauth_bytes_data", {
        // SAFETY: the caller passes NULL or a live buffer from this library.
        match unsafe { b.as_ref() } {
            Some(b) => b.data.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// The buffer's length in bytes; 0 when `b` is NULL (and if the library panicked, a bug).
///
/// # Safety
/// `b` is NULL or a live buffer from this library.
#[no_mangle]
pub unsafe extern "C" fn docauth_bytes_len(b: *const docauth_bytes) -> usize {
    ffi_boundary!(default: 0, "docauth_bytes_len", {
        // SAFETY: the caller passes NULL or a live buffer from this library.
        unsafe { b.as_ref() }.map_or(0, |b| b.data.len())
    })
}

/// Frees a buffer. `NULL` is a no-op. Must not be called twice on the same pointer.
/// A panic while freeing (a bug) is contained: the call returns, the buffer may leak.
///
/// # Safety
/// `b` is NULL or a buffer from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_bytes_free(b: *mut docauth_bytes) {
    ffi_boundary!(default: (), "docauth_bytes_free", {
        // SAFETY: the caller passes NULL or a buffer from this library, not freed before.
        unsafe { super::boundary::free_boxed(b) }
    })
}
