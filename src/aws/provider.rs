//! The credentials provider: the service's own AWS credentials (aws-config's default chain,
//! static keys, or a named profile), then STS AssumeRole into the IAM role that *is* the db
//! user, optionally chained through the database's `assume_role_arn` (with its
//! `external_id` on that first hop only), cached until five minutes before expiry with one
//! STS call per entry at a time.
//!
//! The async core is [`CredentialsProvider::resolve`]; the C ABI uses the blocking
//! [`CredentialsProvider::resolve_blocking`], which runs it on a small library-owned tokio
//! runtime.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use aws_types::SdkConfig;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::role_arn::{classify_db_user, partition_for_region, session_name, DbUserRole, RoleArn};
use super::sts_error;
use super::Credentials;
use crate::{Error, Result, ResultCode};

/// Temporary credentials are refreshed this long before they expire.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

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
///   "session_duration_seconds": 3600,
///   "database": {"account_id": "123456789012", "region": "us-east-1",
///                "assume_role_arn": "arn:aws:iam::123456789012:role/docdb-access",
///                "external_id": "example-external-id"}
/// }
/// ```
///
/// Every field is optional. Unknown fields are refused (a typo must not silently disable
/// an override). `sts_endpoint` wins over `AWS_ENDPOINT_URL_STS`, which wins over the
/// regional endpoint. The default chain's web-identity source calls STS through
/// `AWS_ENDPOINT_URL_STS` (aws-config reads it), not through `sts_endpoint`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Where the service's own credentials come from.
    #[serde(default)]
    pub source: SourceConfig,
    /// Region for STS (regional endpoint). Default: the database's region, then
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
    /// The database's AWS metadata.
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
    fn expose(&self) -> &str {
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

/// Settings after validation.
#[derive(Clone)]
struct Checked {
    region: String,
    partition: &'static str,
    sts_endpoint: Option<String>,
    imds_endpoint: Option<String>,
    connect_timeout: Duration,
    operation_timeout: Duration,
    imds_timeout: Duration,
    session_duration: u32,
    account_id: Option<String>,
    assume_role: Option<RoleArn>,
    external_id: Option<String>,
}

impl Checked {
    /// The STS endpoint as an operator would look for it in the error message.
    fn sts_endpoint_display(&self) -> String {
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
        let suffix = if self.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://sts.{}.{suffix}", self.region)
    }

    fn known_account(&self) -> Option<&str> {
        self.account_id
            .as_deref()
            .or_else(|| self.assume_role.as_ref().map(RoleArn::account))
    }
}

fn invalid_config(message: impl Into<String>) -> Error {
    Error::new(ResultCode::InvalidConfig, message)
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

/// One AssumeRole step of a role chain.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Hop {
    role: RoleArn,
    external_id: Option<String>,
    session_name: String,
}

/// Cache key: where the first credentials came from, and the role chain.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ChainKey {
    source: String,
    hops: Vec<Hop>,
}

/// Temporary credentials from one AssumeRole, with the session's ARN.
#[derive(Clone)]
struct Assumed {
    credentials: Credentials,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    arn: String,
    expiry: SystemTime,
}

#[derive(Default)]
struct Slot {
    value: Option<Assumed>,
    /// The last failure and when it happened: callers that were already waiting when it
    /// happened get it too, instead of each making its own STS call.
    failure: Option<(Instant, Error)>,
}

type Entry = Arc<tokio::sync::Mutex<Slot>>;

enum Source {
    Default(DefaultCredentialsChain),
    Static(aws_credential_types::Credentials),
    Profile {
        name: String,
        provider: aws_config::profile::ProfileFileCredentialsProvider,
    },
}

/// The credentials a role hop is assumed with.
enum Caller<'a> {
    /// The service's own credentials.
    Base(&'a aws_credential_types::Credentials),
    /// The previous hop.
    Assumed(&'a Assumed),
}

struct Inner {
    settings: Checked,
    source: Source,
    sdk_config: SdkConfig,
    clock: SharedTimeSource,
    entries: Mutex<HashMap<ChainKey, Entry>>,
    accounts: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<String>>>>,
    /// The runtime the provider was built on: its AWS HTTP connections belong to it.
    home: Option<tokio::runtime::Handle>,
}

/// Resolves a db user to temporary AWS credentials of the IAM role it names.
///
/// Cheap to clone (shared state); `Send + Sync`; methods take `&self` and may run
/// concurrently. Must be used from one tokio runtime (the one it was created on, or the
/// library's own runtime when created and used through the `_blocking` methods): the AWS
/// HTTP connection pool belongs to the runtime that opened the connections.
#[derive(Clone)]
pub struct CredentialsProvider {
    inner: Arc<Inner>,
}

impl fmt::Debug for CredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("CredentialsProvider")
            .field("source", &self.inner.source_description())
            .field("region", &s.region)
            .field("sts_endpoint", &s.sts_endpoint_display())
            .field(
                "assume_role_arn",
                &s.assume_role.as_ref().map(|a| a.to_string()),
            )
            .finish_non_exhaustive()
    }
}

