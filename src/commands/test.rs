//! `driftgate test`: replays AdmissionReview files offline through the decision core the server
//! uses, and checks them against the expectations of test files (like `kyverno test`).
//!
//! Owns the test-file format. The answer is the server's own, [`crate::decide::admit`], over a
//! [`PolicySet`] loaded as the server loads it ([`policy::load_set`]); this module only reads
//! files and prints. Nothing is journaled and nothing is sent anywhere.

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use crate::admission::{self, ReviewError};
use crate::decide::{self, DecideError, Decision, Endpoint, EventStamp, Hook, Judges, Verdict};
use crate::policy::{self, LoadError, PolicySet};

/// How many characters of a message a line shows.
const MESSAGE_HEAD: usize = 110;

const AFTER_HELP: &str = "\
A FILE ending in .json is an AdmissionReview: its decision, policy, rule and the start of its
message are printed. Any other FILE (.yaml, .yml) is a test file:

  policies: ../policies        # optional, relative to the test file [default: --policies]
  namespace: driftgate         # optional, driftgate's own namespace [default: --namespace]
  cases:
    - review: fixtures/virtualservice-update-kubectl-edit-human.validating.json
      decision: denied         # allowed | denied | warned | audited | repaired | break-glass
      policy: mesh-gitops      # optional; judged by this policy alone, as its webhook would
      rule: protected          # optional
      endpoint: validate       # optional: validate (default) or mutate (repairs; never refuses)
      name: alice's edit       # optional, shown in the report

Paths in a test file are relative to the test file. Each case prints \"ok\" or \"FAIL\" with the
expected and the actual values. Exit status: 0 when every case passed and every file could be
read, 1 otherwise.";

