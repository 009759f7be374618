//! Reading the journal onwards from a cursor, for a forwarder: complete, durable lines in
//! bounded batches, across rotation, and never past what the writer has synced (a line a sink
//! delivers is a line the journal keeps).
//!
//! A batch never spans two files. At the end of a rotated file the tail moves to the next newer
//! file; a torn last line there (a crash mid-write) is skipped and counted. When retention has
//! deleted the file being read (its readers were more than the cap behind), the lines left in
//! it are counted as dropped (the open file can still be read to count them) and reading goes
//! on with the oldest file left. Blocking I/O: call it off the async runtime. It knows nothing
//! of events or sinks.

use std::fs::File;
use std::io::{self, Read as _, Seek as _};
use std::ops::Range;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use tokio::sync::watch;

use super::cursor::{self, Cursor, FileId, HEAD_BYTES};
use super::read;
use super::{DropLedger, Synced};

/// Where a tail starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After what was durable when `Synced` was taken (at startup, before the first request):
    /// only lines written since, however late the tail begins reading.
    After(Synced),
    /// At the start of the oldest file kept.
    Beginning,
    /// Where a stored cursor says.
    At(Cursor),
}

/// Complete lines read in one go, without their newlines: one buffer, as read, and where each
/// line lies in it (no copy a line).
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl Lines {
    /// How many lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The lines, in order.
    pub fn iter(&self) -> LinesIter<'_> {
        LinesIter { buf: &self.buf, spans: self.spans.iter() }
    }

    /// The buffer they were read into, for the next read.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// How many bytes of the file they took, newlines included.
    fn bytes(&self) -> usize {
        self.buf.len()
    }
}

impl<'a> IntoIterator for &'a Lines {
    type Item = &'a [u8];
    type IntoIter = LinesIter<'a>;

    fn into_iter(self) -> LinesIter<'a> {
        self.iter()
    }
}

/// The lines of a [`Lines`], in order.
#[derive(Debug)]
pub struct LinesIter<'a> {
    buf: &'a [u8],
    spans: std::slice::Iter<'a, Range<usize>>,
}

impl<'a> Iterator for LinesIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let span = self.spans.next()?;
        self.buf.get(span.clone())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for LinesIter<'_> {}

/// Lines read from one file.
#[derive(Debug, Default)]
pub struct Batch {
    /// Complete lines, without their newlines.
    pub lines: Lines,
    /// Where reading stopped: store it once the lines are delivered.
    pub end: Option<Cursor>,
    /// Lines lost before these: the rest of files deleted before they were read.
    pub dropped: u64,
    /// Torn lines (a crash mid-write) skipped at the end of rotated files.
    pub torn: u64,
    /// The cursor's file was gone when reading started (deleted while driftgate was down): how
    /// many of its lines were lost is unknown.
    pub lost_track: bool,
    /// Set when the read found nothing new at the synced end of the live file: the journal's
    /// line count then, every one of them read.
    pub caught_up: Option<u64>,
}

impl Batch {
    /// Whether nothing was read and nothing happened.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0 && self.torn == 0 && !self.lost_track
    }
}

struct Reading {
    file: File,
    id: FileId,
    pos: u64,
}

/// A reader of the journal whose live file is `live`.
pub struct Tail {
    live: PathBuf,
    synced: watch::Receiver<Synced>,
    start: Option<Start>,
    at: Option<Reading>,
    /// The start cursor's file was gone, noticed before the first read: reported by it.
    lost_track: bool,
    /// Where rotation records what it deleted unread, and the name this tail reads as.
    ledger: Option<(DropLedger, String)>,
    /// Bytes read at first for each line a batch wants: the last batch's mean line, a little
    /// over, so that a batch reads about what it takes.
    line_guess: usize,
}

/// The largest line read whole; a longer one is cut into pieces a sink will not parse.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Bytes read at first for each line a batch wants, before a batch has told the mean (a drift
/// event of an edit is about 1 KiB).
const LINE_GUESS: usize = 2048;

impl Tail {
    /// A tail of the journal at `live`, told how far it is durable by `synced`.
    pub fn new(live: impl Into<PathBuf>, synced: watch::Receiver<Synced>, start: Start) -> Tail {
        Tail {
            live: live.into(),
            synced,
            start: Some(start),
            at: None,
            lost_track: false,
            ledger: None,
            line_guess: LINE_GUESS,
        }
    }

