//! Delivery of drift events to sinks, through the real server: an HTTPS receiver capturing
//! webhook POSTs (CloudEvents and Slack) and an OTLP/HTTP receiver decoding the protobuf with
//! the opentelemetry-proto types. Every event arrives once and in order; a receiver that fails
//! and hangs gets everything once it recovers; a SIGKILL mid-delivery loses nothing; the
//! undelivered cap drops exactly the events it counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::{DEFAULT_POLICY, TestServer, client_for, eventually, fixture};
use driftgate::sinks::settings::{Secret, SinkSettings, SinkType, WebhookFormat};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde_json::Value;
use tokio::net::TcpListener;

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;
const SLOW: u8 = 3;

/// What the receivers got, in arrival order.
#[derive(Debug, Default)]
struct Got {
    /// CloudEvents' ids (= drift event ids).
    cloudevents: Vec<String>,
    /// Slack messages' texts.
    slack: Vec<String>,
    /// OTLP log records' `driftgate.event.id`.
    otlp: Vec<String>,
    /// OTLP export requests.
    otlp_requests: usize,
    /// The `authorization` header of every request.
    auth: Vec<String>,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Got>>,
    mode: Arc<AtomicU8>,
}

impl Receiver {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn cloudevents(&self) -> Vec<String> {
        self.got.lock().unwrap().cloudevents.clone()
    }
}

async fn receive(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    match r.mode.load(Ordering::SeqCst) {
        FAIL => return StatusCode::INTERNAL_SERVER_ERROR,
        HANG => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK;
        }
        SLOW => tokio::time::sleep(Duration::from_millis(40)).await,
        _ => {}
    }
    let mut got = r.got.lock().unwrap();
    if let Some(auth) = headers.get("authorization") {
        got.auth.push(auth.to_str().unwrap().to_owned());
    }
    match uri.path() {
        "/hook" => {
            assert_eq!(headers["content-type"], "application/cloudevents+json");
            let ce: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(ce["specversion"], "1.0");
            assert_eq!(ce["id"], ce["data"]["id"]);
            got.cloudevents.push(ce["id"].as_str().unwrap().to_owned());
        }
        "/slack" => {
            let msg: Value = serde_json::from_slice(&body).unwrap();
            got.slack.push(msg["text"].as_str().unwrap().to_owned());
        }
        "/v1/logs" => {
            assert_eq!(headers["content-type"], "application/x-protobuf");
            let req = ExportLogsServiceRequest::decode(body.as_ref()).unwrap();
            got.otlp_requests += 1;
            for rl in &req.resource_logs {
                for sl in &rl.scope_logs {
                    for record in &sl.log_records {
                        let id = record.attributes.iter().find(|a| a.key == "driftgate.event.id").unwrap();
                        let Some(any_value::Value::StringValue(id)) = id.value.as_ref().unwrap().value.as_ref() else {
                            panic!("no event id")
                        };
                        got.otlp.push(id.clone());
                    }
                }
            }
        }
        other => panic!("unexpected path {other}"),
    }
    StatusCode::OK
}

/// Serves the receiver on `listener`, over TLS with the certificates in `tls_dir` when given.
fn serve(receiver: Receiver, listener: TcpListener, tls_dir: Option<&Path>) -> tokio::task::JoinHandle<()> {
    let app = Router::new().fallback(axum::routing::post(receive)).with_state(receiver);
    let acceptor = tls_dir.map(|dir| {
        let key = driftgate::http::tls::load_pair(dir).unwrap();
        let resolver = Arc::new(driftgate::http::tls::CertResolver::new(key));
        tokio_rustls::TlsAcceptor::from(Arc::new(driftgate::http::tls::server_config(resolver).unwrap()))
    });
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (app, acceptor) = (app.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else { return };
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    })
}

/// An HTTPS receiver (its CA in `dir/receiver/ca.crt`) and the address it listens on.
async fn https_receiver(dir: &Path, receiver: &Receiver) -> SocketAddr {
    let certs = dir.join("receiver");
    let bundle = driftgate::certs::generate(&driftgate::certs::dev_request()).unwrap();
    driftgate::certs::write(&certs, &bundle, true).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(receiver.clone(), listener, Some(&certs));
    addr
}

fn webhook(name: &str, addr: SocketAddr, path: &str, dir: &Path) -> SinkSettings {
    SinkSettings {
        name: Some(name.into()),
        url: Some(Secret::Value(format!("https://localhost:{}{path}", addr.port()))),
        ca_file: Some(dir.join("receiver/ca.crt")),
        timeout_seconds: 1,
        batch_max_events: 10,
        ..SinkSettings::new(SinkType::Webhook)
    }
}

