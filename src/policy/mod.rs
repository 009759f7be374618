//! The `DriftPolicy` model: which mesh resources are protected, who may write them, and how a
//! change by anyone else is answered.
//!
//! Owns the pure types (deserialised straight from YAML, validated while deserialising so that
//! errors carry a line), the indexed [`PolicySet`] the decision core looks policies up in, and
//! loading from a folder or a snapshot of it ([`load`]; the server's hot reload polls
//! [`snapshot`] and loads what changed). It knows nothing of HTTP or the journal.

pub mod grant;
mod load;
pub mod path;
mod set;

pub use load::{LoadError, Loaded, PolicyFileError, Snapshot, load_dir, load_snapshot, load_str, snapshot};
pub use path::PathPattern;
pub use set::{NEVER_PROTECTED_DEFAULT, PolicySet};

/// Loads the policy folder `dir` into an indexed set, with `own_namespace` (driftgate's) never
/// protected: what the server, `driftgate test` and `check` all use.
pub fn load_set(dir: &std::path::Path, own_namespace: &str) -> Result<PolicySet, LoadError> {
    Ok(PolicySet::new(load_dir(dir)?, &[own_namespace.to_owned()]))
}

use serde::{Deserialize, Serialize};

use crate::admission::{Operation, UserInfo};

/// `apiVersion` of a DriftPolicy document.
pub const API_VERSION: &str = "driftgate.dev/v1alpha1";
/// `kind` of a DriftPolicy document.
pub const KIND: &str = "DriftPolicy";
/// The group that break-glass is granted through unless a policy says otherwise.
pub const DEFAULT_BREAK_GLASS_GROUP: &str = "driftgate:break-glass";
/// The annotation that carries a break-glass reason, where a policy switches it on.
pub const BREAK_GLASS_ANNOTATION: &str = "driftgate.dev/break-glass";

/// One `DriftPolicy` document.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftPolicy {
    /// Must be `driftgate.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Must be `DriftPolicy`.
    pub kind: PolicyKind,
    /// The policy's name, used in verdicts, events and messages.
    pub metadata: Metadata,
    /// What the policy protects and how.
    pub spec: PolicySpec,
}

/// The checked `apiVersion` of a policy document.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiVersion;

impl TryFrom<String> for ApiVersion {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value == API_VERSION {
            Ok(ApiVersion)
        } else {
            Err(format!("apiVersion {value:?} is not supported (expected {API_VERSION})"))
        }
    }
}

impl From<ApiVersion> for String {
    fn from(_: ApiVersion) -> String {
        API_VERSION.to_owned()
    }
}

/// The checked `kind` of a policy document.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyKind;

impl TryFrom<String> for PolicyKind {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value == KIND { Ok(PolicyKind) } else { Err(format!("kind {value:?} is not supported (expected {KIND})")) }
    }
}

impl From<PolicyKind> for String {
    fn from(_: PolicyKind) -> String {
        KIND.to_owned()
    }
}

/// Policy metadata.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Unique name of the policy.
    pub name: NonEmpty,
}

/// A string that must not be empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct NonEmpty(pub String);

impl TryFrom<String> for NonEmpty {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.trim().is_empty() { Err("must not be empty") } else { Ok(NonEmpty(value)) }
    }
}

impl From<NonEmpty> for String {
    fn from(value: NonEmpty) -> String {
        value.0
    }
}

impl std::fmt::Display for NonEmpty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a policy protects and how it answers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// How an out-of-band change is answered.
    #[serde(default)]
    pub mode: Mode,
    /// Which objects count: all of the protected kinds, or only those tracked by GitOps.
    #[serde(default)]
    pub scope: Scope,
    /// The protected API groups and kinds.
    pub resources: Vec<ResourceRule>,
    /// Namespaces the policy applies in.
    #[serde(default)]
    pub namespaces: Namespaces,
    /// The GitOps writers: the only identities whose changes are not drift.
    #[serde(default)]
    pub gitops: Identities,
    /// Who may change what without being GitOps.
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
    /// How an emergency change gets through (always recorded).
    #[serde(default)]
    pub break_glass: BreakGlass,
    /// Stamp `driftgate.dev/last-writer` (and the GitOps app) on every admitted write through
    /// the mutating webhook. Off by default: it puts a webhook call on every GitOps write.
    #[serde(default)]
    pub provenance: bool,
}

impl PolicySpec {
    /// Whether the policy needs the mutating webhook: to repair, or to stamp provenance.
    pub fn needs_mutation(&self) -> bool {
        self.mode == Mode::Repair || self.provenance
    }
}

/// How a policy answers an out-of-band change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse the change (403) and record it.
    #[default]
    Enforce,
    /// Allow it with a warning kubectl prints, and record it.
    Warn,
    /// Allow it silently and record it.
    Audit,
    /// Allow it with a patch (mutating endpoint) that restores the protected fields; record it.
    Repair,
}

impl Mode {
    /// The YAML name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
            Mode::Repair => "repair",
        }
    }
}