    /// Counts, as dropped, the lines rotation deleted before `reader` read them (files this
    /// tail never opened; the rest of the file it has open it counts itself).
    pub fn with_ledger(mut self, ledger: DropLedger, reader: &str) -> Tail {
        self.ledger = Some((ledger, reader.to_owned()));
        self
    }

    /// The position after everything read so far (`None` before the first file is opened).
    pub fn position(&mut self) -> io::Result<Option<Cursor>> {
        match self.at.as_mut() {
            Some(r) => Ok(Some(Cursor { file: refreshed(r)?, offset: r.pos })),
            None => Ok(None),
        }
    }

    /// The lines rotation has deleted unread since last asked, in files other than the one
    /// open here (which counts its own rest when it is read on). No I/O: a reader waiting on
    /// its receiver can count its losses as they happen.
    pub fn take_dropped(&mut self) -> u64 {
        let Some((ledger, reader)) = &self.ledger else { return 0 };
        // Matched by inode and first bytes: a deleted file's inode is soon reused by a new
        // journal file.
        let open = self.at.as_ref().map(|r| &r.id);
        let is_open = |id: &cursor::FileId| open.is_some_and(|o| o.is(id) || id.is(o));
        ledger.take(reader).iter().filter(|(id, _)| !is_open(id)).map(|(_, n)| n).sum::<u64>()
    }

    /// Reads the next lines, at most `max_lines` and about `max_bytes` (a longer line is read
    /// whole), into `buf` (its contents dropped): a reader that hands back each batch's buffer
    /// ([`Lines::into_buffer`]) reads every batch into the same memory. An empty batch when
    /// nothing new is durable.
    pub fn read(&mut self, max_lines: usize, max_bytes: usize, mut buf: Vec<u8>) -> io::Result<Batch> {
        let mut batch = Batch { lost_track: std::mem::take(&mut self.lost_track), ..Batch::default() };
        batch.dropped += self.take_dropped();
        if self.at.is_none() && !self.begin(&mut batch)? {
            return Ok(batch);
        }
        // Bounded: each round reads, or moves to a newer file.
        for _ in 0..64 {
            let Some(reading) = self.at.as_mut() else { return Ok(batch) };
            if reading.file.metadata()?.nlink() == 0 {
                batch.dropped += count_lines(&reading.file, reading.pos)?;
                self.at = None;
                let files = read::journal_files(&self.live).map_err(io::Error::other)?;
                match files.first() {
                    Some(oldest) => self.at = Some(open_at(oldest, 0)?),
                    None => return Ok(batch),
                }
                continue;
            }
            let live_ino = std::fs::metadata(&self.live).map(|m| m.ino()).ok();
            let rotated = live_ino != Some(reading.id.ino);
            let synced = *self.synced.borrow();
            let limit = if rotated {
                u64::MAX
            } else if synced.ino == reading.id.ino {
                synced.len
            } else {
                reading.pos
            };
            let guess = self.line_guess;
            let read =
                read_lines(&reading.file, reading.pos, limit, max_lines, max_bytes, guess, std::mem::take(&mut buf));
            let (lines, next) = read?;
            if !lines.is_empty() {
                // A quarter more than the mean: most batches then take one read.
                let mean = lines.bytes() / lines.len();
                self.line_guess = (mean + mean / 4).clamp(64, LINE_GUESS * 8);
                reading.pos = next;
                batch.lines = lines;
                batch.end = Some(Cursor { file: refreshed(reading)?, offset: reading.pos });
                return Ok(batch);
            }
            // Nothing: the buffer is kept for the next read.
            batch.lines = lines;
            if !rotated {
                if synced.ino == reading.id.ino && reading.pos >= synced.len {
                    batch.caught_up = Some(synced.lines);
                }
                batch.end = Some(Cursor { file: refreshed(reading)?, offset: reading.pos });
                return Ok(batch);
            }
            buf = std::mem::take(&mut batch.lines).into_buffer();
            // The end of a rotated file: what is left is a torn line, if anything.
            let size = reading.file.metadata()?.len();
            if size > reading.pos {
                batch.torn += 1;
            }
            let files = read::journal_files(&self.live).map_err(io::Error::other)?;
            let here = files.iter().position(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == reading.id.ino));
            let next = match here {
                Some(i) => files.get(i + 1),
                None => files.first(),
            };
            match next {
                Some(path) => self.at = Some(open_at(path, 0)?),
                None => return Ok(batch),
            }
            if !batch.is_empty() {
                // Say what was skipped before reading on, so the cursor moves past it.
                batch.end = self.position()?;
                return Ok(batch);
            }
        }
        Ok(batch)
    }

    /// How many lines are left to read, through the newest file (a sink's backlog). Reads the
    /// files once: call it at start, then count what comes and goes.
    pub fn pending_lines(&mut self) -> io::Result<u64> {
        let mut batch = Batch::default();
        if self.at.is_none() && !self.begin(&mut batch)? {
            return Ok(0);
        }
        self.lost_track |= batch.lost_track;
        let Some(reading) = self.at.as_ref() else { return Ok(0) };
        let mut pending = count_lines(&reading.file, reading.pos)?;
        let files = read::journal_files(&self.live).map_err(io::Error::other)?;
        let here = files.iter().position(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == reading.id.ino));
        if let Some(i) = here {
            for newer in &files[i + 1..] {
                pending += count_lines(&File::open(newer)?, 0)?;
            }
        }
        Ok(pending)
    }

    /// Opens the file reading starts in; `false` when there is no journal yet.
    fn begin(&mut self, batch: &mut Batch) -> io::Result<bool> {
        let files = read::journal_files(&self.live).map_err(io::Error::other)?;
        // Begun again after every file was deleted: whatever is there now is new.
        let start = self.start.clone().unwrap_or(Start::Beginning);
        let opened = match start {
            Start::After(then) => {
                let same = files.iter().find(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == then.ino));
                match (same, files.first()) {
                    (Some(path), _) => open_at(path, then.len)?,
                    // No journal file then (or it is gone): every line there is newer.
                    (None, Some(oldest)) => open_at(oldest, 0)?,
                    (None, None) => return Ok(false),
                }
            }
            Start::Beginning => match files.first() {
                Some(oldest) => open_at(oldest, 0)?,
                None => return Ok(false),
            },
            Start::At(cursor) => match cursor::locate(&files, &cursor.file) {
                Some(i) => open_at(&files[i], cursor.offset)?,
                None => match files.first() {
                    Some(oldest) => {
                        batch.lost_track = true;
                        open_at(oldest, 0)?
                    }
                    None => return Ok(false),
                },
            },
        };
        self.start = None;
        self.at = Some(opened);
        Ok(true)
    }
}