static RUNTIME: once_cell::sync::Lazy<std::result::Result<tokio::runtime::Runtime, String>> =
    once_cell::sync::Lazy::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("docauth-aws")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });

/// Runs `future` to completion on the library's runtime, from a thread that is not
/// itself running async code.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            ResultCode::InvalidState,
            "a blocking credentials call was made from inside an async runtime; await CredentialsProvider::resolve instead",
        ));
    }
    let runtime = RUNTIME.as_ref().map_err(|e| {
        Error::new(
            ResultCode::InvalidState,
            format!("could not start the library's async runtime: {e}"),
        )
    })?;
    Ok(runtime.block_on(future))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps hold no invariant a panic could break halfway; keep going after poison.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl CredentialsProvider {
    /// Parses JSON settings (see [`ProviderSettings`]) and builds the provider on the
    /// library's runtime.
    pub fn from_json_blocking(json: &str) -> Result<Self> {
        let settings: ProviderSettings = serde_json::from_str(json)
            .map_err(|e| invalid_config(format!("credentials provider configuration: {e}")))?;
        block_on(Self::new(settings))?
    }

    /// Builds a provider. No network call is made here.
    pub async fn new(settings: ProviderSettings) -> Result<Self> {
        Self::with_time_source(settings, SharedTimeSource::new(SystemTimeSource::new())).await
    }

    /// As [`CredentialsProvider::new`], with the clock the cache compares expiry times
    /// against (tests move it forward instead of waiting an hour).
    pub async fn with_time_source(
        settings: ProviderSettings,
        clock: SharedTimeSource,
    ) -> Result<Self> {
        let db = &settings.database;
        if let Some(r) = &settings.region {
            check_region("region", r)?;
        }
        if let Some(r) = &db.region {
            check_region("database.region", r)?;
        }
        if let Some(e) = &settings.sts_endpoint {
            check_endpoint("sts_endpoint", e)?;
        }
        if let Some(e) = &settings.imds_endpoint {
            check_endpoint("imds_endpoint", e)?;
        }
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

        let timeouts = TimeoutConfig::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(operation_timeout)
            .operation_timeout(operation_timeout)
            .build();
        let provider_config = ProviderConfig::default().with_timeout_config(timeouts.clone());

        let region = match settings.region.clone().or_else(|| db.region.clone()) {
            Some(r) => r,
            // Environment and profile only: an IMDS region lookup would cost seconds off EC2.
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
        let partition = partition_for_region(db.region.as_deref().unwrap_or(&region));
        let assume_role = match &db.assume_role_arn {
            None => None,
            Some(arn) => {
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
                Some(role)
            }
        };
        let provider_config = provider_config.with_region(Some(Region::new(region.clone())));

        let source = match &settings.source {
            SourceConfig::Default => {
                let mut imds = aws_config::imds::Client::builder()
                    .configure(&provider_config)
                    .connect_timeout(imds_timeout)
                    .read_timeout(imds_timeout)
                    .operation_attempt_timeout(imds_timeout)
                    .operation_timeout(imds_timeout * 2)
                    .max_attempts(2);
                if let Some(e) = &settings.imds_endpoint {
                    imds = imds.endpoint(e).map_err(|err| {
                        invalid_config(format!("`imds_endpoint` `{e}` is unusable: {err}"))
                    })?;
                }
                let chain = DefaultCredentialsChain::builder()
                    .configure(provider_config.clone())
                    .region(Region::new(region.clone()))
                    .imds_client(imds.build())
                    .build()
                    .await;
                Source::Default(chain)
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
                        .configure(&provider_config)
                        .profile_name(name)
                        .build(),
                }
            }
        };

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .no_credentials()
            .region(Region::new(region.clone()))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(e) = &settings.sts_endpoint {
            loader = loader.endpoint_url(e);
        }
        let sdk_config = loader.load().await;

        Ok(CredentialsProvider {
            inner: Arc::new(Inner {
                settings: Checked {
                    region,
                    partition,
                    sts_endpoint: settings.sts_endpoint.clone(),
                    imds_endpoint: settings.imds_endpoint.clone(),
                    connect_timeout,
                    operation_timeout,
                    imds_timeout,
                    session_duration,
                    account_id: db.account_id.clone(),
                    assume_role,
                    external_id: db.external_id.clone(),
                },
                source,
                sdk_config,
                clock,
                entries: Mutex::new(HashMap::new()),
                accounts: Mutex::new(HashMap::new()),
                home: tokio::runtime::Handle::try_current().ok(),
            }),
        })
    }

    /// Temporary credentials for the IAM role named by `db_user` (a role name or a full
    /// role ARN), assumed through `assume_role_arn` first when the database has one.
    /// `session_user` is the identity's user name; it becomes the STS role session name.
    pub async fn resolve(&self, db_user: &str, session_user: Option<&str>) -> Result<Credentials> {
        self.inner
            .resolve(db_user, session_user)
            .await
            .map(|a| a.credentials)
    }

    /// [`CredentialsProvider::resolve`] awaited from any tokio runtime (a session's): the
    /// resolution runs on the runtime the provider was built on, which owns its AWS HTTP
    /// connection pool.
    pub async fn resolve_from_any_runtime(
        &self,
        db_user: &str,
        session_user: Option<&str>,
    ) -> Result<Credentials> {
        let Some(home) = self.inner.home.clone() else {
            return self.resolve(db_user, session_user).await;
        };
        let this = self.clone();
        let db_user = db_user.to_owned();
        let session_user = session_user.map(str::to_owned);
        home.spawn(async move { this.resolve(&db_user, session_user.as_deref()).await })
            .await
            .unwrap_or_else(|e| {
                Err(Error::new(
                    ResultCode::InvalidState,
                    format!("the credentials resolution task did not finish: {e}"),
                ))
            })
    }

    /// [`CredentialsProvider::resolve`] on the library's runtime, for callers that are not
    /// async (the C ABI). Refused from inside an async runtime.
    pub fn resolve_blocking(
        &self,
        db_user: &str,
        session_user: Option<&str>,
    ) -> Result<Credentials> {
        block_on(self.resolve(db_user, session_user))?
    }

    /// Drops the cached credentials of `db_user` (name or ARN), e.g. after DocumentDB
    /// rejected an authentication with them. Returns how many entries were dropped. The
    /// shared first hop (`assume_role_arn`) stays cached.
    pub fn invalidate(&self, db_user: &str) -> usize {
        let mut entries = lock(&self.inner.entries);
        let before = entries.len();
        entries.retain(|key, _| {
            let Some(last) = key.hops.last() else {
                return true;
            };
            let is_first_hop_only =
                key.hops.len() == 1 && self.inner.settings.assume_role.as_ref() == Some(&last.role);
            let matches = last.role.to_string() == db_user || last.role.name() == db_user;
            is_first_hop_only || !matches
        });
        before - entries.len()
    }
}

