//! The mutating endpoint's decisions: repair patches that restore protected fields, and
//! provenance stamps on every write a policy with `provenance: true` admits. PURE, like the rest
//! of `decide`.
//!
//! Every patch is a JSONPatch computed with json-patch's `diff` from the request's object to the
//! object that should land, so it is minimal and applies cleanly; no patch when nothing differs
//! (GitOps tools must not see a diff loop).

use json_patch::{Patch, PatchOperation};
use serde_json::{Map, Value, json};

use super::changes::{self, LAST_APPLIED, SERVER_MANAGED};
use super::{DecideError, Decision, Endpoint, Judges, UNKNOWN_POLICY, Verdict, decide_at, parse_object, tracking};
use crate::admission::{AdmissionRequest, Operation};
use crate::policy::PolicySet;

pub use super::tracking::{GITOPS_APP, LAST_WRITER};

/// The mutating endpoint's answer: the verdict and the patch (empty for none).
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The verdict; only `Repaired` is drift here (the validating webhook records the rest).
    pub verdict: Verdict,
    /// The JSONPatch to return; empty when the object is to land as sent.
    pub patch: Patch,
}

/// Decides a request for the mutating webhook, judged by every policy that covers it.
pub fn mutate(set: &PolicySet, req: &AdmissionRequest<'_>) -> Result<Mutation, DecideError> {
    mutate_by(set, req, Judges::All)
}

/// Decides a request for the mutating webhook of `judges`: repairs what a repair-mode policy
/// protects, and stamps provenance on every write a policy with `provenance` admits.
pub fn mutate_by(set: &PolicySet, req: &AdmissionRequest<'_>, judges: Judges<'_>) -> Result<Mutation, DecideError> {
    let (mut verdict, objects) = decide_at(set, req, Endpoint::Mutate, judges)?;
    let writes_object = matches!(req.operation, Operation::Create | Operation::Update)
        && req.sub_resource.as_deref().is_none_or(str::is_empty);
    // Every write a policy admits, whoever makes it, so the stamp is never stale; never on a
    // built-in rule's write (finishing a deletion, status) nor on a refused one.
    let stamp = writes_object
        && verdict.decision != Decision::Denied
        && verdict.rule != UNKNOWN_POLICY
        && verdict
            .policy
            .as_deref()
            .and_then(|p| set.index_of(p))
            .and_then(|i| set.get(i))
            .is_some_and(|p| p.spec.provenance);
    let patch = match verdict.decision {
        Decision::Repaired => {
            let new = parse_object("object", req.object)?;
            let old = parse_object("oldObject", req.old_object)?;
            let normalised = objects.as_ref().and_then(|o| o.old.as_ref().zip(o.new.as_ref()));
            match (old, new, normalised) {
                (Some(old), Some(new), Some((old_n, new_n))) => {
                    let writer = stamp.then(|| Stamp::of(&req.user_info.username, &new, Some(&old)));
                    match repair(&old, &new, old_n, new_n, &verdict.not_exempt, writer) {
                        Some(patch) => patch,
                        None => {
                            // The exempt changes could not be kept apart from the rest: refuse
                            // rather than guess. The validating webhook denies what arrives.
                            verdict.decision = Decision::Denied;
                            verdict.rule = "repair:not-possible".to_owned();
                            Patch(Vec::new())
                        }
                    }
                }
                _ => Patch(Vec::new()),
            }
        }
        _ if stamp => match parse_object("object", req.object)? {
            Some(new) => {
                // The stored object's tracking is needed only when the new one carries none.
                let old = match tracking::tracked_by(&new) {
                    Some(_) => None,
                    None => parse_object("oldObject", req.old_object)?,
                };
                provenance(&Stamp::of(&req.user_info.username, &new, old.as_ref()), &new)
            }
            None => Patch(Vec::new()),
        },
        _ => Patch(Vec::new()),
    };
    Ok(Mutation { verdict, patch })
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
fn provenance(stamp: &Stamp, new: &Value) -> Patch {
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
fn repair(
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
