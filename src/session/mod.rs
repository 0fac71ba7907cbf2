//! The proxied session: a client connection handed over by the host, TLS + MONGODB-AWS to the
//! database ([`upstream`]), every client message judged and relayed ([`relay`]), audit
//! events to the host ([`audit`]).
//!
//! What the relay needs from the policy engine and the credentials provider is expressed as
//! two small traits, [`Judge`] and [`CredentialSource`]. [`EngineJudge`] judges with the
//! [`PolicyEngine`] (cached decisions; a reload applies from the next message);
//! [`ProviderCredentials`] gets the db user's credentials from the [`CredentialsProvider`]
//! (STS AssumeRole, cached) and drops them when the database rejects them.
//! [`StaticCredentials`] (always the same credentials) is for tests and embedders that
//! manage credentials themselves.

pub mod audit;
mod frames;
mod relay;
pub mod upstream;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

pub use audit::{AuditCallback, AuditDispatcher, AuditSink, SessionFields};
pub use upstream::{DatabaseUri, UpstreamConfig};

use crate::aws::{Credentials, CredentialsProvider};
use crate::policy::{Identity, IdentitySpec, PolicyEngine, Request};
use crate::{Error, Result, ResultCode};

/// What one client message asks for, as the judge sees it: the wire analysis (command,
/// `$db`, every namespace it can reach, or `unanalysable`).
pub use crate::wire::CommandAccess;

/// A decision: allowed or not, and why (the reason reaches the client's error message and
/// the audit event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: String,
}

/// Decides for one session (the identity, database and db user are the session's; the
/// judge is built for them). Called on the session's task: must not block long.
pub trait Judge: Send + Sync {
    /// The connection-level decision, made before the database is contacted.
    fn admit(&self) -> Verdict;
    /// One client message (connection commands included: they need no database name).
    fn judge(&self, access: &CommandAccess) -> Verdict;
}

/// Who the session is for: an identity given in full, or the name of one of the engine
/// configuration's `identities` (looked up again at every decision, so that a reload that
/// changes it applies to running sessions).
#[derive(Clone, Debug)]
pub enum SessionIdentity {
    Name(String),
    Spec(Arc<Identity>),
}

impl SessionIdentity {
    pub fn user(&self) -> &str {
        match self {
            SessionIdentity::Name(n) => n,
            SessionIdentity::Spec(i) => i.user(),
        }
    }
}

/// Judges a session's messages with the policy engine: per message, a [`Request`] with the
/// command, `$db` as `db_name` and every namespace the command can reach.
pub struct EngineJudge {
    engine: Arc<PolicyEngine>,
    identity: SessionIdentity,
    database: String,
    db_user: String,
    db_name: String,
}

impl EngineJudge {
    /// Errors (INVALID_CONFIG) when `database` is not in the engine's configuration or a
    /// named identity is not in its `identities`.
    pub fn new(
        engine: Arc<PolicyEngine>,
        identity: SessionIdentity,
        database: &str,
        db_user: &str,
        db_name: &str,
    ) -> Result<Self> {
        if engine.database(database).is_none() {
            return Err(Error::new(
                ResultCode::InvalidConfig,
                format!(
                    "session parameters: database {database:?} is not in the policy engine's configuration (its `databases`)"
                ),
            ));
        }
        if let SessionIdentity::Name(name) = &identity {
            if engine.identity(name).is_none() {
                return Err(Error::new(
                    ResultCode::InvalidConfig,
                    format!(
                        "session parameters: identity {name:?} is not in the policy engine's configuration (its `identities`); give the identity as an object instead"
                    ),
                ));
            }
        }
        Ok(EngineJudge {
            engine,
            identity,
            database: database.to_string(),
            db_user: db_user.to_string(),
            db_name: db_name.to_string(),
        })
    }

    fn identity(&self) -> std::result::Result<Arc<Identity>, Verdict> {
        match &self.identity {
            SessionIdentity::Spec(i) => Ok(Arc::clone(i)),
            SessionIdentity::Name(name) => self.engine.identity(name).ok_or_else(|| Verdict {
                allowed: false,
                reason: format!(
                    "denied: identity {name:?} is no longer in the policy engine's configuration"
                ),
            }),
        }
    }

