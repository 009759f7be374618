//! `driftgate manifests`: prints the whole install as YAML documents.
//!
//! A thin shell over [`crate::install`]: reads the flags, loads the inputs, prints. It must not
//! build objects itself; `register` applies the same generated webhook configurations.

use std::io::Write as _;
use std::path::PathBuf;

use crate::install::{self, Inputs, InstallError};

/// Flags shared by `manifests` and `register`: what the webhook configurations are made from.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// driftgate's namespace (never protected; where its Service is).
    #[arg(long, value_name = "NS", default_value = install::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// PEM of the CA that signed the serving certificate, for the webhooks' caBundle
    /// [default: certs/ca.crt].
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Policy folder the webhook rules are derived from.
    #[arg(long, value_name = "DIR", default_value = "policies")]
    pub policies: PathBuf,
    /// Call driftgate at this address (https://HOST:PORT) instead of through its Service, e.g. a
    /// driftgate outside the cluster; /validate and /mutate are appended.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

impl InstallArgs {
    /// Loads the policies and the CA bundle and checks the URL.
    pub fn inputs(&self, image: &str) -> Result<Inputs, InstallError> {
        let ca_bundle = self.ca_bundle.clone().unwrap_or_else(install::default_ca_bundle);
        Inputs::load(&self.policies, Some(&ca_bundle), &self.namespace, image, self.url.as_deref())
    }
}

/// Flags of `driftgate manifests`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManifestsArgs {
    /// What the install is made from.
    #[command(flatten)]
    pub install: InstallArgs,
    /// Container image of the Deployment.
    #[arg(long, value_name = "IMAGE", default_value = install::DEFAULT_IMAGE)]
    pub image: String,
    /// Let only these CIDRs reach the webhook port (the control plane's addresses; repeat the
    /// flag). Without it the NetworkPolicy admits the webhook port from anywhere, the whole
    /// cluster network included.
    #[arg(long = "webhook-source-cidr", value_name = "CIDR")]
    pub webhook_source_cidrs: Vec<String>,
}

/// Why `driftgate manifests` failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestsError {
    /// The inputs could not be loaded or rendered.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// Standard output could not be written.
    #[error("failed to write the manifests to standard output: {0}")]
    Stdout(std::io::Error),
}

/// Prints the install for the flags to standard output.
pub fn run(args: &ManifestsArgs) -> Result<(), ManifestsError> {
    let mut inputs = args.install.inputs(&args.image)?;
    inputs.options.webhook_sources = install::check_cidrs(&args.webhook_source_cidrs)?;
    let text = install::render(&install::manifests(&inputs)?);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(ManifestsError::Stdout)
}
