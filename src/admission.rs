//! The AdmissionReview wire format: parsing a request body and writing the answer.
//!
//! Owns the JSON shapes of `admission.k8s.io/v1` (and `v1beta1`, which has the same fields).
//! Parsing borrows from the body: `object`, `oldObject` and `options` stay raw JSON until the
//! decision needs them, so a request that is allowed on its kind or identity alone never pays for
//! materialising a large object. This module does no I/O and knows nothing of policies.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `apiVersion` of the current AdmissionReview.
pub const V1: &str = "admission.k8s.io/v1";
/// `apiVersion` of the older AdmissionReview, still accepted (same fields as v1).
pub const V1BETA1: &str = "admission.k8s.io/v1beta1";
const KIND: &str = "AdmissionReview";

/// Why a body is not an AdmissionReview this server can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, or JSON of the wrong shape (the serde message names the field and position).
    #[error("body is not a valid AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    /// The body is not UTF-8 (JSON is).
    #[error("body is not a valid AdmissionReview: invalid UTF-8 at byte {}", .0.valid_up_to())]
    Utf8(#[from] std::str::Utf8Error),
    /// The body is JSON, but not a JSON object.
    #[error("body is not a valid AdmissionReview: expected a JSON object")]
    NotAnObjectBody,
    /// `kind` is missing or is not `AdmissionReview`.
    #[error("kind is {0:?}, expected \"AdmissionReview\"")]
    WrongKind(String),
    /// `apiVersion` is missing or not one of the supported versions.
    #[error("apiVersion {0:?} is not supported (use admission.k8s.io/v1 or admission.k8s.io/v1beta1)")]
    UnsupportedVersion(String),
    /// The review carries no `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// `request.uid` is missing or empty.
    #[error("request.uid is missing or empty")]
    MissingUid,
    /// `request.object` or `request.oldObject` is present but not a JSON object.
    #[error("request.{0} must be a JSON object or null")]
    NotAnObject(&'static str),
}

/// Which AdmissionReview version a request came in; the answer uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewVersion {
    /// `admission.k8s.io/v1`
    V1,
    /// `admission.k8s.io/v1beta1`
    V1Beta1,
}

impl ReviewVersion {
    /// The `apiVersion` string of this version.
    pub fn api_version(self) -> &'static str {
        match self {
            ReviewVersion::V1 => V1,
            ReviewVersion::V1Beta1 => V1BETA1,
        }
    }
}

/// The operation of an admission request. PATCH and apply arrive as `UPDATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// A new object.
    Create,
    /// A change to an existing object (PUT, PATCH, apply, subresource writes).
    Update,
    /// A deletion (single or DeleteCollection).
    Delete,
    /// A connect (exec, port-forward); never a change to configuration.
    Connect,
}

impl Operation {
    /// The wire name: `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// `request.kind`: group, version and kind of the object in the request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupVersionKind {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind, e.g. `VirtualService`.
    #[serde(default)]
    pub kind: String,
}

/// `request.resource`: group, version and plural resource name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupVersionResource {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Plural resource name, e.g. `virtualservices`.
    #[serde(default)]
    pub resource: String,
}

/// `request.userInfo`: who sent the request. `extra` is ignored on purpose: identity matching
/// must not depend on it (pod-bound tokens add keys to it, impersonation drops it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct UserInfo {
    /// The user name, e.g. `alice@example.com` or `system:serviceaccount:argocd:argocd-application-controller`.
    #[serde(default)]
    pub username: String,
    /// The user's UID, when the authenticator gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One admission request, borrowing its objects from the body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest<'a> {
    /// The request's uid, echoed in the answer.
    #[serde(default)]
    pub uid: String,
    /// Group, version, kind of the object (of the subresource's object for subresources).
    pub kind: GroupVersionKind,
    /// Group, version, resource being written (the parent resource for subresources).
    pub resource: GroupVersionResource,
    /// The subresource (`status`, `scale`), if any.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The object's name; empty for DeleteCollection (the name is then in `oldObject`).
    #[serde(default)]
    pub name: String,
    /// The namespace; empty for cluster-scoped resources.
    #[serde(default)]
    pub namespace: String,
    /// The operation.
    pub operation: Operation,
    /// Who sent it.
    pub user_info: UserInfo,
    /// The object as it will be stored (CREATE, UPDATE), raw JSON.
    #[serde(borrow, default)]
    pub object: Option<&'a RawValue>,
    /// The object as it is stored now (UPDATE, DELETE), raw JSON.
    #[serde(borrow, default)]
    pub old_object: Option<&'a RawValue>,
    /// Whether the request is a dry run (nothing will be stored).
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(borrow, default)]
    request: Option<AdmissionRequest<'a>>,
}

impl AdmissionRequest<'_> {
    /// Whether the request is about a Namespace object itself (the kube-apiserver then puts the
    /// namespace's own name in `namespace`).
    pub fn is_namespace_object(&self) -> bool {
        self.resource.group.is_empty() && self.resource.resource == "namespaces"
    }
}

/// A parsed AdmissionReview: its version and its request.
#[derive(Debug)]
pub struct Review<'a> {
    /// The version the answer must use.
    pub version: ReviewVersion,
    /// The request.
    pub request: AdmissionRequest<'a>,
}

