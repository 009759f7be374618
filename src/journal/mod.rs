//! The durable drift-event log: a JSON-lines file, appended with group commit and rotated by size.
//!
//! Owns the file and its rotation. A dedicated thread does every write and fsync, so no fsync
//! ever runs on the async runtime; appends that arrive while one batch is being synced are
//! written and synced together (group commit), so durability does not serialise the server.
//! [`Journal::append`] returns only once the line is on disk. A failing disk is reported to the
//! caller and through [`Journal::is_healthy`]; each later batch tries again, so writing resumes
//! when the fault clears. The journal knows nothing of policies or events: it stores lines.
//!
//! Readers (the sinks' forwarders) follow it with a [`cursor`] each and a [`tail`]: after every
//! synced batch the writer tells them how far the live file is durable ([`Journal::synced`]), and
//! rotation keeps the files they have not read yet ([`retention`]), up to a cap on the bytes
//! they are behind.

pub mod cursor;
pub mod read;
pub mod retention;
pub mod tail;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::event::DriftEvent;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::os::unix::fs::MetadataExt as _;

use tokio::sync::{mpsc, oneshot, watch};

/// Most lines written in one batch (one write, one fsync).
const MAX_BATCH: usize = 1024;
/// Appends that may wait for the writer before callers wait for room.
const QUEUE: usize = 8192;
/// How often a failed journal is probed while no append arrives.
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Bytes the probe writes: a few drift events' worth.
const PROBE_BYTES: usize = 8192;

/// Where and how the journal is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalConfig {
    /// The live file.
    pub path: PathBuf,
    /// Size at which the live file is rotated.
    pub max_bytes: u64,
    /// How many rotated files (`path.1` … `path.N`) are kept.
    pub keep: usize,
    /// The readers (sinks) whose cursors rotation respects: files they have not read are kept.
    pub readers: Vec<String>,
    /// The most bytes a reader may be behind: beyond it rotation deletes the oldest files all
    /// the same (the reader counts the events it loses).
    pub undelivered_max_bytes: u64,
    /// Rotated files last written within this are kept, beyond `keep`.
    pub min_retention: std::time::Duration,
    /// The most bytes all files may take: beyond it rotation removes the oldest
    /// unauthenticated events first, then the oldest files (counted as evicted).
    pub max_total_bytes: u64,
}

impl JournalConfig {
    /// A journal at `path`: rotated at 64 MiB, 5 rotated files and a day kept, no readers,
    /// 256 MiB undelivered, 768 MiB in all.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JournalConfig {
            path: path.into(),
            max_bytes: 64 * 1024 * 1024,
            keep: 5,
            readers: Vec::new(),
            undelivered_max_bytes: 256 * 1024 * 1024,
            min_retention: std::time::Duration::from_secs(24 * 3600),
            max_total_bytes: 768 * 1024 * 1024,
        }
    }
}

/// Lines rotation deleted before a reader read them, by reader: each entry names the file and
/// how many of its lines that reader had not read (from its stored cursor). The reader's
/// [`tail::Tail`] takes them, except for the file it has open, whose rest it counts itself.
#[derive(Debug, Clone, Default)]
pub struct DropLedger(Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<Dropped>>>>);

/// A file deleted unread, and how many of its lines one reader lost with it.
pub type Dropped = (cursor::FileId, u64);

impl DropLedger {
    fn record(&self, reader: &str, file: cursor::FileId, lines: u64) {
        if let Ok(mut map) = self.0.lock() {
            map.entry(reader.to_owned()).or_default().push((file, lines));
        }
    }

    /// Takes what was recorded for `reader`.
    pub fn take(&self, reader: &str) -> Vec<(cursor::FileId, u64)> {
        self.0.lock().map(|mut map| map.remove(reader).unwrap_or_default()).unwrap_or_default()
    }
}

/// How far the live file is durable: what readers may read of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// The live file's inode.
    pub ino: u64,
    /// Its bytes that are written and synced.
    pub len: u64,
    /// Lines made durable since the journal was opened.
    pub lines: u64,
}

