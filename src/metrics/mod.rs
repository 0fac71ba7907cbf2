//! Metrics: what an operator of the proxy watches (sessions, decisions, denials, upstream
//! latency and failures, STS calls, audit delivery), in the Prometheus text format 0.0.4 or
//! OpenMetrics 1.0.
//!
//! Each owner keeps its own metrics: a [`Runtime`](crate::session::Runtime) its sessions'
//! (`session::metrics`), a [`PolicyEngine`](crate::policy::PolicyEngine) its decisions'
//! (`policy::metrics`), a [`CredentialsProvider`](crate::aws::CredentialsProvider) its STS
//! calls' (`aws::provider::metrics`). They count with relaxed atomics only, never a lock:
//! a cached decision costs tens of nanoseconds and a relayed message a few microseconds, and
//! a counter must not be noticed next to them (`BENCHMARKS.md`, "Metrics").
//!
//! [`render`] turns the values into text with the `prometheus-client` crate (the Prometheus
//! project's own Rust client, which implements OpenMetrics): the exposition formats are its
//! job, not ours. Its own metric types are not used on the hot path: its `Family` takes a
//! read lock per update and its `Histogram` a mutex, where ours need one `fetch_add`.
//!
//! Labels are enumerations only ([`Label`]): never a user-chosen string such as a database
//! or collection name, so the number of series is fixed.

use std::ffi::CStr;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The prefix of every metric name.
pub const PREFIX: &str = "docauth";

/// The exposition format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (what every Prometheus server scrapes).
    Prometheus,
    /// OpenMetrics 1.0 text (`# UNIT` lines, `# EOF` at the end).
    OpenMetrics,
}

impl Format {
    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        self.content_type_c().to_str().unwrap_or_default()
    }

    /// [`Format::content_type`] NUL-terminated, for C.
    pub(crate) fn content_type_c(self) -> &'static CStr {
        match self {
            Format::Prometheus => c"text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => c"application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Renders the metrics of the given owners (a runtime's, an engine's, a provider's; any
/// subset) in `format`.
pub fn render(format: Format, sources: Vec<Box<dyn Collector>>) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    for source in sources {
        registry.register_collector(source);
    }
    let mut text = String::new();
    // Writing into a String cannot fail, and our collectors only fail when the writer does.
    let _ = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry),
    };
    text
}

static COUNTING: AtomicBool = AtomicBool::new(true);

/// Turns counting off (or on again) in the whole process. Only for the benchmarks, which
/// measure the same code with metrics on and off in one run; hosts leave it on.
#[doc(hidden)]
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

/// Whether counting is on (see [`set_counting`]).
#[inline]
pub(crate) fn counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// A label with a fixed set of values: a label value is always one of `ALL`.
pub trait Label: Copy + 'static {
    /// The label's name (`reason`, `outcome`…).
    const KEY: &'static str;
    /// Every value, in the order they are rendered.
    const ALL: &'static [Self];
    /// Position in `ALL`.
    fn index(self) -> usize;
    /// The label value.
    fn name(self) -> &'static str;
}

/// Declares a [`Label`] enum: `label! { pub(crate) enum Name: "key" { Variant => "value", … } }`.
macro_rules! label {
    ($(#[$meta:meta])* $vis:vis enum $name:ident : $key:literal { $($(#[$vmeta:meta])* $variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $crate::metrics::Label for $name {
            const KEY: &'static str = $key;
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn index(self) -> usize {
                self as usize
            }
            fn name(self) -> &'static str {
                match self { $($name::$variant => $value),+ }
            }
        }
    };
}
pub(crate) use label;

/// A counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        if counting() {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One counter per value of a label.
pub struct CounterBy<L: Label> {
    values: Box<[Counter]>,
    label: PhantomData<L>,
}

impl<L: Label> Default for CounterBy<L> {
    fn default() -> Self {
        CounterBy {
            values: L::ALL.iter().map(|_| Counter::default()).collect(),
            label: PhantomData,
        }
    }
}

impl<L: Label> fmt::Debug for CounterBy<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(L::ALL.iter().map(|l| (l.name(), self.get(*l))))
            .finish()
    }
}

impl<L: Label> CounterBy<L> {
    #[inline]
    pub fn add(&self, label: L, n: u64) {
        if let Some(c) = self.values.get(label.index()) {
            c.add(n);
        }
    }

    #[inline]
    pub fn inc(&self, label: L) {
        self.add(label, 1)
    }

    pub fn get(&self, label: L) -> u64 {
        self.values.get(label.index()).map_or(0, Counter::get)
    }

    pub fn total(&self) -> u64 {
        self.values.iter().map(Counter::get).sum()
    }
}

/// One counter per pair of values of two labels.
pub struct CounterBy2<A: Label, B: Label> {
    values: Box<[Counter]>,
    labels: PhantomData<(A, B)>,
}

impl<A: Label, B: Label> Default for CounterBy2<A, B> {
    fn default() -> Self {
        CounterBy2 {
            values: (0..A::ALL.len() * B::ALL.len())
                .map(|_| Counter::default())
                .collect(),
            labels: PhantomData,
        }
    }
}

impl<A: Label, B: Label> fmt::Debug for CounterBy2<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CounterBy2")
            .field("total", &self.values.iter().map(Counter::get).sum::<u64>())
            .finish()
    }
}

impl<A: Label, B: Label> CounterBy2<A, B> {
    #[inline]
    pub fn inc(&self, a: A, b: B) {
        if let Some(c) = self.values.get(a.index() * B::ALL.len() + b.index()) {
            c.inc();
        }
    }

