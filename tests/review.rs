//! `driftgate review` over a journal the real server wrote: several users, kinds, namespaces and
//! decisions, dry runs, rotated files and a torn last line; each filter and format is checked
//! against the events read straight from the files, and `--follow` against new requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{DEFAULT_POLICY, TestServer, fixture, fixture_json, policy_with};
use driftgate::journal::rotated;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";
const TORN: &str = "{\"id\":\"torn\",\"time\":\"2026-11-23T23:";

/// A journal written by real servers, and its events read straight from the files.
struct Journal {
    dir: tempfile::TempDir,
    live: PathBuf,
    /// Every event, oldest first, with the line it was read from.
    events: Vec<(String, Value)>,
}

impl Journal {
    fn live(&self) -> &str {
        self.live.to_str().unwrap()
    }

    /// The ids of the events `keep` selects, oldest first.
    fn ids(&self, keep: impl Fn(&Value) -> bool) -> Vec<String> {
        self.events.iter().filter(|(_, e)| keep(e)).map(|(_, e)| e["id"].as_str().unwrap().to_owned()).collect()
    }
}

/// The review `name` sent by `username`, in `namespace`.
fn mk_review(name: &str, username: &str, namespace: &str) -> Vec<u8> {
    let mut review = fixture_json(name);
    review["request"]["userInfo"]["username"] = json!(username);
    review["request"]["namespace"] = json!(namespace);
    for object in ["object", "oldObject"] {
        if review["request"][object].is_object() {
            review["request"][object]["metadata"]["namespace"] = json!(namespace);
        }
    }
    serde_json::to_vec(&review).unwrap()
}

async fn server_on(policy: &str, live: &Path) -> TestServer {
    let live = live.to_owned();
    TestServer::start_with(policy, move |s| {
        s.journal = live;
        s.journal_max_bytes = 4096;
        s.journal_keep = 100;
    })
    .await
}

async fn send_all(server: &TestServer, reviews: Vec<Vec<u8>>) {
    for body in reviews {
        let (status, answer) = server.validate(body).await;
        assert!(status.is_success(), "{answer}");
        assert!(answer["response"]["auditAnnotations"]["drift-event-id"].is_string(), "not drift: {answer}");
    }
}

/// Reads every line of the journal's files, oldest first.
fn read_files(live: &Path) -> Vec<(String, Value)> {
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(live.parent().unwrap())
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let n = path.extension()?.to_str()?.parse().ok()?;
            Some((n, path))
        })
        .collect();
    rotated.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut out = Vec::new();
    for path in rotated.into_iter().map(|(_, p)| p).chain([live.to_owned()]) {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            if let Ok(event) = serde_json::from_str(line) {
                out.push((line.to_owned(), event));
            }
        }
    }
    out
}

/// Twelve drift events from three servers (enforce, warn, audit) over one journal rotated at
/// 4 KiB, then a torn last line.
async fn mk_journal() -> Journal {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("drift-events.jsonl");
    let enforce = server_on(DEFAULT_POLICY, &live).await;
    send_all(
        &enforce,
        vec![
            mk_review(EDIT, "alice@example.com", "shop"),
            mk_review(EDIT, "bob@example.com", "shop"),
            mk_review(EDIT, "carol@example.com", "payments"),
            fixture("serviceentry-create-kubectl-create-human.validating.json"),
            fixture("authorizationpolicy-delete-kubectl-delete-human.validating.json"),
            fixture("virtualservice-update-kubectl-patch-dry-run-server-human.validating.json"),
            fixture("serviceentry-delete-kubectl-delete-dry-run-server-human.validating.json"),
            fixture("virtualservice-update-kubectl-edit-human-derived-break-glass-group.validating.json"),
            fixture("envoyfilter-update-kubectl-patch-json-human-big.validating.json"),
        ],
    )
    .await;
    enforce.stop().await;
    let warn = server_on(&policy_with("warn", "all"), &live).await;
    send_all(
        &warn,
        vec![
            mk_review(EDIT, "bob@example.com", "shop"),
            mk_review(EDIT, "system:serviceaccount:ci:deployer", "payments"),
        ],
    )
    .await;
    warn.stop().await;
    let audit = server_on(&policy_with("audit", "all"), &live).await;
    send_all(&audit, vec![mk_review(EDIT, "alice@example.com", "payments")]).await;
    audit.stop().await;

    let events = read_files(&live);
    assert_eq!(events.len(), 12, "every drift event is in the journal");
    assert!(rotated(&live, 2).exists(), "the journal was rotated at least twice");
    let mut file = std::fs::OpenOptions::new().append(true).open(&live).unwrap();
    file.write_all(TORN.as_bytes()).unwrap();
    Journal { dir, live, events }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn driftgate(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_driftgate")).args(args).output().unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The event ids `review --format json` prints with `flags`.
fn json_ids(journal: &Journal, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["review", "--format", "json", journal.live()];
    args.extend_from_slice(flags);
    let run = driftgate(&args);
    assert!(run.ok, "{flags:?}: {}", run.stderr);
    run.stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned()).collect()
}

fn time_of(e: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(e["time"].as_str().unwrap(), &Rfc3339).unwrap()
}

fn is_dry(e: &Value) -> bool {
    e["dryRun"] == true
}

#[tokio::test(flavor = "multi_thread")]
async fn json_prints_every_real_change_oldest_first_across_rotated_files() {
    let journal = mk_journal().await;
    let run = driftgate(&["review", "--format", "json", journal.live()]);
    assert!(run.ok, "{}", run.stderr);
    let want: Vec<&str> = journal.events.iter().filter(|(_, e)| !is_dry(e)).map(|(l, _)| l.as_str()).collect();
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), want, "the journal lines as they are, dry runs left out");
    assert_eq!(want.len(), 10);
    let times: Vec<OffsetDateTime> = journal.events.iter().map(|(_, e)| time_of(e)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "files are read oldest first");
}

