//! Why `driftgate review` could not run. Unreadable lines are not errors: they are skipped
//! with a note.

use std::io;

use crate::config::ConfigError;
use crate::journal::read::ReadError;

/// Why review could not run. Unreadable lines are not errors: they are skipped with a note.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// A journal could not be opened or read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The settings naming the journal could not be loaded.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// Standard output could not be written.
    #[error("failed to write the output: {0}")]
    Output(#[from] io::Error),
    /// A policy report could not be serialised.
    #[error("failed to write the policy report: {0}")]
    Report(#[from] serde_yaml_ng::Error),
    /// The flags do not go together.
    #[error("{0}")]
    Usage(&'static str),
}
