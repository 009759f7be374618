//! How fast `driftgate review` scans a journal, and that its memory does not grow with it.
//!
//! Generates journals of 100,000 and 1,000,000 realistic drift events (made with
//! `DriftEvent::to_line`, rotated into 64 MiB files as the server does) in a temporary folder,
//! then runs the review code over them: reading every file line by line, parsing, filtering,
//! and the summary, table, json and policyreport outputs into a sink. Prints events/s (by wall
//! time and by CPU time) and the peak resident memory (VmHWM) of each scan. Not a timed test:
//! run it with `cargo bench --bench review_scan`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::Path;
use std::time::Instant;

use driftgate::admission::Operation;
use driftgate::commands::review::{DecisionArg, Filter, Format, OutputOptions, Reviewer, ScanStats, sources};
use driftgate::decide::tracking::GitOpsTool;
use driftgate::decide::{Decision, GitOpsRef};
use driftgate::event::{Change, DriftEvent, Json, ResourceRef, User};
use driftgate::journal::rotated;
use driftgate::policy::Mode;
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// The server's rotation size.
const FILE_BYTES: u64 = 64 * 1024 * 1024;

const KINDS: [(&str, &str, &str); 6] = [
    ("networking.istio.io", "VirtualService", "virtualservices"),
    ("networking.istio.io", "DestinationRule", "destinationrules"),
    ("networking.istio.io", "ServiceEntry", "serviceentries"),
    ("security.istio.io", "AuthorizationPolicy", "authorizationpolicies"),
    ("gateway.networking.k8s.io", "HTTPRoute", "httproutes"),
    ("networking.istio.io", "EnvoyFilter", "envoyfilters"),
];

/// A cheap deterministic generator (xorshift), so every run scans the same journal.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn mk_event(i: u64, time: OffsetDateTime, rng: &mut Rng) -> DriftEvent<'static> {
    let user = match rng.next(10) {
        0 => format!("system:serviceaccount:ci-{}:deployer", rng.next(5)),
        _ => format!("user{}@example.com", rng.next(40)),
    };
    let namespace = match rng.next(4) {
        0 => "shop".to_owned(),
        1 => "payments".to_owned(),
        _ => format!("team-{}", rng.next(18)),
    };
    let (group, kind, resource) = KINDS[rng.next(KINDS.len() as u64) as usize];
    let name = format!("svc-{}", rng.next(200));
    let (decision, mode) = match rng.next(100) {
        0..70 => (Decision::Denied, Mode::Enforce),
        70..85 => (Decision::Warned, Mode::Warn),
        85..93 => (Decision::Audited, Mode::Audit),
        93..95 => (Decision::Repaired, Mode::Repair),
        _ => (Decision::BreakGlass, Mode::Enforce),
    };
    let id = format!("0192{:04x}-{:04x}-7{:03x}-8{:03x}-{:012x}", i >> 16, i & 0xffff, i % 4096, i % 4095, i);
    let changes: Vec<(String, u64, u64)> = (0..1 + rng.next(3))
        .map(|r| {
            let old = rng.next(100);
            (format!("/spec/http/{}/route/{r}/weight", rng.next(3)), old, 100 - old)
        })
        .collect();
    let changed: Vec<String> = changes.iter().map(|(path, old, new)| format!("{path} ({old} → {new})")).collect();
    let message = format!(
        "driftgate: {kind} {namespace}/{name} is managed by GitOps (Argo CD app mesh-config); direct changes by \
         {user} are not allowed — change it in Git. Changed: {}. Drift event {id}.",
        changed.join(", ")
    );
    DriftEvent {
        time,
        decision,
        mode,
        policy: "mesh-gitops".into(),
        rule: if decision == Decision::BreakGlass { "break-glass:group driftgate:break-glass" } else { "protected" }
            .into(),
        message: message.into(),
        operation: [Operation::Update, Operation::Update, Operation::Update, Operation::Create, Operation::Delete]
            [rng.next(5) as usize],
        dry_run: rng.next(10) == 0,
        user: User { username: user.into(), uid: None, groups: vec!["devs".into(), "system:authenticated".into()] },
        resource: ResourceRef {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            resource: resource.into(),
            subresource: "".into(),
            namespace: namespace.into(),
            name: name.into(),
        },
        gitops: Some(GitOpsRef { tool: GitOpsTool::Argocd, app: "mesh-config".into() }),
        changes: changes
            .into_iter()
            .map(|(path, old, new)| Change {
                path: path.into(),
                old: Json::from_value(&json!(old)),
                new: Json::from_value(&json!(new)),
            })
            .collect(),
        changes_omitted: 0,
        trace_id: None,
        source: Default::default(),
        rate_limited: None,
        grant: None,
        request_uid: format!("57b2f500-a8ca-4930-b895-{:012x}", i.wrapping_mul(2_654_435_761)).into(),
        id: id.into(),
    }
}

