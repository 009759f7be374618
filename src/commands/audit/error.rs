//! Why `driftgate audit` could not run. Drift is not an error: it is the exit status 1.

use crate::error_chain as chain;
use crate::policy::LoadError;

/// Why the audit could not run. Each message carries its cause once (the kube client's errors
/// repeat their causes in their own messages, so they are not chained again).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The policy folder does not load (each problem with file, line and reason).
    #[error(transparent)]
    Policies(#[from] LoadError),
    /// The async runtime could not start.
    #[error("failed to start the runtime: {0}")]
    Runtime(std::io::Error),
    /// No cluster to talk to.
    #[error("failed to connect to the cluster of the current kubeconfig (or the in-cluster config): {}", chain(.0))]
    Connect(kube::Error),
    /// API discovery of a protected group failed (other than the group being absent).
    #[error("failed to discover the API group {group:?} of the policies: {}", chain(.error))]
    Discovery {
        /// The group.
        group: String,
        /// The API error.
        error: kube::Error,
    },
    /// Listing a protected kind failed.
    #[error("failed to list {what}: {}", chain(.error))]
    List {
        /// The kind and where (`virtualservices.networking.istio.io in namespace shop`).
        what: String,
        /// The API error.
        error: kube::Error,
    },
    /// A listed object could not be read as JSON.
    #[error("failed to read a listed {what}: {error}")]
    Object {
        /// The kind.
        what: String,
        /// Why.
        error: serde_json::Error,
    },
    /// The PolicyReport CRDs are not installed.
    #[error(
        "failed to write {kind} {where_}: the wgpolicyk8s.io/v1alpha2 PolicyReport CRDs are not installed (kubectl apply -k manifests/components/policy-reports, or install Kyverno or Policy Reporter)"
    )]
    NoReportCrd {
        /// `PolicyReport` or `ClusterPolicyReport`.
        kind: &'static str,
        /// `shop/driftgate-audit`.
        where_: String,
    },
    /// Writing or deleting a report failed.
    #[error("failed to {verb} {kind} {where_}: {}", chain(.error))]
    Report {
        /// `apply`, `list` or `delete`.
        verb: &'static str,
        /// `PolicyReport` or `ClusterPolicyReport`.
        kind: &'static str,
        /// `shop/driftgate-audit`.
        where_: String,
        /// The API error.
        error: kube::Error,
    },
    /// A report could not be written as YAML.
    #[error("failed to write the reports as YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Standard output could not be written.
    #[error("failed to write the output: {0}")]
    Output(#[from] std::io::Error),
}
