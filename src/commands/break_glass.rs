//! `driftgate break-glass`: `grant`, `list` and `revoke` time-boxed BreakGlassGrants in
//! driftgate's namespace, as the current kubeconfig's user (or `--as`).
//!
//! Thin: the grant is built here from the flags (its granter is the user the API server says
//! the caller is), and driftgate's own webhook checks it on the way in (reason, cap, granter,
//! self-grant); what it refuses is printed as driftgate said it. Reading a listed grant uses
//! the same model as the server ([`crate::policy::grant`]).

use std::process::ExitCode;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::identity::{self, Identity};
use crate::grants::api_resource;
use crate::install::DEFAULT_NAMESPACE;
use crate::policy::grant::{self, Grant, GrantLimits, GrantSubject};

/// Flags of `driftgate break-glass`.
#[derive(Debug, clap::Args)]
pub struct BreakGlassArgs {
    #[command(subcommand)]
    action: Action,
    /// driftgate's namespace, where grants live.
    #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE, global = true)]
    driftgate_namespace: String,
    /// Who to act as.
    #[command(flatten)]
    identity: Identity,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Let people change protected objects for a while, for a reason.
    Grant(GrantArgs),
    /// The grants, active and expired.
    List,
    /// Delete a grant: it stops matching at once.
    Revoke {
        /// The grant's name.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct GrantArgs {
    /// A user who may change the scope (repeat the flag).
    #[arg(long = "user", value_name = "USER")]
    users: Vec<String>,
    /// A group whose members may (repeat the flag).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// A service account, NAMESPACE/NAME, that may (repeat the flag).
    #[arg(long = "service-account", value_name = "NS/NAME")]
    service_accounts: Vec<String>,
    /// A namespace of the objects (repeat the flag).
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// A kind of the objects, e.g. VirtualService (repeat the flag).
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<String>,
    /// An object name (repeat the flag).
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// How long, e.g. 1h or 30m (driftgate caps it; 4h unless its settings say otherwise).
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// Why: an incident reference.
    #[arg(long)]
    reason: String,
}

/// Why a break-glass command failed.
#[derive(Debug, thiserror::Error)]
pub enum BreakGlassError {
    /// The flags do not make a grant.
    #[error("{0}")]
    Flags(String),
    /// No cluster to talk to.
    #[error("failed to connect to the cluster of the current kubeconfig: {}", crate::error_chain(.0))]
    Connect(kube::Error),
    /// The API server (or driftgate's webhook) refused.
    #[error("{action} refused: {message}")]
    Refused {
        /// What was tried.
        action: String,
        /// What the API server said (driftgate's message, for a refused grant).
        message: String,
    },
    /// The async runtime could not start.
    #[error("failed to start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs `driftgate break-glass`.
pub fn run(args: &BreakGlassArgs) -> ExitCode {
    match execute(args) {
        Ok(lines) => {
            lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("driftgate break-glass: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &BreakGlassArgs) -> Result<Vec<String>, BreakGlassError> {
    // The flags are checked before anything talks to the cluster.
    let grant = match &args.action {
        Action::Grant(g) => Some(g.object()?),
        Action::List | Action::Revoke { .. } => None,
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(BreakGlassError::Runtime)?;
    runtime.block_on(async {
        let client = args.identity.client().await.map_err(BreakGlassError::Connect)?;
        let ns = &args.driftgate_namespace;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource());
        let refused =
            |action: String| move |e: kube::Error| BreakGlassError::Refused { action, message: message_of(&e) };
        if let Some(mut object) = grant {
            let me = identity::whoami(&client).await.map_err(refused("asking the API server who you are".into()))?;
            object["spec"]["granter"] = json!(me);
            let object: DynamicObject =
                serde_json::from_value(object).map_err(|e| BreakGlassError::Flags(e.to_string()))?;
            let made = api.create(&PostParams::default(), &object).await.map_err(refused("the grant was".into()))?;
            return Ok(vec![describe_created(&made, ns)]);
        }
        match &args.action {
            Action::Revoke { name } => {
                api.delete(name, &DeleteParams::default()).await.map_err(refused(format!("revoking {name} was")))?;
                Ok(vec![format!("breakglassgrant {ns}/{name} revoked: it matches nothing from now on")])
            }
            // (A grant was made and returned above.)
            Action::List | Action::Grant(_) => {
                let list = api.list(&ListParams::default()).await.map_err(refused("listing grants was".into()))?;
                Ok(table(&list.items, OffsetDateTime::now_utc()))
            }
        }
    })
}

impl GrantArgs {
    /// The grant the flags describe, without its granter (the API server says who that is).
    fn object(&self) -> Result<Value, BreakGlassError> {
        let mut subjects: Vec<Value> = Vec::new();
        subjects.extend(self.users.iter().map(|u| json!({"kind": "User", "name": u})));
        subjects.extend(self.groups.iter().map(|g| json!({"kind": "Group", "name": g})));
        for sa in &self.service_accounts {
            let (namespace, name) = sa
                .split_once('/')
                .filter(|(n, s)| !n.is_empty() && !s.is_empty())
                .ok_or_else(|| BreakGlassError::Flags(format!("--service-account {sa:?}: give NAMESPACE/NAME")))?;
            subjects.push(json!({"kind": "ServiceAccount", "namespace": namespace, "name": name}));
        }
        if subjects.is_empty() {
            return Err(BreakGlassError::Flags("name who may: --user, --group or --service-account".into()));
        }
        if self.namespaces.is_empty() && self.kinds.is_empty() && self.names.is_empty() {
            return Err(BreakGlassError::Flags("name what they may change: --namespace, --kind or --name".into()));
        }
        grant::parse_duration(&self.duration).map_err(|e| BreakGlassError::Flags(format!("--for: {e}")))?;
        if self.reason.trim().is_empty() {
            return Err(BreakGlassError::Flags("--reason must say why (an incident reference)".into()));
        }
        let first = self.users.first().or(self.groups.first()).or(self.service_accounts.first());
        let prefix = dns_prefix(first.map(String::as_str).unwrap_or("grant"));
        let mut scope = serde_json::Map::new();
        for (key, list) in [("namespaces", &self.namespaces), ("kinds", &self.kinds), ("names", &self.names)] {
            if !list.is_empty() {
                scope.insert(key.to_owned(), json!(list));
            }
        }
        Ok(json!({
            "apiVersion": grant::API_VERSION,
            "kind": grant::KIND,
            "metadata": {"generateName": format!("{prefix}-")},
            "spec": {"subjects": subjects, "scope": scope, "duration": self.duration.trim(), "reason": self.reason.trim()},
        }))
    }
}

/// A name prefix from a subject (a user's part before `@`): a short DNS label.
fn dns_prefix(subject: &str) -> String {
    let local = subject.split('@').next().unwrap_or(subject);
    crate::install::dns_label(local, 40, "grant")
}

/// What the API server said, without the client's wrapping.
fn message_of(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => crate::error_chain(other),
    }
}

/// A grant read for people: the model's reading, or why it is not valid.
fn read(object: &DynamicObject, now: OffsetDateTime) -> Result<Grant, String> {
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    // Any length: a listing shows what is stored; the server holds grants to its own cap.
    let limits = GrantLimits { max_duration: time::Duration::MAX, allow_self_grant: true };
    Grant::from_object(&value, limits, now).map_err(|e| e.to_string())
}

fn describe_created(made: &DynamicObject, namespace: &str) -> String {
    let name = made.metadata.name.clone().unwrap_or_default();
    match read(made, OffsetDateTime::now_utc()) {
        Ok(g) => format!(
            "breakglassgrant {namespace}/{name} created: {} may change {} until {} (reason: {}); revoke it with `driftgate break-glass revoke {name}`",
            subjects(&g.subjects),
            scope(&g.scope),
            rfc3339(g.expires),
            g.reason
        ),
        Err(_) => format!("breakglassgrant {namespace}/{name} created"),
    }
}

fn subjects(list: &[GrantSubject]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn scope(s: &grant::GrantScope) -> String {
    let part = |what: &str, list: &[String]| (!list.is_empty()).then(|| format!("{what} {}", list.join("|")));
    let parts: Vec<String> =
        [part("kind", &s.kinds), part("in", &s.namespaces), part("named", &s.names)].into_iter().flatten().collect();
    parts.join(" ")
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The grants as a table, newest last.
fn table(items: &[DynamicObject], now: OffsetDateTime) -> Vec<String> {
    if items.is_empty() {
        return vec!["no break-glass grants".to_owned()];
    }
    let mut rows =
        vec![["NAME", "STATE", "SUBJECTS", "SCOPE", "EXPIRES", "GRANTER", "REASON"].map(str::to_owned).to_vec()];
    for object in items {
        let name = object.metadata.name.clone().unwrap_or_default();
        rows.push(match read(object, now) {
            Ok(g) => vec![
                name,
                if now < g.expires { "active" } else { "expired" }.to_owned(),
                subjects(&g.subjects),
                scope(&g.scope),
                rfc3339(g.expires),
                g.granter,
                g.reason,
            ],
            Err(why) => {
                vec![name, "invalid".to_owned(), why, String::new(), String::new(), String::new(), String::new()]
            }
        });
    }
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(users: &[&str], namespaces: &[&str], duration: &str, reason: &str) -> GrantArgs {
        GrantArgs {
            users: users.iter().map(|s| (*s).to_owned()).collect(),
            groups: vec![],
            service_accounts: vec![],
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            kinds: vec!["VirtualService".to_owned()],
            names: vec![],
            duration: duration.to_owned(),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn flags_make_a_grant_or_say_what_is_missing() {
        let g = args(&["alice@example.com"], &["shop"], "1h", "INC-4711").object().unwrap();
        assert_eq!(g["metadata"]["generateName"], "alice-");
        assert_eq!(g["spec"]["scope"], json!({"namespaces": ["shop"], "kinds": ["VirtualService"]}));
        assert_eq!(g["spec"]["subjects"], json!([{"kind": "User", "name": "alice@example.com"}]));
        assert!(args(&[], &["shop"], "1h", "r").object().unwrap_err().to_string().contains("--user"));
        assert!(args(&["a"], &["shop"], "soon", "r").object().unwrap_err().to_string().contains("--for"));
        assert!(args(&["a"], &["shop"], "1h", " ").object().unwrap_err().to_string().contains("--reason"));
    }
}
