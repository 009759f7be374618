//! The drift event: one JSON object a line in the journal, the record of an out-of-band change.
//!
//! Built from a request and its verdict by the handler (which owns the id and the clock).
//! Field names are DESIGN.md's and are what `driftgate review` and users' tooling read.

use serde::{Deserialize, Serialize};

use crate::admission::{AdmissionRequest, UserInfo};
use crate::decide::{Change, GitOpsRef, Verdict};

/// The resource a drift event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRef {
    /// API group.
    pub group: String,
    /// API version of the request.
    pub version: String,
    /// Kind of the request's object.
    pub kind: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default)]
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

/// One drift event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftEvent {
    /// UUIDv7 (time-ordered).
    pub id: String,
    /// RFC 3339 time the event was recorded.
    pub time: String,
    /// `denied`, `warned`, `audited`, `repaired` or `break-glass`.
    pub decision: String,
    /// The deciding policy's mode.
    pub mode: String,
    /// The deciding policy.
    pub policy: String,
    /// The rule within the policy.
    pub rule: String,
    /// What the person was told (or would have been, for audit).
    pub message: String,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: String,
    /// Whether the request was a dry run (nothing stored).
    pub dry_run: bool,
    /// Who sent it.
    pub user: UserInfo,
    /// What it was about.
    pub resource: ResourceRef,
    /// The GitOps owner, when the object is tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<GitOpsRef>,
    /// What it changed (capped; see `changesOmitted`).
    pub changes: Vec<Change>,
    /// How many more changes there were than listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changes_omitted: usize,
    /// The AdmissionReview's uid, to join with the kube-apiserver's audit log.
    pub request_uid: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DriftEvent {
    /// The event for a drift verdict, with its id and time.
    pub fn new(id: String, time: String, req: &AdmissionRequest<'_>, verdict: &Verdict) -> Self {
        DriftEvent {
            message: verdict.message(&req.user_info, &id),
            id,
            time,
            decision: verdict.decision.as_str().to_owned(),
            mode: verdict.mode.map(|m| m.as_str()).unwrap_or_default().to_owned(),
            policy: verdict.policy.clone().unwrap_or_default(),
            rule: verdict.rule.clone(),
            operation: req.operation.as_str().to_owned(),
            dry_run: req.dry_run,
            user: req.user_info.clone(),
            resource: ResourceRef {
                group: req.resource.group.clone(),
                version: req.resource.version.clone(),
                kind: req.kind.kind.clone(),
                resource: req.resource.resource.clone(),
                subresource: req.sub_resource.clone().unwrap_or_default(),
                namespace: verdict.namespace.clone(),
                name: verdict.name.clone(),
            },
            gitops: verdict.gitops.clone(),
            changes: verdict.changes.items.clone(),
            changes_omitted: verdict.changes.omitted,
            request_uid: req.uid.clone(),
        }
    }

    /// The event as one journal line (JSON and a newline).
    pub fn to_line(&self) -> Vec<u8> {
        // Strings, numbers and JSON values: serialising cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}
