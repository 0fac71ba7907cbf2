//! AWS credentials as the signer uses them.

use std::fmt;
use std::time::SystemTime;

use crate::{Error, ResultCode};

/// An access key id, a secret access key and, for temporary credentials, a session token.
///
/// The secret and the token live in zeroizing storage (`aws_credential_types::Credentials`
/// keeps them in `Zeroizing` strings) and `Debug` never prints them.
#[derive(Clone)]
pub struct Credentials {
    inner: aws_credential_types::Credentials,
}

impl Credentials {
    /// Static credentials. An empty access key id or secret is refused: it can only produce
    /// a signature that every verifier rejects, so say so now rather than at the server.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Result<Self, Error> {
        Self::with_expiry(access_key_id, secret_access_key, session_token, None)
    }

    /// As [`Credentials::new`], for temporary credentials that expire at `expires_after`.
    pub fn with_expiry(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
        expires_after: Option<SystemTime>,
    ) -> Result<Self, Error> {
        if access_key_id.trim().is_empty() {
            return Err(Error::new(
                ResultCode::AwsInvalidCredentials,
                "the AWS access key id is empty",
            ));
        }
        if secret_access_key.is_empty() {
            return Err(Error::new(
                ResultCode::AwsInvalidCredentials,
                format!("the AWS secret access key for access key id {access_key_id} is empty"),
            ));
        }
        if session_token.is_some_and(str::is_empty) {
            return Err(Error::new(
                ResultCode::AwsInvalidCredentials,
                format!("the AWS session token for access key id {access_key_id} is empty; pass none for long-term credentials"),
            ));
        }
        Ok(Credentials {
            inner: aws_credential_types::Credentials::new(
                access_key_id,
                secret_access_key,
                session_token.map(str::to_owned),
                expires_after,
                "docauth",
            ),
        })
    }

    pub fn access_key_id(&self) -> &str {
        self.inner.access_key_id()
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        self.inner.secret_access_key()
    }

    pub fn session_token(&self) -> Option<&str> {
        self.inner.session_token()
    }

    pub fn expiry(&self) -> Option<SystemTime> {
        self.inner.expiry()
    }

    /// The same credentials in the form the `aws-sigv4` crate signs with.
    pub(crate) fn as_aws(&self) -> &aws_credential_types::Credentials {
        &self.inner
    }
}

impl From<aws_credential_types::Credentials> for Credentials {
    fn from(inner: aws_credential_types::Credentials) -> Self {
        Credentials { inner }
    }
}

/// The same credentials for an AWS SDK client (e.g. to call STS with resolved credentials).
impl From<&Credentials> for aws_credential_types::Credentials {
    fn from(c: &Credentials) -> Self {
        c.inner.clone()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id())
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token().map(|_| "** redacted **"),
            )
            .field("expiry", &self.expiry())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_secret() {
        let c = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG",
            Some("FwoGZXIvYXdzTOKEN"),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("FwoGZXIvYXdzTOKEN"), "{shown}");
    }

    #[test]
    fn empty_parts_are_refused_with_their_name() {
        let e = Credentials::new("", "s", None).unwrap_err();
        assert_eq!(e.code(), ResultCode::AwsInvalidCredentials);
        assert!(e.message().contains("access key id is empty"));
        let e = Credentials::new("AKID", "", None).unwrap_err();
        assert!(e.message().contains("secret access key"));
        let e = Credentials::new("AKID", "s", Some("")).unwrap_err();
        assert!(e.message().contains("session token"));
    }
}
