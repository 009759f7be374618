//! Bad input gets a clear 4xx with a JSON error, and the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEFAULT_POLICY, TestServer, fixture, fixture_json};
use reqwest::StatusCode;
use serde_json::json;

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

async fn still_serves(server: &TestServer) {
    let (status, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], false);
}

fn derived(change: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut review = fixture_json(EDIT);
    change(&mut review);
    serde_json::to_vec(&review).unwrap()
}

/// The kubectl edit with 100,000 nested arrays in its object's spec.
fn deep_object() -> Vec<u8> {
    let body = String::from_utf8(derived(|r| r["request"]["object"]["spec"]["deep"] = json!("DEEP"))).unwrap();
    body.replace("\"DEEP\"", &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))).into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_400_with_the_reason() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let mut truncated = fixture(EDIT);
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed JSON", b"{\"apiVersion\": ".to_vec(), "not a valid AdmissionReview"),
        ("truncated JSON", truncated, "EOF while parsing"),
        ("invalid UTF-8", b"{\"apiVersion\":\"\xff\xfe\"}".to_vec(), "not a valid AdmissionReview"),
        ("a JSON array", b"[1,2,3]".to_vec(), "expected a JSON object"),
        (
            "not an AdmissionReview",
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#.to_vec(),
            "apiVersion \"v1\" is not supported",
        ),
        ("wrong kind", derived(|r| r["kind"] = json!("AdmissionResponse")), "kind is \"AdmissionResponse\""),
        ("unsupported apiVersion", derived(|r| r["apiVersion"] = json!("admission.k8s.io/v2")), "admission.k8s.io/v2"),
        (
            "missing request",
            derived(|r| {
                r.as_object_mut().unwrap().remove("request");
            }),
            "has no request",
        ),
        (
            "missing uid",
            derived(|r| {
                r["request"].as_object_mut().unwrap().remove("uid");
            }),
            "uid is missing",
        ),
        ("empty uid", derived(|r| r["request"]["uid"] = json!("")), "uid is missing"),
        ("object not an object", derived(|r| r["request"]["object"] = json!("a string")), "request.object must be"),
        (
            "deep nesting outside the request",
            format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            "apiVersion \"\" is not supported",
        ),
        ("deep nesting in the object", deep_object(), "recursion limit exceeded"),
    ];
    for (what, body, reason) in cases {
        let (status, answer) = server.validate(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["code"], 400, "{what}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{what}: {error}");
        still_serves(&server).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_gets_413_and_wrong_type_415() {
    let server = TestServer::start_with(DEFAULT_POLICY, |s| s.max_body_bytes = 64 * 1024).await;
    let mut big = fixture(EDIT);
    big.resize(100 * 1024, b' ');
    let (status, answer) = server.validate(big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].as_str().unwrap().contains("larger than the limit of 65536 bytes"));
    still_serves(&server).await;
    let (status, answer) = server.post("/validate", fixture(EDIT), "text/plain").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer["error"].as_str().unwrap().contains("application/json"));
    let (status, _) = server.post("/validate", fixture(EDIT), "application/json; charset=utf-8").await;
    assert_eq!(status, StatusCode::OK);
    still_serves(&server).await;
    server.stop().await;
}