impl Inner {
    fn source_description(&self) -> String {
        match &self.source {
            Source::Default(_) => "the default credential chain".to_owned(),
            Source::Static(c) => {
                format!("static credentials (access key id {})", c.access_key_id())
            }
            Source::Profile { name, .. } => format!("profile `{name}`"),
        }
    }

    /// What the cache keys on for the service's own credentials. Environment credentials
    /// are read fresh on every call: a changed key is a different source.
    fn source_key(&self) -> String {
        match &self.source {
            Source::Static(c) => format!("static:{}", c.access_key_id()),
            Source::Profile { name, .. } => format!("profile:{name}"),
            Source::Default(_) => match std::env::var("AWS_ACCESS_KEY_ID") {
                Ok(k) if !k.trim().is_empty() => format!("env:{k}"),
                _ => "default-chain".to_owned(),
            },
        }
    }

    async fn resolve(&self, db_user: &str, session_user: Option<&str>) -> Result<Assumed> {
        let s = &self.settings;
        let session = session_name(session_user.unwrap_or(""));
        let source = self.source_key();
        let role = match classify_db_user(db_user, s.partition, s.known_account())? {
            DbUserRole::Arn(arn) => arn,
            DbUserRole::Name(name) => {
                let account = match s.known_account() {
                    Some(a) => a.to_owned(),
                    None => self.caller_account(&source).await?,
                };
                RoleArn::from_name(s.partition, &account, &name)?
            }
        };
        let mut hops = Vec::with_capacity(2);
        if let Some(first) = &s.assume_role {
            hops.push(Hop {
                role: first.clone(),
                external_id: s.external_id.clone(),
                session_name: session.clone(),
            });
        }
        hops.push(Hop {
            role,
            external_id: None,
            session_name: session,
        });
        self.resolve_hops(&source, &hops).await
    }

