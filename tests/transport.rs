//! Transport: what reaches the TLS port that is not a well-behaved HTTPS client, and the
//! optional client-certificate check of the kube-apiserver.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DEFAULT_POLICY, TestServer, fixture, fixture_json};
use reqwest::StatusCode;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

async fn still_serves(server: &TestServer) {
    let (status, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], false);
}

/// Reads until the peer closes (or `limit` passes); what it sent.
async fn read_until_closed<R: AsyncReadExt + Unpin>(stream: &mut R, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

async fn tls_connect(server: &TestServer) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(server.ca_pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_on_the_tls_port_gets_the_connection_closed() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let (got, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "connection left open");
    assert!(!got.starts_with(b"HTTP/"), "answered plain HTTP: {:?}", String::from_utf8_lossy(&got));
    still_serves(&server).await;
    server.stop().await;
}

/// A ClientHello offering only `version` (0x0301 TLS 1.0, 0x0302 TLS 1.1) and an RSA-CBC suite.
fn legacy_client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&version);
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0, 2, 0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
    hello.extend_from_slice(&[1, 0]); // null compression
    let mut handshake = vec![1, 0, 0, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, version[0], version[1], 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_tls_1_0_and_1_1_clients() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    for (name, version) in [("TLS 1.0", [3, 1]), ("TLS 1.1", [3, 2])] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(version)).await.unwrap();
        let (got, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
        assert!(closed, "{name}: connection left open");
        // An alert record (0x15), never a ServerHello (a handshake record, 0x16).
        assert_eq!(got.first(), Some(&0x15), "{name}: {got:?}");
    }
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_and_slow_bodies_are_timed_out() {
    let server = TestServer::start_with(DEFAULT_POLICY, |s| s.request_timeout_seconds = 1).await;
    // Headers that never end: the connection is closed.
    let mut tls = tls_connect(&server).await;
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n").await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut tls, Duration::from_secs(15)).await;
    assert!(closed, "slow headers kept the connection open");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A body that never arrives in full: 503, and the connection is not kept.
    let mut tls = tls_connect(&server).await;
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"apiVersion\":")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut tls, Duration::from_secs(15)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("not answered within 1 s"), "{text}");

    // A TCP connection that never starts TLS is dropped after the handshake timeout.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(15)).await;
    assert!(closed, "a silent connection was kept");
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_element_array_within_the_limit_is_answered() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let mut review = fixture_json(EDIT);
    review["request"]["object"]["spec"]["big"] = serde_json::Value::Array(vec![serde_json::Value::from(0); 1_000_000]);
    let body = serde_json::to_vec(&review).unwrap();
    assert!(body.len() < 16 * 1024 * 1024);
    let (status, answer) = server.validate(body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], false);
    let event = server.journal().pop().unwrap();
    let big = event["changes"].as_array().unwrap().iter().find(|c| c["path"] == "/spec/big").cloned().unwrap();
    assert_eq!(big["new"], "<array of 2000001 bytes>");
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_client_ca_only_the_apiserver_certificate_is_answered() {
    // What `driftgate certs --client kube-apiserver` makes.
    let client = driftgate::certs::generate_client("kube-apiserver", 1).unwrap();
    let (ca, identity) = (client.ca_pem, format!("{}{}", client.cert_pem, client.key_pem));
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("client-ca.crt");
    std::fs::write(&ca_path, ca).unwrap();
    let server = TestServer::start_with(DEFAULT_POLICY, |s| s.client_ca = Some(ca_path.clone())).await;

    // Without a client certificate: 401 on the webhook, health still answers (kubelet probes).
    let (status, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(server.get("/healthz").await.0, StatusCode::OK);
    assert!(server.journal().is_empty(), "a refused caller journals nothing");

    let apiserver = common::client_builder(&server.ca_pem, server.addr)
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = apiserver
        .post(server.url("/validate"))
        .header("content-type", "application/json")
        .body(fixture(EDIT))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    // The drift event says who called, and that it proved it.
    let journal = server.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        journal[0]["source"],
        serde_json::json!({"address": "127.0.0.1", "authenticated": true, "certificate": "CN=kube-apiserver"})
    );
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("driftgate_drift_events_total{") && l.contains(r#"authenticated="true""#)),
        "{metrics}"
    );
    server.stop().await;
}
