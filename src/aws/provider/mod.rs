//! The credentials provider: the service's own AWS credentials (aws-config's default chain,
//! static keys, or a named profile), then STS AssumeRole into the IAM role that *is* the db
//! user, optionally chained through the database's `assume_role_arn` (with its
//! `external_id` on that first hop only), cached until five minutes before expiry with one
//! STS call per entry at a time.
//!
//! The async core is [`CredentialsProvider::resolve`]; the C ABI uses the blocking
//! [`CredentialsProvider::resolve_blocking`], which runs it on a small library-owned tokio
//! runtime.

//!
//! One file per job: [`settings`] (what the operator writes, validated), `source` (the
//! service's own credentials), `cache` (per role chain, refreshed before expiry), `sts`
//! (GetCallerIdentity and AssumeRole), `blocking` (the bridge for the C ABI).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_config::provider_config::ProviderConfig;
use aws_config::BehaviorVersion;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use aws_types::SdkConfig;

mod blocking;
mod cache;
pub mod metrics;
mod settings;
mod source;
mod sts;
#[cfg(test)]
mod tests;

use self::blocking::block_on;
use self::cache::{ChainKey, Entry};
use self::metrics::{CredentialsMetrics, ProviderMetrics};
use self::settings::{invalid_config, Checked, DatabaseChain};
use self::source::Source;
use self::sts::{Assumed, Hop};
use super::role_arn::{classify_db_user, session_name, DbUserRole, RoleArn};
use super::Credentials;
use crate::{Error, Result, ResultCode};

pub use self::cache::{REFRESH_BEFORE_EXPIRY, RETRY_AFTER_FAILED_REFRESH, STALE_MIN_VALIDITY};
pub use self::settings::{DatabaseAws, ProviderSettings, SecretString, SourceConfig};

/// A database's AWS settings, checked, for [`CredentialsProvider::resolve_for`]: from
/// [`CredentialsProvider::database_settings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSettings(DatabaseChain);

