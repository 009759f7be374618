//! Reading the journal back (for `driftgate review`): its files in order, line by line, and
//! following the live file across rotation.
//!
//! Owns the journal's layout as a reader sees it (the live file and its rotated `FILE.1` (newest)
//! … `FILE.N`) and the line framing. Every line is handed over with its number and whether it
//! ended with a newline, so the caller can report and skip a torn last line (a crash mid-write).
//! It streams: one line is in memory at a time, whatever the size of the journal. Like the
//! writer, it knows nothing of events or policies: it hands over bytes, and never writes.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A journal file could not be opened or listed.
    #[error("failed to open journal {path}: {source}")]
    Open {
        /// The file (or its folder, when listing rotated files failed).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A journal file could not be read.
    #[error("failed to read journal {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// One line of a journal file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based number of the line in its file (blank lines count).
    pub number: u64,
    /// The line without its newline (and without a `\r` before it).
    pub text: &'a [u8],
    /// Whether the line ended with a newline. Only the last line of a file can lack one: a
    /// torn write, or a line still being written.
    pub complete: bool,
}

/// The files of the journal whose live file is `live`, oldest first: the rotated files
/// `live.N` … `live.1`, then `live`. Files that do not exist are left out, so the list is empty
/// when there is no journal at all.
pub fn journal_files(live: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    if let Some(name) = live.file_name() {
        let dir = match live.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let prefix = name.as_encoded_bytes();
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|source| ReadError::Open { path: dir.to_owned(), source })?;
                    let file_name = entry.file_name();
                    if let Some(n) = rotation_number(prefix, file_name.as_encoded_bytes()) {
                        rotated.push((n, live.with_file_name(&file_name)));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(ReadError::Open { path: dir.to_owned(), source }),
        }
    }
    rotated.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if live.is_file() {
        files.push(live.to_owned());
    }
    Ok(files)
}

/// `N` when `name` is `prefix.N` (N decimal digits, as the writer makes them).
fn rotation_number(prefix: &[u8], name: &[u8]) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix(b".")?;
    if rest.is_empty() || rest.len() > 9 || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    rest.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Whether `path` names a rotated file of `live` (`live.N`).
pub fn is_rotated_of(path: &Path, live: &Path) -> bool {
    path.parent() == live.parent()
        && match (live.file_name(), path.file_name()) {
            (Some(l), Some(p)) => rotation_number(l.as_encoded_bytes(), p.as_encoded_bytes()).is_some(),
            _ => false,
        }
}

/// A line's text without its `\r\n` or `\n`; `None` for a blank line.
pub(crate) fn trimmed(line: &[u8], complete: bool) -> Option<&[u8]> {
    let mut text = line;
    if complete {
        text = text.strip_suffix(b"\n").unwrap_or(text);
        text = text.strip_suffix(b"\r").unwrap_or(text);
    }
    (!text.iter().all(u8::is_ascii_whitespace)).then_some(text)
}

/// Cuts a growing file into lines, keeping the start of a line whose end is not written yet.
#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
    number: u64,
    /// `buf` holds the start of a line whose end has not been read yet.
    partial: bool,
}

impl Framer {
    /// The next non-blank complete line, or `None` when there is none yet. A line without its
    /// newline stays in the buffer and the next call continues it.
    fn next<R: BufRead>(&mut self, reader: &mut R) -> io::Result<Option<Line<'_>>> {
        loop {
            if !self.partial {
                self.buf.clear();
            }
            reader.read_until(b'\n', &mut self.buf)?;
            if self.buf.last() != Some(&b'\n') {
                self.partial = !self.buf.is_empty();
                return Ok(None);
            }
            self.partial = false;
            self.number += 1;
            if trimmed(&self.buf, true).is_some() {
                let text = trimmed(&self.buf, true).unwrap_or_default();
                return Ok(Some(Line { number: self.number, text, complete: true }));
            }
        }
    }

    /// Hands over a line left incomplete by `next`, when its file will not grow any more.
    fn take_partial(&mut self) -> Option<Line<'_>> {
        if !std::mem::take(&mut self.partial) {
            return None;
        }
        self.number += 1;
        trimmed(&self.buf, false).map(|text| Line { number: self.number, text, complete: false })
    }
}