/// Which objects of the protected kinds a policy covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every object of the protected kinds: nothing changes unless GitOps changes it.
    #[default]
    All,
    /// Only objects that carry Argo CD or Flux tracking metadata.
    Managed,
}

impl Scope {
    /// The YAML name of the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Managed => "managed",
        }
    }
}

/// A protected API group, optionally narrowed to kinds or resources.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRule {
    /// The API group, e.g. `networking.istio.io` (empty string for the core group).
    pub group: String,
    /// Kinds of the group (`VirtualService`); empty or `*` for all.
    #[serde(default)]
    pub kinds: Vec<NonEmpty>,
    /// Plural resource names (`deployments`), which also match their subresources (`deployments/scale`).
    #[serde(default)]
    pub resources: Vec<NonEmpty>,
    /// The operations protected (`CREATE`, `UPDATE`, `DELETE`); empty for all.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

impl ResourceRule {
    /// Whether the rule protects `operation`.
    pub fn covers(&self, operation: Operation) -> bool {
        self.operations.is_empty() || self.operations.contains(&operation)
    }
}

/// Namespaces a policy applies in.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// Only these namespaces (empty: all).
    #[serde(default)]
    pub include: Vec<NonEmpty>,
    /// Never these namespaces.
    #[serde(default)]
    pub exclude: Vec<NonEmpty>,
}

/// A set of identities: service accounts, users and groups.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identities {
    /// Service accounts as `namespace/name`, or `namespace/*` for every one in a namespace.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountRef>,
    /// User names, exactly as the kube-apiserver reports them.
    #[serde(default)]
    pub users: Vec<NonEmpty>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<NonEmpty>,
    /// The field managers (`metadata.managedFields[].manager`) these writers record, for
    /// `driftgate audit`, which reads the last writer of each field from the live object and
    /// sees no identity there [default: [`DEFAULT_GITOPS_FIELD_MANAGERS`]]. Admission ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_managers: Option<Vec<NonEmpty>>,
}

/// The field managers Argo CD and Flux record: Argo CD's `argocd-controller` (its apply, server-
/// and client-side) and `argocd-application-controller` (writes that name no field manager:
/// `Replace=true`, RBAC reconciliation; every write before Argo CD 2.5), Flux's
/// `kustomize-controller` and `helm-controller`.
pub const DEFAULT_GITOPS_FIELD_MANAGERS: &[&str] =
    &["argocd-controller", "argocd-application-controller", "kustomize-controller", "helm-controller"];

impl Identities {
    /// True when no identity is listed (field managers are not identities).
    pub fn is_empty(&self) -> bool {
        self.service_accounts.is_empty() && self.users.is_empty() && self.groups.is_empty()
    }

    /// Whether `manager` is one of the GitOps field managers (the listed ones, else the defaults).
    pub fn is_field_manager(&self, manager: &str) -> bool {
        match &self.field_managers {
            Some(listed) => listed.iter().any(|m| m.0 == manager),
            None => DEFAULT_GITOPS_FIELD_MANAGERS.contains(&manager),
        }
    }

    /// The GitOps field managers, as [`Identities::is_field_manager`] reads them.
    pub fn field_managers(&self) -> Vec<&str> {
        match &self.field_managers {
            Some(listed) => listed.iter().map(|m| m.0.as_str()).collect(),
            None => DEFAULT_GITOPS_FIELD_MANAGERS.to_vec(),
        }
    }

    /// The first listed identity that `user` is, described for a verdict's rule.
    pub fn matching(&self, user: &UserInfo) -> Option<String> {
        if let Some((ns, name)) = service_account_of(&user.username)
            && let Some(sa) = self.service_accounts.iter().find(|sa| sa.matches(ns, name))
        {
            return Some(format!("serviceAccount {sa}"));
        }
        if let Some(u) = self.users.iter().find(|u| u.0 == user.username) {
            return Some(format!("user {u}"));
        }
        self.groups.iter().find(|g| user.groups.contains(&g.0)).map(|g| format!("group {g}"))
    }
}

/// Splits `system:serviceaccount:NS:NAME` into `(NS, NAME)`.
pub fn service_account_of(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then_some((ns, name))
}

/// A service account reference: `namespace/name` or `namespace/*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceAccountRef {
    /// The namespace.
    pub namespace: String,
    /// The name, or `None` for every service account of the namespace.
    pub name: Option<String>,
}

impl ServiceAccountRef {
    /// Whether the service account `ns/name` is this one.
    pub fn matches(&self, ns: &str, name: &str) -> bool {
        self.namespace == ns && self.name.as_deref().is_none_or(|n| n == name)
    }
}

impl TryFrom<String> for ServiceAccountRef {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let bad = || format!("service account {value:?} must be written namespace/name or namespace/*");
        let (ns, name) = value.split_once('/').ok_or_else(bad)?;
        if ns.is_empty() || name.is_empty() || name.contains('/') || ns == "*" {
            return Err(bad());
        }
        let name = (name != "*").then(|| name.to_owned());
        Ok(ServiceAccountRef { namespace: ns.to_owned(), name })
    }
}

impl From<ServiceAccountRef> for String {
    fn from(value: ServiceAccountRef) -> String {
        value.to_string()
    }
}

