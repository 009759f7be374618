//! The audit's I/O with the cluster: which protected kinds it serves (API discovery of each
//! group the policies name), the live objects of each (listed in pages), and the reports
//! (server-side applied with field manager `driftgate`; driftgate's own stale ones deleted).
//!
//! Only reads protected kinds; writes and deletes nothing but PolicyReports and
//! ClusterPolicyReports named [`REPORT_NAME`] that carry the audit's [`LABELS`].

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{self, ApiResource, Scope, verbs};
use kube::error::DiscoveryError;
use kube::{Client, ResourceExt as _};
use serde_json::Value;

use super::assess::Kind;
use super::error::AuditError;
use super::report::{LABELS, REPORT_NAME, Report, selector};
use crate::admission::Operation;
use crate::install::FIELD_MANAGER;
use crate::policy::{PolicySet, ResourceRule};

/// Objects a list request asks for at a time.
const PAGE: u32 = 500;

/// A protected kind the cluster serves.
#[derive(Debug, Clone)]
pub struct Served {
    /// Group, version, kind, plural.
    pub kind: Kind,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    resource: ApiResource,
}

impl Served {
    /// `virtualservices.networking.istio.io` (`namespaces` for the core group).
    pub fn name(&self) -> String {
        if self.kind.group.is_empty() {
            self.kind.plural.clone()
        } else {
            format!("{}.{}", self.kind.plural, self.kind.group)
        }
    }
}

/// Connects with the current kubeconfig, or the in-cluster config.
pub async fn connect() -> Result<Client, AuditError> {
    Client::try_default().await.map_err(AuditError::Connect)
}

fn rule_names(rule: &ResourceRule, kind: &str, plural: &str) -> bool {
    (rule.kinds.is_empty() && rule.resources.is_empty())
        || rule.kinds.iter().any(|k| k.0 == kind || k.0 == "*")
        || rule.resources.iter().any(|r| r.0 == plural)
}

/// The kinds the policies protect from updates that the cluster serves (at each group's
/// preferred version), in group and name order, and a note for each group it does not serve.
pub async fn protected_kinds(client: &Client, set: &PolicySet) -> Result<(Vec<Served>, Vec<String>), AuditError> {
    let mut rules: BTreeMap<&str, Vec<&ResourceRule>> = BTreeMap::new();
    for policy in set.policies() {
        for rule in policy.spec.resources.iter().filter(|r| r.covers(Operation::Update)) {
            rules.entry(rule.group.as_str()).or_default().push(rule);
        }
    }
    let mut served = Vec::new();
    let mut notes = Vec::new();
    for (group, rules) in rules {
        let api_group = match discovery::group(client, group).await {
            Ok(g) => g,
            Err(kube::Error::Discovery(DiscoveryError::MissingApiGroup(_))) => {
                notes.push(format!("API group {group:?} is not served by the cluster: nothing of it to audit"));
                continue;
            }
            Err(error) => return Err(AuditError::Discovery { group: group.to_owned(), error }),
        };
        let mut seen = BTreeSet::new();
        for (resource, caps) in api_group.recommended_resources() {
            if resource.plural.contains('/')
                || !caps.supports_operation(verbs::LIST)
                || !rules.iter().any(|r| rule_names(r, &resource.kind, &resource.plural))
                || !seen.insert(resource.plural.clone())
            {
                continue;
            }
            served.push(Served {
                kind: Kind {
                    group: resource.group.clone(),
                    version: resource.version.clone(),
                    kind: resource.kind.clone(),
                    plural: resource.plural.clone(),
                },
                namespaced: caps.scope == Scope::Namespaced,
                resource,
            });
        }
    }
    served.sort_by(|a, b| (&a.kind.group, &a.kind.plural).cmp(&(&b.kind.group, &b.kind.plural)));
    Ok((served, notes))
}

/// Every live object of `kind` (in `namespace`, or everywhere), as JSON, a page at a time.
pub async fn list(client: &Client, kind: &Served, namespace: Option<&str>) -> Result<Vec<Value>, AuditError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.resource),
        None => Api::all_with(client.clone(), &kind.resource),
    };
    let what = || match namespace {
        Some(ns) => format!("{} in namespace {ns}", kind.name()),
        None => kind.name(),
    };
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await.map_err(|error| AuditError::List { what: what(), error })?;
        for item in page.items {
            objects.push(serde_json::to_value(&item).map_err(|error| AuditError::Object { what: what(), error })?);
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(objects);
        }
    }
}

fn report_resource(cluster: bool) -> ApiResource {
    let (kind, plural) =
        if cluster { ("ClusterPolicyReport", "clusterpolicyreports") } else { ("PolicyReport", "policyreports") };
    ApiResource {
        group: "wgpolicyk8s.io".to_owned(),
        version: "v1alpha2".to_owned(),
        api_version: super::report::API_VERSION.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found())
}

