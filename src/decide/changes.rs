//! What a request changes: `[{path, old, new}]` from `oldObject` to `object`.
//!
//! Server-managed metadata is normalised away first, so a request that touches nothing else has
//! no changes. Values of secret-like fields are redacted, large values are summarised, and long
//! lists keep their first [`MAX_CHANGES`] entries and a count of the rest. Pure: no I/O.

use json_patch::PatchOperation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::admission::Operation;

/// How many changes a list keeps; the rest are counted.
pub const MAX_CHANGES: usize = 50;
/// A value whose JSON is longer than this is replaced by a summary in a change.
pub const MAX_VALUE_BYTES: usize = 2048;
/// What a secret-like value is replaced by.
pub const REDACTED: &str = "<redacted>";
/// The annotation client-side apply keeps its last input in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata fields the API server manages; a change to them alone is no drift.
pub const SERVER_MANAGED: &[&str] = &["managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"];

/// One changed path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// JSON pointer (RFC 6901) into the object.
    pub path: String,
    /// The value before (`null` when the path did not exist).
    pub old: Value,
    /// The value after (`null` when the path is removed).
    pub new: Value,
}

/// The changes of a request, capped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// The first [`MAX_CHANGES`] changes.
    pub items: Vec<Change>,
    /// How many more there were.
    pub omitted: usize,
}

impl Changes {
    /// Caps a full list of changes at [`MAX_CHANGES`], redacting and summarising the values kept.
    pub fn cap(all: &[Change]) -> Changes {
        let mut items: Vec<Change> = all.iter().take(MAX_CHANGES).cloned().collect();
        items.iter_mut().for_each(present);
        Changes { items, omitted: all.len().saturating_sub(MAX_CHANGES) }
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.omitted == 0
    }

    /// Total number of changes, kept and omitted.
    pub fn total(&self) -> usize {
        self.items.len() + self.omitted
    }
}

/// Annotations that are not anyone's change: client-side apply's copy of its input, and the
/// provenance stamps driftgate's mutating webhook writes itself.
pub const MANAGED_ANNOTATIONS: &[&str] = &[LAST_APPLIED, super::tracking::LAST_WRITER, super::tracking::GITOPS_APP];

/// Removes server-managed metadata in place (managedFields, resourceVersion, generation,
/// creationTimestamp, uid, the last-applied annotation, driftgate's provenance stamps).
pub fn normalise(object: &mut Value) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    for key in SERVER_MANAGED {
        meta.remove(*key);
    }
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        for key in MANAGED_ANNOTATIONS {
            annotations.remove(*key);
        }
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
}

