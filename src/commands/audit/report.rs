//! The audit as `wgpolicyk8s.io/v1alpha2` PolicyReports: one `PolicyReport` per namespace (a
//! `ClusterPolicyReport` for cluster-scoped objects) with a `fail` result for each drifted
//! object and a `pass` for each clean one, under each policy that protects it. PURE.
//!
//! A report is the current state, as Kyverno's background reports are: each run replaces it
//! whole (its `results` list is atomic in the CRD's schema, so a server-side apply replaces it).
//! The reports carry a fixed name and labels, so `--write-reports` finds its own and no others.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::assess::Finding;

/// The name of every report the audit writes.
pub const REPORT_NAME: &str = "driftgate-audit";
/// `apiVersion` of the reports.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// The labels on every report the audit writes: the only reports it replaces or deletes.
pub const LABELS: [(&str, &str); 2] =
    [("app.kubernetes.io/managed-by", "driftgate"), ("driftgate.dev/report", "audit")];
/// The rule every result names.
pub const RULE: &str = "gitops-field-managers";
/// How many paths a message lists before counting the rest.
const PATHS_SHOWN: usize = 10;

/// The label selector of the audit's own reports (`key=value,key=value`).
pub fn selector() -> String {
    LABELS.map(|(k, v)| format!("{k}={v}")).join(",")
}

/// One report: where it goes and the object to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Its namespace (empty: the ClusterPolicyReport).
    pub namespace: String,
    /// The PolicyReport or ClusterPolicyReport.
    pub object: Value,
}

impl Report {
    /// `PolicyReport` or `ClusterPolicyReport`.
    pub fn kind(&self) -> &'static str {
        if self.namespace.is_empty() { "ClusterPolicyReport" } else { "PolicyReport" }
    }
}

/// The reports of `findings` (every audited object, clean or not), one a namespace in name order
/// (the cluster-scoped report first), each result stamped with `now`.
pub fn reports(findings: &[Finding], now: OffsetDateTime) -> Vec<Report> {
    let mut by_namespace: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_namespace.entry(&f.namespace).or_default().push(f);
    }
    let timestamp = json!({"seconds": now.unix_timestamp(), "nanos": now.nanosecond()});
    by_namespace
        .into_iter()
        .map(|(namespace, mut findings)| {
            findings.sort_by(|a, b| (&a.policy, &a.kind, &a.name).cmp(&(&b.policy, &b.kind, &b.name)));
            let fail = findings.iter().filter(|f| f.drifted()).count();
            let results: Vec<Value> = findings.iter().map(|f| result(f, &timestamp)).collect();
            let kind = if namespace.is_empty() { "ClusterPolicyReport" } else { "PolicyReport" };
            let mut metadata =
                json!({"name": REPORT_NAME, "labels": LABELS.iter().copied().collect::<BTreeMap<_, _>>()});
            if !namespace.is_empty() {
                metadata["namespace"] = json!(namespace);
            }
            let object = json!({
                "apiVersion": API_VERSION,
                "kind": kind,
                "metadata": metadata,
                "summary": {"pass": findings.len() - fail, "fail": fail, "warn": 0, "error": 0, "skip": 0},
                "results": results,
            });
            Report { namespace: namespace.to_owned(), object }
        })
        .collect()
}

fn result(f: &Finding, timestamp: &Value) -> Value {
    let mut resource = json!({"apiVersion": f.api_version, "kind": f.kind, "name": f.name});
    if !f.namespace.is_empty() {
        resource["namespace"] = json!(f.namespace);
    }
    if !f.uid.is_empty() {
        resource["uid"] = json!(f.uid);
    }
    let mut properties = BTreeMap::new();
    if let Some(owner) = &f.gitops {
        properties.insert("gitops", format!("{} {}", owner.tool, owner.app));
    }
    if f.drifted() {
        let managers: Vec<&str> = f.writers.iter().map(|w| w.manager.as_str()).collect();
        properties.insert("managers", managers.join(", "));
        let paths: Vec<&str> = f.writers.iter().flat_map(|w| w.paths.iter().map(String::as_str)).collect();
        properties.insert("paths", paths.join(", "));
        if let Some(last) = f.writers.iter().filter_map(|w| w.time.as_deref()).max() {
            properties.insert("lastWrite", last.to_owned());
        }
    }
    json!({
        "source": "driftgate",
        "policy": f.policy,
        "rule": RULE,
        "category": "GitOps drift",
        "result": if f.drifted() { "fail" } else { "pass" },
        "scored": true,
        "message": message(f),
        "timestamp": timestamp,
        "resources": [resource],
        "properties": properties,
    })
}

