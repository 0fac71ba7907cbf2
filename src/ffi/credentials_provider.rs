//! C ABI of the AWS credentials provider: the service's own credentials, then STS
//! AssumeRole into the IAM role that is the db user (see `crate::aws::provider`).

use std::ffi::c_char;
use std::sync::Arc;

use super::aws::docauth_credentials;
use super::boundary::{arg_opt_str, arg_ref, arg_str, free_boxed, new_from_str, Out};
use super::error::docauth_error;
use crate::aws::CredentialsProvider;
use crate::ResultCode;

/// A credentials provider: where the service's own AWS credentials come from, the STS/IMDS
/// endpoints and timeouts. Sessions take each database's AWS settings (`account_id`,
/// `region`, `assume_role_arn`, `external_id`) from its entry in the engine configuration;
/// the optional `database` block is only for `docauth_credentials_provider_resolve` used
/// without sessions (a session refuses a block that contradicts its database's entry). It
/// caches the temporary credentials of each (source, role chain, session name) until five
/// minutes before they expire.
///
/// Ownership: created by `docauth_credentials_provider_new`, owned by the caller, freed
/// with `docauth_credentials_provider_free`.
/// Threads: shareable. `docauth_credentials_provider_resolve` and
/// `docauth_credentials_provider_invalidate` may be called from several threads at once on
/// the same provider; concurrent resolutions of the same db user wait for one STS call.
/// Free it once, when no call on it is running. The blocking calls run on a small
/// library-owned thread pool; do not call them from a callback the library is running.
/// Sessions started with it (`docauth_session_start`) keep their own reference: the
/// provider may be freed while they run.
pub struct docauth_credentials_provider {
    pub(crate) inner: Arc<CredentialsProvider>,
}

/// Creates a credentials provider from a JSON configuration, for example:
///
/// ```json
/// {"source": {"type": "default"},            // or {"type": "static", "access_key_id": ..,
///                                            //  "secret_access_key": .., "session_token": ..}
///                                            // or {"type": "profile", "name": ".."}
///  "region": "us-east-1",
///  "sts_endpoint": "https://sts.us-east-1.amazonaws.com",  // else AWS_ENDPOINT_URL_STS;
///                                            // also used by the default chain's web
///                                            // identity source (AssumeRoleWithWebIdentity)
///  "imds_endpoint": "http://169.254.169.254",
///  "connect_timeout_ms": 3000, "operation_timeout_ms": 10000, "imds_timeout_ms": 1000,
///  "session_duration_seconds": 3600}
/// ```
///
/// Every field is optional; unknown fields are refused. No network call is made.
/// `"database": {"account_id": .., "region": .., "assume_role_arn": .., "external_id": ..}`
/// gives `docauth_credentials_provider_resolve` a database's AWS settings when no session is
/// involved; sessions take them from the engine configuration's `databases[].aws` and refuse
/// a block that contradicts it (see the README, "One source of truth for a database").
/// Errors: NULL_PARAMETER, INVALID_UTF8, INVALID_CONFIG (the message names the field),
/// AWS_INVALID_ROLE_ARN (`assume_role_arn`), AWS_INVALID_CREDENTIALS (empty static keys).
/// A static secret key in `config_json` is copied into zeroizing storage.
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string; `out` and `err` are NULL or
/// writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_provider_new(
    config_json: *const c_char,
    out: *mut *mut docauth_credentials_provider,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_credentials_provider_new", {
        // SAFETY: per this function's contract, NULL or a NUL-terminated string and writable
        // storage for one pointer.
        unsafe {
            new_from_str(config_json, "config_json", out, |json| {
                Ok(docauth_credentials_provider {
                    inner: Arc::new(CredentialsProvider::from_json_blocking(json)?),
                })
            })
        }
    })
}

/// Resolves `db_user` — an IAM role name (`teleport-docdb-user`) or a full role ARN — to
/// temporary credentials of that role: the service's own credentials assume
/// `assume_role_arn` first when the database has one (with `external_id`), then the db
/// user's role. `session_user` (NULL allowed) is the identity's user name; it becomes the
/// STS role session name (sanitised to 2–64 characters of `[A-Za-z0-9+=,.@_-]`).
///
/// Blocks the calling thread until the credentials are cached or STS answers (bounded by
/// the configured timeouts). On success `*out` receives credentials the caller frees with
/// `docauth_credentials_free`; they may be passed to the MONGODB-AWS conversation, and
/// `docauth_credentials_access_key_id` / `docauth_credentials_expiry` tell which temporary
/// key (`ASIA…`) was issued and until when. When the renewal in the five minutes before
/// cached credentials expire finds STS unreachable (connection refused, timeout), the cached
/// credentials are returned as long as they are still valid for at least a minute, and STS is
/// tried again at most every 30 seconds; after that the AWS_STS_UNREACHABLE error is
/// returned. Any other renewal failure (e.g. AccessDenied) is returned at once.
/// Errors: NULL_PARAMETER, INVALID_UTF8, AWS_INVALID_ROLE_ARN, AWS_NO_CREDENTIALS (lists
/// the sources tried), AWS_ASSUME_ROLE_DENIED (names both ARNs and the trust policy fix),
/// AWS_STS_UNREACHABLE (endpoint and timeout), AWS_INVALID_TOKEN, AWS_STS_ERROR,
/// AWS_CREDENTIALS_SOURCE_FAILED, INVALID_STATE (called from inside an async runtime).
///
/// # Safety
/// `provider` is NULL or a live provider; `db_user` and `session_user` are NULL or
/// NUL-terminated strings; `out` and `err` are NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_provider_resolve(
    provider: *const docauth_credentials_provider,
    db_user: *const c_char,
    session_user: *const c_char,
    out: *mut *mut docauth_credentials,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_credentials_provider_resolve", {
        // SAFETY: per this function's contract, NULL or a live provider.
        let provider = unsafe { arg_ref(provider, "provider") }?;
        // SAFETY: per this function's contract, NULL or NUL-terminated strings.
        let db_user = unsafe { arg_str(db_user, "db_user") }?;
        // SAFETY: as above; NULL means no session user.
        let session_user = unsafe { arg_opt_str(session_user, "session_user") }?;
        // SAFETY: per this function's contract, NULL or writable storage for one pointer.
        let out = unsafe { Out::new(out, "out") }?;
        let credentials = provider.inner.resolve_blocking(db_user, session_user)?;
        out.set_boxed(docauth_credentials::new(credentials));
        Ok(())
    })
}