/// Every change a request makes, values as they are (see [`Changes::cap`] for a report).
/// `old` and `new` are the request's objects, already normalised.
pub fn changes(
    operation: Operation,
    subresource: Option<&str>,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Vec<Change> {
    let mut out = Vec::new();
    match (operation, old, new) {
        (Operation::Update, Some(old), Some(new)) if subresource == Some("scale") => {
            // A Scale carries only replicas of its parent: report it as the parent's path.
            let (o, n) = (old.pointer("/spec/replicas"), new.pointer("/spec/replicas"));
            if o != n {
                out.push(Change {
                    path: "/spec/replicas".to_owned(),
                    old: o.cloned().unwrap_or(Value::Null),
                    new: n.cloned().unwrap_or(Value::Null),
                });
            }
        }
        (Operation::Update, Some(old), Some(new)) => diff(old, new, &mut out),
        (Operation::Create, _, Some(new)) => created(new, &mut out),
        (Operation::Delete, Some(_), _) | (Operation::Delete, None, None) => {
            out.push(Change { path: String::new(), old: Value::String("<object>".into()), new: Value::Null });
        }
        _ => {}
    }
    out
}

fn diff(old: &Value, new: &Value, out: &mut Vec<Change>) {
    for (path, op) in diff_ops(old, new) {
        let change = match op {
            PatchOperation::Add(add) => Change { path, old: Value::Null, new: add.value },
            PatchOperation::Replace(rep) => {
                let old_value = old.pointer(&path).cloned().unwrap_or(Value::Null);
                Change { path, old: old_value, new: rep.value }
            }
            PatchOperation::Remove(_) => {
                let old_value = old.pointer(&path).cloned().unwrap_or(Value::Null);
                Change { path, old: old_value, new: Value::Null }
            }
            // diff produces only add, remove and replace.
            _ => continue,
        };
        out.push(change);
    }
}

/// The json-patch diff from `old` to `new`, each operation with the path a report shows: the
/// operation's own path, except that json-patch numbers successive removals from one array as
/// the patch applies them (all at the same index), where a report wants the original indices.
pub fn diff_ops(old: &Value, new: &Value) -> Vec<(String, PatchOperation)> {
    let mut last_remove: Option<(String, usize)> = None;
    json_patch::diff(old, new)
        .0
        .into_iter()
        .map(|op| {
            let path = op.path().to_string();
            let reported = match &op {
                PatchOperation::Remove(_) => {
                    let shift = match &last_remove {
                        Some((p, n)) if *p == path => n + 1,
                        _ => 0,
                    };
                    let reported = shifted(&path, shift);
                    last_remove = Some((path, shift));
                    reported
                }
                _ => path,
            };
            (reported, op)
        })
        .collect()
}

/// `/a/b/3` shifted by 2 is `/a/b/5` (only when the last segment is an index).
fn shifted(path: &str, shift: usize) -> String {
    if shift == 0 {
        return path.to_owned();
    }
    match path.rsplit_once('/') {
        Some((parent, last)) => match last.parse::<usize>() {
            Ok(i) => format!("{parent}/{}", i + shift),
            Err(_) => path.to_owned(),
        },
        None => path.to_owned(),
    }
}

fn created(new: &Value, out: &mut Vec<Change>) {
    let (prefix, fields) = match new.get("spec").and_then(Value::as_object) {
        Some(spec) => ("/spec", spec.iter().collect::<Vec<_>>()),
        None => match new.as_object() {
            Some(top) => (
                "",
                top.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
                    .collect(),
            ),
            None => ("", Vec::new()),
        },
    };
    for (key, value) in fields {
        out.push(Change { path: format!("{prefix}/{}", escape(key)), old: Value::Null, new: value.clone() });
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Redacts secrets and summarises large values of a change.
fn present(change: &mut Change) {
    let secret_path = change.path.split('/').any(is_secret_key);
    for v in [&mut change.old, &mut change.new] {
        if v.is_null() {
            continue;
        }
        if secret_path {
            *v = Value::String(REDACTED.into());
        } else {
            redact(v);
            summarise(v);
        }
    }
}

/// Whether a field name looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "data"
        || k == "stringdata"
        || k.contains("token")
        || k.contains("password")
        || k.contains("passwd")
        || k.contains("secret")
        || k.ends_with("key")
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if is_secret_key(k) && !child.is_null() {
                    *child = Value::String(REDACTED.into());
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn summarise(v: &mut Value) {
    let len = match v {
        Value::String(s) => s.len() + 2,
        Value::Object(_) | Value::Array(_) => serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0),
        _ => return,
    };
    if len > MAX_VALUE_BYTES {
        let what = match v {
            Value::String(_) => "string",
            Value::Object(_) => "object",
            _ => "array",
        };
        *v = Value::String(format!("<{what} of {len} bytes>"));
    }
}

/// A compact one-line rendering of a value for messages, at most `max` characters.
pub fn short(value: &Value, max: usize) -> String {
    let s = match value {
        Value::Null => "unset".to_owned(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() <= max {
        s
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// An empty JSON object, for objects that are missing.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mk_update(mut old: Value, mut new: Value) -> Changes {
        normalise(&mut old);
        normalise(&mut new);
        Changes::cap(&changes(Operation::Update, None, Some(&old), Some(&new)))
    }

    fn paths(c: &Changes) -> Vec<(&str, String, String)> {
        c.items.iter().map(|c| (c.path.as_str(), c.old.to_string(), c.new.to_string())).collect()
    }

    #[test]
    fn ignores_server_managed_metadata() {
        let old = json!({"metadata": {"generation": 1, "resourceVersion": "1", "managedFields": [1],
            "annotations": {LAST_APPLIED: "{}"}}, "spec": {"a": 1}});
        let new =
            json!({"metadata": {"generation": 2, "resourceVersion": "2", "managedFields": [2]}, "spec": {"a": 1}});
        assert!(mk_update(old, new).is_empty());
    }

    #[test]
    fn reports_replaced_added_and_removed_paths_with_old_values() {
        let old = json!({"spec": {"w": [90, 10], "keep": 1, "gone": "x", "list": ["a", "b", "c"]}});
        let new = json!({"spec": {"w": [70, 30], "keep": 1, "new": true, "list": ["a"]}});
        assert_eq!(
            paths(&mk_update(old, new)),
            [
                ("/spec/list/1", "\"b\"".into(), "null".into()),
                ("/spec/list/2", "\"c\"".into(), "null".into()),
                ("/spec/new", "null".into(), "true".into()),
                ("/spec/w/0", "90".into(), "70".into()),
                ("/spec/w/1", "10".into(), "30".into()),
                ("/spec/gone", "\"x\"".into(), "null".into()),
            ]
        );
    }

    #[test]
    fn redacts_secret_like_fields() {
        let old = json!({"spec": {"jwt": {"token": "a"}, "cfg": {"apiKey": "k", "host": "h"}}});
        let new = json!({"spec": {"jwt": {"token": "b"}, "cfg": {"apiKey": "k2", "host": "h2"}}});
        let c = mk_update(old.clone(), new);
        assert!(
            c.items
                .iter()
                .filter(|c| c.path.contains("oken") || c.path.contains("Key"))
                .all(|c| c.old == REDACTED && c.new == REDACTED)
        );
        let replaced = mk_update(old, json!({"spec": {"jwt": "x", "cfg": {"apiKey": "z", "host": "h"}}}));
        let jwt = replaced.items.iter().find(|c| c.path == "/spec/jwt").unwrap();
        assert_eq!(jwt.old, json!({"token": REDACTED}));
    }

    #[test]
    fn caps_long_lists_and_large_values() {
        let old = json!({"spec": {"v": (0..80).collect::<Vec<_>>(), "big": "x"}});
        let new = json!({"spec": {"v": (100..180).collect::<Vec<_>>(), "big": "y".repeat(5000)}});
        let c = mk_update(old, new);
        assert_eq!(c.items.len(), MAX_CHANGES);
        assert_eq!(c.total(), 81);
        let big = mk_update(json!({"a": "x"}), json!({"a": "y".repeat(5000)}));
        assert_eq!(big.items[0].new, json!("<string of 5002 bytes>"));
    }

    #[test]
    fn reports_create_delete_and_scale() {
        let obj = json!({"metadata": {"name": "x"}, "spec": {"hosts": ["a"], "ports": [1]}});
        let created = changes(Operation::Create, None, None, Some(&obj));
        assert_eq!(created.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/spec/hosts", "/spec/ports"]);
        let deleted = changes(Operation::Delete, None, Some(&obj), None);
        assert_eq!(deleted[0].path, "");
        let scale = changes(
            Operation::Update,
            Some("scale"),
            Some(&json!({"spec": {"replicas": 2}})),
            Some(&json!({"spec": {"replicas": 4}})),
        );
        assert_eq!(paths(&Changes::cap(&scale)), [("/spec/replicas", "2".into(), "4".into())]);
    }

    #[test]
    fn shortens_values_for_messages() {
        assert_eq!(short(&json!(90), 10), "90");
        assert_eq!(short(&json!("abc"), 10), "\"abc\"");
        assert_eq!(short(&Value::Null, 10), "unset");
        assert_eq!(short(&json!("abcdefghijkl"), 6), "\"abcd…");
    }
}