/// Writes `n` events over 30 days into `live` and its rotated files; returns the bytes written.
fn mk_journal(live: &Path, n: u64) -> u64 {
    let start = OffsetDateTime::now_utc() - Duration::days(30);
    let step = Duration::days(30) / n as f64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut files: Vec<Vec<u8>> = Vec::new();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(live).unwrap());
    let (mut size, mut total) = (0u64, 0u64);
    for i in 0..n {
        let line = mk_event(i, start + step * i as f64, &mut rng).to_line();
        out.write_all(&line).unwrap();
        size += line.len() as u64;
        total += line.len() as u64;
        if size >= FILE_BYTES {
            out.flush().unwrap();
            files.push(Vec::new());
            for k in (1..=files.len()).rev() {
                let from = if k == 1 { live.to_owned() } else { rotated(live, k - 1) };
                std::fs::rename(from, rotated(live, k)).unwrap();
            }
            out = BufWriter::with_capacity(1 << 20, File::create(live).unwrap());
            size = 0;
        }
    }
    out.flush().unwrap();
    total
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

/// Resets the peak resident size to the current one (Linux: clear_refs 5).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time of this thread, in seconds.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).unwrap_or(0.0) / 1e9
}

fn scan(live: &Path, filter: &Filter, format: Format) -> (ScanStats, f64, f64) {
    let mut out = io::sink();
    let mut notes = io::stderr();
    let options = OutputOptions { format, ..OutputOptions::default() };
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let mut reviewer = Reviewer::new(filter.clone(), options, &mut out, &mut notes);
    for source in sources(&[live.to_owned()]).unwrap() {
        reviewer.read(&source).unwrap();
    }
    let stats = reviewer.finish().unwrap();
    (stats, wall.elapsed().as_secs_f64(), thread_cpu() - cpu)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small/drift-events.jsonl");
    let large = dir.path().join("large/drift-events.jsonl");
    for (path, n) in [(&small, 100_000u64), (&large, 1_000_000)] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let started = Instant::now();
        let bytes = mk_journal(path, n);
        let files = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        println!(
            "generated {n} events, {:.0} MiB in {files} files ({} bytes an event) in {:.1}s",
            bytes as f64 / (1 << 20) as f64,
            bytes / n,
            started.elapsed().as_secs_f64()
        );
    }
    let week = Filter {
        since: Some(OffsetDateTime::now_utc() - Duration::days(7)),
        users: vec!["user1*@example.com".parse().unwrap()],
        decisions: vec![DecisionArg::Denied, DecisionArg::Warned],
        ..Filter::default()
    };
    let cases: [(&str, Filter, Format); 5] = [
        ("summary", Filter::default(), Format::Summary),
        ("json --since 7d --user 'user1*' --decision denied,warned", week, Format::Json),
        ("json", Filter::default(), Format::Json),
        ("table", Filter::default(), Format::Table),
        ("policyreport", Filter::default(), Format::PolicyReport),
    ];
    println!("baseline RSS {} KiB; peak reset per scan: {}", status_kib("VmRSS:"), reset_peak());
    // events/s by wall time, and by the scanning thread's CPU time (which the other tenants of a
    // shared machine do not take away).
    println!(
        "{:<58} {:>9} {:>9} {:>7} {:>7} {:>10} {:>10} {:>9}",
        "scan", "events", "matched", "wall s", "cpu s", "ev/s wall", "ev/s cpu", "peak KiB"
    );
    // REVIEW_SCAN_ONLY=summary runs only the scans whose name contains it (for profiling).
    let only = std::env::var("REVIEW_SCAN_ONLY").unwrap_or_default();
    for (name, filter, format) in cases.iter().filter(|c| c.0.contains(&only)) {
        for (path, label) in [(&small, "100k"), (&large, "1M")] {
            // Best of three: the files are in the page cache after the first.
            let mut best: Option<(ScanStats, f64, f64, u64)> = None;
            for _ in 0..3 {
                reset_peak();
                let (stats, wall, cpu) = scan(path, filter, *format);
                let peak = status_kib("VmHWM:");
                if best.as_ref().is_none_or(|b| wall < b.1) {
                    best = Some((stats, wall, cpu, peak));
                }
            }
            let (stats, wall, cpu, peak) = best.unwrap();
            println!(
                "{:<58} {:>9} {:>9} {:>7.2} {:>7.2} {:>10.0} {:>10.0} {:>9}",
                format!("{name} ({label})"),
                stats.events,
                stats.matched,
                wall,
                cpu,
                stats.events as f64 / wall,
                stats.events as f64 / cpu,
                peak
            );
        }
    }
}