/// `driftgate test`: which policies, and which files.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct TestArgs {
    /// Policy folder for AdmissionReview files, and for test files that name none
    #[arg(long, value_name = "DIR", default_value = "policies")]
    pub policies: PathBuf,
    /// driftgate's own namespace, never protected
    #[arg(long, value_name = "NS", default_value = "driftgate")]
    pub namespace: String,
    /// The webhook that answers AdmissionReview files (.json): validate, or mutate (repairs,
    /// provenance; it never refuses)
    #[arg(long, value_enum, default_value_t = HookArg::Validate)]
    pub endpoint: HookArg,
    /// AdmissionReview files (.json) to replay, test files (.yaml, .yml) to check
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Why a file could not be tested.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TestError {
    /// A file could not be read.
    #[error("failed to read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A test file is not valid.
    #[error("failed to parse test file {path}: {reason}")]
    TestFile {
        /// The test file.
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
    /// An AdmissionReview file is not one.
    #[error("failed to parse {path}: {reason}")]
    Review {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The request's objects could not be read.
    #[error("failed to decide {path}: {reason}")]
    Decide {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The policy folder could not be loaded (each problem with file, line and reason).
    #[error("{0}")]
    Policies(#[from] LoadError),
}

/// A test file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The policy folder, relative to the test file.
    #[serde(default)]
    pub policies: Option<PathBuf>,
    /// driftgate's own namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One expectation: an AdmissionReview and what it must get.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// A name to show.
    #[serde(default)]
    pub name: Option<String>,
    /// The AdmissionReview file, relative to the test file.
    pub review: PathBuf,
    /// The expected decision.
    pub decision: Decision,
    /// The expected deciding policy.
    #[serde(default)]
    pub policy: Option<String>,
    /// The expected rule.
    #[serde(default)]
    pub rule: Option<String>,
    /// Which webhook answers: `validate` (the default) or `mutate` (repairs, provenance).
    #[serde(default)]
    pub endpoint: HookArg,
}

/// The webhook a review is answered by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HookArg {
    /// The validating webhook (refuses, warns, records).
    #[default]
    Validate,
    /// The mutating webhook (repairs, stamps provenance; never refuses).
    Mutate,
}

impl HookArg {
    fn hook(self) -> Hook {
        match self {
            HookArg::Validate => Hook::Validate,
            HookArg::Mutate => Hook::Mutate,
        }
    }
}

/// What one webhook answered a replayed review.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The core's verdict.
    pub verdict: Verdict,
    /// What the answer carried out (the mutating webhook never refuses).
    pub answered: Decision,
    /// The head of the message a person would see (empty when there is none).
    pub message: String,
}

/// Parses a test file's text (`path` names it in errors).
pub fn parse_test_file(path: &Path, text: &str) -> Result<TestFile, TestError> {
    serde_yaml_ng::from_str(text).map_err(|e| TestError::TestFile { path: path.to_owned(), reason: e.to_string() })
}

/// How an answer differs from a case's expectations; empty when it meets them.
pub fn mismatches(case: &Case, replayed: &Replayed) -> Vec<String> {
    let mut out = Vec::new();
    let verdict = &replayed.verdict;
    if case.decision != replayed.answered {
        out.push(format!("expected decision {}, got {}", case.decision, replayed.answered));
    }
    let policy = verdict.policy_name().unwrap_or("(none)");
    if let Some(want) = &case.policy
        && want != policy
    {
        out.push(format!("expected policy {want}, got {policy}"));
    }
    if let Some(want) = &case.rule
        && *want != verdict.rule.to_string()
    {
        out.push(format!("expected rule {want}, got {}", verdict.rule));
    }
    out
}

/// What a case expects: `denied`, `denied (policy p, rule r)`.
pub fn expected(case: &Case) -> String {
    let mut parts = Vec::new();
    if let Some(policy) = &case.policy {
        parts.push(format!("policy {policy}"));
    }
    if let Some(rule) = &case.rule {
        parts.push(format!("rule {rule}"));
    }
    if parts.is_empty() { case.decision.to_string() } else { format!("{} ({})", case.decision, parts.join(", ")) }
}

/// What `hook` answers one AdmissionReview file, judged as `/validate` (every policy, the most
/// severe verdict wins) or `/validate/<policy>` (`judges`) would, through the core the server
/// calls ([`decide::admit`]).
pub fn replay(set: &PolicySet, path: &Path, hook: Hook, judges: Judges<'_>) -> Result<Replayed, TestError> {
    Ok(replay_each(set, path, hook, &[judges])?.remove(0))
}

/// What `hook` answers one AdmissionReview file for each of `judges`.
fn replay_each(set: &PolicySet, path: &Path, hook: Hook, judges: &[Judges<'_>]) -> Result<Vec<Replayed>, TestError> {
    let body = std::fs::read(path).map_err(|e| TestError::Read { path: path.to_owned(), reason: e.to_string() })?;
    let parsed = admission::parse(&body)
        .map_err(|e: ReviewError| TestError::Review { path: path.to_owned(), reason: e.to_string() })?;
    let stamp = EventStamp { id: "(none: offline)".to_owned(), time: time::OffsetDateTime::now_utc(), trace_id: None };
    judges
        .iter()
        .map(|judges| {
            let outcome = decide::admit(
                set,
                &decide::Grants::none(),
                &parsed.request,
                Endpoint { hook, judges: *judges },
                &stamp,
            )
            .map_err(|e: DecideError| TestError::Decide { path: path.to_owned(), reason: e.to_string() })?;
            let message =
                outcome.event.as_ref().map(|e| head(e.message.trim_start_matches("driftgate: "))).unwrap_or_default();
            Ok(Replayed { verdict: outcome.verdict, answered: outcome.answered, message })
        })
        .collect()
}

/// What a cluster with the generated configuration does with one AdmissionReview file at
/// `hook`: the answer of each policy that judges it (one webhook each), or, when none does (a
/// built-in rule, an unprotected kind), the one answer that says why.
pub fn replay_as_registered(set: &PolicySet, path: &Path, hook: Hook) -> Result<Vec<Replayed>, TestError> {
    let names: Vec<&str> = set.policies().map(|p| p.metadata.name.0.as_str()).collect();
    let each: Vec<Judges<'_>> = names.iter().map(|n| Judges::Policy(n)).collect();
    let judged: Vec<Replayed> = replay_each(set, path, hook, &each)?
        .into_iter()
        .zip(&names)
        .filter(|(r, name)| r.verdict.policy_name() == Some(**name))
        .map(|(row, _)| row)
        .collect();
    if judged.is_empty() { replay(set, path, hook, Judges::All).map(|row| vec![row]) } else { Ok(judged) }
}

/// The first [`MESSAGE_HEAD`] characters of a message.
fn head(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_HEAD) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// Policy sets by folder and namespace, each loaded once.
#[derive(Default)]
struct Policies {
    sets: HashMap<(PathBuf, String), Result<PolicySet, TestError>>,
}

impl Policies {
    fn get(&mut self, dir: &Path, namespace: &str) -> Result<&PolicySet, TestError> {
        let key = (dir.to_owned(), namespace.to_owned());
        let loaded = self.sets.entry(key).or_insert_with(|| Ok(policy::load_set(dir, namespace)?));
        loaded.as_ref().map_err(Clone::clone)
    }
}

/// What a run found.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
    errors: usize,
}

/// Runs `driftgate test`: exit code 0 when every case passed and every file could be read.
pub fn run(args: &TestArgs) -> ExitCode {
    let mut policies = Policies::default();
    let mut tally = Tally::default();
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut out = io::stdout().lock();
    for file in &args.files {
        if file.extension().is_some_and(|e| e == "json") {
            let hook = args.endpoint.hook();
            let judged =
                policies.get(&args.policies, &args.namespace).and_then(|set| replay_as_registered(set, file, hook));
            match judged {
                Ok(answers) => {
                    for r in answers {
                        rows.push([
                            file.display().to_string(),
                            r.answered.as_str().to_owned(),
                            r.verdict.policy_name().unwrap_or("-").to_owned(),
                            r.verdict.rule.to_string(),
                            r.message,
                        ]);
                    }
                }
                Err(e) => error(&mut tally, &e),
            }
        } else {
            run_test_file(file, args, &mut policies, &mut tally, &mut out);
        }
    }
    print_rows(&mut out, &rows);
    if tally.passed + tally.failed > 0 {
        let _ = writeln!(out, "{} passed, {} failed", tally.passed, tally.failed);
    }
    if tally.failed > 0 || tally.errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn error(tally: &mut Tally, e: &TestError) {
    tally.errors += 1;
    eprintln!("driftgate: {}", e.to_string().trim_end());
}

fn run_test_file(file: &Path, args: &TestArgs, policies: &mut Policies, tally: &mut Tally, out: &mut impl io::Write) {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => return error(tally, &TestError::Read { path: file.to_owned(), reason: e.to_string() }),
    };
    let test = match parse_test_file(file, &text) {
        Ok(test) => test,
        Err(e) => return error(tally, &e),
    };
    let base = file.parent().unwrap_or(Path::new(""));
    let dir = test.policies.as_ref().map_or_else(|| args.policies.clone(), |p| base.join(p));
    let namespace = test.namespace.as_deref().unwrap_or(&args.namespace);
    let set = match policies.get(&dir, namespace) {
        Ok(set) => set,
        Err(e) => return error(tally, &e),
    };
    for (i, case) in test.cases.iter().enumerate() {
        let label = format!(
            "{}: case {} ({})",
            file.display(),
            i + 1,
            case.name.clone().unwrap_or_else(|| case.review.display().to_string())
        );
        // A case that names a policy is judged by that policy alone, as its webhook would.
        let judges = case.policy.as_deref().map_or(Judges::All, Judges::Policy);
        let (line, ok) = match replay(set, &base.join(&case.review), case.endpoint.hook(), judges) {
            Ok(replayed) => {
                let got = format!(
                    "{} (policy {}, rule {})",
                    replayed.answered.as_str(),
                    replayed.verdict.policy_name().unwrap_or("(none)"),
                    replayed.verdict.rule
                );
                if mismatches(case, &replayed).is_empty() {
                    (format!("ok    {label}: {got}"), true)
                } else {
                    let message = &replayed.message;
                    let said = if message.is_empty() { String::new() } else { format!(" — {message}") };
                    (format!("FAIL  {label}: expected {}, got {got}{said}", expected(case)), false)
                }
            }
            Err(e) => (format!("FAIL  {label}: {}", e.to_string().trim_end()), false),
        };
        if ok {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
        let _ = writeln!(out, "{line}");
    }
}

fn print_rows(out: &mut impl io::Write, rows: &[[String; 5]]) {
    if rows.is_empty() {
        return;
    }
    let headers = ["FILE", "DECISION", "POLICY", "RULE", "MESSAGE"].map(str::to_owned);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&headers).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&headers).chain(rows) {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&row[4]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn mk_set() -> PolicySet {
        PolicySet::new(policy::load_dir(&repo("policies")).unwrap(), &["driftgate".to_owned()])
    }

    fn mk_case(decision: Decision, policy: Option<&str>, rule: Option<&str>) -> Case {
        Case {
            name: None,
            review: PathBuf::from("r.json"),
            decision,
            policy: policy.map(str::to_owned),
            rule: rule.map(str::to_owned),
            endpoint: HookArg::Validate,
        }
    }

    #[test]
    fn parses_a_test_file() {
        let text = "policies: ../policies\ncases:\n  - review: a.json\n    decision: break-glass\n    rule: r\n";
        let test = parse_test_file(Path::new("t.yaml"), text).unwrap();
        assert_eq!(test.policies, Some(PathBuf::from("../policies")));
        assert_eq!(
            test.cases,
            [Case { rule: Some("r".into()), review: "a.json".into(), ..mk_case(Decision::BreakGlass, None, None) }]
        );
    }

    #[test]
    fn refuses_a_bad_test_file_naming_the_line() {
        let cases = [
            ("cases:\n  - review: a.json\n    decision: deny\n", "unknown variant `deny`", Some("line 3")),
            ("cases:\n  - review: a.json\n    decison: denied\n", "unknown field `decison`", Some("line 3")),
            ("cases:\n  - decision: denied\n", "missing field `review`", Some("line 2")),
            ("policies: p\n", "missing field `cases`", None),
        ];
        for (text, want, line) in cases {
            let e = parse_test_file(Path::new("t.yaml"), text).unwrap_err().to_string();
            assert!(e.starts_with("failed to parse test file t.yaml: ") && e.contains(want), "{text:?}: {e}");
            assert!(line.is_none_or(|l| e.contains(l)), "{e}");
        }
    }

    #[test]
    fn replays_a_captured_edit_as_the_server_decides_it() {
        let set = mk_set();
        let edit = repo("tests/fixtures/virtualservice-update-kubectl-edit-human.validating.json");
        let r = replay(&set, &edit, Hook::Validate, Judges::All).unwrap();
        let (v, message) = (&r.verdict, &r.message);
        assert_eq!(
            (v.decision.as_str(), v.policy_name(), v.rule.to_string().as_str()),
            ("denied", Some("mesh-gitops"), "protected")
        );
        assert!(message.starts_with("VirtualService shop/reviews is managed by GitOps"), "{message}");
        assert!(message.chars().count() <= MESSAGE_HEAD + 1);
        let argocd = repo("tests/fixtures/virtualservice-create-argocd-kubectl-apply.validating.json");
        let r = replay(&set, &argocd, Hook::Validate, Judges::All).unwrap();
        assert_eq!(r.verdict.decision.as_str(), "allowed");
        assert!(r.message.is_empty());
    }

    #[test]
    fn replays_as_registered_one_verdict_per_judging_policy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(repo("policies/default.yaml"), dir.path().join("default.yaml")).unwrap();
        std::fs::write(
            dir.path().join("team.yaml"),
            "apiVersion: driftgate.dev/v1alpha1\nkind: DriftPolicy\nmetadata: {name: team-routes}\nspec:\n  resources: [{group: networking.istio.io, kinds: [VirtualService]}]\n  gitops: {users: [ci]}\n",
        )
        .unwrap();
        let set = PolicySet::new(policy::load_dir(dir.path()).unwrap(), &["driftgate".to_owned()]);
        let edit = replay_as_registered(
            &set,
            &repo("tests/fixtures/virtualservice-update-kubectl-edit-human.validating.json"),
            Hook::Validate,
        )
        .unwrap();
        let got: Vec<(&str, Option<&str>)> =
            edit.iter().map(|r| (r.verdict.decision.as_str(), r.verdict.policy_name())).collect();
        assert_eq!(got, [("denied", Some("mesh-gitops")), ("denied", Some("team-routes"))]);
        let gc = replay_as_registered(
            &set,
            &repo(
                "tests/fixtures/virtualservice-update-foreground-finalizer-removal-garbage-collector.validating.json",
            ),
            Hook::Validate,
        )
        .unwrap();
        assert_eq!(gc.len(), 1);
        assert_eq!(
            (gc[0].verdict.decision, gc[0].verdict.rule.to_string().as_str()),
            (Decision::Allowed, "builtin:finalizer-removal")
        );
    }

    #[test]
    fn names_every_difference_from_the_expectation() {
        let set = mk_set();
        let edit = repo("tests/fixtures/virtualservice-update-kubectl-edit-human.validating.json");
        let v = replay(&set, &edit, Hook::Validate, Judges::All).unwrap();
        let cases: &[(Case, &[&str])] = &[
            (mk_case(Decision::Denied, None, None), &[]),
            (mk_case(Decision::Denied, Some("mesh-gitops"), Some("protected")), &[]),
            (mk_case(Decision::Allowed, None, None), &["expected decision allowed, got denied"]),
            (mk_case(Decision::Denied, Some("other"), None), &["expected policy other, got mesh-gitops"]),
            (
                mk_case(Decision::Warned, None, Some("gitops")),
                &["expected decision warned, got denied", "expected rule gitops, got protected"],
            ),
        ];
        for (case, want) in cases {
            assert_eq!(mismatches(case, &v), *want, "{case:?}");
        }
        let shown = [
            (mk_case(Decision::Denied, None, None), "denied"),
            (mk_case(Decision::Allowed, None, Some("gitops")), "allowed (rule gitops)"),
            (mk_case(Decision::BreakGlass, Some("p"), Some("r")), "break-glass (policy p, rule r)"),
        ];
        for (case, want) in shown {
            assert_eq!(expected(&case), want);
        }
    }

    #[test]
    fn reports_files_that_are_not_reviews() {
        let set = mk_set();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"kind\":\"Pod\"}").unwrap();
        let cases = [(bad, "failed to parse"), (dir.path().join("missing.json"), "failed to read")];
        for (path, want) in cases {
            let e = replay(&set, &path, Hook::Validate, Judges::All).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn replays_the_mutating_webhook_too() {
        let dir = tempfile::tempdir().unwrap();
        let policy = std::fs::read_to_string(repo("policies/default.yaml")).unwrap().replacen(
            "mode: enforce",
            "mode: repair",
            1,
        );
        std::fs::write(dir.path().join("default.yaml"), policy).unwrap();
        let set = PolicySet::new(policy::load_dir(dir.path()).unwrap(), &["driftgate".to_owned()]);
        let edit = repo("tests/fixtures/virtualservice-update-kubectl-edit-human.mutating.json");
        let mutated = replay(&set, &edit, Hook::Mutate, Judges::All).unwrap();
        assert_eq!((mutated.answered, mutated.verdict.rule.to_string().as_str()), (Decision::Repaired, "protected"));
        assert!(mutated.message.contains("the protected fields changed by"), "{}", mutated.message);
        // The same edit at the validating webhook, unrepaired, is refused.
        let validated = replay(&set, &edit, Hook::Validate, Judges::All).unwrap();
        assert_eq!(validated.answered, Decision::Denied);
    }

    #[test]
    fn cuts_long_messages() {
        assert_eq!(head("short"), "short");
        let long = "é".repeat(MESSAGE_HEAD + 5);
        assert_eq!(head(&long), format!("{}…", "é".repeat(MESSAGE_HEAD)));
    }
}
