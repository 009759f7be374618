//! `driftgate audit`: lists the live protected objects whose `metadata.managedFields` show a
//! field manager that is not a GitOps writer owning a protected path: who (manager, operation,
//! time), which object, which paths. Prints a table, JSON lines or PolicyReports, and with
//! `--write-reports` applies the reports, replacing the previous ones; exits 1 when it finds
//! drift (for a cron job or CI), 2 when it cannot run.
//!
//! The parts, each in its file: the flags ([`args`]), decoding `fieldsV1` ([`fields`]) and
//! deciding which writers are drift ([`assess`]), both pure; the reports ([`report`], pure), the
//! other formats ([`table`]) and the cluster I/O ([`cluster`]: discovery, listing, writing
//! reports). The policies are the server's: the same lookup decides which policies cover an
//! object. It reads protected objects and never changes them.
//!
//! What managedFields can prove: which manager last wrote each field that is still set. It is
//! not a history: a later writer of the same field takes it over, and a manager name is
//! whatever the client sent (README, "Finding drift already in the cluster").

pub mod args;
pub mod assess;
pub mod cluster;
pub mod error;
pub mod fields;
pub mod report;
pub mod table;

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use time::OffsetDateTime;

pub use args::{AuditArgs, Format};
pub use assess::{Finding, Kind, Writer};
pub use error::AuditError;

use crate::policy;

/// Exit status when drift is found.
pub const EXIT_DRIFT: u8 = 1;
/// Exit status when the audit could not run.
pub const EXIT_ERROR: u8 = 2;

/// Runs `driftgate audit`: exit status 0 without drift, 1 with drift, 2 when it cannot run.
pub fn run(args: &AuditArgs) -> ExitCode {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut notes = io::stderr();
    let result = audit(args, &mut out, &mut notes).and_then(|drifted| {
        out.flush()?;
        Ok(drifted)
    });
    match result {
        Ok(true) => ExitCode::from(EXIT_DRIFT),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(notes, "driftgate: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The audit: whether any protected object drifted.
fn audit(args: &AuditArgs, out: &mut dyn Write, notes: &mut dyn Write) -> Result<bool, AuditError> {
    let set = policy::load_set(&args.policies, &args.own_namespace)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(AuditError::Runtime)?;
    let client = runtime.block_on(cluster::connect())?;
    let (kinds, group_notes) = runtime.block_on(cluster::protected_kinds(&client, &set))?;
    for note in group_notes {
        writeln!(notes, "{note}")?;
    }
    let mut findings: Vec<Finding> = Vec::new();
    let mut ids = Vec::new();
    for kind in &kinds {
        let scopes: Vec<Option<&str>> = match (args.namespace.is_empty(), kind.namespaced) {
            (true, _) => vec![None],
            (false, true) => args.namespace.iter().map(|ns| Some(ns.as_str())).collect(),
            // --namespace leaves cluster-scoped objects out.
            (false, false) => Vec::new(),
        };
        for namespace in scopes {
            for object in runtime.block_on(cluster::list(&client, kind, namespace))? {
                findings.extend(assess::audit(&set, &kind.kind, &object, &mut ids));
            }
        }
    }
    let reports = if args.write_reports || args.format == Format::Report {
        report::reports(&findings, OffsetDateTime::now_utc())
    } else {
        Vec::new()
    };
    match args.format {
        Format::Table => table::write_table(&findings, out)?,
        Format::Json => table::write_json(&findings, out)?,
        Format::Report => {
            for r in &reports {
                out.write_all(b"---\n")?;
                out.write_all(serde_yaml_ng::to_string(&r.object)?.as_bytes())?;
            }
        }
    }
    out.flush()?;
    if args.write_reports {
        for line in runtime.block_on(cluster::write_reports(&client, &reports, &args.namespace))? {
            writeln!(notes, "{line}")?;
        }
    }
    let objects: BTreeSet<(&str, &str, &str, &str)> = findings
        .iter()
        .map(|f| (f.api_version.as_str(), f.kind.as_str(), f.namespace.as_str(), f.name.as_str()))
        .collect();
    let drifted: BTreeSet<(&str, &str, &str, &str)> = findings
        .iter()
        .filter(|f| f.drifted())
        .map(|f| (f.api_version.as_str(), f.kind.as_str(), f.namespace.as_str(), f.name.as_str()))
        .collect();
    writeln!(
        notes,
        "{} protected object{} audited ({} kind{} served), {} drifted",
        objects.len(),
        if objects.len() == 1 { "" } else { "s" },
        kinds.len(),
        if kinds.len() == 1 { "" } else { "s" },
        drifted.len()
    )?;
    Ok(!drifted.is_empty())
}
