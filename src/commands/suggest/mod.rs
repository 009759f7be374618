//! `driftgate suggest`: reads drift events (audit and warn mode, refusals too) and proposes the
//! smallest policy change that lets the recurring automated writers through and nobody else.
//!
//! [`propose`] groups and narrows (pure); [`rewrite`] adds the exemptions to the policy files
//! as text; [`cases`] rebuilds an AdmissionReview per exemption and checks it through the
//! decision core (refused now, allowed with the suggestion) before it becomes a
//! `driftgate test` case. This module reads, prints and writes files.

pub mod cases;
pub mod propose;
pub mod rewrite;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use time::OffsetDateTime;

use self::propose::{Proposal, Suggestions};
use crate::commands::review::args::When;
use crate::event::{Decision, DriftEvent};
use crate::journal::read;
use crate::policy::{self, PolicySet};

const AFTER_HELP: &str = "\
Reads drift events (journal files with their rotated files, or - for standard input, e.g.
`kubectl logs … | driftgate suggest -`) and proposes, per policy, an exemption for each service
account or control-plane controller seen at least --min-count times, narrowed to the operations,
subresources and paths it changed. People are never proposed: they are listed as 'would be
refused'. Prints a summary and a unified diff of the policy files; with --out DIR, writes the
rewritten policy files and a `driftgate test` file with one case per exemption (refused by the
policies now, allowed with the suggestion; checked before it is written).

Exit status: 0 when it ran (whatever it found), 2 on bad input.";

/// Flags of `driftgate suggest`.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SuggestArgs {
    /// Journal files (rotated files are read too) or - for standard input
    #[arg(value_name = "JOURNAL", default_value = "drift-events.jsonl")]
    pub journals: Vec<PathBuf>,
    /// The policy folder the suggestion is for
    #[arg(long, value_name = "DIR", default_value = "policies")]
    pub policies: PathBuf,
    /// Propose an exemption only for writers seen at least this many times
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub min_count: u64,
    /// Only events at or after this (24h, 7d, a date or an RFC 3339 time)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<When>,
    /// Write the rewritten policy files, the test file and its AdmissionReviews into this folder
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// driftgate's own namespace (never protected)
    #[arg(long, value_name = "NS", default_value = "driftgate")]
    pub namespace: String,
    /// Output: text (summary and diff) or json
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// What one proposal became.
struct Outcome<'p> {
    proposal: &'p Proposal,
    /// The test case's review file name, when it checked out.
    case: Result<String, String>,
}

/// Runs `driftgate suggest`.
pub fn run(args: &SuggestArgs) -> ExitCode {
    match suggest(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("driftgate suggest: {e}");
            ExitCode::from(2)
        }
    }
}

