//! The metrics of one credentials provider: STS calls by operation and outcome (throttling
//! apart), their latency, and credentials served from the cache, fresh or stale.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sts::error::SdkError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::aws::sts_error;
use crate::metrics::{label, micros, Counter, CounterBy2, Families, Histogram, Label};
use crate::{Error, ResultCode};

label! {
    /// An STS operation the provider calls.
    pub(crate) enum Operation: "operation" {
        AssumeRole => "AssumeRole",
        GetCallerIdentity => "GetCallerIdentity",
    }
}

label! {
    /// What an STS call came to.
    pub(crate) enum Outcome: "outcome" {
        Ok => "ok",
        /// STS asked us to slow down (Throttling, RequestLimitExceeded, HTTP 429).
        Throttled => "throttled",
        /// AccessDenied: the trust policy or the caller's permissions.
        Denied => "denied",
        /// Expired or invalid credentials, bad signature.
        InvalidToken => "invalid_token",
        /// No answer: connection refused, timeout.
        Unreachable => "unreachable",
        Error => "error",
    }
}

impl Outcome {
    /// The outcome of a failed call: `throttled` is told by STS's error code, the others by
    /// the error the call was mapped to.
    pub(crate) fn of_failure<E>(sdk_error: &SdkError<E, HttpResponse>, error: &Error) -> Outcome
    where
        E: aws_sdk_sts::error::ProvideErrorMetadata,
    {
        if sts_error::is_throttling(sdk_error) {
            return Outcome::Throttled;
        }
        match error.code() {
            ResultCode::AwsAssumeRoleDenied => Outcome::Denied,
            ResultCode::AwsInvalidToken => Outcome::InvalidToken,
            ResultCode::AwsStsUnreachable => Outcome::Unreachable,
            _ => Outcome::Error,
        }
    }
}

/// STS calls: 10 ms to 30 s.
const STS_BOUNDS: [u64; 11] = micros([
    10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    30_000_000,
]);

/// The counters of one provider.
#[derive(Debug)]
pub(crate) struct ProviderMetrics {
    calls: CounterBy2<Operation, Outcome>,
    /// One per [`Operation`], in `Operation::ALL` order.
    latency: [Histogram; 2],
    pub(crate) served_from_cache: Counter,
    pub(crate) served_stale: Counter,
}

impl Default for ProviderMetrics {
    fn default() -> Self {
        ProviderMetrics {
            calls: CounterBy2::default(),
            latency: [Histogram::new(&STS_BOUNDS), Histogram::new(&STS_BOUNDS)],
            served_from_cache: Counter::default(),
            served_stale: Counter::default(),
        }
    }
}

impl ProviderMetrics {
    pub(crate) fn call(&self, operation: Operation, outcome: Outcome, took: Duration) {
        self.calls.inc(operation, outcome);
        if let Some(h) = self.latency.get(operation.index()) {
            h.observe(took);
        }
    }
}

/// What [`crate::metrics::render`] shows of a credentials provider.
#[derive(Debug)]
pub struct CredentialsMetrics(pub(crate) Arc<ProviderMetrics>);

impl Collector for CredentialsMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let m = &*self.0;
        let mut f = Families::new(&mut encoder);
        f.counter_by2::<Operation, Outcome>(
            "sts_calls",
            "STS calls made by the credentials provider, by operation and outcome",
            |op, outcome| m.calls.get(op, outcome),
        )?;
        f.histogram_by::<Operation>(
            "sts_call_duration",
            "Time of the STS calls, by operation",
            &m.latency,
        )?;
        f.counter(
            "credentials_served_from_cache",
            "Credentials served from the provider's cache without an STS call (each hop of a role chain is its own entry)",
            None,
            m.served_from_cache.get(),
        )?;
        f.counter(
            "credentials_served_stale",
            "Cached credentials served in their refresh window because STS was unreachable",
            None,
            m.served_stale.get(),
        )
    }
}
