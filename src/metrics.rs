//! Prometheus metrics: what the server counts, and the text `GET /metrics` serves.
//!
//! Counters and histograms are updated where things happen (the request handler, the journal's
//! observer); values that other parts already keep (certificate expiry, policies loaded, the
//! Events queue) are read at scrape time through registered functions, so no module has to push
//! them here. Owns no I/O: the metrics port's server lives in `http`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::journal::JournalObserver;

/// Latency buckets fit for sub-millisecond answers (seconds): 50 µs … 5 s.
const LATENCY_BUCKETS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Labels of an admission request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate` or `mutate`.
    pub endpoint: &'static str,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub operation: &'static str,
    /// The verdict's decision (`allowed`, `denied`, …).
    pub decision: &'static str,
    /// The object's kind.
    pub kind: String,
}

/// Labels of a drift event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    /// `denied`, `warned`, `audited`, `repaired`, `break-glass`.
    pub decision: &'static str,
    /// `true` when the caller presented a client certificate the client CA signed.
    pub authenticated: &'static str,
    /// The object's kind.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
}

/// Labels of a rate-limited source.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// Its address (`other` past [`MAX_SOURCE_LABELS`] addresses).
    pub source: String,
}

/// The most source addresses named in `driftgate_rate_limited_events_total`; the rest are
/// counted as `other`, so a flood from many addresses cannot grow the metrics without bound.
pub const MAX_SOURCE_LABELS: usize = 64;

/// Labels of a refused (4xx) request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BadRequestLabels {
    /// The path.
    pub endpoint: &'static str,
    /// The HTTP status code.
    pub code: u16,
}

/// Labels of a sink's delivery metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    /// The sink's name.
    sink: String,
    /// `stdout`, `otlp`, `webhook`.
    r#type: &'static str,
}

/// One sink's delivery meters, kept by its forwarder.
#[derive(Debug, Clone, Default)]
pub struct SinkMeters {
    /// Drift events the receiver accepted.
    pub delivered: Counter,
    /// Deliveries that failed and were retried.
    pub failed_attempts: Counter,
    /// Drift events lost before delivery (the undelivered cap, a torn line, an unreadable one).
    pub dropped: Counter,
    /// Journal lines not yet delivered (or filtered out).
    pub lag_events: Gauge,
    /// Age of the oldest drift event not yet delivered (0 when caught up).
    pub lag_seconds: Gauge,
}

#[derive(Debug, Clone, Default)]
struct SinkFamilies {
    delivered: Family<SinkLabels, Counter>,
    failed_attempts: Family<SinkLabels, Counter>,
    dropped: Family<SinkLabels, Counter>,
    lag_events: Family<SinkLabels, Gauge>,
    lag_seconds: Family<SinkLabels, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// A value read at scrape time.
type Reader = Box<dyn Fn() -> i64 + Send + Sync>;

#[derive(Default)]
struct Readings {
    counters: Vec<(&'static str, &'static str, Reader)>,
    gauges: Vec<(&'static str, &'static str, Reader)>,
}

impl std::fmt::Debug for Readings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readings").field("counters", &self.counters.len()).field("gauges", &self.gauges.len()).finish()
    }
}

#[derive(Debug, Clone)]
struct ReadingsCollector(Arc<std::sync::RwLock<Readings>>);

impl Collector for ReadingsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(readings) = self.0.read() else { return Ok(()) };
        for (name, help, read) in &readings.counters {
            let counter = ConstCounter::new(u64::try_from(read()).unwrap_or(0));
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        for (name, help, read) in &readings.gauges {
            let gauge = ConstGauge::new(read());
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// Every metric driftgate exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    readings: ReadingsCollector,
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    bad_requests: Family<BadRequestLabels, Counter>,
    drift_events: Family<DriftLabels, Counter>,
    journal_append: Histogram,
    journal_fsync: Histogram,
    journal_errors: Counter,
    sinks: SinkFamilies,
    rate_limited: Family<SourceLabels, Counter>,
    rate_limited_named: std::sync::Mutex<rustc_hash::FxHashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// All metrics registered, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "driftgate_admission_requests",
            "Admission requests answered, by endpoint, operation, decision and kind",
            requests.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "driftgate_admission_duration_seconds",
            "Time from request to answer, including the durable journal write of drift events",
            latency.clone(),
        );
        let bad_requests = Family::<BadRequestLabels, Counter>::default();
        registry.register(
            "driftgate_admission_bad_requests",
            "Requests refused with a 4xx before any decision (malformed body, wrong type, too large)",
            bad_requests.clone(),
        );
        let drift_events = Family::<DriftLabels, Counter>::default();
        registry.register(
            "driftgate_drift_events",
            "Drift events recorded, by decision, kind and namespace",
            drift_events.clone(),
        );
        let journal_append = latency_histogram();
        registry.register(
            "driftgate_journal_append_seconds",
            "Time a drift event waits until it is durable in the journal (queue, write, fsync)",
            journal_append.clone(),
        );
        let journal_fsync = latency_histogram();
        registry.register(
            "driftgate_journal_fsync_seconds",
            "Time of one group-committed journal write and fsync",
            journal_fsync.clone(),
        );
        let journal_errors = Counter::default();
        registry.register(
            "driftgate_journal_errors",
            "Journal batches that failed to write or sync",
            journal_errors.clone(),
        );
        let sinks = SinkFamilies::default();
        registry.register(
            "driftgate_sink_delivered",
            "Drift events a sink's receiver accepted",
            sinks.delivered.clone(),
        );
        registry.register(
            "driftgate_sink_failed_attempts",
            "Deliveries to a sink that failed and will be retried",
            sinks.failed_attempts.clone(),
        );
        registry.register(
            "driftgate_sink_dropped",
            "Drift events a sink lost before delivery (its backlog outgrew the undelivered cap, or a line was unreadable)",
            sinks.dropped.clone(),
        );
        registry.register(
            "driftgate_sink_lag_events",
            "Journal lines a sink has not yet read and delivered",
            sinks.lag_events.clone(),
        );
        registry.register(
            "driftgate_sink_lag_seconds",
            "Age of the oldest drift event a sink has not yet delivered (0 when caught up)",
            sinks.lag_seconds.clone(),
        );
        let rate_limited = Family::<SourceLabels, Counter>::default();
        registry.register(
            "driftgate_rate_limited_events",
            "Drift events over a source's rate limit: answered, and summarised in the journal instead of journaled one by one",
            rate_limited.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("driftgate_build_info", "The running build", build);
        let readings = ReadingsCollector(Arc::default());
        registry.register_collector(Box::new(readings.clone()));
        Metrics {
            registry,
            readings,
            requests,
            latency,
            bad_requests,
            drift_events,
            journal_append,
            journal_fsync,
            journal_errors,
            sinks,
            rate_limited,
            rate_limited_named: std::sync::Mutex::default(),
        }
    }

    /// The delivery meters of the sink `sink` of type `kind`.
    pub fn sink(&self, sink: &str, kind: &'static str) -> SinkMeters {
        let labels = SinkLabels { sink: sink.to_owned(), r#type: kind };
        let f = &self.sinks;
        SinkMeters {
            delivered: f.delivered.get_or_create(&labels).clone(),
            failed_attempts: f.failed_attempts.get_or_create(&labels).clone(),
            dropped: f.dropped.get_or_create(&labels).clone(),
            lag_events: f.lag_events.get_or_create(&labels).clone(),
            lag_seconds: f.lag_seconds.get_or_create(&labels).clone(),
        }
    }

    /// Exports a counter whose value `read` gives at scrape time (`_total` is added to `name`).
    pub fn counter_fn(&self, name: &'static str, help: &'static str, read: impl Fn() -> i64 + Send + Sync + 'static) {
        if let Ok(mut r) = self.readings.0.write() {
            r.counters.push((name, help, Box::new(read)));
        }
    }

    /// Exports a gauge whose value `read` gives at scrape time.
    pub fn gauge_fn(&self, name: &'static str, help: &'static str, read: impl Fn() -> i64 + Send + Sync + 'static) {
        if let Ok(mut r) = self.readings.0.write() {
            r.gauges.push((name, help, Box::new(read)));
        }
    }

    /// Counts an answered admission request and its latency.
    pub fn request(&self, labels: RequestLabels, took: Duration) {
        self.latency.get_or_create(&EndpointLabels { endpoint: labels.endpoint }).observe(took.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts a request refused before any decision.
    pub fn bad_request(&self, endpoint: &'static str, code: u16) {
        self.bad_requests.get_or_create(&BadRequestLabels { endpoint, code }).inc();
    }

    /// Counts a drift event and how long its journal append took.
    pub fn drift_event(&self, labels: DriftLabels, append: Duration) {
        self.journal_append.observe(append.as_secs_f64());
        self.drift_events.get_or_create(&labels).inc();
    }

    /// Counts `n` drift events of `source` over its rate limit.
    pub fn rate_limited(&self, source: &str, n: u64) {
        let named = self.rate_limited_named.lock().is_ok_and(|mut named| {
            named.contains(source) || (named.len() < MAX_SOURCE_LABELS && named.insert(source.to_owned()))
        });
        let source = if named { source } else { "other" };
        self.rate_limited.get_or_create(&SourceLabels { source: source.to_owned() }).inc_by(n);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "failed to encode metrics");
        }
        out
    }
}

impl JournalObserver for Metrics {
    fn synced(&self, took: Duration, _lines: usize) {
        self.journal_fsync.observe(took.as_secs_f64());
    }

    fn failed(&self) {
        self.journal_errors.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_counters_histograms_and_readings() {
        let m = Metrics::new();
        let labels = || RequestLabels {
            endpoint: "validate",
            operation: "UPDATE",
            decision: "denied",
            kind: "VirtualService".into(),
        };
        m.request(labels(), Duration::from_micros(120));
        m.request(labels(), Duration::from_micros(80));
        m.gauge_fn("driftgate_policies_loaded", "Policies in force", || 3);
        m.counter_fn("driftgate_certificate_reloads", "Certificates reloaded", || 2);
        m.failed();
        let text = m.encode();
        for line in [
            "driftgate_admission_requests_total{endpoint=\"validate\",operation=\"UPDATE\",decision=\"denied\",kind=\"VirtualService\"} 2",
            "driftgate_admission_duration_seconds_bucket{le=\"0.0001\",endpoint=\"validate\"} 1",
            "driftgate_admission_duration_seconds_count{endpoint=\"validate\"} 2",
            "driftgate_policies_loaded 3",
            "driftgate_certificate_reloads_total 2",
            "driftgate_journal_errors_total 1",
            "driftgate_build_info{version=\"",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
