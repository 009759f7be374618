//! `driftgate serve`, assembled in one place: [`App::from_settings`] loads the policies and the
//! serving certificate, opens the journal, connects the Kubernetes Events sink, registers the
//! metrics and binds both ports; [`App::run`] serves until shutdown, with the policy and
//! certificate reloaders and the metrics port beside it.
//!
//! Broken policies or certificates stop start-up here; an unwritable journal does not (the
//! server starts unready and keeps denying in enforce mode). It owns no request handling
//! ([`crate::http`]) and no decision ([`crate::decide`]).

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::certs::{self, CertError};
use crate::cluster::{self, ClusterError, Connection};
use crate::config::Settings;
use crate::http::{self, AppState, Shutdown, flood, tls};
use crate::journal::{Journal, JournalConfig, JournalObserver};
use crate::metrics::Metrics;
use crate::policy::grant::Grants;
use crate::policy::{self, LoadError, PolicySet};
use crate::reload::{ReloadStats, poll_reload};
use crate::sinks::Sink;
use crate::sinks::events::{Connected, EventSink, EventSinkConfig};
use crate::sinks::forwarder::Forwarder;
use crate::sinks::runner::Forwarding;

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
    /// `--events on` or `--grants on`, and no cluster client can be made.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A sink cannot be built (its secret cannot be read, its CA file is broken, …).
    #[error("{0}")]
    Sink(String),
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

/// How often the log sums up the drift events journaled since the last summary.
const DRIFT_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Logs, at info, how many drift events were journaled in each interval that had any: each
/// event is in the journal (and at debug in the log); one formatted line per refusal cost
/// as much log as journal under load.
async fn summarise_drift(journal: Journal) {
    let mut seen = journal.stats().appended.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(DRIFT_SUMMARY_EVERY).await;
        let now = journal.stats().appended.load(Ordering::Relaxed);
        if now > seen {
            tracing::info!(events = now - seen, seconds = DRIFT_SUMMARY_EVERY.as_secs(), journal = %journal.path().display(), "drift events journaled");
        }
        seen = now;
    }
}

/// What the reloaders keep an eye on.
struct Reloading {
    policy_dir: PathBuf,
    policies_loaded: policy::Snapshot,
    policy_interval: Duration,
    own_namespace: String,
    cert_dir: PathBuf,
    cert_interval: Duration,
}

/// A bound, configured server; [`App::run`] serves until shutdown.
pub struct App {
    listener: TcpListener,
    metrics_listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    resolver: Arc<tls::CertResolver>,
    cert_expiry: Arc<AtomicI64>,
    cert_reloads: Arc<ReloadStats>,
    policy_reloads: Arc<ReloadStats>,
    reloading: Reloading,
    stop: Shutdown,
    forwarders: Vec<Forwarder>,
    /// The BreakGlassGrant watcher, when a cluster is configured.
    grants_watch: Option<tokio::task::JoinHandle<()>>,
}

