//! The decision core: `decide(&PolicySet, &AdmissionRequest) -> Verdict`.
//!
//! PURE: no I/O, no clock, no tokio. The server, `driftgate test` and the benchmarks all call
//! this same function. Each verdict names the policy and the rule that made it; the message a
//! person sees is derived from the verdict ([`Verdict::message`]).
//!
//! Built-in rules come first and cannot be switched off: namespaces that are never protected,
//! status subresource writes, deletions by the garbage collector and the namespace controller.
//! Then every policy that covers the request is evaluated; when several do, the most severe
//! verdict wins (denied > repaired > warned > audited > break-glass > allowed), so every policy
//! must let a request through for it to pass.

pub mod changes;
pub mod lifecycle;
pub mod mutate;
pub mod tracking;

use serde_json::Value;

pub use changes::{Change, Changes};
pub use tracking::GitOpsRef;

use crate::admission::{AdmissionRequest, Operation, UserInfo};
use crate::policy::{BREAK_GLASS_ANNOTATION, DriftPolicy, Exemption, Mode, PolicySet, Scope, service_account_of};

/// Service accounts whose deletions are clean-up, not drift.
const CLEANUP_CONTROLLERS: &[(&str, &str)] =
    &[("kube-system", "generic-garbage-collector"), ("kube-system", "namespace-controller")];

/// Which webhook asks: the answer to a repair-mode policy differs between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The validating webhook (`/validate`), called after all mutations.
    Validate,
    /// The mutating webhook (`/mutate`), which can repair and stamp provenance.
    Mutate,
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
}

/// What happens to a request. Its names (`denied`, `break-glass`, …) are those of drift events
/// and of `driftgate test` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Not drift: let it through, record nothing.
    Allowed,
    /// Drift, refused.
    Denied,
    /// Drift, allowed with a warning.
    Warned,
    /// Drift, allowed silently.
    Audited,
    /// Drift, allowed with a patch that restores the protected fields.
    Repaired,
    /// Drift let through by break-glass.
    BreakGlass,
}