    fn request(&self, identity: Arc<Identity>, db_name: &str) -> Request {
        Request::new(
            identity,
            self.database.as_str(),
            self.db_user.as_str(),
            db_name,
        )
    }
}

impl Judge for EngineJudge {
    fn admit(&self) -> Verdict {
        let identity = match self.identity() {
            Ok(i) => i,
            Err(v) => return v,
        };
        // Without a db name only the database and the db user are checked (as for a
        // connection command, which reaches no database's data).
        let request = if self.db_name.is_empty() {
            self.request(identity, "").with_command("hello")
        } else {
            self.request(identity, &self.db_name)
        };
        let d = self.engine.decide(&request);
        Verdict {
            allowed: d.allowed,
            reason: d.reason.clone(),
        }
    }

    fn judge(&self, access: &CommandAccess) -> Verdict {
        let identity = match self.identity() {
            Ok(i) => i,
            Err(v) => return v,
        };
        let namespaces = access
            .namespaces
            .iter()
            .map(|ns| match &ns.collection {
                Some(c) => format!("{}.{c}", ns.database),
                None => ns.database.clone(),
            })
            .collect();
        let request = self
            .request(identity, &access.database)
            .with_command(access.command.as_str())
            .with_namespaces(namespaces);
        if let Some(why) = &access.unanalysable {
            let every = self.engine.may_reach_every_database(&request);
            if !every.allowed {
                return Verdict {
                    allowed: false,
                    reason: format!(
                        "libdocauth cannot list the databases command {:?} reaches ({why}); {}",
                        access.command, every.reason
                    ),
                };
            }
        }
        let d = self.engine.decide(&request);
        Verdict {
            allowed: d.allowed,
            reason: d.reason.clone(),
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the session gets the AWS credentials it authenticates to the database with, for
/// the session's db user (an IAM role name or ARN).
pub trait CredentialSource: Send + Sync {
    fn credentials<'a>(&'a self, db_user: &'a str) -> BoxFuture<'a, Result<Credentials>>;
    /// The database rejected the MONGODB-AWS authentication made with the credentials of
    /// `db_user`: forget them so that the next session gets fresh ones.
    fn rejected(&self, _db_user: &str) {}
}

/// Always the same credentials.
#[derive(Clone, Debug)]
pub struct StaticCredentials(pub Credentials);

impl CredentialSource for StaticCredentials {
    fn credentials<'a>(&'a self, _db_user: &'a str) -> BoxFuture<'a, Result<Credentials>> {
        let c = self.0.clone();
        Box::pin(async move { Ok(c) })
    }
}

/// The db user's temporary credentials from the credentials provider (STS AssumeRole,
/// cached), with the session's user as the STS role session name.
#[derive(Clone, Debug)]
pub struct ProviderCredentials {
    provider: Arc<CredentialsProvider>,
    session_user: String,
}

impl ProviderCredentials {
    pub fn new(provider: Arc<CredentialsProvider>, session_user: impl Into<String>) -> Self {
        ProviderCredentials {
            provider,
            session_user: session_user.into(),
        }
    }
}

impl CredentialSource for ProviderCredentials {
    fn credentials<'a>(&'a self, db_user: &'a str) -> BoxFuture<'a, Result<Credentials>> {
        Box::pin(
            self.provider
                .resolve_from_any_runtime(db_user, Some(self.session_user.as_str())),
        )
    }

    fn rejected(&self, db_user: &str) {
        self.provider.invalidate(db_user);
    }
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_handshake_timeout_ms() -> u64 {
    15_000
}
fn default_message_timeout_ms() -> u64 {
    30_000
}
/// 30 minutes: far longer than any pause of a working client (drivers' monitoring connections
/// send a hello every 10 s), short enough that an abandoned connection does not hold its two
/// sockets and buffers for days. Drivers reopen a pooled connection that was closed.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30 * 60 * 1000;
fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}
/// 30 seconds without one byte accepted: a working client reads its replies at once (a slow
/// link still accepts some bytes in that time); one that stopped reading would otherwise hold
/// the session, and the database connection behind it, for ever.
pub const DEFAULT_CLIENT_WRITE_TIMEOUT_MS: u64 = 30_000;
fn default_client_write_timeout_ms() -> u64 {
    DEFAULT_CLIENT_WRITE_TIMEOUT_MS
}

fn config_error(msg: impl Into<String>) -> Error {
    Error::new(
        ResultCode::InvalidConfig,
        format!("session parameters: {}", msg.into()),
    )
}

/// The parameters of one session, as the host gives them (JSON in the C ABI).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionParams {
    /// Who is connecting: `{"user": "alice", "roles": [...], "traits": {...}}`, or the user
    /// name of one of the engine configuration's `identities`.
    pub identity: serde_json::Value,
    /// The database's name in the engine configuration (decisions, URI default, audit).
    pub database: String,
    /// `mongodb://host:port/?tls=true&tlsCAFile=…`; default: from the engine's database
    /// `uri` (`host:port` → `mongodb://host:port/?tls=true`).
    #[serde(default)]
    pub database_uri: Option<String>,
    /// PEM CA bundle verifying the database (e.g. DocumentDB's global-bundle.pem).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The database user (IAM role name or ARN) the session authenticates as.
    pub db_user: String,
    /// The logical database the client asked for (connection-level decision, audit).
    #[serde(default)]
    pub db_name: String,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// No message either way for this long ends the session; default
    /// [`DEFAULT_IDLE_TIMEOUT_MS`] (30 minutes); 0 = no idle timeout.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// A write to the client that moves no byte for this long ends the session with
    /// `CLIENT_WRITE_TIMEOUT`; default [`DEFAULT_CLIENT_WRITE_TIMEOUT_MS`] (30 s). 0 is
    /// refused: a client that stops reading must not hold the session for ever.
    #[serde(default = "default_client_write_timeout_ms")]
    pub client_write_timeout_ms: u64,
    /// The client's address, for audit events.
    #[serde(default)]
    pub client_addr: String,
}

impl SessionParams {
    pub fn from_json(json: &str) -> Result<Self> {
        let params: SessionParams =
            serde_json::from_str(json).map_err(|e| config_error(e.to_string()))?;
        params.session_identity()?;
        if params.database.is_empty() {
            return Err(config_error(
                "database must name a database of the engine configuration",
            ));
        }
        if params.db_user.is_empty() {
            return Err(config_error("db_user must not be empty"));
        }
        if params.client_write_timeout_ms == 0 {
            return Err(config_error(
                "client_write_timeout_ms must be at least 1 (a client that stops reading must not hold the session for ever); the default is 30000",
            ));
        }
        if let Some(uri) = &params.database_uri {
            DatabaseUri::parse(uri)?;
        }
        Ok(params)
    }

    /// The identity: an object (`user` required) or a non-empty name.
    pub fn session_identity(&self) -> Result<SessionIdentity> {
        match &self.identity {
            serde_json::Value::String(name) if !name.is_empty() => {
                Ok(SessionIdentity::Name(name.clone()))
            }
            serde_json::Value::Object(_) => {
                let spec: IdentitySpec = serde_json::from_value(self.identity.clone())
                    .map_err(|e| config_error(format!("identity: {e}")))?;
                if spec.user.is_empty() {
                    return Err(config_error("identity.user must be a non-empty string"));
                }
                Ok(SessionIdentity::Spec(Arc::new(Identity::from_spec(spec))))
            }
            _ => Err(config_error(
                "identity must be an object {\"user\": …, \"roles\": […], \"traits\": {…}} or the name of an identity of the engine configuration",
            )),
        }
    }

    /// The database URI: `database_uri`, else the engine database's `uri`.
    fn uri(&self, engine: &PolicyEngine) -> Result<DatabaseUri> {
        if let Some(uri) = &self.database_uri {
            return DatabaseUri::parse(uri);
        }
        let db = engine.database(&self.database).ok_or_else(|| {
            config_error(format!(
                "database {:?} is not in the policy engine's configuration (its `databases`)",
                self.database
            ))
        })?;
        let uri = db.uri.trim();
        if uri.is_empty() {
            return Err(config_error(format!(
                "database {:?} has no `uri` in the engine configuration; set one there or give database_uri",
                self.database
            )));
        }
        if uri.contains("://") {
            DatabaseUri::parse(uri)
        } else {
            DatabaseUri::parse(&format!("mongodb://{uri}/?tls=true"))
        }
    }
}

/// Counters of a finished session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub messages_from_client: u64,
    pub messages_to_client: u64,
    /// Client messages refused (denied, unparsable, authentication commands).
    pub denied: u64,
    pub duration: Duration,
    /// Why it ended (client closed, database closed, idle timeout, shut down, error text).
    pub end_reason: String,
}

/// How many sessions one runtime runs at once unless the host sets another cap
/// ([`Runtime::set_max_sessions`]). Each session holds two sockets and their buffers; a
/// flood of connections must meet a clear refusal, not the process's file-descriptor limit
/// or memory. 10,000 is above the connection limit of the largest DocumentDB instances.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// The running sessions of a runtime, counted against its cap.
struct SessionSlots {
    running: AtomicUsize,
    max: AtomicUsize,
}

impl SessionSlots {
    /// A place for one more session, or `None` when the cap is reached.
    fn take(self: &Arc<Self>) -> Option<SessionSlot> {
        let max = self.max.load(Ordering::Acquire);
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot(Arc::clone(self)))
    }
}

