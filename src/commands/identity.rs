//! Who a command that talks to the cluster acts as: the current kubeconfig (or the in-cluster
//! service account), optionally impersonating a user and groups as kubectl's `--as` and
//! `--as-group` do (the kubeconfig's user needs the `impersonate` verb). It makes the client
//! and asks the API server who that is; nothing else.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Client;
use kube::api::{Api, PostParams};

/// `--as` and `--as-group`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Identity {
    /// Act as this user (impersonation, like kubectl --as).
    #[arg(long = "as", value_name = "USER", global = true)]
    pub as_user: Option<String>,
    /// Act as a member of this group (repeat the flag; like kubectl --as-group).
    #[arg(long = "as-group", value_name = "GROUP", global = true)]
    pub as_groups: Vec<String>,
}

impl Identity {
    /// A client for the current kubeconfig (or the in-cluster config), impersonating as asked.
    pub async fn client(&self) -> Result<Client, kube::Error> {
        let mut config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
        if let Some(user) = &self.as_user {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !self.as_groups.is_empty() {
            config.auth_info.impersonate_groups = Some(self.as_groups.clone());
        }
        Client::try_from(config)
    }
}

/// The user name the API server sees for `client` (a SelfSubjectReview, what
/// `kubectl auth whoami` asks).
pub async fn whoami(client: &Client) -> Result<String, kube::Error> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await?;
    Ok(review.status.and_then(|s| s.user_info).and_then(|u| u.username).unwrap_or_default())
}