struct Inner {
    settings: Checked,
    /// The configuration's `database` block as written (checked against the engine's entry
    /// of a session's database).
    own_database: DatabaseAws,
    source: Source,
    sdk_config: SdkConfig,
    clock: SharedTimeSource,
    entries: Mutex<HashMap<ChainKey, Entry>>,
    /// Every first hop (a database's `assume_role_arn`) resolved so far: shared by the
    /// database's db users, so [`CredentialsProvider::invalidate`] keeps it.
    first_hops: Mutex<std::collections::HashSet<RoleArn>>,
    accounts: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<String>>>>,
    /// The runtime the provider was built on: its AWS HTTP connections belong to it.
    home: Option<tokio::runtime::Handle>,
    metrics: Arc<ProviderMetrics>,
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
            .field("source", &self.inner.source.description())
            .field("region", &s.region)
            .field("sts_endpoint", &s.sts_endpoint_display())
            .field(
                "assume_role_arn",
                &s.database.assume_role.as_ref().map(|a| a.to_string()),
            )
            .finish_non_exhaustive()
    }
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

    /// Parses and validates JSON settings as [`CredentialsProvider::from_json_blocking`]
    /// does, without building the AWS clients: the configuration parser alone, for the fuzz
    /// target and replay test of the credentials provider config.
    #[doc(hidden)]
    pub fn check_json_blocking(json: &str) -> Result<()> {
        let settings: ProviderSettings = serde_json::from_str(json)
            .map_err(|e| invalid_config(format!("credentials provider configuration: {e}")))?;
        block_on(Checked::new(&settings))?.map(|_| ())
    }

    /// For fuzzing and tests only: a provider built on the library's runtime whose every
    /// HTTP request (each STS call) is answered by `respond` with `(status, body)` instead
    /// of reaching the network, and never retried. It runs the SDK's response parsing and
    /// this crate's error mapping on bodies an STS endpoint could send.
    #[doc(hidden)]
    pub fn with_http_responder_blocking(
        settings: ProviderSettings,
        respond: Arc<dyn Fn() -> (u16, Vec<u8>) + Send + Sync>,
    ) -> Result<Self> {
        block_on(async move {
            let checked = Checked::new(&settings).await?;
            let (provider_config, sdk_config) =
                aws_configs(&checked, Some(canned::client(respond))).await;
            let source = Source::new(&settings, &checked, &provider_config, &sdk_config).await?;
            Ok(Self::from_parts(
                &settings,
                checked,
                source,
                sdk_config,
                SharedTimeSource::new(SystemTimeSource::new()),
            ))
        })?
    }

    fn from_parts(
        written: &ProviderSettings,
        settings: Checked,
        source: Source,
        sdk_config: SdkConfig,
        clock: SharedTimeSource,
    ) -> Self {
        CredentialsProvider {
            inner: Arc::new(Inner {
                settings,
                own_database: written.database.clone(),
                source,
                sdk_config,
                clock,
                entries: Mutex::new(HashMap::new()),
                first_hops: Mutex::new(std::collections::HashSet::new()),
                accounts: Mutex::new(HashMap::new()),
                home: tokio::runtime::Handle::try_current().ok(),
                metrics: Arc::default(),
            }),
        }
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
        let checked = Checked::new(&settings).await?;
        let (provider_config, sdk_config) = aws_configs(&checked, None).await;
        let source = Source::new(&settings, &checked, &provider_config, &sdk_config).await?;
        Ok(Self::from_parts(
            &settings, checked, source, sdk_config, clock,
        ))
    }

    /// Temporary credentials for the IAM role named by `db_user` (a role name or a full
    /// role ARN), assumed through `assume_role_arn` first when the database has one.
    /// `session_user` is the identity's user name; it becomes the STS role session name.
    ///
    /// Cached credentials are renewed in the last [`REFRESH_BEFORE_EXPIRY`] before they
    /// expire. If that renewal finds STS unreachable ([`ResultCode::AwsStsUnreachable`]) the
    /// cached credentials are returned while they stay valid for [`STALE_MIN_VALIDITY`]
    /// (a `tracing` warning without secrets says so, and STS is tried again after
    /// [`RETRY_AFTER_FAILED_REFRESH`]); after that, the STS error is returned.
    pub async fn resolve(&self, db_user: &str, session_user: Option<&str>) -> Result<Credentials> {
        let database = self.inner.settings.database.clone();
        self.inner
            .resolve(&database, db_user, session_user)
            .await
            .map(|a| a.credentials)
    }

    /// The AWS settings a session of database `name` uses: `engine_aws` (the engine
    /// configuration's `databases[].aws`, the one place a database's AWS settings are written),
    /// checked. Errors (INVALID_CONFIG) when this provider's own `database` block sets a
    /// field to another value than the engine's entry (naming both values), or when the
    /// entry is not usable (AWS_INVALID_ROLE_ARN for its `assume_role_arn`).
    pub fn database_settings(
        &self,
        name: &str,
        engine_aws: &DatabaseAws,
    ) -> Result<DatabaseSettings> {
        if let Some((field, mine, theirs)) = self.inner.own_database.contradiction(engine_aws) {
            let theirs = match theirs {
                Some(v) => format!("`aws.{field}` {v:?}"),
                None => format!("no `aws.{field}`"),
            };
            return Err(invalid_config(format!(
                "the credentials provider configuration's `database.{field}` is {mine:?} but database {name:?} of the engine configuration has {theirs}: a database's AWS settings are written once, in the engine configuration's `databases[].aws`; remove the provider's `database` block (see the README, \"One source of truth for a database\")"
            )));
        }
        let chain = DatabaseChain::new(engine_aws, &self.inner.settings.region).map_err(|e| {
            Error::new(
                e.code(),
                format!(
                    "database {name:?} of the engine configuration, its `aws` settings: {}",
                    e.message()
                ),
            )
        })?;
        Ok(DatabaseSettings(chain))
    }

    /// As [`CredentialsProvider::resolve`], with a database's AWS settings (from
    /// [`CredentialsProvider::database_settings`]) instead of the provider's own `database`
    /// block: what a session of that database uses.
    pub async fn resolve_for(
        &self,
        database: &DatabaseSettings,
        db_user: &str,
        session_user: Option<&str>,
    ) -> Result<Credentials> {
        self.inner
            .resolve(&database.0, db_user, session_user)
            .await
            .map(|a| a.credentials)
    }

    /// [`CredentialsProvider::resolve`] awaited from any tokio runtime (a session's): the
    /// resolution runs on the runtime the provider was built on, which owns its AWS HTTP
    /// connection pool.
    pub async fn resolve_from_any_runtime(
        &self,
        database: &DatabaseSettings,
        db_user: &str,
        session_user: Option<&str>,
    ) -> Result<Credentials> {
        let Some(home) = self.inner.home.clone() else {
            return self.resolve_for(database, db_user, session_user).await;
        };
        let this = self.clone();
        let database = database.clone();
        let db_user = db_user.to_owned();
        let session_user = session_user.map(str::to_owned);
        home.spawn(async move {
            this.resolve_for(&database, &db_user, session_user.as_deref())
                .await
        })
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

    /// This provider's metrics as they are now, for [`crate::metrics::render`].
    pub fn metrics(&self) -> CredentialsMetrics {
        CredentialsMetrics(Arc::clone(&self.inner.metrics))
    }

    /// Drops the cached credentials of `db_user` (name or ARN), e.g. after DocumentDB
    /// rejected an authentication with them. Returns how many entries were dropped. The
    /// shared first hop (`assume_role_arn`) stays cached.
    pub fn invalidate(&self, db_user: &str) -> usize {
        let first_hops = lock(&self.inner.first_hops).clone();
        let mut entries = lock(&self.inner.entries);
        let before = entries.len();
        entries.retain(|key, _| {
            let Some(last) = key.hops.last() else {
                return true;
            };
            let is_first_hop_only = key.hops.len() == 1 && first_hops.contains(&last.role);
            let matches = last.role.to_string() == db_user || last.role.name() == db_user;
            is_first_hop_only || !matches
        });
        before - entries.len()
    }
}