    pub fn get(&self, a: A, b: B) -> u64 {
        self.values
            .get(a.index() * B::ALL.len() + b.index())
            .map_or(0, Counter::get)
    }
}

/// A histogram of durations with fixed bucket bounds, one atomic per bucket.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in nanoseconds, ascending; observations above the last fall in `+Inf`.
    bounds_ns: &'static [u64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn new(bounds_ns: &'static [u64]) -> Self {
        Histogram {
            bounds_ns,
            buckets: (0..=bounds_ns.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        if !counting() {
            return;
        }
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let at = self
            .bounds_ns
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(self.bounds_ns.len());
        if let Some(bucket) = self.buckets.get(at) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn encode(&self, encoder: &mut prometheus_client::encoding::MetricEncoder) -> fmt::Result {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds_ns
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, n)| (*b as f64 / 1e9, n.load(Ordering::Relaxed)))
            .collect();
        let overflow = self.buckets.last().map_or(0, |n| n.load(Ordering::Relaxed));
        buckets.push((f64::INFINITY, overflow));
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Bucket bounds in nanoseconds from bounds in microseconds.
pub(crate) const fn micros<const N: usize>(us: [u64; N]) -> [u64; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = us[i] * 1_000;
        i += 1;
    }
    out
}

/// Writes metric families into a collector's encoder; names get [`PREFIX`] from the
/// registry, and the unit suffix (`_seconds`, `_bytes`) and `_total` from the encoder.
pub(crate) struct Families<'a, 'e> {
    encoder: &'a mut DescriptorEncoder<'e>,
}

impl<'a, 'e> Families<'a, 'e> {
    pub(crate) fn new(encoder: &'a mut DescriptorEncoder<'e>) -> Self {
        Families { encoder }
    }

    pub(crate) fn counter(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: u64,
    ) -> fmt::Result {
        let encoder = self
            .encoder
            .encode_descriptor(name, help, unit, MetricType::Counter)?;
        ConstCounter::new(value).encode(encoder)
    }

    pub(crate) fn counter_by<L: Label>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: impl Fn(L) -> u64,
    ) -> fmt::Result {
        let mut encoder = self
            .encoder
            .encode_descriptor(name, help, unit, MetricType::Counter)?;
        for label in L::ALL {
            let labels = [(L::KEY, label.name())];
            ConstCounter::new(value(*label)).encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    pub(crate) fn counter_by2<A: Label, B: Label>(
        &mut self,
        name: &str,
        help: &str,
        value: impl Fn(A, B) -> u64,
    ) -> fmt::Result {
        let mut encoder = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for a in A::ALL {
            for b in B::ALL {
                let labels = [(A::KEY, a.name()), (B::KEY, b.name())];
                ConstCounter::new(value(*a, *b)).encode(encoder.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: i64) -> fmt::Result {
        let encoder = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(encoder)
    }

    /// A histogram of durations (unit: seconds).
    pub(crate) fn histogram(&mut self, name: &str, help: &str, h: &Histogram) -> fmt::Result {
        let mut encoder = self.encoder.encode_descriptor(
            name,
            help,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        h.encode(&mut encoder)
    }

    /// One histogram of durations per value of a label (`histograms[l.index()]`).
    pub(crate) fn histogram_by<L: Label>(
        &mut self,
        name: &str,
        help: &str,
        histograms: &[Histogram],
    ) -> fmt::Result {
        let mut encoder = self.encoder.encode_descriptor(
            name,
            help,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (label, h) in L::ALL.iter().zip(histograms) {
            let labels = [(L::KEY, label.name())];
            h.encode(&mut encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    label! {
        enum Colour: "colour" { Red => "red", Blue => "blue" }
    }

    #[derive(Debug)]
    struct Sample {
        by: CounterBy<Colour>,
        h: Histogram,
    }

    impl Collector for Sample {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            let mut f = Families::new(&mut encoder);
            f.counter_by::<Colour>("paint", "Paint used", Some(&Unit::Bytes), |c| {
                self.by.get(c)
            })?;
            f.histogram("wait_duration", "Waits", &self.h)
        }
    }

    const BOUNDS: [u64; 2] = micros([1_000, 10_000]);

    fn sample() -> std::sync::Arc<Sample> {
        let s = std::sync::Arc::new(Sample {
            by: CounterBy::default(),
            h: Histogram::new(&BOUNDS),
        });
        s.by.add(Colour::Blue, 7);
        s.h.observe(Duration::from_micros(500));
        s.h.observe(Duration::from_millis(5));
        s.h.observe(Duration::from_secs(1));
        s
    }

    #[test]
    fn prometheus_text_has_units_totals_and_cumulative_buckets() {
        let text = render(Format::Prometheus, vec![Box::new(sample())]);
        assert!(
            text.contains("# TYPE docauth_paint_bytes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("docauth_paint_bytes_total{colour=\"red\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("docauth_paint_bytes_total{colour=\"blue\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("docauth_wait_duration_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("docauth_wait_duration_seconds_bucket{le=\"0.01\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("docauth_wait_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("docauth_wait_duration_seconds_count 3\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn the_prometheus_content_type_is_the_crate_s() {
        assert_eq!(
            Format::Prometheus.content_type(),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE
        );
    }

    #[test]
    fn openmetrics_text_has_unit_lines_and_eof() {
        let text = render(Format::OpenMetrics, vec![Box::new(sample())]);
        assert!(
            text.contains("# UNIT docauth_paint_bytes bytes\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
