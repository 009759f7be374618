//! The Kubernetes Events sink against the kube client's test service: the exact requests it
//! sends, aggregation of repeated attempts, and a flood that is dropped and counted instead of
//! queued without bound or waited for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use driftgate::event::DriftEvent;
use driftgate::sinks::events::{EventSink, EventSinkConfig, NOTE_LIMIT};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

type MockHandle = Handle<Request<Body>, Response<Body>>;

const SHOP_EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

fn mk_sink(capacity: usize) -> (EventSink, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config = EventSinkConfig {
        capacity,
        window: Duration::from_secs(600),
        reporting_instance: "driftgate-7d9f-abcde".into(),
    };
    (EventSink::start(client, config), handle)
}

/// A drift event as the journal has it (README's example), with its decision and name.
fn mk_event(decision: &str, name: &str, dry_run: bool) -> DriftEvent<'static> {
    let line = json!({
        "id": "01a20abf-33ea-752b-8746-03435d90d32d",
        "time": "2026-11-23T23:30:32.554697358Z",
        "decision": decision,
        "mode": "enforce",
        "policy": "mesh-gitops",
        "rule": "protected",
        "message": "driftgate: VirtualService shop/reviews is managed by GitOps (Argo CD app mesh-config); direct changes by alice@example.com are not allowed — change it in Git.",
        "operation": "UPDATE",
        "dryRun": dry_run,
        "user": {"username": "alice@example.com", "groups": ["devs", "system:authenticated"]},
        "resource": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService",
                     "resource": "virtualservices", "namespace": "shop", "name": name},
        "changes": [{"path": "/spec/http/1/route/0/weight", "old": 90, "new": 70}],
        "requestUid": "57b2f500-a8ca-4930-b895-019970830612"
    })
    .to_string();
    DriftEvent::parse(line.as_bytes()).unwrap().into_owned()
}

async fn next(
    handle: &mut MockHandle,
) -> (Method, String, Option<String>, String, Value, mock::SendResponse<Response<Body>>) {
    let (req, send) = handle.next_request().await.expect("a request");
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().filter(|q| !q.is_empty()).map(str::to_owned);
    let content_type = req.headers()["content-type"].to_str().unwrap().to_owned();
    let body = serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
    (method, path, query, content_type, body, send)
}

fn respond(send: mock::SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    send.send_response(Response::builder().status(status).body(Body::from(serde_json::to_vec(body).unwrap())).unwrap());
}

/// Checks a create request and answers it; gives the Event's name.
async fn expect_create(
    handle: &mut MockHandle,
    reason: &str,
    name: &str,
    uid: Option<&str>,
    count: Option<i64>,
) -> String {
    let (method, path, query, content_type, body, send) = next(handle).await;
    assert_eq!(
        (method, path.as_str(), query, content_type.as_str()),
        (Method::POST, SHOP_EVENTS, None, "application/json")
    );
    let event_name = body["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(event_name.starts_with(&format!("{name}.")), "{event_name}");
    let mut want = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": event_name, "namespace": "shop"},
        "eventTime": "2026-11-23T23:30:32.554697Z",
        "type": "Warning",
        "reason": reason,
        "action": "UPDATE",
        "note": mk_event("denied", name, false).message,
        "reportingController": "driftgate.dev/driftgate",
        "reportingInstance": "driftgate-7d9f-abcde",
        "regarding": {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": name, "namespace": "shop"},
    });
    if let Some(uid) = uid {
        want["regarding"]["uid"] = json!(uid);
    }
    if let Some(count) = count {
        want["series"] = json!({"count": count, "lastObservedTime": "2026-11-23T23:30:32.554697Z"});
    }
    assert_eq!(body, want);
    respond(send, StatusCode::CREATED, &body);
    event_name
}

async fn expect_patch(handle: &mut MockHandle, event_name: &str, count: i64, status: StatusCode) {
    let (method, path, query, content_type, body, send) = next(handle).await;
    assert_eq!(method, Method::PATCH);
    assert_eq!(path, format!("{SHOP_EVENTS}/{event_name}"));
    assert_eq!(query, None);
    assert_eq!(content_type, "application/merge-patch+json");
    assert_eq!(body, json!({"series": {"count": count, "lastObservedTime": "2026-11-23T23:30:32.554697Z"}}));
    let answer = if status == StatusCode::OK {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": event_name, "namespace": "shop"}})
    } else {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "gone"})
    };
    respond(send, status, &answer);
}

#[tokio::test]
async fn a_denied_change_becomes_a_warning_event_on_the_object() {
    let (sink, mut handle) = mk_sink(16);
    sink.submit_regarding(&mk_event("denied", "reviews", false), Some("0b1c6e2e-uid"));
    expect_create(&mut handle, "DriftBlocked", "reviews", Some("0b1c6e2e-uid"), None).await;
    sink.close().await;
}

