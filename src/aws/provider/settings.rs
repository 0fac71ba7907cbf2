//! The provider's configuration: what the operator writes (JSON for the C ABI) and the
//! validated settings the provider runs with.

use std::fmt;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::aws::role_arn::{partition_for_region, RoleArn};
use crate::{Error, Result, ResultCode};

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
const DEFAULT_OPERATION_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_IMDS_TIMEOUT_MS: u64 = 1_000;
const DEFAULT_SESSION_DURATION_SECONDS: u32 = 3_600;
const DEFAULT_REGION: &str = "us-east-1";

/// Configuration of a [`CredentialsProvider`], as JSON for the C ABI:
///
/// ```json
/// {
///   "source": {"type": "default"},
///   "region": "us-east-1",
///   "sts_endpoint": "http://127.0.0.1:5000",
///   "imds_endpoint": "http://169.254.169.254",
///   "connect_timeout_ms": 3000,
///   "operation_timeout_ms": 10000,
///   "imds_timeout_ms": 1000,
///   "session_duration_seconds": 3600
/// }
/// ```
///
/// A database's AWS settings live in its entry of the engine configuration
/// (`databases[].aws`), where sessions take them from
/// ([`CredentialsProvider::database_settings`]). The optional `database` block
/// (`account_id`, `region`, `assume_role_arn`, `external_id`) is for
/// [`CredentialsProvider::resolve`] used without sessions; a session refuses a block that
/// contradicts its database's entry.
///
/// Every field is optional. Unknown fields are refused (a typo must not silently disable
/// an override). `sts_endpoint` wins over `AWS_ENDPOINT_URL_STS`, which wins over the
/// regional endpoint, for every STS call the provider makes: AssumeRole, GetCallerIdentity,
/// and the default chain's web-identity source (AssumeRoleWithWebIdentity with
/// `AWS_WEB_IDENTITY_TOKEN_FILE` / `AWS_ROLE_ARN`). Only STS calls that a shared profile
/// itself asks for (a profile's `role_arn` / `web_identity_token_file`) are made by
/// aws-config with its own STS client, which honours `AWS_ENDPOINT_URL_STS` but not
/// `sts_endpoint`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Where the service's own credentials come from.
    #[serde(default)]
    pub source: SourceConfig,
    /// Region for STS (regional endpoint). Default: the `database` block's region, then
    /// `AWS_REGION`/`AWS_DEFAULT_REGION`/profile, then us-east-1.
    pub region: Option<String>,
    /// STS endpoint override (tests, VPC endpoints).
    pub sts_endpoint: Option<String>,
    /// IMDS endpoint override for the default chain's EC2 source.
    pub imds_endpoint: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub operation_timeout_ms: Option<u64>,
    /// Per-attempt IMDS timeout; IMDS is tried at most twice.
    pub imds_timeout_ms: Option<u64>,
    /// DurationSeconds of each AssumeRole (900–43200; role chaining caps it at 3600).
    pub session_duration_seconds: Option<u32>,
    /// A database's AWS settings for [`CredentialsProvider::resolve`] without sessions
    /// (sessions use the engine configuration's entry and refuse a contradicting block).
    #[serde(default)]
    pub database: DatabaseAws,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("source", &self.source)
            .field("region", &self.region)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("imds_endpoint", &self.imds_endpoint)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// The service's own credentials.
#[derive(Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// aws-config's default chain: environment, shared profile, web identity token, ECS
    /// container, EC2 IMDSv2.
    #[default]
    Default,
    /// Keys given in the configuration.
    Static {
        access_key_id: String,
        secret_access_key: SecretString,
        #[serde(default)]
        session_token: Option<SecretString>,
    },
    /// A named profile of the shared config/credentials files (`AWS_CONFIG_FILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE`).
    Profile { name: String },
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceConfig::Default => f.write_str("Default"),
            SourceConfig::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            SourceConfig::Profile { name } => {
                f.debug_struct("Profile").field("name", name).finish()
            }
        }
    }
}

/// A secret string from configuration: zeroized on drop, never printed.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretString(Zeroizing::new(s)))
    }
}

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(Zeroizing::new(s.into()))
    }
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

/// The database's AWS metadata (Teleport's `aws:` section of a database resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseAws {
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub assume_role_arn: Option<String>,
    pub external_id: Option<String>,
}