#[tokio::test(flavor = "multi_thread")]
async fn skips_a_torn_last_line_with_a_note() {
    let journal = mk_journal().await;
    let live_lines = std::fs::read_to_string(&journal.live).unwrap().lines().count();
    let run = driftgate(&["review", journal.live()]);
    assert!(run.ok, "a torn line is never an error: {}", run.stderr);
    let note = format!("skipped line {live_lines} of {}: torn last line", journal.live());
    assert!(run.stderr.starts_with(&note), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_filter_selects_the_expected_events() {
    let journal = mk_journal().await;
    let third = time_of(&journal.events[2].1);
    let third_text = journal.events[2].1["time"].as_str().unwrap().to_owned();
    type Keep = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Vec<&str>, Keep)> = vec![
        (vec![], Box::new(|e| !is_dry(e))),
        (vec!["--dry-run"], Box::new(|_| true)),
        (vec!["--dry-run-only"], Box::new(is_dry)),
        (vec!["--dry-run", "--no-dry-run"], Box::new(|e| !is_dry(e))),
        (vec!["--user", "bob@example.com"], Box::new(|e| e["user"]["username"] == "bob@example.com")),
        (
            vec!["--user", "system:serviceaccount:*"],
            Box::new(|e| e["user"]["username"] == "system:serviceaccount:ci:deployer"),
        ),
        (
            vec!["--user", "carol@example.com", "--user", "bob@example.com"],
            Box::new(|e| e["user"]["username"] == "carol@example.com" || e["user"]["username"] == "bob@example.com"),
        ),
        (vec!["--namespace", "payments"], Box::new(|e| e["resource"]["namespace"] == "payments")),
        (vec!["--kind", "ServiceEntry", "--dry-run"], Box::new(|e| e["resource"]["kind"] == "ServiceEntry")),
        (vec!["--kind", "virtualservices"], Box::new(|e| !is_dry(e) && e["resource"]["kind"] == "VirtualService")),
        (
            vec!["--name", "reviews*"],
            Box::new(|e| !is_dry(e) && e["resource"]["name"].as_str().unwrap().starts_with("reviews")),
        ),
        (vec!["--decision", "warned"], Box::new(|e| e["decision"] == "warned")),
        (
            vec!["--decision", "audited,break-glass"],
            Box::new(|e| e["decision"] == "audited" || e["decision"] == "break-glass"),
        ),
        (vec!["--decision", "denied", "--namespace", "shop", "--user", "alice@example.com"], {
            Box::new(|e| {
                !is_dry(e)
                    && e["decision"] == "denied"
                    && e["resource"]["namespace"] == "shop"
                    && e["user"]["username"] == "alice@example.com"
            })
        }),
        (vec!["--since", "1h"], Box::new(|e| !is_dry(e))),
        (vec!["--until", "1h"], Box::new(|_| false)),
        (vec!["--since", third_text.as_str()], Box::new(move |e| !is_dry(e) && time_of(e) >= third)),
        (vec!["--until", third_text.as_str()], Box::new(move |e| !is_dry(e) && time_of(e) < third)),
    ];
    for (flags, keep) in cases {
        let want = journal.ids(keep);
        assert_eq!(json_ids(&journal, &flags), want, "{flags:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn table_aligns_one_row_per_event() {
    let journal = mk_journal().await;
    let run = driftgate(&["review", "--journal", journal.live(), "--dry-run"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stdout.contains('\x1b'), "no colour off a terminal");
    let rows: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(rows.len(), 13, "{}", run.stdout);
    let header: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(header, ["TIME", "DECISION", "USER", "OPERATION", "KIND", "OBJECT", "CHANGED"]);
    let object_column = rows[0].find("OBJECT").unwrap();
    for (row, (_, e)) in rows[1..].iter().zip(&journal.events) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let time = e["time"].as_str().unwrap();
        assert_eq!(cells[0], format!("{}Z", &time[..19]), "{row}");
        assert_eq!(cells[1], e["decision"], "{row}");
        assert_eq!(cells[2], e["user"]["username"], "{row}");
        assert_eq!(cells[3], e["operation"], "{row}");
        let object =
            format!("{}/{}", e["resource"]["namespace"].as_str().unwrap(), e["resource"]["name"].as_str().unwrap());
        assert_eq!(row.find(&format!("  {object}")).map(|i| i + 2), Some(object_column), "aligned: {row}");
        if is_dry(e) {
            assert_eq!(cells[4], "dry-run", "{row}");
        }
    }
    let edit = rows[1];
    assert!(edit.ends_with("/spec/http/1/route/0/weight, /spec/http/1/route/1/weight"), "{edit}");
    let delete = rows.iter().find(|r| r.contains("DELETE") && r.contains("AuthorizationPolicy")).unwrap();
    assert!(delete.ends_with("(whole object)"), "{delete}");
}

/// The lines of `text` as whitespace-separated words.
fn words(text: &str) -> Vec<Vec<String>> {
    text.lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

fn has_line(text: &str, line: &str) -> bool {
    let want: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    words(text).contains(&want)
}

#[tokio::test(flavor = "multi_thread")]
async fn summary_counts_are_exact() {
    let journal = mk_journal().await;
    let run = driftgate(&["review", "--format", "summary", journal.live()]);
    assert!(run.ok, "{}", run.stderr);
    let out = &run.stdout;
    let real: Vec<&Value> = journal.events.iter().map(|(_, e)| e).filter(|e| !is_dry(e)).collect();
    assert!(has_line(out, "drift events: 10 (dry runs left out)"), "{out}");
    let count = |f: &dyn Fn(&Value) -> bool| real.iter().filter(|e| f(e)).count();
    for decision in ["denied", "warned", "audited", "repaired", "break-glass"] {
        let n = count(&|e| e["decision"] == decision);
        assert!(has_line(out, &format!("{decision} {n}")), "{decision} {n}: {out}");
    }
    assert_eq!(count(&|e| e["decision"] == "denied"), 6);
    assert!(has_line(out, "top users (4 of 4):"), "{out}");
    for (user, n) in [("alice@example.com", 6), ("bob@example.com", 2), ("carol@example.com", 1)] {
        assert_eq!(count(&|e| e["user"]["username"] == user), n, "{user}");
        assert!(has_line(out, &format!("{n} {user}")), "{user}: {out}");
    }
    assert!(has_line(out, "1 system:serviceaccount:ci:deployer"), "{out}");
    assert!(has_line(out, "most-drifted resources (5 of 5):"), "{out}");
    assert!(has_line(out, "4 VirtualService shop/reviews"), "{out}");
    assert!(has_line(out, "3 VirtualService payments/reviews"), "{out}");
    assert!(has_line(out, "1 EnvoyFilter shop/tenant-lua-rules"), "{out}");
    let mut days: BTreeMap<String, [usize; 6]> = BTreeMap::new();
    for e in &real {
        let day = days.entry(e["time"].as_str().unwrap()[..10].to_owned()).or_default();
        let i = ["denied", "warned", "audited", "repaired", "break-glass"]
            .iter()
            .position(|d| e["decision"] == *d)
            .unwrap();
        day[0] += 1;
        day[i + 1] += 1;
    }
    for (day, c) in days {
        let line = format!("{day} {} {} {} {} {} {}", c[0], c[1], c[2], c[3], c[4], c[5]);
        assert!(has_line(out, &line), "{line}: {out}");
    }

    let run = driftgate(&["review", "--format", "summary", "--dry-run", "--top", "1", journal.live()]);
    assert!(has_line(&run.stdout, "drift events: 12 (2 of them dry runs)"), "{}", run.stdout);
    assert!(
        has_line(&run.stdout, "top users (1 of 4):") && has_line(&run.stdout, "8 alice@example.com"),
        "{}",
        run.stdout
    );
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyReport {
    api_version: String,
    kind: String,
    metadata: Metadata,
    summary: Summary,
    results: Vec<ReportResult>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Summary {
    pass: u64,
    fail: u64,
    warn: u64,
    error: u64,
    skip: u64,
}

#[derive(Debug, Deserialize)]
struct ReportResult {
    source: String,
    policy: String,
    rule: String,
    result: String,
    message: String,
    scored: bool,
    category: String,
    timestamp: Timestamp,
    resources: Vec<ObjectRef>,
    properties: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Timestamp {
    seconds: i64,
    nanos: i32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn policyreport_is_one_policy_report_per_namespace() {
    let journal = mk_journal().await;
    let run = driftgate(&["review", "--format", "policyreport", journal.live()]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.starts_with("---\n"), "{}", run.stdout);
    let reports: Vec<PolicyReport> = serde_yaml_ng::Deserializer::from_str(&run.stdout)
        .map(|doc| PolicyReport::deserialize(doc).unwrap_or_else(|e| panic!("{e}: {}", run.stdout)))
        .collect();
    let namespaces: Vec<Option<&str>> = reports.iter().map(|r| r.metadata.namespace.as_deref()).collect();
    assert_eq!(namespaces, [Some("payments"), Some("shop")]);
    for report in &reports {
        let ns = report.metadata.namespace.as_deref().unwrap();
        assert_eq!((report.api_version.as_str(), report.kind.as_str()), ("wgpolicyk8s.io/v1alpha2", "PolicyReport"));
        assert_eq!(report.metadata.name, "driftgate");
        assert_eq!(report.metadata.labels["app.kubernetes.io/managed-by"], "driftgate");
        let events: Vec<&Value> =
            journal.events.iter().map(|(_, e)| e).filter(|e| !is_dry(e) && e["resource"]["namespace"] == ns).collect();
        assert_eq!(report.results.len(), events.len(), "{ns}");
        let denied = events.iter().filter(|e| e["decision"] == "denied").count() as u64;
        let s = &report.summary;
        assert_eq!((s.pass, s.fail, s.warn, s.error, s.skip), (0, denied, events.len() as u64 - denied, 0, 0), "{ns}");
        for (r, e) in report.results.iter().zip(&events) {
            assert_eq!(
                (r.source.as_str(), r.policy.as_str(), r.category.as_str()),
                ("driftgate", "mesh-gitops", "GitOps drift")
            );
            assert_eq!(r.rule, e["rule"]);
            assert_eq!(r.message, e["message"]);
            assert!(r.scored);
            assert_eq!(r.result, if e["decision"] == "denied" { "fail" } else { "warn" }, "{e}");
            assert_eq!(r.properties["driftEventId"], e["id"]);
            assert_eq!(r.properties["decision"], e["decision"]);
            assert_eq!(r.properties["user"], e["user"]["username"]);
            let t = time_of(e);
            assert_eq!((r.timestamp.seconds, r.timestamp.nanos), (t.unix_timestamp(), t.nanosecond() as i32));
            let o = &r.resources[0];
            assert_eq!(
                o.api_version,
                format!("{}/{}", e["resource"]["group"].as_str().unwrap(), e["resource"]["version"].as_str().unwrap())
            );
            assert_eq!(
                (o.kind.as_str(), o.namespace.as_str(), o.name.as_str()),
                (e["resource"]["kind"].as_str().unwrap(), ns, e["resource"]["name"].as_str().unwrap())
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_stdin_and_each_file_once() {
    let journal = mk_journal().await;
    let live_text = std::fs::read_to_string(&journal.live).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["review", "--format", "json", "--dry-run", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(live_text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let want: Vec<&str> = live_text.lines().filter(|l| *l != TORN).collect();
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().collect::<Vec<_>>(), want);
    assert!(String::from_utf8(output.stderr).unwrap().starts_with("skipped line"), "the torn line, from stdin");

    // A shell glob lists the live file first; each file is still read once, oldest first.
    let mut glob: Vec<String> = std::fs::read_dir(journal.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .collect();
    glob.sort();
    assert_eq!(glob[0], journal.live());
    let args: Vec<&str> =
        ["review", "--format", "json", "--dry-run"].into_iter().chain(glob.iter().map(String::as_str)).collect();
    let run = driftgate(&args);
    let ids: Vec<String> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, journal.ids(|_| true));
    // A rotated file alone is just that file.
    let second = rotated(&journal.live, 2);
    let run = driftgate(&["review", "--format", "json", "--dry-run", second.to_str().unwrap()]);
    let want: Vec<String> = std::fs::read_to_string(&second).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(run.stdout.lines().map(str::to_owned).collect::<Vec<_>>(), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_a_missing_journal() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let run = driftgate(&["review", "--journal", missing.to_str().unwrap()]);
    assert!(!run.ok);
    assert!(run.stderr.contains(&format!("failed to open journal {}", missing.display())), "{}", run.stderr);
    let run = driftgate(&["review", "--follow", "--format", "summary", missing.to_str().unwrap()]);
    assert!(!run.ok && run.stderr.contains("--follow works with --format table or json"), "{}", run.stderr);
}

/// Kills the child when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for lines of `rx` until `done` holds for what was read, for at most ten seconds.
fn read_until(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, done: impl Fn(&[String]) -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !done(seen) {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_prints_new_events_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("drift-events.jsonl");
    let server = server_on(DEFAULT_POLICY, &live).await;
    send_all(&server, vec![mk_review(EDIT, "alice@example.com", "shop")]).await;
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .args(["review", "--follow", "--format", "json", "--user", "*@example.com", live.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let id = serde_json::from_str::<Value>(&line).unwrap()["id"].as_str().unwrap().to_owned();
            if tx.send(id).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    assert!(read_until(&rx, &mut seen, |s| s.len() == 1), "the event already journaled: {seen:?}");

    let rotated_before = rotated(&live, 1).exists();
    let mut sent = Vec::new();
    let users = ["bob@example.com", "system:serviceaccount:ci:deployer", "carol@example.com", "dave@example.com"];
    for user in users.iter().cycle().take(8) {
        let (_, answer) = server.validate(mk_review(EDIT, user, "shop")).await;
        let id = answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned();
        if user.ends_with("@example.com") {
            sent.push(id);
        }
    }
    assert!(!rotated_before && rotated(&live, 1).exists(), "the journal was rotated while followed");
    assert!(std::fs::read_to_string(&live).unwrap().lines().count() > 0, "and written again after the rotation");
    let want: Vec<String> = seen.iter().cloned().chain(sent).collect();
    assert!(read_until(&rx, &mut seen, |s| s.len() >= want.len()), "new events: {seen:?}, want {want:?}");
    assert_eq!(seen, want, "each new event once, in order, filters applied");
    drop(child);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn merges_replicas_and_a_shipped_log_by_time_once_each() {
    // Two replicas, each with its own journal (rotated), taking turns.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a/drift-events.jsonl"), dir.path().join("b/drift-events.jsonl"));
    std::fs::create_dir_all(a.parent().unwrap()).unwrap();
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    let (ra, rb) = (server_on(DEFAULT_POLICY, &a).await, server_on(DEFAULT_POLICY, &b).await);
    for i in 0..8 {
        let server = if i % 3 == 0 { &rb } else { &ra };
        send_all(server, vec![mk_review(EDIT, &format!("user{i}@example.com"), "shop")]).await;
    }
    ra.stop().await;
    rb.stop().await;
    assert!(rotated(&a, 1).exists(), "replica a's journal was rotated");
    let mut all: Vec<(String, Value)> = read_files(&a).into_iter().chain(read_files(&b)).collect();
    all.sort_by_key(|(_, e)| time_of(e));
    let want: Vec<String> = all.iter().map(|(_, e)| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(want.len(), 8);

    // A shipped log of replica a (what its stdout sink printed) on stdin: the same events again.
    let shipped: String = read_files(&a).into_iter().map(|(line, _)| line + "\n").collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["review", "--format", "json", a.to_str().unwrap(), b.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(shipped.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let ids: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, want, "every event once, oldest first");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let from_a = read_files(&a).len();
    assert!(stderr.contains(&format!("{from_a} duplicate events skipped")), "{stderr}");
}