    fn entry(&self, key: ChainKey) -> Entry {
        lock(&self.entries).entry(key).or_default().clone()
    }

    /// The credentials at the end of `hops`, from the cache or from STS. One STS call per
    /// entry at a time: concurrent callers wait on the entry and share its outcome.
    async fn resolve_hops(&self, source: &str, hops: &[Hop]) -> Result<Assumed> {
        let Some((last, prefix)) = hops.split_last() else {
            return Err(Error::new(ResultCode::InvalidState, "empty role chain"));
        };
        let entry = self.entry(ChainKey {
            source: source.to_owned(),
            hops: hops.to_vec(),
        });
        let arrived = Instant::now();
        let mut slot = entry.lock().await;
        if let Some(cached) = &slot.value {
            match cached.expiry.checked_sub(REFRESH_BEFORE_EXPIRY) {
                Some(refresh_at) if self.clock.now() < refresh_at => return Ok(cached.clone()),
                _ => {}
            }
        }
        if let Some((at, error)) = &slot.failure {
            if *at >= arrived {
                return Err(error.clone());
            }
        }
        let outcome = async {
            if prefix.is_empty() {
                let base = self.base_credentials().await?;
                self.assume_role(Caller::Base(&base), last).await
            } else {
                let previous = Box::pin(self.resolve_hops(source, prefix)).await?;
                self.assume_role(Caller::Assumed(&previous), last).await
            }
        }
        .await;
        match &outcome {
            Ok(assumed) => {
                slot.value = Some(assumed.clone());
                slot.failure = None;
            }
            Err(error) => {
                slot.value = None;
                slot.failure = Some((Instant::now(), error.clone()));
            }
        }
        outcome
    }

    /// The service's own credentials, read fresh from the source.
    async fn base_credentials(&self) -> Result<aws_credential_types::Credentials> {
        let s = &self.settings;
        let provider: &dyn ProvideCredentials = match &self.source {
            Source::Static(c) => return Ok(c.clone()),
            Source::Default(chain) => chain,
            Source::Profile { provider, .. } => provider,
        };
        // Every source has its own timeouts; this bound only guarantees no call hangs.
        let budget = s.operation_timeout * 2 + s.imds_timeout * 6 + s.connect_timeout;
        match tokio::time::timeout(budget, provider.provide_credentials()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(self.source_error(&e)),
            Err(_) => Err(Error::new(
                ResultCode::AwsCredentialsSourceFailed,
                format!(
                    "{} did not produce credentials within {} ms",
                    self.source_description(),
                    budget.as_millis()
                ),
            )),
        }
    }

    fn sts_client(&self, credentials: aws_credential_types::Credentials) -> aws_sdk_sts::Client {
        let config = aws_sdk_sts::config::Builder::from(&self.sdk_config)
            .credentials_provider(credentials)
            .build();
        aws_sdk_sts::Client::from_conf(config)
    }

