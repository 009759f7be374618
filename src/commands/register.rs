//! `driftgate register` and `driftgate unregister`: server-side apply (and delete) the two
//! webhook configurations in the cluster of the current kubeconfig, or the in-cluster config.
//!
//! Thin on purpose: the objects come from [`crate::install::webhooks`], exactly what
//! `driftgate manifests` prints. Applying is idempotent (field manager `driftgate`, forced, so
//! driftgate owns the fields it sets); `--dry-run` is the API server's dry run, which runs
//! validation and admission but stores nothing. Deleting what is absent succeeds. It must not
//! touch anything but the two webhook configurations.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::identity::{self, Identity};
use super::manifests::InstallArgs;
use crate::error_chain as chain;
use crate::install::{self, FIELD_MANAGER, InstallError, Webhooks};

/// Flags of `driftgate register`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegisterArgs {
    /// What the webhook configurations are made from.
    #[command(flatten)]
    pub install: InstallArgs,
    /// Server-side dry run: the API server validates the objects and stores nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Why registering or unregistering failed. Each message carries its cause once (the kube
/// client's errors repeat their causes in their own messages, so they are not chained again).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The policies, the CA bundle or the URL could not be used.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The async runtime could not start.
    #[error("failed to start the runtime: {0}")]
    Runtime(std::io::Error),
    /// No cluster to talk to.
    #[error("failed to connect to the cluster of the current kubeconfig (or the in-cluster config): {}", chain(.0))]
    Connect(kube::Error),
    /// The API server refused the apply.
    #[error("failed to apply {kind} {name}: {}", chain(.error))]
    Apply {
        /// The kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// The API error.
        error: kube::Error,
    },
    /// driftgate's tamper guard refused the delete: the caller is neither a GitOps identity
    /// nor a break-glass member.
    #[error(
        "failed to delete {kind} {name}: driftgate's tamper guard refuses it for {user}. Run `driftgate unregister` as \
         the GitOps identity (its kubeconfig, or `--as` it if you may impersonate) or as a break-glass member \
         (`--as-group driftgate:break-glass`), or remove driftgate from Git. The API server said: {message}"
    )]
    Guarded {
        /// The kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// Who was refused.
        user: String,
        /// The guard's message.
        message: String,
    },
    /// The API server refused the delete.
    #[error("failed to delete {kind} {name}: {}", chain(.error))]
    Delete {
        /// The kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// The API error.
        error: kube::Error,
    },
}

const VALIDATING: &str = "validatingwebhookconfiguration.admissionregistration.k8s.io";
const MUTATING: &str = "mutatingwebhookconfiguration.admissionregistration.k8s.io";

/// Server-side applies both configurations; gives one line a configuration, as kubectl prints.
pub async fn apply(client: Client, hooks: &Webhooks, dry_run: bool) -> Result<Vec<String>, RegisterError> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    let suffix = if dry_run { " (server dry run)" } else { "" };
    let name = install::APP;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    validating.patch(name, &params, &Patch::Apply(&hooks.validating)).await.map_err(|error| RegisterError::Apply {
        kind: "ValidatingWebhookConfiguration",
        name: name.to_owned(),
        error,
    })?;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client);
    mutating.patch(name, &params, &Patch::Apply(&hooks.mutating)).await.map_err(|error| RegisterError::Apply {
        kind: "MutatingWebhookConfiguration",
        name: name.to_owned(),
        error,
    })?;
    let webhooks = |names: Vec<&str>| {
        if names.is_empty() {
            "no webhooks (no policy repairs or stamps provenance)".to_owned()
        } else {
            names.join(", ")
        }
    };
    Ok(vec![
        format!(
            "{VALIDATING}/{name} serverside-applied{suffix}: {}",
            webhooks(hooks.validating.webhooks.iter().flatten().map(|w| w.name.as_str()).collect())
        ),
        format!(
            "{MUTATING}/{name} serverside-applied{suffix}: {}",
            webhooks(hooks.mutating.webhooks.iter().flatten().map(|w| w.name.as_str()).collect())
        ),
    ])
}

/// Deletes both configurations (the validating one first); an absent one is no error.
pub async fn delete(client: Client) -> Result<Vec<String>, RegisterError> {
    let name = install::APP;
    let user = || async { identity::whoami(&client).await.unwrap_or_else(|_| "you".to_owned()) };
    let outcome = async |result: Result<(), kube::Error>, kind: &'static str, what: &str| match result {
        Ok(()) => Ok(format!("{what}/{name} deleted")),
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            Ok(format!("{what}/{name} not found (nothing to do)"))
        }
        Err(kube::Error::Api(status)) if status.message.contains(install::guard::REFUSAL_PREFIX) => {
            Err(RegisterError::Guarded { kind, name: name.to_owned(), user: user().await, message: status.message })
        }
        Err(error) => Err(RegisterError::Delete { kind, name: name.to_owned(), error }),
    };
    let params = DeleteParams::default();
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let v = validating.delete(name, &params).await.map(|_| ());
    let mut lines = vec![outcome(v, "ValidatingWebhookConfiguration", VALIDATING).await?];
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let m = mutating.delete(name, &params).await.map(|_| ());
    lines.push(outcome(m, "MutatingWebhookConfiguration", MUTATING).await?);
    Ok(lines)
}

fn runtime() -> Result<tokio::runtime::Runtime, RegisterError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RegisterError::Runtime)
}

/// `driftgate register`: builds the configurations from the flags and applies them.
pub fn run(args: &RegisterArgs) -> Result<(), RegisterError> {
    let inputs = args.install.inputs(install::DEFAULT_IMAGE)?;
    let hooks = install::webhooks(&inputs.policies, &inputs.options);
    let lines = runtime()?.block_on(async {
        let client = Client::try_default().await.map_err(RegisterError::Connect)?;
        apply(client, &hooks, args.dry_run).await
    })?;
    lines.iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// `driftgate unregister`: deletes both configurations, as `identity`.
pub fn run_unregister(identity: &Identity) -> Result<(), RegisterError> {
    let lines = runtime()?.block_on(async {
        let client = identity.client().await.map_err(RegisterError::Connect)?;
        delete(client).await
    })?;
    lines.iter().for_each(|l| println!("{l}"));
    Ok(())
}
