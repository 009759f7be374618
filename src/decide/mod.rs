//! The decision core: one entry point, [`admit`]`(&PolicySet, &AdmissionRequest, Endpoint, &EventStamp) -> Outcome`.
//!
//! PURE: no I/O, no clock, no tokio (the id and time a drift event gets are inputs). The
//! server, `driftgate test` and the benchmarks all call this same function, for both webhooks.
//! The outcome holds everything the handler needs: the decision and the rule that made it, the
//! answer to send (allowed or refused with the message, warnings, patch, audit annotations) and,
//! for drift, the event to journal before sending it.
//!
//! Inside: [`judge`] finds the verdict (built-in rules first, then each policy that covers the
//! request; the most severe verdict wins: denied > repaired > warned > audited > break-glass >
//! allowed), [`verdict`] says what it means and what the person is told, [`mutate`] builds
//! repair and provenance patches, [`doc`] reads the objects lazily (metadata as values, the rest
//! raw) and diffs them, [`changes`] says what a change is and how it is reported, [`lifecycle`]
//! and [`tracking`] know the end of an object's life and who owns it.

pub mod changes;
pub mod doc;
pub mod grant_write;
pub(crate) mod judge;
pub mod lifecycle;
pub mod mutate;
pub mod tracking;
pub mod verdict;

use serde_json::Value;
use time::OffsetDateTime;

pub use changes::{Change, Changes};
pub use verdict::{Drift, Judge, Rule, Subject, Verdict};

use crate::admission::{AdmissionRequest, AdmissionResponse, Operation};
use crate::event::DriftEvent;
pub use crate::event::{Decision, GitOpsRef};
use crate::policy::PolicySet;
pub use crate::policy::grant::Grants;

/// The audit annotation that carries the drift event id (the kube-apiserver prefixes it with
/// the webhook's name).
pub const AUDIT_EVENT_ID: &str = "drift-event-id";

/// Which webhook asks: the answer to a repair-mode policy differs between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// The validating webhook (`/validate`), called after all mutations.
    Validate,
    /// The mutating webhook (`/mutate`), which can repair and stamp provenance.
    Mutate,
}

impl Hook {
    /// The path's first segment: `validate` or `mutate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Validate => "validate",
            Hook::Mutate => "mutate",
        }
    }
}

/// Which policies judge a request: every policy that covers it (`/validate`, `/mutate`, written
/// for hand-made configurations), or the one a generated webhook was registered for
/// (`/validate/<policy>`, `/mutate/<policy>`), so one attempt gives one event per policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judges<'a> {
    /// Every policy that covers the request; the most severe verdict wins.
    All,
    /// The named policy alone.
    Policy(&'a str),
    /// Writes to BreakGlassGrants (`/grants`), judged by the grant rules.
    Grants,
}

/// The endpoint a request came to: which webhook, judged by which policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// The validating or the mutating webhook.
    pub hook: Hook,
    /// Every policy (`/validate`), or one (`/validate/<policy>`).
    pub judges: Judges<'a>,
}

impl<'a> Endpoint<'a> {
    /// `/validate` (`None`) or `/validate/<policy>`.
    pub fn validate(policy: Option<&'a str>) -> Self {
        Endpoint { hook: Hook::Validate, judges: policy.map_or(Judges::All, Judges::Policy) }
    }

    /// `/mutate` (`None`) or `/mutate/<policy>`.
    pub fn mutate(policy: Option<&'a str>) -> Self {
        Endpoint { hook: Hook::Mutate, judges: policy.map_or(Judges::All, Judges::Policy) }
    }

    /// `/grants`: writes to BreakGlassGrants.
    pub fn grants() -> Self {
        Endpoint { hook: Hook::Validate, judges: Judges::Grants }
    }

    /// The endpoint's name in metrics, spans and logs: `validate`, `mutate` or `grants`.
    pub fn path(&self) -> &'static str {
        match self.judges {
            Judges::Grants => "grants",
            _ => self.hook.as_str(),
        }
    }
}

/// The id and time a drift event gets, should the request be drift (inputs: the core has no
/// clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStamp {
    /// The event's id (a UUIDv7 in the server).
    pub id: String,
    /// When it is recorded.
    pub time: OffsetDateTime,
    /// The trace id of the request's span, when traces are exported.
    pub trace_id: Option<String>,
}

/// What [`admit`] concludes: the verdict, the answer to send and the event to journal first.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict: decision, rule, policy, object, changes.
    pub verdict: Verdict,
    /// What the answer carries out: the mutating webhook never refuses (the validating one does),
    /// so its answer is `allowed` or `repaired`.
    pub answered: Decision,
    /// The AdmissionReview answer.
    pub answer: AdmissionResponse,
    /// The drift event to make durable before the answer is sent.
    pub event: Option<DriftEvent<'static>>,
}

/// Why a request could not be decided: its objects are not readable JSON objects.
#[derive(Debug, thiserror::Error)]
#[error("failed to read request.{field}: {source}")]
pub struct DecideError {
    field: &'static str,
    #[source]
    source: serde_json::Error,
}

