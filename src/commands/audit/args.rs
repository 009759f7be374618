//! The flags of `driftgate audit`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::install;

const AFTER_HELP: &str = "\
Every managedFields entry of a protected object names the field manager that last wrote its
fields (kubectl-edit, kubectl-patch, argocd-controller, kustomize-controller, ...), how (Apply for
server-side apply, Update for every other write) and when. An entry is drift when its manager is
not one of the policy's GitOps field managers (spec.gitops.fieldManagers; by default
argocd-controller, argocd-application-controller, kustomize-controller, helm-controller) and it
owns a protected path: anything but the status and the metadata the API server and the tools
manage (resourceVersion, the last-applied and Argo CD tracking annotations, ...).

managedFields is evidence of the last writer of each field, not a history: a later writer of the
same field takes it over (a forced re-apply from Git makes the object clean again), an edit that
was reverted by hand leaves nothing, and a manager name is whatever the client sent.

Formats:
  table   one row a drifted object and writer: object, kind, policy, manager, operation, when,
          the first paths
  json    one JSON object a line for each drifted object (policy, object, gitops, writers with
          manager, operation, time, subresource and every path)
  report  YAML documents: a wgpolicyk8s.io/v1alpha2 PolicyReport per namespace (a
          ClusterPolicyReport for cluster-scoped objects), fail for each drifted object and pass
          for each clean one: the current state, as Kyverno's reports are

Exit status: 0 no drift, 1 drift found, 2 the audit could not run.";

/// `driftgate audit`: which live protected objects were last written outside GitOps.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct AuditArgs {
    /// Policy folder: the protected kinds and each policy's GitOps field managers
    #[arg(long, value_name = "DIR", env = "DRIFTGATE_POLICIES", default_value = "policies")]
    pub policies: PathBuf,
    /// Only objects in this namespace (repeat for several); cluster-scoped objects are then left
    /// out [default: every namespace]
    #[arg(long, value_name = "NS")]
    pub namespace: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Server-side apply the reports (field manager driftgate), replacing the previous ones, and
    /// delete driftgate's own reports where nothing is audited any more (needs the PolicyReport
    /// CRDs: manifests/components/policy-reports)
    #[arg(long)]
    pub write_reports: bool,
    /// driftgate's own namespace, never protected
    #[arg(long, value_name = "NS", env = "DRIFTGATE_NAMESPACE", default_value = install::DEFAULT_NAMESPACE)]
    pub own_namespace: String,
}

/// How the audit is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON lines, one a drifted object.
    Json,
    /// PolicyReport YAML documents.
    Report,
}
