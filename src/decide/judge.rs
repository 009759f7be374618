//! How a request is judged: the policies that cover it, the built-in rules that hold whatever
//! they say, then each policy in turn (GitOps writer → exemption → no change → scope →
//! break-glass → the mode); the most severe verdict wins. Objects are parsed only when a rule
//! first needs them. PURE.

use serde_json::Value;
use serde_json::value::RawValue;

use super::changes::{Change, Changes};
use super::doc::{self, Doc};
use super::verdict::{Drift, Judge, Rule, Verdict};
use super::{DecideError, Hook, Judges, grant_write, lifecycle, mutate, tracking};
use crate::admission::{AdmissionRequest, Operation};
use crate::event::{Decision, GitOpsRef};
use crate::policy::grant::Grants;
use crate::policy::path::covers_change;
use crate::policy::{BREAK_GLASS_ANNOTATION, DriftPolicy, Exemption, Mode, PolicySet, Scope, service_account_of};

/// Service accounts whose deletions are clean-up, not drift.
const CLEANUP_CONTROLLERS: &[(&str, &str)] =
    &[("kube-system", "generic-garbage-collector"), ("kube-system", "namespace-controller")];

/// The request's objects, read once when a rule first needs them: metadata as values, the rest
/// raw (see [`Doc`]).
pub(crate) struct Objects<'r> {
    /// `oldObject`.
    pub(crate) old: Option<Doc<'r>>,
    /// `object`.
    pub(crate) new: Option<Doc<'r>>,
    /// Every change, uncapped.
    pub(crate) all_changes: Vec<Change>,
}

impl<'r> Objects<'r> {
    fn load(req: &AdmissionRequest<'r>) -> Result<Self, DecideError> {
        let old = read("oldObject", req.old_object)?;
        let new = read("object", req.object)?;
        let all_changes = doc::changes(req.operation, req.sub_resource.as_deref(), old.as_ref(), new.as_ref())
            .map_err(|source| DecideError { field: "object", source })?;
        Ok(Objects { old, new, all_changes })
    }

    /// The metadata of the object as it will be (CREATE/UPDATE) or is (DELETE).
    fn subject(&self) -> Option<&Value> {
        self.new.as_ref().or(self.old.as_ref())?.metadata.as_ref()
    }

    /// The object's `metadata.uid` (the stored object's, else the new one's).
    fn uid(&self) -> Option<String> {
        self.old.as_ref().and_then(|d| d.uid.clone()).or_else(|| self.new.as_ref().and_then(|d| d.uid.clone()))
    }

    /// The object's name: the request's, or for DeleteCollection (which names none) the
    /// object's own.
    fn name<'a>(&'a self, req: &'a AdmissionRequest<'_>) -> &'a str {
        match req.name.as_str() {
            "" => self.subject().and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default(),
            name => name,
        }
    }

    fn gitops(&self) -> Option<GitOpsRef> {
        let tracked = |d: &Option<Doc<'_>>| d.as_ref()?.metadata.as_ref().and_then(tracking::tracked_by_metadata);
        tracked(&self.old).or_else(|| tracked(&self.new))
    }
}

/// The namespace a request is in: a Namespace object counts as being in itself.
fn namespace_of<'r>(req: &'r AdmissionRequest<'_>) -> &'r str {
    if req.is_namespace_object() && !req.name.is_empty() { &req.name } else { &req.namespace }
}

/// Reads a raw object of the request (`null` and absent are `None`).
fn read<'r>(field: &'static str, raw: Option<&'r RawValue>) -> Result<Option<Doc<'r>>, DecideError> {
    match raw.map(RawValue::get).filter(|text| *text != "null") {
        None => Ok(None),
        Some(text) => Doc::parse(text).map(Some).map_err(|source| DecideError { field, source }),
    }
}

/// What a request is judged against besides the policies: the live grants, and the time.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) grants: &'a Grants,
    pub(crate) now: time::OffsetDateTime,
}