/// Calls `each` with every non-blank line of `reader` (`path` names it in errors). A last line
/// without a newline is handed over too, marked incomplete.
///
/// Lines are handed over from the reader's own buffer; only a line that straddles two reads is
/// copied.
pub fn for_each_line<R: BufRead, E: From<ReadError>>(
    mut reader: R,
    path: &Path,
    mut each: impl FnMut(Line<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let read_err = |source| ReadError::Read { path: path.to_owned(), source };
    // The start of a line that the buffer ended in the middle of.
    let mut carry: Vec<u8> = Vec::new();
    let mut number = 0u64;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e).into()),
        };
        if available.is_empty() {
            if !carry.is_empty() {
                number += 1;
                if let Some(text) = trimmed(&carry, false) {
                    each(Line { number, text, complete: false })?;
                }
            }
            return Ok(());
        }
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &available[start..]).map(|i| start + i + 1) {
            number += 1;
            let line = if carry.is_empty() {
                &available[start..end]
            } else {
                carry.extend_from_slice(&available[start..end]);
                &carry[..]
            };
            if let Some(text) = trimmed(line, true) {
                each(Line { number, text, complete: true })?;
            }
            carry.clear();
            start = end;
        }
        carry.extend_from_slice(&available[start..]);
        let used = available.len();
        reader.consume(used);
    }
}

/// Opens a journal file for [`for_each_line`].
pub fn open(path: &Path) -> Result<BufReader<File>, ReadError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(256 * 1024, f))
        .map_err(|source| ReadError::Open { path: path.to_owned(), source })
}

/// The live file as it is open while following.
#[derive(Debug)]
struct Followed {
    reader: BufReader<File>,
    /// Device and inode: the path names another file once the journal has been rotated.
    id: (u64, u64),
    /// Bytes read so far: a file now shorter than this has been truncated.
    pos: u64,
    framer: Framer,
}

/// Follows the live journal file, like `tail -F`: hands over lines as they are appended, across
/// rotation (the file renamed to `FILE.1` and a new one created) and truncation. Poll-based: call
/// [`Follower::poll`] now and then; it never blocks.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    open: Option<Followed>,
}

