//! The `BreakGlassGrant` model: named subjects may change a scope of protected objects until an
//! expiry, for a reason, as granted by someone.
//!
//! Grants are namespaced objects in driftgate's own namespace (see the README "Break-glass
//! grants"): that is where the granter role is bound, where driftgate watches, and they go when
//! driftgate is uninstalled. This module owns the pure types, reading a grant from its object
//! ([`Grant::from_object`], which checks every rule: a reason, a scope, an expiry within the
//! cap, a granter) and matching a request against the live grants ([`Grants::matching`]) at a
//! time that is an argument. It must not talk to a cluster (the server's watcher does) nor
//! decide requests (the decision core asks it).

use serde::Deserialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::service_account_of;
use crate::admission::UserInfo;

/// `apiVersion` of a grant.
pub const API_VERSION: &str = "driftgate.dev/v1alpha1";
/// API group of grants.
pub const GROUP: &str = "driftgate.dev";
/// API version (without the group) of grants.
pub const VERSION: &str = "v1alpha1";
/// `kind` of a grant.
pub const KIND: &str = "BreakGlassGrant";
/// The resource (plural) of grants.
pub const PLURAL: &str = "breakglassgrants";
/// The longest a grant may last unless the settings say otherwise.
pub const DEFAULT_MAX_DURATION: Duration = Duration::hours(4);

/// Who a grant lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantSubject {
    /// A user name, as the authenticator gives it.
    User(String),
    /// A group.
    Group(String),
    /// A service account.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl GrantSubject {
    /// Whether `user` is this subject.
    pub fn is(&self, user: &UserInfo) -> bool {
        match self {
            GrantSubject::User(name) => user.username == *name,
            GrantSubject::Group(group) => user.groups.iter().any(|g| g == group),
            GrantSubject::ServiceAccount { namespace, name } => {
                service_account_of(&user.username) == Some((namespace.as_str(), name.as_str()))
            }
        }
    }
}

impl std::fmt::Display for GrantSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantSubject::User(name) => write!(f, "user {name}"),
            GrantSubject::Group(group) => write!(f, "group {group}"),
            GrantSubject::ServiceAccount { namespace, name } => write!(f, "serviceAccount {namespace}/{name}"),
        }
    }
}

/// What a grant covers: every list that is not empty must match (an empty list: any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantScope {
    /// Namespaces of the objects.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Kinds (`VirtualService`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Object names.
    #[serde(default)]
    pub names: Vec<String>,
}

impl GrantScope {
    /// Whether the object `kind` `namespace`/`name` is in scope.
    pub fn covers(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let any_or = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        any_or(&self.namespaces, namespace) && any_or(&self.kinds, kind) && any_or(&self.names, name)
    }

    fn is_unbounded(&self) -> bool {
        self.namespaces.is_empty() && self.kinds.is_empty() && self.names.is_empty()
    }
}

/// The limits every grant is held to (settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantLimits {
    /// The longest a grant may last from its creation.
    pub max_duration: Duration,
    /// Whether a grant may name its own granter among its subjects.
    pub allow_self_grant: bool,
}

impl Default for GrantLimits {
    fn default() -> Self {
        GrantLimits { max_duration: DEFAULT_MAX_DURATION, allow_self_grant: false }
    }
}

/// A checked grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `metadata.name`.
    pub name: String,
    /// Who it lets through.
    pub subjects: Vec<GrantSubject>,
    /// What it covers.
    pub scope: GrantScope,
    /// When it stops matching: `expiresAt`, or creation plus `duration`, never later than
    /// creation plus the cap.
    pub expires: OffsetDateTime,
    /// Why (an incident reference).
    pub reason: String,
    /// Who created it, as driftgate checked it against the creating request's user.
    pub granter: String,
}

