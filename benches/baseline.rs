//! The baseline for `make bench-load`: the least a webhook can do on this machine. A minimal
//! axum + rustls server (the same TLS and HTTP stack as driftgate) that parses each
//! AdmissionReview into `serde_json::Value` and answers "allowed" with its uid.
//!
//! `baseline --cert-dir DIR [--listen ADDR]`; prints `listening on ADDR` once it accepts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};

async fn validate(body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<Value>(&body) {
        Ok(review) => {
            let answer = json!({
                "apiVersion": review["apiVersion"],
                "kind": "AdmissionReview",
                "response": {"uid": review["request"]["uid"], "allowed": true},
            });
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], answer.to_string())
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": e.to_string()}).to_string(),
        ),
    }
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
    let key = driftgate::http::tls::load_pair(&cert_dir)?;
    let resolver = Arc::new(driftgate::http::tls::CertResolver::new(key));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(driftgate::http::tls::server_config(resolver)?));
    let app =
        Router::new().route("/validate", post(validate)).layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024));
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
