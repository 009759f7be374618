//! What the core concludes about a request: the decision, the rule that made it (a typed
//! [`Rule`] with the names users see in events and `driftgate test` files), the policy that
//! judged it, the object, and for drift what changed; and the message a person is told.

use std::fmt;

use json_patch::Patch;

use super::changes::{self, Change, Changes};
use crate::admission::{AdmissionRequest, Operation, UserInfo};
use crate::event::{Decision, GitOpsRef, GrantRef};
use crate::policy::Mode;

/// The rule that made a decision. Its [`fmt::Display`] is the name in drift events and test
/// files: `protected`, `gitops:serviceAccount argocd/argocd-application-controller`, ….
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// No policy protects this kind (or operation) here.
    Unprotected,
    /// The webhook's policy is not loaded.
    UnknownPolicy,
    /// kube-system or driftgate's own namespace.
    NeverProtectedNamespace,
    /// A CONNECT (exec, port-forward) is never a change.
    Connect,
    /// Writes to the status subresource.
    StatusSubresource,
    /// DELETE by the garbage collector or the namespace controller.
    CleanupController,
    /// Finalizers removed from an object being deleted.
    FinalizerRemoval,
    /// ownerReferences removed by the garbage collector.
    GarbageCollectorOrphaning,
    /// A GitOps writer of the policy (`serviceAccount ns/name`, `user u`, `group g`).
    Gitops(String),
    /// An exemption covered the whole change.
    Exemption(String),
    /// An exemption covered part of the change; the rest is drift.
    ExemptionPartial(String),
    /// Nothing changed but server-managed metadata.
    NoChange,
    /// `scope: managed`, and the object is not tracked by GitOps.
    ScopeUntracked,
    /// Break-glass by membership of this group.
    BreakGlassGroup(String),
    /// Break-glass by the object's annotation.
    BreakGlassAnnotation,
    /// Break-glass through this BreakGlassGrant.
    BreakGlassGrant(String),
    /// A valid create, update of metadata, or delete of a BreakGlassGrant: recorded.
    GrantChange(Operation),
    /// A BreakGlassGrant refused, and why.
    GrantRefused(String),
    /// A protected change: the policy's mode answers it.
    Protected,
    /// Repair could not keep the exempt changes apart from the rest.
    RepairNotPossible,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Unprotected => f.write_str("unprotected"),
            Rule::UnknownPolicy => f.write_str("unknown-policy"),
            Rule::NeverProtectedNamespace => f.write_str("builtin:never-protected-namespace"),
            Rule::Connect => f.write_str("builtin:connect"),
            Rule::StatusSubresource => f.write_str("builtin:status-subresource"),
            Rule::CleanupController => f.write_str("builtin:cleanup-controller"),
            Rule::FinalizerRemoval => f.write_str("builtin:finalizer-removal"),
            Rule::GarbageCollectorOrphaning => f.write_str("builtin:garbage-collector-orphaning"),
            Rule::Gitops(who) => write!(f, "gitops:{who}"),
            Rule::Exemption(name) => write!(f, "exemption:{name}"),
            Rule::ExemptionPartial(name) => write!(f, "exemption:{name}:partial"),
            Rule::NoChange => f.write_str("no-change"),
            Rule::ScopeUntracked => f.write_str("scope:untracked"),
            Rule::BreakGlassGroup(group) => write!(f, "break-glass:group {group}"),
            Rule::BreakGlassAnnotation => f.write_str("break-glass:annotation"),
            Rule::BreakGlassGrant(name) => write!(f, "break-glass:grant {name}"),
            Rule::GrantChange(op) => write!(f, "grant:{}", op.as_str().to_lowercase()),
            Rule::GrantRefused(_) => f.write_str("grant:refused"),
            Rule::Protected => f.write_str("protected"),
            Rule::RepairNotPossible => f.write_str("repair:not-possible"),
        }
    }
}

impl Rule {
    /// Whether the rule holds whatever the policies say (a built-in rule).
    pub fn is_builtin(&self) -> bool {
        matches!(
            self,
            Rule::NeverProtectedNamespace
                | Rule::Connect
                | Rule::StatusSubresource
                | Rule::CleanupController
                | Rule::FinalizerRemoval
                | Rule::GarbageCollectorOrphaning
        )
    }
}

/// The policy that judged a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judge {
    /// The policy's name.
    pub name: String,
    /// Its mode.
    pub mode: Mode,
}

/// The object a request is about, as people read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `VirtualService`, or `deployments/scale` for a subresource.
    pub kind: String,
    /// The namespace (empty for cluster-scoped objects, a Namespace included).
    pub namespace: String,
    /// The name (from the object itself for DeleteCollection).
    pub name: String,
    /// The object's `metadata.uid`, when its objects were read (Kubernetes Events name it, so
    /// `kubectl describe` lists them).
    pub uid: Option<String>,
}

