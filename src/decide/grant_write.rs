//! How a write to a BreakGlassGrant is judged (the grants webhook entry, `/grants`): a new grant
//! must read as a valid grant within the limits and name the creating user as its granter (and,
//! unless allowed, not among its subjects); a grant's spec never changes (revoke it and grant
//! anew); a delete (a revocation) is always let through. Every one of them is recorded. PURE:
//! the time is an argument.

use serde_json::Value;
use time::OffsetDateTime;

use super::verdict::{Drift, Judge, Rule, Verdict};
use super::{DecideError, parse_object};
use crate::admission::{AdmissionRequest, Operation};
use crate::event::{Decision, GrantRef};
use crate::policy::Mode;
use crate::policy::grant::{self, Grant, GrantLimits, Grants};

/// The name drift events of grant writes give as their policy.
pub const GRANTS_POLICY: &str = "break-glass-grants";

/// Judges a request that came to the grants endpoint at `now`.
pub(crate) fn judge(grants: &Grants, req: &AdmissionRequest<'_>, now: OffsetDateTime) -> Result<Verdict, DecideError> {
    if req.resource.group != grant::GROUP || req.resource.resource != grant::PLURAL {
        return Ok(Verdict::new(req, Decision::Allowed, Rule::Unprotected));
    }
    let limits = grants.limits;
    let new = parse_object("object", req.object)?;
    let old = parse_object("oldObject", req.old_object)?;
    let (decision, rule, about) = match req.operation {
        Operation::Create => {
            let checked = new
                .as_ref()
                .ok_or_else(|| grant::GrantError::Malformed("the request has no object".to_owned()))
                .and_then(|object| Grant::from_object(object, limits, now))
                .and_then(|g| g.check_granter(&req.user_info, limits).map(|()| g));
            match checked {
                Ok(g) => (Decision::Audited, Rule::GrantChange(Operation::Create), Some(reference(&g))),
                Err(e) => {
                    (Decision::Denied, Rule::GrantRefused(e.to_string()), new.as_ref().map(|o| lenient(o, limits, now)))
                }
            }
        }
        Operation::Update => {
            let spec = |o: &Option<Value>| o.as_ref().and_then(|o| o.get("spec")).cloned();
            let about = old.as_ref().map(|o| lenient(o, limits, now));
            if spec(&old) == spec(&new) {
                (Decision::Audited, Rule::GrantChange(Operation::Update), about)
            } else {
                let why = "a grant's spec cannot change: revoke it (driftgate break-glass revoke NAME) and grant anew";
                (Decision::Denied, Rule::GrantRefused(why.to_owned()), about)
            }
        }
        Operation::Delete => {
            (Decision::Audited, Rule::GrantChange(Operation::Delete), old.as_ref().map(|o| lenient(o, limits, now)))
        }
        Operation::Connect => return Ok(Verdict::new(req, Decision::Allowed, Rule::Connect)),
    };
    let mut verdict = Verdict::new(req, decision, rule);
    verdict.policy = Some(Judge { name: GRANTS_POLICY.to_owned(), mode: Mode::Enforce });
    verdict.drift = Some(Drift { grant: about, ..Drift::default() });
    Ok(verdict)
}

/// How a drift event names a checked grant.
pub(crate) fn reference(g: &Grant) -> GrantRef {
    GrantRef { name: g.name.clone(), reason: g.reason.clone(), granter: g.granter.clone(), expires_at: Some(g.expires) }
}

/// How a drift event names a stored grant, valid or not (one made under other limits).
fn lenient(object: &Value, limits: GrantLimits, now: OffsetDateTime) -> GrantRef {
    if let Ok(g) = Grant::from_object(object, GrantLimits { max_duration: time::Duration::MAX, ..limits }, now) {
        return reference(&g);
    }
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let spec = object.get("spec");
    GrantRef {
        name: text(object.get("metadata").and_then(|m| m.get("name"))),
        reason: text(spec.and_then(|s| s.get("reason"))),
        granter: text(spec.and_then(|s| s.get("granter"))),
        expires_at: None,
    }
}
