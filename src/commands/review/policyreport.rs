//! The `policyreport` format: one `wgpolicyk8s.io/v1alpha2` PolicyReport per namespace (a
//! ClusterPolicyReport for cluster-scoped objects) with the newest results of each, printed at
//! the end, so Policy Reporter and other tools that show PolicyReports show drift.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;

use serde::Serialize;

use super::error::ReviewError;
use super::table::changed;
use crate::decide::Decision;
use crate::event::DriftEvent;

/// The `policyreport` format: the newest results of each namespace, printed at the end.
pub struct Reports {
    max_results: usize,
    namespaces: BTreeMap<String, NamespaceResults>,
}

#[derive(Default)]
struct NamespaceResults {
    results: VecDeque<ReportResult>,
    omitted: u64,
}

/// A `wgpolicyk8s.io/v1alpha2` PolicyReport (or ClusterPolicyReport).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyReport<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ReportMetadata<'a>,
    summary: ReportSummary,
    results: &'a VecDeque<ReportResult>,
}

#[derive(Serialize)]
struct ReportMetadata<'a> {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    labels: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize, Default)]
struct ReportSummary {
    pass: u64,
    fail: u64,
    warn: u64,
    error: u64,
    skip: u64,
}

#[derive(Serialize)]
struct ReportResult {
    source: &'static str,
    policy: String,
    rule: String,
    category: &'static str,
    result: &'static str,
    scored: bool,
    message: String,
    timestamp: Timestamp,
    resources: [ObjectReference; 1],
    properties: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Timestamp {
    seconds: i64,
    nanos: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectReference {
    api_version: String,
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    name: String,
}

/// The PolicyReport `result` of a decision: `fail` for a refused change, `warn` for one that
/// went through (the cluster differs from Git until Git catches up).
pub fn report_result(decision: Decision) -> &'static str {
    if decision == Decision::Denied { "fail" } else { "warn" }
}

impl Reports {
    pub fn new(max_results: usize) -> Self {
        Reports { max_results, namespaces: BTreeMap::new() }
    }

    pub fn add(&mut self, e: &DriftEvent<'_>) {
        let t = e.time;
        let mut properties = BTreeMap::from([
            ("driftEventId", e.id.to_string()),
            ("decision", e.decision.to_string()),
            ("mode", e.mode.as_str().to_owned()),
            ("user", e.user.username.to_string()),
            ("operation", e.operation.as_str().to_owned()),
            ("changed", changed(e)),
            ("requestUid", e.request_uid.to_string()),
        ]);
        if !e.resource.subresource.is_empty() {
            properties.insert("subresource", e.resource.subresource.to_string());
        }
        if e.dry_run {
            properties.insert("dryRun", "true".to_owned());
        }
        let result = ReportResult {
            source: "driftgate",
            policy: e.policy.to_string(),
            rule: e.rule.to_string(),
            category: "GitOps drift",
            result: report_result(e.decision),
            scored: true,
            message: e.message.to_string(),
            timestamp: Timestamp { seconds: t.unix_timestamp(), nanos: i32::try_from(t.nanosecond()).unwrap_or(0) },
            resources: [ObjectReference {
                api_version: e.resource.api_version(),
                kind: e.resource.kind.to_string(),
                namespace: e.resource.namespace.to_string(),
                name: e.resource.name.to_string(),
            }],
            properties,
        };
        let ns = match self.namespaces.get_mut(e.resource.namespace.as_ref()) {
            Some(ns) => ns,
            None => self.namespaces.entry(e.resource.namespace.to_string()).or_default(),
        };
        if self.max_results == 0 {
            ns.omitted += 1;
            return;
        }
        if ns.results.len() >= self.max_results {
            ns.results.pop_front();
            ns.omitted += 1;
        }
        ns.results.push_back(result);
    }

    pub fn write(&self, out: &mut dyn Write) -> Result<(), ReviewError> {
        for (namespace, ns) in &self.namespaces {
            let mut summary = ReportSummary::default();
            for r in &ns.results {
                match r.result {
                    "fail" => summary.fail += 1,
                    _ => summary.warn += 1,
                }
            }
            let mut annotations = BTreeMap::new();
            if ns.omitted > 0 {
                annotations.insert("driftgate.dev/results-omitted", ns.omitted.to_string());
            }
            let report = PolicyReport {
                api_version: "wgpolicyk8s.io/v1alpha2",
                kind: if namespace.is_empty() { "ClusterPolicyReport" } else { "PolicyReport" },
                metadata: ReportMetadata {
                    name: "driftgate",
                    namespace: Some(namespace.as_str()).filter(|n| !n.is_empty()),
                    labels: BTreeMap::from([("app.kubernetes.io/managed-by", "driftgate")]),
                    annotations,
                },
                summary,
                results: &ns.results,
            };
            out.write_all(b"---\n")?;
            out.write_all(serde_yaml_ng::to_string(&report)?.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_decisions_to_policy_report_results() {
        let cases = [
            (Decision::Denied, "fail"),
            (Decision::Warned, "warn"),
            (Decision::Audited, "warn"),
            (Decision::Repaired, "warn"),
            (Decision::BreakGlass, "warn"),
        ];
        for (decision, want) in cases {
            assert_eq!(report_result(decision), want, "{decision}");
        }
    }
}
