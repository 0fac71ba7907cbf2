//! What a finished session reports: its counters and why it ended.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::relay::Counters;

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
