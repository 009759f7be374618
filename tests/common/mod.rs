//! The test harness: a real driftgate server on an ephemeral loopback port, with certificates
//! made for the test, and a TLS client that verifies the server against that CA as the
//! kube-apiserver does.
#![allow(dead_code)]
// Test harness code: a failed set-up should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgate::App;
use driftgate::Settings;
use driftgate::certs;
use driftgate::http::AppState;
use driftgate::reload::ReloadStats;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The shipped default policy set.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.yaml");

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A fixture as JSON, to derive variants from.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub policy_reloads: Arc<ReloadStats>,
    pub cert_reloads: Arc<ReloadStats>,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with `policy_yaml` as its only policy file.
    pub async fn start(policy_yaml: &str) -> TestServer {
        Self::start_with(policy_yaml, |_| {}).await
    }

    /// A server with `policy_yaml`, and settings adjusted by `adjust`.
    pub async fn start_with(policy_yaml: &str, adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_test(dir.path());
        std::fs::create_dir_all(&settings.policies).unwrap();
        std::fs::write(settings.policies.join("policy.yaml"), policy_yaml).unwrap();
        let bundle = certs::generate(&certs::dev_request()).unwrap();
        certs::write(&settings.cert_dir, &bundle, false).unwrap();
        adjust(&mut settings);
        let server = App::from_settings(&settings).await.unwrap();
        let addr = server.local_addr().unwrap();
        let metrics_addr = server.metrics_addr().unwrap();
        let state = server.state();
        let (policy_reloads, cert_reloads) = (server.policy_reloads(), server.cert_reloads());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let client = client_for(&bundle.ca_pem, addr, false);
        TestServer {
            addr,
            metrics_addr,
            dir,
            ca_pem: bundle.ca_pem,
            client,
            state,
            policy_reloads,
            cert_reloads,
            settings,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr.port(), path)
    }

    /// POSTs a body to /validate as JSON; the status and the parsed JSON answer.
    pub async fn validate(&self, body: Vec<u8>) -> (StatusCode, Value) {
        self.post("/validate", body, "application/json").await
    }

    pub async fn validate_fixture(&self, name: &str) -> (StatusCode, Value) {
        self.validate(fixture(name)).await
    }

    pub async fn post(&self, path: &str, body: Vec<u8>, content_type: &str) -> (StatusCode, Value) {
        let resp =
            self.client.post(self.url(path)).header("content-type", content_type).body(body).send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// The text of `GET /metrics` on the metrics port.
    pub async fn metrics(&self) -> String {
        let resp = reqwest::get(format!("http://{}/metrics", self.metrics_addr)).await.unwrap();
        assert!(resp.status().is_success());
        resp.text().await.unwrap()
    }

    pub fn journal_path(&self) -> PathBuf {
        self.settings.journal.clone()
    }

    /// The journal's events, in order.
    pub fn journal(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.journal_path()) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Stops the server (as on SIGTERM) and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

/// A client that trusts only `ca_pem` and reaches `localhost` at `addr`.
pub fn client_for(ca_pem: &str, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    let mut builder = client_builder(ca_pem, addr);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

/// A client that trusts only `ca_pem` and reaches `localhost` at `addr` (add to it, e.g. a
/// local address to send from).
pub fn client_builder(ca_pem: &str, addr: SocketAddr) -> reqwest::ClientBuilder {
    driftgate::http::tls::install_default_provider();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(30))
}

/// Polls `check` until it holds or `deadline` passes.
pub async fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// The default policy with its mode and scope replaced.
pub fn policy_with(mode: &str, scope: &str) -> String {
    DEFAULT_POLICY.replace("mode: enforce", &format!("mode: {mode}")).replace("scope: all", &format!("scope: {scope}"))
}