/// Why a grant is not valid; its `Display` is what the granter is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The object does not read as a grant.
    #[error("{0}")]
    Malformed(String),
    /// `spec.reason` is empty.
    #[error("spec.reason is required: say why (an incident reference such as INC-4711)")]
    NoReason,
    /// No subjects.
    #[error("spec.subjects names nobody: add a user, group or service account")]
    NoSubjects,
    /// The scope covers everything.
    #[error("spec.scope is required: name at least one of namespaces, kinds or names")]
    NoScope,
    /// Neither or both of `expiresAt` and `duration`.
    #[error("give exactly one of spec.expiresAt (RFC 3339) and spec.duration (e.g. 1h, 30m)")]
    Expiry,
    /// The grant lasts longer than the cap.
    #[error("the grant lasts {asked}, longer than the {cap} driftgate allows (setting break_glass_max_minutes)")]
    TooLong {
        /// How long it asks for, from its creation.
        asked: String,
        /// The cap.
        cap: String,
    },
    /// The grant has expired before it was made.
    #[error("spec.expiresAt {0} is not in the future")]
    InThePast(String),
    /// `spec.granter` is not the creating user.
    #[error("spec.granter must be the user creating the grant, {expected} (it is {given:?})")]
    Granter {
        /// The creating request's user.
        expected: String,
        /// What the grant says.
        given: String,
    },
    /// The grant names its own granter.
    #[error("a grant may not name its own granter ({0}): ask another granter (or set break_glass_allow_self_grant)")]
    SelfGrant(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    subjects: Vec<SubjectSpec>,
    #[serde(default)]
    scope: GrantScope,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    granter: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectSpec {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

impl SubjectSpec {
    fn typed(self) -> Result<GrantSubject, GrantError> {
        if self.name.trim().is_empty() {
            return Err(GrantError::Malformed("a subject has an empty name".to_owned()));
        }
        match (self.kind.as_str(), self.namespace) {
            ("User", None) => Ok(GrantSubject::User(self.name)),
            ("Group", None) => Ok(GrantSubject::Group(self.name)),
            ("ServiceAccount", Some(namespace)) if !namespace.is_empty() => {
                Ok(GrantSubject::ServiceAccount { namespace, name: self.name })
            }
            ("ServiceAccount", _) => {
                Err(GrantError::Malformed(format!("serviceAccount subject {} needs a namespace", self.name)))
            }
            ("User" | "Group", Some(_)) => {
                Err(GrantError::Malformed(format!("{} subject {} takes no namespace", self.kind, self.name)))
            }
            (other, _) => {
                Err(GrantError::Malformed(format!("subject kind {other:?} is not one of User, Group, ServiceAccount")))
            }
        }
    }
}

impl Grant {
    /// Reads and checks the grant `object` (a whole BreakGlassGrant) against `limits`. Its
    /// creation time is `metadata.creationTimestamp`, else `now` (a request being created).
    pub fn from_object(object: &Value, limits: GrantLimits, now: OffsetDateTime) -> Result<Grant, GrantError> {
        let metadata = object.get("metadata");
        let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_owned();
        let created = metadata
            .and_then(|m| m.get("creationTimestamp"))
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .unwrap_or(now);
        let spec = object.get("spec").cloned().unwrap_or(Value::Null);
        let spec: Spec =
            serde_json::from_value(spec).map_err(|e| GrantError::Malformed(format!("spec does not read: {e}")))?;
        let reason = spec.reason.trim().to_owned();
        if reason.is_empty() {
            return Err(GrantError::NoReason);
        }
        let subjects = spec.subjects.into_iter().map(SubjectSpec::typed).collect::<Result<Vec<_>, _>>()?;
        if subjects.is_empty() {
            return Err(GrantError::NoSubjects);
        }
        if spec.scope.is_unbounded() {
            return Err(GrantError::NoScope);
        }
        let asked = match (spec.expires_at.as_deref(), spec.duration.as_deref()) {
            (Some(at), None) => {
                let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).map_err(|e| {
                    GrantError::Malformed(format!("spec.expiresAt {at:?} is not an RFC 3339 time: {e}"))
                })?;
                if at <= created {
                    return Err(GrantError::InThePast(at.to_string()));
                }
                at - created
            }
            (None, Some(text)) => parse_duration(text)?,
            _ => return Err(GrantError::Expiry),
        };
        if asked > limits.max_duration {
            return Err(GrantError::TooLong { asked: human(asked), cap: human(limits.max_duration) });
        }
        let granter = spec.granter.trim().to_owned();
        if granter.is_empty() {
            return Err(GrantError::Malformed("spec.granter is required: the user creating the grant".to_owned()));
        }
        let expires = created
            .checked_add(asked)
            .ok_or(GrantError::TooLong { asked: human(asked), cap: human(limits.max_duration) })?;
        Ok(Grant { name, subjects, scope: spec.scope, expires, reason, granter })
    }

    /// Checks what only the creating request knows: the granter is its user, and (unless
    /// allowed) not among the subjects.
    pub fn check_granter(&self, creator: &UserInfo, limits: GrantLimits) -> Result<(), GrantError> {
        if self.granter != creator.username {
            return Err(GrantError::Granter { expected: creator.username.clone(), given: self.granter.clone() });
        }
        if !limits.allow_self_grant
            && let Some(s) = self.subjects.iter().find(|s| s.is(creator))
        {
            return Err(GrantError::SelfGrant(s.to_string()));
        }
        Ok(())
    }

    /// Whether the grant lets `user` change the object `kind` `namespace`/`name` at `now`.
    pub fn lets(&self, user: &UserInfo, kind: &str, namespace: &str, name: &str, now: OffsetDateTime) -> bool {
        now < self.expires && self.scope.covers(kind, namespace, name) && self.subjects.iter().any(|s| s.is(user))
    }
}

/// The live grants, as the watcher last saw them (expired ones may still be here: they never
/// match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Every valid grant.
    pub items: Vec<Grant>,
    /// The limits grants are held to.
    pub limits: GrantLimits,
}

