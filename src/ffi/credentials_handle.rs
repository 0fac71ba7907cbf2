//! The AWS credentials handle shared with the MONGODB-AWS signer.
//!
//! Minimal definition for the credentials provider; the signer's `src/ffi/aws.rs` owns the
//! full type (`docauth_credentials_new`, use by conversations) and replaces this file.

use crate::aws::Credentials;

/// AWS credentials: an access key id, a secret access key and, when temporary, a session
/// token and an expiry.
///
/// Ownership: owned by the caller, freed with `docauth_credentials_free`.
/// Threads: immutable; may be used from several threads at once, freed once.
/// The secret and the token are zeroized when the handle is freed.
pub struct docauth_credentials {
    pub(crate) credentials: Credentials,
}

impl docauth_credentials {
    pub(crate) fn new(credentials: Credentials) -> Self {
        docauth_credentials { credentials }
    }
}

/// Frees credentials. `NULL` is a no-op. Must not be called twice on the same pointer.
#[no_mangle]
pub extern "C" fn docauth_credentials_free(credentials: *mut docauth_credentials) {
    // SAFETY: the caller passes NULL or credentials from this library, not freed before.
    unsafe { super::boundary::free_boxed(credentials) }
}