/// Parses an AdmissionReview body, checking kind, apiVersion, request, uid and object shapes.
pub fn parse(body: &[u8]) -> Result<Review<'_>, ReviewError> {
    // serde also reads a struct from a JSON array; an AdmissionReview is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ReviewError::NotAnObjectBody);
    }
    // One check of the whole body (SIMD) instead of serde_json's check of every string in it.
    let text = std::str::from_utf8(body)?;
    let envelope: Envelope<'_> = serde_json::from_str(text)?;
    let version = match envelope.api_version.as_deref() {
        Some(V1) => ReviewVersion::V1,
        Some(V1BETA1) => ReviewVersion::V1Beta1,
        other => return Err(ReviewError::UnsupportedVersion(other.unwrap_or_default().to_owned())),
    };
    match envelope.kind.as_deref() {
        Some(KIND) => {}
        other => return Err(ReviewError::WrongKind(other.unwrap_or_default().to_owned())),
    }
    let request = envelope.request.ok_or(ReviewError::MissingRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::MissingUid);
    }
    for (field, raw) in [("object", request.object), ("oldObject", request.old_object)] {
        if let Some(raw) = raw
            && !raw.get().starts_with('{')
        {
            return Err(ReviewError::NotAnObject(field));
        }
    }
    Ok(Review { version, request })
}

/// The `status` of a refused answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    /// Always `Failure` for a refusal.
    pub status: &'static str,
    /// HTTP-like code shown to the client (403).
    pub code: u16,
    /// Machine-readable reason (`Forbidden`).
    pub reason: &'static str,
    /// What the person sees.
    pub message: String,
}

/// The `response` of an AdmissionReview.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why not, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of a JSONPatch, for the mutating endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when `patch` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Annotations the kube-apiserver adds to its audit event (prefixed with the webhook name).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// Warnings kubectl prints to the person.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// An answer that lets the request through, echoing its uid.
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            audit_annotations: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Turns this answer into a refusal: 403 Forbidden with `message`.
    #[must_use]
    pub fn deny(mut self, message: String) -> Self {
        self.allowed = false;
        self.status = Some(Status { status: "Failure", code: 403, reason: "Forbidden", message });
        self
    }

    /// Adds a warning that kubectl shows.
    #[must_use]
    pub fn warn(mut self, warning: String) -> Self {
        self.warnings.push(warning);
        self
    }

    /// Adds an audit annotation.
    #[must_use]
    pub fn annotate(mut self, key: &str, value: String) -> Self {
        self.audit_annotations.insert(key.to_owned(), value);
        self
    }

    /// Attaches a JSONPatch (serialised and base64-encoded).
    #[must_use]
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Self {
        if patch.0.is_empty() {
            return self;
        }
        // A Patch is plain data: serialising it cannot fail.
        let bytes = serde_json::to_vec(patch).unwrap_or_default();
        self.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.patch_type = Some("JSONPatch");
        self
    }

    /// Wraps the answer in an AdmissionReview of `version` and serialises it.
    pub fn into_body(self, version: ReviewVersion) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out {
            api_version: &'static str,
            kind: &'static str,
            response: AdmissionResponse,
        }
        let out = Out { api_version: version.api_version(), kind: KIND, response: self };
        // Strings, bools and maps of strings: serialising cannot fail.
        serde_json::to_vec(&out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_body(api_version: &str, request: &str) -> String {
        format!(r#"{{"apiVersion":"{api_version}","kind":"AdmissionReview","request":{request}}}"#)
    }

    const REQ: &str = r#"{"uid":"u1","kind":{"group":"networking.istio.io","version":"v1","kind":"VirtualService"},
        "resource":{"group":"networking.istio.io","version":"v1","resource":"virtualservices"},
        "name":"reviews","namespace":"shop","operation":"UPDATE",
        "userInfo":{"username":"alice","groups":["devs"],"extra":{"k":["v"]}},
        "object":{"metadata":{"name":"reviews"}},"oldObject":null,"dryRun":true}"#;

    #[test]
    fn parses_v1_and_v1beta1() {
        for (v, want) in [(V1, ReviewVersion::V1), (V1BETA1, ReviewVersion::V1Beta1)] {
            let body = mk_body(v, REQ);
            let review = parse(body.as_bytes()).unwrap();
            assert_eq!(review.version, want);
            assert_eq!(review.request.uid, "u1");
            assert_eq!(review.request.operation, Operation::Update);
            assert!(review.request.dry_run);
            assert!(review.request.old_object.is_none());
            assert_eq!(review.request.object.unwrap().get(), r#"{"metadata":{"name":"reviews"}}"#);
        }
    }

    #[test]
    fn rejects_bad_envelopes() {
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "not a valid AdmissionReview"),
            ("[]".into(), "not a valid AdmissionReview"),
            (mk_body("admission.k8s.io/v2", REQ), "apiVersion \"admission.k8s.io/v2\""),
            (REQ.replace("\"uid\":\"u1\",", "").pipe(|r| mk_body(V1, &r)), "uid is missing"),
            (r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.into(), "no request"),
            (mk_body(V1, REQ).replace("\"AdmissionReview\"", "\"Pod\""), "kind is \"Pod\""),
            (
                REQ.replace(r#"{"metadata":{"name":"reviews"}}"#, "[1]").pipe(|r| mk_body(V1, &r)),
                "request.object must be",
            ),
            (REQ.replace(r#""operation":"UPDATE","#, "").pipe(|r| mk_body(V1, &r)), "missing field `operation`"),
        ];
        for (body, want) in cases {
            let err = parse(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn answers_in_the_request_version() {
        let body = AdmissionResponse::allow("u1")
            .deny("no".into())
            .annotate("drift-event", "e1".into())
            .into_body(ReviewVersion::V1Beta1);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["apiVersion"], V1BETA1);
        assert_eq!(v["response"]["uid"], "u1");
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["status"]["reason"], "Forbidden");
        assert_eq!(v["response"]["auditAnnotations"]["drift-event"], "e1");
        assert!(v["response"].get("warnings").is_none());
    }

    trait Pipe: Sized {
        fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
            f(self)
        }
    }
    impl Pipe for String {}
}
