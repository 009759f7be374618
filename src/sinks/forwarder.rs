//! A sink's forwarder: follows the journal from the sink's cursor and delivers what the sink
//! wants, in order, at least once.
//!
//! Each round reads a bounded batch of durable lines ([`Tail`]), keeps the drift events the
//! sink's filters want, delivers them (retrying with exponential backoff and jitter, 1 s up to
//! 60 s, until the receiver takes them or refuses one for good), and then stores the cursor
//! past the batch (synced to disk at most once a second). A SIGKILL between delivery and store
//! redelivers that batch after restart: duplicates only within the last batch, nothing
//! skipped; a power loss redelivers at most about the last second's. Memory is one batch whatever the
//! backlog: a dead receiver leaves events on disk, where rotation keeps them up to the
//! undelivered cap. It runs beside the server, never on an admission answer's path.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;

use super::settings::SinkSettings;
use super::{Deliver, Failure, Reads, Record, Sink};
use crate::event::{Brief, DriftEvent};
use crate::journal::cursor::{self, Cursor};
use crate::journal::tail::{Batch, Start, Tail};
use crate::journal::{DropLedger, Journal, Synced};
use crate::metrics::SinkMeters;

/// The first wait after a failed delivery.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// About the most bytes of journal read for one batch.
const BATCH_BYTES: usize = 1 << 20;
/// How often a forwarder gathering a batch looks whether a full one is waiting.
const GATHER_POLL: Duration = Duration::from_millis(50);
/// How often an idle forwarder looks at the journal even when told nothing (a safety net: the
/// writer tells it of every synced batch and rotation).
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How often, at most, a stored cursor is also synced to disk. Every store survives a crash of
/// driftgate; one synced a second bounds what a power loss redelivers without a disk sync a
/// batch competing with the journal's own.
const CURSOR_SYNC: Duration = Duration::from_secs(1);

/// One sink's forwarder.
pub struct Forwarder {
    settings: SinkSettings,
    sink: Sink,
    journal: PathBuf,
    synced: watch::Receiver<Synced>,
    meters: SinkMeters,
    cursor_path: PathBuf,
    drops: DropLedger,
    /// What was durable when the forwarder was made, before the server answered anything: a
    /// new sink without replay starts after it, however late its thread begins.
    started: Synced,
}

impl Forwarder {
    /// A forwarder of `journal`'s events to `sink`.
    pub fn new(settings: SinkSettings, sink: Sink, journal: &Journal, meters: SinkMeters) -> Forwarder {
        let cursor_path = cursor::cursor_path(journal.path(), settings.name());
        Forwarder {
            settings,
            sink,
            journal: journal.path().to_owned(),
            synced: journal.synced(),
            meters,
            cursor_path,
            drops: journal.drops(),
            started: *journal.synced().borrow(),
        }
    }

