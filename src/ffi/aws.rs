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
    ffi_boundary!(default: c"".as_ptr(), "docauth_credentials_access_key_id", {
        // SAFETY: the caller passes NULL or a live credentials handle.
        match unsafe { credentials.as_ref() } {
            Some(c) => c.access_key_id.as_ptr(),
            None => c"".as_ptr(),
        }
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
mod tests {
    use super::*;
    use crate::ffi::{
        docauth_bytes_data, docauth_bytes_free, docauth_bytes_len, docauth_error_code,
        docauth_error_free, docauth_error_message,
    };
    use bson::{doc, spec::BinarySubtype, Binary};
    use std::ffi::{CStr, CString};
    use std::ptr;

    const NONCE: [u8; 32] = [7u8; 32];
    const TIME: i64 = 1_573_086_367;

    /// Runs `call`, returning its result and, on failure, the error's code and message.
    fn outcome(
        call: impl FnOnce(*mut *mut docauth_error) -> ResultCode,
    ) -> (ResultCode, Option<(ResultCode, String)>) {
        let mut err: *mut docauth_error = ptr::null_mut();
        let result = call(&mut err);
        if err.is_null() {
            return (result, None);
        }
        let message = c_call!(docauth_error_message(err));
        // SAFETY: a live error's message is a NUL-terminated string.
        let message = unsafe { CStr::from_ptr(message) };
        let detail = (
            c_call!(docauth_error_code(err)),
            message.to_str().unwrap().to_owned(),
        );
        c_call!(docauth_error_free(err));
        (result, Some(detail))
    }

    fn credentials(token: Option<&str>) -> *mut docauth_credentials {
        let akid = CString::new("AKIAICGVLKOKZVY3X3DA").unwrap();
        let secret = CString::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
        let token = token.map(|t| CString::new(t).unwrap());
        let mut out = ptr::null_mut();
        let r = c_call!(docauth_credentials_new(
            akid.as_ptr(),
            secret.as_ptr(),
            token.as_ref().map_or(ptr::null(), |t| t.as_ptr()),
            &mut out,
            ptr::null_mut(),
        ));
        assert_eq!(r, ResultCode::Ok);
        assert!(!out.is_null());
        out
    }

    fn conversation(creds: *const docauth_credentials) -> *mut docauth_aws_conversation {
        let mut out = ptr::null_mut();
        let r = c_call!(docauth_aws_conversation_new_for_testing(
            creds,
            NONCE.as_ptr(),
            32,
            TIME,
            &mut out,
            ptr::null_mut(),
        ));
        assert_eq!(r, ResultCode::Ok);
        out
    }

    fn take(bytes: *mut docauth_bytes) -> Vec<u8> {
        let (data, len) = (
            c_call!(docauth_bytes_data(bytes)),
            c_call!(docauth_bytes_len(bytes)),
        );
        // SAFETY: `bytes` is a live buffer of `len` bytes from the library, freed below.
        let v = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
        c_call!(docauth_bytes_free(bytes));
        v
    }

    fn first(conv: *mut docauth_aws_conversation) -> Vec<u8> {
        let mut out = ptr::null_mut();
        assert_eq!(
            c_call!(docauth_aws_conversation_client_first(
                conv,
                &mut out,
                ptr::null_mut()
            )),
            ResultCode::Ok
        );
        take(out)
    }

    fn server_first(h: &str) -> Vec<u8> {
        let mut s = NONCE.to_vec();
        s.extend([9u8; 32]);
        bson::to_vec(&doc! {"s": Binary {subtype: BinarySubtype::Generic, bytes: s}, "h": h})
            .unwrap()
    }

    /// client_final with a sentinel out-param that must stay untouched on failure.
    fn final_result(
        conv: *mut docauth_aws_conversation,
        sf: &[u8],
    ) -> (ResultCode, Option<(ResultCode, String)>, *mut docauth_bytes) {
        let sentinel = 0x1234usize as *mut docauth_bytes;
        let mut out = sentinel;
        let (r, e) = outcome(|err| {
            c_call!(docauth_aws_conversation_client_final(
                conv,
                sf.as_ptr(),
                sf.len(),
                &mut out,
                err
            ))
        });
        if r != ResultCode::Ok {
            assert_eq!(out, sentinel, "out-param written on failure");
        }
        (r, e, out)
    }

    #[test]
    fn a_full_conversation_equals_the_rust_api() {
        for token in [None, Some("FwoGZXIvYXdzEJr//////////wEaDOKEN+/=")] {
            let creds = credentials(token);
            let conv = conversation(creds);
            // The conversation keeps its own reference: free the credentials right away.
            c_call!(docauth_credentials_free(creds));
            let f = first(conv);
            let sf = server_first("sts.us-west-2.amazonaws.com");
            let (r, e, out) = final_result(conv, &sf);
            assert_eq!(r, ResultCode::Ok, "{e:?}");
            let last = take(out);
            c_call!(docauth_aws_conversation_free(conv));

            let rust_creds = Credentials::new(
                "AKIAICGVLKOKZVY3X3DA",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                token,
            )
            .unwrap();
            let mut c = ClientConversation::with_nonce_and_time(
                rust_creds,
                NONCE,
                UNIX_EPOCH + Duration::from_secs(TIME as u64),
            );
            assert_eq!(f, c.client_first().unwrap());
            assert_eq!(last, c.client_final_reference(&sf).unwrap());
        }
    }

    #[test]
    fn credentials_arguments_are_checked() {
        let good = CString::new("AKID").unwrap();
        let bad_utf8 = b"AK\xffID\0";
        let empty = CString::new("").unwrap();
        let spaced = CString::new("tok en").unwrap();
        let sentinel = 0x99usize as *mut docauth_credentials;
        let cases: Vec<(
            *const c_char,
            *const c_char,
            *const c_char,
            ResultCode,
            &str,
        )> = vec![
            (
                ptr::null(),
                good.as_ptr(),
                ptr::null(),
                ResultCode::NullParameter,
                "`access_key_id` must not be NULL",
            ),
            (
                good.as_ptr(),
                ptr::null(),
                ptr::null(),
                ResultCode::NullParameter,
                "`secret_access_key` must not be NULL",
            ),
            (
                bad_utf8.as_ptr().cast(),
                good.as_ptr(),
                ptr::null(),
                ResultCode::InvalidUtf8,
                "`access_key_id` is not valid UTF-8",
            ),
            (
                good.as_ptr(),
                bad_utf8.as_ptr().cast(),
                ptr::null(),
                ResultCode::InvalidUtf8,
                "`secret_access_key` is not valid UTF-8",
            ),
            (
                good.as_ptr(),
                good.as_ptr(),
                bad_utf8.as_ptr().cast(),
                ResultCode::InvalidUtf8,
                "`session_token` is not valid UTF-8",
            ),
            (
                empty.as_ptr(),
                good.as_ptr(),
                ptr::null(),
                ResultCode::AwsInvalidCredentials,
                "access key id is empty",
            ),
            (
                good.as_ptr(),
                empty.as_ptr(),
                ptr::null(),
                ResultCode::AwsInvalidCredentials,
                "secret access key",
            ),
            (
                good.as_ptr(),
                good.as_ptr(),
                empty.as_ptr(),
                ResultCode::AwsInvalidCredentials,
                "session token",
            ),
            (
                good.as_ptr(),
                good.as_ptr(),
                spaced.as_ptr(),
                ResultCode::AwsInvalidCredentials,
                "session token",
            ),
        ];
        for (akid, secret, token, code, text) in cases {
            let mut out = sentinel;
            let (r, e) =
                outcome(|err| c_call!(docauth_credentials_new(akid, secret, token, &mut out, err)));
            assert_eq!(r, code, "{text}");
            let (ecode, message) = e.unwrap();
            assert_eq!(ecode, code);
            assert!(message.contains(text), "{message} !~ {text}");
            assert_eq!(out, sentinel);
        }
        // NULL out.
        let (r, _) = outcome(|err| {
            c_call!(docauth_credentials_new(
                good.as_ptr(),
                good.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                err,
            ))
        });
        assert_eq!(r, ResultCode::NullParameter);
        // NULL err is fine too.
        assert_eq!(
            c_call!(docauth_credentials_new(
                ptr::null(),
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut()
            )),
            ResultCode::NullParameter
        );
        c_call!(docauth_credentials_free(ptr::null_mut()));
        c_call!(docauth_aws_conversation_free(ptr::null_mut()));
    }

    #[test]
    fn conversation_constructors_check_their_arguments() {
        let creds = credentials(None);
        let sentinel = 0x77usize as *mut docauth_aws_conversation;
        let mut out = sentinel;
        let (r, _) =
            outcome(|err| c_call!(docauth_aws_conversation_new(ptr::null(), &mut out, err)));
        assert_eq!(r, ResultCode::NullParameter);
        assert_eq!(out, sentinel);
        let (r, _) =
            outcome(|err| c_call!(docauth_aws_conversation_new(creds, ptr::null_mut(), err)));
        assert_eq!(r, ResultCode::NullParameter);

        let cases: Vec<(*const u8, usize, i64, ResultCode, &str)> = vec![
            (
                ptr::null(),
                32,
                TIME,
                ResultCode::NullParameter,
                "client_nonce",
            ),
            (
                ptr::null(),
                0,
                TIME,
                ResultCode::NullParameter,
                "client_nonce",
            ),
            (
                NONCE.as_ptr(),
                31,
                TIME,
                ResultCode::InvalidArgument,
                "is 31",
            ),
            (NONCE.as_ptr(), 0, TIME, ResultCode::InvalidArgument, "is 0"),
            (
                NONCE.as_ptr(),
                32,
                -1,
                ResultCode::InvalidArgument,
                "unix_time_seconds",
            ),
            (
                NONCE.as_ptr(),
                32,
                253_402_300_800,
                ResultCode::InvalidArgument,
                "unix_time_seconds",
            ),
        ];
        for (nonce, len, time, code, text) in cases {
            let mut out = sentinel;
            let (r, e) = outcome(|err| {
                c_call!(docauth_aws_conversation_new_for_testing(
                    creds, nonce, len, time, &mut out, err
                ))
            });
            assert_eq!(r, code, "{text}");
            assert!(e.unwrap().1.contains(text));
            assert_eq!(out, sentinel);
        }
        // Real constructor: random nonces.
        let mut a = ptr::null_mut();
        let mut b = ptr::null_mut();
        assert_eq!(
            c_call!(docauth_aws_conversation_new(creds, &mut a, ptr::null_mut())),
            ResultCode::Ok
        );
        assert_eq!(
            c_call!(docauth_aws_conversation_new(creds, &mut b, ptr::null_mut())),
            ResultCode::Ok
        );
        c_call!(docauth_credentials_free(creds));
        assert_ne!(first(a), first(b));
        c_call!(docauth_aws_conversation_free(a));
        c_call!(docauth_aws_conversation_free(b));
    }

    #[test]
    fn every_validation_failure_through_the_c_abi() {
        let creds = credentials(Some("token"));
        let mut wrong_nonce = NONCE.to_vec();
        wrong_nonce[0] ^= 0xff;
        wrong_nonce.extend([9u8; 32]);
        let bin = |bytes: Vec<u8>| Binary {
            subtype: BinarySubtype::Generic,
            bytes,
        };
        let cases: Vec<(Vec<u8>, ResultCode, &str)> = vec![
            (
                b"junk".to_vec(),
                ResultCode::SaslMalformedServerFirst,
                "not the BSON document",
            ),
            (
                bson::to_vec(&doc! {"h": "sts.amazonaws.com"}).unwrap(),
                ResultCode::SaslMalformedServerFirst,
                "\"s\"",
            ),
            (
                bson::to_vec(&doc! {"s": bin(NONCE.to_vec()), "h": "sts.amazonaws.com"}).unwrap(),
                ResultCode::SaslServerNonceLength,
                "32 bytes long",
            ),
            (
                bson::to_vec(&doc! {"s": bin(wrong_nonce), "h": "sts.amazonaws.com"}).unwrap(),
                ResultCode::SaslServerNonceMismatch,
                "does not start with",
            ),
            (server_first(""), ResultCode::SaslHostLength, "0 bytes"),
            (
                server_first(&"a".repeat(256)),
                ResultCode::SaslHostLength,
                "256 bytes",
            ),
            (
                server_first("sts..amazonaws.com"),
                ResultCode::SaslHostEmptyLabel,
                "empty label",
            ),
            (
                server_first(".amazonaws.com"),
                ResultCode::SaslHostEdgeDot,
                "dot",
            ),
            (
                server_first("sts.amazonaws.com."),
                ResultCode::SaslHostEdgeDot,
                "dot",
            ),
            (
                server_first("sts.amazonaws.com\r\n"),
                ResultCode::SaslMalformedServerFirst,
                "byte 0x0d",
            ),
            (
                vec![0u8; 16 * 1024 * 1024],
                ResultCode::SaslMalformedServerFirst,
                "at most 1024",
            ),
        ];
        for (sf, code, text) in cases {
            let conv = conversation(creds);
            first(conv);
            let (r, e, _) = final_result(conv, &sf);
            assert_eq!(r, code, "{text}");
            let (ecode, message) = e.unwrap();
            assert_eq!(ecode, code);
            assert!(message.contains(text), "{message} !~ {text}");
            assert!(!message.contains("token"), "{message}");
            c_call!(docauth_aws_conversation_free(conv));
        }
        // NULL server_first with a length; NULL with length 0 is an empty (malformed) message.
        let conv = conversation(creds);
        first(conv);
        let mut out = ptr::null_mut();
        let (r, _) = outcome(|err| {
            c_call!(docauth_aws_conversation_client_final(
                conv,
                ptr::null(),
                5,
                &mut out,
                err
            ))
        });
        assert_eq!(r, ResultCode::NullParameter);
        let (r, _) = outcome(|err| {
            c_call!(docauth_aws_conversation_client_final(
                conv,
                ptr::null(),
                0,
                &mut out,
                err
            ))
        });
        assert_eq!(r, ResultCode::SaslMalformedServerFirst);
        assert!(out.is_null());
        c_call!(docauth_aws_conversation_free(conv));
        c_call!(docauth_credentials_free(creds));
    }

    #[test]
    fn state_errors_and_null_handles() {
        let creds = credentials(None);
        let conv = conversation(creds);
        let sf = server_first("sts.amazonaws.com");
        let (r, e, _) = final_result(conv, &sf);
        assert_eq!(r, ResultCode::InvalidState);
        assert!(e.unwrap().1.contains("before client_first"));
        first(conv);
        let mut out = ptr::null_mut();
        let (r, _) =
            outcome(|err| c_call!(docauth_aws_conversation_client_first(conv, &mut out, err)));
        assert_eq!(r, ResultCode::InvalidState);
        let (r, _, out) = final_result(conv, &sf);
        assert_eq!(r, ResultCode::Ok);
        take(out);
        let (r, _, _) = final_result(conv, &sf);
        assert_eq!(r, ResultCode::InvalidState);

        let mut out = ptr::null_mut();
        let (r, e) = outcome(|err| {
            c_call!(docauth_aws_conversation_client_first(
                ptr::null_mut(),
                &mut out,
                err
            ))
        });
        assert_eq!(r, ResultCode::NullParameter);
        assert!(e.unwrap().1.contains("`conversation`"));
        let (r, _) = outcome(|err| {
            c_call!(docauth_aws_conversation_client_first(
                conv,
                ptr::null_mut(),
                err
            ))
        });
        assert_eq!(r, ResultCode::NullParameter);
        let (r, _) = outcome(|err| {
            c_call!(docauth_aws_conversation_client_final(
                ptr::null_mut(),
                sf.as_ptr(),
                sf.len(),
                &mut out,
                err,
            ))
        });
        assert_eq!(r, ResultCode::NullParameter);
        let (r, _) = outcome(|err| {
            c_call!(docauth_aws_conversation_client_final(
                conv,
                sf.as_ptr(),
                sf.len(),
                ptr::null_mut(),
                err
            ))
        });
        assert_eq!(r, ResultCode::NullParameter);
        c_call!(docauth_aws_conversation_free(conv));
        c_call!(docauth_credentials_free(creds));
    }
}
