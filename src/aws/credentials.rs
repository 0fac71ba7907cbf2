//! AWS credentials as the signer uses them, and the cache of SigV4 signing keys derived from
//! them.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::{Error, ResultCode};

/// How many (date, region) signing keys one set of credentials keeps. A proxy signs for a
/// handful of regions at most; the oldest entry goes when a new one is needed.
const MAX_CACHED_KEYS: usize = 8;

/// An access key id, a secret access key and, for temporary credentials, a session token.
///
/// The secret and the token live in zeroizing storage (`aws_credential_types::Credentials`
/// keeps them in `Zeroizing` strings) and `Debug` never prints them.
///
/// Cloning is cheap and clones share one cache of SigV4 signing keys (one per signing date
/// and region, derived with `aws_sigv4::sign::v4::generate_signing_key`, kept in zeroizing
/// storage and wiped when the last clone is dropped). The cache is read under a shared lock,
/// so many threads signing with the same credentials do not wait for each other.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    aws: aws_credential_types::Credentials,
    /// Why these credentials cannot be put in SigV4 headers, found once when they were built
    /// (only `From<aws_credential_types::Credentials>` can produce such credentials).
    unusable: Option<Error>,
    signing_keys: RwLock<Vec<CachedKey>>,
}

struct CachedKey {
    /// `YYYYMMDD`, the date part of `X-Amz-Date`.
    date: [u8; 8],
    region: Box<str>,
    key: Zeroizing<[u8; 32]>,
}

/// The first byte of `value` that cannot appear in a signed header value, if any.
fn header_unsafe_byte(value: &str) -> Option<usize> {
    value.bytes().position(|b| !b.is_ascii_graphic())
}

fn check_header_safe(access_key_id: &str, session_token: Option<&str>) -> Result<(), Error> {
    if let Some(offset) = header_unsafe_byte(access_key_id) {
        return Err(Error::new(
            ResultCode::AwsInvalidCredentials,
            format!("the AWS access key id contains a space, control or non-ASCII character at byte offset {offset}; it is sent in the Authorization header"),
        ));
    }
    if let Some(offset) = session_token.and_then(header_unsafe_byte) {
        return Err(Error::new(
            ResultCode::AwsInvalidCredentials,
            format!("the AWS session token for access key id {access_key_id} contains a space, control or non-ASCII character at byte offset {offset}; it is sent in the X-Amz-Security-Token header"),
        ));
    }
    Ok(())
}