/// Drops the cached credentials of `db_user` (role name or ARN), e.g. after DocumentDB
/// rejected an authentication made with them; the next resolve calls STS again. The
/// shared `assume_role_arn` hop stays cached. Unknown db users are not an error.
/// Errors: NULL_PARAMETER, INVALID_UTF8.
///
/// # Safety
/// `provider` is NULL or a live provider; `db_user` is NULL or a NUL-terminated
/// string; `err` is NULL or writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_provider_invalidate(
    provider: *const docauth_credentials_provider,
    db_user: *const c_char,
    err: *mut *mut docauth_error,
) -> ResultCode {
    ffi_boundary!(err, "docauth_credentials_provider_invalidate", {
        // SAFETY: per this function's contract, NULL or a live provider.
        let provider = unsafe { arg_ref(provider, "provider") }?;
        // SAFETY: per this function's contract, NULL or a NUL-terminated string.
        let db_user = unsafe { arg_str(db_user, "db_user") }?;
        provider.inner.invalidate(db_user);
        Ok(())
    })
}

/// Frees a provider and its cached credentials (zeroized; once the sessions started with it,
/// which keep their own reference, have ended). `NULL` is a no-op. Must not be called
/// twice, nor while another thread is using the provider. A panic while freeing (a bug) is
/// contained: the call returns, the provider may leak.
///
/// # Safety
/// `provider` is NULL or a provider from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn docauth_credentials_provider_free(
    provider: *mut docauth_credentials_provider,
) {
    ffi_boundary!(default: (), "docauth_credentials_provider_free", {
        // SAFETY: the caller passes NULL or a provider from this library, not freed before.
        unsafe { free_boxed(provider) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{docauth_error_code, docauth_error_free, docauth_error_message};
    use std::ffi::CStr;
    use std::ptr;

    fn message(err: *mut docauth_error) -> String {
        let message = c_call!(docauth_error_message(err));
        // SAFETY: a live error's message is a NUL-terminated string.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn bad_config_and_null_arguments_are_reported() {
        let mut p: *mut docauth_credentials_provider = ptr::null_mut();
        let mut err: *mut docauth_error = ptr::null_mut();
        let r = c_call!(docauth_credentials_provider_new(
            c"{\"regoin\": \"x\"}".as_ptr(),
            &mut p,
            &mut err
        ));
        assert_eq!(r, ResultCode::InvalidConfig);
        assert!(p.is_null());
        assert!(
            message(err).contains("unknown field `regoin`"),
            "{}",
            message(err)
        );
        assert_eq!(c_call!(docauth_error_code(err)), ResultCode::InvalidConfig);
        c_call!(docauth_error_free(err));

        let r = c_call!(docauth_credentials_provider_new(
            ptr::null(),
            &mut p,
            ptr::null_mut()
        ));
        assert_eq!(r, ResultCode::NullParameter);

        let config = c"{\"source\": {\"type\": \"static\", \"access_key_id\": \"AKID\", \"secret_access_key\": \"s3cr3t-value\"}, \"database\": {\"account_id\": \"123456789012\"}}";
        assert_eq!(
            c_call!(docauth_credentials_provider_new(
                config.as_ptr(),
                &mut p,
                ptr::null_mut()
            )),
            ResultCode::Ok
        );
        let mut c: *mut docauth_credentials = ptr::null_mut();
        let mut err: *mut docauth_error = ptr::null_mut();
        let r = c_call!(docauth_credentials_provider_resolve(
            p,
            ptr::null(),
            ptr::null(),
            &mut c,
            &mut err
        ));
        assert_eq!(r, ResultCode::NullParameter);
        assert!(message(err).contains("db_user"));
        c_call!(docauth_error_free(err));
        let mut err: *mut docauth_error = ptr::null_mut();
        let r = c_call!(docauth_credentials_provider_resolve(
            p,
            c"arn:aws:iam::123456789012:user/alice".as_ptr(),
            ptr::null(),
            &mut c,
            &mut err,
        ));
        assert_eq!(r, ResultCode::AwsInvalidRoleArn);
        assert!(c.is_null());
        assert!(message(err).contains("not a `role`"), "{}", message(err));
        assert!(!message(err).contains("s3cr3t-value"));
        c_call!(docauth_error_free(err));
        let bad = b"ab\xff\0";
        let r = c_call!(docauth_credentials_provider_invalidate(
            p,
            bad.as_ptr().cast(),
            ptr::null_mut()
        ));
        assert_eq!(r, ResultCode::InvalidUtf8);
        assert_eq!(
            c_call!(docauth_credentials_provider_invalidate(
                p,
                c"x".as_ptr(),
                ptr::null_mut()
            )),
            ResultCode::Ok
        );
        c_call!(docauth_credentials_provider_free(p));
        c_call!(docauth_credentials_provider_free(ptr::null_mut()));
        c_call!(docauth_credentials_free(ptr::null_mut()));
    }

    use crate::ffi::docauth_credentials_free;
}
