//! A `driftgate test` case per proposed exemption: an AdmissionReview rebuilt from a recorded
//! drift event (who, what, which operation, the changed paths with their old and new values,
//! the GitOps owner's tracking metadata), checked through the decision core to be refused by
//! the policies in force and allowed by the suggested ones before it is written.

use serde_json::{Map, Value, json};

use crate::admission;
use crate::decide::{self, Decision, Endpoint, EventStamp, Hook, Judges};
use crate::event::{DriftEvent, GitOpsTool};
use crate::policy::PolicySet;

/// The AdmissionReview (v1) the kube-apiserver would have sent for `event`, as JSON.
pub fn review_of(event: &DriftEvent<'_>) -> Value {
    let r = &event.resource;
    let api_version = if r.group.is_empty() { r.version.to_string() } else { format!("{}/{}", r.group, r.version) };
    // A scale write is about a Scale object (autoscaling/v1), whatever the resource.
    let scale = r.subresource == "scale";
    let (kind, object_version) = if scale {
        (json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}), "autoscaling/v1".to_owned())
    } else {
        (json!({"group": r.group, "version": r.version, "kind": r.kind}), api_version)
    };
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(r.name));
    if !r.namespace.is_empty() {
        metadata.insert("namespace".into(), json!(r.namespace));
    }
    if let Some(owner) = &event.gitops {
        match owner.tool {
            GitOpsTool::Argocd => {
                let group = if r.group.is_empty() { String::new() } else { r.group.to_string() };
                metadata.insert(
                    "annotations".into(),
                    json!({ "argocd.argoproj.io/tracking-id":
                        format!("{}:{group}/{}:{}/{}", owner.app, r.kind, r.namespace, r.name) }),
                );
            }
            GitOpsTool::Flux => {
                // `Kustomization flux-system/mesh` or `HelmRelease shop/reviews`.
                let (kind, rest) = owner.app.split_once(' ').unwrap_or(("Kustomization", owner.app.as_str()));
                let (ns, name) = rest.split_once('/').unwrap_or(("flux-system", rest));
                let prefix = if kind == "HelmRelease" { "helm" } else { "kustomize" };
                let mut labels = Map::new();
                labels.insert(format!("{prefix}.toolkit.fluxcd.io/name"), json!(name));
                labels.insert(format!("{prefix}.toolkit.fluxcd.io/namespace"), json!(ns));
                metadata.insert("labels".into(), Value::Object(labels));
            }
        }
    }
    let kind_name = if scale { "Scale".to_owned() } else { r.kind.to_string() };
    let base = json!({ "apiVersion": object_version, "kind": kind_name, "metadata": Value::Object(metadata) });
    let (mut old, mut new) = (base.clone(), base);
    for change in &event.changes {
        if change.path.is_empty() {
            continue;
        }
        let (before, after) = (raw(change.old.get()), raw(change.new.get()));
        if let Some(v) = before {
            set(&mut old, &change.path, v);
        }
        if let Some(v) = after {
            set(&mut new, &change.path, v);
        }
    }
    let operation = event.operation.as_str();
    let mut request = json!({
        "uid": event.request_uid,
        "kind": kind,
        "resource": {"group": r.group, "version": r.version, "resource": r.resource},
        "requestKind": kind,
        "requestResource": {"group": r.group, "version": r.version, "resource": r.resource},
        "name": r.name,
        "operation": operation,
        "userInfo": {
            "username": event.user.username,
            "groups": event.user.groups,
        },
        "dryRun": event.dry_run,
    });
    if !r.namespace.is_empty() {
        request["namespace"] = json!(r.namespace);
    }
    if !r.subresource.is_empty() {
        request["subResource"] = json!(r.subresource);
    }
    if let Some(uid) = &event.user.uid {
        request["userInfo"]["uid"] = json!(uid);
    }
    match event.operation {
        admission::Operation::Create => request["object"] = new,
        admission::Operation::Delete => request["oldObject"] = old,
        _ => {
            request["object"] = new;
            request["oldObject"] = old;
        }
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// A recorded value, or `None` for one the journal left out (absent).
fn raw(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) | Err(_) => None,
        Ok(v) => Some(v),
    }
}

/// Sets `value` at JSON pointer `path`, making objects (and arrays, for numeric segments) on
/// the way.
fn set(doc: &mut Value, path: &str, value: Value) {
    let segments: Vec<String> = path.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    let mut at = doc;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let next_is_index = segments.get(i + 1).is_some_and(|s| s.parse::<usize>().is_ok());
        let fresh = || if next_is_index { json!([]) } else { json!({}) };
        at = match (at, seg.parse::<usize>()) {
            (Value::Array(items), Ok(index)) => {
                while items.len() <= index {
                    items.push(if last { Value::Null } else { fresh() });
                }
                &mut items[index]
            }
            (Value::Object(map), _) => map.entry(seg.clone()).or_insert_with(fresh),
            (other, _) => {
                *other = json!({});
                match other {
                    Value::Object(map) => map.entry(seg.clone()).or_insert_with(fresh),
                    _ => return,
                }
            }
        };
        if last {
            *at = value;
            return;
        }
    }
}

/// What `set` decides for `review`, judged by `policy` alone as its webhook would.
pub fn decision(set: &PolicySet, review: &Value, policy: &str) -> Result<Decision, String> {
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let parsed = admission::parse(&body).map_err(|e| e.to_string())?;
    let stamp = EventStamp { id: "suggest".to_owned(), time: time::OffsetDateTime::now_utc(), trace_id: None };
    let endpoint = Endpoint { hook: Hook::Validate, judges: Judges::Policy(policy) };
    decide::admit(set, &decide::Grants::none(), &parsed.request, endpoint, &stamp)
        .map(|o| o.verdict.decision)
        .map_err(|e| e.to_string())
}