/// Sends `n` refused edits; the drift event ids the answers name, in order.
async fn deny(server: &TestServer, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let (status, answer) = server.validate_fixture(EDIT).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
        ids.push(answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The value of the metric line starting with `prefix` (0 when absent).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_slack_and_otlp_get_every_event_once_in_order() {
    let receiver = Receiver::default();
    let setup = tempfile::tempdir().unwrap();
    let addr = https_receiver(setup.path(), &receiver).await;
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_addr = plain.local_addr().unwrap();
    serve(receiver.clone(), plain, None);
    std::fs::write(setup.path().join("token"), "Bearer s3cret\n").unwrap();
    let dir = setup.path().to_owned();
    let server = TestServer::start_with(DEFAULT_POLICY, |s| {
        let mut ce = webhook("audit-log", addr, "/hook", &dir);
        ce.headers.insert("Authorization".into(), Secret::File { from_file: dir.join("token") });
        let slack = SinkSettings { format: WebhookFormat::Slack, ..webhook("slack", addr, "/slack", &dir) };
        let otlp = SinkSettings {
            name: Some("collector".into()),
            endpoint: Some(format!("http://{otlp_addr}/v1/logs")),
            ..SinkSettings::new(SinkType::Otlp)
        };
        s.sinks = vec![ce, slack, otlp];
    })
    .await;
    let ids = deny(&server, 25).await;
    let delivered = || {
        let g = receiver.got.lock().unwrap();
        g.cloudevents.len() >= ids.len() && g.slack.len() >= ids.len() && g.otlp.len() >= ids.len()
    };
    assert!(eventually(Duration::from_secs(20), delivered).await, "{:?}", receiver.got.lock().unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let got = receiver.got.lock().unwrap();
        assert_eq!(got.cloudevents, ids, "every event once, in order");
        assert_eq!(got.otlp, ids);
        // The burst is gathered (batch_max_wait_ms): a few export requests, not one an event.
        assert!(got.otlp_requests <= 5, "{} OTLP requests for {} events", got.otlp_requests, ids.len());
        assert_eq!(got.slack.len(), ids.len());
        assert!(got.slack[0].contains("tried to UPDATE VirtualService"), "{}", got.slack[0]);
        assert!(got.auth.iter().filter(|a| *a == "Bearer s3cret").count() == ids.len(), "{:?}", got.auth);
    }
    let text = server.metrics().await;
    assert_eq!(metric(&text, r#"driftgate_sink_delivered_total{sink="audit-log",type="webhook"}"#), 25.0, "{text}");
    assert_eq!(metric(&text, r#"driftgate_sink_delivered_total{sink="collector",type="otlp"}"#), 25.0);
    assert_eq!(metric(&text, r#"driftgate_sink_lag_events{sink="slack",type="webhook"}"#), 0.0);
    assert_eq!(metric(&text, r#"driftgate_sink_dropped_total{sink="slack",type="webhook"}"#), 0.0);
    // The cursors sit next to the journal.
    assert!(server.settings.journal.with_extension("jsonl.audit-log.cursor").exists());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_fails_then_hangs_gets_everything_once_it_recovers() {
    let receiver = Receiver::default();
    let setup = tempfile::tempdir().unwrap();
    let addr = https_receiver(setup.path(), &receiver).await;
    let dir = setup.path().to_owned();
    let server = TestServer::start_with(DEFAULT_POLICY, |s| s.sinks = vec![webhook("hook", addr, "/hook", &dir)]).await;
    receiver.set(FAIL);
    let mut ids = deny(&server, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    receiver.set(HANG);
    ids.extend(deny(&server, 10).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    receiver.set(OK);
    ids.extend(deny(&server, 5).await);
    let r = receiver.clone();
    assert!(eventually(Duration::from_secs(60), || r.cloudevents().len() >= ids.len()).await, "{:?}", r.cloudevents());
    assert_eq!(receiver.cloudevents(), ids);
    let text = server.metrics().await;
    assert!(metric(&text, r#"driftgate_sink_failed_attempts_total{sink="hook",type="webhook"}"#) >= 2.0, "{text}");
    assert_eq!(metric(&text, r#"driftgate_sink_delivered_total{sink="hook",type="webhook"}"#), 25.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_undelivered_cap_drops_exactly_the_events_it_counts() {
    let receiver = Receiver::default();
    let setup = tempfile::tempdir().unwrap();
    // The receiver's port: bound (no one else takes it) but not listening (connections are
    // refused) until the receiver comes up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let certs = setup.path().join("receiver");
    driftgate::certs::write(&certs, &driftgate::certs::generate(&driftgate::certs::dev_request()).unwrap(), true)
        .unwrap();
    let dir = setup.path().to_owned();
    let server = TestServer::start_with(DEFAULT_POLICY, |s| {
        s.journal_max_bytes = 8192;
        s.journal_keep = 1;
        s.journal_undelivered_max_bytes = 16384;
        s.sinks = vec![webhook("hook", addr, "/hook", &dir)];
    })
    .await;
    // A first few, until the sink is stuck retrying them; then the rest, which rotation deletes
    // past the cap while it retries: those drops are counted as they happen, not once the
    // receiver is back.
    let mut ids = deny(&server, 5).await;
    let counted = |name: &'static str| {
        let server = &server;
        async move { metric(&server.metrics().await, &format!(r#"driftgate_sink_{name}{{sink="hook",type="webhook"}}"#)) }
    };
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while counted("failed_attempts_total").await == 0.0 && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ids.extend(deny(&server, 115).await);
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while counted("dropped_total").await == 0.0 && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counted("dropped_total").await > 0.0, "drops counted while the receiver is down");
    assert!(receiver.cloudevents().is_empty());
    serve(receiver.clone(), socket.listen(1024).unwrap(), Some(&certs));
    let lag = || async {
        let text = server.metrics().await;
        metric(&text, r#"driftgate_sink_lag_events{sink="hook",type="webhook"}"#)
    };
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while (lag().await > 0.0 || receiver.cloudevents().is_empty()) && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = server.metrics().await;
    let dropped = metric(&text, r#"driftgate_sink_dropped_total{sink="hook",type="webhook"}"#) as usize;
    let got = receiver.cloudevents();
    assert!(dropped > 0, "the cap was reached: {text}");
    assert_eq!(got.len() + dropped, ids.len(), "delivered + dropped = all: {text}");
    // Exactly the events not delivered were dropped: what arrived is the recorded events
    // without them, in order, once each.
    let mut expected = ids.clone();
    expected.retain(|id| got.contains(id));
    assert_eq!(got, expected);
    server.stop().await;
}

/// Starts `driftgate serve` in `dir` (settings in `dir/driftgate.yaml`); its address, and its
/// standard output's lines collected as they come.
fn spawn(dir: &Path) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .current_dir(dir)
        .args(["serve", "--config", "driftgate.yaml", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("DRIFTGATE_METRICS_LISTEN", "127.0.0.1:0")
        .env("DRIFTGATE_DEV_CERTS", "false")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("driftgate exited before serving").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "driftgate serving" {
            break v["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let out = Arc::new(Mutex::new(Vec::new()));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let collected = out.clone();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            collected.lock().unwrap().push(line);
        }
    });
    (child, addr, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_sigkill_mid_delivery_nothing_is_lost() {
    let receiver = Receiver::default();
    let dir = tempfile::tempdir().unwrap();
    let addr = https_receiver(dir.path(), &receiver).await;
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/default.yaml"), DEFAULT_POLICY).unwrap();
    let bundle = driftgate::certs::generate(&driftgate::certs::dev_request()).unwrap();
    driftgate::certs::write(&dir.path().join("certs"), &bundle, false).unwrap();
    std::fs::write(
        dir.path().join("driftgate.yaml"),
        format!(
            "sinks:\n  - type: stdout\n  - name: hook\n    type: webhook\n    url: https://localhost:{}/hook\n    ca_file: receiver/ca.crt\n    batch_max_events: 10\n",
            addr.port()
        ),
    )
    .unwrap();
    receiver.set(SLOW);
    let (mut child, server, stdout) = spawn(dir.path());
    let client = client_for(&bundle.ca_pem, server, false);
    let url = format!("https://localhost:{}/validate", server.port());
    let mut ids = Vec::new();
    for _ in 0..80 {
        let answer: Value = client
            .post(&url)
            .header("content-type", "application/json")
            .body(fixture(EDIT))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned());
    }
    let r = receiver.clone();
    assert!(eventually(Duration::from_secs(20), || r.cloudevents().len() >= 15).await);
    child.kill().unwrap(); // SIGKILL, mid-delivery: the receiver takes one event each 40 ms
    child.wait().unwrap();
    let before = receiver.cloudevents().len();
    assert!(before < ids.len(), "killed before the end of delivery");

    receiver.set(OK);
    let (mut child, _, stdout_after) = spawn(dir.path());
    let r = receiver.clone();
    let all = || {
        let got = r.cloudevents();
        ids.iter().all(|id| got.contains(id))
    };
    assert!(
        eventually(Duration::from_secs(30), all).await,
        "{} of {} after restart",
        receiver.cloudevents().len(),
        ids.len()
    );
    // Standard output gets every event too (its forwarder gathers for up to a second).
    let printed = || -> Vec<String> {
        // Every line the first process wrote (some still in the pipe at the SIGKILL), then the
        // second's.
        let mut printed: Vec<String> = stdout.lock().unwrap().clone();
        printed.extend(stdout_after.lock().unwrap().iter().cloned());
        printed
            .iter()
            // The line being written at the SIGKILL may be cut short.
            .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["id"].as_str().map(str::to_owned))
            .collect()
    };
    let on_stdout = || {
        let printed_ids = printed();
        ids.iter().all(|id| printed_ids.contains(id))
    };
    assert!(eventually(Duration::from_secs(30), on_stdout).await, "stdout has every event");
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let got = receiver.cloudevents();
    // In order, and the only duplicates are of the batch in flight when it was killed.
    let mut first_seen: Vec<&String> = Vec::new();
    for id in &got {
        if !first_seen.contains(&id) {
            first_seen.push(id);
        }
    }
    assert_eq!(first_seen, ids.iter().collect::<Vec<_>>());
    let duplicates = got.len() - ids.len();
    assert!(duplicates <= 10, "{duplicates} duplicates: more than one batch");
    // Standard output got every event, as drift-event JSON lines.
    let printed_ids = printed();
    assert!(ids.iter().all(|id| printed_ids.contains(id)), "stdout has every event");
}