/// Judges a request as `hook` of `judges` answers it.
pub(crate) fn judge(
    set: &PolicySet,
    req: &AdmissionRequest<'_>,
    hook: Hook,
    judges: Judges<'_>,
    cx: Context<'_>,
) -> Result<Verdict, DecideError> {
    if judges == Judges::Grants {
        return grant_write::judge(cx.grants, req, cx.now);
    }
    let mut ids = Vec::new();
    let namespace = namespace_of(req);
    set.matching(&req.resource.group, &req.kind.kind, &req.resource.resource, namespace, req.operation, &mut ids);
    if let Judges::Policy(name) = judges {
        let Some(only) = set.index_of(name) else {
            let mut v = Verdict::new(req, Decision::Allowed, Rule::UnknownPolicy);
            v.policy = Some(Judge { name: name.to_owned(), mode: Mode::default() });
            return Ok(v);
        };
        ids.retain(|&i| i == only);
    }
    if ids.is_empty() {
        return Ok(Verdict::new(req, Decision::Allowed, Rule::Unprotected));
    }
    if let Some(rule) = builtin(set, req) {
        return Ok(Verdict::new(req, Decision::Allowed, rule));
    }
    let mut objects: Option<Objects<'_>> = None;
    if lifecycle::worth_checking(req) {
        let loaded = Objects::load(req)?;
        let finishing = match (&loaded.old, &loaded.new) {
            (Some(old), Some(new)) => lifecycle::allows(&req.user_info.username, old, new),
            _ => None,
        };
        match finishing {
            Some(lifecycle::Lifecycle::FinalizerRemoval) => {
                return Ok(Verdict::new(req, Decision::Allowed, Rule::FinalizerRemoval));
            }
            Some(lifecycle::Lifecycle::Orphaning) => {
                return Ok(Verdict::new(req, Decision::Allowed, Rule::GarbageCollectorOrphaning));
            }
            None => objects = Some(loaded),
        }
    }
    let mut best: Option<Verdict> = None;
    for policy in ids.iter().filter_map(|&i| set.get(i)) {
        let verdict = evaluate(policy, req, hook, &mut objects, cx)?;
        if best.as_ref().is_none_or(|b| verdict.decision.severity() > b.decision.severity()) {
            best = Some(verdict);
        }
    }
    let mut verdict = best.unwrap_or_else(|| Verdict::new(req, Decision::Allowed, Rule::Unprotected));
    verdict.object.uid = objects.as_ref().and_then(Objects::uid);
    if verdict.object.name.is_empty()
        && let Some(objects) = &objects
    {
        verdict.object.name = objects.name(req).to_owned();
    }
    Ok(verdict)
}

/// Rules that hold whatever the policies say.
fn builtin(set: &PolicySet, req: &AdmissionRequest<'_>) -> Option<Rule> {
    if set.is_never_protected(namespace_of(req)) {
        return Some(Rule::NeverProtectedNamespace);
    }
    if req.operation == Operation::Connect {
        return Some(Rule::Connect);
    }
    if req.sub_resource.as_deref() == Some("status") {
        return Some(Rule::StatusSubresource);
    }
    if req.operation == Operation::Delete
        && let Some(sa) = service_account_of(&req.user_info.username)
        && CLEANUP_CONTROLLERS.contains(&sa)
    {
        return Some(Rule::CleanupController);
    }
    None
}

fn exemption_applies(ex: &Exemption, req: &AdmissionRequest<'_>) -> bool {
    let user = &req.user_info;
    let who = service_account_of(&user.username)
        .is_some_and(|(ns, n)| ex.service_accounts.iter().any(|s| s.matches(ns, n)))
        || ex.users.iter().any(|u| u.0 == user.username)
        || ex.groups.iter().any(|g| user.groups.contains(&g.0));
    let op = ex.operations.is_empty() || ex.operations.contains(&req.operation);
    let sub = ex.subresources.is_empty()
        || req.sub_resource.as_deref().is_some_and(|s| ex.subresources.iter().any(|e| e.0 == s));
    who && op && sub
}

/// Whether an exemption's `owners` allow the request: the object's controller ownerReference
/// (the new object's on CREATE, the stored one's otherwise) is of one of its kinds, and an UPDATE
/// leaves it as it was, so nobody claims an exemption by writing an ownerReference.
fn owned_as(ex: &Exemption, operation: Operation, objects: &Objects<'_>) -> bool {
    if ex.owners.is_empty() {
        return true;
    }
    let owner = match operation {
        Operation::Create => controller_of(objects.new.as_ref()),
        Operation::Update => {
            let old = controller_of(objects.old.as_ref());
            if old != controller_of(objects.new.as_ref()) {
                return false;
            }
            old
        }
        Operation::Delete => controller_of(objects.old.as_ref()),
        Operation::Connect => None,
    };
    owner.is_some_and(|o| {
        ex.owners.iter().any(|k| k.matches(o["apiVersion"].as_str().unwrap_or(""), o["kind"].as_str().unwrap_or("")))
    })
}

/// The controller ownerReference of an object (`controller: true`).
fn controller_of<'d>(object: Option<&'d Doc<'_>>) -> Option<&'d Value> {
    object?.meta("ownerReferences")?.as_array()?.iter().find(|r| r["controller"] == Value::Bool(true))
}

