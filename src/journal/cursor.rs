//! Where a reader of the journal is (a sink's forwarder): a file and a byte offset in it,
//! persisted beside the journal as `<journal>.<reader>.cursor` so that the reader resumes there
//! after a restart.
//!
//! A file is named by its inode and the first bytes it holds, not by its path: rotation renames
//! the live file to `FILE.1`, `FILE.1` to `FILE.2` and so on, and a cursor must still point at
//! the same lines afterwards. The device number is left out on purpose: it changes when a
//! PersistentVolume is mounted on another node, the inode does not. The first bytes (the start
//! of the file's first drift event, which holds its unique id) tell a reused inode from the
//! file the cursor was written for; so does the file's birth time, where the filesystem keeps
//! one (ext4, xfs, btrfs): a cursor taken while the file was still empty has no first bytes,
//! and the inode of a deleted journal file is soon given to a new one.
//!
//! A cursor is written atomically (a temporary file, fsync, rename, fsync of the directory), so
//! a crash leaves the old cursor or the new one, never a torn one. This module knows nothing of
//! sinks or events.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bytes of the start of a file that name it along with its inode.
pub const HEAD_BYTES: usize = 48;

/// A journal file, wherever rotation has moved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// The inode.
    pub ino: u64,
    /// The first bytes of the file (fewer when it was shorter), as text.
    pub head: String,
    /// When the file was created (nanoseconds since the Unix epoch), where the filesystem says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<i128>,
}

impl FileId {
    /// The id of an open file.
    pub fn of(file: &File) -> io::Result<FileId> {
        let meta = file.metadata()?;
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i128::try_from(d.as_nanos()).ok());
        Ok(FileId { ino: meta.ino(), head: head_of(file)?, born })
    }

    /// The id of the file at `path`.
    pub fn of_path(path: &Path) -> io::Result<FileId> {
        FileId::of(&File::open(path)?)
    }

    /// Whether `other` (read from a file now) is this file: the same inode, and the file starts
    /// with the bytes this id recorded (it may have grown since).
    pub fn is(&self, other: &FileId) -> bool {
        let same_birth = match (self.born, other.born) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.ino == other.ino && same_birth && other.head.starts_with(&self.head)
    }
}

/// The first [`HEAD_BYTES`] of a file, as text (lossy: journal lines are UTF-8 JSON).
fn head_of(file: &File) -> io::Result<String> {
    let mut buf = [0u8; HEAD_BYTES];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Cut at a character boundary, so a head taken from a longer file starts with this one.
    let text = match std::str::from_utf8(&buf[..filled]) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
    };
    Ok(text.to_owned())
}

/// A position in the journal: the next byte to read is `offset` in `file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The file.
    pub file: FileId,
    /// Bytes of it already read (always the end of a line).
    pub offset: u64,
}

/// Why a cursor could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The cursor file could not be read or written.
    #[error("failed to {action} cursor {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The cursor file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The cursor file is not a cursor.
    #[error("cursor {path} is not readable: {source}")]
    Corrupt {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
}

/// The cursor file of `reader` for the journal whose live file is `journal`.
pub fn cursor_path(journal: &Path, reader: &str) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(format!(".{reader}.cursor"));
    PathBuf::from(name)
}

/// Reads a cursor; `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<Cursor>, CursorError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CursorError::Io { action: "read", path: path.to_owned(), source }),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|source| CursorError::Corrupt { path: path.to_owned(), source })
}

/// Writes a cursor atomically, through a temporary file renamed over the old one, so that a
/// crash of driftgate (a SIGKILL) leaves the old cursor or the new one, whole.
///
/// `durable` also syncs the content before the rename, so that a power loss does too. Without
/// it a power loss may bring back an older cursor (redelivering what was delivered since), or,
/// on a file system that does not order a rename after its file's data, leave one that cannot
/// be read (the whole journal is delivered again): duplicates, never a skip. The directory is
/// never synced after the rename, for the same reason.
pub fn store(path: &Path, cursor: &Cursor, durable: bool) -> Result<(), CursorError> {
    let io_err = |source| CursorError::Io { action: "write", path: path.to_owned(), source };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_vec(cursor).map_err(|e| io_err(io::Error::other(e)))?;
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&text)?;
        if durable { f.sync_data() } else { Ok(()) }
    });
    written.and_then(|()| fs::rename(&tmp, path)).map_err(io_err)
}

/// The index in `files` (paths of the journal, oldest first) of the file `id` names, if it is
/// still there.
pub fn locate(files: &[PathBuf], id: &FileId) -> Option<usize> {
    files.iter().position(|path| FileId::of_path(path).is_ok_and(|now| id.is(&now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_keeps_its_id_across_renames_and_growth() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("j.jsonl");
        fs::write(&live, "{\"id\":\"a\"}\n").unwrap();
        let id = FileId::of_path(&live).unwrap();
        let mut f = fs::OpenOptions::new().append(true).open(&live).unwrap();
        f.write_all(format!("{{\"id\":\"{}\"}}\n", "b".repeat(100)).as_bytes()).unwrap();
        let rotated = dir.path().join("j.jsonl.1");
        fs::rename(&live, &rotated).unwrap();
        fs::write(&live, "{\"id\":\"c\"}\n").unwrap();
        let files = vec![rotated.clone(), live.clone()];
        assert_eq!(locate(&files, &id), Some(0));
        assert!(FileId::of_path(&rotated).unwrap().head.len() == HEAD_BYTES);
        // Another file with the same start but another inode is not it.
        assert_eq!(locate(&[live], &id), None);
    }

    #[test]
    fn a_reused_inode_is_told_apart_by_its_birth_time() {
        // A cursor taken while the live file was empty has no first bytes to go by.
        let empty = FileId { ino: 5, head: String::new(), born: Some(100) };
        assert!(!empty.is(&FileId { ino: 5, head: "{\"id\":\"x".into(), born: Some(200) }), "a new file, same inode");
        assert!(empty.is(&FileId { ino: 5, head: "{\"id\":\"x".into(), born: Some(100) }), "the same file, grown");
        assert!(empty.is(&FileId { ino: 5, head: "x".into(), born: None }), "no birth time: the first bytes decide");
        let file = tempfile::tempfile().unwrap();
        assert_eq!(FileId::of(&file).unwrap().born.is_some(), file.metadata().unwrap().created().is_ok());
    }

    #[test]
    fn a_cursor_is_stored_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = cursor_path(&dir.path().join("j.jsonl"), "slack");
        assert!(path.ends_with("j.jsonl.slack.cursor"));
        assert_eq!(load(&path).unwrap(), None);
        let cursor = Cursor { file: FileId { ino: 7, head: "{\"id\":\"é\"".to_owned(), born: Some(1) }, offset: 42 };
        store(&path, &cursor, true).unwrap();
        assert_eq!(load(&path).unwrap(), Some(cursor.clone()));
        // Without a sync, the rename still replaces it whole, and no temporary file stays.
        let later = Cursor { offset: 4242, ..cursor };
        store(&path, &later, false).unwrap();
        assert_eq!(load(&path).unwrap(), Some(later));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        fs::write(&path, "{\"file\":").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("j.jsonl.slack.cursor is not readable"), "{err}");
    }
}
