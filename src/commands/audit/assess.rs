//! Which writers of a live object are drift: the managedFields entries of a field manager that
//! is not one of the policy's GitOps field managers and owns a protected path. PURE: values in,
//! findings out.
//!
//! A protected path is any owned path but the status (written through its subresource, which a
//! built-in rule exempts, so a status entry is skipped whole) and the metadata the API server
//! and the tools manage themselves: what [`crate::decide::changes`] normalises away for
//! admission (managedFields, resourceVersion, …, the last-applied annotation, driftgate's
//! provenance stamps) and Argo CD's tracking annotation. The same policy lookup as admission
//! decides which policies cover an object (an UPDATE of it, in its namespace, within `scope`).

use serde::Serialize;
use serde_json::Value;

use super::fields::owned_paths;
use crate::admission::Operation;
use crate::decide::changes::{MANAGED_ANNOTATIONS, SERVER_MANAGED};
use crate::decide::tracking::{self, ARGOCD_TRACKING_ID, GitOpsRef};
use crate::policy::{DriftPolicy, PolicySet, Scope};

/// A protected kind as the API serves it: what policies are looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// API group (empty for the core group).
    pub group: String,
    /// The version listed (`v1`).
    pub version: String,
    /// `VirtualService`.
    pub kind: String,
    /// `virtualservices`.
    pub plural: String,
}

impl Kind {
    /// `networking.istio.io/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// A field manager that last wrote protected fields and is not a GitOps writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Writer {
    /// `metadata.managedFields[].manager` (`kubectl-edit`).
    pub manager: String,
    /// `Apply` (server-side apply) or `Update` (every other write).
    pub operation: String,
    /// When it last changed its fields (RFC 3339, as the API server recorded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The subresource it wrote through (`scale`), if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// The protected paths it owns (JSON pointers).
    pub paths: Vec<String>,
}

/// The audit of one live object under one policy: clean when no writer is drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The policy that protects the object.
    pub policy: String,
    /// The object's `apiVersion` as listed.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The object's namespace (empty for a cluster-scoped object).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The object's uid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The Argo CD application or Flux object that tracks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gitops: Option<GitOpsRef>,
    /// The writers that are drift (none: clean).
    pub writers: Vec<Writer>,
}

impl Finding {
    /// Whether a non-GitOps writer owns protected fields.
    pub fn drifted(&self) -> bool {
        !self.writers.is_empty()
    }

    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub fn object_ref(&self) -> String {
        if self.namespace.is_empty() { self.name.clone() } else { format!("{}/{}", self.namespace, self.name) }
    }
}

/// Audits `object`, a live object of `kind`, under every policy that protects its updates, in
/// load order (none when no policy does). `ids` is a buffer for the policy lookup.
pub fn audit(set: &PolicySet, kind: &Kind, object: &Value, ids: &mut Vec<usize>) -> Vec<Finding> {
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let namespace = meta["namespace"].as_str().unwrap_or_default();
    // A Namespace counts as being in itself, as in admission.
    let in_namespace = if kind.group.is_empty() && kind.kind == "Namespace" { name } else { namespace };
    if set.is_never_protected(in_namespace) {
        return Vec::new();
    }
    set.matching(&kind.group, &kind.kind, &kind.plural, in_namespace, Operation::Update, ids);
    let gitops = tracking::tracked_by(object);
    ids.iter()
        .filter_map(|&i| set.get(i))
        .filter(|policy| policy.spec.scope == Scope::All || gitops.is_some())
        .map(|policy| Finding {
            policy: policy.metadata.name.0.clone(),
            api_version: object["apiVersion"].as_str().map_or_else(|| kind.api_version(), str::to_owned),
            kind: kind.kind.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: meta["uid"].as_str().unwrap_or_default().to_owned(),
            gitops: gitops.clone(),
            writers: writers(policy, object),
        })
        .collect()
}

/// The managedFields entries of `object` that are drift under `policy`, in the object's order.
pub fn writers(policy: &DriftPolicy, object: &Value) -> Vec<Writer> {
    let Some(entries) = object["metadata"]["managedFields"].as_array() else { return Vec::new() };
    let gitops = &policy.spec.gitops;
    entries
        .iter()
        .filter_map(|entry| {
            let manager = entry["manager"].as_str().unwrap_or_default();
            let subresource = entry["subresource"].as_str().unwrap_or_default();
            if subresource == "status" || gitops.is_field_manager(manager) {
                return None;
            }
            let paths: Vec<String> =
                owned_paths(&entry["fieldsV1"], object).into_iter().filter(|p| !is_server_managed(p)).collect();
            (!paths.is_empty()).then(|| Writer {
                manager: manager.to_owned(),
                operation: entry["operation"].as_str().unwrap_or_default().to_owned(),
                time: entry["time"].as_str().map(str::to_owned),
                subresource: subresource.to_owned(),
                paths,
            })
        })
        .collect()
}

