//! `driftgate register` / `unregister` against the kube client's test service: the exact
//! requests sent (method, path, query, content type, body) and how answers are read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use driftgate::commands::register::{self, RegisterError};
use driftgate::install::{self, Inputs, Webhooks};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

const VALIDATING: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/driftgate";
const MUTATING: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/driftgate";

fn mk_client() -> (kube::Client, Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

fn mk_hooks() -> Webhooks {
    let dir = tempfile::tempdir().unwrap();
    let bundle = driftgate::certs::generate(&driftgate::certs::dev_request()).unwrap();
    driftgate::certs::write(dir.path(), &bundle, true).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inputs = Inputs::load(
        &root.join("policies"),
        Some(&dir.path().join("ca.crt")),
        "driftgate",
        install::DEFAULT_IMAGE,
        None,
    )
    .unwrap();
    install::webhooks(&inputs.policies, &inputs.options)
}

fn query(req: &Request<Body>) -> BTreeSet<(String, String)> {
    let q = req.uri().query().unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap())
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

fn respond(send: mock::SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    send.send_response(Response::builder().status(status).body(Body::from(serde_json::to_vec(body).unwrap())).unwrap());
}

fn not_found(name: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
           "message": format!("webhook configuration {name:?} not found")})
}

/// Takes the next request and checks it is an apply of `want` to `path` with `query`.
async fn expect_apply(
    handle: &mut Handle<Request<Body>, Response<Body>>,
    path: &str,
    query_pairs: &[(&str, &str)],
    want: Value,
) {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), Method::PATCH);
    assert_eq!(req.uri().path(), path);
    assert_eq!(query(&req), pairs(query_pairs), "{}", req.uri());
    assert_eq!(req.headers()["content-type"], "application/apply-patch+yaml");
    let body: Value = serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
    assert_eq!(body, want);
    assert!(body["metadata"].get("managedFields").is_none() && body["metadata"].get("resourceVersion").is_none());
    respond(send, StatusCode::OK, &body);
}

#[tokio::test]
async fn register_server_side_applies_both_configurations_as_field_manager_driftgate() {
    let (client, mut handle) = mk_client();
    let hooks = mk_hooks();
    let want_v = serde_json::to_value(&hooks.validating).unwrap();
    let want_m = serde_json::to_value(&hooks.mutating).unwrap();
    assert_eq!(want_v["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(want_v["kind"], "ValidatingWebhookConfiguration");
    let task = tokio::spawn(async move { register::apply(client, &hooks, false).await });
    let q = [("fieldManager", "driftgate"), ("force", "true")];
    expect_apply(&mut handle, VALIDATING, &q, want_v).await;
    expect_apply(&mut handle, MUTATING, &q, want_m).await;
    let lines = task.await.unwrap().unwrap();
    assert_eq!(
        lines,
        [
            "validatingwebhookconfiguration.admissionregistration.k8s.io/driftgate serverside-applied: mesh-gitops.validate.driftgate.dev, mesh-gitops-break-glass.validate.driftgate.dev, gitops-namespaces.validate.driftgate.dev, gitops-namespaces-break-glass.validate.driftgate.dev, breakglassgrants.driftgate.dev",
            "mutatingwebhookconfiguration.admissionregistration.k8s.io/driftgate serverside-applied: no webhooks (no policy repairs or stamps provenance)",
        ]
    );
}

#[tokio::test]
async fn register_is_idempotent_the_same_apply_twice() {
    let (client, mut handle) = mk_client();
    let hooks = mk_hooks();
    let want_v = serde_json::to_value(&hooks.validating).unwrap();
    let want_m = serde_json::to_value(&hooks.mutating).unwrap();
    let task = tokio::spawn(async move {
        register::apply(client.clone(), &hooks, false).await?;
        register::apply(client, &hooks, false).await
    });
    let q = [("fieldManager", "driftgate"), ("force", "true")];
    for _ in 0..2 {
        expect_apply(&mut handle, VALIDATING, &q, want_v.clone()).await;
        expect_apply(&mut handle, MUTATING, &q, want_m.clone()).await;
    }
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn register_dry_run_is_a_server_side_dry_run() {
    let (client, mut handle) = mk_client();
    let hooks = mk_hooks();
    let want_v = serde_json::to_value(&hooks.validating).unwrap();
    let want_m = serde_json::to_value(&hooks.mutating).unwrap();
    let task = tokio::spawn(async move { register::apply(client, &hooks, true).await });
    let q = [("dryRun", "All"), ("fieldManager", "driftgate"), ("force", "true")];
    expect_apply(&mut handle, VALIDATING, &q, want_v).await;
    expect_apply(&mut handle, MUTATING, &q, want_m).await;
    let lines = task.await.unwrap().unwrap();
    assert!(lines.iter().all(|l| l.contains("(server dry run)")), "{lines:?}");
}

#[tokio::test]
async fn register_reports_a_refused_apply_naming_the_object() {
    let (client, mut handle) = mk_client();
    let hooks = mk_hooks();
    let task = tokio::spawn(async move { register::apply(client, &hooks, false).await });
    let (_, send) = handle.next_request().await.unwrap();
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "validatingwebhookconfigurations.admissionregistration.k8s.io \"driftgate\" is forbidden"});
    respond(send, StatusCode::FORBIDDEN, &forbidden);
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, RegisterError::Apply { kind: "ValidatingWebhookConfiguration", .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("failed to apply ValidatingWebhookConfiguration driftgate"), "{text}");
    assert!(text.contains("forbidden"), "{text}");
}

async fn expect_delete(
    handle: &mut Handle<Request<Body>, Response<Body>>,
    path: &str,
    status: StatusCode,
    answer: Value,
) {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), Method::DELETE);
    assert_eq!(req.uri().path(), path);
    assert!(query(&req).is_empty(), "{}", req.uri());
    let body: Value = serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
    assert_eq!(body, json!({}), "default delete options");
    respond(send, status, &answer);
}

#[tokio::test]
async fn unregister_deletes_both_configurations() {
    let (client, mut handle) = mk_client();
    let task = tokio::spawn(async move { register::delete(client).await });
    let success = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": "driftgate"}});
    expect_delete(&mut handle, VALIDATING, StatusCode::OK, success.clone()).await;
    expect_delete(&mut handle, MUTATING, StatusCode::OK, success).await;
    let lines = task.await.unwrap().unwrap();
    assert_eq!(
        lines,
        [
            "validatingwebhookconfiguration.admissionregistration.k8s.io/driftgate deleted",
            "mutatingwebhookconfiguration.admissionregistration.k8s.io/driftgate deleted",
        ]
    );
}

#[tokio::test]
async fn unregister_succeeds_when_the_configurations_are_absent() {
    let (client, mut handle) = mk_client();
    let task = tokio::spawn(async move { register::delete(client).await });
    expect_delete(&mut handle, VALIDATING, StatusCode::NOT_FOUND, not_found("driftgate")).await;
    expect_delete(&mut handle, MUTATING, StatusCode::NOT_FOUND, not_found("driftgate")).await;
    let lines = task.await.unwrap().unwrap();
    assert!(lines.iter().all(|l| l.ends_with("not found (nothing to do)")), "{lines:?}");
}
