//! Built-in rules for the end of an object's life, which hold before any policy: the DELETE was
//! already judged, so finishing it lets nobody do anything new.
//!
//! - An UPDATE of an object that already has `metadata.deletionTimestamp` whose only change is
//!   removing entries of `metadata.finalizers` (the garbage collector finishing a foreground or
//!   orphan deletion, a controller releasing its finalizer) is allowed for everyone.
//! - An UPDATE by the garbage collector whose only change is removing entries of
//!   `metadata.ownerReferences` (orphaning the dependents of a deleted owner) is allowed.
//!
//! Adding a finalizer, or changing anything else, is still judged by the policies. PURE.

use serde_json::Value;

use super::doc::Doc;
use crate::admission::{AdmissionRequest, Operation};

/// The garbage collector's identity (kube-controller-manager with service-account credentials).
pub const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// Which of these rules allowed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Finalizers removed from an object being deleted.
    FinalizerRemoval,
    /// ownerReferences removed by the garbage collector.
    Orphaning,
}

/// Whether the request could be one of these, judged from the raw request alone (so other
/// writes never parse their objects for it).
pub fn worth_checking(req: &AdmissionRequest<'_>) -> bool {
    req.operation == Operation::Update
        && req.sub_resource.as_deref().is_none_or(str::is_empty)
        && (req.user_info.username == GARBAGE_COLLECTOR
            || req
                .old_object
                .is_some_and(|o| memchr::memmem::find(o.get().as_bytes(), b"\"deletionTimestamp\"").is_some()))
}

/// The rule that allows the UPDATE from `old` to `new`, if any.
pub fn allows(username: &str, old: &Doc<'_>, new: &Doc<'_>) -> Option<Lifecycle> {
    let terminating = old.metadata.as_ref().and_then(|m| m.get("deletionTimestamp")).is_some_and(|t| !t.is_null());
    if terminating && only_removes(old, new, "finalizers") {
        return Some(Lifecycle::FinalizerRemoval);
    }
    if username == GARBAGE_COLLECTOR && only_removes(old, new, "ownerReferences") {
        return Some(Lifecycle::Orphaning);
    }
    None
}

/// Whether `new` is `old` with some entries of the list `metadata.<key>` removed (the others in
/// their order) and nothing else changed.
fn only_removes(old: &Doc<'_>, new: &Doc<'_>, key: &str) -> bool {
    let (Some(old_meta), Some(new_meta)) =
        (old.metadata.as_ref().and_then(Value::as_object), new.metadata.as_ref().and_then(Value::as_object))
    else {
        return false;
    };
    let Some(before) = old_meta.get(key).and_then(Value::as_array) else { return false };
    let after: &[Value] = match new_meta.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => return false,
    };
    if after.len() >= before.len() || !is_subsequence(after, before) {
        return false;
    }
    let same_except = old_meta.iter().filter(|(k, _)| *k != key).all(|(k, v)| new_meta.get(k) == Some(v))
        && new_meta.keys().filter(|k| *k != key).all(|k| old_meta.contains_key(k));
    same_except && old.same_rest(new)
}

fn is_subsequence(short: &[Value], long: &[Value]) -> bool {
    let mut rest = long.iter();
    short.iter().all(|item| rest.any(|candidate| candidate == item))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mk(meta: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "X", "metadata": meta, "spec": {"a": 1}})
    }

    #[test]
    fn allows_only_removals_from_terminating_objects_and_gc_orphaning() {
        let t = "2026-12-02T00:00:00Z";
        let fg = json!(["foregroundDeletion"]);
        let owner = json!([{"uid": "u1", "kind": "Deployment", "name": "d"}]);
        let cases = [
            (
                "anyone",
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": fg})),
                mk(json!({"name": "a", "deletionTimestamp": t})),
                Some(Lifecycle::FinalizerRemoval),
            ),
            (
                "anyone",
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": ["x", "orphan", "y"]})),
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": ["x", "y"]})),
                Some(Lifecycle::FinalizerRemoval),
            ),
            // Not terminating: removing a finalizer is a change like any other.
            ("anyone", mk(json!({"name": "a", "finalizers": fg})), mk(json!({"name": "a"})), None),
            // Adding or reordering finalizers, or changing anything else, is judged by policy.
            (
                "anyone",
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": ["x"]})),
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": ["x", "y"]})),
                None,
            ),
            (
                "anyone",
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": ["x", "y"]})),
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": ["z"]})),
                None,
            ),
            (
                "anyone",
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": fg})),
                mk(json!({"name": "a", "deletionTimestamp": t, "labels": {"x": "y"}})),
                None,
            ),
            (
                "anyone",
                mk(json!({"name": "a", "deletionTimestamp": t, "finalizers": fg})),
                json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "deletionTimestamp": t}, "spec": {"a": 2}}),
                None,
            ),
            (
                GARBAGE_COLLECTOR,
                mk(json!({"name": "a", "ownerReferences": owner})),
                mk(json!({"name": "a"})),
                Some(Lifecycle::Orphaning),
            ),
            ("alice", mk(json!({"name": "a", "ownerReferences": owner})), mk(json!({"name": "a"})), None),
            (GARBAGE_COLLECTOR, mk(json!({"name": "a", "ownerReferences": owner})), mk(json!({"name": "b"})), None),
        ];
        for (user, old, new, want) in cases {
            let (old_text, new_text) = (old.to_string(), new.to_string());
            let (old_doc, new_doc) = (Doc::parse(&old_text).unwrap(), Doc::parse(&new_text).unwrap());
            assert_eq!(allows(user, &old_doc, &new_doc), want, "{user}: {old} -> {new}");
        }
    }
}
