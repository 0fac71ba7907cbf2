//! C entry points of the MONGODB-AWS conversation: credentials and conversation handles.

use std::ffi::{c_char, CString};
use std::time::{Duration, UNIX_EPOCH};

use crate::aws::{ClientConversation, Credentials, CLIENT_NONCE_LEN};
use crate::ffi::boundary::{arg_bytes, arg_mut, arg_opt_str, arg_ref, arg_str, free_boxed, Out};
use crate::ffi::{docauth_bytes, docauth_error};
use crate::{Error, ResultCode};

/// AWS credentials: an access key id, a secret access key and an optional session token.
///
/// Ownership: created by `docauth_credentials_new`, owned by the caller, freed with
/// `docauth_credentials_free`. Conversations keep their own reference, so the handle may be
/// freed as soon as the conversations that need it are created.
/// Threads: immutable and shareable; any number of threads may use one handle at the same
/// time (e.g. to create conversations). Conversations created from the same credentials
/// share one cache of SigV4 signing keys.
/// Secrets: copied into zeroizing storage, wiped when the last reference goes; never printed.
/// Only the access key id and the expiry can be read back
/// (`docauth_credentials_access_key_id`, `docauth_credentials_expiry`); the secret access key
/// and the session token never leave the library.
pub struct docauth_credentials {
    pub(crate) inner: Credentials,
    /// The access key id, NUL-terminated, for `docauth_credentials_access_key_id`.
    access_key_id: CString,
}

impl docauth_credentials {
    pub(crate) fn new(inner: Credentials) -> Self {
        // Access key ids are checked to be printable ASCII, so an interior NUL cannot happen;
        // an empty string would be the (harmless) answer if it did.
        let access_key_id = CString::new(inner.access_key_id()).unwrap_or_default();
        docauth_credentials {
            inner,
            access_key_id,
        }
    }
}

/// One MONGODB-AWS SASL conversation (client side): `docauth_aws_conversation_client_first`
/// once, then `docauth_aws_conversation_client_final` once.
///
/// Ownership: created by `docauth_aws_conversation_new` (or `_new_for_testing`), owned by
/// the caller, freed with `docauth_aws_conversation_free`.
/// Threads: may move between threads, but only one thread may use it at a time (the steps
/// mutate it); it is not shareable.
pub struct docauth_aws_conversation {
    inner: ClientConversation,
}

/// Creates credentials from an access key id, a secret access key and, for temporary
/// credentials, a session token (`NULL` for long-term credentials).
///
/// All strings are NUL-terminated UTF-8 and are copied; the caller may wipe its copies when
/// the call returns. On success `*out` receives a handle to free with
/// `docauth_credentials_free`.
///
/// Errors: `DOCAUTH_RESULT_NULL_PARAMETER` (`access_key_id`, `secret_access_key` or `out` is
/// NULL), `DOCAUTH_RESULT_INVALID_UTF8`, `DOCAUTH_RESULT_AWS_INVALID_CREDENTIALS` (empty
/// access key id or secret, empty session token, or a space, control or non-ASCII character
/// in the access key id or session token, which are sent in HTTP headers).
///
/// # Safety
/// `access_key_id`, `secret_access_key` and `session_token` are NULL or
/// NUL-terminated strings; `out` and `err` are NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_new(
    access_key_id: *const c_char,
    secret_access_key: *const c_char,
    session_token: *const c_char,
    out: *mut *mut docauth_credentials,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_credentials_new", {
        // SAFETY: the caller passes NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings that live for the call.
        let access_key_id = unsafe { arg_str(access_key_id, "access_key_id") }?;
        // SAFETY: as above.
        let secret_access_key = unsafe { arg_str(secret_access_key, "secret_access_key") }?;
        // SAFETY: as above.
        let session_token = unsafe { arg_opt_str(session_token, "session_token") }?;
        let inner = Credentials::new(access_key_id, secret_access_key, session_token)?;
        out.set_boxed(docauth_credentials::new(inner));
        Ok(())
    })
}

/// The access key id of `credentials` (e.g. `AKIA…` for long-term keys, `ASIA…` for the
/// temporary credentials of an assumed role), NUL-terminated ASCII. Not a secret: it names
/// the key in logs and in CloudTrail. The secret access key and the session token cannot be
/// read back.
///
/// Ownership: the string belongs to the handle; valid until `docauth_credentials_free`,
/// never free it. Threads: callable from any thread while the handle lives.
/// Errors: none; returns an empty string when `credentials` is NULL (and if the library
/// panicked, a bug).
///
/// # Safety
/// `credentials` is NULL or a live credentials handle.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_access_key_id(
    credentials: *const docauth_credentials,
) -> *const c_char {
    ffi_boundary!(string: credentials, "docauth_credentials_access_key_id", |c| {
        c.access_key_id.as_c_str()
    })
}