/// Decides a request that came to `endpoint`, with the live break-glass `grants` (none:
/// [`Grants::none`]) at the stamp's time: the verdict, the answer and the drift event.
pub fn admit(
    set: &PolicySet,
    grants: &Grants,
    req: &AdmissionRequest<'_>,
    endpoint: Endpoint<'_>,
    stamp: &EventStamp,
) -> Result<Outcome, DecideError> {
    let cx = judge::Context { grants, now: stamp.time };
    let verdict = judge::judge(set, req, endpoint.hook, endpoint.judges, cx)?;
    // The mutating webhook records only what it repairs; the validating one records the rest.
    let (record, answered) = match endpoint.hook {
        Hook::Validate => (verdict.decision.is_drift(), verdict.decision),
        Hook::Mutate if verdict.decision == Decision::Repaired => (true, Decision::Repaired),
        Hook::Mutate => (false, Decision::Allowed),
    };
    let mut answer = AdmissionResponse::allow(&req.uid);
    let mut event = None;
    if record {
        let message = verdict.message(&req.user_info, &stamp.id);
        answer = answer.annotate(AUDIT_EVENT_ID, stamp.id.clone());
        answer = match verdict.decision {
            Decision::Denied => answer.deny(message.clone()),
            Decision::Warned | Decision::BreakGlass | Decision::Repaired => answer.warn(message.clone()),
            Decision::Audited | Decision::Allowed => answer,
        };
        event = Some(record_of(req, &verdict, stamp, message));
    } else if verdict.rule == Rule::UnknownPolicy {
        // The webhook configuration names a policy that is not loaded (changed policies, not
        // registered again): nothing protects the request, so say so instead of failing everyone.
        answer = answer.warn(format!(
            "driftgate: policy {} is not loaded, so nothing was checked; the webhook configuration is out of date (run `driftgate register`)",
            verdict.policy_name().unwrap_or_default()
        ));
    }
    if endpoint.hook == Hook::Mutate {
        let patch = match verdict.drift.as_ref().and_then(|d| d.repair.as_ref()) {
            Some(repair) => Some(repair.clone()),
            None if stamps(set, req, &verdict) => mutate::provenance(req, &req.user_info.username)?,
            None => None,
        };
        if let Some(patch) = &patch {
            answer = answer.with_patch(patch);
        }
    }
    Ok(Outcome { verdict, answered, answer, event })
}

/// Whether a write gets a provenance stamp: every object write a policy with `provenance`
/// admits, whoever makes it, so the stamp is never stale; never a built-in rule's write
/// (finishing a deletion, status) nor a refused one.
fn stamps(set: &PolicySet, req: &AdmissionRequest<'_>, verdict: &Verdict) -> bool {
    let writes_object = matches!(req.operation, Operation::Create | Operation::Update)
        && req.sub_resource.as_deref().is_none_or(str::is_empty);
    writes_object
        && verdict.decision != Decision::Denied
        && verdict.rule != Rule::UnknownPolicy
        && verdict
            .policy_name()
            .and_then(|p| set.index_of(p))
            .and_then(|i| set.get(i))
            .is_some_and(|p| p.spec.provenance)
}

/// The drift event of a verdict.
fn record_of(
    req: &AdmissionRequest<'_>,
    verdict: &Verdict,
    stamp: &EventStamp,
    message: String,
) -> DriftEvent<'static> {
    use std::borrow::Cow::Owned;
    let user = &req.user_info;
    let drift = verdict.drift.clone().unwrap_or_default();
    DriftEvent {
        id: Owned(stamp.id.clone()),
        time: stamp.time,
        decision: verdict.decision,
        mode: verdict.policy.as_ref().map(|p| p.mode).unwrap_or_default(),
        policy: Owned(verdict.policy_name().unwrap_or_default().to_owned()),
        rule: Owned(verdict.rule.to_string()),
        message: Owned(message),
        operation: req.operation,
        dry_run: req.dry_run,
        user: crate::event::User {
            username: Owned(user.username.clone()),
            uid: user.uid.clone().map(Owned),
            groups: user.groups.iter().cloned().map(Owned).collect(),
        },
        resource: crate::event::ResourceRef {
            group: Owned(req.resource.group.clone()),
            version: Owned(req.resource.version.clone()),
            kind: Owned(req.kind.kind.clone()),
            resource: Owned(req.resource.resource.clone()),
            subresource: Owned(req.sub_resource.clone().unwrap_or_default()),
            namespace: Owned(verdict.object.namespace.clone()),
            name: Owned(verdict.object.name.clone()),
        },
        gitops: drift.gitops,
        changes: drift
            .changes
            .items
            .iter()
            .map(|c| crate::event::Change {
                path: Owned(c.path.clone()),
                old: crate::event::Json::from_value(&c.old),
                new: crate::event::Json::from_value(&c.new),
            })
            .collect(),
        changes_omitted: drift.changes.omitted as u64,
        request_uid: Owned(req.uid.clone()),
        trace_id: stamp.trace_id.clone().map(Owned),
        // Who delivered the request is the transport's to say (the handler sets it).
        source: crate::event::Source::default(),
        rate_limited: None,
        grant: drift.grant,
    }
}

/// Parses a raw object of the request (`null` and absent are `None`).
pub(crate) fn parse_object(
    field: &'static str,
    raw: Option<&serde_json::value::RawValue>,
) -> Result<Option<Value>, DecideError> {
    raw.map(|r| serde_json::from_str::<Value>(r.get()))
        .transpose()
        .map(|v| v.filter(|v| !v.is_null()))
        .map_err(|source| DecideError { field, source })
}

#[cfg(test)]
mod tests;