fn suggest(args: &SuggestArgs) -> Result<(), String> {
    let since = args.since.map(|w| w.resolve(OffsetDateTime::now_utc()));
    let events = read_events(&args.journals, |e| since.is_none_or(|s| e.time >= s))?;
    let loaded = policy::load_dir(&args.policies).map_err(|e| e.to_string())?;
    let current = PolicySet::new(loaded.clone(), std::slice::from_ref(&args.namespace));
    let suggestions = propose::propose(&events, args.min_count);

    // Rewrite each policy file once, with every proposal for its policies.
    let mut by_file: BTreeMap<PathBuf, (String, String)> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    for p in &suggestions.proposals {
        let Some(l) = loaded.iter().find(|l| l.policy.metadata.name.0 == p.policy) else {
            problems.push(format!(
                "policy {} is not in {} (events of another policy set?)",
                p.policy,
                args.policies.display()
            ));
            continue;
        };
        let entry = match by_file.get(&l.file) {
            Some(e) => e.clone(),
            None => {
                let text = std::fs::read_to_string(&l.file)
                    .map_err(|e| format!("failed to read {}: {e}", l.file.display()))?;
                (text.clone(), text)
            }
        };
        match rewrite::add_exemptions(&l.file, &entry.1, &p.policy, &[p]) {
            Ok(new) => {
                by_file.insert(l.file.clone(), (entry.0, new));
            }
            Err(e) => problems.push(format!(
                "{e}; paste this under its spec:\n  exemptions:\n{}",
                rewrite::exemptions_yaml(&[p], "    ")
            )),
        }
    }
    let mut suggested_loaded = Vec::new();
    for l in &loaded {
        match by_file.get(&l.file) {
            Some((_, new)) => {
                let again = policy::load_str(&l.file, new).map_err(|e| e.to_string())?;
                if let Some(found) = again.into_iter().find(|a| a.policy.metadata.name == l.policy.metadata.name) {
                    suggested_loaded.push(found);
                }
            }
            None => suggested_loaded.push(l.clone()),
        }
    }
    let suggested = PolicySet::new(suggested_loaded, std::slice::from_ref(&args.namespace));

    // One test case a proposal: refused now, allowed with the suggestion.
    let outcomes: Vec<Outcome<'_>> = suggestions
        .proposals
        .iter()
        .map(|p| {
            let review = cases::review_of(&p.sample);
            let now = cases::decision(&current, &review, &p.policy);
            let then = cases::decision(&suggested, &review, &p.policy);
            let case = match (now, then) {
                (Ok(Decision::Denied | Decision::Warned | Decision::Audited), Ok(Decision::Allowed)) => {
                    Ok(format!("{}-{}.json", p.policy, p.name))
                }
                (now, then) => Err(format!("its recorded event is {now:?} now and {then:?} with the suggestion")),
            };
            (p, case, review)
        })
        .map(|(proposal, case, review)| {
            if let (Ok(name), Some(out)) = (&case, &args.out) {
                let _ = write(&out.join("reviews").join(name), &serde_json::to_vec_pretty(&review).unwrap_or_default());
            }
            Outcome { proposal, case }
        })
        .collect();

    if let Some(out) = &args.out {
        write_out(out, &args.policies, &by_file, &outcomes)?;
    }
    let mut stdout = io::stdout().lock();
    let printed = if args.format == "json" {
        print_json(&mut stdout, &suggestions, &outcomes, &problems)
    } else {
        print_text(&mut stdout, &suggestions, &outcomes, &by_file, &problems, events.len(), args.out.as_deref())
    };
    printed.map_err(|e| format!("failed to write to standard output: {e}"))
}

/// The drift events `keep` wants from the journals (with their rotated files, oldest first) or
/// standard input, read a line at a time: memory holds the events kept, not the files.
fn read_events(
    journals: &[PathBuf],
    keep: impl Fn(&DriftEvent<'_>) -> bool,
) -> Result<Vec<DriftEvent<'static>>, String> {
    let mut events = Vec::new();
    let mut take = |line: read::Line<'_>| -> Result<(), read::ReadError> {
        if let Ok(event) = DriftEvent::parse(line.text)
            && keep(&event)
        {
            events.push(event.into_owned());
        }
        Ok(())
    };
    for journal in journals {
        if journal.as_os_str() == "-" {
            read::for_each_line(io::stdin().lock(), Path::new("standard input"), &mut take)
                .map_err(|e| e.to_string())?;
            continue;
        }
        let files = read::journal_files(journal).map_err(|e| e.to_string())?;
        if files.is_empty() {
            return Err(format!(
                "no journal at {} (give the journal file, or - for standard input)",
                journal.display()
            ));
        }
        for file in files {
            let opened = std::fs::File::open(&file).map_err(|e| format!("failed to read {}: {e}", file.display()))?;
            read::for_each_line(io::BufReader::new(opened), &file, &mut take).map_err(|e| e.to_string())?;
        }
    }
    Ok(events)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("failed to write {}: {e}", path.display()))
}

