//! Flood resistance: a token bucket per source address for requests that produce drift events.
//!
//! The kube-apiserver's normal traffic never reaches the limit (people's edits come a few a
//! minute). A source over it is still answered truthfully, but its drift events are counted,
//! not journaled one by one: every [`SUMMARY_EVERY`] (and at shutdown) each such source gets one
//! journal line, its last event with `rateLimited: {count, since}`, and a log line naming it.
//! So a pod that POSTs forged AdmissionReviews at thousands a second cannot rotate the real
//! events out of the journal, nor page people through the sinks line by line.
//!
//! Memory is bounded: at most [`MAX_SOURCES`] addresses are tracked; idle ones are forgotten
//! first, and past that every new address shares one bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::event::{DriftEvent, RateLimited};

/// How often held counts are journaled as summaries.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// The most source addresses tracked at once.
pub const MAX_SOURCES: usize = 4096;
/// Where addresses beyond [`MAX_SOURCES`] are counted together.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The limit: `rate` drift events a second per source, bursts of up to `burst`. A rate of 0
/// turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Sustained drift events a second.
    pub rate: f64,
    /// Drift events at once.
    pub burst: f64,
}

/// The buckets of every source.
#[derive(Debug)]
pub struct Limiter {
    limit: Limit,
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    held: Option<Held>,
}

/// Drift events counted and not journaled yet.
#[derive(Debug)]
struct Held {
    count: u64,
    since: time::OffsetDateTime,
    last: DriftEvent<'static>,
}

/// A source's summary, ready for the journal.
#[derive(Debug)]
pub struct Summary {
    /// The source address.
    pub address: IpAddr,
    /// Its last event, with `rate_limited` set.
    pub event: DriftEvent<'static>,
}

impl Limiter {
    /// A limiter of `limit`.
    pub fn new(limit: Limit) -> Limiter {
        Limiter { limit, sources: Mutex::new(HashMap::new()) }
    }

    /// Whether `event`, from `address`, is journaled now (`true`), or counted into its source's
    /// next summary (`false`, keeping the event as the summary's sample).
    pub fn admit(&self, address: IpAddr, event: &DriftEvent<'_>, now: Instant) -> bool {
        if self.limit.rate <= 0.0 {
            return true;
        }
        let Ok(mut sources) = self.sources.lock() else { return true };
        // One place is kept for the shared bucket of addresses past the cap.
        let room = MAX_SOURCES - 1;
        if !sources.contains_key(&address) && sources.len() >= room {
            sources.retain(|_, b| b.held.is_some() || !b.is_full(self.limit, now));
        }
        let key = if sources.contains_key(&address) || sources.len() < room { address } else { OVERFLOW };
        let bucket =
            sources.entry(key).or_insert_with(|| Bucket { tokens: self.limit.burst, refilled: now, held: None });
        bucket.refill(self.limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        let held =
            bucket.held.get_or_insert_with(|| Held { count: 0, since: event.time, last: event.clone().into_owned() });
        held.count += 1;
        held.last = event.clone().into_owned();
        false
    }

    /// Takes the summaries of every source holding counts.
    pub fn summaries(&self) -> Vec<Summary> {
        let Ok(mut sources) = self.sources.lock() else { return Vec::new() };
        sources
            .iter_mut()
            .filter_map(|(address, bucket)| {
                let held = bucket.held.take()?;
                let mut event = held.last;
                event.rate_limited = Some(RateLimited { count: held.count, since: held.since });
                Some(Summary { address: *address, event })
            })
            .collect()
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// Journals every held summary, with a log line naming its source.
pub async fn journal_summaries(state: &super::AppState) {
    for Summary { address, event } in state.flood.summaries() {
        let count = event.count();
        let since = event.rate_limited.map(|r| r.since);
        let journaled = state.journal.append(event.to_line()).await;
        tracing::warn!(
            source = %address.to_canonical(),
            events = count,
            since = ?since,
            authenticated = event.source.authenticated,
            journaled = journaled.is_ok(),
            last_event = %event.id,
            "a source went over its rate limit of drift events: they were answered, and summarised in one journal line"
        );
    }
}

/// Journals the summaries every [`SUMMARY_EVERY`] until the task is aborted.
pub async fn summarise(state: std::sync::Arc<super::AppState>) {
    loop {
        tokio::time::sleep(SUMMARY_EVERY).await;
        journal_summaries(&state).await;
    }
}

impl Bucket {
    fn refill(&mut self, limit: Limit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.rate).min(limit.burst);
        self.refilled = now;
    }

    fn is_full(&self, limit: Limit, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens + elapsed * limit.rate >= limit.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id":"e-1","time":"2026-11-23T23:30:32Z","decision":"denied","mode":"enforce","policy":"p","rule":"protected","message":"m","operation":"UPDATE","dryRun":false,"user":{"username":"mallory","groups":[]},"resource":{"group":"networking.istio.io","version":"v1","kind":"VirtualService","resource":"virtualservices","namespace":"shop","name":"reviews"},"changes":[],"requestUid":"u"}"#;

    fn event(id: &str) -> DriftEvent<'static> {
        let mut e = DriftEvent::parse(LINE.as_bytes()).unwrap().into_owned();
        e.id = id.to_owned().into();
        e
    }

    #[test]
    fn a_source_over_its_burst_is_counted_into_one_summary_and_others_are_not_touched() {
        let limiter = Limiter::new(Limit { rate: 10.0, burst: 5.0 });
        let (flood, apiserver): (IpAddr, IpAddr) = ([10, 0, 0, 9].into(), [10, 0, 0, 1].into());
        let t0 = Instant::now();
        let admitted = (0..100).filter(|i| limiter.admit(flood, &event(&format!("f-{i}")), t0)).count();
        assert_eq!(admitted, 5, "the burst, then nothing");
        assert!(limiter.admit(apiserver, &event("real"), t0), "another source has its own bucket");
        // A second later the bucket has refilled, up to the burst.
        let later = t0 + Duration::from_secs(1);
        assert_eq!((0..20).filter(|_| limiter.admit(flood, &event("g"), later)).count(), 5);
        let summaries = limiter.summaries();
        assert_eq!(summaries.len(), 1);
        let s = &summaries[0];
        assert_eq!(s.address, flood);
        assert_eq!(s.event.id, "g", "the sample is the last event counted");
        assert_eq!(s.event.count(), 95 + 15);
        assert!(limiter.summaries().is_empty(), "taken once");
    }

    #[test]
    fn off_admits_everything_and_memory_stays_bounded() {
        let off = Limiter::new(Limit { rate: 0.0, burst: 0.0 });
        assert!((0..1000).all(|_| off.admit([10, 0, 0, 9].into(), &event("x"), Instant::now())));
        let limiter = Limiter::new(Limit { rate: 1.0, burst: 1.0 });
        let now = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 500) {
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            limiter.admit(address, &event("x"), now);
            limiter.admit(address, &event("x"), now);
        }
        assert!(limiter.tracked() <= MAX_SOURCES, "{}", limiter.tracked());
        let summaries = limiter.summaries();
        assert!(summaries.iter().any(|s| s.address == OVERFLOW), "past the cap, new sources share a bucket");
    }
}