/// Why an append failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened, written or synced.
    #[error("failed to write journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The writer thread is gone (the server is shutting down).
    #[error("the journal writer has stopped")]
    Stopped,
}

/// Told about each batch the writer finishes (metrics implement it).
pub trait JournalObserver: Send + Sync {
    /// A batch of `lines` was written and fsynced in `took`.
    fn synced(&self, took: std::time::Duration, lines: usize);
    /// A batch failed to write or sync.
    fn failed(&self);
}

struct Job {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// Counters of the journal, for readiness and metrics.
#[derive(Debug, Default)]
pub struct JournalStats {
    healthy: AtomicBool,
    /// Lines made durable.
    pub appended: AtomicU64,
    /// Failed batches.
    pub errors: AtomicU64,
    /// fsyncs done.
    pub syncs: AtomicU64,
    /// Events removed to keep the files within `max_total_bytes`.
    pub evicted: AtomicU64,
}

/// A handle to the journal; clone it freely.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
    stats: Arc<JournalStats>,
    path: PathBuf,
    synced: watch::Receiver<Synced>,
    drops: DropLedger,
}

impl Journal {
    /// Starts the writer thread, telling `observer` about every batch. The file is opened (and
    /// created) here: a journal that cannot be written is logged at once and the journal starts
    /// unhealthy ([`Journal::is_healthy`]; the server is then unready), and the writer probes it
    /// until it can write.
    pub fn open(config: JournalConfig, observer: Option<Arc<dyn JournalObserver>>) -> Journal {
        let stats = Arc::new(JournalStats::default());
        let (synced_tx, synced) = watch::channel(Synced::default());
        let drops = DropLedger::default();
        let mut writer = Writer {
            config: config.clone(),
            file: None,
            ino: 0,
            synced: synced_tx,
            drops: drops.clone(),
            stats: stats.clone(),
        };
        let first = writer.ensure_open();
        if let Err(e) = &first {
            tracing::error!(error = %e, "journal cannot be written: serving unready until it can");
        }
        writer.publish(0);
        stats.healthy.store(first.is_ok(), Ordering::Release);
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread_stats = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("driftgate-journal".into())
            .spawn(move || writer.run(rx, &thread_stats, observer.as_deref()));
        if let Err(e) = spawned {
            // No writer: every append fails (and answers stand), and the server stays unready.
            tracing::error!(error = %e, "the journal writer could not start");
            stats.healthy.store(false, Ordering::Release);
        }
        Journal { tx, stats, path: config.path, synced, drops }
    }

    /// What rotation deleted before its readers read it.
    pub fn drops(&self) -> DropLedger {
        self.drops.clone()
    }

    /// How far the live file is durable, updated after every batch and rotation.
    pub fn synced(&self) -> watch::Receiver<Synced> {
        self.synced.clone()
    }

