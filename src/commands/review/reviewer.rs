//! One review: journal lines in, the chosen output out. Each line is read as a
//! [`DriftEvent`], filtered and handed to the output; a line that is not a drift event (a torn
//! last line after a crash) is skipped with a note, never an error. What is kept between lines
//! is bounded (counters, the newest results per namespace, one block of table rows).

use std::io::{self, BufRead, Write};
use std::path::Path;

use super::args::Format;
use super::error::ReviewError;
use super::filter::Filter;
use super::policyreport::Reports;
use super::sources::Source;
use super::summary::Summary;
use super::table::Table;
use crate::event::DriftEvent;
use crate::journal::read::{self, Follower, Line};

/// Notes about skipped lines printed before the rest are only counted.
const MAX_NOTES: u64 = 100;

/// Counts of one review.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines that were drift events.
    pub events: u64,
    /// Events the filter let through.
    pub matched: u64,
    /// Lines skipped as unreadable.
    pub skipped: u64,
    /// Events skipped because an earlier source had the same id.
    pub duplicates: u64,
}

/// How the output looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputOptions {
    /// The format.
    pub format: Format,
    /// `summary`: users and resources listed.
    pub top: usize,
    /// `policyreport`: results kept per namespace.
    pub max_results: usize,
    /// `table`: colour the decisions.
    pub color: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions { format: Format::Table, top: 10, max_results: 1000, color: false }
    }
}

enum Output {
    Table(Table),
    Json,
    Summary(Box<Summary>),
    Report(Reports),
}

/// One review: lines in, output out. Feed it with [`Reviewer::read`] (a whole source) or
/// [`Reviewer::follow`] (what a follower has), then [`Reviewer::finish`].
pub struct Reviewer<'w> {
    filter: Filter,
    output: Output,
    out: &'w mut dyn Write,
    notes: &'w mut dyn Write,
    stats: ScanStats,
}

impl<'w> Reviewer<'w> {
    /// A review printing to `out`, with notes about skipped lines to `notes`.
    pub fn new(filter: Filter, options: OutputOptions, out: &'w mut dyn Write, notes: &'w mut dyn Write) -> Self {
        let output = match options.format {
            Format::Table => Output::Table(Table::new(options.color)),
            Format::Json => Output::Json,
            Format::Summary => Output::Summary(Box::new(Summary::new(options.top, filter.dry_run))),
            Format::PolicyReport => Output::Report(Reports::new(options.max_results)),
        };
        Reviewer { filter, output, out, notes, stats: ScanStats::default() }
    }

    /// Reads a whole source.
    pub fn read(&mut self, source: &Source) -> Result<(), ReviewError> {
        let origin = source.to_string();
        match source {
            Source::Stdin => {
                let stdin = io::stdin();
                let lock = stdin.lock();
                self.read_from(lock, Path::new("stdin"), &origin)
            }
            Source::File(path) => {
                let reader = read::open(path)?;
                self.read_from(reader, path, &origin)
            }
        }
    }

    pub(super) fn read_from(&mut self, reader: impl BufRead, path: &Path, origin: &str) -> Result<(), ReviewError> {
        read::for_each_line(reader, path, |line| self.line(origin, line))
    }

    /// Takes what `follower` has now, and prints it.
    pub fn follow(&mut self, follower: &mut Follower) -> Result<(), ReviewError> {
        let origin = follower.path().display().to_string();
        follower.poll(|line| self.line(&origin, line))?;
        self.flush()
    }

    /// Counts an event left out because another source had it already.
    pub fn duplicate(&mut self) {
        self.stats.duplicates += 1;
    }

