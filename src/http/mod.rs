//! The HTTPS transport: the TLS accept loop, HTTP/1.1 and HTTP/2 connections, the routers, and
//! the state the handlers share. Transport only: the server is assembled in [`crate::server`],
//! requests are answered in [`handlers`] (by the decision core).
//!
//! Every accepted socket sets `TCP_NODELAY` and every answer is written in one piece (no
//! vectored head/body split), so no answer waits on the peer's delayed ACK.

pub mod caller;
pub mod flood;
pub mod handlers;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::policy::PolicySet;
use crate::policy::grant::Grants;
use crate::sinks::events::EventSink;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 streams one connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Largest header block accepted (HTTP/1.1 buffer and HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// State shared by all requests.
pub struct AppState {
    /// The policies in force (swapped whole on reload).
    pub policies: Arc<ArcSwap<PolicySet>>,
    /// The drift-event journal.
    pub journal: Journal,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Set once shutdown has begun: the server is no longer ready.
    pub shutting_down: AtomicBool,
    /// The metrics `GET /metrics` serves.
    pub metrics: Arc<Metrics>,
    /// How long a request may take, body included.
    pub request_timeout: Duration,
    /// Whether the webhook endpoints require a client certificate (`client_ca` is set).
    pub require_client_cert: bool,
    /// Kubernetes Events for drift, when a cluster is configured.
    pub events: Option<Arc<EventSink>>,
    /// The per-source rate limit of drift events.
    pub flood: flood::Limiter,
    /// The live BreakGlassGrants (swapped whole by the watcher; none without a cluster).
    pub grants: Arc<ArcSwap<Grants>>,
}

/// How the accept loop stops: after `shutdown` it turns unready and keeps serving for `delay`
/// (while the endpoint leaves the Service), then stops accepting and waits up to `grace` for
/// requests in flight.
pub struct Shutdown {
    /// How long to keep serving, unready.
    pub delay: Duration,
    /// How long to wait for requests in flight.
    pub grace: Duration,
}

/// Serves HTTPS on `listener` with `app` until `signal` completes, then shuts down as `stop` says.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    state: Arc<AppState>,
    signal: impl Future<Output = ()>,
    stop: Shutdown,
) {
    let graceful = GracefulShutdown::new();
    let timeout = state.request_timeout;
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => serve_connection(&acceptor, &app, timeout, accepted, &graceful).await,
            () = &mut signal => break,
        }
    }
    // Unready first, and keep serving while the endpoint is taken out of the Service (the
    // kube-apiserver may still send requests until then); only then stop accepting.
    state.shutting_down.store(true, Ordering::Release);
    tracing::info!(delay = ?stop.delay, "shutting down: unready, still serving during the delay");
    let delay = tokio::time::sleep(stop.delay);
    tokio::pin!(delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => serve_connection(&acceptor, &app, timeout, accepted, &graceful).await,
            () = &mut delay => break,
        }
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "shutting down: finishing requests in flight");
    if tokio::time::timeout(stop.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?stop.grace, "grace period over: closing remaining connections");
    }
}

/// Serves one accepted connection on a task of its own (TLS handshake, then HTTP).
async fn serve_connection(
    acceptor: &TlsAcceptor,
    app: &Router,
    request_timeout: Duration,
    accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
    graceful: &GracefulShutdown,
) {
    let (stream, peer) = match accepted {
        Ok(accepted) => accepted,
        Err(e) => {
            // Out of file descriptors, say: back off instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, %peer, "failed to set TCP_NODELAY");
    }
    let acceptor = acceptor.clone();
    let app = app.clone();
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return tracing::debug!(error = %e, %peer, "TLS handshake failed"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        };
        // Who calls: the address, and the client certificate the configured CA signed, if
        // the peer presented one (rustls verified it during the handshake).
        let caller = caller::Caller::new(peer.ip(), tls.get_ref().1.peer_certificates());
        let app = app.layer(axum::Extension(caller));
        let builder = connection_builder(request_timeout);
        let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    });
}

/// HTTP/1.1 and HTTP/2 with deliberate limits; request headers must arrive within
/// `header_timeout` (the request timeout, below the webhook's 5 s `timeoutSeconds`).
fn connection_builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Duration::from_secs(30));
    builder
}

/// The routes of the metrics port (plain HTTP).
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route("/metrics", get(handlers::metrics)).with_state(metrics)
}

/// The routes of the HTTPS port.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/validate", post(handlers::validate))
        .route("/validate/{policy}", post(handlers::validate_policy))
        .route("/grants", post(handlers::grants))
        .route("/mutate", post(handlers::mutate))
        .route("/mutate/{policy}", post(handlers::mutate_policy))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .with_state(state)
}
