//! The metrics of one policy engine (over all its generations: a reload keeps them):
//! decisions by outcome and by whether the cache answered, and how long the decisions the
//! rules had to evaluate took.
//!
//! A cached decision costs tens of nanoseconds, so it gets one relaxed `fetch_add` and no
//! clock read: only the decisions the cache could not answer (tens of microseconds of Rego)
//! are timed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics::{label, micros, CounterBy2, Families, Histogram};

label! {
    /// A decision's outcome.
    pub(crate) enum Outcome: "outcome" {
        Allowed => "allowed",
        Denied => "denied",
    }
}

impl Outcome {
    pub(crate) fn of(allowed: bool) -> Outcome {
        if allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        }
    }
}

label! {
    /// Whether the decision cache answered.
    pub(crate) enum Cache: "cache" {
        Hit => "hit",
        Miss => "miss",
    }
}

/// Evaluated decisions: 10 µs to 100 ms.
const DECISION_BOUNDS: [u64; 13] = micros([
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
]);

/// The counters of one engine.
#[derive(Debug)]
pub(crate) struct PolicyMetrics {
    /// One counter per (outcome, cache): decisions and cache hits/misses are both read
    /// from it, so a decision costs one `fetch_add`.
    decisions: CounterBy2<Outcome, Cache>,
    evaluation: Histogram,
}

impl Default for PolicyMetrics {
    fn default() -> Self {
        PolicyMetrics {
            decisions: CounterBy2::default(),
            evaluation: Histogram::new(&DECISION_BOUNDS),
        }
    }
}

impl PolicyMetrics {
    /// A decision the cache answered.
    #[inline]
    pub(crate) fn hit(&self, allowed: bool) {
        self.decisions.inc(Outcome::of(allowed), Cache::Hit);
    }

    /// A decision the rules evaluated in `took`.
    pub(crate) fn evaluated(&self, allowed: bool, took: Duration) {
        self.decisions.inc(Outcome::of(allowed), Cache::Miss);
        self.evaluation.observe(took);
    }

    fn cache(&self, cache: Cache) -> u64 {
        self.decisions.get(Outcome::Allowed, cache) + self.decisions.get(Outcome::Denied, cache)
    }
}

/// What [`crate::metrics::render`] shows of an engine.
#[derive(Debug)]
pub struct EngineMetrics(pub(crate) Arc<PolicyMetrics>);

impl Collector for EngineMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let m = &*self.0;
        let mut f = Families::new(&mut encoder);
        f.counter_by::<Outcome>(
            "policy_decisions",
            "Access decisions made by the policy engine, by outcome",
            None,
            |o| m.decisions.get(o, Cache::Hit) + m.decisions.get(o, Cache::Miss),
        )?;
        f.counter(
            "policy_cache_hits",
            "Decisions answered from the decision cache",
            None,
            m.cache(Cache::Hit),
        )?;
        f.counter(
            "policy_cache_misses",
            "Decisions the rules had to evaluate (not in the cache)",
            None,
            m.cache(Cache::Miss),
        )?;
        f.histogram(
            "policy_decision_duration",
            "Time of the decisions the rules evaluated (cache hits are not timed)",
            &m.evaluation,
        )
    }
}