impl DatabaseAws {
    /// The engine configuration's `aws` of a database entry (where sessions take a
    /// database's AWS settings from); empty strings are unset.
    pub fn from_metadata(aws: &crate::policy::AwsMetadata) -> DatabaseAws {
        let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        DatabaseAws {
            account_id: set(&aws.account_id),
            region: set(&aws.region),
            assume_role_arn: set(&aws.assume_role_arn),
            external_id: set(&aws.external_id),
        }
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.account_id.is_none()
            && self.region.is_none()
            && self.assume_role_arn.is_none()
            && self.external_id.is_none()
    }

    /// The first field this block (the provider's `database`) sets to a value other than
    /// `engine`'s (a database entry of the engine configuration): `(field, provider's
    /// value, engine's value or None)`. The external id is a secret and is never shown.
    pub(crate) fn contradiction(
        &self,
        engine: &DatabaseAws,
    ) -> Option<(&'static str, String, Option<String>)> {
        let fields = [
            ("account_id", &self.account_id, &engine.account_id, true),
            ("region", &self.region, &engine.region, true),
            (
                "assume_role_arn",
                &self.assume_role_arn,
                &engine.assume_role_arn,
                true,
            ),
            ("external_id", &self.external_id, &engine.external_id, false),
        ];
        fields.into_iter().find_map(|(name, mine, theirs, shown)| {
            let mine = mine.as_ref()?;
            if Some(mine) == theirs.as_ref() {
                return None;
            }
            let show = |v: &String| {
                if shown {
                    v.clone()
                } else {
                    "(hidden)".to_owned()
                }
            };
            Some((name, show(mine), theirs.as_ref().map(show)))
        })
    }
}

/// A database's AWS settings as a role chain needs them, checked: the partition of its
/// region, its account, and the first hop (`assume_role_arn` with its `external_id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DatabaseChain {
    pub(super) partition: &'static str,
    pub(super) account_id: Option<String>,
    pub(super) assume_role: Option<RoleArn>,
    pub(super) external_id: Option<String>,
}

impl DatabaseChain {
    /// Checks `db`; its partition is its region's, else the STS region's.
    pub(super) fn new(db: &DatabaseAws, sts_region: &str) -> Result<DatabaseChain> {
        check_database(db)?;
        let partition = partition_for_region(db.region.as_deref().unwrap_or(sts_region));
        Ok(DatabaseChain {
            assume_role: first_hop(db, partition)?,
            partition,
            account_id: db.account_id.clone(),
            external_id: db.external_id.clone(),
        })
    }

    pub(super) fn known_account(&self) -> Option<&str> {
        self.account_id
            .as_deref()
            .or_else(|| self.assume_role.as_ref().map(RoleArn::account))
    }
}

/// Settings after validation.
#[derive(Clone)]
pub(super) struct Checked {
    /// The region of STS calls.
    pub(super) region: String,
    pub(super) sts_endpoint: Option<String>,
    pub(super) imds_endpoint: Option<String>,
    pub(super) connect_timeout: Duration,
    pub(super) operation_timeout: Duration,
    pub(super) imds_timeout: Duration,
    pub(super) session_duration: u32,
    /// The provider's own `database` block: the chain of [`CredentialsProvider::resolve`]
    /// (sessions use their database entry's instead).
    ///
    /// [`CredentialsProvider::resolve`]: super::CredentialsProvider::resolve
    pub(super) database: DatabaseChain,
}

impl Checked {
    /// Validates `settings`; the region falls back to the environment and profile. No
    /// network call is made.
    pub(super) async fn new(settings: &ProviderSettings) -> Result<Checked> {
        let db = &settings.database;
        check_endpoints(settings)?;
        let connect_timeout = millis(
            "connect_timeout_ms",
            settings.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
        )?;
        let operation_timeout = millis(
            "operation_timeout_ms",
            settings.operation_timeout_ms,
            DEFAULT_OPERATION_TIMEOUT_MS,
        )?;
        let imds_timeout = millis(
            "imds_timeout_ms",
            settings.imds_timeout_ms,
            DEFAULT_IMDS_TIMEOUT_MS,
        )?;
        let session_duration = settings
            .session_duration_seconds
            .unwrap_or(DEFAULT_SESSION_DURATION_SECONDS);
        if !(900..=43_200).contains(&session_duration) {
            return Err(invalid_config(format!(
                "`session_duration_seconds` is {session_duration}; STS accepts 900 to 43200"
            )));
        }
        check_database(db)?;
        let region = sts_region(settings).await?;
        Ok(Checked {
            database: DatabaseChain::new(db, &region)?,
            region,
            sts_endpoint: settings.sts_endpoint.clone(),
            imds_endpoint: settings.imds_endpoint.clone(),
            connect_timeout,
            operation_timeout,
            imds_timeout,
            session_duration,
        })
    }