impl Inner {
    async fn resolve(
        &self,
        s: &DatabaseChain,
        db_user: &str,
        session_user: Option<&str>,
    ) -> Result<Assumed> {
        let session = session_name(session_user.unwrap_or(""));
        let source = self.source.key();
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
            let mut known = lock(&self.first_hops);
            if !known.contains(first) {
                known.insert(first.clone());
            }
            drop(known);
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
}

/// The settings every AWS client of the provider shares: region, timeouts, two attempts,
/// and the STS endpoint override; with `canned`, that HTTP client and one attempt.
async fn aws_configs(
    settings: &Checked,
    canned: Option<SharedHttpClient>,
) -> (ProviderConfig, SdkConfig) {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.operation_timeout)
        .operation_timeout(settings.operation_timeout)
        .build();
    let provider_config = ProviderConfig::default()
        .with_timeout_config(timeouts.clone())
        .with_region(Some(Region::new(settings.region.clone())));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .no_credentials()
        .region(Region::new(settings.region.clone()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    if let Some(e) = &settings.sts_endpoint {
        loader = loader.endpoint_url(e);
    }
    if let Some(client) = canned {
        // A retried canned answer is the same answer after a backoff sleep.
        loader = loader
            .http_client(client)
            .retry_config(RetryConfig::disabled());
    }
    (provider_config, loader.load().await)
}

/// The HTTP client of [`CredentialsProvider::with_http_responder_blocking`].
mod canned {
    use std::fmt;
    use std::sync::Arc;

    use aws_smithy_runtime_api::client::http::{
        http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    type Respond = Arc<dyn Fn() -> (u16, Vec<u8>) + Send + Sync>;

    struct Canned(Respond);

    impl fmt::Debug for Canned {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Canned")
        }
    }

    impl HttpConnector for Canned {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let (status, body) = (self.0)();
            // A status outside 100–999 stands for a connection that failed.
            HttpConnectorFuture::ready(match StatusCode::try_from(status) {
                Ok(status) => Ok(HttpResponse::new(status, SdkBody::from(body))),
                Err(e) => Err(ConnectorError::io(e.into())),
            })
        }
    }

    pub(super) fn client(respond: Respond) -> SharedHttpClient {
        let connector = SharedHttpConnector::new(Canned(respond));
        http_client_fn(move |_, _| connector.clone())
    }
}
