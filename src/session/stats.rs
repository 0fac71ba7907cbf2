//! What a session counts while it runs ([`Counters`]) and what a finished one reports
//! ([`SessionStats`]): its counters and why it ended.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::metrics::{CommandClass as Class, DenialKind, Direction, SessionMetrics};

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

impl Counters {
    /// The session's counters so far, as [`SessionStats`].
    pub(super) fn stats(&self, duration: Duration, end_reason: &str) -> SessionStats {
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

/// Byte and message counters, both ways: the session's own, and its runtime's metrics.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub bytes_from_client: AtomicU64,
    pub bytes_to_client: AtomicU64,
    pub messages_from_client: AtomicU64,
    pub messages_to_client: AtomicU64,
    pub denied: AtomicU64,
    pub metrics: std::sync::Arc<SessionMetrics>,
}

impl Counters {
    pub(crate) fn new(metrics: std::sync::Arc<SessionMetrics>) -> Self {
        Counters {
            metrics,
            ..Default::default()
        }
    }
}

impl Counters {
    /// A message the client sent, `len` bytes.
    pub(super) fn received_from_client(&self, len: usize) {
        self.messages_from_client.fetch_add(1, Ordering::Relaxed);
        self.bytes_from_client
            .fetch_add(len as u64, Ordering::Relaxed);
        self.metrics.bytes.add(Direction::FromClient, len as u64);
    }

    /// A message sent to the client, `len` bytes.
    pub(super) fn sent_to_client(&self, len: usize) {
        self.messages_to_client.fetch_add(1, Ordering::Relaxed);
        self.bytes_to_client
            .fetch_add(len as u64, Ordering::Relaxed);
        self.metrics.bytes.add(Direction::ToClient, len as u64);
    }

    /// A client message denied for `kind`; `class` is the command's reach class.
    pub(super) fn deny(&self, class: Class, kind: DenialKind) {
        self.denied.fetch_add(1, Ordering::Relaxed);
        self.metrics.message_judged(class, Some(kind));
    }
}
