//! The drift event: one JSON object a line in the journal, the record of an out-of-band change.
//!
//! One typed shape for everyone: the decision core builds it (with the id and time it is given),
//! the journal stores its line, and `driftgate review` and every sink read
//! it back with [`DriftEvent::parse`]. Decisions, modes, operations and the time are typed;
//! strings and the changes' values borrow from the line they are read from, so reading a
//! journal of millions of events copies little. Field names are DESIGN.md's: users' tooling reads
//! them. It must not decide anything: it records what the core decided, and holds the words it
//! records that in ([`Decision`], [`GitOpsRef`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::admission::Operation;
use crate::policy::Mode;

/// What happens to a request. Its names (`denied`, `break-glass`, …) are those of drift events
/// and of `driftgate test` files; every decision but `allowed` is drift and gets an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// How severe it is: when several policies judge a request, the most severe verdict wins.
    pub fn severity(self) -> u8 {
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

/// The GitOps tool that tracks an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GitOpsTool {
    /// Argo CD.
    Argocd,
    /// Flux.
    Flux,
}

impl GitOpsTool {
    /// The name in events and stamps: `argocd`, `flux`.
    pub fn as_str(self) -> &'static str {
        match self {
            GitOpsTool::Argocd => "argocd",
            GitOpsTool::Flux => "flux",
        }
    }
}

impl std::fmt::Display for GitOpsTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The GitOps tool and application that track an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitOpsRef {
    /// Argo CD or Flux.
    pub tool: GitOpsTool,
    /// The Argo CD application, or the Flux `Kustomization`/`HelmRelease` as `kind namespace/name`.
    pub app: String,
}

impl GitOpsRef {
    /// How the owner reads in a message: `Argo CD app mesh-config`, `Flux Kustomization flux-system/mesh`.
    pub fn describe(&self) -> String {
        match self.tool {
            GitOpsTool::Argocd => format!("Argo CD app {}", self.app),
            GitOpsTool::Flux => format!("Flux {}", self.app),
        }
    }
}

/// Who sent the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User<'a> {
    /// The user name, e.g. `alice@example.com` or `system:serviceaccount:ns:name`.
    #[serde(borrow)]
    pub username: Cow<'a, str>,
    /// The user's UID, when the authenticator gives one.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<Cow<'a, str>>,
    /// The user's groups.
    #[serde(borrow, default)]
    pub groups: Vec<Cow<'a, str>>,
}

/// The resource a drift event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef<'a> {
    /// API group (empty for the core group).
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    /// API version of the request.
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    /// Kind of the request's object.
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    /// Plural resource name.
    #[serde(borrow)]
    pub resource: Cow<'a, str>,
    /// Subresource, if any.
    #[serde(borrow, default, skip_serializing_if = "str::is_empty")]
    pub subresource: Cow<'a, str>,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(borrow, default)]
    pub namespace: Cow<'a, str>,
    /// Name of the object.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

impl ResourceRef<'_> {
    /// The kind as people read it: `VirtualService`, or `deployments/scale` for a subresource.
    pub fn kind_label(&self) -> Cow<'_, str> {
        if self.subresource.is_empty() {
            Cow::Borrowed(&self.kind)
        } else {
            Cow::Owned(format!("{}/{}", self.resource, self.subresource))
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn object_ref(&self) -> String {
        if self.namespace.is_empty() { self.name.to_string() } else { format!("{}/{}", self.namespace, self.name) }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// A JSON value kept as its text: borrowed from the line it was read from, or owned when the
/// event was just made.
#[derive(Debug, Clone)]
pub enum Json<'a> {
    /// Borrowed from a journal line.
    Borrowed(&'a RawValue),
    /// Serialised when the event was made.
    Owned(Box<RawValue>),
}

impl Json<'_> {
    /// The JSON text.
    pub fn get(&self) -> &str {
        match self {
            Json::Borrowed(raw) => raw.get(),
            Json::Owned(raw) => raw.get(),
        }
    }

    /// The value, parsed.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The text of `value`.
    pub fn from_value(value: &serde_json::Value) -> Json<'static> {
        // A serde_json::Value always serialises.
        Json::Owned(serde_json::value::to_raw_value(value).unwrap_or_default())
    }
}