impl Subject {
    pub(crate) fn of(req: &AdmissionRequest<'_>) -> Subject {
        let kind = match &req.sub_resource {
            Some(sub) if !sub.is_empty() => format!("{}/{}", req.resource.resource, sub),
            _ => req.kind.kind.clone(),
        };
        // A Namespace is cluster-scoped, whatever the request's namespace field says.
        let namespace = if req.is_namespace_object() { String::new() } else { req.namespace.clone() };
        Subject { kind, namespace, name: req.name.clone(), uid: None }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn object_ref(&self) -> String {
        if self.namespace.is_empty() { self.name.clone() } else { format!("{}/{}", self.namespace, self.name) }
    }
}

/// What a drift verdict knows about the change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Drift {
    /// The GitOps owner of the object, when tracked.
    pub gitops: Option<GitOpsRef>,
    /// What the request changes (capped).
    pub changes: Changes,
    /// Changed paths that a matching exemption did not cover (for a partly exempt change).
    pub not_exempt: Vec<String>,
    /// The break-glass reason from the annotation or the grant.
    pub reason: Option<String>,
    /// The BreakGlassGrant a change went through, or the grant a grant's write is about.
    pub grant: Option<GrantRef>,
    /// The patch that repairs the change (repair mode, at the mutating webhook).
    pub repair: Option<Patch>,
}

/// The conclusion about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What happens.
    pub decision: Decision,
    /// The rule that decided.
    pub rule: Rule,
    /// The policy that decided; `None` for built-in rules and unprotected resources.
    pub policy: Option<Judge>,
    /// The object.
    pub object: Subject,
    /// What changed, for a drift verdict.
    pub drift: Option<Drift>,
}

impl Verdict {
    pub(crate) fn new(req: &AdmissionRequest<'_>, decision: Decision, rule: Rule) -> Self {
        Verdict { decision, rule, policy: None, object: Subject::of(req), drift: None }
    }

    /// The deciding policy's name.
    pub fn policy_name(&self) -> Option<&str> {
        self.policy.as_ref().map(|p| p.name.as_str())
    }

    /// The break-glass reason from the annotation.
    pub fn reason(&self) -> Option<&str> {
        self.drift.as_ref().and_then(|d| d.reason.as_deref())
    }

    /// What the person is told (deny message or warning), ending with the drift event id.
    pub fn message(&self, user: &UserInfo, event_id: &str) -> String {
        if let Some(message) = self.grant_message(user) {
            return format!("driftgate: {message} Drift event {event_id}.");
        }
        let object = format!("{} {}", self.object.kind, self.object.object_ref());
        let drift = self.drift.as_ref();
        let owner = match drift.and_then(|d| d.gitops.as_ref()) {
            Some(g) => format!("{object} is managed by GitOps ({})", g.describe()),
            None => format!(
                "{object} is protected by driftgate policy {}: only GitOps may change it",
                self.policy_name().unwrap_or("(built-in)")
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
                match (drift.and_then(|d| d.grant.as_ref()), self.reason()) {
                    (Some(g), _) => format!("grant {} by {}{}, reason: {}", g.name, g.granter, until(g), g.reason),
                    (None, Some(r)) => format!("reason: {r}"),
                    (None, None) => self.rule.to_string(),
                }
            ),
            Decision::Allowed => format!("{object}: allowed by {}.", self.rule),
        };
        let attempted = drift.map_or_else(|| "Changed: nothing.".to_owned(), |d| attempted(self.decision, d));
        format!("driftgate: {head} {attempted} Drift event {event_id}.")
    }
}

impl Verdict {
    /// What a granter is told about a BreakGlassGrant's own write.
    fn grant_message(&self, user: &UserInfo) -> Option<String> {
        let grant = format!("BreakGlassGrant {}", self.object.object_ref());
        let who = &user.username;
        let g = self.drift.as_ref().and_then(|d| d.grant.as_ref());
        Some(match (&self.rule, g) {
            (Rule::GrantRefused(why), _) => format!("{grant} is refused: {why}."),
            (Rule::GrantChange(Operation::Create), Some(g)) => format!(
                "{grant} granted by {who}{}, reason: {} — recorded; it matches nothing once it expires.",
                until(g),
                g.reason
            ),
            (Rule::GrantChange(Operation::Delete), _) => format!("{grant} revoked by {who} — recorded."),
            (Rule::GrantChange(_), _) => format!("{grant}: metadata changed by {who} — recorded."),
            _ => return None,
        })
    }
}

/// ` until 2026-12-02T15:00:00Z`, or nothing.
fn until(g: &GrantRef) -> String {
    g.expires_at
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .map(|t| format!(" until {t}"))
        .unwrap_or_default()
}

/// `Changed: /a (1 → 2), /b (unset → "x") and 3 more.`, or what was attempted.
fn attempted(decision: Decision, drift: &Drift) -> String {
    const SHOWN: usize = 3;
    let (items, not_exempt) = (&drift.changes.items, &drift.not_exempt);
    if let [only] = items.as_slice()
        && only.path.is_empty()
    {
        return "Attempted: delete.".to_owned();
    }
    let listed: Vec<&Change> = if not_exempt.is_empty() {
        items.iter().collect()
    } else {
        items.iter().filter(|c| not_exempt.contains(&c.path)).collect()
    };
    let parts: Vec<String> = listed
        .iter()
        .take(SHOWN)
        .map(|c| format!("{} ({} → {})", c.path, changes::short(&c.old, 40), changes::short(&c.new, 40)))
        .collect();
    let total = if not_exempt.is_empty() { drift.changes.total() } else { not_exempt.len() };
    let mut out = match (decision, not_exempt.is_empty()) {
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