    /// Appends one line (which must end with a newline) and waits until it is on disk.
    pub async fn append(&self, line: Vec<u8>) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Job { line, done }).await.map_err(|_| JournalError::Stopped)?;
        wait.await.map_err(|_| JournalError::Stopped)?
    }

    /// Whether the last write succeeded.
    pub fn is_healthy(&self) -> bool {
        self.stats.healthy.load(Ordering::Acquire)
    }

    /// The journal's counters.
    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// The live file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct Writer {
    config: JournalConfig,
    file: Option<(File, u64)>,
    /// The live file's inode, read when it is opened.
    ino: u64,
    synced: watch::Sender<Synced>,
    drops: DropLedger,
    /// Where evictions are counted.
    stats: Arc<JournalStats>,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Job>, stats: &JournalStats, observer: Option<&dyn JournalObserver>) {
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let next = if stats.healthy.load(Ordering::Acquire) {
                rx.blocking_recv()
            } else {
                // An unready server gets no traffic, so a failed journal must find out by itself
                // that writing works again: wait for an append a while, else probe.
                match wait_for_job(&mut rx, PROBE_INTERVAL) {
                    Waited::Job(job) => Some(job),
                    Waited::Closed => None,
                    Waited::TimedOut => {
                        if self.probe().is_ok() {
                            stats.healthy.store(true, Ordering::Release);
                            tracing::info!(path = %self.config.path.display(), "journal writable again");
                        }
                        continue;
                    }
                }
            };
            let Some(first) = next else { break };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            buf.clear();
            for job in &batch {
                buf.extend_from_slice(&job.line);
            }
            let started = std::time::Instant::now();
            let result = self.write_batch(&buf);
            let mut durable = None;
            match &result {
                Ok(()) => {
                    if let Some(o) = observer {
                        o.synced(started.elapsed(), batch.len());
                    }
                    stats.healthy.store(true, Ordering::Release);
                    let lines = stats.appended.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
                    stats.syncs.fetch_add(1, Ordering::Relaxed);
                    durable = Some(lines);
                }
                Err(e) => {
                    if let Some(o) = observer {
                        o.failed();
                    }
                    stats.healthy.store(false, Ordering::Release);
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, lines = batch.len(), "journal write failed");
                }
            }
            for job in batch.drain(..) {
                // The caller may have gone (client hung up); the line is written all the same.
                let _ = job.done.send(result.clone());
            }
            // Readers hear of the lines after the answers are on their way.
            if let Some(lines) = durable {
                self.publish(lines);
            }
        }
    }

    /// Checks that the journal can be written again: reopens it and writes, syncs and removes a
    /// scratch file the size of a few events beside it (enough to tell a full disk).
    fn probe(&mut self) -> Result<(), JournalError> {
        self.ensure_open()?;
        let scratch = rotated(&self.config.path, 0).with_extension("probe");
        let written = File::create(&scratch)
            .and_then(|mut f| f.write_all(&[b' '; PROBE_BYTES]).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::remove_file(&scratch));
        if written.is_err() {
            let _ = std::fs::remove_file(&scratch);
        }
        written.map_err(|e| self.io_err(e))
    }

    /// Tells readers how far the live file is durable (`lines` made durable so far).
    fn publish(&self, lines: u64) {
        let Some((_, size)) = &self.file else { return };
        self.synced.send_replace(Synced { ino: self.ino, len: *size, lines });
    }

    fn io_err(&self, e: io::Error) -> JournalError {
        JournalError::Io { path: self.config.path.clone(), source: Arc::new(e) }
    }

    fn write_batch(&mut self, buf: &[u8]) -> Result<(), JournalError> {
        self.ensure_open()?;
        let Some((file, size)) = self.file.as_mut() else { return Err(JournalError::Stopped) };
        let written = file.write_all(buf).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Reopen next time: the file may end in a torn line, which reopening repairs.
            self.file = None;
            return Err(self.io_err(e));
        }
        *size += buf.len() as u64;
        if *size >= self.config.max_bytes
            && let Err(e) = self.rotate()
        {
            // The lines are durable; only rotation failed. Keep appending to the live file.
            tracing::warn!(error = %e, "journal rotation failed");
        }
        Ok(())
    }

    fn ensure_open(&mut self) -> Result<(), JournalError> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = self.config.path.clone();
        let opened = open_for_append(&path).map_err(|e| self.io_err(e))?;
        self.ino = opened.0.metadata().map(|m| m.ino()).unwrap_or_default();
        self.file = Some(opened);
        Ok(())
    }

    /// Renames the live file to `FILE.1` (and every `FILE.N` to `FILE.N+1`), starts a new live
    /// file, then deletes the rotated files retention lets go.
    fn rotate(&mut self) -> io::Result<()> {
        let lines = self.synced.borrow().lines;
        self.file = None;
        let path = self.config.path.clone();
        let files = read::journal_files(&path).map_err(io::Error::other)?;
        // Oldest first (`FILE.N` … `FILE.1`, then the live file), so no rename overwrites a file
        // not yet moved; gaps in the numbers close.
        for (i, from) in files.iter().enumerate().take(files.len().saturating_sub(1)) {
            std::fs::rename(from, rotated(&path, files.len() - i))?;
        }
        std::fs::rename(&path, rotated(&path, 1))?;
        let opened = open_for_append(&path)?;
        self.ino = opened.0.metadata()?.ino();
        self.file = Some(opened);
        sync_dir(&path)?;
        self.publish(lines);
        self.retain(&path)
    }

    /// Deletes the rotated files that are beyond the number kept and read by every reader, and,
    /// when a reader is more than the cap behind, the oldest files regardless.
    fn retain(&self, path: &Path) -> io::Result<()> {
        let files = read::journal_files(path).map_err(io::Error::other)?;
        let states = file_states(&files);
        let mut readers = Vec::new();
        for reader in &self.config.readers {
            let position = match cursor::load(&cursor::cursor_path(path, reader)) {
                Ok(Some(c)) => match cursor::locate(&files, &c.file) {
                    Some(file) => retention::Position { file, offset: c.offset },
                    None => retention::Position { file: 0, offset: 0 },
                },
                // A reader that has not started yet begins at the end: it needs nothing older.
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "keeping every journal file for a reader whose cursor cannot be read");
                    retention::Position { file: 0, offset: 0 }
                }
            };
            readers.push((reader, position));
        }
        let positions: Vec<retention::Position> = readers.iter().map(|(_, p)| *p).collect();
        let keep = retention::Keep {
            files: self.config.keep,
            min_age: self.config.min_retention,
            undelivered: self.config.undelivered_max_bytes,
        };
        let plan = retention::plan(&states, &positions, keep);
        for &i in &plan.delete {
            if plan.undelivered.contains(&i) {
                // Count, for each reader behind, the lines of this file it has not read.
                let id = cursor::FileId::of_path(&files[i]);
                let mut lost = 0;
                for (reader, p) in &readers {
                    let from = match p.file.cmp(&i) {
                        std::cmp::Ordering::Less => 0,
                        std::cmp::Ordering::Equal => p.offset,
                        std::cmp::Ordering::Greater => continue,
                    };
                    let lines = File::open(&files[i]).and_then(|f| tail::count_lines(&f, from)).unwrap_or(0);
                    if let (Ok(id), true) = (&id, lines > 0) {
                        self.drops.record(reader, id.clone(), lines);
                    }
                    lost = lost.max(lines);
                }
                tracing::error!(
                    file = %files[i].display(),
                    bytes = states[i].size,
                    events = lost,
                    cap = self.config.undelivered_max_bytes,
                    "deleting a journal file a sink has not delivered: its sinks are more than the cap behind; \
                     the events they lose are counted in driftgate_sink_dropped_total"
                );
            }
            std::fs::remove_file(&files[i])?;
        }
        if !plan.delete.is_empty() {
            sync_dir(path)?;
        }
        self.keep_within_total(path)
    }

    /// Keeps all files within `max_total_bytes`, whatever their age: first by removing the
    /// unauthenticated events of rotated files, oldest file first (anyone could have sent those;
    /// the control plane's are kept), then by deleting the oldest rotated files. Every event
    /// removed is counted and logged.
    fn keep_within_total(&self, path: &Path) -> io::Result<()> {
        let files = read::journal_files(path).map_err(io::Error::other)?;
        let mut over = retention::over_total(&file_states(&files), self.config.max_total_bytes);
        let rotated = &files[..files.len().saturating_sub(1)];
        for file in rotated {
            if over == 0 {
                return Ok(());
            }
            let (events, freed) = strip_unauthenticated(file)?;
            if events > 0 {
                self.stats.evicted.fetch_add(events, Ordering::Relaxed);
                tracing::error!(
                    file = %file.display(),
                    events,
                    bytes = freed,
                    cap = self.config.max_total_bytes,
                    "the journal is over journal_max_total_bytes: removed the unauthenticated drift events of its oldest file"
                );
            }
            over = over.saturating_sub(freed);
        }
        for file in rotated {
            if over == 0 {
                break;
            }
            let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            let events = File::open(file).and_then(|f| tail::count_lines(&f, 0)).unwrap_or(0);
            std::fs::remove_file(file)?;
            self.stats.evicted.fetch_add(events, Ordering::Relaxed);
            tracing::error!(
                file = %file.display(),
                events,
                cap = self.config.max_total_bytes,
                "the journal is over journal_max_total_bytes: deleted its oldest file, younger than the minimum retention"
            );
            over = over.saturating_sub(size);
        }
        sync_dir(path)
    }
}

