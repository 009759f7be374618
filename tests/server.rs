//! The server itself: health, readiness, HTTP/2 over ALPN, start-up refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEFAULT_POLICY, TestServer, client_for, fixture};
use driftgate::{App, Settings};
use reqwest::{StatusCode, Version};

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    assert_eq!(server.get("/healthz").await, (StatusCode::OK, "ok\n".to_owned()));
    assert_eq!(server.get("/readyz").await, (StatusCode::OK, "ok\n".to_owned()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn speaks_http2_and_http1_over_tls() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    for (http1_only, want) in [(false, Version::HTTP_2), (true, Version::HTTP_11)] {
        let client = client_for(&server.ca_pem, server.addr, http1_only);
        let resp = client
            .post(server.url("/validate"))
            .header("content-type", "application/json")
            .body(fixture("virtualservice-update-kubectl-edit-human.validating.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), want);
        assert_eq!(resp.status(), StatusCode::OK);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_start_on_a_broken_policy() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::for_test(dir.path());
    std::fs::create_dir_all(&settings.policies).unwrap();
    std::fs::write(settings.policies.join("bad.yaml"), DEFAULT_POLICY.replace("mode: enforce", "mode: block")).unwrap();
    let err = App::from_settings(&settings).await.err().unwrap().to_string();
    assert!(err.contains("bad.yaml:14: spec.mode: unknown variant `block`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unwritable_journal_still_denies_and_is_unready() {
    let server = TestServer::start_with(DEFAULT_POLICY, |s| s.journal = s.journal.join("missing-dir/j.jsonl")).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("cannot be written"), "{body}");
    let (_, answer) = server.validate_fixture("virtualservice-update-kubectl-edit-human.validating.json").await;
    assert_eq!(answer["response"]["allowed"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn makes_development_certificates_when_none_exist() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_test(dir.path());
    settings.dev_certs = true;
    std::fs::create_dir_all(&settings.policies).unwrap();
    std::fs::write(settings.policies.join("p.yaml"), DEFAULT_POLICY).unwrap();
    let server = App::from_settings(&settings).await.unwrap();
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(settings.cert_dir.join(f).exists(), "{f}");
    }
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let ca = std::fs::read_to_string(settings.cert_dir.join("ca.crt")).unwrap();
    let resp =
        client_for(&ca, addr, false).get(format!("https://localhost:{}/healthz", addr.port())).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    tx.send(()).unwrap();
    handle.await.unwrap();
}
