//! The host's runtime: the tokio runtime its sessions run on, their audit dispatcher thread,
//! and the cap on sessions running at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::audit::{self, AuditDispatcher};
use super::metrics::{RuntimeMetrics, SessionMetrics};
use super::upstream::TlsConfigs;
use crate::{Error, Result, ResultCode};

/// How many sessions one runtime runs at once unless the host sets another cap
/// ([`Runtime::set_max_sessions`]). Each session holds two sockets and their buffers; a
/// flood of connections must meet a clear refusal, not the process's file-descriptor limit
/// or memory. 10,000 is above the connection limit of the largest DocumentDB instances.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// The running sessions of a runtime, counted against its cap.
pub(super) struct SessionSlots {
    running: AtomicUsize,
    max: AtomicUsize,
}

impl SessionSlots {
    /// A place for one more session, or `None` when the cap is reached.
    pub(super) fn take(self: &Arc<Self>) -> Option<SessionSlot> {
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
pub(super) struct SessionSlot(Arc<SessionSlots>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A tokio runtime owned by the host, plus the audit dispatcher thread of its sessions.
pub struct Runtime {
    /// Taken only by Drop, to shut the workers down with a deadline.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pub(super) audit: AuditDispatcher,
    pub(super) sessions: Arc<SessionSlots>,
    /// The CA bundles its sessions verify databases with, parsed once.
    pub(super) tls_configs: TlsConfigs,
    pub(super) metrics: Arc<SessionMetrics>,
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
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            audit,
            sessions: Arc::new(SessionSlots {
                running: AtomicUsize::new(0),
                max: AtomicUsize::new(DEFAULT_MAX_SESSIONS),
            }),
            tls_configs: TlsConfigs::default(),
            metrics: Arc::default(),
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
        &self.handle
    }

    /// Audit events dropped by all sessions of this runtime (host too slow).
    pub fn audit_dropped(&self) -> u64 {
        self.audit.dropped()
    }

    /// The metrics of this runtime's sessions as they are now, for
    /// [`crate::metrics::render`].
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            metrics: Arc::clone(&self.metrics),
            running: self.running_sessions() as u64,
            audit_delivered: self.audit.delivered(),
            audit_dropped: self.audit.dropped(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Sessions still running are cancelled: their connections close.
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