/// One running session's place under the cap; given back when dropped (the session's task
/// ended or was cancelled).
struct SessionSlot(Arc<SessionSlots>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A tokio runtime owned by the host, plus the audit dispatcher thread of its sessions.
pub struct Runtime {
    runtime: Option<tokio::runtime::Runtime>,
    audit: AuditDispatcher,
    sessions: Arc<SessionSlots>,
}

impl Runtime {
    /// `threads` worker threads (0 = one per CPU).
    pub fn new(threads: usize) -> Result<Self> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name("docauth-session");
        if threads > 0 {
            builder.worker_threads(threads);
        }
        let runtime = builder.build().map_err(|e| {
            Error::new(
                ResultCode::SessionIo,
                format!("could not start the runtime: {e}"),
            )
        })?;
        let audit = AuditDispatcher::new(audit::DEFAULT_AUDIT_QUEUE).map_err(|e| {
            Error::new(
                ResultCode::SessionIo,
                format!("could not start the audit dispatcher thread: {e}"),
            )
        })?;
        Ok(Runtime {
            runtime: Some(runtime),
            audit,
            sessions: Arc::new(SessionSlots {
                running: AtomicUsize::new(0),
                max: AtomicUsize::new(DEFAULT_MAX_SESSIONS),
            }),
        })
    }

    /// Caps the sessions this runtime runs at once (default [`DEFAULT_MAX_SESSIONS`]). A
    /// session started past the cap ends at once with `SESSION_LIMIT`: its client's first
    /// message gets an error naming the cap, the audit has its failed start and its end, and
    /// no database connection is made. Applies to sessions started after the call; running
    /// ones are never cut. Errors (INVALID_ARGUMENT): 0.
    pub fn set_max_sessions(&self, max: usize) -> Result<()> {
        if max == 0 {
            return Err(Error::new(
                ResultCode::InvalidArgument,
                format!("max_sessions must be at least 1 (the default is {DEFAULT_MAX_SESSIONS})"),
            ));
        }
        self.sessions.max.store(max, Ordering::Release);
        Ok(())
    }

    /// The cap on sessions running at once.
    pub fn max_sessions(&self) -> usize {
        self.sessions.max.load(Ordering::Acquire)
    }

    /// Sessions running now (started, not yet ended); refused ones are not counted.
    pub fn running_sessions(&self) -> usize {
        self.sessions.running.load(Ordering::Acquire)
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        // `runtime` is only taken in Drop.
        self.runtime
            .as_ref()
            .map(|r| r.handle())
            .unwrap_or_else(|| unreachable_handle())
    }

    /// Audit events dropped by all sessions of this runtime (host too slow).
    pub fn audit_dropped(&self) -> u64 {
        self.audit.dropped()
    }
}