fn open_at(path: &Path, pos: u64) -> io::Result<Reading> {
    let file = File::open(path)?;
    let id = FileId::of(&file)?;
    Ok(Reading { file, id, pos })
}

/// The file's id, its head read again if it was shorter than a full head when first read.
fn refreshed(reading: &mut Reading) -> io::Result<FileId> {
    if reading.id.head.len() < HEAD_BYTES && reading.file.metadata()?.len() > reading.id.head.len() as u64 {
        reading.id = FileId::of(&reading.file)?;
    }
    Ok(reading.id.clone())
}

/// Complete lines from `pos` up to `limit`: at most `max_lines`, stopping after `max_bytes`
/// (a first line longer than that is read whole, up to [`MAX_LINE`]). Gives the lines and the
/// position after the last.
fn read_lines(
    file: &File,
    pos: u64,
    limit: u64,
    max_lines: usize,
    max_bytes: usize,
    line_guess: usize,
    mut buf: Vec<u8>,
) -> io::Result<(Lines, u64)> {
    let available = usize::try_from(limit.saturating_sub(pos)).unwrap_or(usize::MAX);
    // Read about what `max_lines` lines take, and more only if they are not in it: a batch
    // costs its own size, not `max_bytes`, in reads and memory.
    let mut want = max_lines.saturating_mul(line_guess).clamp(4096, max_bytes.max(4096));
    buf.clear();
    loop {
        let room = available.min(want);
        if room > buf.len() {
            read_into(file, pos + buf.len() as u64, room - buf.len(), &mut buf)?;
        }
        let whole = memchr::memchr_iter(b'\n', &buf).take(max_lines).count();
        let exhausted = buf.len() < want;
        if whole >= max_lines || exhausted || (whole > 0 && buf.len() >= max_bytes) || want >= MAX_LINE {
            break;
        }
        // No whole line in reach is a longer line: read more, up to `MAX_LINE`.
        want = if whole > 0 { (want * 2).min(max_bytes.max(4096)) } else { (want * 2).min(MAX_LINE) };
    }
    let Some(last) = memchr::memrchr(b'\n', &buf) else {
        // A line being written, or one longer than `MAX_LINE`.
        return Ok((Lines::default(), pos));
    };
    let mut spans = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &buf[..=last]) {
        if spans.len() == max_lines || (start > 0 && start >= max_bytes) {
            break;
        }
        let line = &buf[start..end];
        let trimmed = line.strip_suffix(b"\r").map_or(end, |l| start + l.len());
        if !line.iter().all(u8::is_ascii_whitespace) {
            spans.push(start..trimmed);
        }
        start = end + 1;
    }
    buf.truncate(start);
    Ok((Lines { buf, spans }, pos + start as u64))
}

