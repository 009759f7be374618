//! GitOps tracking metadata: which Argo CD application or Flux object owns an object.

use serde_json::Value;

pub use crate::event::{GitOpsRef, GitOpsTool};

/// Argo CD's tracking annotation (`<app>:<group>/<Kind>:<namespace>/<name>`).
pub const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// The label Argo CD (label tracking) and Helm set to the application/release name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Flux kustomize-controller's owner label (name; `…/namespace` carries the namespace).
pub const FLUX_KUSTOMIZE_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
/// Flux kustomize-controller's owner namespace label.
pub const FLUX_KUSTOMIZE_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Flux helm-controller's owner label.
pub const FLUX_HELM_NAME: &str = "helm.toolkit.fluxcd.io/name";
/// Flux helm-controller's owner namespace label.
pub const FLUX_HELM_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";

/// The annotation that names the identity that last wrote an object (policies with `provenance`).
pub const LAST_WRITER: &str = "driftgate.dev/last-writer";
/// The annotation that names the GitOps application that owns an object (`argocd:mesh-config`).
pub const GITOPS_APP: &str = "driftgate.dev/gitops-app";

fn str_at<'v>(meta: &'v Value, map: &str, key: &str) -> Option<&'v str> {
    meta.get(map)?.get(key)?.as_str().filter(|s| !s.is_empty())
}

/// The GitOps owner recorded in an object's metadata, if any.
pub fn tracked_by(object: &Value) -> Option<GitOpsRef> {
    tracked_by_metadata(object.get("metadata")?)
}

/// The GitOps owner recorded in `metadata`, if any.
pub fn tracked_by_metadata(meta: &Value) -> Option<GitOpsRef> {
    if let Some(id) = str_at(meta, "annotations", ARGOCD_TRACKING_ID) {
        let app = id.split_once(':').map_or(id, |(app, _)| app);
        return Some(GitOpsRef { tool: GitOpsTool::Argocd, app: app.to_owned() });
    }
    for (label, ns_label, kind) in [
        (FLUX_KUSTOMIZE_NAME, FLUX_KUSTOMIZE_NAMESPACE, "Kustomization"),
        (FLUX_HELM_NAME, FLUX_HELM_NAMESPACE, "HelmRelease"),
    ] {
        if let Some(name) = str_at(meta, "labels", label) {
            let app = match str_at(meta, "labels", ns_label) {
                Some(ns) => format!("{kind} {ns}/{name}"),
                None => format!("{kind} {name}"),
            };
            return Some(GitOpsRef { tool: GitOpsTool::Flux, app });
        }
    }
    str_at(meta, "labels", INSTANCE_LABEL).map(|app| GitOpsRef { tool: GitOpsTool::Argocd, app: app.to_owned() })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_argocd_and_flux_tracking() {
        let cases = [
            (
                json!({"annotations": {ARGOCD_TRACKING_ID: "mesh-config:networking.istio.io/VirtualService:shop/reviews"}}),
                Some(("argocd", "mesh-config")),
            ),
            (json!({"labels": {INSTANCE_LABEL: "payments"}}), Some(("argocd", "payments"))),
            (
                json!({"labels": {FLUX_KUSTOMIZE_NAME: "mesh", FLUX_KUSTOMIZE_NAMESPACE: "flux-system"}}),
                Some(("flux", "Kustomization flux-system/mesh")),
            ),
            (json!({"labels": {FLUX_HELM_NAME: "istio-gw"}}), Some(("flux", "HelmRelease istio-gw"))),
            (json!({"labels": {"team": "x"}, "annotations": {ARGOCD_TRACKING_ID: ""}}), None),
            (json!({}), None),
        ];
        for (meta, want) in cases {
            let got = tracked_by(&json!({ "metadata": meta }));
            assert_eq!(got.as_ref().map(|g| (g.tool.as_str(), g.app.as_str())), want, "{meta}");
        }
    }
}
