//! Where review reads events from: standard input, or journal files with their rotated files,
//! oldest first. Knows only file names; reading lines is [`crate::journal::read`]'s.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::journal::read::{self, ReadError};

/// Where review reads events from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A journal file (live or rotated).
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stdin => f.write_str("stdin"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The sources for FILE arguments, in order: `-` is stdin; every other FILE is read after its
/// rotated files (FILE.N … FILE.1), unless it is itself a rotated file of another FILE given
/// (so `drift-events.jsonl*` reads each file once, oldest first). A FILE with neither the file
/// nor rotated files is an error.
pub fn sources(files: &[PathBuf]) -> Result<Vec<Source>, ReadError> {
    Ok(streams(files)?.into_iter().flatten().collect())
}

/// The sources grouped by FILE argument: each group is one stream of events in time order (a
/// journal with its rotated files, oldest first, or stdin), to be merged with the others.
pub fn streams(files: &[PathBuf]) -> Result<Vec<Vec<Source>>, ReadError> {
    let mut out = Vec::new();
    for file in files {
        if file.as_os_str() == "-" {
            out.push(vec![Source::Stdin]);
            continue;
        }
        if files.iter().any(|live| live != file && read::is_rotated_of(file, live)) {
            continue;
        }
        let found = read::journal_files(file)?;
        if found.is_empty() {
            return Err(ReadError::Open { path: file.clone(), source: io::ErrorKind::NotFound.into() });
        }
        out.push(found.into_iter().map(Source::File).collect());
    }
    Ok(out)
}