/// What a result says: who last wrote which protected fields, or that GitOps did.
pub fn message(f: &Finding) -> String {
    let what = format!("{} {}", f.kind, f.object_ref());
    if !f.drifted() {
        return format!("{what}: every protected field was last written by a GitOps field manager");
    }
    let writers: Vec<String> = f
        .writers
        .iter()
        .map(|w| {
            let mut when = w.operation.clone();
            if !w.subresource.is_empty() {
                when.push_str(&format!(" of {}", w.subresource));
            }
            if let Some(t) = &w.time {
                when.push_str(&format!(" at {t}"));
            }
            let mut paths = w.paths.iter().take(PATHS_SHOWN).cloned().collect::<Vec<_>>().join(", ");
            if w.paths.len() > PATHS_SHOWN {
                paths.push_str(&format!(" and {} more", w.paths.len() - PATHS_SHOWN));
            }
            format!("{} ({when}): {paths}", w.manager)
        })
        .collect();
    format!(
        "{what}: protected fields last written outside GitOps (policy {}) by {}; a forced server-side apply from Git takes back the fields Git sets, others stay until removed",
        f.policy,
        writers.join("; by ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::audit::assess::Writer;
    use crate::decide::tracking::{GitOpsRef, GitOpsTool};

    fn mk_finding(ns: &str, name: &str, writers: Vec<Writer>) -> Finding {
        Finding {
            policy: "mesh-gitops".into(),
            api_version: "networking.istio.io/v1".into(),
            kind: "VirtualService".into(),
            namespace: ns.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            gitops: Some(GitOpsRef { tool: GitOpsTool::Argocd, app: "mesh-config".into() }),
            writers,
        }
    }

    fn mk_writer(manager: &str, paths: &[&str]) -> Writer {
        Writer {
            manager: manager.into(),
            operation: "Update".into(),
            time: Some("2026-11-22T09:29:21Z".into()),
            subresource: String::new(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn one_report_a_namespace_with_fail_and_pass_results() {
        let findings = [
            mk_finding("shop", "reviews", vec![mk_writer("kubectl-edit", &["/spec/http"])]),
            mk_finding("shop", "ratings", vec![]),
            mk_finding("", "mesh-wide", vec![]),
        ];
        let now = OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_456_789).unwrap();
        let reports = reports(&findings, now);
        let kinds: Vec<(&str, &str)> = reports.iter().map(|r| (r.kind(), r.namespace.as_str())).collect();
        assert_eq!(kinds, [("ClusterPolicyReport", ""), ("PolicyReport", "shop")]);
        let shop = &reports[1].object;
        assert_eq!(shop["apiVersion"], API_VERSION);
        assert_eq!(shop["metadata"]["name"], REPORT_NAME);
        assert_eq!(shop["metadata"]["namespace"], "shop");
        assert_eq!(shop["metadata"]["labels"]["app.kubernetes.io/managed-by"], "driftgate");
        assert_eq!(shop["summary"], json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}));
        let results = shop["results"].as_array().unwrap();
        assert_eq!(results.iter().map(|r| r["result"].as_str().unwrap()).collect::<Vec<_>>(), ["pass", "fail"]);
        let fail = &results[1];
        assert_eq!(
            fail["resources"][0],
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "namespace": "shop", "name": "reviews", "uid": "uid-reviews"})
        );
        assert_eq!(fail["timestamp"], json!({"seconds": 1_795_000_000, "nanos": 123_456_789}));
        assert_eq!(fail["properties"]["managers"], "kubectl-edit");
        assert_eq!(fail["properties"]["paths"], "/spec/http");
        assert_eq!(fail["properties"]["gitops"], "argocd mesh-config");
        assert_eq!(
            fail["message"],
            "VirtualService shop/reviews: protected fields last written outside GitOps (policy mesh-gitops) by kubectl-edit (Update at 2026-11-22T09:29:21Z): /spec/http; a forced server-side apply from Git takes back the fields Git sets, others stay until removed"
        );
        assert!(reports[0].object["metadata"].get("namespace").is_none());
        assert_eq!(selector(), "app.kubernetes.io/managed-by=driftgate,driftgate.dev/report=audit");
    }

    #[test]
    fn long_path_lists_are_counted() {
        let paths: Vec<String> = (0..13).map(|i| format!("/spec/p{i}")).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let f = mk_finding("shop", "big", vec![mk_writer("kubectl-patch", &refs)]);
        assert!(message(&f).contains("/spec/p9 and 3 more;"), "{}", message(&f));
    }
}
