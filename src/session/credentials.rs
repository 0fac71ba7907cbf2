//! Where a session gets the AWS credentials it authenticates to the database with.
//! [`ProviderCredentials`] gets the db user's credentials from the [`CredentialsProvider`]
//! (STS AssumeRole, cached) and drops them when the database rejects them.
//! [`StaticCredentials`] (always the same credentials) is for tests and embedders that
//! manage credentials themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::aws::{Credentials, CredentialsProvider, DatabaseAws, DatabaseSettings};
use crate::policy::PolicyEngine;
use crate::{Error, Result, ResultCode};

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
/// cached), with the session's user as the STS role session name, and the AWS settings of
/// the session's database (`account_id`, `region`, `assume_role_arn`, `external_id`) from
/// its entry in the engine configuration: the one place they are written.
#[derive(Clone, Debug)]
pub struct ProviderCredentials {
    provider: Arc<CredentialsProvider>,
    database: DatabaseSettings,
}

impl ProviderCredentials {
    /// For a session of `database` (a name in `engine`'s configuration). Errors
    /// (INVALID_CONFIG) when the engine does not know the database, or when the provider's
    /// own `database` block contradicts the engine's entry (the message names both values);
    /// AWS_INVALID_ROLE_ARN for an unusable `aws.assume_role_arn`.
    pub fn new(
        provider: Arc<CredentialsProvider>,
        engine: &PolicyEngine,
        database: &str,
    ) -> Result<Self> {
        let entry = engine.database(database).ok_or_else(|| {
            Error::new(
                ResultCode::InvalidConfig,
                format!(
                    "session parameters: database {database:?} is not in the policy engine's configuration (its `databases`)"
                ),
            )
        })?;
        let database =
            provider.database_settings(database, &DatabaseAws::from_metadata(&entry.aws))?;
        Ok(ProviderCredentials { provider, database })
    }
}

impl CredentialSource for ProviderCredentials {
    fn credentials<'a>(
        &'a self,
        db_user: &'a str,
        session_user: &'a str,
    ) -> BoxFuture<'a, Result<Credentials>> {
        Box::pin(self.provider.resolve_from_any_runtime(
            &self.database,
            db_user,
            Some(session_user),
        ))
    }

    fn rejected(&self, db_user: &str) {
        self.provider.invalidate(db_user);
    }
}