    /// The STS endpoint as an operator would look for it in the error message.
    pub(super) fn sts_endpoint_display(&self) -> String {
        if let Some(e) = &self.sts_endpoint {
            return e.clone();
        }
        for var in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
            if let Ok(v) = std::env::var(var) {
                if !v.trim().is_empty() {
                    return format!("{v} (from {var})");
                }
            }
        }
        let suffix = if partition_for_region(&self.region) == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://sts.{}.{suffix}", self.region)
    }
}

pub(super) fn invalid_config(message: impl Into<String>) -> Error {
    Error::new(ResultCode::InvalidConfig, message)
}

fn check_endpoints(settings: &ProviderSettings) -> Result<()> {
    if let Some(r) = &settings.region {
        check_region("region", r)?;
    }
    if let Some(e) = &settings.sts_endpoint {
        check_endpoint("sts_endpoint", e)?;
    }
    if let Some(e) = &settings.imds_endpoint {
        check_endpoint("imds_endpoint", e)?;
    }
    Ok(())
}

/// The database's account, region and external id, each on its own.
fn check_database(db: &DatabaseAws) -> Result<()> {
    if let Some(r) = &db.region {
        check_region("database.region", r)?;
    }
    if let Some(a) = &db.account_id {
        if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid_config(format!(
                "`database.account_id` `{a}` is not a 12-digit AWS account id"
            )));
        }
    }
    if db.external_id.is_some() && db.assume_role_arn.is_none() {
        return Err(invalid_config(
                "`database.external_id` is set but `database.assume_role_arn` is not; the external id is sent only when assuming `assume_role_arn` (the first hop)",
            ));
    }
    if let Some(x) = &db.external_id {
        if !(2..=1224).contains(&x.len())
            || !x
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c))
        {
            return Err(invalid_config(
                "`database.external_id` must be 2–1224 characters from [A-Za-z0-9+=,.@:/_-]",
            ));
        }
    }
    Ok(())
}

/// The region of STS calls: configured, the database's, then environment and profile only
/// (an IMDS region lookup would cost seconds off EC2), then us-east-1.
async fn sts_region(settings: &ProviderSettings) -> Result<String> {
    let region = match settings
        .region
        .clone()
        .or_else(|| settings.database.region.clone())
    {
        Some(r) => r,
        None => RegionProviderChain::first_try(
            aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(aws_config::profile::region::ProfileFileRegionProvider::new())
        .region()
        .await
        .map(|r| r.to_string())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
    };
    check_region("region", &region)?;
    Ok(region)
}

/// The database's `assume_role_arn`, checked against its partition and account.
fn first_hop(db: &DatabaseAws, partition: &str) -> Result<Option<RoleArn>> {
    let Some(arn) = &db.assume_role_arn else {
        return Ok(None);
    };
    let role = RoleArn::parse(arn, "`database.assume_role_arn`")?;
    if role.partition() != partition {
        return Err(Error::new(
            ResultCode::AwsInvalidRoleArn,
            format!(
                "`database.assume_role_arn` `{arn}` is in partition `{}` but the database is in partition `{partition}`",
                role.partition()
            ),
        ));
    }
    if let Some(a) = &db.account_id {
        if a != role.account() {
            return Err(Error::new(
                ResultCode::AwsInvalidRoleArn,
                format!(
                    "`database.assume_role_arn` `{arn}` is in account {} but `database.account_id` is {a}",
                    role.account()
                ),
            ));
        }
    }
    Ok(Some(role))
}

fn check_endpoint(name: &str, url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(invalid_config(format!(
            "`{name}` must be an http:// or https:// URL with a host, not `{url}`"
        ))),
    }
}

fn check_region(name: &str, region: &str) -> Result<()> {
    if !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(invalid_config(format!(
            "`{name}` `{region}` is not an AWS region name (e.g. us-east-1)"
        )))
    }
}

fn millis(name: &str, value: Option<u64>, default: u64) -> Result<Duration> {
    match value.unwrap_or(default) {
        0 => Err(invalid_config(format!("`{name}` must be greater than 0"))),
        ms if ms > 3_600_000 => Err(invalid_config(format!(
            "`{name}` is {ms} ms; more than an hour is surely a mistake"
        ))),
        ms => Ok(Duration::from_millis(ms)),
    }
}
