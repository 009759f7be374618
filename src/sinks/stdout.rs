//! The `stdout` sink: every drift event as one JSON line on standard output (driftgate's own
//! logs go to standard error), so a cluster's log pipeline keeps them and
//! `kubectl logs -l app.kubernetes.io/name=driftgate | driftgate review -` reads them back.

use tokio::io::AsyncWriteExt as _;

use super::{Deliver, Failure, Record};
use crate::event::Brief;

/// Writes drift events to standard output.
#[derive(Debug, Default)]
pub struct Stdout;

impl Stdout {}

impl<'e> Deliver<Brief<'e>> for Stdout {
    /// Writes the events' journal lines (each a drift event's JSON, as recorded) in one write,
    /// then flushes.
    async fn deliver(&self, events: &[Record<'_, Brief<'e>>]) -> Result<(), Failure> {
        let mut out = Vec::with_capacity(events.iter().map(|r| r.line.len() + 1).sum());
        for record in events {
            out.extend_from_slice(record.line);
            out.push(b'\n');
        }
        let mut stdout = tokio::io::stdout();
        let written = async {
            stdout.write_all(&out).await?;
            stdout.flush().await
        };
        written.await.map_err(|e| Failure { delivered: 0, rejected: 0, reason: format!("standard output: {e}") })
    }
}
