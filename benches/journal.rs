//! Journal append with group commit: N concurrent writers each append one event and wait for
//! it to be durable. Reported per batch of N appends.
//!
//! `cargo bench --bench journal`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use driftgate::journal::{Journal, JournalConfig};

const LINE: &[u8] = br#"{"id":"0192a5b0-0000-7000-8000-000000000000","time":"2026-11-23T10:00:00Z","decision":"denied","mode":"enforce","policy":"mesh-gitops","rule":"protected","message":"driftgate: VirtualService shop/reviews is managed by GitOps (Argo CD app mesh-config); direct changes by alice@example.com are not allowed - change it in Git. Changed: /spec/http/1/route/0/weight (90 -> 70), /spec/http/1/route/1/weight (10 -> 30). Drift event 0192a5b0.","operation":"UPDATE","dryRun":false,"user":{"username":"alice@example.com","groups":["devs","system:authenticated"]},"resource":{"group":"networking.istio.io","version":"v1","kind":"VirtualService","resource":"virtualservices","namespace":"shop","name":"reviews"},"gitops":{"tool":"argocd","app":"mesh-config"},"changes":[{"path":"/spec/http/1/route/0/weight","old":90,"new":70},{"path":"/spec/http/1/route/1/weight","old":10,"new":30}],"requestUid":"57b2f500-a8ca-4930-b895-019970830612"}
"#;

fn group_commit(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return eprintln!("failed to start a runtime: {e}"),
    };
    let Ok(dir) = tempfile::tempdir() else { return eprintln!("failed to make a temporary folder") };
    let journal = Journal::open(
        JournalConfig { max_bytes: 1 << 30, keep: 1, ..JournalConfig::new(dir.path().join("bench.jsonl")) },
        None,
    );
    if !journal.is_healthy() {
        return eprintln!("the journal in {} cannot be written", dir.path().display());
    }
    let mut group = c.benchmark_group("journal-append");
    group.measurement_time(Duration::from_secs(10));
    for writers in [1usize, 8, 64] {
        group.throughput(Throughput::Elements(writers as u64));
        group.bench_with_input(BenchmarkId::new("writers", writers), &writers, |b, &writers| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..writers)
                            .map(|_| {
                                let j = journal.clone();
                                tokio::spawn(async move { j.append(LINE.to_vec()).await })
                            })
                            .collect();
                        for t in tasks {
                            let _ = t.await;
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    let stats = journal.stats();
    let (lines, syncs) = (
        stats.appended.load(std::sync::atomic::Ordering::Relaxed),
        stats.syncs.load(std::sync::atomic::Ordering::Relaxed),
    );
    println!("journal: {lines} lines in {syncs} fsyncs ({:.1} lines per fsync)", lines as f64 / syncs.max(1) as f64);
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
