//! The web-identity step of the default credential chain when the configuration names an
//! STS endpoint (`sts_endpoint`).
//!
//! aws-config's `WebIdentityTokenCredentialsProvider` builds its own STS client from the
//! process environment and offers no endpoint override, so with it AssumeRoleWithWebIdentity
//! could only reach a configured endpoint through `AWS_ENDPOINT_URL_STS`. This step reads the
//! same environment variables (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`,
//! `AWS_ROLE_SESSION_NAME`) and makes the same call with the provider's STS client, which
//! carries the configured endpoint, region and timeouts. The token is read fresh on every call
//! (Kubernetes rotates the projected token file) and never logged.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, future, ProvideCredentials};

use crate::operator_file::{read_text_bounded, MAX_OPERATOR_FILE_BYTES};

const ENV_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
const ENV_ROLE_ARN: &str = "AWS_ROLE_ARN";
const ENV_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";

/// `AssumeRoleWithWebIdentity` through the provider's STS client (see the module docs).
#[derive(Debug)]
pub(crate) struct WebIdentityStep {
    sts: aws_sdk_sts::Client,
    /// The configured STS endpoint, for error messages.
    endpoint: String,
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl WebIdentityStep {
    pub(crate) fn new(sts: aws_sdk_sts::Client, endpoint: String) -> Self {
        WebIdentityStep { sts, endpoint }
    }

    async fn credentials(&self) -> provider::Result {
        let Some(token_file) = env_value(ENV_TOKEN_FILE) else {
            return Err(CredentialsError::not_loaded(format!(
                "${ENV_TOKEN_FILE} was not set"
            )));
        };
        let Some(role_arn) = env_value(ENV_ROLE_ARN) else {
            return Err(CredentialsError::not_loaded(format!(
                "${ENV_ROLE_ARN} must be set with ${ENV_TOKEN_FILE}"
            )));
        };
        let session_name = env_value(ENV_SESSION_NAME).unwrap_or_else(|| {
            let millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            format!("web-identity-token-{millis}")
        });
        let token =
            read_text_bounded(Path::new(&token_file), MAX_OPERATOR_FILE_BYTES).map_err(|e| {
                CredentialsError::provider_error(format!(
                    "the web identity token file {token_file} (${ENV_TOKEN_FILE}) {e}"
                ))
            })?;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&role_arn)
            .role_session_name(session_name)
            .web_identity_token(token.trim())
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "STS AssumeRoleWithWebIdentity of {role_arn} (${ENV_ROLE_ARN}) at {} (sts_endpoint) failed: {}",
                    self.endpoint,
                    super::sts_error::chain_text(&e)
                ))
            })?;
        let Some(c) = out.credentials() else {
            return Err(CredentialsError::unhandled(format!(
                "STS AssumeRoleWithWebIdentity of {role_arn} returned no credentials"
            )));
        };
        let expiry = SystemTime::try_from(*c.expiration()).map_err(|_| {
            CredentialsError::unhandled(format!(
                "STS AssumeRoleWithWebIdentity of {role_arn} returned an unusable expiration time"
            ))
        })?;
        Ok(aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expiry),
            "WebIdentityToken",
        ))
    }
}

impl ProvideCredentials for WebIdentityStep {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}