impl PartialEq for Json<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Borrowed(raw) => raw.serialize(serializer),
            Json::Owned(raw) => raw.serialize(serializer),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(Json::Borrowed)
    }
}

/// One changed path, with the value before and after (`null`: the path did not exist / is gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change<'a> {
    /// JSON pointer into the object; `""` is the whole object (a DELETE).
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    /// The value before.
    #[serde(borrow)]
    pub old: Json<'a>,
    /// The value after.
    #[serde(borrow)]
    pub new: Json<'a>,
}

/// One drift event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftEvent<'a> {
    /// UUIDv7 (time-ordered).
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// When the event was recorded (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// `denied`, `warned`, `audited`, `repaired` or `break-glass`.
    pub decision: Decision,
    /// The deciding policy's mode.
    pub mode: Mode,
    /// The deciding policy.
    #[serde(borrow)]
    pub policy: Cow<'a, str>,
    /// The rule within the policy.
    #[serde(borrow)]
    pub rule: Cow<'a, str>,
    /// What the person was told (or would have been, for audit).
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: Operation,
    /// Whether the request was a dry run (nothing stored).
    pub dry_run: bool,
    /// Who sent it.
    #[serde(borrow)]
    pub user: User<'a>,
    /// What it was about.
    #[serde(borrow)]
    pub resource: ResourceRef<'a>,
    /// The GitOps owner, when the object is tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<GitOpsRef>,
    /// What it changed (capped; see `changesOmitted`).
    #[serde(borrow)]
    pub changes: Vec<Change<'a>>,
    /// How many more changes there were than listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changes_omitted: u64,
    /// The AdmissionReview's uid, to join with the kube-apiserver's audit log.
    #[serde(borrow)]
    pub request_uid: Cow<'a, str>,
    /// The W3C trace id (32 hex digits) of the admission request's span, when traces are
    /// exported over OTLP: the sinks' records point at the trace.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Cow<'a, str>>,
    /// Who delivered the request to driftgate (absent in events recorded before it was kept).
    #[serde(borrow, default, skip_serializing_if = "Source::is_unknown")]
    pub source: Source<'a>,
    /// Set when this line stands for many: the source was over its rate limit, and its drift
    /// events since `since` were counted, not journaled one by one; this is the last of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<RateLimited>,
    /// The BreakGlassGrant a `break-glass` change went through, or the grant a grant's own
    /// create, update or delete is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantRef>,
}

/// A BreakGlassGrant, as a drift event names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRef {
    /// The grant's name (in driftgate's namespace).
    pub name: String,
    /// Why it was granted.
    #[serde(default)]
    pub reason: String,
    /// Who granted it (checked against the creating request's user).
    #[serde(default)]
    pub granter: String,
    /// When it stops matching.
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Who delivered a request to driftgate: the connection's peer, and what it proved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source<'a> {
    /// The peer's IP address.
    #[serde(borrow, default)]
    pub address: Cow<'a, str>,
    /// Whether it presented a client certificate that the configured client CA signed (the
    /// kube-apiserver does, when given one): only then is the request known to come from the
    /// control plane.
    #[serde(default)]
    pub authenticated: bool,
    /// That certificate's subject (`CN=kube-apiserver`).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Cow<'a, str>>,
}

impl Source<'_> {
    /// An event recorded before sources were kept.
    pub fn is_unknown(&self) -> bool {
        self.address.is_empty() && !self.authenticated && self.certificate.is_none()
    }

    /// The same source, owning its strings.
    pub fn into_owned(self) -> Source<'static> {
        Source {
            address: Cow::Owned(self.address.into_owned()),
            authenticated: self.authenticated,
            certificate: self.certificate.map(|c| Cow::Owned(c.into_owned())),
        }
    }
}