/// Whether `path` is the status or metadata the API server and the tools manage (no writer's
/// ownership of it is drift).
pub fn is_server_managed(path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
    if under("/status") {
        return true;
    }
    if SERVER_MANAGED.iter().any(|key| under(&format!("/metadata/{key}"))) {
        return true;
    }
    MANAGED_ANNOTATIONS
        .iter()
        .chain(std::iter::once(&ARGOCD_TRACKING_ID))
        .any(|key| under(&format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1"))))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::policy::load_str;

    fn mk_set(gitops: &str, scope: &str) -> PolicySet {
        let yaml = format!(
            "apiVersion: driftgate.dev/v1alpha1\nkind: DriftPolicy\nmetadata: {{name: mesh}}\nspec:\n  scope: {scope}\n  resources: [{{group: networking.istio.io}}]\n  gitops: {gitops}\n"
        );
        PolicySet::new(load_str(Path::new("p.yaml"), &yaml).unwrap(), &["driftgate".to_owned()])
    }

    fn mk_vs() -> Kind {
        Kind {
            group: "networking.istio.io".into(),
            version: "v1".into(),
            kind: "VirtualService".into(),
            plural: "virtualservices".into(),
        }
    }

    fn mk_entry(manager: &str, operation: &str, subresource: &str, fields: Value) -> Value {
        let mut e = json!({"manager": manager, "operation": operation, "apiVersion": "networking.istio.io/v1",
            "time": "2026-11-22T09:29:21Z", "fieldsType": "FieldsV1", "fieldsV1": fields});
        if !subresource.is_empty() {
            e["subresource"] = json!(subresource);
        }
        e
    }

    fn mk_object(ns: &str, entries: Vec<Value>) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": ns, "managedFields": entries,
                         "annotations": {ARGOCD_TRACKING_ID: "mesh-config:networking.istio.io/VirtualService:shop/reviews"}},
            "spec": {"hosts": ["reviews"], "http": [{"route": []}]}})
    }

    /// The drifted managers and their paths.
    fn drift(set: &PolicySet, object: &Value) -> Vec<(String, Vec<String>)> {
        let findings = audit(set, &mk_vs(), object, &mut Vec::new());
        assert_eq!(findings.len(), 1, "{findings:?}");
        findings[0].writers.iter().map(|w| (w.manager.clone(), w.paths.clone())).collect()
    }

    const ARGOCD_SA: &str = "{serviceAccounts: [argocd/argocd-application-controller]}";

    #[test]
    fn a_persons_edit_is_drift_and_the_gitops_writers_are_not() {
        let set = mk_set(ARGOCD_SA, "all");
        let spec = json!({"f:spec": {"f:http": {}}});
        let cases = [
            ("kubectl-edit", "Update", "", true),
            ("kubectl-patch", "Update", "", true),
            ("alice", "Apply", "", true),
            ("kubectl-client-side-apply", "Update", "", true),
            ("argocd-controller", "Apply", "", false),
            ("argocd-controller", "Update", "", false),
            ("argocd-application-controller", "Update", "", false),
            ("kustomize-controller", "Apply", "", false),
            ("helm-controller", "Update", "", false),
            // A status write is exempt whoever makes it.
            ("pilot-discovery", "Update", "status", false),
            // A scale write is not.
            ("kube-controller-manager", "Update", "scale", true),
        ];
        for (manager, operation, subresource, drifted) in cases {
            let object = mk_object("shop", vec![mk_entry(manager, operation, subresource, spec.clone())]);
            let want = if drifted { vec![(manager.to_owned(), vec!["/spec/http".to_owned()])] } else { vec![] };
            assert_eq!(drift(&set, &object), want, "{manager} {operation} {subresource}");
        }
    }

    #[test]
    fn owning_only_server_managed_metadata_is_no_drift() {
        let set = mk_set(ARGOCD_SA, "all");
        let metadata = json!({"f:metadata": {
            "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {},
                              "f:argocd.argoproj.io/tracking-id": {}, "f:driftgate.dev/last-writer": {}},
        }, "f:status": {"f:conditions": {}}});
        let object = mk_object("shop", vec![mk_entry("kubectl-client-side-apply", "Update", "", metadata.clone())]);
        assert_eq!(drift(&set, &object), []);
        // A label is the person's change, and only it is reported.
        let mut labelled = metadata;
        labelled["f:metadata"]["f:labels"] = json!({"f:team": {}});
        let object = mk_object("shop", vec![mk_entry("kubectl-label", "Update", "", labelled)]);
        assert_eq!(drift(&set, &object), [("kubectl-label".to_owned(), vec!["/metadata/labels/team".to_owned()])]);
    }

    #[test]
    fn a_policy_names_its_own_field_managers() {
        let set = mk_set("{serviceAccounts: [ci/deployer], fieldManagers: [ci-apply]}", "all");
        let spec = json!({"f:spec": {"f:hosts": {}}});
        let object = mk_object(
            "shop",
            vec![mk_entry("ci-apply", "Apply", "", spec.clone()), mk_entry("argocd-controller", "Apply", "", spec)],
        );
        assert_eq!(
            drift(&set, &object),
            [("argocd-controller".to_owned(), vec!["/spec/hosts".to_owned()])],
            "a list replaces the defaults"
        );
    }

    #[test]
    fn only_covered_objects_are_audited() {
        let spec = json!({"f:spec": {"f:http": {}}});
        let object = mk_object("shop", vec![mk_entry("kubectl-edit", "Update", "", spec.clone())]);
        let all = mk_set(ARGOCD_SA, "all");
        assert!(audit(&all, &mk_vs(), &mk_object("kube-system", vec![]), &mut Vec::new()).is_empty());
        assert!(audit(&all, &mk_vs(), &mk_object("driftgate", vec![]), &mut Vec::new()).is_empty());
        let other = Kind {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        };
        assert!(audit(&all, &other, &object, &mut Vec::new()).is_empty());
        // scope: managed covers only objects GitOps tracks.
        let managed = mk_set(ARGOCD_SA, "managed");
        assert_eq!(audit(&managed, &mk_vs(), &object, &mut Vec::new()).len(), 1);
        let mut untracked = object;
        untracked["metadata"].as_object_mut().unwrap().remove("annotations");
        assert!(audit(&managed, &mk_vs(), &untracked, &mut Vec::new()).is_empty());
        let found = audit(&all, &mk_vs(), &untracked, &mut Vec::new());
        assert_eq!(
            (found[0].object_ref(), found[0].drifted(), found[0].gitops.is_none()),
            ("shop/reviews".into(), true, true)
        );
    }

    #[test]
    fn reads_a_real_edited_object() {
        // Captured: Argo CD's stand-in applied it with plain `kubectl apply`, then a person edited.
        let path = format!(
            "{}/tests/fixtures/virtualservice-update-kubectl-edit-human.validating.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let object = &review["request"]["object"];
        let set = mk_set(ARGOCD_SA, "all");
        let with = |managers: &str| {
            let set = mk_set(
                &format!("{{serviceAccounts: [argocd/argocd-application-controller], fieldManagers: [{managers}]}}"),
                "all",
            );
            audit(&set, &mk_vs(), object, &mut Vec::new()).remove(0).writers
        };
        let found = audit(&set, &mk_vs(), object, &mut Vec::new()).remove(0);
        let who: Vec<(&str, &str, Option<&str>)> =
            found.writers.iter().map(|w| (w.manager.as_str(), w.operation.as_str(), w.time.as_deref())).collect();
        assert_eq!(
            who,
            [
                ("kubectl-client-side-apply", "Update", Some("2026-11-22T09:29:11Z")),
                ("kubectl-edit", "Update", Some("2026-11-22T09:29:21Z"))
            ]
        );
        assert_eq!(found.writers[0].paths, ["/metadata/labels/app.kubernetes.io~1instance", "/spec/hosts"]);
        assert_eq!(found.writers[1].paths, ["/spec/http"]);
        assert_eq!(found.gitops.as_ref().map(|g| g.app.as_str()), Some("mesh-config"));
        // Where GitOps really does apply with plain kubectl, the policy says so.
        let writers = with("kubectl-client-side-apply");
        assert_eq!(writers.iter().map(|w| w.manager.as_str()).collect::<Vec<_>>(), ["kubectl-edit"]);
    }

    #[test]
    fn server_managed_paths() {
        for path in [
            "/status",
            "/status/conditions/0",
            "/metadata/managedFields",
            "/metadata/resourceVersion",
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            "/metadata/annotations/argocd.argoproj.io~1tracking-id",
            "/metadata/annotations/driftgate.dev~1gitops-app",
        ] {
            assert!(is_server_managed(path), "{path}");
        }
        for path in [
            "/spec",
            "/statuses",
            "/metadata/labels/team",
            "/metadata/annotations/example.com~1note",
            "/metadata/finalizers/0",
        ] {
            assert!(!is_server_managed(path), "{path}");
        }
    }
}
