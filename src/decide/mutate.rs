//! The mutating webhook's patches: repairs that restore protected fields, and provenance stamps
//! on every write a policy with `provenance: true` admits. PURE, like the rest of `decide`.
//!
//! Every patch is a JSONPatch computed with json-patch's `diff` from the request's object to the
//! object that should land, so it is minimal and applies cleanly; no patch when nothing differs
//! (GitOps tools must not see a diff loop).

use json_patch::{Patch, PatchOperation};
use serde_json::{Map, Value, json};

use super::changes::{self, LAST_APPLIED, SERVER_MANAGED};
use super::{DecideError, parse_object, tracking};
use crate::admission::AdmissionRequest;

pub use super::tracking::{GITOPS_APP, LAST_WRITER};

/// The patch that stamps the request's object with `writer` (and its GitOps app), or `None`
/// when it has no object. Only what differs is patched.
pub(crate) fn provenance(req: &AdmissionRequest<'_>, writer: &str) -> Result<Option<Patch>, DecideError> {
    let Some(new) = parse_object("object", req.object)? else { return Ok(None) };
    // The stored object's tracking is needed only when the new one carries none.
    let old = match tracking::tracked_by(&new) {
        Some(_) => None,
        None => parse_object("oldObject", req.old_object)?,
    };
    Ok(Some(stamp_patch(&Stamp::of(writer, &new, old.as_ref()), &new)))
}

/// The patch that repairs an UPDATE whose normalised objects are `old_n` and `new_n` (see
/// [`repair_to`]), stamped with `writer` when given; `None` when the exempt changes cannot be
/// kept apart from the rest.
pub(crate) fn repair(
    req: &AdmissionRequest<'_>,
    old_n: Option<&Value>,
    new_n: Option<&Value>,
    not_exempt: &[String],
    writer: Option<&String>,
) -> Result<Option<Patch>, DecideError> {
    let new = parse_object("object", req.object)?;
    let old = parse_object("oldObject", req.old_object)?;
    let (Some(old), Some(new), Some(old_n), Some(new_n)) = (old, new, old_n, new_n) else {
        return Ok(Some(Patch(Vec::new())));
    };
    let stamp = writer.map(|w| Stamp::of(w, &new, Some(&old)));
    Ok(repair_to(&old, &new, old_n, new_n, not_exempt, stamp))
}

/// The provenance annotations a write should carry.
struct Stamp(Vec<(&'static str, String)>);

impl Stamp {
    /// `driftgate.dev/last-writer: writer`, and `driftgate.dev/gitops-app` when the object (or,
    /// failing that, the stored one) is tracked by GitOps.
    fn of(writer: &str, new: &Value, old: Option<&Value>) -> Stamp {
        let mut wanted = vec![(LAST_WRITER, writer.to_owned())];
        if let Some(g) = tracking::tracked_by(new).or_else(|| old.and_then(tracking::tracked_by)) {
            wanted.push((GITOPS_APP, format!("{}:{}", g.tool, g.app)));
        }
        Stamp(wanted)
    }

    /// Writes the annotations into `object`.
    fn apply(&self, object: &mut Value) {
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else { return };
        let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            for (key, value) in &self.0 {
                annotations.insert((*key).to_owned(), Value::String(value.clone()));
            }
        }
    }
}

/// The patch that stamps `new`. Only what differs is added or changed; the patch touches the
/// annotations alone, so its cost does not grow with the object.
fn stamp_patch(stamp: &Stamp, new: &Value) -> Patch {
    let wanted = stamp.0.clone();
    let Some(meta) = new.get("metadata").and_then(Value::as_object) else { return Patch(Vec::new()) };
    let ops: Vec<Value> = match meta.get("annotations").and_then(Value::as_object) {
        Some(annotations) => wanted
            .into_iter()
            .filter(|(key, value)| annotations.get(*key).and_then(Value::as_str) != Some(value.as_str()))
            .map(|(key, value)| {
                json!({"op": "add", "path": format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1")), "value": value})
            })
            .collect(),
        None => {
            let map: Map<String, Value> = wanted.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
            vec![json!({"op": "add", "path": "/metadata/annotations", "value": map})]
        }
    };
    // Well-formed add operations: this cannot fail.
    serde_json::from_value(Value::Array(ops)).unwrap_or_default()
}

/// The patch that makes `new` equal `old` on every protected path: changes outside
/// `not_exempt` (when an exemption covered some) go through, server-managed metadata stays as
/// the API server set it, everything else is restored (and stamped, when a stamp is given).
fn repair_to(
    old: &Value,
    new: &Value,
    old_n: &Value,
    new_n: &Value,
    not_exempt: &[String],
    stamp: Option<Stamp>,
) -> Option<Patch> {
    let mut target = old.clone();
    if !not_exempt.is_empty() {
        let exempt: Vec<PatchOperation> = changes::diff_ops(old_n, new_n)
            .into_iter()
            .filter(|(path, _)| !not_exempt.contains(path))
            .map(|(_, op)| op)
            .collect();
        json_patch::patch(&mut target, &exempt).ok()?;
    }
    let old_meta = old.get("metadata").and_then(Value::as_object);
    let new_meta = new.get("metadata").and_then(Value::as_object);
    if let (Some(meta), Some(new_meta)) = (target.get_mut("metadata").and_then(Value::as_object_mut), new_meta) {
        for key in SERVER_MANAGED {
            match new_meta.get(*key) {
                Some(v) => meta.insert((*key).to_owned(), v.clone()),
                None => meta.remove(*key),
            };
        }
        let last_applied = old_meta.and_then(|m| m.get("annotations")).and_then(|a| a.get(LAST_APPLIED));
        match (last_applied, meta.get_mut("annotations").and_then(Value::as_object_mut)) {
            (Some(v), Some(annotations)) => {
                annotations.insert(LAST_APPLIED.to_owned(), v.clone());
            }
            (Some(v), None) => {
                let mut annotations = Map::new();
                annotations.insert(LAST_APPLIED.to_owned(), v.clone());
                meta.insert("annotations".to_owned(), Value::Object(annotations));
            }
            (None, Some(annotations)) => {
                annotations.remove(LAST_APPLIED);
            }
            (None, None) => {}
        }
    }
    if let Some(stamp) = stamp {
        stamp.apply(&mut target);
    }
    Some(json_patch::diff(new, &target))
}