/// When `credentials` expire, in whole seconds since the Unix epoch (UTC), rounded down:
/// the `Expiration` STS returned for temporary credentials from
/// `docauth_credentials_provider_resolve`. Returns 0 when the credentials have no expiry
/// (long-term keys, or any handle from `docauth_credentials_new`), when `credentials` is
/// NULL, and if the library panicked (a bug).
///
/// Threads: callable from any thread while the handle lives. Errors: none.
///
/// # Safety
/// `credentials` is NULL or a live credentials handle.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_expiry(
    credentials: *const docauth_credentials,
) -> i64 {
    ffi_boundary!(default: 0, "docauth_credentials_expiry", {
        // SAFETY: the caller passes NULL or a live credentials handle.
        let Some(c) = (unsafe { credentials.as_ref() }) else {
            return 0;
        };
        c.inner
            .expiry()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .unwrap_or(0)
    })
}

/// Frees credentials. `NULL` is a no-op. Conversations created from them stay usable.
/// Must not be called twice on the same pointer, nor while another thread uses the handle.
/// A panic while freeing (a bug) is contained: the call returns, the handle may leak.
///
/// # Safety
/// `credentials` is NULL or a handle from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_free(credentials: *mut docauth_credentials) {
    ffi_boundary!(default: (), "docauth_credentials_free", {
        // SAFETY: the caller passes NULL or a handle from docauth_credentials_new, not freed
        // before.
        unsafe { free_boxed(credentials) }
    })
}

/// Starts a MONGODB-AWS conversation with a fresh 32-byte client nonce from the operating
/// system's CSPRNG; `client_final` signs at the system clock's time.
///
/// `credentials` is only read; the conversation keeps its own reference. On success `*out`
/// receives a handle to free with `docauth_aws_conversation_free`.
///
/// Errors: `DOCAUTH_RESULT_NULL_PARAMETER`, `DOCAUTH_RESULT_SIGNING_FAILED` (the random
/// number generator failed).
///
/// # Safety
/// `credentials` is NULL or a live credentials handle; `out` and `err` are NULL or
/// writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_aws_conversation_new(
    credentials: *const docauth_credentials,
    out: *mut *mut docauth_aws_conversation,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_aws_conversation_new", {
        // SAFETY: the caller passes NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: the caller passes NULL or a live credentials handle.
        let credentials = unsafe { arg_ref(credentials, "credentials") }?;
        let inner = ClientConversation::new(credentials.inner.clone())?;
        out.set_boxed(docauth_aws_conversation { inner });
        Ok(())
    })
}

/// FOR TESTS ONLY: starts a conversation with a chosen client nonce and a frozen clock, so
/// that its payloads can be compared byte for byte with another implementation's. Never use
/// it to authenticate: a predictable nonce defeats the protocol's replay protection.
///
/// `client_nonce` points to `client_nonce_len` bytes, which must be 32.
/// `unix_time_seconds` is the signing time (seconds since 1970-01-01T00:00:00Z), from 0 to
/// 253402300799 (9999-12-31T23:59:59Z).
///
/// Errors: `DOCAUTH_RESULT_NULL_PARAMETER`, `DOCAUTH_RESULT_INVALID_ARGUMENT` (nonce length
/// is not 32, or the time is out of range).
///
/// # Safety
/// As `docauth_aws_conversation_new`; `client_nonce` is NULL or points to
/// `client_nonce_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn docauth_aws_conversation_new_for_testing(
    credentials: *const docauth_credentials,
    client_nonce: *const u8,
    client_nonce_len: usize,
    unix_time_seconds: i64,
    out: *mut *mut docauth_aws_conversation,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_aws_conversation_new_for_testing", {
        // SAFETY: the caller passes NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: the caller passes NULL or a live credentials handle.
        let credentials = unsafe { arg_ref(credentials, "credentials") }?;
        if client_nonce.is_null() {
            return Err(Error::new(
                ResultCode::NullParameter,
                "`client_nonce` must not be NULL",
            ));
        }
        // SAFETY: non-NULL, and the caller promises `client_nonce_len` readable bytes.
        let nonce = unsafe { arg_bytes(client_nonce, client_nonce_len, "client_nonce") }?;
        let nonce: [u8; CLIENT_NONCE_LEN] = nonce.try_into().map_err(|_| {
            Error::new(
                ResultCode::InvalidArgument,
                format!(
                    "`client_nonce_len` is {client_nonce_len}; a MONGODB-AWS client nonce is exactly {CLIENT_NONCE_LEN} bytes"
                ),
            )
        })?;
        const MAX_TIME: i64 = 253_402_300_799;
        if !(0..=MAX_TIME).contains(&unix_time_seconds) {
            return Err(Error::new(
                ResultCode::InvalidArgument,
                format!(
                    "`unix_time_seconds` is {unix_time_seconds}; it must be from 0 (1970-01-01T00:00:00Z) to {MAX_TIME} (9999-12-31T23:59:59Z)"
                ),
            ));
        }
        let time = UNIX_EPOCH + Duration::from_secs(unix_time_seconds as u64);
        let inner = ClientConversation::with_nonce_and_time(credentials.inner.clone(), nonce, time);
        out.set_boxed(docauth_aws_conversation { inner });
        Ok(())
    })
}