fn where_(namespace: &str) -> String {
    if namespace.is_empty() { REPORT_NAME.to_owned() } else { format!("{namespace}/{REPORT_NAME}") }
}

/// Server-side applies `reports` (forced, field manager `driftgate`), then deletes the audit's
/// own reports that are no longer wanted: in the audited `namespaces` (every namespace when
/// empty, and the cluster report then too) where no report was written. One line for each
/// report written or deleted, as kubectl prints.
pub async fn write_reports(
    client: &Client,
    reports: &[Report],
    namespaces: &[String],
) -> Result<Vec<String>, AuditError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut lines = Vec::new();
    for report in reports {
        let cluster = report.namespace.is_empty();
        let resource = report_resource(cluster);
        let api: Api<DynamicObject> = if cluster {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), &report.namespace, &resource)
        };
        let kind = report.kind();
        api.patch(REPORT_NAME, &params, &Patch::Apply(&report.object)).await.map_err(|error| {
            if is_not_found(&error) {
                AuditError::NoReportCrd { kind, where_: where_(&report.namespace) }
            } else {
                AuditError::Report { verb: "apply", kind, where_: where_(&report.namespace), error }
            }
        })?;
        lines.push(format!("{}.wgpolicyk8s.io/{} serverside-applied", kind.to_lowercase(), where_(&report.namespace)));
    }
    let written: BTreeSet<&str> = reports.iter().map(|r| r.namespace.as_str()).collect();
    let stale = |namespace: &str| {
        !written.contains(namespace) && (namespaces.is_empty() || namespaces.iter().any(|n| n == namespace))
    };
    let own = ListParams::default().labels(&selector());
    let namespaced = report_resource(false);
    let mut scopes: Vec<(Api<DynamicObject>, &'static str)> = Vec::new();
    if namespaces.is_empty() {
        scopes.push((Api::all_with(client.clone(), &namespaced), "PolicyReport"));
        scopes.push((Api::all_with(client.clone(), &report_resource(true)), "ClusterPolicyReport"));
    } else {
        for ns in namespaces {
            scopes.push((Api::namespaced_with(client.clone(), ns, &namespaced), "PolicyReport"));
        }
    }
    for (api, kind) in scopes {
        let found = match api.list(&own).await {
            Ok(list) => list.items,
            // No CRD, so no report of ours to delete.
            Err(error) if is_not_found(&error) => continue,
            Err(error) => return Err(AuditError::Report { verb: "list", kind, where_: selector(), error }),
        };
        for old in found {
            let namespace = old.namespace().unwrap_or_default();
            let ours = old.name_any() == REPORT_NAME
                && LABELS.iter().all(|(k, v)| old.labels().get(*k).is_some_and(|l| l == v));
            if !ours || !stale(&namespace) {
                continue;
            }
            let api: Api<DynamicObject> = if namespace.is_empty() {
                Api::all_with(client.clone(), &report_resource(true))
            } else {
                Api::namespaced_with(client.clone(), &namespace, &namespaced)
            };
            match api.delete(REPORT_NAME, &DeleteParams::default()).await {
                Ok(_) => lines.push(format!("{}.wgpolicyk8s.io/{} deleted", kind.to_lowercase(), where_(&namespace))),
                Err(error) if is_not_found(&error) => {}
                Err(error) => {
                    return Err(AuditError::Report { verb: "delete", kind, where_: where_(&namespace), error });
                }
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::NonEmpty;

    fn mk_rule(kinds: &[&str], resources: &[&str]) -> ResourceRule {
        let names = |n: &[&str]| n.iter().map(|s| NonEmpty(s.to_string())).collect();
        ResourceRule {
            group: "networking.istio.io".into(),
            kinds: names(kinds),
            resources: names(resources),
            operations: vec![],
        }
    }

    #[test]
    fn a_rule_names_kinds_by_kind_plural_or_all() {
        let cases = [
            (mk_rule(&[], &[]), true, true),
            (mk_rule(&["*"], &[]), true, true),
            (mk_rule(&["VirtualService"], &[]), true, false),
            (mk_rule(&[], &["virtualservices"]), true, false),
            (mk_rule(&["Gateway"], &["destinationrules"]), false, true),
        ];
        for (rule, vs, dr) in cases {
            assert_eq!(rule_names(&rule, "VirtualService", "virtualservices"), vs, "{rule:?}");
            assert_eq!(rule_names(&rule, "DestinationRule", "destinationrules"), dr, "{rule:?}");
        }
    }
}
