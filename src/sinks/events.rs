//! Kubernetes Events for drift: each non-dry-run drift event becomes a Warning Event
//! (events.k8s.io/v1) on the object involved, so `kubectl describe` shows the attempt.
//!
//! Owns a bounded queue and the one task that drains it. [`EventSink::submit`] is a plain,
//! non-async call that never waits: when the queue is full the event is dropped and counted
//! (the journal has it anyway). Repeated attempts on one object with one reason within
//! [`EventSinkConfig::window`] update the first Event's `series` (count and last time) instead
//! of creating one Event each; a burst that arrives together costs one API call. One attempt
//! judged by several policies (one webhook each) is one attempt: counted once. It must not sit
//! on the answer path: no admission answer ever waits for, or fails because of, the API.
//!
//! kube-runtime's `Recorder` aggregates Events too, but not as this needs: it keys a series by
//! the note as well (each of these notes names its own drift event id, so nothing would ever
//! aggregate), and its `publish` awaits the API for every event, where this sink folds a burst
//! into one call behind its bounded queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;

use crate::error_chain as chain;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::{self, ClusterError, Connection, Target};
use crate::config::EventsMode;
use crate::decide::Decision;
use crate::event::DriftEvent;

/// `reportingController` of every Event driftgate writes.
pub const REPORTING_CONTROLLER: &str = "driftgate.dev/driftgate";
/// The API's limit on an Event's `note`, in bytes.
pub const NOTE_LIMIT: usize = 1024;
/// The API's limit on `action`, `reason` and `reportingInstance`, in bytes.
const SHORT_LIMIT: usize = 128;
/// Longest Event name the API accepts (a DNS subdomain).
const NAME_LIMIT: usize = 253;
/// Reports the task takes off the queue at once (and folds together by object and reason).
const BATCH: usize = 64;
/// Objects whose last Event is remembered for aggregation; the oldest are forgotten first.
const MAX_TRACKED: usize = 4096;
/// One API call may take this long before it is given up (the client has no read timeout).
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// The calls of one attempt to the webhooks of several policies arrive within this of each other
/// (the kube-apiserver calls them in parallel, each within its 5 s timeout).
const ATTEMPT_WINDOW: Duration = Duration::from_secs(30);

/// Reason of the Event for a denied change.
pub const REASON_BLOCKED: &str = "DriftBlocked";
/// Reason of the Event for a warned or audited change.
pub const REASON_WARNED: &str = "DriftWarned";
/// Reason of the Event for a repaired change.
pub const REASON_REPAIRED: &str = "DriftRepaired";
/// Reason of the Event for a break-glass change.
pub const REASON_BREAK_GLASS: &str = "BreakGlass";

/// The outcome of [`EventSink::connect`].
#[derive(Debug)]
pub enum Connected {
    /// Events are on.
    On(EventSink, Target),
    /// Events are off, and why.
    Off(String),
}

/// How the sink queues and aggregates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSinkConfig {
    /// Reports the queue holds; beyond this they are dropped and counted.
    pub capacity: usize,
    /// Attempts on one object with one reason within this time of the last one are counted on
    /// the same Event.
    pub window: Duration,
    /// `reportingInstance` of the Events: the pod's name.
    pub reporting_instance: String,
}

impl Default for EventSinkConfig {
    fn default() -> Self {
        EventSinkConfig {
            capacity: 1024,
            window: Duration::from_secs(10 * 60),
            // Kubernetes sets HOSTNAME to the pod's name.
            reporting_instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "driftgate".to_owned()),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    published: AtomicU64,
    failed: AtomicU64,
}

/// The handle the server keeps: submit drift events, read the counters.
#[derive(Debug)]
pub struct EventSink {
    tx: mpsc::Sender<Report>,
    counters: Arc<Counters>,
    worker: Option<JoinHandle<()>>,
}

/// What identifies a series: the object and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    api_version: String,
    kind: String,
    name: String,
    reason: &'static str,
}

/// One drift event, reduced to what its Kubernetes Event needs.
#[derive(Debug, Clone)]
struct Report {
    key: Key,
    uid: Option<String>,
    action: String,
    note: String,
    /// When the drift event was recorded.
    time: time::OffsetDateTime,
    /// What was attempted (who, how, which changes): the same for every policy that judged it.
    attempt: u64,
    /// The policy that judged it.
    policy: String,
}

/// A fingerprint of what was attempted, the same in each policy's drift event.
fn attempt_of(event: &DriftEvent) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&event.user.username, event.operation, event.dry_run).hash(&mut h);
    serde_json::to_vec(&event.changes).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// The Event reason for a drift decision; `None` for decisions that are not drift.
pub fn reason_for(decision: Decision) -> Option<&'static str> {
    match decision {
        Decision::Denied => Some(REASON_BLOCKED),
        Decision::Warned | Decision::Audited => Some(REASON_WARNED),
        Decision::Repaired => Some(REASON_REPAIRED),
        Decision::BreakGlass => Some(REASON_BREAK_GLASS),
        Decision::Allowed => None,
    }
}

