//! The credential cache: one entry per (source, role chain), refreshed before expiry, with
//! one STS call per entry at a time and still-valid credentials served while STS is down.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::sts::{Assumed, Caller, Hop};
use super::Inner;
use crate::{Error, Result, ResultCode};

/// Temporary credentials are refreshed this long before they expire.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// When a refresh inside the window finds STS unreachable, the cached credentials are still
/// served if they stay valid at least this long (a signature made with them must still reach
/// STS through DocumentDB before they expire).
pub const STALE_MIN_VALIDITY: Duration = Duration::from_secs(60);

/// After a refresh found STS unreachable, callers are served the still-valid cached
/// credentials without a new STS call for this long.
pub const RETRY_AFTER_FAILED_REFRESH: Duration = Duration::from_secs(30);

/// Cache key: where the first credentials came from, and the role chain.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct ChainKey {
    pub(super) source: String,
    pub(super) hops: Vec<Hop>,
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) value: Option<Assumed>,
    /// The last failure and when it happened: callers that were already waiting when it
    /// happened get it too, instead of each making its own STS call.
    pub(super) failure: Option<(Instant, Error)>,
    /// When (provider clock) a refresh inside the window last found STS unreachable while
    /// `value` was still valid; until `RETRY_AFTER_FAILED_REFRESH` later, `value` is served
    /// without calling STS.
    pub(super) refresh_failed_at: Option<SystemTime>,
}

impl Assumed {
    /// Not yet in the refresh window.
    pub(super) fn is_fresh(&self, now: SystemTime) -> bool {
        matches!(self.expiry.checked_sub(REFRESH_BEFORE_EXPIRY), Some(at) if now < at)
    }

    /// Still valid long enough to be served when a refresh cannot reach STS.
    pub(super) fn is_servable(&self, now: SystemTime) -> bool {
        now.checked_add(STALE_MIN_VALIDITY)
            .is_some_and(|t| t < self.expiry)
    }
}

pub(super) type Entry = Arc<tokio::sync::Mutex<Slot>>;

impl Inner {
    /// The credentials at the end of `hops`, from the cache or from STS. One STS call per
    /// entry at a time: concurrent callers wait on the entry and share its outcome.
    pub(super) async fn resolve_hops(&self, source: &str, hops: &[Hop]) -> Result<Assumed> {
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
            let now = self.clock.now();
            if cached.is_fresh(now) {
                self.metrics.served_from_cache.inc();
                return Ok(cached.clone());
            }
            // STS was unreachable a moment ago: serve the still-valid credentials rather
            // than make every caller wait for another failing call.
            let recently_failed = slot
                .refresh_failed_at
                .and_then(|at| at.checked_add(RETRY_AFTER_FAILED_REFRESH))
                .is_some_and(|retry_at| now < retry_at);
            if recently_failed && cached.is_servable(now) {
                self.metrics.served_stale.inc();
                return Ok(cached.clone());
            }
        }
        if let Some((at, error)) = &slot.failure {
            if *at >= arrived {
                return Err(error.clone());
            }
        }
        let outcome = async {
            if prefix.is_empty() {
                let base = self.source.credentials(&self.settings).await?;
                self.assume_role(Caller::Base(&base), last).await
            } else {
                let previous = Box::pin(self.resolve_hops(source, prefix)).await?;
                self.assume_role(Caller::Assumed(&previous), last).await
            }
        }
        .await;
        let now = self.clock.now();
        match outcome {
            Ok(assumed) => {
                slot.value = Some(assumed.clone());
                slot.failure = None;
                slot.refresh_failed_at = None;
                Ok(assumed)
            }
            Err(error) => {
                // STS down during the refresh window: the cached credentials are still
                // valid, so keep serving them (and say so) instead of failing sessions.
                if error.code() == ResultCode::AwsStsUnreachable {
                    if let Some(cached) = slot.value.as_ref().filter(|c| c.is_servable(now)) {
                        let left = cached.expiry.duration_since(now).unwrap_or_default();
                        tracing::warn!(
                            role = %last.role,
                            session = %last.session_name,
                            access_key_id = %cached.credentials.access_key_id(),
                            expires_in_secs = left.as_secs(),
                            error = %error.message(),
                            "docauth: could not renew AWS credentials; serving the cached ones until they expire"
                        );
                        let cached = cached.clone();
                        self.metrics.served_stale.inc();
                        slot.refresh_failed_at = Some(now);
                        slot.failure = None;
                        return Ok(cached);
                    }
                }
                slot.value = None;
                slot.refresh_failed_at = None;
                slot.failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }
}
