//! The objects the scenarios write: a Git-managed VirtualService as Argo CD applies it, and
//! the same shapes for Flux.
#![allow(dead_code)]

/// Argo CD's tracking annotation for `kind` `ns/name` of application `app`.
pub fn argocd_tracking(app: &str, group_kind: &str, ns: &str, name: &str) -> String {
    format!("{app}:{group_kind}:{ns}/{name}")
}

/// The `reviews` VirtualService of the captured fixtures (routes 90/10), tracked by the Argo CD
/// application `mesh-config`, with extra metadata lines (`extra_meta`, indented by 2).
pub fn virtual_service(ns: &str, name: &str, extra_meta: &str) -> String {
    let tracking = argocd_tracking("mesh-config", "networking.istio.io/VirtualService", ns, name);
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    argocd.argoproj.io/tracking-id: {tracking}
  labels:
    app.kubernetes.io/instance: mesh-config
{extra_meta}spec:
  hosts:
  - reviews.{ns}.svc.cluster.local
  http:
  - name: reviews-split
    match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - name: reviews-default
    route:
    - destination:
        host: reviews
        subset: v1
      weight: 90
    - destination:
        host: reviews
        subset: v2
      weight: 10
    timeout: 2s
"#
    )
}

/// A VirtualService as Flux's kustomize-controller applies it (its owner labels).
pub fn flux_virtual_service(ns: &str, name: &str, weight: u32) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {ns}
  labels:
    kustomize.toolkit.fluxcd.io/name: mesh
    kustomize.toolkit.fluxcd.io/namespace: flux-system
spec:
  hosts:
  - {name}.{ns}.svc.cluster.local
  http:
  - route:
    - destination:
        host: {name}
        subset: v1
      weight: {weight}
    - destination:
        host: {name}
        subset: v2
      weight: {}
"#,
        100 - weight
    )
}

/// A DestinationRule tracked by Argo CD.
pub fn destination_rule(ns: &str, name: &str) -> String {
    let tracking = argocd_tracking("mesh-config", "networking.istio.io/DestinationRule", ns, name);
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    argocd.argoproj.io/tracking-id: {tracking}
spec:
  host: {name}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
"#
    )
}

/// A Deployment (an API object only: the suite runs no Deployment controller).
pub fn deployment(ns: &str, name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    argocd.argoproj.io/tracking-id: mesh-config:apps/Deployment:{ns}/{name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: registry.example/{name}:1.0
"#
    )
}

/// The weights of route 1 of a VirtualService (as JSON).
pub fn weights(vs: &serde_json::Value) -> (i64, i64) {
    let route = &vs["spec"]["http"][1]["route"];
    (route[0]["weight"].as_i64().unwrap_or(-1), route[1]["weight"].as_i64().unwrap_or(-1))
}
