//! The service's own credentials: aws-config's default chain, static keys, or a named
//! profile, and the errors that say which sources were tried.

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::region::Region;
use aws_types::SdkConfig;

use super::settings::{invalid_config, Checked, ProviderSettings, SecretString, SourceConfig};
use crate::aws::sts_error;
use crate::aws::web_identity::WebIdentityStep;
use crate::aws::Credentials;
use crate::{Error, Result, ResultCode};

/// Where the service's own credentials come from.
pub(super) enum Source {
    /// aws-config's default chain, or the same chain with our web-identity step when
    /// `sts_endpoint` is configured.
    Default(SharedCredentialsProvider),
    Static(aws_credential_types::Credentials),
    Profile {
        name: String,
        provider: aws_config::profile::ProfileFileCredentialsProvider,
    },
}

impl Source {
    /// The source `settings` configure. No network call is made.
    pub(super) async fn new(
        settings: &ProviderSettings,
        checked: &Checked,
        provider_config: &ProviderConfig,
        sdk_config: &SdkConfig,
    ) -> Result<Source> {
        Ok(match &settings.source {
            SourceConfig::Default => {
                Source::Default(default_chain(checked, provider_config, sdk_config).await?)
            }
            SourceConfig::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                // Same checks as the signer's static credentials.
                let checked = Credentials::new(
                    access_key_id,
                    secret_access_key.expose(),
                    session_token.as_ref().map(SecretString::expose),
                )?;
                Source::Static(checked.as_aws().clone())
            }
            SourceConfig::Profile { name } => {
                if name.trim().is_empty() {
                    return Err(invalid_config("`source.name` (the profile) is empty"));
                }
                Source::Profile {
                    name: name.clone(),
                    provider: aws_config::profile::ProfileFileCredentialsProvider::builder()
                        .configure(provider_config)
                        .profile_name(name)
                        .build(),
                }
            }
        })
    }

    /// What the operator configured, for messages.
    pub(super) fn description(&self) -> String {
        match self {
            Source::Default(_) => "the default credential chain".to_owned(),
            Source::Static(c) => {
                format!("static credentials (access key id {})", c.access_key_id())
            }
            Source::Profile { name, .. } => format!("profile `{name}`"),
        }
    }

    /// What the cache keys on for the service's own credentials. Environment credentials
    /// are read fresh on every call: a changed key is a different source.
    pub(super) fn key(&self) -> String {
        match self {
            Source::Static(c) => format!("static:{}", c.access_key_id()),
            Source::Profile { name, .. } => format!("profile:{name}"),
            Source::Default(_) => match std::env::var("AWS_ACCESS_KEY_ID") {
                Ok(k) if !k.trim().is_empty() => format!("env:{k}"),
                _ => "default-chain".to_owned(),
            },
        }
    }

    /// The service's own credentials, read fresh from the source.
    pub(super) async fn credentials(
        &self,
        s: &Checked,
    ) -> Result<aws_credential_types::Credentials> {
        let provider: &dyn ProvideCredentials = match self {
            Source::Static(c) => return Ok(c.clone()),
            Source::Default(chain) => chain,
            Source::Profile { provider, .. } => provider,
        };
        // Every source has its own timeouts; this bound only guarantees no call hangs.
        let budget = s.operation_timeout * 2 + s.imds_timeout * 6 + s.connect_timeout;
        match tokio::time::timeout(budget, provider.provide_credentials()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(self.error(&e, s)),
            Err(_) => Err(Error::new(
                ResultCode::AwsCredentialsSourceFailed,
                format!(
                    "{} did not produce credentials within {} ms",
                    self.description(),
                    budget.as_millis()
                ),
            )),
        }
    }

    /// An error of the service's own credentials source, saying what was tried.
    fn error(&self, err: &CredentialsError, settings: &Checked) -> Error {
        let detail = sts_error::chain_text(err);
        match self {
            Source::Static(_) => Error::new(ResultCode::AwsCredentialsSourceFailed, detail),
            Source::Profile { name, .. } => {
                let code = if matches!(err, CredentialsError::CredentialsNotLoaded(_)) {
                    ResultCode::AwsNoCredentials
                } else {
                    ResultCode::AwsCredentialsSourceFailed
                };
                Error::new(
                    code,
                    format!(
                        "no usable AWS credentials in profile `{name}` (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE): {detail}"
                    ),
                )
            }
            Source::Default(_) => default_chain_error(err, &detail, settings),
        }
    }
}