impl Decision {
    /// The name used in drift events: `denied`, `warned`, `audited`, `repaired`, `break-glass`
    /// (and `allowed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Warned => "warned",
            Decision::Audited => "audited",
            Decision::Repaired => "repaired",
            Decision::BreakGlass => "break-glass",
        }
    }

    /// Whether the request is drift and gets a drift event.
    pub fn is_drift(self) -> bool {
        self != Decision::Allowed
    }

    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        self != Decision::Denied
    }

    fn severity(self) -> u8 {
        match self {
            Decision::Allowed => 0,
            Decision::BreakGlass => 1,
            Decision::Audited => 2,
            Decision::Warned => 3,
            Decision::Repaired => 4,
            Decision::Denied => 5,
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What happens.
    pub decision: Decision,
    /// The policy that decided; `None` for built-in rules and unprotected resources.
    pub policy: Option<String>,
    /// The deciding policy's mode.
    pub mode: Option<Mode>,
    /// The rule that decided, e.g. `gitops:serviceAccount argocd/argocd-application-controller`.
    pub rule: String,
    /// The GitOps owner of the object, when tracked.
    pub gitops: Option<GitOpsRef>,
    /// What the request changes (for drift verdicts).
    pub changes: Changes,
    /// Changed paths that a matching exemption did not cover (for a partly exempt change).
    pub not_exempt: Vec<String>,
    /// The break-glass reason from the annotation.
    pub reason: Option<String>,
    /// The object's kind as shown to people (`VirtualService`, `deployments/scale`).
    pub kind: String,
    /// The object's namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The object's name (from `oldObject` for DeleteCollection).
    pub name: String,
}

/// Why a request could not be decided: its objects are not readable JSON objects.
#[derive(Debug, thiserror::Error)]
#[error("failed to read request.{field}: {source}")]
pub struct DecideError {
    field: &'static str,
    #[source]
    source: serde_json::Error,
}

impl Verdict {
    fn new(req: &AdmissionRequest<'_>, decision: Decision, rule: impl Into<String>) -> Self {
        let kind = match &req.sub_resource {
            Some(sub) if !sub.is_empty() => format!("{}/{}", req.resource.resource, sub),
            _ => req.kind.kind.clone(),
        };
        Verdict {
            decision,
            policy: None,
            mode: None,
            rule: rule.into(),
            gitops: None,
            changes: Changes::default(),
            not_exempt: Vec::new(),
            reason: None,
            kind,
            // A Namespace is cluster-scoped, whatever the request's namespace field says.
            namespace: if is_namespace_object(req) { String::new() } else { req.namespace.clone() },
            name: req.name.clone(),
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn object_ref(&self) -> String {
        if self.namespace.is_empty() { self.name.clone() } else { format!("{}/{}", self.namespace, self.name) }
    }

    /// What the person is told (deny message or warning), ending with the drift event id.
    pub fn message(&self, user: &UserInfo, event_id: &str) -> String {
        let object = format!("{} {}", self.kind, self.object_ref());
        let owner = match &self.gitops {
            Some(g) => format!("{object} is managed by GitOps ({})", g.describe()),
            None => format!(
                "{object} is protected by driftgate policy {}: only GitOps may change it",
                self.policy.as_deref().unwrap_or("(built-in)")
            ),
        };
        let who = &user.username;
        let head = match self.decision {
            Decision::Denied => format!("{owner}; direct changes by {who} are not allowed — change it in Git."),
            Decision::Warned | Decision::Audited => {
                format!(
                    "{owner}; this direct change by {who} bypasses Git and is recorded as drift — change it in Git."
                )
            }
            Decision::Repaired => {
                format!("{owner}; the protected fields changed by {who} were restored — change it in Git.")
            }
            Decision::BreakGlass => format!(
                "break-glass change to {object} by {who} ({}) is let through and recorded — bring Git in line.",
                self.reason.as_deref().map_or_else(|| self.rule.clone(), |r| format!("reason: {r}"))
            ),
            Decision::Allowed => format!("{object}: allowed by {}.", self.rule),
        };
        format!("driftgate: {head} {} Drift event {event_id}.", self.attempted())
    }

    /// `Changed: /a (1 → 2), /b (unset → "x") and 3 more.`, or what was attempted.
    fn attempted(&self) -> String {
        const SHOWN: usize = 3;
        if let [only] = self.changes.items.as_slice()
            && only.path.is_empty()
        {
            return "Attempted: delete.".to_owned();
        }
        let mut parts = Vec::new();
        let listed: Vec<&Change> = if self.not_exempt.is_empty() {
            self.changes.items.iter().collect()
        } else {
            self.changes.items.iter().filter(|c| self.not_exempt.contains(&c.path)).collect()
        };
        for c in listed.iter().take(SHOWN) {
            parts.push(format!("{} ({} → {})", c.path, changes::short(&c.old, 40), changes::short(&c.new, 40)));
        }
        let total = if self.not_exempt.is_empty() { self.changes.total() } else { self.not_exempt.len() };
        let mut out = match (self.decision, self.not_exempt.is_empty()) {
            (Decision::Repaired, _) => "Reverted: ".to_owned(),
            (_, true) => "Changed: ".to_owned(),
            (_, false) => "Not exempt: ".to_owned(),
        };
        out.push_str(&parts.join(", "));
        if total > parts.len() {
            out.push_str(&format!(" and {} more", total - parts.len()));
        }
        out.push('.');
        out
    }
}

/// The request's objects, parsed and normalised once, when a rule first needs them.
pub(crate) struct Objects {
    /// `oldObject`, normalised.
    pub(crate) old: Option<Value>,
    /// `object`, normalised.
    pub(crate) new: Option<Value>,
    /// Every change, uncapped.
    pub(crate) all_changes: Vec<Change>,
}

impl Objects {
    fn load(req: &AdmissionRequest<'_>) -> Result<Self, DecideError> {
        let mut old = parse_object("oldObject", req.old_object)?;
        let mut new = parse_object("object", req.object)?;
        old.iter_mut().chain(new.iter_mut()).for_each(changes::normalise);
        let all_changes = changes::changes(req.operation, req.sub_resource.as_deref(), old.as_ref(), new.as_ref());
        Ok(Objects { old, new, all_changes })
    }

    /// The object as it will be (CREATE/UPDATE) or is (DELETE).
    fn subject(&self) -> Option<&Value> {
        self.new.as_ref().or(self.old.as_ref())
    }

    fn gitops(&self) -> Option<GitOpsRef> {
        self.old.as_ref().and_then(tracking::tracked_by).or_else(|| self.new.as_ref().and_then(tracking::tracked_by))
    }
}

/// Whether the request is about a Namespace object itself.
fn is_namespace_object(req: &AdmissionRequest<'_>) -> bool {
    req.resource.group.is_empty() && req.resource.resource == "namespaces"
}

/// The namespace a request is in: a Namespace object counts as being in itself.
fn namespace_of<'r>(req: &'r AdmissionRequest<'_>) -> &'r str {
    if is_namespace_object(req) && !req.name.is_empty() { &req.name } else { &req.namespace }
}

/// The rule named when the policy a webhook was registered for is not loaded.
pub const UNKNOWN_POLICY: &str = "unknown-policy";

/// Decides a request against a policy set, as the validating webhook answers it.
pub fn decide(set: &PolicySet, req: &AdmissionRequest<'_>) -> Result<Verdict, DecideError> {
    decide_by(set, req, Judges::All)
}

/// Decides a request as the validating webhook of `judges` answers it.
pub fn decide_by(set: &PolicySet, req: &AdmissionRequest<'_>, judges: Judges<'_>) -> Result<Verdict, DecideError> {
    decide_at(set, req, Endpoint::Validate, judges).map(|(verdict, _)| verdict)
}

/// Decides a request as `endpoint` answers it; also gives the parsed objects when a rule
/// needed them (the mutating endpoint builds its patches from them).
pub(crate) fn decide_at(
    set: &PolicySet,
    req: &AdmissionRequest<'_>,
    endpoint: Endpoint,
    judges: Judges<'_>,
) -> Result<(Verdict, Option<Objects>), DecideError> {
    let mut ids = Vec::new();
    let namespace = namespace_of(req);
    set.matching(&req.resource.group, &req.kind.kind, &req.resource.resource, namespace, req.operation, &mut ids);
    if let Judges::Policy(name) = judges {
        let Some(only) = set.index_of(name) else {
            let mut v = Verdict::new(req, Decision::Allowed, UNKNOWN_POLICY);
            v.policy = Some(name.to_owned());
            return Ok((v, None));
        };
        ids.retain(|&i| i == only);
    }
    if ids.is_empty() {
        return Ok((Verdict::new(req, Decision::Allowed, "unprotected"), None));
    }
    if let Some(rule) = builtin(set, req) {
        return Ok((Verdict::new(req, Decision::Allowed, rule), None));
    }
    let mut objects: Option<Objects> = None;
    if lifecycle::worth_checking(req) {
        let loaded = Objects::load(req)?;
        let rule = match (&loaded.old, &loaded.new) {
            (Some(old), Some(new)) => lifecycle::allows(&req.user_info.username, old, new),
            _ => None,
        };
        match rule {
            Some(lifecycle::Lifecycle::FinalizerRemoval) => {
                return Ok((Verdict::new(req, Decision::Allowed, "builtin:finalizer-removal"), None));
            }
            Some(lifecycle::Lifecycle::Orphaning) => {
                return Ok((Verdict::new(req, Decision::Allowed, "builtin:garbage-collector-orphaning"), None));
            }
            None => objects = Some(loaded),
        }
    }
    let mut best: Option<Verdict> = None;
    for policy in ids.iter().filter_map(|&i| set.get(i)) {
        let verdict = evaluate(policy, req, endpoint, &mut objects)?;
        if best.as_ref().is_none_or(|b| verdict.decision.severity() > b.decision.severity()) {
            best = Some(verdict);
        }
    }
    let mut verdict = best.unwrap_or_else(|| Verdict::new(req, Decision::Allowed, "unprotected"));
    if verdict.name.is_empty() {
        // DeleteCollection names no object in the request; the object itself has the name.
        if let Some(name) = objects.as_ref().and_then(|o| o.subject()).and_then(|o| o.pointer("/metadata/name")) {
            verdict.name = name.as_str().unwrap_or_default().to_owned();
        }
    }
    Ok((verdict, objects))
}

/// Rules that hold whatever the policies say.
fn builtin(set: &PolicySet, req: &AdmissionRequest<'_>) -> Option<&'static str> {
    if set.is_never_protected(namespace_of(req)) {
        return Some("builtin:never-protected-namespace");
    }
    if req.operation == Operation::Connect {
        return Some("builtin:connect");
    }
    if req.sub_resource.as_deref() == Some("status") {
        return Some("builtin:status-subresource");
    }
    if req.operation == Operation::Delete
        && let Some(sa) = service_account_of(&req.user_info.username)
        && CLEANUP_CONTROLLERS.contains(&sa)
    {
        return Some("builtin:cleanup-controller");
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

fn evaluate(
    policy: &DriftPolicy,
    req: &AdmissionRequest<'_>,
    endpoint: Endpoint,
    objects: &mut Option<Objects>,
) -> Result<Verdict, DecideError> {
    let spec = &policy.spec;
    let decided = |decision, rule: String| {
        let mut v = Verdict::new(req, decision, rule);
        v.policy = Some(policy.metadata.name.0.clone());
        v.mode = Some(spec.mode);
        v
    };
    if let Some(who) = spec.gitops.matching(&req.user_info) {
        return Ok(decided(Decision::Allowed, format!("gitops:{who}")));
    }
    if objects.is_none() {
        *objects = Some(Objects::load(req)?);
    }
    let Some(objects) = objects.as_ref() else { return Ok(decided(Decision::Allowed, "unprotected".into())) };
    let all = &objects.all_changes;
    if req.operation == Operation::Update && all.is_empty() {
        return Ok(decided(Decision::Allowed, "no-change".into()));
    }
    let mut partial: Option<(&str, Vec<String>)> = None;
    for ex in spec.exemptions.iter().filter(|ex| exemption_applies(ex, req)) {
        if ex.paths.is_empty() {
            return Ok(decided(Decision::Allowed, format!("exemption:{}", ex.name)));
        }
        if req.operation != Operation::Update {
            continue;
        }
        let not_exempt: Vec<String> =
            all.iter().filter(|c| !ex.paths.iter().any(|p| p.covers(&c.path))).map(|c| c.path.clone()).collect();
        if not_exempt.is_empty() {
            return Ok(decided(Decision::Allowed, format!("exemption:{}", ex.name)));
        }
        if partial.as_ref().is_none_or(|(_, prev)| not_exempt.len() < prev.len()) {
            partial = Some((ex.name.0.as_str(), not_exempt));
        }
    }
    let gitops = objects.gitops();
    if spec.scope == Scope::Managed && gitops.is_none() {
        return Ok(decided(Decision::Allowed, "scope:untracked".into()));
    }
    let (decision, rule, reason) = if let Some(g) =
        spec.break_glass.groups.iter().find(|g| req.user_info.groups.contains(&g.0))
    {
        (Decision::BreakGlass, format!("break-glass:group {g}"), None)
    } else if let Some(reason) = spec.break_glass.annotation.then(|| break_glass_reason(objects.subject())).flatten() {
        (Decision::BreakGlass, "break-glass:annotation".to_owned(), Some(reason))
    } else {
        let decision = match spec.mode {
            Mode::Enforce => Decision::Denied,
            Mode::Warn => Decision::Warned,
            Mode::Audit => Decision::Audited,
            // Only an UPDATE has old values to restore, and only the mutating webhook can. The
            // validating answer comes after it: a protected change that still arrives there was
            // not repaired (the mutating webhook is not registered, or failed open), so it is refused.
            Mode::Repair if endpoint == Endpoint::Mutate && req.operation == Operation::Update => Decision::Repaired,
            Mode::Repair => Decision::Denied,
        };
        let rule = match &partial {
            Some((name, _)) => format!("exemption:{name}:partial"),
            None => "protected".to_owned(),
        };
        (decision, rule, None)
    };
    let mut v = decided(decision, rule);
    v.gitops = gitops;
    v.changes = Changes::cap(all);
    v.reason = reason;
    if let Some((_, not_exempt)) = partial {
        v.not_exempt = not_exempt;
    }
    Ok(v)
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

fn break_glass_reason(object: Option<&Value>) -> Option<String> {
    let reason = object?.pointer("/metadata/annotations")?.get(BREAK_GLASS_ANNOTATION)?.as_str()?.trim();
    (!reason.is_empty()).then(|| reason.to_owned())
}

#[cfg(test)]
mod tests;