    /// Takes one journal line (`origin` names its file in notes).
    pub fn line(&mut self, origin: &str, line: Line<'_>) -> Result<(), ReviewError> {
        self.stats.lines += 1;
        let event = match DriftEvent::parse(line.text) {
            Ok(event) => event,
            Err(e) if !line.complete => {
                return self.skip(origin, line.number, &format!("torn last line, no newline at its end ({e})"));
            }
            Err(e) => return self.skip(origin, line.number, &format!("not a drift event ({e})")),
        };
        self.stats.events += 1;
        if !self.filter.matches(&event) {
            return Ok(());
        }
        match &mut self.output {
            Output::Table(table) => table.push(&event, &mut *self.out)?,
            Output::Json => {
                self.out.write_all(line.text)?;
                self.out.write_all(b"\n")?;
            }
            Output::Summary(summary) => summary.add(&event),
            Output::Report(reports) => reports.add(&event),
        }
        self.stats.matched += 1;
        Ok(())
    }

    fn skip(&mut self, origin: &str, number: u64, why: &str) -> Result<(), ReviewError> {
        self.stats.skipped += 1;
        if self.stats.skipped <= MAX_NOTES {
            // A note that cannot be written is no reason to stop.
            let _ = writeln!(self.notes, "skipped line {number} of {origin}: {why}");
        }
        Ok(())
    }

    /// Prints rows waiting for their column widths, and flushes the output.
    pub fn flush(&mut self) -> Result<(), ReviewError> {
        if let Output::Table(table) = &mut self.output {
            table.flush(&mut *self.out)?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Prints what is printed at the end (summary, policy reports) and the rest of the table.
    pub fn finish(mut self) -> Result<ScanStats, ReviewError> {
        match &mut self.output {
            Output::Table(table) => table.flush(&mut *self.out)?,
            Output::Json => {}
            Output::Summary(summary) => summary.write(&mut *self.out)?,
            Output::Report(reports) => reports.write(&mut *self.out)?,
        }
        if self.stats.skipped > MAX_NOTES {
            let _ = writeln!(self.notes, "skipped {} more unreadable lines", self.stats.skipped - MAX_NOTES);
        }
        self.out.flush()?;
        Ok(self.stats)
    }
}

/// Reviews `lines` (joined by newlines) with the default filter; the output, the notes and the
/// counts.
#[cfg(test)]
pub(super) fn mk_review(format: Format, lines: &[String]) -> (String, String, ScanStats) {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let options = OutputOptions { format, top: 2, ..OutputOptions::default() };
    let mut reviewer = Reviewer::new(Filter::default(), options, &mut out, &mut notes);
    let text = lines.join("\n");
    reviewer.read_from(text.as_bytes(), Path::new("j"), "j").unwrap();
    let stats = reviewer.finish().unwrap();
    (String::from_utf8(out).unwrap(), String::from_utf8(notes).unwrap(), stats)
}

#[cfg(test)]
mod tests {
    use super::super::testing::mk_line;
    use super::*;

    #[test]
    fn skips_unreadable_lines_with_a_note() {
        let good = mk_line("a", "shop", "VirtualService", "denied", "2026-11-23T11:00:00Z", false);
        let lines = [good.clone(), "garbage".to_owned(), good.clone(), good[..40].to_owned()];
        let (out, notes, stats) = mk_review(Format::Json, &lines);
        assert_eq!(out, format!("{good}\n{good}\n"));
        assert_eq!(stats, ScanStats { lines: 4, events: 2, matched: 2, skipped: 2, duplicates: 0 });
        let notes: Vec<&str> = notes.lines().collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("skipped line 2 of j: not a drift event"), "{}", notes[0]);
        assert!(notes[1].starts_with("skipped line 4 of j: torn last line"), "{}", notes[1]);
    }

    #[test]
    fn a_line_whose_time_is_not_rfc_3339_is_no_drift_event() {
        let bad = mk_line("a", "shop", "VirtualService", "denied", "yesterday", false);
        let good = mk_line("a", "shop", "VirtualService", "denied", "2026-11-23T11:00:00Z", false);
        let (_, notes, stats) = mk_review(Format::Json, &[bad, good]);
        assert_eq!(stats.skipped, 1);
        assert!(notes.contains("not a drift event"), "{notes}");
    }
}