/// Appends up to `len` bytes of `file` from `pos` to `buf` (fewer at the end of the file),
/// into spare capacity (no zeroing first).
fn read_into(file: &File, pos: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut reader = file;
    reader.seek(io::SeekFrom::Start(pos))?;
    buf.reserve_exact(len);
    reader.take(len as u64).read_to_end(buf)?;
    Ok(())
}

fn read_at(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    read_into(file, pos, len, &mut buf)?;
    Ok(buf)
}

/// Complete lines from `pos` to the end of the file.
pub(crate) fn count_lines(file: &File, mut pos: u64) -> io::Result<u64> {
    let mut lines = 0;
    loop {
        let buf = read_at(file, pos, 1 << 20)?;
        if buf.is_empty() {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf).count() as u64;
        pos += buf.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn synced_to(path: &Path) -> Synced {
        let m = std::fs::metadata(path).unwrap();
        Synced { ino: m.ino(), len: m.len(), lines: 0 }
    }

    fn texts(batch: &Batch) -> Vec<String> {
        batch.lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect()
    }

    #[test]
    fn reads_durable_lines_in_batches_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        append(&live, "a\nb\nc\n");
        let (tx, rx) = watch::channel(synced_to(&live));
        let mut tail = Tail::new(&live, rx, Start::Beginning);
        assert_eq!(tail.pending_lines().unwrap(), 3);
        assert_eq!(texts(&tail.read(2, 1 << 20, Vec::new()).unwrap()), ["a", "b"]);
        assert_eq!(tail.pending_lines().unwrap(), 1);
        // Written but not yet synced: not read.
        append(&live, "d\n");
        assert_eq!(texts(&tail.read(10, 1 << 20, Vec::new()).unwrap()), ["c"]);
        assert!(tail.read(10, 1 << 20, Vec::new()).unwrap().lines.is_empty());
        tx.send_replace(synced_to(&live));
        assert_eq!(texts(&tail.read(10, 1 << 20, Vec::new()).unwrap()), ["d"]);
        // Rotation: the end of the old file (with a torn line), then the new file.
        append(&live, "e\ntorn");
        std::fs::rename(&live, dir.path().join("j.jsonl.1")).unwrap();
        append(&live, "f\n");
        tx.send_replace(synced_to(&live));
        assert_eq!(texts(&tail.read(10, 1 << 20, Vec::new()).unwrap()), ["e"]);
        let skipped = tail.read(10, 1 << 20, Vec::new()).unwrap();
        assert_eq!((skipped.torn, skipped.lines.len()), (1, 0));
        assert_eq!(texts(&tail.read(10, 1 << 20, Vec::new()).unwrap()), ["f"]);
        // A cursor taken now resumes after "f" in the live file.
        let cursor = tail.position().unwrap().unwrap();
        append(&live, "g\n");
        let (_tx2, rx2) = watch::channel(synced_to(&live));
        let mut again = Tail::new(&live, rx2, Start::At(cursor));
        assert_eq!(texts(&again.read(10, 1 << 20, Vec::new()).unwrap()), ["g"]);
    }

    #[test]
    fn counts_the_lines_of_a_file_deleted_before_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        let old = dir.path().join("j.jsonl.1");
        append(&old, "1\n2\n3\n4\n");
        append(&live, "5\n");
        let (_tx, rx) = watch::channel(synced_to(&live));
        let mut tail = Tail::new(&live, rx, Start::Beginning);
        assert_eq!(texts(&tail.read(1, 1 << 20, Vec::new()).unwrap()), ["1"]);
        std::fs::remove_file(&old).unwrap();
        let lost = tail.read(10, 1 << 20, Vec::new()).unwrap();
        assert_eq!((lost.dropped, texts(&lost)), (3, vec!["5".to_owned()]));
    }

    #[test]
    fn a_cursor_whose_file_is_gone_reads_from_the_oldest_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        append(&live, "x\n");
        let (_tx, rx) = watch::channel(synced_to(&live));
        let gone = Cursor { file: FileId { ino: u64::MAX, head: "nope".into(), born: None }, offset: 3 };
        let mut tail = Tail::new(&live, rx, Start::At(gone));
        let batch = tail.read(10, 1 << 20, Vec::new()).unwrap();
        assert!(batch.lost_track);
        assert_eq!(texts(&batch), ["x"]);
    }

    #[test]
    fn starting_after_a_snapshot_reads_what_was_written_before_the_tail_began() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        append(&live, "old\n");
        let then = synced_to(&live);
        // Written and synced, and even rotated, before the tail begins reading.
        append(&live, "a\n");
        std::fs::rename(&live, dir.path().join("j.jsonl.1")).unwrap();
        append(&live, "b\n");
        let (_tx, rx) = watch::channel(synced_to(&live));
        let mut tail = Tail::new(&live, rx, Start::After(then));
        assert_eq!(tail.pending_lines().unwrap(), 2);
        assert_eq!(texts(&tail.read(10, 1 << 20, Vec::new()).unwrap()), ["a"]);
        assert_eq!(texts(&tail.read(10, 1 << 20, Vec::new()).unwrap()), ["b"]);
        // No journal when the snapshot was taken: everything is new.
        let fresh = dir.path().join("k.jsonl");
        append(&fresh, "c\n");
        let (_tx, rx) = watch::channel(synced_to(&fresh));
        let mut tail = Tail::new(&fresh, rx, Start::After(Synced::default()));
        assert_eq!(texts(&tail.read(10, 1 << 20, Vec::new()).unwrap()), ["c"]);
    }

    #[test]
    fn starts_at_the_end_and_reads_long_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        append(&live, "old\n");
        let (tx, rx) = watch::channel(synced_to(&live));
        let mut tail = Tail::new(&live, rx, Start::After(synced_to(&live)));
        assert!(tail.read(10, 1 << 20, Vec::new()).unwrap().lines.is_empty());
        let long = "y".repeat(20_000);
        append(&live, &format!("{long}\nz\n"));
        tx.send_replace(synced_to(&live));
        assert_eq!(texts(&tail.read(10, 100, Vec::new()).unwrap()), [long]);
        assert_eq!(texts(&tail.read(10, 100, Vec::new()).unwrap()), ["z"]);
    }

    #[test]
    fn lines_come_from_one_buffer_without_their_line_ends_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        append(&live, "a\r\n\n  \nbb\nccc\npartial");
        let file = File::open(&live).unwrap();
        let (lines, next) = read_lines(&file, 0, u64::MAX, 10, 1 << 20, 1, Vec::new()).unwrap();
        assert_eq!(lines.iter().collect::<Vec<_>>(), [&b"a"[..], b"bb", b"ccc"]);
        assert_eq!((lines.len(), next, lines.bytes()), (3, 14, 14), "up to the last whole line, blanks included");
        // A guess far below the lines' length reads on until the batch is whole.
        let (two, next) = read_lines(&file, 0, u64::MAX, 2, 1 << 20, 1, b"stale".to_vec()).unwrap();
        assert_eq!((two.len(), next), (2, 10));
    }

    #[test]
    fn the_read_size_follows_the_lines_read() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        append(&live, &format!("{}\n", "x".repeat(999)).repeat(20));
        let (_tx, rx) = watch::channel(synced_to(&live));
        let mut tail = Tail::new(&live, rx, Start::Beginning);
        assert_eq!(tail.line_guess, LINE_GUESS);
        assert_eq!(tail.read(5, 1 << 20, Vec::new()).unwrap().lines.len(), 5);
        assert_eq!(tail.line_guess, 1250, "the mean line (1000 bytes) and a quarter");
    }
}