#[cold]
fn unreachable_handle() -> &'static tokio::runtime::Handle {
    // Never reached: the runtime is present for the whole life of `Runtime` outside Drop.
    static FALLBACK: once_cell::sync::Lazy<tokio::runtime::Runtime> =
        once_cell::sync::Lazy::new(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap_or_else(|_| std::process::abort())
        });
    FALLBACK.handle()
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Sessions still running are cancelled: their connections close.
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

struct Shared {
    id: String,
    shutdown: watch::Sender<bool>,
    outcome: Mutex<Option<Result<SessionStats>>>,
    finished: Condvar,
    audit: AuditSink,
}

impl Shared {
    fn finish(&self, outcome: Result<SessionStats>) {
        let mut slot = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.finished.notify_all();
    }
}

/// Sets an outcome if the task is dropped before finishing (runtime shut down).
struct FinishGuard(Arc<Shared>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.finish(Err(Error::new(
            ResultCode::SessionIo,
            "the session was cancelled because its runtime shut down",
        )));
    }
}

/// A running session. Every method may be called from any thread.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Starts a session on `runtime` for the connected `client`; returns at once (the
    /// connection-level decision, the database connection and its authentication are made
    /// on the runtime). Every client message is judged by `engine` (a reload applies from
    /// the next message). The outcome comes from [`Session::wait`] and the audit events.
    ///
    /// Errors (INVALID_CONFIG, DATABASE_URI_INVALID): a database or named identity the engine
    /// does not know, a database without URI, an unusable URI.
    pub fn start<C>(
        runtime: &Runtime,
        client: C,
        params: SessionParams,
        engine: Arc<PolicyEngine>,
        credentials: Arc<dyn CredentialSource>,
        audit_callback: Option<Arc<dyn AuditCallback>>,
    ) -> Result<Session>
    where
        C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let identity = params.session_identity()?;
        let judge = EngineJudge::new(
            Arc::clone(&engine),
            identity,
            &params.database,
            &params.db_user,
            &params.db_name,
        )?;
        let uri = params.uri(&engine)?;
        Self::spawn(
            runtime,
            client,
            params,
            uri,
            Arc::new(judge),
            credentials,
            audit_callback,
        )
    }

    /// As [`Session::start`], judged by `judge` instead of a policy engine: for embedders
    /// with their own decision logic, and for tests (e.g. a judge that panics, to prove a
    /// panicking session ends alone). Rust only: the C ABI always judges with an engine.
    /// The database is `params.database_uri` (required here: there is no engine to take
    /// its `uri` from).
    pub fn start_with_judge<C>(
        runtime: &Runtime,
        client: C,
        params: SessionParams,
        judge: Arc<dyn Judge>,
        credentials: Arc<dyn CredentialSource>,
        audit_callback: Option<Arc<dyn AuditCallback>>,
    ) -> Result<Session>
    where
        C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        params.session_identity()?;
        let uri =
            match &params.database_uri {
                Some(uri) => DatabaseUri::parse(uri)?,
                None => return Err(config_error(
                    "database_uri is required when the session is not judged by a policy engine",
                )),
            };
        Self::spawn(
            runtime,
            client,
            params,
            uri,
            judge,
            credentials,
            audit_callback,
        )
    }

    fn spawn<C>(
        runtime: &Runtime,
        client: C,
        params: SessionParams,
        uri: DatabaseUri,
        judge: Arc<dyn Judge>,
        credentials: Arc<dyn CredentialSource>,
        audit_callback: Option<Arc<dyn AuditCallback>>,
    ) -> Result<Session>
    where
        C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let user = params.session_identity()?.user().to_string();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            id: audit::new_session_id(),
            shutdown,
            outcome: Mutex::new(None),
            finished: Condvar::new(),
            audit: runtime.audit.sink(audit_callback),
        });
        let fields = SessionFields {
            session_id: shared.id.clone(),
            user,
            db_service: params.database.clone(),
            db_uri: uri.address(),
            db_user: params.db_user.clone(),
            db_name: params.db_name.clone(),
            client_addr: params.client_addr.clone(),
        };
        let config = UpstreamConfig {
            uri,
            ca_file: params.ca_file.clone().map(Into::into),
            db_user: params.db_user.clone(),
            connect_timeout: Duration::from_millis(params.connect_timeout_ms.max(1)),
            handshake_timeout: Duration::from_millis(params.handshake_timeout_ms.max(1)),
        };
        let slot = runtime.sessions.take();
        let over_limit = slot.is_none().then(|| {
            let max = runtime.max_sessions();
            Error::new(
                ResultCode::SessionLimit,
                format!(
                    "the proxy already runs {max} sessions, its cap (max_sessions of the runtime; default {DEFAULT_MAX_SESSIONS}); this connection was refused before contacting the database: try again later, or raise the cap"
                ),
            )
        });
        let guard = FinishGuard(shared.clone());
        let task_shared = shared.clone();
        runtime.handle().spawn(async move {
            let started = Instant::now();
            let counters = relay::Counters::default();
            let session = run(
                client,
                &params,
                &config,
                &*judge,
                &*credentials,
                &task_shared.audit,
                &fields,
                &counters,
                shutdown_rx,
                over_limit,
            );
            // A panic anywhere in the session (a bug) ends this session only: its future is
            // dropped at once (closing both connections), the host learns it from `wait`
            // (PANIC) and from the end event; the runtime's other sessions go on.
            let outcome = match CatchUnwind(Box::pin(session)).await {
                Ok(outcome) => outcome,
                Err(detail) => {
                    let error = Error::new(
                        ResultCode::Panic,
                        format!(
                            "internal error: the session panicked ({detail}); its connections were closed; please report this bug"
                        ),
                    );
                    let stats = counters.stats(started.elapsed(), error.message());
                    let audit = &task_shared.audit;
                    audit.emit_always(&fields.end(&stats, Some(&error), audit.dropped()));
                    Err(error)
                }
            };
            // The place is free before `wait` returns: a host that starts a new session as soon
            // as one ended must find it.
            drop(slot);
            task_shared.finish(outcome);
            drop(guard);
        });
        Ok(Session { shared })
    }

    /// The session id (as in the audit events' `sid`).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Asks the session to end: both connections are closed soon after. Never blocks.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    pub fn is_finished(&self) -> bool {
        self.shared
            .outcome
            .lock()
            .map(|o| o.is_some())
            .unwrap_or(true)
    }

    /// Blocks until the session ends; its counters, or the error that ended it. Refused on
    /// the audit dispatcher thread (inside an audit callback), where it would deadlock.
    pub fn wait(&self) -> Result<SessionStats> {
        self.wait_timeout(None)
            .unwrap_or_else(|| Err(Error::new(ResultCode::InvalidState, "unreachable")))
    }

    /// As [`Session::wait`], giving up after `timeout` (`None` when it did).
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> Option<Result<SessionStats>> {
        if audit::on_audit_dispatcher() {
            return Some(Err(Error::new(
                ResultCode::CalledFromAuditCallback,
                "waiting for a session from inside an audit callback would deadlock (the callback runs on the thread that delivers that session's events); wait from another thread",
            )));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut slot = self
            .shared
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(outcome) = slot.as_ref() {
                return Some(outcome.clone());
            }
            match deadline {
                None => {
                    slot = self
                        .shared
                        .finished
                        .wait(slot)
                        .unwrap_or_else(|p| p.into_inner())
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    slot = self
                        .shared
                        .finished
                        .wait_timeout(slot, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    /// Audit events of this session dropped because the host's callback was too slow.
    pub fn audit_dropped(&self) -> u64 {
        self.shared.audit.dropped()
    }
}

/// Polls a future, turning a panic inside it into `Err(the panic message)`. After a panic
/// the future is never polled again: the caller drops it.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::result::Result<F::Output, String>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        // The future is dropped, never polled again, after a panic: nothing can observe the
        // state it left half-updated.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(std::task::Poll::Ready(value)) => std::task::Poll::Ready(Ok(value)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(payload) => {
                let detail = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_string());
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
                std::task::Poll::Ready(Err(detail))
            }
        }
    }
}