    /// Delivers until the task is aborted.
    pub async fn run(mut self) {
        let name = self.settings.name().to_owned();
        let target = self.sink.target();
        let start = match cursor::load(&self.cursor_path) {
            Ok(Some(c)) => Start::At(c),
            Ok(None) if self.settings.replay => Start::Beginning,
            Ok(None) => Start::After(self.started),
            Err(e) => {
                tracing::error!(sink = %name, error = %e, "the sink's cursor is unreadable: delivering the whole journal again (duplicates, nothing lost)");
                Start::Beginning
            }
        };
        let fresh = !matches!(start, Start::At(_));
        let tail = Tail::new(&self.journal, self.synced.clone(), start).with_ledger(self.drops.clone(), &name);
        let lines_then = self.synced.borrow().lines;
        let Some((mut tail, (pending, position))) =
            blocking(tail, |t| (t.pending_lines().unwrap_or(0), t.position().ok().flatten())).await
        else {
            return;
        };
        tracing::info!(sink = %name, r#type = self.settings.kind.as_str(), to = %target, backlog = pending, "delivering drift events");
        let mut backlog = Backlog {
            base: i64::try_from(pending).unwrap_or(i64::MAX) - i64::try_from(lines_then).unwrap_or(0),
            consumed: 0,
        };
        // A new cursor is stored at once, so rotation keeps what a replay is about to read.
        let mut to_store: Option<Cursor> = if fresh { position } else { None };
        let mut stored: Option<Cursor> = None;
        let mut synced_at: Option<Instant> = None;
        let mut failures: u64 = 0;
        // The buffer every batch is read into, handed back after each: one allocation, made and
        // freed on this thread, however many batches.
        let mut spare: Vec<u8> = Vec::new();
        loop {
            let store = to_store.take().filter(|c| stored.as_ref() != Some(c));
            let durable = synced_at.is_none_or(|at| at.elapsed() >= CURSOR_SYNC);
            if store.is_some() && durable {
                synced_at = Some(Instant::now());
            }
            let (path, max, buf) =
                (self.cursor_path.clone(), self.settings.batch_max_events, std::mem::take(&mut spare));
            let Some((t, (store_result, read))) = blocking(tail, move |t| {
                let result = store.map(|c| cursor::store(&path, &c, durable).map(|()| c));
                (result, t.read(max, BATCH_BYTES, buf))
            })
            .await
            else {
                return;
            };
            tail = t;
            match store_result {
                Some(Ok(c)) => stored = Some(c),
                Some(Err(e)) => {
                    tracing::warn!(sink = %name, error = %e, "the sink's cursor could not be stored: a restart would deliver again what was delivered since")
                }
                None => {}
            }
            let batch = match read {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(sink = %name, error = %e, journal = %self.journal.display(), "the journal could not be read; trying again");
                    tokio::time::sleep(FIRST_RETRY).await;
                    continue;
                }
            };
            self.account_losses(&name, &batch);
            backlog.consumed += i64::try_from(batch.lines.len() as u64 + batch.dropped).unwrap_or(i64::MAX);
            if batch.lines.is_empty() {
                if let Some(lines) = batch.caught_up {
                    // Every line synced so far is read: the count starts again from here, so a
                    // line synced while the forwarder started is not counted as lag for ever.
                    backlog.base = backlog.consumed - i64::try_from(lines).unwrap_or(i64::MAX);
                }
                let skipped = !batch.is_empty();
                to_store = batch.end;
                spare = batch.lines.into_buffer();
                self.meters.lag_events.set(backlog.lines(&self.synced));
                // Something was skipped (files deleted unread, a torn line): read on at once.
                if skipped || to_store.as_ref().is_some_and(|c| stored.as_ref() != Some(c)) {
                    continue;
                }
                self.meters.lag_seconds.set(0);
                self.wait(&backlog).await;
                continue;
            }
            failures = match &self.sink {
                // Standard output writes the lines as recorded: only what its filters read is parsed.
                Sink::Stdout(s) => {
                    self.forward::<Brief, _>(&name, &batch, (&mut tail, &mut backlog), failures, s).await
                }
                Sink::Otlp(o) => {
                    self.forward::<DriftEvent, _>(&name, &batch, (&mut tail, &mut backlog), failures, o).await
                }
                Sink::Webhook(w) => {
                    self.forward::<DriftEvent, _>(&name, &batch, (&mut tail, &mut backlog), failures, w).await
                }
            };
            to_store = batch.end;
            let full = batch.lines.len() >= self.settings.batch_max_events;
            spare = batch.lines.into_buffer();
            if !full {
                // Caught up: gather the next batch rather than send one for every few events.
                self.gather(&backlog).await;
            }
        }
    }

    /// Counts and logs what the tail could not read.
    fn account_losses(&self, name: &str, batch: &Batch) {
        self.count_dropped(name, batch.dropped);
        if batch.torn > 0 {
            tracing::warn!(sink = %name, lines = batch.torn, "skipped a torn journal line (a crash mid-write; its request was never answered)");
        }
        if batch.lost_track {
            tracing::error!(
                sink = %name,
                "the journal file the sink's cursor points into is gone (deleted while driftgate was down): \
                 delivering on from the oldest file left; events in between are lost for this sink"
            );
        }
    }

    /// Delivers the batch's drift events the sink wants, parsed as far as it reads them,
    /// through `sink`; gives the failure streak carried on.
    async fn forward<'a, E: Reads<'a>, D: Deliver<E>>(
        &self,
        name: &str,
        batch: &'a Batch,
        reading: (&mut Tail, &mut Backlog),
        failures: u64,
        sink: &D,
    ) -> u64 {
        let events = self.wanted::<E>(name, batch);
        self.deliver(name, &events, reading, failures, sink).await
    }

    /// Counts and logs `lost` events rotation deleted before the sink read them.
    fn count_dropped(&self, name: &str, lost: u64) {
        if lost > 0 {
            self.meters.dropped.inc_by(lost);
            tracing::error!(
                sink = %name,
                events = lost,
                "drift events dropped before delivery: the sink was more than journal_undelivered_max_bytes behind and rotation deleted them"
            );
        }
    }