impl Grants {
    /// No grants (commands that replay requests offline).
    pub fn none() -> Grants {
        Grants::default()
    }

    /// The grant that lets `user` change `kind` `namespace`/`name` at `now`, the one that lasts
    /// longest when several do.
    pub fn matching(
        &self,
        user: &UserInfo,
        kind: &str,
        namespace: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> Option<&Grant> {
        self.items.iter().filter(|g| g.lets(user, kind, namespace, name, now)).max_by_key(|g| g.expires)
    }
}

/// `1h`, `30m`, `1h30m`, `90s`: a positive duration.
pub fn parse_duration(text: &str) -> Result<Duration, GrantError> {
    let bad = |why: &str| GrantError::Malformed(format!("duration {text:?} {why} (e.g. 1h, 30m, 1h30m)"));
    let std = humantime::parse_duration(text.trim()).map_err(|e| bad(&format!("does not read: {e}")))?;
    let d = Duration::try_from(std).map_err(|_| bad("is too long"))?;
    if d <= Duration::ZERO {
        return Err(bad("is not positive"));
    }
    Ok(d)
}

/// `1h 30m` for people.
pub fn human(d: Duration) -> String {
    let secs = u64::try_from(d.whole_seconds()).unwrap_or(0);
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-12-02 14:00 UTC);

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { username: name.into(), uid: None, groups: groups.iter().map(|g| (*g).to_owned()).collect() }
    }

    fn mk_grant(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND,
               "metadata": {"name": "inc-4711", "namespace": "driftgate", "creationTimestamp": "2026-12-02T14:00:00Z"},
               "spec": spec})
    }

    fn alice_in_shop() -> Value {
        mk_grant(json!({"subjects": [{"kind": "User", "name": "alice"}],
                        "scope": {"namespaces": ["shop"], "kinds": ["VirtualService"]},
                        "duration": "1h", "reason": "INC-4711", "granter": "bob"}))
    }

    #[test]
    fn a_grant_lets_exactly_its_subject_change_exactly_its_scope_until_it_expires() {
        let g = Grant::from_object(&alice_in_shop(), GrantLimits::default(), T0).unwrap();
        assert_eq!(g.expires, datetime!(2026-12-02 15:00 UTC));
        let alice = user("alice", &[]);
        let cases = [
            (&alice, "VirtualService", "shop", T0 + Duration::minutes(59), true),
            (&alice, "VirtualService", "shop", T0 + Duration::hours(1), false),
            (&alice, "VirtualService", "payments", T0, false),
            (&alice, "DestinationRule", "shop", T0, false),
        ];
        for (who, kind, ns, at, lets) in cases {
            assert_eq!(g.lets(who, kind, ns, "reviews", at), lets, "{kind} {ns} at {at}");
        }
        assert!(!g.lets(&user("carol", &[]), "VirtualService", "shop", "reviews", T0));
        let grants = Grants { items: vec![g], limits: GrantLimits::default() };
        assert!(grants.matching(&alice, "VirtualService", "shop", "reviews", T0).is_some());
        assert!(grants.matching(&alice, "VirtualService", "shop", "reviews", T0 + Duration::hours(2)).is_none());
    }

    #[test]
    fn groups_service_accounts_and_names_match_as_written() {
        let g = Grant::from_object(
            &mk_grant(json!({"subjects": [{"kind": "Group", "name": "oncall"},
                                          {"kind": "ServiceAccount", "namespace": "ops", "name": "fixer"}],
                             "scope": {"names": ["reviews"]},
                             "expiresAt": "2026-12-02T14:30:00Z", "reason": "r", "granter": "bob"})),
            GrantLimits::default(),
            T0,
        )
        .unwrap();
        assert!(g.lets(&user("x", &["oncall"]), "Gateway", "any", "reviews", T0));
        assert!(g.lets(&user("system:serviceaccount:ops:fixer", &[]), "Gateway", "any", "reviews", T0));
        assert!(!g.lets(&user("system:serviceaccount:ops:other", &[]), "Gateway", "any", "reviews", T0));
        assert!(!g.lets(&user("x", &["oncall"]), "Gateway", "any", "ratings", T0));
    }

    #[test]
    fn invalid_grants_say_what_is_wrong() {
        let limits = GrantLimits::default();
        let with = |patch: Value| {
            let mut g = alice_in_shop();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    g["spec"].as_object_mut().unwrap().remove(k);
                } else {
                    g["spec"][k] = v.clone();
                }
            }
            Grant::from_object(&g, limits, T0).unwrap_err()
        };
        assert_eq!(with(json!({"reason": " "})), GrantError::NoReason);
        assert_eq!(with(json!({"subjects": []})), GrantError::NoSubjects);
        assert_eq!(with(json!({"scope": {}})), GrantError::NoScope);
        assert_eq!(with(json!({"duration": null})), GrantError::Expiry);
        assert_eq!(with(json!({"expiresAt": "2026-12-02T15:00:00Z"})), GrantError::Expiry);
        assert!(matches!(with(json!({"duration": "5h"})), GrantError::TooLong { .. }));
        assert!(with(json!({"duration": "5h"})).to_string().contains("5h, longer than the 4h"));
        assert!(matches!(with(json!({"duration": "soon"})), GrantError::Malformed(_)));
        assert!(matches!(
            with(json!({"duration": null, "expiresAt": "2026-12-02T13:00:00Z"})),
            GrantError::InThePast(_)
        ));
        assert!(matches!(
            with(json!({"subjects": [{"kind": "ServiceAccount", "name": "x"}]})),
            GrantError::Malformed(_)
        ));
        assert!(matches!(with(json!({"subjects": [{"kind": "Robot", "name": "x"}]})), GrantError::Malformed(_)));
        assert!(matches!(with(json!({"extra": 1})), GrantError::Malformed(_)));
        let long = GrantLimits { max_duration: Duration::hours(8), ..limits };
        let mut g = alice_in_shop();
        g["spec"]["duration"] = json!("1h30m");
        assert_eq!(Grant::from_object(&g, long, T0).unwrap().expires, datetime!(2026-12-02 15:30 UTC));
    }

    #[test]
    fn the_granter_is_the_creating_user_and_not_a_subject() {
        let limits = GrantLimits::default();
        let g = Grant::from_object(&alice_in_shop(), limits, T0).unwrap();
        assert!(g.check_granter(&user("bob", &[]), limits).is_ok());
        assert!(matches!(g.check_granter(&user("mallory", &[]), limits), Err(GrantError::Granter { .. })));
        let mut own = alice_in_shop();
        own["spec"]["granter"] = json!("alice");
        let own = Grant::from_object(&own, limits, T0).unwrap();
        assert!(matches!(own.check_granter(&user("alice", &[]), limits), Err(GrantError::SelfGrant(_))));
        let allowed = GrantLimits { allow_self_grant: true, ..limits };
        assert!(own.check_granter(&user("alice", &[]), allowed).is_ok());
    }
}