/// The checks every credentials pass, whether built by [`Credentials::new`] or converted from
/// the SDK type.
fn validate(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Result<(), Error> {
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
    check_header_safe(access_key_id, session_token)
}

impl Credentials {
    /// Static credentials. An empty access key id or secret is refused: it can only produce
    /// a signature that every verifier rejects, so say so now rather than at the server.
    /// So is an access key id or session token with a character that cannot be sent in an
    /// HTTP header verbatim (space, control or non-ASCII).
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
        validate(access_key_id, secret_access_key, session_token)?;
        Ok(Self::from_parts(
            aws_credential_types::Credentials::new(
                access_key_id,
                secret_access_key,
                session_token.map(str::to_owned),
                expires_after,
                "docauth",
            ),
            None,
        ))
    }

    fn from_parts(aws: aws_credential_types::Credentials, unusable: Option<Error>) -> Self {
        Credentials {
            inner: Arc::new(Inner {
                aws,
                unusable,
                signing_keys: RwLock::new(Vec::new()),
            }),
        }
    }

    pub fn access_key_id(&self) -> &str {
        self.inner.aws.access_key_id()
    }

    #[allow(dead_code)]
    pub(crate) fn secret_access_key(&self) -> &str {
        self.inner.aws.secret_access_key()
    }

    pub fn session_token(&self) -> Option<&str> {
        self.inner.aws.session_token()
    }

    pub fn expiry(&self) -> Option<SystemTime> {
        self.inner.aws.expiry()
    }

    /// The same credentials in the form the `aws-sigv4` crate signs with.
    pub(crate) fn as_aws(&self) -> &aws_credential_types::Credentials {
        &self.inner.aws
    }

    /// `Err` when these credentials cannot be signed into headers (see [`Credentials::new`]).
    pub(crate) fn check_usable(&self) -> Result<(), Error> {
        match &self.inner.unusable {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }

    /// The SigV4 signing key for `date` (`YYYYMMDD`, the date of `time`) and `region`,
    /// service `sts`: from the shared cache, or derived with aws-sigv4 and cached.
    pub(crate) fn sts_signing_key(
        &self,
        date: &[u8; 8],
        time: SystemTime,
        region: &str,
    ) -> Zeroizing<[u8; 32]> {
        let mut key = Zeroizing::new([0u8; 32]);
        {
            let cache = self
                .inner
                .signing_keys
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(hit) = cache
                .iter()
                .find(|k| &k.date == date && &*k.region == region)
            {
                key.copy_from_slice(&hit.key[..]);
                return key;
            }
        }
        let derived = aws_sigv4::sign::v4::generate_signing_key(
            self.inner.aws.secret_access_key(),
            time,
            region,
            "sts",
        );
        key.copy_from_slice(derived.as_ref());
        drop(derived);
        let mut cache = self
            .inner
            .signing_keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !cache
            .iter()
            .any(|k| &k.date == date && &*k.region == region)
        {
            if cache.len() >= MAX_CACHED_KEYS {
                cache.remove(0);
            }
            cache.push(CachedKey {
                date: *date,
                region: region.into(),
                key: key.clone(),
            });
        }
        key
    }

    #[cfg(test)]
    pub(crate) fn cached_key_count(&self) -> usize {
        self.inner.signing_keys.read().map(|c| c.len()).unwrap_or(0)
    }
}

impl From<aws_credential_types::Credentials> for Credentials {
    fn from(aws: aws_credential_types::Credentials) -> Self {
        let unusable = validate(
            aws.access_key_id(),
            aws.secret_access_key(),
            aws.session_token(),
        )
        .err();
        Credentials::from_parts(aws, unusable)
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

    #[test]
    fn header_unsafe_characters_are_refused_without_echoing_the_token() {
        let e = Credentials::new("AKID EXAMPLE", "s", None).unwrap_err();
        assert_eq!(e.code(), ResultCode::AwsInvalidCredentials);
        assert!(e.message().contains("offset 4"), "{}", e.message());
        let e = Credentials::new("AKID", "s", Some("tok\nSECRETPART")).unwrap_err();
        assert_eq!(e.code(), ResultCode::AwsInvalidCredentials);
        assert!(!e.message().contains("SECRETPART"), "{}", e.message());
        // The secret is only hashed: any non-empty string is fine.
        Credentials::new("AKID", "sé cret\t", None).unwrap();
        // Credentials converted from the SDK type are checked too, when used.
        let c = Credentials::from(aws_credential_types::Credentials::new(
            "AKID",
            "s",
            Some("a b".into()),
            None,
            "test",
        ));
        assert_eq!(
            c.check_usable().unwrap_err().code(),
            ResultCode::AwsInvalidCredentials
        );
        let c = Credentials::from(aws_credential_types::Credentials::new(
            "AKID", "", None, None, "test",
        ));
        assert!(c
            .check_usable()
            .unwrap_err()
            .message()
            .contains("secret access key"));
        let c = Credentials::from(aws_credential_types::Credentials::new(
            "AKID", "s", None, None, "test",
        ));
        c.check_usable().unwrap();
    }

    #[test]
    fn signing_keys_are_cached_per_date_and_region_and_shared_by_clones() {
        let c = Credentials::new("AKID", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None).unwrap();
        let clone = c.clone();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let k1 = c.sts_signing_key(b"20150830", t, "us-east-1");
        assert_eq!(c.cached_key_count(), 1);
        let k2 = clone.sts_signing_key(b"20150830", t, "us-east-1");
        assert_eq!(*k1, *k2);
        assert_eq!(clone.cached_key_count(), 1);
        let k3 = clone.sts_signing_key(b"20150830", t, "eu-west-1");
        assert_ne!(*k1, *k3);
        assert_eq!(c.cached_key_count(), 2);
        let expected =
            aws_sigv4::sign::v4::generate_signing_key(c.secret_access_key(), t, "eu-west-1", "sts");
        assert_eq!(&k3[..], expected.as_ref());
        for day in 0..20u64 {
            let t = t + std::time::Duration::from_secs(86_400 * day);
            let date = time::OffsetDateTime::from(t);
            let date = format!(
                "{:04}{:02}{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            );
            let date: [u8; 8] = date.as_bytes().try_into().unwrap();
            c.sts_signing_key(&date, t, "us-east-1");
        }
        assert_eq!(c.cached_key_count(), MAX_CACHED_KEYS);
    }
}
