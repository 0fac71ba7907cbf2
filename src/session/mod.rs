//! The proxied session: a client connection handed over by the host, TLS + MONGODB-AWS to the
//! database ([`upstream`]), every client message judged and relayed ([`relay`]), audit
//! events to the host ([`audit`]).
//!
//! What the relay needs from the policy engine and the credentials provider is expressed as
//! two small traits, [`Judge`] ([`judge`]) and [`CredentialSource`] ([`credentials`]). The
//! host's parameters are [`SessionParams`] ([`params`]); sessions run on a [`Runtime`]
//! ([`runtime`]). This file keeps [`Session`]: starting one, waiting for it, and its `run`.

pub mod audit;
mod credentials;
mod frames;
mod judge;
pub mod metrics;
mod params;
mod relay;
mod runtime;
mod stats;
pub mod upstream;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

pub use audit::{AuditCallback, AuditDispatcher, AuditSink, DecidedBy, SessionFields};
pub use credentials::{BoxFuture, CredentialSource, ProviderCredentials, StaticCredentials};
pub use judge::{CommandAccess, EngineJudge, Judge, JudgedIdentity, SessionIdentity, Verdict};
pub use params::{SessionParams, DEFAULT_CLIENT_WRITE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS};
pub use runtime::{Runtime, DEFAULT_MAX_SESSIONS};
use stats::Counters;
pub use stats::SessionStats;
pub use upstream::{DatabaseUri, UpstreamConfig, UpstreamTls};

use crate::policy::PolicyEngine;
use crate::{Error, Result, ResultCode};
use params::config_error;

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
        let judge = EngineJudge::new(
            Arc::clone(&engine),
            params.identity.clone(),
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
        // Everything the session needs from the host's parameters is derived here, on the
        // caller's thread: a bad CA bundle is the start's error, not the session's.
        let user = params.identity.user().to_string();
        let config = UpstreamConfig {
            tls: UpstreamTls::for_uri(
                &uri,
                params.ca_file.as_deref().map(std::path::Path::new),
                &runtime.tls_configs,
            )?,
            uri,
            db_user: params.db_user.clone(),
            session_user: user.clone(),
            connect_timeout: Duration::from_millis(params.connect_timeout_ms.max(1)),
            handshake_timeout: Duration::from_millis(params.handshake_timeout_ms.max(1)),
        };
        let limits = relay::RelayLimits {
            idle_timeout: (params.idle_timeout_ms > 0)
                .then(|| Duration::from_millis(params.idle_timeout_ms)),
            message_timeout: Duration::from_millis(params.message_timeout_ms.max(1)),
            // Until the database's hello gives its maxMessageSizeBytes (`run`).
            max_message_size: crate::wire::DEFAULT_MAX_MESSAGE_SIZE,
            client_write_timeout: Duration::from_millis(params.client_write_timeout_ms.max(1)),
        };
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
            db_uri: config.uri.address(),
            db_user: params.db_user.clone(),
            db_name: params.db_name.clone(),
            client_addr: params.client_addr.clone(),
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
        let runtime_metrics = Arc::clone(&runtime.metrics);
        runtime_metrics.started.inc();
        runtime.handle().spawn(async move {
            let started = Instant::now();
            let counters = Counters::new(runtime_metrics);
            let session = run(
                client,
                limits,
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
                    counters.metrics.ended.inc(metrics::EndReason::Panic);
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
    metrics: &metrics::SessionMetrics,
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
        r = upstream::connect(config, credentials, metrics) => r,
        _ = shutdown.wait_for(|stop| *stop) => Err(Error::new(ResultCode::SessionIo, "shut down by the host before the database connection was ready")),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<C>(
    mut client: C,
    limits: relay::RelayLimits,
    config: &UpstreamConfig,
    judge: &dyn Judge,
    credentials: &dyn CredentialSource,
    audit: &AuditSink,
    fields: &SessionFields,
    counters: &Counters,
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
        None => {
            connect_if_admitted(
                judge,
                config,
                credentials,
                fields,
                &counters.metrics,
                &mut shutdown,
            )
            .await
        }
    };
    let upstream = match connected {
        Ok(u) => u,
        Err(e) => {
            if e.code() == ResultCode::UpstreamAuthFailed {
                credentials.rejected(&config.db_user);
            }
            counters.metrics.ended.inc(if *shutdown.borrow() {
                metrics::EndReason::ShutDown
            } else {
                metrics::EndReason::of_error(&e)
            });
            audit.emit(&fields.start(Some(&e)));
            if !*shutdown.borrow() {
                tell_client(
                    &mut client,
                    &e,
                    Duration::from_millis(2_000),
                    limits.client_write_timeout,
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
        max_message_size: upstream.max_message_size,
        ..limits
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
            Ok(ended) => ended.text(),
            Err(e) => e.message(),
        },
    );
    counters.metrics.ended.inc(match &outcome {
        Ok(ended) => ended.reason(),
        // During the relay these come from the database breaking the protocol or closing
        // with replies owed, not from the connection phase.
        Err(e)
            if matches!(
                e.code(),
                ResultCode::UpstreamClosed | ResultCode::UpstreamProtocol
            ) =>
        {
            metrics::EndReason::DatabaseFault
        }
        Err(e) => metrics::EndReason::of_error(e),
    });
    audit.emit_always(&fields.end(&stats, outcome.as_ref().err(), audit.dropped()));
    outcome.map(|_| stats)
}