/// `s` cut to at most `limit` bytes on a character boundary, with `…` where it was cut.
pub fn truncate(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_owned();
    }
    const ELLIPSIS: &str = "…";
    let mut end = limit.saturating_sub(ELLIPSIS.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &s[..end])
}

fn micro_time(time: time::OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.microsecond()
    )
}

impl Report {
    fn from_event(event: &DriftEvent, uid: Option<&str>) -> Option<Report> {
        if event.dry_run {
            return None;
        }
        let reason = reason_for(event.decision)?;
        let r = &event.resource;
        Some(Report {
            key: Key {
                namespace: r.namespace.to_string(),
                api_version: r.api_version(),
                kind: r.kind.to_string(),
                name: r.name.to_string(),
                reason,
            },
            uid: uid.map(str::to_owned),
            action: truncate(event.operation.as_str(), SHORT_LIMIT),
            note: truncate(&event.message, NOTE_LIMIT),
            time: event.time,
            attempt: attempt_of(event),
            policy: event.policy.to_string(),
        })
    }
}

impl EventSink {
    /// Starts the sink's task on the current Tokio runtime, posting Events through `client`.
    /// Outside a runtime nothing can be posted: the sink then drops (and counts) everything.
    pub fn start(client: Client, config: EventSinkConfig) -> EventSink {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let publisher = Publisher::new(client, config, counters.clone());
                Some(handle.spawn(publisher.run(rx)))
            }
            Err(_) => {
                tracing::error!("Kubernetes Events are off: the sink was started outside a Tokio runtime");
                None
            }
        };
        EventSink { tx, counters, worker }
    }

    /// A sink as `mode` asks (see [`cluster::connect`]): off, with the reason, when there is
    /// no cluster and `mode` is `auto`. Call it within a Tokio runtime.
    pub async fn connect(mode: EventsMode, config: EventSinkConfig) -> Result<Connected, ClusterError> {
        Ok(match cluster::connect(mode, "--events", "Kubernetes Events").await? {
            Connection::On(client, target) => Connected::On(EventSink::start(client, config), target),
            Connection::Off(reason) => Connected::Off(reason),
        })
    }

    /// Queues a drift event for its Kubernetes Event. Never waits: dry runs and decisions that
    /// are not drift are skipped, and when the queue is full the event is dropped and counted.
    pub fn submit(&self, event: &DriftEvent) {
        self.submit_regarding(event, None);
    }

    /// As [`EventSink::submit`], naming the object's uid (the decision core reads it) so that
    /// `kubectl describe` lists the Event; without it the Event is still listed by
    /// `kubectl get events`.
    pub fn submit_regarding(&self, event: &DriftEvent, uid: Option<&str>) {
        let Some(report) = Report::from_event(event, uid) else { return };
        if self.tx.try_send(report).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drift events dropped because the queue was full (or the sink had stopped).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Drift events waiting in the queue.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Events created or updated in the API.
    pub fn published(&self) -> u64 {
        self.counters.published.load(Ordering::Relaxed)
    }

    /// API calls that failed (logged; the drift event is in the journal regardless).
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Stops taking events and waits until the queued ones are posted.
    pub async fn close(self) {
        let EventSink { tx, worker, .. } = self;
        drop(tx);
        if let Some(worker) = worker
            && let Err(e) = worker.await
        {
            tracing::warn!(error = %e, "Kubernetes Events task ended abnormally");
        }
    }
}

/// The Event last written for a key.
#[derive(Debug)]
struct Tracked {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

/// The last attempt seen for a key, and the policies that judged it so far.
#[derive(Debug)]
struct Attempt {
    fingerprint: u64,
    policies: Vec<String>,
    seen: Instant,
}

/// The task's side: posts and patches Events.
struct Publisher {
    client: Client,
    config: EventSinkConfig,
    counters: Arc<Counters>,
    tracked: HashMap<Key, Tracked>,
    attempts: HashMap<Key, Attempt>,
    seq: u64,
}

impl Publisher {
    fn new(client: Client, config: EventSinkConfig, counters: Arc<Counters>) -> Self {
        Publisher { client, config, counters, tracked: HashMap::new(), attempts: HashMap::new(), seq: 0 }
    }

    /// Whether `report` is another policy's judgement of the attempt last seen for its key.
    fn same_attempt(&mut self, report: &Report) -> bool {
        let now = Instant::now();
        if self.attempts.len() >= MAX_TRACKED {
            self.attempts.retain(|_, a| now.duration_since(a.seen) < ATTEMPT_WINDOW);
        }
        match self.attempts.get_mut(&report.key) {
            Some(a)
                if a.fingerprint == report.attempt
                    && now.duration_since(a.seen) < ATTEMPT_WINDOW
                    && !a.policies.contains(&report.policy) =>
            {
                a.policies.push(report.policy.clone());
                true
            }
            _ => {
                let attempt = Attempt { fingerprint: report.attempt, policies: vec![report.policy.clone()], seen: now };
                self.attempts.insert(report.key.clone(), attempt);
                false
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Report>) {
        let mut buf = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut buf, BATCH).await > 0 {
            // Fold the batch by key, in arrival order: one API call per object and reason.
            let mut folded: Vec<(Report, i32)> = Vec::new();
            for report in buf.drain(..) {
                if self.same_attempt(&report) {
                    continue;
                }
                match folded.iter_mut().find(|(r, _)| r.key == report.key) {
                    Some((first, n)) => {
                        *n += 1;
                        first.time = report.time;
                        if first.uid.is_none() {
                            first.uid = report.uid;
                        }
                    }
                    None => folded.push((report, 1)),
                }
            }
            for (report, n) in folded {
                match tokio::time::timeout(API_TIMEOUT, self.publish(report, n)).await {
                    Ok(Ok(())) => {
                        self.counters.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %chain(&e), "failed to write a Kubernetes Event for a drift event");
                    }
                    Err(_) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(timeout = ?API_TIMEOUT, "failed to write a Kubernetes Event in time");
                    }
                }
            }
        }
    }

