//! Parse + decide (with the full diff) for a 1 KB VirtualService, the captured 8 KB kubectl edit
//! (the load benchmark's), the 50 KB EnvoyFilter and a 1 MB object; reading and diffing the two
//! objects alone per size (it must be linear in object size); and decide with 1, 100 and 10,000
//! policies (the index keeps it flat).
//!
//! `cargo bench --bench decide`

use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use driftgate::admission::{self, Operation};
use driftgate::decide::doc::{self, Doc};
use driftgate::decide::{Endpoint, EventStamp};
use driftgate::policy::{PolicySet, load_str};
use serde_json::{Value, json};

const DEFAULT_POLICY: &str = include_str!("../policies/default.yaml");

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap_or_default()).unwrap_or_default()
}

/// The human kubectl edit, without managedFields and the last-applied annotation: about 1 KB.
fn small_review() -> Vec<u8> {
    let mut r = fixture("virtualservice-update-kubectl-edit-human.validating.json");
    for o in ["object", "oldObject"] {
        let meta = &mut r["request"][o]["metadata"];
        meta.as_object_mut().map(|m| m.remove("managedFields"));
        meta["annotations"].as_object_mut().map(|a| a.remove("kubectl.kubernetes.io/last-applied-configuration"));
    }
    serde_json::to_vec(&r).unwrap_or_default()
}

/// The human kubectl edit as captured, managedFields and last-applied annotation included (the
/// load benchmark's review).
fn edit_review() -> Vec<u8> {
    serde_json::to_vec(&fixture("virtualservice-update-kubectl-edit-human.validating.json")).unwrap_or_default()
}

/// The human patch of the big EnvoyFilter, as captured (≈50 KB spec, ≈270 KB review).
fn envoyfilter_review() -> Vec<u8> {
    serde_json::to_vec(&fixture("envoyfilter-update-kubectl-patch-json-human-big.validating.json")).unwrap_or_default()
}

/// The big EnvoyFilter's config patches repeated to make an object of about `bytes`, one change.
fn scaled_review(bytes: usize) -> Vec<u8> {
    let mut r = fixture("envoyfilter-update-kubectl-patch-json-human-big.validating.json");
    for o in ["object", "oldObject"] {
        let obj = &mut r["request"][o];
        obj["metadata"]["annotations"]
            .as_object_mut()
            .map(|a| a.remove("kubectl.kubernetes.io/last-applied-configuration"));
        let patches = obj["spec"]["configPatches"].as_array().cloned().unwrap_or_default();
        let one = serde_json::to_vec(&patches).map(|v| v.len()).unwrap_or(1).max(1);
        let mut grown = Vec::new();
        while grown.len() * one / patches.len().max(1) < bytes {
            grown.extend(patches.iter().cloned());
        }
        obj["spec"]["configPatches"] = Value::Array(grown);
    }
    serde_json::to_vec(&r).unwrap_or_default()
}

fn decide_once(set: &PolicySet, body: &[u8]) -> bool {
    let stamp = EventStamp { id: "bench".to_owned(), time: time::OffsetDateTime::UNIX_EPOCH, trace_id: None };
    match admission::parse(body) {
        Ok(review) => {
            driftgate::admit(set, &driftgate::decide::Grants::none(), &review.request, Endpoint::validate(None), &stamp)
                .map(|o| o.answered.is_allowed())
                .unwrap_or(false)
        }
        Err(_) => false,
    }
}

fn policy_set(yaml: &str) -> PolicySet {
    PolicySet::new(load_str(Path::new("bench.yaml"), yaml).unwrap_or_default(), &["driftgate".to_owned()])
}

fn parse_and_decide(c: &mut Criterion) {
    let set = policy_set(DEFAULT_POLICY);
    let mut group = c.benchmark_group("parse+decide");
    for (name, body) in [
        ("virtualservice-1k", small_review()),
        ("virtualservice-edit-8k", edit_review()),
        ("envoyfilter-50k", envoyfilter_review()),
        ("object-1m", scaled_review(1 << 20)),
    ] {
        assert!(!decide_once(&set, &body), "{name}: the human edit must be denied");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{name} ({} B review)", body.len())),
            &body,
            |b, body| b.iter(|| decide_once(&set, body)),
        );
    }
    let allowed =
        serde_json::to_vec(&fixture("virtualservice-create-argocd-kubectl-apply.validating.json")).unwrap_or_default();
    group.bench_function("argocd-create (allowed)", |b| b.iter(|| decide_once(&set, &allowed)));
    group.finish();
}

fn diff_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("diff");
    for kib in [1usize, 50, 1024] {
        let body = if kib == 1 { small_review() } else { scaled_review(kib * 1024) };
        let r: Value = serde_json::from_slice(&body).unwrap_or_default();
        let (old, new) = (r["request"]["oldObject"].to_string(), r["request"]["object"].to_string());
        group.throughput(Throughput::Bytes(new.len() as u64));
        // What the server does: read both objects (metadata as values, the rest raw) and diff.
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{} B object", new.len())),
            &(old, new),
            |b, (old, new)| {
                b.iter(|| match (Doc::parse(old), Doc::parse(new)) {
                    (Ok(old), Ok(new)) => {
                        doc::changes(Operation::Update, None, Some(&old), Some(&new)).map_or(0, |c| c.len())
                    }
                    _ => 0,
                })
            },
        );
    }
    group.finish();
}

/// `n` policies: one covering every mesh group everywhere, the rest each for one other namespace.
fn many_policies(n: usize) -> PolicySet {
    let mut yaml = DEFAULT_POLICY.to_owned();
    for i in 1..n {
        let doc = json!({
            "apiVersion": "driftgate.dev/v1alpha1", "kind": "DriftPolicy",
            "metadata": {"name": format!("tenant-{i}")},
            "spec": {
                "resources": [{"group": "networking.istio.io", "kinds": ["VirtualService"]}],
                "namespaces": {"include": [format!("tenant-{i}")]},
                "gitops": {"serviceAccounts": [format!("tenant-{i}/*")]},
            }
        });
        yaml.push_str("\n---\n");
        yaml.push_str(&doc.to_string());
    }
    let set = policy_set(&yaml);
    // The default policies count as the first.
    assert_eq!(set.len(), policy_set(DEFAULT_POLICY).len() + n - 1);
    set
}

fn decide_with_many_policies(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide-policies");
    let denied = small_review();
    let allowed =
        serde_json::to_vec(&fixture("virtualservice-create-argocd-kubectl-apply.validating.json")).unwrap_or_default();
    for n in [1usize, 100, 10_000] {
        let set = many_policies(n);
        group.bench_with_input(BenchmarkId::new("denied-edit", n), &set, |b, set| b.iter(|| decide_once(set, &denied)));
        group.bench_with_input(BenchmarkId::new("allowed-argocd", n), &set, |b, set| {
            b.iter(|| decide_once(set, &allowed))
        });
    }
    group.finish();
}

criterion_group!(benches, parse_and_decide, diff_only, decide_with_many_policies);
criterion_main!(benches);
