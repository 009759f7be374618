//! The `table` format: aligned columns for people. Rows are held in blocks so columns can be
//! aligned, and printed a block at a time (and at every `--follow` poll); column widths only
//! grow, and a value longer than its column's width is shortened in the middle.

use std::io::{self, Write};

use time::UtcOffset;

use crate::decide::Decision;
use crate::event::DriftEvent;

/// Table rows whose column widths are measured together before they are printed.
const TABLE_BLOCK: usize = 1024;

const HEADERS: [&str; 7] = ["TIME", "DECISION", "USER", "OPERATION", "KIND", "OBJECT", "CHANGED"];
/// Widths of the columns at most; a longer value is shortened in the middle (`system:serviceaccount:…:controller`)
/// so the columns stay aligned. `--format json` has every value whole.
const MAX_WIDTHS: [usize; 6] = [30, 11, 56, 16, 40, 64];

/// The first changed paths and a count of the rest: `/spec/a, /spec/b +3`; `(whole object)` for
/// a DELETE.
pub fn changed(event: &DriftEvent<'_>) -> String {
    const SHOWN: usize = 2;
    let mut out = String::new();
    for change in event.changes.iter().take(SHOWN) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(if change.path.is_empty() { "(whole object)" } else { &change.path });
    }
    let shown = event.changes.len().min(SHOWN) as u64;
    let more = (event.changes.len() as u64 + event.changes_omitted).saturating_sub(shown);
    if more > 0 {
        out.push_str(&format!(" +{more}"));
    }
    out
}

/// `cell` shortened to `max` characters, keeping its start and its end around a `…`.
fn fit(cell: String, max: usize) -> String {
    let len = cell.chars().count();
    if len <= max {
        return cell;
    }
    let tail = (max - 1) / 2;
    let head = max - 1 - tail;
    let start: String = cell.chars().take(head).collect();
    let end: String = cell.chars().skip(len - tail).collect();
    format!("{start}…{end}")
}

fn decision_color(decision: Decision) -> Option<&'static str> {
    match decision {
        Decision::Denied => Some("31"),
        Decision::Warned => Some("33"),
        Decision::Audited => Some("36"),
        Decision::Repaired => Some("35"),
        Decision::BreakGlass => Some("1;35"),
        Decision::Allowed => None,
    }
}

/// The table being printed.
pub struct Table {
    color: bool,
    widths: [usize; 6],
    rows: Vec<([String; 7], Decision)>,
    header: bool,
}

impl Table {
    pub fn new(color: bool) -> Self {
        Table { color, widths: std::array::from_fn(|i| HEADERS[i].len()), rows: Vec::new(), header: false }
    }

    pub fn push(&mut self, e: &DriftEvent<'_>, out: &mut dyn Write) -> io::Result<()> {
        let t = e.time.to_offset(UtcOffset::UTC);
        let time = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let operation = e.operation.as_str();
        let operation = if e.dry_run { format!("{operation} dry-run") } else { operation.to_owned() };
        let mut row = [
            time,
            e.decision.to_string(),
            e.user.username.to_string(),
            operation,
            e.resource.kind_label().into_owned(),
            e.resource.object_ref(),
            changed(e),
        ];
        // Every column but the last (CHANGED) has a width.
        for (cell, max) in row.iter_mut().zip(MAX_WIDTHS) {
            *cell = fit(std::mem::take(cell), max);
        }
        self.rows.push((row, e.decision));
        if self.rows.len() >= TABLE_BLOCK {
            self.flush(out)?;
        }
        Ok(())
    }

    pub fn flush(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        for (row, _) in &self.rows {
            for (i, width) in self.widths.iter_mut().enumerate() {
                *width = (*width).max(row[i].chars().count());
            }
        }
        if !self.header {
            self.header = true;
            self.write_row(out, &HEADERS.map(str::to_owned), None)?;
        }
        let rows = std::mem::take(&mut self.rows);
        for (row, decision) in &rows {
            self.write_row(out, row, Some(*decision).filter(|_| self.color))?;
        }
        self.rows = rows;
        self.rows.clear();
        Ok(())
    }

    /// Writes one row, the decision coloured when `color` names it.
    fn write_row(&self, out: &mut dyn Write, row: &[String; 7], color: Option<Decision>) -> io::Result<()> {
        for (i, cell) in row.iter().enumerate() {
            let Some(&width) = self.widths.get(i) else {
                writeln!(out, "{cell}")?;
                continue;
            };
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            match color.and_then(decision_color).filter(|_| i == 1) {
                Some(code) => write!(out, "\x1b[{code}m{cell}\x1b[0m{:pad$}", "")?,
                None => write!(out, "{cell}{:pad$}", "")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::Format;
    use super::super::reviewer::mk_review;
    use super::super::testing::{mk_event, mk_line};
    use super::*;

    #[test]
    fn names_the_first_changed_paths_and_counts_the_rest() {
        let line = mk_line("alice", "shop", "VirtualService", "denied", "2026-11-23T23:30:32.554697358Z", false);
        assert_eq!(changed(&mk_event(&line)), "/spec/a, /spec/b +5");
        let mut delete: serde_json::Value = serde_json::from_str(&line).unwrap();
        delete["changes"] = serde_json::json!([{"path": "", "old": "<object>", "new": null}]);
        delete.as_object_mut().unwrap().remove("changesOmitted");
        let delete = delete.to_string();
        assert_eq!(changed(&mk_event(&delete)), "(whole object)", "{delete}");
    }

    #[test]
    fn aligns_table_columns() {
        let t = "2026-11-23T11:00:00.123Z";
        let lines = [
            mk_line("alice@example.com", "shop", "VirtualService", "denied", t, false),
            mk_line("bob", "payments-long", "Gateway", "warned", t, false),
        ];
        let (out, _, _) = mk_review(Format::Table, &lines);
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 3, "{out}");
        assert!(rows[0].starts_with("TIME"));
        assert!(rows[1].starts_with("2026-11-23T11:00:00Z  denied    alice@example.com  UPDATE"), "{out}");
        let column = |row: &str, text: &str| row.find(text).unwrap();
        assert_eq!(column(rows[0], "OBJECT"), column(rows[1], "shop/reviews"));
        assert_eq!(column(rows[1], "shop/reviews"), column(rows[2], "payments-long/reviews"));
        assert!(!out.contains('\x1b'), "no colour off a terminal");
    }

    #[test]
    fn long_values_are_shortened_in_the_middle_so_columns_stay_aligned() {
        assert_eq!(fit("short".into(), 10), "short");
        let sa = "system:serviceaccount:progressive-delivery:argo-rollouts-controller-manager".to_owned();
        let fitted = fit(sa, 56);
        assert_eq!(fitted.chars().count(), 56);
        assert!(fitted.starts_with("system:serviceaccount:") && fitted.ends_with("controller-manager"), "{fitted}");
        let mut table = Table::new(false);
        let mut out = Vec::new();
        for user in ["alice@example.com", "system:serviceaccount:progressive-delivery:argo-rollouts-controller-manager"]
        {
            let line = mk_line(user, "shop", "VirtualService", "denied", "2026-11-24T00:12:02Z", false);
            table.push(&mk_event(&line), &mut out).unwrap();
        }
        table.flush(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let columns: Vec<usize> = text
            .lines()
            .map(|l| l[..l.find("UPDATE").or_else(|| l.find("OPERATION")).unwrap()].chars().count())
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "misaligned:\n{text}");
    }
}
