//! The HTTPS server: TLS accept loop, HTTP/1.1 and HTTP/2 connections, the router.
//!
//! Owns sockets, TLS and connection limits; the request handling lives in [`handlers`]. Every
//! accepted socket sets `TCP_NODELAY` and every answer is written in one piece (no vectored
//! head/body split), so no answer waits on the peer's delayed ACK.

pub mod handlers;
pub mod reload;
pub mod tls;

use std::future::Future;
use std::future::IntoFuture as _;
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

use crate::certs::{self, CertError};
use crate::config::Settings;
use crate::journal::{Journal, JournalConfig, JournalObserver};
use crate::metrics::Metrics;
use crate::policy::{self, LoadError, PolicySet};
use crate::sinks::events::{Connected, EventSink, EventSinkConfig, SinkError};

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 streams one connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Largest header block accepted (HTTP/1.1 buffer and HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A policy file is broken (each problem with file, line and reason).
    #[error(transparent)]
    Policies(#[from] LoadError),
    /// Development certificates could not be made.
    #[error(transparent)]
    Certs(#[from] CertError),
    /// The certificate pair could not be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// rustls refused the configuration.
    #[error("failed to configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// `--events on`, and Events cannot be sent.
    #[error(transparent)]
    Events(#[from] SinkError),
    /// The address could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

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
    /// Certificate reloads and the expiry of the certificate in service.
    pub tls: Arc<tls::TlsStats>,
    /// The metrics `GET /metrics` serves.
    pub metrics: Arc<Metrics>,
    /// Policy reloads.
    pub reload: Arc<reload::ReloadStats>,
    /// How long a request may take, body included.
    pub request_timeout: Duration,
    /// Whether the webhook endpoints require a client certificate (`client_ca` is set).
    pub require_client_cert: bool,
    /// Kubernetes Events for drift, when running in a cluster.
    pub events: Option<Arc<EventSink>>,
}

/// A bound, configured server; [`Server::run`] serves until shutdown.
pub struct Server {
    listener: TcpListener,
    metrics_listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    state: Arc<AppState>,
    resolver: Arc<tls::CertResolver>,
    grace: Duration,
    shutdown_delay: Duration,
    cert_dir: std::path::PathBuf,
    cert_reload: Duration,
    policy_dir: std::path::PathBuf,
    policy_snapshot: reload::Snapshot,
    never_protected: Vec<String>,
    policy_reload: Duration,
}

/// Loads the policy folder into an indexed set, with `namespace` never protected.
pub fn load_policies(settings: &Settings) -> Result<PolicySet, LoadError> {
    let loaded = policy::load_dir(&settings.policies)?;
    Ok(PolicySet::new(loaded, std::slice::from_ref(&settings.namespace)))
}

impl Server {
    /// Loads policies and certificates, opens the journal and binds the listener. Broken
    /// policies or certificates stop here; an unwritable journal does not (the server starts
    /// unready and keeps denying in enforce mode).
    pub async fn bind(settings: &Settings) -> Result<Server, ServeError> {
        // Snapshot first: a change made while loading is then seen by the first reload poll.
        let policy_snapshot = reload::snapshot(&settings.policies);
        let policies = load_policies(settings)?;
        tracing::info!(count = policies.len(), dir = %settings.policies.display(), "policies loaded");
        if settings.dev_certs && !settings.cert_dir.join(certs::TLS_CRT).exists() {
            certs::write(&settings.cert_dir, &certs::generate(&certs::dev_request())?, false)?;
            tracing::info!(dir = %settings.cert_dir.display(), "made development CA and localhost certificate");
        }
        let key = tls::load_pair(&settings.cert_dir)?;
        let tls_stats = Arc::new(tls::TlsStats::default());
        tls_stats.expiry.store(tls::expiry(&key).unwrap_or_default(), Ordering::Relaxed);
        let resolver = Arc::new(tls::CertResolver::new(key));
        let client_roots = match &settings.client_ca {
            Some(path) => Some(tls::load_client_roots(path)?),
            None => None,
        };
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config_with(resolver.clone(), client_roots)?));
        let metrics = Arc::new(Metrics::new());
        let observer: Arc<dyn JournalObserver> = metrics.clone();
        let (journal, opened) = Journal::open_observed(
            JournalConfig {
                path: settings.journal.clone(),
                max_bytes: settings.journal_max_bytes,
                keep: settings.journal_keep,
            },
            Some(observer),
        );
        if let Err(e) = opened {
            tracing::error!(error = %e, "journal cannot be written: serving unready until it can");
        }
        let policies = Arc::new(ArcSwap::from_pointee(policies));
        let reload_stats = Arc::new(reload::ReloadStats::default());
        register_readings(&metrics, &policies, &journal, &tls_stats, &reload_stats);
        let events = match EventSink::connect(settings.events, EventSinkConfig::default()).await? {
            Connected::On(sink, target) => {
                tracing::info!(cluster = %target.cluster, via = %target.source, "Kubernetes Events on");
                Some(Arc::new(sink))
            }
            Connected::Off(reason) => {
                tracing::info!(%reason, "Kubernetes Events off");
                None
            }
        };
        if let Some(sink) = &events {
            register_event_readings(&metrics, sink);
        }
        let state = Arc::new(AppState {
            policies,
            journal,
            max_body_bytes: settings.max_body_bytes,
            shutting_down: AtomicBool::new(false),
            tls: tls_stats,
            metrics,
            reload: reload_stats,
            request_timeout: Duration::from_secs(settings.request_timeout_seconds),
            require_client_cert: settings.client_ca.is_some(),
            events,
        });
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: settings.listen, source })?;
        let metrics_listener = TcpListener::bind(settings.metrics_listen)
            .await
            .map_err(|source| ServeError::Bind { addr: settings.metrics_listen, source })?;
        Ok(Server {
            listener,
            metrics_listener,
            acceptor,
            app: router(state.clone()),
            state,
            resolver,
            grace: Duration::from_secs(settings.shutdown_grace_seconds),
            shutdown_delay: Duration::from_secs(settings.shutdown_delay_seconds),
            cert_dir: settings.cert_dir.clone(),
            cert_reload: Duration::from_secs(settings.cert_reload_seconds),
            policy_dir: settings.policies.clone(),
            policy_snapshot,
            never_protected: vec![settings.namespace.clone()],
            policy_reload: Duration::from_secs(settings.policy_reload_seconds),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound address of the metrics port.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics_listener.local_addr()
    }

    /// The shared state.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// The certificate resolver, to replace the served certificate.
    pub fn resolver(&self) -> Arc<tls::CertResolver> {
        self.resolver.clone()
    }

    /// Serves until `shutdown` completes; then turns unready, keeps serving for the shutdown
    /// delay, stops accepting, and waits up to the grace period for requests in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let watcher = tokio::spawn(tls::watch(
            self.cert_dir.clone(),
            self.resolver.clone(),
            self.state.tls.clone(),
            self.cert_reload,
        ));
        let policy_watcher = tokio::spawn(reload::watch(
            self.policy_dir.clone(),
            self.policy_snapshot.clone(),
            self.never_protected.clone(),
            self.state.policies.clone(),
            self.state.reload.clone(),
            self.policy_reload,
        ));
        let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = tokio::spawn(
            axum::serve(self.metrics_listener, metrics_router(self.state.metrics.clone()))
                .with_graceful_shutdown(async move {
                    let _ = metrics_stopped.await;
                })
                .into_future(),
        );
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => serve_connection(&self.acceptor, &self.app, self.state.request_timeout, accepted, &graceful).await,
                () = &mut shutdown => break,
            }
        }
        // Unready first, and keep serving while the endpoint is taken out of the Service (the
        // kube-apiserver may still send requests until then); only then stop accepting.
        self.state.shutting_down.store(true, Ordering::Release);
        tracing::info!(delay = ?self.shutdown_delay, "shutting down: unready, still serving during the delay");
        let delay = tokio::time::sleep(self.shutdown_delay);
        tokio::pin!(delay);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => serve_connection(&self.acceptor, &self.app, self.state.request_timeout, accepted, &graceful).await,
                () = &mut delay => break,
            }
        }
        drop(self.listener);
        tracing::info!(connections = graceful.count(), "shutting down: finishing requests in flight");
        if tokio::time::timeout(self.grace, graceful.shutdown()).await.is_err() {
            tracing::warn!(grace = ?self.grace, "grace period over: closing remaining connections");
        }
        watcher.abort();
        policy_watcher.abort();
        let _ = metrics_stop.send(());
        if let Ok(Err(e)) = metrics_server.await {
            tracing::warn!(error = %e, "metrics server ended with an error");
        }
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
        // Whether this peer proved itself with a client certificate the configured CA
        // signed (rustls verified it during the handshake).
        let verified = handlers::PeerCertificate(tls.get_ref().1.peer_certificates().is_some());
        let app = app.layer(axum::Extension(verified));
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

