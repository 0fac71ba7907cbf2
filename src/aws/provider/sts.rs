//! The provider's STS calls: GetCallerIdentity (the service's own account) and AssumeRole
//! (one hop of a role chain), with errors that name the caller, the role and the endpoint.

use std::time::{Instant, SystemTime};

use zeroize::Zeroizing;

use super::metrics::{Operation, Outcome};
use super::{lock, Inner};
use crate::aws::role_arn::RoleArn;
use crate::aws::sts_error;
use crate::aws::Credentials;
use crate::{Error, Result, ResultCode};

/// One AssumeRole step of a role chain.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Hop {
    pub(super) role: RoleArn,
    pub(super) external_id: Option<String>,
    pub(super) session_name: String,
}

/// Temporary credentials from one AssumeRole, with the session's ARN.
#[derive(Clone)]
pub(super) struct Assumed {
    pub(super) credentials: Credentials,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub(super) arn: String,
    pub(super) expiry: SystemTime,
}

/// The credentials a role hop is assumed with.
pub(super) enum Caller<'a> {
    /// The service's own credentials.
    Base(&'a aws_credential_types::Credentials),
    /// The previous hop.
    Assumed(&'a Assumed),
}

impl Inner {
    fn sts_client(&self, credentials: aws_credential_types::Credentials) -> aws_sdk_sts::Client {
        let config = aws_sdk_sts::config::Builder::from(&self.sdk_config)
            .credentials_provider(credentials)
            .build();
        aws_sdk_sts::Client::from_conf(config)
    }

    /// The account of the service's own identity (GetCallerIdentity), once per source.
    pub(super) async fn caller_account(&self, source: &str) -> Result<String> {
        let cell = lock(&self.accounts)
            .entry(source.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let base = self.source.credentials(&self.settings).await?;
            let (_, account) = self.caller_identity(&base).await?;
            Ok::<_, Error>(account)
        })
        .await
        .cloned()
    }

    /// GetCallerIdentity: (ARN, account).
    async fn caller_identity(
        &self,
        credentials: &aws_credential_types::Credentials,
    ) -> Result<(String, String)> {
        let started = Instant::now();
        let sent = self
            .sts_client(credentials.clone())
            .get_caller_identity()
            .send()
            .await;
        let took = started.elapsed();
        let out = sent
            .inspect(|_| {
                self.metrics
                    .call(Operation::GetCallerIdentity, Outcome::Ok, took)
            })
            .map_err(|e| {
                let error = sts_error::map(
                    &e,
                    &sts_error::Context {
                        operation: "GetCallerIdentity",
                        endpoint: self.settings.sts_endpoint_display(),
                        connect_timeout: self.settings.connect_timeout,
                        operation_timeout: self.settings.operation_timeout,
                        caller: self.source.description(),
                        role: None,
                        external_id: false,
                        secrets: secrets_of(credentials),
                    },
                );
                let outcome = Outcome::of_failure(&e, &error);
                self.metrics
                    .call(Operation::GetCallerIdentity, outcome, took);
                error
            })?;
        let arn = out.arn().unwrap_or_default().to_owned();
        match out.account() {
            Some(a) if !a.is_empty() => Ok((arn, a.to_owned())),
            _ => Err(Error::new(
                ResultCode::AwsStsError,
                "STS GetCallerIdentity returned no account; set `database.account_id`",
            )),
        }
    }

    pub(super) async fn assume_role(&self, caller: Caller<'_>, hop: &Hop) -> Result<Assumed> {
        let s = &self.settings;
        let credentials = match caller {
            Caller::Base(c) => c.clone(),
            Caller::Assumed(a) => a.credentials.as_aws().clone(),
        };
        let role = hop.role.to_string();
        // Role chaining: AWS caps a chained session at one hour.
        let duration = match caller {
            Caller::Assumed(_) => s.session_duration.min(3_600),
            Caller::Base(_) => s.session_duration,
        };
        let started = Instant::now();
        let result = self
            .sts_client(credentials.clone())
            .assume_role()
            .role_arn(&role)
            .role_session_name(&hop.session_name)
            .set_external_id(hop.external_id.clone())
            .duration_seconds(i32::try_from(duration).unwrap_or(3_600))
            .send()
            .await;
        let took = started.elapsed();
        let out = match result {
            Ok(out) => {
                self.metrics.call(Operation::AssumeRole, Outcome::Ok, took);
                out
            }
            Err(e) => {
                let caller_name = match caller {
                    Caller::Assumed(a) => a.arn.clone(),
                    Caller::Base(base) => match self.caller_identity(base).await {
                        Ok((arn, _)) => format!("{arn} (from {})", self.source.description()),
                        Err(_) => {
                            format!("the service's own identity ({})", self.source.description())
                        }
                    },
                };
                let error = sts_error::map(
                    &e,
                    &sts_error::Context {
                        operation: "AssumeRole",
                        endpoint: s.sts_endpoint_display(),
                        connect_timeout: s.connect_timeout,
                        operation_timeout: s.operation_timeout,
                        caller: caller_name,
                        role: Some(role),
                        external_id: hop.external_id.is_some(),
                        secrets: secrets_of(&credentials),
                    },
                );
                self.metrics
                    .call(Operation::AssumeRole, Outcome::of_failure(&e, &error), took);
                return Err(error);
            }
        };
        let arn = out
            .assumed_role_user()
            .map(|u| u.arn().to_owned())
            .unwrap_or_default();
        let Some(c) = out.credentials() else {
            return Err(Error::new(
                ResultCode::AwsStsError,
                format!("STS AssumeRole of {role} returned no credentials"),
            ));
        };
        let expiry = SystemTime::try_from(*c.expiration()).map_err(|_| {
            Error::new(
                ResultCode::AwsStsError,
                format!("STS AssumeRole of {role} returned an unusable expiration time"),
            )
        })?;
        let credentials = Credentials::with_expiry(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token()),
            Some(expiry),
        )?;
        Ok(Assumed {
            credentials,
            arn,
            expiry,
        })
    }
}

fn secrets_of(c: &aws_credential_types::Credentials) -> Vec<Zeroizing<String>> {
    let mut v = vec![Zeroizing::new(c.secret_access_key().to_owned())];
    if let Some(t) = c.session_token() {
        v.push(Zeroizing::new(t.to_owned()));
    }
    v
}