/// Produces the client-first payload: the BSON document `{r: BinData(0, 32-byte nonce),
/// p: 110}`, to send as the `payload` of `saslStart` with mechanism `MONGODB-AWS`.
///
/// On success `*out` receives a buffer to free with `docauth_bytes_free`.
///
/// Errors: `DOCAUTH_RESULT_NULL_PARAMETER`, `DOCAUTH_RESULT_INVALID_STATE` (already called).
///
/// # Safety
/// `conversation` is NULL or a live conversation no other thread is using; `out`
/// and `err` are NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_aws_conversation_client_first(
    conversation: *mut docauth_aws_conversation,
    out: *mut *mut docauth_bytes,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_aws_conversation_client_first", {
        // SAFETY: the caller passes NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: the caller passes NULL or a live conversation no other thread is using.
        let conversation = unsafe { arg_mut(conversation, "conversation") }?;
        let payload = conversation.inner.client_first()?;
        out.set_boxed(docauth_bytes::new(payload));
        Ok(())
    })
}

/// Produces the client-final payload from the server's reply to client-first.
///
/// `server_first` points to `server_first_len` bytes: the `payload` of the server's
/// `saslStart` reply, the BSON document `{s: BinData(0, 64 bytes), h: "<STS host>"}`.
/// On success `*out` receives the BSON document `{a: Authorization header, d: X-Amz-Date,
/// t: session token (only with temporary credentials)}` to send as the `payload` of
/// `saslContinue`; free it with `docauth_bytes_free`.
///
/// Must follow `docauth_aws_conversation_client_first`; callable once. The conversation is
/// finished afterwards, whether the call succeeded or not.
///
/// Errors: `DOCAUTH_RESULT_NULL_PARAMETER` (`server_first` NULL with a non-zero length, or
/// `conversation`/`out` NULL), `DOCAUTH_RESULT_INVALID_STATE`,
/// `DOCAUTH_RESULT_SASL_MALFORMED_SERVER_FIRST` (not exactly `{s: BinData(0), h: string}`:
/// truncated, trailing bytes, wrong types, missing, duplicated or extra fields, longer than
/// 1024 bytes, or a host with a space, control or non-ASCII character),
/// `DOCAUTH_RESULT_SASL_SERVER_NONCE_LENGTH` (`s` not 64 bytes),
/// `DOCAUTH_RESULT_SASL_SERVER_NONCE_MISMATCH` (`s` does not start with our nonce),
/// `DOCAUTH_RESULT_SASL_HOST_LENGTH` (`h` empty or over 255 bytes),
/// `DOCAUTH_RESULT_SASL_HOST_EDGE_DOT`, `DOCAUTH_RESULT_SASL_HOST_EMPTY_LABEL`,
/// `DOCAUTH_RESULT_SIGNING_FAILED` (e.g. the clock is before 1970).
///
/// # Safety
/// As `docauth_aws_conversation_client_first`; `server_first` is NULL or points
/// to `server_first_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn docauth_aws_conversation_client_final(
    conversation: *mut docauth_aws_conversation,
    server_first: *const u8,
    server_first_len: usize,
    out: *mut *mut docauth_bytes,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_aws_conversation_client_final", {
        // SAFETY: the caller passes NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: the caller passes NULL or a live conversation no other thread is using.
        let conversation = unsafe { arg_mut(conversation, "conversation") }?;
        // SAFETY: the caller passes NULL (with length 0) or `server_first_len` readable bytes.
        let server_first = unsafe { arg_bytes(server_first, server_first_len, "server_first") }?;
        let payload = conversation.inner.client_final(server_first)?;
        out.set_boxed(docauth_bytes::new(payload));
        Ok(())
    })
}

/// Frees a conversation. `NULL` is a no-op. Must not be called twice on the same pointer.
/// A panic while freeing (a bug) is contained: the call returns, the handle may leak.
///
/// # Safety
/// `conversation` is NULL or a conversation from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_aws_conversation_free(
    conversation: *mut docauth_aws_conversation,
) {
    ffi_boundary!(default: (), "docauth_aws_conversation_free", {
        // SAFETY: the caller passes NULL or a handle from docauth_aws_conversation_new*, not
        // freed before.
        unsafe { free_boxed(conversation) }
    })
}

#[cfg(test)]
mod tests;