/// aws-config's default chain: environment, shared profile, web identity token, ECS
/// container, EC2 IMDSv2 (with the configured IMDS endpoint and timeouts).
async fn default_chain(
    settings: &Checked,
    provider_config: &ProviderConfig,
    sdk_config: &SdkConfig,
) -> Result<SharedCredentialsProvider> {
    let imds_timeout = settings.imds_timeout;
    let mut imds = aws_config::imds::Client::builder()
        .configure(provider_config)
        .connect_timeout(imds_timeout)
        .read_timeout(imds_timeout)
        .operation_attempt_timeout(imds_timeout)
        .operation_timeout(imds_timeout * 2)
        .max_attempts(2);
    if let Some(e) = &settings.imds_endpoint {
        imds = imds
            .endpoint(e)
            .map_err(|err| invalid_config(format!("`imds_endpoint` `{e}` is unusable: {err}")))?;
    }
    let imds = imds.build();
    Ok(match &settings.sts_endpoint {
        // aws-config's web-identity provider has no endpoint override: the same chain, in the
        // same order, with a web-identity step that uses our STS client (configured endpoint,
        // region, timeouts).
        Some(e) => SharedCredentialsProvider::new(
            CredentialsProviderChain::first_try(
                "Environment",
                EnvironmentVariableCredentialsProvider::new(),
            )
            .or_else(
                "Profile",
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .configure(provider_config)
                    .build(),
            )
            .or_else(
                "WebIdentityToken",
                WebIdentityStep::new(aws_sdk_sts::Client::new(sdk_config), e.clone()),
            )
            .or_else(
                "EcsContainer",
                aws_config::ecs::EcsCredentialsProvider::builder()
                    .configure(provider_config)
                    .build(),
            )
            .or_else(
                "Ec2InstanceMetadata",
                aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(provider_config)
                    .imds_client(imds)
                    .build(),
            ),
        ),
        None => SharedCredentialsProvider::new(
            DefaultCredentialsChain::builder()
                .configure(provider_config.clone())
                .region(Region::new(settings.region.clone()))
                .imds_client(imds)
                .build()
                .await,
        ),
    })
}

/// aws-config's chain error, rewritten to list every source tried and why it failed.
fn default_chain_error(err: &CredentialsError, detail: &str, settings: &Checked) -> Error {
    const ORDER: [&str; 5] = [
        "Environment",
        "Profile",
        "WebIdentityToken",
        "EcsContainer",
        "Ec2InstanceMetadata",
    ];
    let mut attempts: Vec<(String, String)> = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(chain) =
            s.downcast_ref::<aws_config::meta::ProviderChainError<CredentialsError>>()
        {
            for a in chain.attempts() {
                let text = sts_error::chain_text(a.error());
                attempts.push((a.name().to_owned(), text));
            }
            break;
        }
        source = s.source();
    }
    let imds_failed = !attempts.is_empty() || mentions_imds(err);
    if attempts.is_empty() {
        if !imds_failed {
            // A source was configured but failed (bad profile, web identity refused…).
            return Error::new(
                ResultCode::AwsCredentialsSourceFailed,
                format!(
                    "the default credential chain found a configured source that failed: {detail}"
                ),
            );
        }
        // The chain stopped at IMDS with an error: every earlier source had nothing.
        for name in &ORDER[..4] {
            attempts.push(((*name).to_owned(), "not configured".to_owned()));
        }
        attempts.push((ORDER[4].to_owned(), detail.to_owned()));
    }
    let imds_endpoint = settings
        .imds_endpoint
        .clone()
        .or_else(|| std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT").ok())
        .unwrap_or_else(|| "http://169.254.169.254".to_owned());
    let mut message = String::from(
            "no AWS credentials found (NoCredentialProviders: no valid providers in chain). Sources tried, in order:",
        );
    for (i, (name, why)) in attempts.iter().enumerate() {
        let shown = if name == "Ec2InstanceMetadata" {
            format!("{name} at {imds_endpoint}")
        } else {
            name.clone()
        };
        message.push_str(&format!("\n  {}. {shown}: {why}", i + 1));
    }
    let imds_timed_out = attempts.iter().any(|(name, why)| {
        name == "Ec2InstanceMetadata" && {
            let w = why.to_ascii_lowercase();
            w.contains("timeout") || w.contains("timed out")
        }
    });
    if imds_timed_out {
        message.push_str(&format!(
                "\nIMDS did not answer within {} ms. On EKS this usually means the node's IMDSv2 PUT response hop limit is 1: check `aws ec2 describe-instances --instance-ids <node> | grep HttpPutResponseHopLimit` and set it to 2.",
                settings.imds_timeout.as_millis()
            ));
    }
    message.push_str("\nFix: give the service credentials (environment variables, a profile, a web identity token, or an instance/task role), or configure a static source.");
    Error::new(ResultCode::AwsNoCredentials, message)
}

fn mentions_imds(err: &CredentialsError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = source {
        if s.downcast_ref::<aws_config::imds::client::error::ImdsError>()
            .is_some()
        {
            return true;
        }
        source = s.source();
    }
    false
}