/// One policy's verdict.
fn evaluate<'r>(
    policy: &DriftPolicy,
    req: &AdmissionRequest<'r>,
    hook: Hook,
    objects: &mut Option<Objects<'r>>,
    cx: Context<'_>,
) -> Result<Verdict, DecideError> {
    let spec = &policy.spec;
    let decided = |decision, rule| {
        let mut v = Verdict::new(req, decision, rule);
        v.policy = Some(Judge { name: policy.metadata.name.0.clone(), mode: spec.mode });
        v
    };
    if let Some(who) = spec.gitops.matching(&req.user_info) {
        return Ok(decided(Decision::Allowed, Rule::Gitops(who)));
    }
    if objects.is_none() {
        *objects = Some(Objects::load(req)?);
    }
    let Some(objects) = objects.as_ref() else { return Ok(decided(Decision::Allowed, Rule::Unprotected)) };
    let all = &objects.all_changes;
    if req.operation == Operation::Update && all.is_empty() {
        return Ok(decided(Decision::Allowed, Rule::NoChange));
    }
    let mut partial: Option<(&str, Vec<String>)> = None;
    for ex in spec.exemptions.iter().filter(|ex| exemption_applies(ex, req) && owned_as(ex, req.operation, objects)) {
        if ex.paths.is_empty() {
            return Ok(decided(Decision::Allowed, Rule::Exemption(ex.name.0.clone())));
        }
        if req.operation != Operation::Update {
            continue;
        }
        let not_exempt: Vec<String> =
            all.iter().filter(|c| !covers_change(&ex.paths, &c.path, &c.old, &c.new)).map(|c| c.path.clone()).collect();
        if not_exempt.is_empty() {
            return Ok(decided(Decision::Allowed, Rule::Exemption(ex.name.0.clone())));
        }
        if partial.as_ref().is_none_or(|(_, prev)| not_exempt.len() < prev.len()) {
            partial = Some((ex.name.0.as_str(), not_exempt));
        }
    }
    let gitops = objects.gitops();
    if spec.scope == Scope::Managed && gitops.is_none() {
        return Ok(decided(Decision::Allowed, Rule::ScopeUntracked));
    }
    let mut drift = Drift { gitops, changes: Changes::cap(all), ..Drift::default() };
    let (mut decision, mut rule) = if let Some(g) =
        spec.break_glass.groups.iter().find(|g| req.user_info.groups.contains(&g.0))
    {
        (Decision::BreakGlass, Rule::BreakGlassGroup(g.0.clone()))
    } else if let Some(g) = granted(cx, req, objects) {
        drift.reason = Some(g.reason.clone());
        drift.grant = Some(grant_write::reference(g));
        (Decision::BreakGlass, Rule::BreakGlassGrant(g.name.clone()))
    } else if let Some(reason) = spec.break_glass.annotation.then(|| break_glass_reason(objects.subject())).flatten() {
        drift.reason = Some(reason);
        (Decision::BreakGlass, Rule::BreakGlassAnnotation)
    } else {
        let decision = match spec.mode {
            Mode::Enforce => Decision::Denied,
            Mode::Warn => Decision::Warned,
            Mode::Audit => Decision::Audited,
            // Only an UPDATE has old values to restore, and only the mutating webhook can. The
            // validating answer comes after it: a protected change that still arrives there was
            // not repaired (the mutating webhook is not registered, or failed open), so it is refused.
            Mode::Repair if hook == Hook::Mutate && req.operation == Operation::Update => Decision::Repaired,
            Mode::Repair => Decision::Denied,
        };
        let rule = match &partial {
            Some((name, _)) => Rule::ExemptionPartial((*name).to_owned()),
            None => Rule::Protected,
        };
        (decision, rule)
    };
    if let Some((_, not_exempt)) = partial {
        drift.not_exempt = not_exempt;
    }
    if decision == Decision::Repaired {
        let stamp = spec.provenance.then_some(&req.user_info.username);
        let whole = |d: &Option<Doc<'_>>, field| {
            d.as_ref().map(Doc::to_value).transpose().map_err(|source| DecideError { field, source })
        };
        let (old_n, new_n) = (whole(&objects.old, "oldObject")?, whole(&objects.new, "object")?);
        match mutate::repair(req, old_n.as_ref(), new_n.as_ref(), &drift.not_exempt, stamp)? {
            Some(patch) => drift.repair = Some(patch),
            // The exempt changes could not be kept apart from the rest: refuse rather than guess.
            // The validating webhook denies what arrives.
            None => (decision, rule) = (Decision::Denied, Rule::RepairNotPossible),
        }
    }
    let mut v = decided(decision, rule);
    v.drift = Some(drift);
    Ok(v)
}

/// The grant that lets the request's user change its object now.
fn granted<'g>(
    cx: Context<'g>,
    req: &AdmissionRequest<'_>,
    objects: &Objects<'_>,
) -> Option<&'g crate::policy::grant::Grant> {
    cx.grants.matching(&req.user_info, &req.kind.kind, namespace_of(req), objects.name(req), cx.now)
}

fn break_glass_reason(metadata: Option<&Value>) -> Option<String> {
    let reason = metadata?.get("annotations")?.get(BREAK_GLASS_ANNOTATION)?.as_str()?.trim();
    (!reason.is_empty()).then(|| reason.to_owned())
}