#[tokio::test]
async fn each_decision_has_its_reason_and_dry_runs_make_no_event() {
    let (sink, mut handle) = mk_sink(16);
    for (decision, reason, name) in [
        ("denied", "DriftBlocked", "a"),
        ("warned", "DriftWarned", "b"),
        ("audited", "DriftWarned", "c"),
        ("repaired", "DriftRepaired", "d"),
        ("break-glass", "BreakGlass", "e"),
    ] {
        sink.submit(&mk_event(decision, "dry", true));
        sink.submit(&mk_event("allowed", "allowed", false));
        sink.submit(&mk_event(decision, name, false));
        // The dry run and the allowed request sent nothing: the next request is this one.
        expect_create(&mut handle, reason, name, None, None).await;
    }
    assert_eq!(sink.dropped(), 0);
    sink.close().await;
}

#[tokio::test]
async fn repeated_attempts_on_one_object_count_on_one_event() {
    let (sink, mut handle) = mk_sink(16);
    let event = mk_event("denied", "reviews", false);
    sink.submit(&event);
    let name = expect_create(&mut handle, "DriftBlocked", "reviews", None, None).await;
    for count in 2..=4 {
        sink.submit(&event);
        expect_patch(&mut handle, &name, count, StatusCode::OK).await;
    }
    // Another reason on the same object is another series.
    sink.submit(&mk_event("break-glass", "reviews", false));
    expect_create(&mut handle, "BreakGlass", "reviews", None, None).await;
    sink.submit(&event);
    expect_patch(&mut handle, &name, 5, StatusCode::OK).await;
    sink.close().await;
}

#[tokio::test]
async fn a_burst_on_one_object_is_one_api_call() {
    let (sink, mut handle) = mk_sink(16);
    let event = mk_event("denied", "reviews", false);
    // The sink's task does not run between these calls (one-thread runtime, no await): it
    // finds all three queued and folds them.
    for _ in 0..3 {
        sink.submit(&event);
    }
    assert_eq!(sink.depth(), 3);
    let name = expect_create(&mut handle, "DriftBlocked", "reviews", None, Some(3)).await;
    for _ in 0..2 {
        sink.submit(&event);
    }
    expect_patch(&mut handle, &name, 5, StatusCode::OK).await;
    sink.close().await;
}

#[tokio::test]
async fn an_expired_event_is_created_again() {
    let (sink, mut handle) = mk_sink(16);
    let event = mk_event("denied", "reviews", false);
    sink.submit(&event);
    let first = expect_create(&mut handle, "DriftBlocked", "reviews", None, None).await;
    sink.submit(&event);
    expect_patch(&mut handle, &first, 2, StatusCode::NOT_FOUND).await;
    let second = expect_create(&mut handle, "DriftBlocked", "reviews", None, None).await;
    assert_ne!(first, second);
    sink.submit(&event);
    expect_patch(&mut handle, &second, 2, StatusCode::OK).await;
    sink.close().await;
}

#[tokio::test]
async fn a_failed_call_is_counted_and_the_sink_goes_on() {
    let (sink, mut handle) = mk_sink(16);
    sink.submit(&mk_event("denied", "a", false));
    let (_, _, _, _, _, send) = next(&mut handle).await;
    let refused = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "no"});
    respond(send, StatusCode::FORBIDDEN, &refused);
    sink.submit(&mk_event("denied", "b", false));
    expect_create(&mut handle, "DriftBlocked", "b", None, None).await;
    assert_eq!(sink.failed(), 1);
    assert_eq!(sink.dropped(), 0);
    sink.close().await;
}

#[tokio::test]
async fn a_long_message_is_cut_to_the_note_limit() {
    let (sink, mut handle) = mk_sink(16);
    let mut event = mk_event("denied", "reviews", false);
    event.message = "é".repeat(2000).into();
    sink.submit(&event);
    let (_, _, _, _, body, send) = next(&mut handle).await;
    let note = body["note"].as_str().unwrap();
    assert!(note.len() <= NOTE_LIMIT, "{}", note.len());
    assert!(note.ends_with('…'));
    respond(send, StatusCode::CREATED, &body);
    sink.close().await;
}

/// The API never answers; drift events keep coming. `submit` is a plain function (nothing to
/// await), so the loop below cannot wait on the API; the queue stays at its capacity and
/// everything beyond it is dropped and counted.
#[tokio::test]
async fn a_flood_is_dropped_and_counted_not_queued_without_bound() {
    let (sink, handle) = mk_sink(100);
    let event = mk_event("denied", "reviews", false);
    for _ in 0..10_000 {
        sink.submit(&event);
    }
    assert_eq!(sink.depth(), 100);
    assert_eq!(sink.dropped(), 9_900);
    // The sink's task now takes a batch off the queue and hangs on a call that never returns;
    // submitting still never waits, the queue fills up again and the rest is counted.
    tokio::task::yield_now().await;
    for _ in 0..1_000 {
        sink.submit(&event);
    }
    assert_eq!(sink.depth(), 100);
    let dropped = sink.dropped();
    assert!((9_900 + 1_000 - 64..9_900 + 1_000).contains(&dropped), "{dropped}: at most one batch was taken");
    drop(handle);
}

#[test]
fn submit_works_outside_any_runtime_and_counts_what_it_cannot_post() {
    // The server's handler runs on Tokio, but submit needs none: it only tries a channel.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (sink, _handle) = runtime.block_on(async { mk_sink(4) });
    for _ in 0..10 {
        sink.submit(&mk_event("denied", "reviews", false));
    }
    assert_eq!(sink.depth(), 4);
    assert_eq!(sink.dropped(), 6);
}