impl relay::Counters {
    /// The session's counters so far, as [`SessionStats`].
    fn stats(&self, duration: Duration, end_reason: &str) -> SessionStats {
        SessionStats {
            bytes_from_client: self.bytes_from_client.load(Ordering::Relaxed),
            bytes_to_client: self.bytes_to_client.load(Ordering::Relaxed),
            messages_from_client: self.messages_from_client.load(Ordering::Relaxed),
            messages_to_client: self.messages_to_client.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            duration,
            end_reason: end_reason.to_string(),
        }
    }
}

/// MongoDB error code sent to a waiting client when the database could not be reached or
/// authenticated to.
fn client_code(e: &Error) -> (i32, &'static str) {
    match e.code() {
        ResultCode::SessionAccessDenied => (13, "Unauthorized"),
        ResultCode::UpstreamAuthFailed => (18, "AuthenticationFailed"),
        ResultCode::ConnectTimeout => (89, "NetworkTimeout"),
        // mongod itself just closes a connection past `maxIncomingConnections`; an error the
        // drivers treat as retryable lets them try again when a place is free.
        ResultCode::SessionLimit => (6, "HostUnreachable"),
        _ => (6, "HostUnreachable"),
    }
}

/// Answers the client's first message (its hello, normally) with the error, so that the
/// driver shows the explanation rather than a bare closed connection.
async fn tell_client<C>(client: &mut C, error: &Error, wait: Duration, write_timeout: Duration)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = frames::FrameReader::new(&mut *client, 4096);
    let frame = match tokio::time::timeout(wait, reader.next(crate::wire::DEFAULT_MAX_MESSAGE_SIZE))
        .await
    {
        Ok(Ok(Some(f))) => f,
        _ => return,
    };
    let (code, name) = client_code(error);
    let Some(reply) = crate::wire::error_reply(
        &frame.request_info(),
        1,
        code,
        name,
        &format!("libdocauth: {}", error.message()),
    ) else {
        return;
    };
    drop(reader);
    let _ = relay::write_to_client(client, &reply, write_timeout).await;
}

