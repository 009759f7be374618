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

/// The rule that allows the UPDATE from `old` to `new` (normalised objects), if any.
pub fn allows(username: &str, old: &Value, new: &Value) -> Option<Lifecycle> {
    let terminating = old.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
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
fn only_removes(old: &Value, new: &Value, key: &str) -> bool {
    let (Some(old_meta), Some(new_meta)) =
        (old.get("metadata").and_then(Value::as_object), new.get("metadata").and_then(Value::as_object))
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
    let same_except = |a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>, skip: &str| {
        a.iter().filter(|(k, _)| *k != skip).all(|(k, v)| b.get(k) == Some(v))
            && b.keys().filter(|k| *k != skip).all(|k| a.contains_key(k))
    };
    let (Some(old_top), Some(new_top)) = (old.as_object(), new.as_object()) else { return false };
    same_except(old_top, new_top, "metadata") && same_except(old_meta, new_meta, key)
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
            assert_eq!(allows(user, &old, &new), want, "{user}: {old} -> {new}");
        }
    }
}