impl std::fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name.as_deref().unwrap_or("*"))
    }
}

/// Who may change what without being a GitOps writer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exemption {
    /// Name of the exemption, shown in verdicts and events.
    pub name: NonEmpty,
    /// Service accounts the exemption is for (`namespace/name` or `namespace/*`).
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountRef>,
    /// Users the exemption is for.
    #[serde(default)]
    pub users: Vec<NonEmpty>,
    /// Groups the exemption is for.
    #[serde(default)]
    pub groups: Vec<NonEmpty>,
    /// Operations it covers (empty: all).
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Subresources it covers (empty: the object and all its subresources).
    #[serde(default)]
    pub subresources: Vec<NonEmpty>,
    /// JSON-pointer patterns (`*` matches one segment): an UPDATE is exempt only if every changed
    /// path lies under one.
    #[serde(default)]
    pub paths: Vec<PathPattern>,
    /// Only objects whose controller ownerReference is of one of these kinds (and, on UPDATE,
    /// stays the same): progressive-delivery controllers may change what they own, nothing else.
    #[serde(default)]
    pub owners: Vec<OwnerKind>,
}

impl Exemption {
    /// The identities this exemption names.
    pub fn identities(&self) -> Identities {
        Identities {
            service_accounts: self.service_accounts.clone(),
            users: self.users.clone(),
            groups: self.groups.clone(),
            field_managers: None,
        }
    }
}

/// The kind of a controller owner (`ownerReferences[].controller: true`): the API group of its
/// `apiVersion` and its `kind`, e.g. Flagger's `{apiGroup: flagger.app, kind: Canary}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerKind {
    /// The owner's API group (empty for the core group).
    #[serde(default)]
    pub api_group: String,
    /// The owner's kind.
    pub kind: NonEmpty,
}

impl OwnerKind {
    /// Whether an ownerReference with `api_version` (`flagger.app/v1beta1`) and `kind` is one.
    pub fn matches(&self, api_version: &str, kind: &str) -> bool {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        self.api_group == group && self.kind.0 == kind
    }
}

/// How an emergency change gets through.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakGlass {
    /// Members of these groups may change protected objects; each change is recorded.
    #[serde(default = "default_break_glass_groups")]
    pub groups: Vec<NonEmpty>,
    /// Whether `driftgate.dev/break-glass: "<reason>"` on the object lets a change through.
    /// Off by default: anyone who may edit the object could set it.
    #[serde(default)]
    pub annotation: bool,
}

fn default_break_glass_groups() -> Vec<NonEmpty> {
    vec![NonEmpty(DEFAULT_BREAK_GLASS_GROUP.to_owned())]
}

impl Default for BreakGlass {
    fn default() -> Self {
        BreakGlass { groups: default_break_glass_groups(), annotation: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { username: name.into(), uid: None, groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    #[test]
    fn service_account_refs_parse_and_match() {
        let exact = ServiceAccountRef::try_from("argocd/argocd-application-controller".to_owned()).unwrap();
        assert!(exact.matches("argocd", "argocd-application-controller"));
        assert!(!exact.matches("argocd", "other"));
        let any = ServiceAccountRef::try_from("tenant-a/*".to_owned()).unwrap();
        assert!(any.matches("tenant-a", "sync"));
        assert!(!any.matches("tenant-b", "sync"));
        for bad in ["argocd", "/x", "x/", "*/*", "a/b/c", "system:serviceaccount:a:b"] {
            assert!(ServiceAccountRef::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn identities_match_service_accounts_users_and_groups() {
        let ids = Identities {
            service_accounts: vec![ServiceAccountRef::try_from("flux-system/*".to_owned()).unwrap()],
            users: vec![NonEmpty("ci@example.com".into())],
            groups: vec![NonEmpty("gitops".into())],
            field_managers: None,
        };
        let sa = mk_user("system:serviceaccount:flux-system:kustomize-controller", &[]);
        assert_eq!(ids.matching(&sa).as_deref(), Some("serviceAccount flux-system/*"));
        assert_eq!(ids.matching(&mk_user("ci@example.com", &[])).as_deref(), Some("user ci@example.com"));
        assert_eq!(ids.matching(&mk_user("bob", &["gitops"])).as_deref(), Some("group gitops"));
        assert_eq!(ids.matching(&mk_user("alice@example.com", &["devs"])), None);
        // A user named like a service account, but without the prefix, is not one.
        assert_eq!(ids.matching(&mk_user("flux-system:kustomize-controller", &[])), None);
    }

    #[test]
    fn owner_kinds_match_group_and_kind() {
        let canary = OwnerKind { api_group: "flagger.app".into(), kind: NonEmpty("Canary".into()) };
        assert!(canary.matches("flagger.app/v1beta1", "Canary"));
        assert!(!canary.matches("flagger.app/v1beta1", "MetricTemplate"));
        assert!(!canary.matches("example.com/v1", "Canary"));
        let core = OwnerKind { api_group: String::new(), kind: NonEmpty("Service".into()) };
        assert!(core.matches("v1", "Service"));
    }
}