/// `out/policies/<file>` for each rewritten file, `out/suggested-tests.yaml`.
fn write_out(
    out: &Path,
    policies: &Path,
    by_file: &BTreeMap<PathBuf, (String, String)>,
    outcomes: &[Outcome<'_>],
) -> Result<(), String> {
    for (file, (_, new)) in by_file {
        let name = file.file_name().map(PathBuf::from).unwrap_or_else(|| file.clone());
        write(&out.join("policies").join(name), new.as_bytes())?;
    }
    // The untouched policy files too, so `out/policies` is the whole suggested folder.
    if let Ok(entries) = std::fs::read_dir(policies) {
        for entry in entries.flatten() {
            let path = entry.path();
            let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if yaml && !by_file.contains_key(&path) {
                let text = std::fs::read(&path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
                write(&out.join("policies").join(entry.file_name()), &text)?;
            }
        }
    }
    let mut tests = String::from(
        "# Written by `driftgate suggest`: one case per suggested exemption, from a recorded drift\n\
         # event. Each is refused by the policies in force and allowed with the suggestion.\n\
         policies: policies\ncases:\n",
    );
    for o in outcomes {
        if let Ok(file) = &o.case {
            let p = o.proposal;
            tests.push_str(&format!(
                "  - name: {} may make the change it made {} times\n    review: reviews/{file}\n    policy: {}\n    decision: allowed\n",
                p.writer.username(),
                p.count,
                p.policy
            ));
        }
    }
    write(&out.join("suggested-tests.yaml"), tests.as_bytes())
}

fn print_text(
    out: &mut dyn io::Write,
    s: &Suggestions,
    outcomes: &[Outcome<'_>],
    by_file: &BTreeMap<PathBuf, (String, String)>,
    problems: &[String],
    events: usize,
    written: Option<&Path>,
) -> io::Result<()> {
    writeln!(out, "read {events} drift events")?;
    writeln!(out)?;
    writeln!(out, "suggested exemptions ({}):", s.proposals.len())?;
    writeln!(out, "  {:<16} {:<48} {:>6}  {:<10} {:<10}  WHAT", "POLICY", "WRITER", "EVENTS", "FIRST", "LAST")?;
    for o in outcomes {
        let p = o.proposal;
        let ops: Vec<&str> = p.operations.iter().map(|o| o.as_str()).collect();
        let mut what = ops.join(",");
        if !p.subresources.is_empty() {
            what.push_str(&format!(" {}", p.subresources.iter().cloned().collect::<Vec<_>>().join(",")));
        }
        if !p.paths.is_empty() {
            what.push_str(&format!(" {}", p.paths.iter().cloned().collect::<Vec<_>>().join(" ")));
        }
        writeln!(
            out,
            "  {:<16} {:<48} {:>6}  {:<10} {:<10}  {what}",
            p.policy,
            p.writer.username(),
            p.count,
            p.first.date().to_string(),
            p.last.date().to_string()
        )?;
        if let Err(why) = &o.case {
            writeln!(out, "    (no test case: {why})")?;
        }
    }
    writeln!(out)?;
    writeln!(out, "would be refused once enforced ({}):", s.refused.len())?;
    for r in &s.refused {
        writeln!(out, "  {:<16} {:<48} {:>6}  {}", r.policy, r.username, r.count, r.why)?;
    }
    for problem in problems {
        writeln!(out)?;
        writeln!(out, "note: {problem}")?;
    }
    for (file, (old, new)) in by_file {
        writeln!(out)?;
        let name = file.display().to_string();
        let diff = similar::TextDiff::from_lines(old, new);
        write!(out, "{}", diff.unified_diff().context_radius(3).header(&name, &format!("{name} (suggested)")))?;
    }
    match written {
        Some(dir) => writeln!(
            out,
            "\nwrote {0}/policies/ (the suggested policy folder) and {0}/suggested-tests.yaml: run `driftgate test {0}/suggested-tests.yaml`",
            dir.display()
        ),
        None if !s.proposals.is_empty() => {
            writeln!(out, "\n(--out DIR writes the suggested policy folder and a `driftgate test` file)")
        }
        None => Ok(()),
    }
}

fn print_json(
    out: &mut dyn io::Write,
    s: &Suggestions,
    outcomes: &[Outcome<'_>],
    problems: &[String],
) -> io::Result<()> {
    let cases: Vec<_> = outcomes
        .iter()
        .map(|o| match &o.case {
            Ok(file) => json!({"exemption": o.proposal.name, "policy": o.proposal.policy, "review": file}),
            Err(why) => json!({"exemption": o.proposal.name, "policy": o.proposal.policy, "error": why}),
        })
        .collect();
    let body = json!({"proposals": s.proposals, "refused": s.refused, "cases": cases, "notes": problems});
    writeln!(out, "{}", serde_json::to_string_pretty(&body).unwrap_or_default())
}
