//! The baselines for `make bench-load`: the least a webhook can do on this machine. A minimal
//! axum + rustls server (the same TLS and HTTP stack as driftgate) that parses each
//! AdmissionReview into `serde_json::Value` and
//! - answers "allowed" with its uid (plain mode), or
//! - with `--journal FILE`, refuses it the way a durable webhook must: it appends a line the
//!   size of a typical drift event to a journal (driftgate's own group-committed writer:
//!   write, fdatasync, before the answer) and answers a 403 with a message of a drift event's
//!   length. The fair measure for refusals: the same durability, none of the decision.
//!
//! `baseline --cert-dir DIR [--listen ADDR] [--journal FILE]`; prints `listening on ADDR`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use driftgate::journal::{Journal, JournalConfig};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};

/// The size of a typical drift event line (the README's example is about this long).
const LINE_BYTES: usize = 1024;

async fn validate(State(journal): State<Option<Journal>>, body: Bytes) -> impl IntoResponse {
    let review = match serde_json::from_slice::<Value>(&body) {
        Ok(review) => review,
        Err(e) => {
            let error = json!({"error": e.to_string()}).to_string();
            return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], error);
        }
    };
    let uid = review["request"]["uid"].clone();
    let response = match &journal {
        None => json!({"uid": uid, "allowed": true}),
        Some(journal) => {
            let head = json!({"uid": uid, "user": review["request"]["userInfo"]["username"]}).to_string();
            let pad = "x".repeat(LINE_BYTES.saturating_sub(head.len() + 10));
            let line = format!("{{\"pad\":\"{pad}\",{}\n", &head[1..]);
            let _ = journal.append(line.into_bytes()).await;
            let message = "x".repeat(400);
            json!({"uid": uid, "allowed": false, "status": {"status": "Failure", "code": 403, "reason": "Forbidden", "message": message}})
        }
    };
    let answer = json!({"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response});
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], answer.to_string())
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert_dir = PathBuf::from(arg("--cert-dir").ok_or("--cert-dir DIR is required")?);
    let listen: SocketAddr = arg("--listen").unwrap_or_else(|| "127.0.0.1:0".into()).parse()?;
    let journal = arg("--journal").map(|path| {
        Journal::open(JournalConfig { max_bytes: 1 << 40, keep: 1, ..JournalConfig::new(PathBuf::from(path)) }, None)
    });
    let key = driftgate::http::tls::load_pair(&cert_dir)?;
    let resolver = Arc::new(driftgate::http::tls::CertResolver::new(key));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(driftgate::http::tls::server_config(resolver)?));
    let app = Router::new()
        .route("/validate", post(validate))
        .with_state(journal)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http1().writev(false);
                let _ = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app)).await;
            }
        });
    }
}