/// Exports, at scrape time, what other parts keep: policies, journal, certificate.
fn register_readings(
    metrics: &Metrics,
    policies: &Arc<ArcSwap<PolicySet>>,
    journal: &Journal,
    tls: &Arc<tls::TlsStats>,
    reload: &Arc<reload::ReloadStats>,
) {
    let r = reload.clone();
    metrics.counter_fn("driftgate_policy_reloads", "Changed policy sets taken into force", move || {
        r.reloads.load(Ordering::Relaxed) as i64
    });
    let r = reload.clone();
    metrics.counter_fn(
        "driftgate_policy_reload_errors",
        "Changed policy sets refused (the previous set stays in force)",
        move || r.errors.load(Ordering::Relaxed) as i64,
    );
    let r = reload.clone();
    metrics.gauge_fn(
        "driftgate_policy_files_in_force",
        "1 while the policy files on disk are the set in force",
        move || i64::from(r.in_sync.load(Ordering::Relaxed)),
    );
    let p = policies.clone();
    metrics.gauge_fn("driftgate_policies_loaded", "Policies in force", move || p.load().len() as i64);
    let j = journal.clone();
    metrics.gauge_fn("driftgate_journal_healthy", "1 while the last journal write succeeded", move || {
        i64::from(j.is_healthy())
    });
    let j = journal.clone();
    metrics.counter_fn("driftgate_journal_lines", "Drift events made durable in the journal", move || {
        j.stats().appended.load(Ordering::Relaxed) as i64
    });
    let t = tls.clone();
    metrics.gauge_fn(
        "driftgate_certificate_expiry_timestamp_seconds",
        "notAfter of the serving certificate (Unix time)",
        move || t.expiry.load(Ordering::Relaxed),
    );
    let t = tls.clone();
    metrics.counter_fn("driftgate_certificate_reloads", "Rotated certificates taken into service", move || {
        t.reloads.load(Ordering::Relaxed) as i64
    });
    let t = tls.clone();
    metrics.counter_fn(
        "driftgate_certificate_reload_errors",
        "Rotated certificates refused (the previous one kept)",
        move || t.reload_errors.load(Ordering::Relaxed) as i64,
    );
}

/// Exports the Kubernetes Events queue: depth, and what was dropped, published or failed.
fn register_event_readings(metrics: &Metrics, sink: &Arc<EventSink>) {
    let s = sink.clone();
    metrics.gauge_fn("driftgate_events_queue_depth", "Drift events waiting to become Kubernetes Events", move || {
        s.depth() as i64
    });
    let s = sink.clone();
    metrics.counter_fn("driftgate_events_dropped", "Kubernetes Events dropped because the queue was full", move || {
        s.dropped() as i64
    });
    let s = sink.clone();
    metrics
        .counter_fn("driftgate_events_published", "Kubernetes Events created or updated", move || s.published() as i64);
    let s = sink.clone();
    metrics.counter_fn("driftgate_events_failed", "Kubernetes Events the API refused or did not answer", move || {
        s.failed() as i64
    });
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
        .route("/mutate", post(handlers::mutate))
        .route("/mutate/{policy}", post(handlers::mutate_policy))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .with_state(state)
}
