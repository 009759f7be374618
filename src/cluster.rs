//! Finding the cluster the server talks to (Kubernetes Events, the BreakGlassGrant watcher): a
//! kubeconfig first (`KUBECONFIG`, then `~/.kube/config`), then a pod's service account, as
//! kubectl and client-go look; `auto` is off with the reason when there is none, `on` fails.
//! It makes the client and nothing else.

use kube::Client;

use crate::config::EventsMode;
use crate::error_chain as chain;

/// Why a client that was asked for (`on`) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Running in a pod, but the service-account token or CA could not be read.
    #[error("failed to load the in-cluster configuration for {purpose}: {}", chain(.error))]
    InCluster {
        /// What the client is for (`Kubernetes Events`).
        purpose: &'static str,
        /// Why.
        error: kube::config::InClusterError,
    },
    /// The client could not be built from the configuration.
    #[error("failed to make a Kubernetes client for {purpose}: {}", chain(.error))]
    Client {
        /// What the client is for.
        purpose: &'static str,
        /// Why.
        error: kube::Error,
    },
    /// The kubeconfig could not be loaded.
    #[error("failed to load the {place} for {purpose}: {}", chain(.error))]
    Kubeconfig {
        /// What the client is for.
        purpose: &'static str,
        /// Where it was looked for.
        place: String,
        /// Why it could not be used.
        error: kube::config::KubeconfigError,
    },
    /// `on`, and no client configuration anywhere.
    #[error("{flag} on, but there is no kubeconfig (KUBECONFIG, ~/.kube/config) and no in-cluster service account")]
    NoConfig {
        /// The setting that asked for it (`--events`).
        flag: &'static str,
    },
}

/// Where the client goes, for the start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The API server's URL.
    pub cluster: String,
    /// Where the client configuration came from (`kubeconfig /path`, `in-cluster service account`).
    pub source: String,
}

/// The outcome of [`connect`].
pub enum Connection {
    /// A client.
    On(Client, Target),
    /// None, and why.
    Off(String),
}

/// A client as `mode` asks (the setting `flag`, for `purpose`): `off` never connects; `auto`
/// connects when a kubeconfig or an in-cluster service account is found and is off (with the
/// reason) otherwise; `on` fails when none can be used. Call it within a Tokio runtime.
pub async fn connect(mode: EventsMode, flag: &'static str, purpose: &'static str) -> Result<Connection, ClusterError> {
    if mode == EventsMode::Off {
        return Ok(Connection::Off(format!("{flag} off")));
    }
    let (kube_config, source) = match config_source() {
        Some(ConfigSource::Kubeconfig(path)) => {
            let options = kube::config::KubeConfigOptions::default();
            let source = format!("kubeconfig {path}");
            match kube::Config::from_kubeconfig(&options).await {
                Ok(c) => (c, source),
                Err(error) if mode == EventsMode::Auto => {
                    return Ok(Connection::Off(format!("{source} cannot be used: {}", chain(&error))));
                }
                Err(error) => return Err(ClusterError::Kubeconfig { purpose, place: source, error }),
            }
        }
        Some(ConfigSource::InCluster) => match kube::Config::incluster() {
            Ok(c) => (c, "in-cluster service account".to_owned()),
            Err(e) if mode == EventsMode::Auto => {
                return Ok(Connection::Off(format!("the in-cluster configuration cannot be used: {}", chain(&e))));
            }
            Err(error) => return Err(ClusterError::InCluster { purpose, error }),
        },
        None if mode == EventsMode::Auto => {
            return Ok(Connection::Off("no kubeconfig (KUBECONFIG, ~/.kube/config) and not in a pod".to_owned()));
        }
        None => return Err(ClusterError::NoConfig { flag }),
    };
    let cluster = kube_config.cluster_url.to_string().trim_end_matches('/').to_owned();
    let client = Client::try_from(kube_config).map_err(|error| ClusterError::Client { purpose, error })?;
    Ok(Connection::On(client, Target { cluster, source }))
}

/// Where a client configuration would come from.
fn config_source() -> Option<ConfigSource> {
    if let Some(path) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return Some(ConfigSource::Kubeconfig(path.to_string_lossy().into_owned()));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let path = std::path::Path::new(&home).join(".kube").join("config");
        if path.is_file() {
            return Some(ConfigSource::Kubeconfig(path.display().to_string()));
        }
    }
    std::env::var_os("KUBERNETES_SERVICE_HOST").map(|_| ConfigSource::InCluster)
}

enum ConfigSource {
    Kubeconfig(String),
    InCluster,
}