/// Sizes and ages of journal files.
fn file_states(files: &[PathBuf]) -> Vec<retention::FileState> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok();
            retention::FileState {
                size: meta.as_ref().map_or(0, |m| m.len()),
                age: meta.and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).unwrap_or_default(),
            }
        })
        .collect()
}

/// Rewrites `file` without the drift events of unauthenticated sources (through a temporary
/// file, synced, renamed over it); lines that do not read as events are kept. Gives how many
/// events went and how many bytes that freed.
fn strip_unauthenticated(file: &Path) -> io::Result<(u64, u64)> {
    let text = std::fs::read(file)?;
    // The file keeps its time: its age is its newest event's, not the rewrite's.
    let modified = std::fs::metadata(file)?.modified()?;
    let mut kept = Vec::with_capacity(text.len());
    let mut removed = 0;
    for line in text.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match DriftEvent::parse(body) {
            Ok(event) if !event.source.authenticated => removed += 1,
            _ => kept.extend_from_slice(line),
        }
    }
    if removed == 0 {
        return Ok((0, 0));
    }
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".compacting");
    let tmp = PathBuf::from(tmp);
    {
        let mut out = File::create(&tmp)?;
        out.write_all(&kept)?;
        out.set_modified(modified)?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, file)?;
    Ok((removed, (text.len() - kept.len()) as u64))
}