/// Drift events of a rate-limited source, summarised in one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimited {
    /// How many drift events the line stands for (this one included).
    pub count: u64,
    /// When the first of them was decided.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl DriftEvent<'_> {
    /// How many drift events this line stands for: 1, or the count of a rate-limit summary.
    pub fn count(&self) -> u64 {
        self.rate_limited.map_or(1, |r| r.count)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a line is not a drift event.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not UTF-8.
    #[error("not UTF-8 at byte {}", .0.valid_up_to())]
    Utf8(std::str::Utf8Error),
    /// The text is not a drift event.
    #[error("{0}")]
    Json(serde_json::Error),
}

impl<'a> DriftEvent<'a> {
    /// Reads one journal line (without its newline), borrowing from it.
    pub fn parse(line: &'a [u8]) -> Result<DriftEvent<'a>, ParseError> {
        // One check of the whole line is cheaper than serde_json's check of each string.
        let text = std::str::from_utf8(line).map_err(ParseError::Utf8)?;
        serde_json::from_str(text).map_err(ParseError::Json)
    }

    /// The event as one journal line (JSON and a newline).
    pub fn to_line(&self) -> Vec<u8> {
        // Strings, numbers, enums and JSON text: serialising cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// The same event, owning everything (to keep it past the line it was read from).
    pub fn into_owned(self) -> DriftEvent<'static> {
        let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        DriftEvent {
            id: own(self.id),
            time: self.time,
            decision: self.decision,
            mode: self.mode,
            policy: own(self.policy),
            rule: own(self.rule),
            message: own(self.message),
            operation: self.operation,
            dry_run: self.dry_run,
            user: User {
                username: own(self.user.username),
                uid: self.user.uid.map(own),
                groups: self.user.groups.into_iter().map(own).collect(),
            },
            resource: ResourceRef {
                group: own(self.resource.group),
                version: own(self.resource.version),
                kind: own(self.resource.kind),
                resource: own(self.resource.resource),
                subresource: own(self.resource.subresource),
                namespace: own(self.resource.namespace),
                name: own(self.resource.name),
            },
            gitops: self.gitops,
            changes: self
                .changes
                .into_iter()
                .map(|c| Change { path: own(c.path), old: c.old.into_owned(), new: c.new.into_owned() })
                .collect(),
            changes_omitted: self.changes_omitted,
            request_uid: own(self.request_uid),
            trace_id: self.trace_id.map(own),
            source: self.source.into_owned(),
            rate_limited: self.rate_limited,
            grant: self.grant,
        }
    }
}

/// What a sink's filters, lag and logs read of a drift event: its id, time, decision, dry run,
/// namespace and policy, parsed from its journal line without building the rest (a sink that writes the
/// line as it is needs no more).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Brief<'a> {
    /// The event's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// When the event was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What was decided.
    pub decision: Decision,
    /// Whether the request was a dry run.
    pub dry_run: bool,
    /// The deciding policy.
    #[serde(borrow)]
    pub policy: Cow<'a, str>,
    /// What it was about: only its namespace is read.
    #[serde(borrow)]
    pub resource: BriefResource<'a>,
}

/// The namespace of a [`Brief`]'s resource.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BriefResource<'a> {
    /// The namespace (empty for cluster-scoped resources).
    #[serde(borrow, default)]
    pub namespace: Cow<'a, str>,
}

impl<'a> Brief<'a> {
    /// Reads what a brief holds of one journal line (without its newline).
    pub fn parse(line: &'a [u8]) -> Result<Brief<'a>, ParseError> {
        let text = std::str::from_utf8(line).map_err(ParseError::Utf8)?;
        serde_json::from_str(text).map_err(ParseError::Json)
    }
}

impl DriftEvent<'_> {
    /// What a brief holds of the event.
    pub fn brief(&self) -> Brief<'_> {
        Brief {
            id: Cow::Borrowed(&self.id),
            time: self.time,
            decision: self.decision,
            dry_run: self.dry_run,
            policy: Cow::Borrowed(&self.policy),
            resource: BriefResource { namespace: Cow::Borrowed(&self.resource.namespace) },
        }
    }
}

