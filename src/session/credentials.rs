//! Where a session gets the AWS credentials it authenticates to the database with.
//! [`ProviderCredentials`] gets the db user's credentials from the [`CredentialsProvider`]
//! (STS AssumeRole, cached) and drops them when the database rejects them.
//! [`StaticCredentials`] (always the same credentials) is for tests and embedders that
//! manage credentials themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::aws::{Credentials, CredentialsProvider};
use crate::Result;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the session gets the AWS credentials it authenticates to the database with, for
/// the session's db user (an IAM role name or ARN), on behalf of the session's user (the
/// identity's user name: the STS role session name, in CloudTrail).
pub trait CredentialSource: Send + Sync {
    fn credentials<'a>(
        &'a self,
        db_user: &'a str,
        session_user: &'a str,
    ) -> BoxFuture<'a, Result<Credentials>>;
    /// The database rejected the MONGODB-AWS authentication made with the credentials of
    /// `db_user`: forget them so that the next session gets fresh ones.
    fn rejected(&self, _db_user: &str) {}
}

/// Always the same credentials.
#[derive(Clone, Debug)]
pub struct StaticCredentials(pub Credentials);

impl CredentialSource for StaticCredentials {
    fn credentials<'a>(
        &'a self,
        _db_user: &'a str,
        _session_user: &'a str,
    ) -> BoxFuture<'a, Result<Credentials>> {
        let c = self.0.clone();
        Box::pin(async move { Ok(c) })
    }
}

/// The db user's temporary credentials from the credentials provider (STS AssumeRole,
/// cached), with the session's user as the STS role session name.
#[derive(Clone, Debug)]
pub struct ProviderCredentials {
    provider: Arc<CredentialsProvider>,
}

impl ProviderCredentials {
    pub fn new(provider: Arc<CredentialsProvider>) -> Self {
        ProviderCredentials { provider }
    }
}

impl CredentialSource for ProviderCredentials {
    fn credentials<'a>(
        &'a self,
        db_user: &'a str,
        session_user: &'a str,
    ) -> BoxFuture<'a, Result<Credentials>> {
        Box::pin(
            self.provider
                .resolve_from_any_runtime(db_user, Some(session_user)),
        )
    }

    fn rejected(&self, db_user: &str) {
        self.provider.invalidate(db_user);
    }
}