/// The connection-level decision, then the database connection (TLS, hello, MONGODB-AWS)
/// unless the host shuts the session down first.
async fn connect_if_admitted(
    judge: &dyn Judge,
    config: &UpstreamConfig,
    credentials: &dyn CredentialSource,
    fields: &SessionFields,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<upstream::Upstream> {
    let admitted = judge.admit();
    if !admitted.allowed {
        return Err(Error::new(
            ResultCode::SessionAccessDenied,
            format!(
                "access denied: user {:?} may not reach database {:?} as db user {:?} (db name {:?}): {}",
                fields.user, fields.db_service, fields.db_user, fields.db_name, admitted.reason
            ),
        ));
    }
    tokio::select! {
        r = upstream::connect(config, credentials) => r,
        _ = shutdown.wait_for(|stop| *stop) => Err(Error::new(ResultCode::SessionIo, "shut down by the host before the database connection was ready")),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<C>(
    mut client: C,
    params: &SessionParams,
    config: &UpstreamConfig,
    judge: &dyn Judge,
    credentials: &dyn CredentialSource,
    audit: &AuditSink,
    fields: &SessionFields,
    counters: &relay::Counters,
    mut shutdown: watch::Receiver<bool>,
    over_limit: Option<Error>,
) -> Result<SessionStats>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let started = Instant::now();
    // Past the runtime's cap the session is not judged: the refusal is the cap's.
    let connected = match over_limit {
        Some(e) => Err(e),
        None => connect_if_admitted(judge, config, credentials, fields, &mut shutdown).await,
    };
    let upstream = match connected {
        Ok(u) => u,
        Err(e) => {
            if e.code() == ResultCode::UpstreamAuthFailed {
                credentials.rejected(&config.db_user);
            }
            audit.emit(&fields.start(Some(&e)));
            if !*shutdown.borrow() {
                tell_client(
                    &mut client,
                    &e,
                    Duration::from_millis(2_000),
                    Duration::from_millis(params.client_write_timeout_ms.max(1)),
                )
                .await;
            }
            let stats = SessionStats {
                duration: started.elapsed(),
                end_reason: e.message().to_string(),
                ..Default::default()
            };
            audit.emit_always(&fields.end(&stats, Some(&e), audit.dropped()));
            return Err(e);
        }
    };
    audit.emit(&fields.start(None));
    let limits = relay::RelayLimits {
        idle_timeout: (params.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(params.idle_timeout_ms)),
        message_timeout: Duration::from_millis(params.message_timeout_ms.max(1)),
        max_message_size: upstream.max_message_size,
        client_write_timeout: Duration::from_millis(params.client_write_timeout_ms.max(1)),
    };
    let outcome = relay::relay(
        client,
        upstream.stream,
        limits,
        judge,
        audit,
        fields,
        counters,
        shutdown,
    )
    .await;
    let stats = counters.stats(
        started.elapsed(),
        match &outcome {
            Ok(reason) => reason,
            Err(e) => e.message(),
        },
    );
    audit.emit_always(&fields.end(&stats, outcome.as_ref().err(), audit.dropped()));
    outcome.map(|_| stats)
}