impl Json<'_> {
    fn into_owned(self) -> Json<'static> {
        match self {
            Json::Borrowed(raw) => Json::Owned(raw.to_owned()),
            Json::Owned(raw) => Json::Owned(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's example line, as the server writes it.
    const LINE: &str = r#"{"id":"01a20abf-33ea-752b-8746-03435d90d32d","time":"2026-11-23T23:30:32.554697358Z","decision":"denied","mode":"enforce","policy":"mesh-gitops","rule":"protected","message":"driftgate: VirtualService shop/reviews is managed by GitOps (Argo CD app mesh-config); direct changes by alice@example.com are not allowed — change it in Git. Changed: /spec/http/1/route/0/weight (90 → 70), /spec/http/1/route/1/weight (10 → 30). Drift event 01a20abf-33ea-752b-8746-03435d90d32d.","operation":"UPDATE","dryRun":false,"user":{"username":"alice@example.com","groups":["devs","system:authenticated"]},"resource":{"group":"networking.istio.io","version":"v1","kind":"VirtualService","resource":"virtualservices","namespace":"shop","name":"reviews"},"gitops":{"tool":"argocd","app":"mesh-config"},"changes":[{"path":"/spec/http/1/route/0/weight","old":90,"new":70},{"path":"/spec/http/1/route/1/weight","old":10,"new":30}],"requestUid":"57b2f500-a8ca-4930-b895-019970830612"}"#;

    #[test]
    fn a_line_reads_typed_and_writes_back_byte_for_byte() {
        let event = DriftEvent::parse(LINE.as_bytes()).unwrap();
        assert_eq!(event.decision, Decision::Denied);
        assert_eq!(event.mode, Mode::Enforce);
        assert_eq!(event.operation, Operation::Update);
        assert_eq!(event.time.nanosecond(), 554_697_358);
        assert!(matches!(event.user.username, Cow::Borrowed(_)), "strings borrow from the line");
        assert_eq!(event.changes[1].new.get(), "30");
        assert_eq!(event.to_line(), format!("{LINE}\n").into_bytes());
        assert_eq!(event.clone().into_owned(), event);
    }

    #[test]
    fn every_decision_and_optional_field_round_trips() {
        for decision in ["denied", "warned", "audited", "repaired", "break-glass"] {
            let line = LINE
                .replace(r#""decision":"denied""#, &format!(r#""decision":"{decision}""#))
                .replace(r#""resource":"virtualservices","#, r#""resource":"deployments","subresource":"scale","#)
                .replace(r#""requestUid""#, r#""changesOmitted":4,"requestUid""#)
                .replace(r#""username":"alice@example.com","#, r#""username":"alice@example.com","uid":"u-1","#);
            let event = DriftEvent::parse(line.as_bytes()).unwrap();
            assert_eq!(event.decision.as_str(), decision);
            assert_eq!(event.changes_omitted, 4);
            assert_eq!(event.resource.kind_label(), "deployments/scale");
            assert_eq!(String::from_utf8(event.to_line()).unwrap(), format!("{line}\n"));
        }
        let summary = LINE.replace(
            r#""requestUid":"57b2f500-a8ca-4930-b895-019970830612""#,
            r#""requestUid":"57b2f500-a8ca-4930-b895-019970830612","source":{"address":"10.0.0.7","authenticated":true,"certificate":"CN=kube-apiserver"},"rateLimited":{"count":40,"since":"2026-11-23T23:30:30Z"}"#,
        );
        let event = DriftEvent::parse(summary.as_bytes()).unwrap();
        assert_eq!((event.source.address.as_ref(), event.source.authenticated), ("10.0.0.7", true));
        assert_eq!(event.count(), 40);
        assert_eq!(String::from_utf8(event.to_line()).unwrap(), format!("{summary}\n"));
        assert!(DriftEvent::parse(LINE.as_bytes()).unwrap().source.is_unknown());
    }

    #[test]
    fn refuses_what_is_not_a_drift_event() {
        for bad in [r#"{"id":"#, "{}", &LINE.replace(r#""decision":"denied""#, r#""decision":"maybe""#)] {
            assert!(DriftEvent::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(matches!(DriftEvent::parse(b"\xff"), Err(ParseError::Utf8(_))));
    }
}
