//! `driftgate review`: reads drift events back from the journal, filters them, and prints them
//! as a table, JSON lines, a summary or PolicyReports; `--follow` keeps printing new ones.
//!
//! Every line is read as the one typed [`crate::event::DriftEvent`] (borrowing from the line).
//! The parts, each in its file: the flags ([`args`]), which events are shown ([`filter`]), where
//! they are read from ([`sources`]), the line loop ([`reviewer`]) and the formats ([`table`],
//! [`summary`], [`policyreport`]; `json` prints the lines as they are). It streams: lines come
//! one at a time from [`crate::journal::read`], and what is kept between lines is bounded. A line
//! that is not a drift event (a torn last line after a crash) is skipped with a note on stderr,
//! never an error. It never writes the journal.

pub mod args;
pub mod error;
pub mod filter;
pub mod merge;
pub mod policyreport;
pub mod reviewer;
pub mod sources;
pub mod summary;
pub mod table;

use std::io::{self, BufWriter, IsTerminal as _, Write};
use std::process::ExitCode;

use time::OffsetDateTime;

pub use args::{DecisionArg, DryRun, Format, Pattern, ReviewArgs, When, WhenError};
pub use error::ReviewError;
pub use filter::Filter;
pub use policyreport::report_result;
pub use reviewer::{OutputOptions, Reviewer, ScanStats};
pub use sources::{Source, sources, streams};
pub use summary::DECISIONS;

use crate::config::Settings;
use crate::journal::read::{self, Follower};