    /// The account of the service's own identity (GetCallerIdentity), once per source.
    async fn caller_account(&self, source: &str) -> Result<String> {
        let cell = lock(&self.accounts)
            .entry(source.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let base = self.base_credentials().await?;
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
        let out = self
            .sts_client(credentials.clone())
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                sts_error::map(
                    &e,
                    &sts_error::Context {
                        operation: "GetCallerIdentity",
                        endpoint: self.settings.sts_endpoint_display(),
                        connect_timeout: self.settings.connect_timeout,
                        operation_timeout: self.settings.operation_timeout,
                        caller: self.source_description(),
                        role: None,
                        external_id: false,
                        secrets: secrets_of(credentials),
                    },
                )
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

    async fn assume_role(&self, caller: Caller<'_>, hop: &Hop) -> Result<Assumed> {
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
        let result = self
            .sts_client(credentials.clone())
            .assume_role()
            .role_arn(&role)
            .role_session_name(&hop.session_name)
            .set_external_id(hop.external_id.clone())
            .duration_seconds(i32::try_from(duration).unwrap_or(3_600))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let caller_name = match caller {
                    Caller::Assumed(a) => a.arn.clone(),
                    Caller::Base(base) => match self.caller_identity(base).await {
                        Ok((arn, _)) => format!("{arn} (from {})", self.source_description()),
                        Err(_) => {
                            format!("the service's own identity ({})", self.source_description())
                        }
                    },
                };
                return Err(sts_error::map(
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
                ));
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

    /// An error of the service's own credentials source, saying what was tried.
    fn source_error(&self, err: &CredentialsError) -> Error {
        let detail = sts_error::chain_text(err);
        match &self.source {
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
            Source::Default(_) => self.default_chain_error(err, &detail),
        }
    }

    fn default_chain_error(&self, err: &CredentialsError, detail: &str) -> Error {
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
                    format!("the default credential chain found a configured source that failed: {detail}"),
                );
            }
            // The chain stopped at IMDS with an error: every earlier source had nothing.
            for name in &ORDER[..4] {
                attempts.push(((*name).to_owned(), "not configured".to_owned()));
            }
            attempts.push((ORDER[4].to_owned(), detail.to_owned()));
        }
        let imds_endpoint = self
            .settings
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
                self.settings.imds_timeout.as_millis()
            ));
        }
        message.push_str("\nFix: give the service credentials (environment variables, a profile, a web identity token, or an instance/task role), or configure a static source.");
        Error::new(ResultCode::AwsNoCredentials, message)
    }
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

fn secrets_of(c: &aws_credential_types::Credentials) -> Vec<Zeroizing<String>> {
    let mut v = vec![Zeroizing::new(c.secret_access_key().to_owned())];
    if let Some(t) = c.session_token() {
        v.push(Zeroizing::new(t.to_owned()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Result<ProviderSettings> {
        serde_json::from_str(json).map_err(|e| invalid_config(e.to_string()))
    }

    #[test]
    fn config_errors_say_what_is_wrong() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cases = [
            (r#"{"sts_endpont": "http://x"}"#, "unknown field"),
            (r#"{"sts_endpoint": "ftp://x"}"#, "http:// or https://"),
            (r#"{"region": "US East"}"#, "not an AWS region"),
            (r#"{"operation_timeout_ms": 0}"#, "greater than 0"),
            (r#"{"session_duration_seconds": 60}"#, "900 to 43200"),
            (r#"{"database": {"external_id": "abc"}}"#, "first hop"),
            (r#"{"database": {"account_id": "42"}}"#, "12-digit"),
            (
                r#"{"database": {"assume_role_arn": "arn:aws:iam::123456789012:user/x"}}"#,
                "not a `role`",
            ),
            (
                r#"{"region": "us-east-1", "database": {"assume_role_arn": "arn:aws-cn:iam::123456789012:role/x"}}"#,
                "partition",
            ),
            (
                r#"{"database": {"account_id": "111111111111", "assume_role_arn": "arn:aws:iam::123456789012:role/x"}}"#,
                "account 123456789012",
            ),
            (
                r#"{"source": {"type": "static", "access_key_id": "AKID", "secret_access_key": ""}}"#,
                "secret access key",
            ),
        ];
        for (json, why) in cases {
            let e = match settings(json) {
                Err(e) => e,
                Ok(s) => rt.block_on(CredentialsProvider::new(s)).unwrap_err(),
            };
            assert!(e.message().contains(why), "{json}: {}", e.message());
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let json = r#"{"source": {"type": "static", "access_key_id": "AKIDVISIBLE",
            "secret_access_key": "SECRETxSECRET", "session_token": "TOKENxTOKEN"}}"#;
        let s = settings(json).unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("AKIDVISIBLE"), "{shown}");
        assert!(
            !shown.contains("SECRETxSECRET") && !shown.contains("TOKENxTOKEN"),
            "{shown}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p = rt.block_on(CredentialsProvider::new(s)).unwrap();
        let shown = format!("{p:?}");
        assert!(shown.contains("AKIDVISIBLE"), "{shown}");
        assert!(
            !shown.contains("SECRETxSECRET") && !shown.contains("TOKENxTOKEN"),
            "{shown}"
        );
    }

    #[test]
    fn blocking_calls_are_refused_inside_a_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(async { block_on(async { 1 }) }).unwrap_err();
        assert_eq!(e.code(), ResultCode::InvalidState);
        assert_eq!(block_on(async { 2 }).unwrap(), 2);
    }
}