/// What waiting for an append gave.
enum Waited {
    Job(Job),
    Closed,
    TimedOut,
}

/// Waits up to `limit` for an append, looking every few milliseconds (only while the journal
/// has failed: a healthy writer blocks on the queue).
fn wait_for_job(rx: &mut mpsc::Receiver<Job>, limit: std::time::Duration) -> Waited {
    let end = std::time::Instant::now() + limit;
    loop {
        match rx.try_recv() {
            Ok(job) => return Waited::Job(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return Waited::Closed,
            Err(mpsc::error::TryRecvError::Empty) if std::time::Instant::now() >= end => return Waited::TimedOut,
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// The name of the `n`th rotated file: `drift-events.jsonl.1` is the newest.
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Opens (creating) the file for appending; a torn last line (a crash mid-write) is ended with a
/// newline so the next line starts clean.
fn open_for_append(path: &Path) -> io::Result<(File, u64)> {
    let existed = path.exists();
    let mut file = OpenOptions::new().create(true).append(true).read(true).open(path)?;
    let mut size = file.metadata()?.len();
    if size > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(size - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
            file.sync_data()?;
            size += 1;
        }
    }
    if !existed {
        file.sync_all()?;
        sync_dir(path)?;
    }
    Ok((file, size))
}

/// Makes a new or renamed directory entry durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_journal(dir: &Path, max_bytes: u64, keep: usize) -> Journal {
        let j = Journal::open(
            JournalConfig {
                max_bytes,
                keep,
                min_retention: std::time::Duration::ZERO,
                ..JournalConfig::new(dir.join("j.jsonl"))
            },
            None,
        );
        assert!(j.is_healthy());
        j
    }

    #[tokio::test]
    async fn appends_concurrently_and_durably() {
        let dir = tempfile::tempdir().unwrap();
        let j = mk_journal(dir.path(), 1 << 30, 3);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let j = j.clone();
                tokio::spawn(async move { j.append(format!("{{\"n\":{i}}}\n").into_bytes()).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 200);
        assert!(j.stats().syncs.load(Ordering::Relaxed) <= 200);
        assert!(j.is_healthy());
    }

    #[tokio::test]
    async fn rotates_keeping_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let j = mk_journal(dir.path(), 100, 2);
        for i in 0..30 {
            j.append(format!("{{\"line\":{i:04},\"pad\":\"xxxxxxxxxxxxxxxx\"}}\n").into_bytes()).await.unwrap();
        }
        let live = dir.path().join("j.jsonl");
        assert!(rotated(&live, 1).exists() && rotated(&live, 2).exists());
        assert!(!rotated(&live, 3).exists());
        let newest = std::fs::read_to_string(&live).unwrap() + &std::fs::read_to_string(rotated(&live, 1)).unwrap();
        assert!(newest.contains("\"line\":0029"));
    }

    #[tokio::test]
    async fn keeps_young_files_and_over_the_total_cap_drops_unauthenticated_events_first() {
        let dir = tempfile::tempdir().unwrap();
        let line = |i: usize, authenticated: bool| {
            format!(
                r#"{{"id":"e-{i:02}","time":"2026-11-23T23:30:32Z","decision":"denied","mode":"enforce","policy":"p","rule":"protected","message":"m","operation":"UPDATE","dryRun":false,"user":{{"username":"u","groups":[]}},"resource":{{"group":"g","version":"v1","kind":"K","resource":"ks","namespace":"n","name":"x"}},"changes":[],"requestUid":"u","source":{{"address":"10.0.0.{}","authenticated":{authenticated}}}}}"#,
                if authenticated { 1 } else { 9 }
            ) + "\n"
        };
        let live = dir.path().join("j.jsonl");
        let config =
            |total| JournalConfig { max_bytes: 1000, keep: 0, max_total_bytes: total, ..JournalConfig::new(&live) };
        // Young files stay whatever `keep` says while the total is within the cap.
        let j = Journal::open(config(1 << 30), None);
        for i in 0..40 {
            j.append(line(i, i % 2 == 1).into_bytes()).await.unwrap();
        }
        let all = read::journal_files(&live).unwrap();
        assert!(all.len() > 10, "{all:?}");
        drop(j);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // Over the cap: the oldest unauthenticated events go first, then the oldest files.
        let j = Journal::open(config(4000), None);
        for i in 40..44 {
            j.append(line(i, true).into_bytes()).await.unwrap();
        }
        let files = read::journal_files(&live).unwrap();
        let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
        assert!(total <= 4000 + 1000, "{total} bytes");
        let text: String = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
        let kept = text.lines().count() as u64;
        let unauthenticated = text.matches(r#""authenticated":false"#).count();
        assert!(unauthenticated < text.matches(r#""authenticated":true"#).count(), "{text}");
        assert_eq!(j.stats().evicted.load(Ordering::Relaxed), 44 - kept);
        assert!(text.contains("e-43"), "the newest events stay");
    }

    #[tokio::test]
    async fn ends_a_torn_line_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("j.jsonl"), "{\"ok\":1}\n{\"torn\":").unwrap();
        let j = mk_journal(dir.path(), 1 << 30, 1);
        j.append(b"{\"ok\":2}\n".to_vec()).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("j.jsonl")).unwrap();
        assert_eq!(text, "{\"ok\":1}\n{\"torn\":\n{\"ok\":2}\n");
    }

    #[tokio::test]
    async fn reports_an_unwritable_journal_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-yet");
        let j = Journal::open(
            JournalConfig { max_bytes: 1 << 30, keep: 1, ..JournalConfig::new(missing.join("j.jsonl")) },
            None,
        );
        assert!(!j.is_healthy());
        assert!(j.append(b"{}\n".to_vec()).await.is_err());
        std::fs::create_dir(&missing).unwrap();
        j.append(b"{}\n".to_vec()).await.unwrap();
        assert!(j.is_healthy());
    }

    #[tokio::test]
    async fn finds_out_by_itself_that_writing_works_again() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-yet");
        let j = Journal::open(
            JournalConfig { max_bytes: 1 << 30, keep: 1, ..JournalConfig::new(missing.join("j.jsonl")) },
            None,
        );
        assert!(!j.is_healthy());
        std::fs::create_dir(&missing).unwrap();
        // No append: the writer's own probe notices.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !j.is_healthy() && std::time::Instant::now() < end {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(j.is_healthy());
        assert_eq!(std::fs::read_dir(&missing).unwrap().count(), 1, "the probe leaves only the journal");
    }
}