impl Follower {
    /// A follower of `path`, which need not exist yet. The first poll reads it from the start.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Follower { path: path.into(), open: None }
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands every complete line appended since the last poll to `each`. When the path names a
    /// new file (rotation), the rest of the old one is read first, then the new one from its
    /// start; a line the old file ends without a newline is handed over as incomplete. A line
    /// being written now waits for the next poll.
    pub fn poll<E: From<ReadError>>(&mut self, mut each: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        // Bounded: each round either returns or switches to a newer file.
        for _ in 0..16 {
            if self.open.is_none() {
                match File::open(&self.path) {
                    Ok(file) => {
                        let meta = file.metadata().map_err(|source| self.read_err(source))?;
                        self.open = Some(Followed {
                            reader: BufReader::with_capacity(64 * 1024, file),
                            id: (meta.dev(), meta.ino()),
                            pos: 0,
                            framer: Framer::default(),
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(source) => return Err(ReadError::Open { path: self.path.clone(), source }.into()),
                }
            }
            let Some(open) = self.open.as_mut() else { return Ok(()) };
            drain(open, &self.path, &mut each)?;
            let now = match fs::metadata(&self.path) {
                Ok(meta) => meta,
                // Renamed away and not made again yet: look again at the next poll.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(source) => return Err(ReadError::Open { path: self.path.clone(), source }.into()),
            };
            if (now.dev(), now.ino()) != open.id {
                // Rotated: lines may have reached the old file after the drain above.
                drain(open, &self.path, &mut each)?;
                if let Some(line) = open.framer.take_partial() {
                    each(line)?;
                }
                // Rotated more than once since the last poll: the files between the old one
                // and the new live file are read whole, oldest first.
                let old = open.id;
                self.open = None;
                let files = journal_files(&self.path)?;
                let at = files.iter().position(|f| fs::metadata(f).is_ok_and(|m| (m.dev(), m.ino()) == old));
                if let Some(at) = at {
                    for between in files.iter().take(files.len().saturating_sub(1)).skip(at + 1) {
                        let file =
                            File::open(between).map_err(|source| ReadError::Open { path: between.clone(), source })?;
                        for_each_line(BufReader::new(file), between, &mut each)?;
                    }
                }
                continue;
            }
            if now.len() < open.pos {
                // Truncated in place (copytruncate): start over.
                open.reader
                    .seek(SeekFrom::Start(0))
                    .map_err(|source| ReadError::Read { path: self.path.clone(), source })?;
                open.pos = 0;
                open.framer = Framer::default();
                continue;
            }
            return Ok(());
        }
        Ok(())
    }

    fn read_err(&self, source: io::Error) -> ReadError {
        ReadError::Read { path: self.path.clone(), source }
    }
}

/// Hands over every complete line now in the open file.
fn drain<E: From<ReadError>>(
    open: &mut Followed,
    path: &Path,
    each: &mut impl FnMut(Line<'_>) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        match open.framer.next(&mut open.reader) {
            Ok(Some(line)) => each(line)?,
            Ok(None) => {
                // Counts the start of a line being written too: it is in the file.
                open.pos = open.reader.stream_position().unwrap_or(open.pos);
                return Ok(());
            }
            Err(source) => return Err(ReadError::Read { path: path.to_owned(), source }.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Number, text, complete.
    type Lines = Vec<(u64, String, bool)>;

    /// The lines of `input`, read through a buffer of `capacity` bytes.
    fn mk_lines(input: &str, capacity: usize) -> Lines {
        let mut out = Vec::new();
        let reader = BufReader::with_capacity(capacity, input.as_bytes());
        for_each_line::<_, ReadError>(reader, Path::new("t"), |l| {
            out.push((l.number, String::from_utf8_lossy(l.text).into_owned(), l.complete));
            Ok(())
        })
        .unwrap();
        out
    }

    fn mk_poll(f: &mut Follower) -> Lines {
        let mut out = Vec::new();
        f.poll::<ReadError>(|l| {
            out.push((l.number, String::from_utf8_lossy(l.text).into_owned(), l.complete));
            Ok(())
        })
        .unwrap();
        out
    }

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn line(n: u64, text: &str, complete: bool) -> (u64, String, bool) {
        (n, text.to_owned(), complete)
    }

    #[test]
    fn frames_lines_with_numbers_and_marks_a_torn_last_line() {
        let cases: &[(&str, Lines)] = &[
            ("", vec![]),
            ("a\n", vec![line(1, "a", true)]),
            ("a\nb", vec![line(1, "a", true), line(2, "b", false)]),
            ("a\r\n\n  \nb\n", vec![line(1, "a", true), line(4, "b", true)]),
            ("{\"x\":1}\n{\"torn\":", vec![line(1, "{\"x\":1}", true), line(2, "{\"torn\":", false)]),
            ("long line one\nlong line two\n\n", vec![line(1, "long line one", true), line(2, "long line two", true)]),
            ("\n\nlast", vec![line(3, "last", false)]),
        ];
        for (input, want) in cases {
            // Small buffers cut lines in two (or more) reads.
            for capacity in [1, 3, 8, 64 * 1024] {
                assert_eq!(&mk_lines(input, capacity), want, "{input:?} through {capacity} bytes");
            }
        }
    }

    #[test]
    fn lists_rotated_files_oldest_first_then_the_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("drift-events.jsonl");
        for name in ["drift-events.jsonl", "drift-events.jsonl.1", "drift-events.jsonl.2", "drift-events.jsonl.10"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        for other in ["drift-events.jsonl.bak", "drift-events.jsonl.", "other.jsonl.1", "drift-events.jsonl.1x"] {
            fs::write(dir.path().join(other), "").unwrap();
        }
        let names: Vec<String> = journal_files(&live)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["drift-events.jsonl.10", "drift-events.jsonl.2", "drift-events.jsonl.1", "drift-events.jsonl"]
        );
    }

    #[test]
    fn lists_nothing_when_there_is_no_journal() {
        let dir = tempfile::tempdir().unwrap();
        assert!(journal_files(&dir.path().join("nope.jsonl")).unwrap().is_empty());
        assert!(journal_files(&dir.path().join("no-dir/nope.jsonl")).unwrap().is_empty());
    }

    #[test]
    fn tells_rotated_files_of_a_journal() {
        let cases = [
            ("/j/d.jsonl.1", "/j/d.jsonl", true),
            ("/j/d.jsonl.12", "/j/d.jsonl", true),
            ("/j/d.jsonl", "/j/d.jsonl", false),
            ("/k/d.jsonl.1", "/j/d.jsonl", false),
            ("/j/d.jsonl.x", "/j/d.jsonl", false),
        ];
        for (path, live, want) in cases {
            assert_eq!(is_rotated_of(Path::new(path), Path::new(live)), want, "{path} of {live}");
        }
    }

    #[test]
    fn follows_appends_waiting_for_a_line_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        let mut f = Follower::new(&live);
        assert!(mk_poll(&mut f).is_empty(), "no file yet");
        append(&live, "a\nb");
        assert_eq!(mk_poll(&mut f), [line(1, "a", true)]);
        append(&live, "c\nd\n");
        assert_eq!(mk_poll(&mut f), [line(2, "bc", true), line(3, "d", true)]);
        assert!(mk_poll(&mut f).is_empty());
    }

    #[test]
    fn follows_across_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        append(&live, "a\n");
        let mut f = Follower::new(&live);
        assert_eq!(mk_poll(&mut f), [line(1, "a", true)]);
        // Written to the old file before the rename, after the last poll.
        append(&live, "b\ntorn");
        fs::rename(&live, rotated_name(&live)).unwrap();
        assert_eq!(mk_poll(&mut f), [line(2, "b", true)], "renamed, new file not there yet");
        append(&live, "c\n");
        assert_eq!(mk_poll(&mut f), [line(3, "torn", false), line(1, "c", true)]);
        fs::write(&live, "").unwrap();
        assert!(mk_poll(&mut f).is_empty(), "truncated in place");
        append(&live, "d\n");
        assert_eq!(mk_poll(&mut f), [line(1, "d", true)]);
    }

    fn rotated_name(live: &Path) -> PathBuf {
        crate::journal::rotated(live, 1)
    }
}