    /// The batch's drift events the sink wants; an unreadable line is counted as dropped.
    fn wanted<'a, E: Reads<'a>>(&self, name: &str, batch: &'a Batch) -> Vec<Record<'a, E>> {
        let mut events = Vec::with_capacity(batch.lines.len());
        for line in &batch.lines {
            match E::parse(line) {
                Ok(event) if self.settings.wants(&event.brief()) => events.push(Record { event, line }),
                Ok(_) => {}
                Err(e) => {
                    self.meters.dropped.inc();
                    tracing::warn!(sink = %name, error = %e, "a journal line is not a drift event; skipped");
                }
            }
        }
        events
    }

    /// Delivers `events` whole, retrying; gives the failure streak carried on (0 once through).
    /// The lag gauges are current at every attempt: the batch's undelivered events and the
    /// journal not yet read. While it retries, what rotation deletes unread (the sink more than
    /// the undelivered cap behind) is counted as it happens, not once the receiver is back.
    async fn deliver<'a, E: Reads<'a>, D: Deliver<E>>(
        &self,
        name: &str,
        events: &[Record<'a, E>],
        (tail, backlog): (&mut Tail, &mut Backlog),
        mut failures: u64,
        sink: &D,
    ) -> u64 {
        let mut done = 0;
        let mut wait = FIRST_RETRY;
        while done < events.len() {
            let waiting = i64::try_from(events.len() - done).unwrap_or(i64::MAX);
            self.meters.lag_events.set(backlog.lines(&self.synced).saturating_add(waiting));
            let age = (OffsetDateTime::now_utc() - events[done].event.brief().time).whole_seconds();
            self.meters.lag_seconds.set(age.max(0));
            match sink.deliver(&events[done..]).await {
                Ok(()) => {
                    self.meters.delivered.inc_by((events.len() - done) as u64);
                    self.meters.lag_events.set(backlog.lines(&self.synced));
                    if failures > 0 {
                        tracing::info!(sink = %name, failed_attempts = failures, "the sink takes drift events again");
                    }
                    return 0;
                }
                Err(Failure { delivered, rejected, reason }) => {
                    let delivered = delivered.min(events.len() - done);
                    self.meters.delivered.inc_by(delivered as u64);
                    done += delivered;
                    if rejected > 0 {
                        let rejected = rejected.min(events.len() - done);
                        self.meters.dropped.inc_by(rejected as u64);
                        tracing::error!(sink = %name, event = %events[done].event.brief().id, events = rejected, %reason, "the receiver refuses drift events for good; dropped for this sink");
                        done += rejected;
                        continue;
                    }
                    failures += 1;
                    self.meters.failed_attempts.inc();
                    let pause = jittered(wait);
                    tracing::warn!(sink = %name, %reason, attempt = failures, retry_in_ms = pause.as_millis() as u64, pending = events.len() - done, "delivery failed; retrying");
                    tokio::time::sleep(pause).await;
                    wait = (wait * 2).min(MAX_RETRY);
                    let lost = tail.take_dropped();
                    self.count_dropped(name, lost);
                    backlog.consumed += i64::try_from(lost).unwrap_or(i64::MAX);
                }
            }
        }
        failures
    }

    /// Until the journal says a batch was synced (or a while passes); then gathers a batch.
    async fn wait(&mut self, backlog: &Backlog) {
        tokio::select! {
            changed = self.synced.changed() => if changed.is_err() { tokio::time::sleep(IDLE_CHECK).await },
            () = tokio::time::sleep(IDLE_CHECK) => {}
        }
        self.gather(backlog).await;
    }

    /// Until `batch_max_wait` has passed or `batch_max_events` lines wait to be read. It looks
    /// every [`GATHER_POLL`] rather than at every synced batch: under load that would wake this
    /// thread, and make the journal's writer wake it, thousands of times a second.
    async fn gather(&mut self, backlog: &Backlog) {
        let deadline = tokio::time::Instant::now() + self.settings.batch_max_wait();
        let full = i64::try_from(self.settings.batch_max_events).unwrap_or(i64::MAX);
        while backlog.lines(&self.synced) < full {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep((deadline - now).min(GATHER_POLL)).await;
        }
        // What was synced meanwhile is about to be read: no wake-up owed for it.
        self.synced.mark_unchanged();
    }
}

/// How many journal lines a sink has still to read: those pending when it started, plus those
/// the writer has synced since, minus those it has read or lost to rotation.
struct Backlog {
    base: i64,
    consumed: i64,
}

impl Backlog {
    fn lines(&self, synced: &watch::Receiver<Synced>) -> i64 {
        let synced = i64::try_from(synced.borrow().lines).unwrap_or(i64::MAX);
        self.base.saturating_add(synced).saturating_sub(self.consumed).max(0)
    }
}

/// `wait` scaled by a random factor in [0.5, 1.5): forwarders of many pods do not retry in step.
pub fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(0.5 + fastrand::f64())
}

/// Runs `f` on the tail on the blocking pool (file reads and syncs); `None` if it panicked.
async fn blocking<T: Send + 'static>(
    mut tail: Tail,
    f: impl FnOnce(&mut Tail) -> T + Send + 'static,
) -> Option<(Tail, T)> {
    match tokio::task::spawn_blocking(move || {
        let out = f(&mut tail);
        (tail, out)
    })
    .await
    {
        Ok(pair) => Some(pair),
        Err(e) => {
            tracing::error!(error = %e, "a sink's forwarder stopped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_one_and_a_half() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(5) && d < Duration::from_secs(15), "{d:?}");
        }
    }
}