/// How often `--follow` looks at the journal.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `driftgate review`: exit code 0 (also when lines were skipped), 1 when a journal
/// cannot be read.
pub fn run(args: &ReviewArgs) -> ExitCode {
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut notes = io::stderr();
    match review(args, color, &mut out, &mut notes) {
        Ok(stats) => {
            if stats.duplicates > 0 {
                let _ = writeln!(
                    notes,
                    "{} duplicate events skipped (the same id in more than one source)",
                    stats.duplicates
                );
            }
            if stats.matched == 0 && args.format == Format::Table {
                let _ = writeln!(notes, "no drift events match");
            }
            ExitCode::SUCCESS
        }
        // The reader went away (`| head`): nothing more to say.
        Err(ReviewError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(notes, "driftgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn review(
    args: &ReviewArgs,
    color: bool,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<ScanStats, ReviewError> {
    if args.follow && !matches!(args.format, Format::Table | Format::Json) {
        return Err(ReviewError::Usage("--follow works with --format table or json"));
    }
    let files = if args.files.is_empty() {
        let journal = match &args.journal {
            Some(j) => j.clone(),
            None => Settings::load(args.config.as_deref(), &[])?.journal,
        };
        vec![journal]
    } else {
        args.files.clone()
    };
    let filter = Filter::from_args(args, OffsetDateTime::now_utc());
    let options = OutputOptions { format: args.format, top: args.top, max_results: args.max_results, color };
    let mut reviewer = Reviewer::new(filter, options, out, notes);
    if !args.follow {
        let mut streams = streams(&files)?;
        // One journal (and its rotated files) is read as it is, fastest; several sources, or
        // stdin (a shipped log may hold an event twice), are merged by time and deduplicated.
        if let [one] = streams.as_slice()
            && !one.contains(&Source::Stdin)
        {
            for source in streams.remove(0) {
                reviewer.read(&source)?;
            }
        } else {
            merge::merge(streams, &mut reviewer)?;
        }
        return reviewer.finish();
    }
    let [live] = files.as_slice() else {
        return Err(ReviewError::Usage("--follow follows one journal: give at most one FILE"));
    };
    if live.as_os_str() == "-" {
        return Err(ReviewError::Usage("--follow follows a journal file, not stdin"));
    }
    // The live file is read by the follower from its start, so no line falls between history
    // and following.
    for file in read::journal_files(live)?.into_iter().filter(|f| f != live) {
        reviewer.read(&Source::File(file))?;
    }
    let mut follower = Follower::new(live);
    loop {
        reviewer.follow(&mut follower)?;
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Journal lines and flags for the tests of every part.
#[cfg(test)]
pub(crate) mod testing {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use super::ReviewArgs;
    use crate::event::DriftEvent;

    pub fn mk_line(user: &str, ns: &str, kind: &str, decision: &str, time: &str, dry_run: bool) -> String {
        serde_json::json!({
            "id": "01a20abf-33ea-752b-8746-03435d90d32d", "time": time, "decision": decision,
            "mode": "enforce", "policy": "mesh-gitops", "rule": "protected", "message": "driftgate: \"quoted\" — x",
            "operation": "UPDATE", "dryRun": dry_run,
            "user": {"username": user, "groups": ["devs"]},
            "resource": {"group": "networking.istio.io", "version": "v1", "kind": kind,
                         "resource": format!("{}s", kind.to_lowercase()), "namespace": ns, "name": "reviews"},
            "changes": [{"path": "/spec/a", "old": 1, "new": {"deep": [1, 2]}}, {"path": "/spec/b", "old": null, "new": 2},
                        {"path": "/spec/c", "old": 1, "new": 2}],
            "changesOmitted": 4,
            "requestUid": "u1"
        })
        .to_string()
    }

    pub fn mk_event(line: &str) -> DriftEvent<'_> {
        DriftEvent::parse(line.as_bytes()).unwrap()
    }

    pub fn mk_args(flags: &[&str]) -> ReviewArgs {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ReviewArgs,
        }
        let argv = std::iter::once("review").chain(flags.iter().copied());
        <Wrap as clap::Parser>::try_parse_from(argv).unwrap().args
    }

    pub fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::testing::{mk_event, mk_line};
    use crate::decide::Decision;
    use crate::event::DriftEvent;

    #[test]
    fn reads_the_fields_review_needs_from_a_journal_line() {
        let line = mk_line("alice", "shop", "VirtualService", "denied", "2026-11-23T23:30:32.554697358Z", false);
        let e = mk_event(&line);
        assert_eq!((e.user.username.as_ref(), e.decision), ("alice", Decision::Denied));
        assert_eq!(e.changes.len(), 3);
        assert_eq!(super::table::changed(&e), "/spec/a, /spec/b +5");
        let r = &e.resource;
        assert_eq!((r.object_ref(), r.kind_label().as_ref()), ("shop/reviews".to_owned(), "VirtualService"));
        assert_eq!(e.message, "driftgate: \"quoted\" — x");
        assert!(matches!(e.message, Cow::Owned(_)), "escaped: unescaped into a copy");
        assert!(matches!(e.id, Cow::Borrowed(_)), "not escaped: borrowed");
        let user = "d\u{e9}j\u{e0} \"vu\"";
        let escaped = mk_line(user, "shop", "VirtualService", "denied", "2026-11-23T23:30:32Z", false);
        let e2 = mk_event(&escaped);
        assert_eq!(e2.user.username, user, "{escaped}");
        assert!(matches!(e2.user.username, Cow::Owned(_)), "escaped: unescaped into a copy");
        assert_eq!(
            (e.id.as_ref(), e.rule.as_ref(), e.request_uid.as_ref()),
            ("01a20abf-33ea-752b-8746-03435d90d32d", "protected", "u1")
        );
        assert_eq!(e.resource.api_version(), "networking.istio.io/v1");
    }

    #[test]
    fn reads_a_real_drift_event() {
        let line = r#"{"id":"i","time":"2026-11-23T23:30:32Z","decision":"break-glass","mode":"enforce","policy":"p","rule":"r","message":"m","operation":"DELETE","dryRun":true,"user":{"username":"bob","groups":[]},"resource":{"group":"","version":"v1","kind":"Scale","resource":"deployments","subresource":"scale","namespace":"","name":"web"},"changes":[{"path":"","old":"<object>","new":null}],"requestUid":"u"}"#;
        let event = DriftEvent::parse(line.as_bytes()).unwrap();
        let written = event.to_line();
        assert_eq!(written, format!("{line}\n").into_bytes(), "written back as read");
        let e = DriftEvent::parse(written.trim_ascii_end()).unwrap();
        assert!(e.dry_run);
        assert_eq!(
            (e.resource.kind_label().as_ref(), e.resource.object_ref()),
            ("deployments/scale", "web".to_owned())
        );
        assert_eq!(e.resource.api_version(), "v1");
        assert_eq!(super::table::changed(&e), "(whole object)");
    }

    #[test]
    fn refuses_lines_that_are_not_drift_events() {
        for bad in ["{}", "[]", "{\"time\":\"t\",\"decision\":\"denied\"", "not json", "{\"time\":1}"] {
            assert!(DriftEvent::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