impl App {
    /// Loads policies and certificates, opens the journal, connects the Events sink and binds
    /// the listeners.
    pub async fn from_settings(settings: &Settings) -> Result<App, ServeError> {
        // Snapshot first: a change made while loading is then seen by the first reload poll.
        let policies_loaded = policy::snapshot(&settings.policies)?;
        let policies = PolicySet::new(
            policy::load_snapshot(&settings.policies, &policies_loaded)?,
            std::slice::from_ref(&settings.namespace),
        );
        tracing::info!(count = policies.len(), dir = %settings.policies.display(), "policies loaded");
        if settings.dev_certs && !settings.cert_dir.join(certs::TLS_CRT).exists() {
            certs::write(&settings.cert_dir, &certs::generate(&certs::dev_request())?, false)?;
            tracing::info!(dir = %settings.cert_dir.display(), "made development CA and localhost certificate");
        }
        let key = tls::load_pair(&settings.cert_dir)?;
        let cert_expiry = Arc::new(AtomicI64::new(tls::expiry(&key).unwrap_or_default()));
        let resolver = Arc::new(tls::CertResolver::new(key));
        let client_roots = match &settings.client_ca {
            Some(path) => Some(tls::load_client_roots(path)?),
            None => None,
        };
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config_with(resolver.clone(), client_roots)?));
        let metrics = Arc::new(Metrics::new());
        let observer: Arc<dyn JournalObserver> = metrics.clone();
        let sinks = settings
            .sinks
            .iter()
            .map(|s| Sink::new(s).map(|sink| (s.clone(), sink)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ServeError::Sink)?;
        let journal = Journal::open(
            JournalConfig {
                path: settings.journal.clone(),
                max_bytes: settings.journal_max_bytes,
                keep: settings.journal_keep,
                readers: settings.sinks.iter().map(|s| s.name().to_owned()).collect(),
                undelivered_max_bytes: settings.journal_undelivered_max_bytes,
                min_retention: Duration::from_secs(settings.journal_min_retention_hours.saturating_mul(3600)),
                max_total_bytes: settings.journal_max_total_bytes,
            },
            Some(observer),
        );
        let forwarders = sinks
            .into_iter()
            .map(|(s, sink)| {
                let meters = metrics.sink(s.name(), s.kind.as_str());
                Forwarder::new(s, sink, &journal, meters)
            })
            .collect();
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
        let grants = Arc::new(ArcSwap::from_pointee(Grants { items: Vec::new(), limits: settings.grant_limits() }));
        let grants_watch = match cluster::connect(settings.grants, "--grants", "BreakGlassGrants").await? {
            Connection::On(client, target) => {
                tracing::info!(cluster = %target.cluster, namespace = %settings.namespace, "watching break-glass grants");
                Some(crate::grants::start(client, &settings.namespace, settings.grant_limits(), grants.clone()))
            }
            Connection::Off(reason) => {
                tracing::info!(%reason, "break-glass grants off");
                None
            }
        };
        let state = Arc::new(AppState {
            policies: Arc::new(ArcSwap::from_pointee(policies)),
            journal,
            max_body_bytes: settings.max_body_bytes,
            shutting_down: AtomicBool::new(false),
            metrics,
            request_timeout: Duration::from_secs(settings.request_timeout_seconds),
            require_client_cert: settings.client_ca.is_some(),
            events,
            flood: flood::Limiter::new(flood::Limit {
                rate: settings.rate_limit_per_source,
                burst: f64::from(settings.rate_limit_burst),
            }),
            grants,
        });
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: settings.listen, source })?;
        let metrics_listener = TcpListener::bind(settings.metrics_listen)
            .await
            .map_err(|source| ServeError::Bind { addr: settings.metrics_listen, source })?;
        let app = App {
            listener,
            metrics_listener,
            acceptor,
            state,
            resolver,
            cert_expiry,
            cert_reloads: Arc::new(ReloadStats::default()),
            policy_reloads: Arc::new(ReloadStats::default()),
            reloading: Reloading {
                policy_dir: settings.policies.clone(),
                policies_loaded,
                policy_interval: Duration::from_secs(settings.policy_reload_seconds),
                own_namespace: settings.namespace.clone(),
                cert_dir: settings.cert_dir.clone(),
                cert_interval: Duration::from_secs(settings.cert_reload_seconds),
            },
            stop: Shutdown {
                delay: Duration::from_secs(settings.shutdown_delay_seconds),
                grace: Duration::from_secs(settings.shutdown_grace_seconds),
            },
            forwarders,
            grants_watch,
        };
        app.register_readings();
        Ok(app)
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound address of the metrics port.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics_listener.local_addr()
    }

    /// The state the handlers share.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// The certificate resolver, to replace the served certificate.
    pub fn resolver(&self) -> Arc<tls::CertResolver> {
        self.resolver.clone()
    }

    /// What certificate reloading has done.
    pub fn cert_reloads(&self) -> Arc<ReloadStats> {
        self.cert_reloads.clone()
    }

    /// What policy reloading has done.
    pub fn policy_reloads(&self) -> Arc<ReloadStats> {
        self.policy_reloads.clone()
    }

    /// Serves until `shutdown` completes; then turns unready, keeps serving for the shutdown
    /// delay, stops accepting, and waits up to the grace period for requests in flight.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        // Each delivered batch's cursor is stored before the next is read: stopping a forwarder
        // anywhere redelivers at most its last batch after restart.
        let forwarding = match Forwarding::start(std::mem::take(&mut self.forwarders)) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(error = %e, "the sinks could not start: drift events stay in the journal only");
                None
            }
        };
        let policies = tokio::spawn(self.reload_policies());
        let summary = tokio::spawn(summarise_drift(self.state.journal.clone()));
        let floods = tokio::spawn(flood::summarise(self.state.clone()));
        let state = self.state.clone();
        let certificates = tokio::spawn(self.reload_certificates());
        let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = tokio::spawn(
            axum::serve(self.metrics_listener, http::metrics_router(self.state.metrics.clone()))
                .with_graceful_shutdown(async move {
                    let _ = metrics_stopped.await;
                })
                .into_future(),
        );
        let app = http::router(self.state.clone());
        http::serve(self.listener, self.acceptor, app, self.state, shutdown, self.stop).await;
        policies.abort();
        certificates.abort();
        summary.abort();
        floods.abort();
        if let Some(watch) = self.grants_watch {
            watch.abort();
        }
        // What a rate-limited source did since the last summary is journaled before leaving.
        flood::journal_summaries(&state).await;
        if let Some(forwarding) = forwarding {
            tokio::task::spawn_blocking(move || forwarding.stop()).await.ok();
        }
        let _ = metrics_stop.send(());
        if let Ok(Err(e)) = metrics_server.await {
            tracing::warn!(error = %e, "metrics server ended with an error");
        }
    }

    /// Swaps in a changed policy folder that loads cleanly, whole; a broken one is refused with
    /// every problem logged (file, line, reason) and the previous set kept.
    fn reload_policies(&self) -> impl Future<Output = ()> + use<> {
        let r = &self.reloading;
        let (dir, read_dir, own) = (r.policy_dir.clone(), r.policy_dir.clone(), r.own_namespace.clone());
        let policies = self.state.policies.clone();
        let apply = move |files: &policy::Snapshot| match policy::load_snapshot(&dir, files) {
            Ok(loaded) => {
                let set = PolicySet::new(loaded, std::slice::from_ref(&own));
                tracing::info!(count = set.len(), dir = %dir.display(), "policies reloaded");
                policies.store(Arc::new(set));
                true
            }
            Err(e) => {
                for problem in &e.errors {
                    tracing::error!(
                        file = %problem.file.display(),
                        line = problem.line,
                        reason = %problem.reason,
                        "policy reload refused; the previous policies stay in force"
                    );
                }
                false
            }
        };
        // An unreadable folder is a snapshot with no files: refused like an emptied one.
        let read = move || Some(policy::snapshot(&read_dir).unwrap_or_default());
        poll_reload(r.policy_interval, Some(r.policies_loaded.clone()), read, apply, self.policy_reloads.clone())
    }

    /// Serves a changed, valid certificate pair to new connections; a pair that does not load is
    /// refused (logged, counted) and the old one kept. Connections in flight keep theirs.
    fn reload_certificates(&self) -> impl Future<Output = ()> + use<> {
        let r = &self.reloading;
        let (dir, read_dir) = (r.cert_dir.clone(), r.cert_dir.clone());
        let (resolver, expiry) = (self.resolver.clone(), self.cert_expiry.clone());
        let apply = move |(crt, key): &(Vec<u8>, Vec<u8>)| match tls::pair_from_pem(&dir, crt, key) {
            Ok(pair) => {
                let not_after = tls::expiry(&pair).unwrap_or_default();
                resolver.replace(pair);
                expiry.store(not_after, Ordering::Relaxed);
                tracing::info!(dir = %dir.display(), not_after, "serving a new certificate");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "new certificate refused; still serving the previous one");
                false
            }
        };
        // Mid-rotation a file may be missing for a moment; the next poll sees the new pair.
        let read = move || {
            tls::read_pair(&read_dir).map_err(|e| tracing::debug!(error = %e, "certificate files not readable")).ok()
        };
        let loaded = tls::read_pair(&r.cert_dir).ok();
        poll_reload(r.cert_interval, loaded, read, apply, self.cert_reloads.clone())
    }

    /// Exports, at scrape time, what other parts keep: policies, journal, certificate, Events.
    fn register_readings(&self) {
        let metrics = &self.state.metrics;
        let counter = |stats: &Arc<ReloadStats>, read: fn(&ReloadStats) -> u64| {
            let stats = stats.clone();
            move || read(&stats) as i64
        };
        let (p, c) = (&self.policy_reloads, &self.cert_reloads);
        metrics.counter_fn(
            "driftgate_policy_reloads",
            "Changed policy sets taken into force",
            counter(p, |s| s.reloads.load(Ordering::Relaxed)),
        );
        metrics.counter_fn(
            "driftgate_policy_reload_errors",
            "Changed policy sets refused (the previous set stays in force)",
            counter(p, |s| s.errors.load(Ordering::Relaxed)),
        );
        metrics.gauge_fn(
            "driftgate_policy_files_in_force",
            "1 while the policy files on disk are the set in force",
            counter(p, |s| u64::from(s.in_sync.load(Ordering::Relaxed))),
        );
        let policies = self.state.policies.clone();
        metrics.gauge_fn("driftgate_policies_loaded", "Policies in force", move || policies.load().len() as i64);
        let j = self.state.journal.clone();
        metrics.gauge_fn("driftgate_journal_healthy", "1 while the last journal write succeeded", move || {
            i64::from(j.is_healthy())
        });
        let j = self.state.journal.clone();
        metrics.counter_fn("driftgate_journal_lines", "Drift events made durable in the journal", move || {
            j.stats().appended.load(Ordering::Relaxed) as i64
        });
        let j = self.state.journal.clone();
        metrics.counter_fn(
            "driftgate_journal_evicted_events",
            "Drift events removed to keep the journal within journal_max_total_bytes (unauthenticated first)",
            move || j.stats().evicted.load(Ordering::Relaxed) as i64,
        );
        let expiry = self.cert_expiry.clone();
        metrics.gauge_fn(
            "driftgate_certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate (Unix time)",
            move || expiry.load(Ordering::Relaxed),
        );
        metrics.counter_fn(
            "driftgate_certificate_reloads",
            "Rotated certificates taken into service",
            counter(c, |s| s.reloads.load(Ordering::Relaxed)),
        );
        metrics.counter_fn(
            "driftgate_certificate_reload_errors",
            "Rotated certificates refused (the previous one kept)",
            counter(c, |s| s.errors.load(Ordering::Relaxed)),
        );
        let Some(sink) = &self.state.events else { return };
        let s = sink.clone();
        metrics.gauge_fn(
            "driftgate_events_queue_depth",
            "Drift events waiting to become Kubernetes Events",
            move || s.depth() as i64,
        );
        let s = sink.clone();
        metrics.counter_fn(
            "driftgate_events_dropped",
            "Kubernetes Events dropped because the queue was full",
            move || s.dropped() as i64,
        );
        let s = sink.clone();
        metrics.counter_fn("driftgate_events_published", "Kubernetes Events created or updated", move || {
            s.published() as i64
        });
        let s = sink.clone();
        metrics.counter_fn(
            "driftgate_events_failed",
            "Kubernetes Events the API refused or did not answer",
            move || s.failed() as i64,
        );
    }
}