    /// Counts `n` more attempts on the report's Event, or creates it.
    async fn publish(&mut self, report: Report, n: i32) -> Result<(), kube::Error> {
        let now = Instant::now();
        let window = self.config.window;
        self.tracked.retain(|_, t| now.duration_since(t.last) < window);
        if let Some(t) = self.tracked.get(&report.key) {
            let count = t.count + n;
            let api: Api<Event> = Api::namespaced(self.client.clone(), &t.namespace);
            let patch = json!({ "series": { "count": count, "lastObservedTime": micro_time(report.time) } });
            match api.patch(&t.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    if let Some(t) = self.tracked.get_mut(&report.key) {
                        t.count = count;
                        t.last = now;
                    }
                    return Ok(());
                }
                // The Event expired (or was deleted): start a new one.
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    self.tracked.remove(&report.key);
                }
                Err(e) => return Err(e),
            }
        }
        let event = self.event(&report, n);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        if self.tracked.len() >= MAX_TRACKED
            && let Some(oldest) = self.tracked.iter().min_by_key(|(_, t)| t.last).map(|(k, _)| k.clone())
        {
            self.tracked.remove(&oldest);
        }
        self.tracked.insert(report.key, Tracked { namespace, name, count: n, last: now });
        Ok(())
    }

    /// A new Event for `n` attempts.
    fn event(&mut self, report: &Report, n: i32) -> Event {
        let key = &report.key;
        // Events of cluster-scoped objects live in `default`, as client-go puts them.
        let namespace = if key.namespace.is_empty() { "default".to_owned() } else { key.namespace.clone() };
        self.seq += 1;
        let micros = u64::try_from(report.time.unix_timestamp_nanos() / 1000).unwrap_or_default();
        let suffix = format!(".{micros:x}{:04x}", self.seq & 0xffff);
        let stem: String = key.name.chars().take(NAME_LIMIT - suffix.len()).collect();
        let nanos = report.time.unix_timestamp_nanos() / 1000 * 1000;
        let time = MicroTime(k8s_openapi::jiff::Timestamp::from_nanosecond(nanos).unwrap_or_default());
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{stem}{suffix}")),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            event_time: Some(time.clone()),
            series: (n > 1).then_some(EventSeries { count: n, last_observed_time: time }),
            type_: Some("Warning".to_owned()),
            reason: Some(key.reason.to_owned()),
            action: Some(report.action.clone()),
            note: Some(report.note.clone()),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(truncate(&self.config.reporting_instance, SHORT_LIMIT)),
            regarding: Some(ObjectReference {
                api_version: Some(key.api_version.clone()),
                kind: Some(key.kind.clone()),
                name: Some(key.name.clone()),
                namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
                uid: report.uid.clone(),
                ..ObjectReference::default()
            }),
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_the_decision() {
        for (decision, want) in [
            (Decision::Denied, Some("DriftBlocked")),
            (Decision::Warned, Some("DriftWarned")),
            (Decision::Audited, Some("DriftWarned")),
            (Decision::Repaired, Some("DriftRepaired")),
            (Decision::BreakGlass, Some("BreakGlass")),
            (Decision::Allowed, None),
        ] {
            assert_eq!(reason_for(decision), want, "{decision}");
        }
    }

    #[test]
    fn truncation_keeps_whole_characters_within_the_limit() {
        for (s, limit, want) in [
            ("short", 10, "short"),
            ("abcdefghij", 10, "abcdefghij"),
            ("abcdefghijk", 10, "abcdefg…"),
            ("ééééé", 8, "éé…"),
        ] {
            let got = truncate(s, limit);
            assert_eq!(got, want);
            assert!(got.len() <= limit);
        }
    }

    #[test]
    fn micro_times_are_utc_with_six_digits() {
        for (input, want) in [
            ("2026-11-23T23:30:32.554697358Z", "2026-11-23T23:30:32.554697Z"),
            ("2026-11-24T01:30:32+02:00", "2026-11-23T23:30:32.000000Z"),
        ] {
            let t = time::OffsetDateTime::parse(input, &time::format_description::well_known::Rfc3339).unwrap();
            assert_eq!(micro_time(t), want);
        }
    }
}
