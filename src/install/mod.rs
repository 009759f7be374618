//! The install: every Kubernetes object driftgate needs in a cluster, generated from the policy
//! set, and the webhook configurations that `driftgate register` applies.
//!
//! Owns the generation (pure: policies and options in, typed k8s-openapi objects and YAML out)
//! and the few file reads that feed it ([`Inputs::load`]): the objects that run driftgate are
//! in [`workload`], the webhook configurations derived from the policies in [`webhooks`]. It
//! must not talk to a cluster (that is `commands::register`) and must not decide requests: the
//! webhook rules only keep requests away from the server that the server would allow anyway,
//! and never the other way round.
//!
//! `manifests/base/` in the repository is this module's output for `policies/` (without a
//! caBundle); `tests/manifests.rs` keeps the two equal and `make manifests` rewrites the files.

pub mod grants;
pub mod guard;
pub mod webhooks;
pub mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Serialize;

pub use webhooks::{Webhooks, cel_string, gitops_match_conditions, plural, policy_path, rule_resources, webhooks};

use crate::certs;
use crate::policy::{self, DriftPolicy};

/// Name of the Service, ServiceAccount, StatefulSet, RBAC objects and webhook configurations.
pub const APP: &str = "driftgate";
/// The headless Service the StatefulSet names (`serviceName`): stable pod names
/// (`driftgate-0.driftgate-headless.<namespace>.svc`), no ports, no traffic.
pub const HEADLESS_SERVICE: &str = "driftgate-headless";
/// The journal volume: a PersistentVolumeClaim per replica (`journal-driftgate-0`, …), or an
/// `emptyDir` of the same name with the `ephemeral-journal` kustomize component.
pub const JOURNAL_VOLUME: &str = "journal";
/// Size of a replica's journal volume (the claim's request; the `emptyDir` limit without storage).
pub const JOURNAL_SIZE: &str = "1Gi";
/// driftgate's namespace unless `--namespace` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "driftgate";
/// The image unless `--image` says otherwise.
pub const DEFAULT_IMAGE: &str = concat!("driftgate:", env!("CARGO_PKG_VERSION"));
/// The Secret with `tls.crt` and `tls.key` (from `driftgate certs` or cert-manager).
pub const TLS_SECRET: &str = "driftgate-tls";
/// The ConfigMap with the policy files.
pub const POLICIES_CONFIGMAP: &str = "driftgate-policies";
/// Suffix of the validating webhooks' names: one webhook a policy, `<policy>.validate.driftgate.dev`.
pub const VALIDATE_WEBHOOK_SUFFIX: &str = "validate.driftgate.dev";
/// Suffix of the mutating webhooks' names: one for each policy that repairs or stamps
/// provenance, `<policy>.mutate.driftgate.dev`.
pub const MUTATE_WEBHOOK_SUFFIX: &str = "mutate.driftgate.dev";
/// The field manager of `driftgate register`'s server-side apply.
pub const FIELD_MANAGER: &str = "driftgate";
/// The label every generated object carries (and the StatefulSet selects on).
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The immutable namespace label the kube-apiserver sets on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Pod-template annotation with a hash of the policy files: changing a policy rolls the pods.
pub const POLICIES_HASH_ANNOTATION: &str = "driftgate.dev/policies-hash";
/// HTTPS port of the container.
pub const HTTPS_PORT: i32 = 8443;
/// Metrics port of the container and the Service.
pub const METRICS_PORT: i32 = 9090;

pub(crate) const TLS_DIR: &str = "/etc/driftgate/tls";
pub(crate) const POLICIES_DIR: &str = "/etc/driftgate/policies";
/// Mount path of the journal volume; `DRIFTGATE_JOURNAL` is a file in it.
pub const JOURNAL_DIR: &str = "/var/lib/driftgate";
/// Numeric user and group of the container (distroless "nonroot").
pub(crate) const RUN_AS: i64 = 65532;
pub(crate) const WEBHOOK_TIMEOUT_SECONDS: i32 = 5;

/// Why the install could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The policy folder does not load (each problem with file, line and reason).
    #[error(transparent)]
    Policies(#[from] policy::LoadError),
    /// A policy file could not be read back for the ConfigMap.
    #[error("failed to read policy file {path}: {error}")]
    PolicyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error (shown in the message).
        error: std::io::Error,
    },
    /// The `--ca-bundle` file could not be read.
    #[error("failed to read the CA bundle {path} (--ca-bundle; make one with `driftgate certs`): {error}")]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// The I/O error (shown in the message).
        error: std::io::Error,
    },
    /// The `--ca-bundle` file holds no PEM certificate.
    #[error("failed to use the CA bundle {path} (--ca-bundle): it holds no PEM certificate")]
    CaBundleEmpty {
        /// The file.
        path: PathBuf,
    },
    /// A `--webhook-source-cidr` is not an IP network.
    #[error(
        "failed to use --webhook-source-cidr {cidr:?}: give an IPv4 or IPv6 network like 10.0.0.0/24 or 2001:db8::/64"
    )]
    Cidr {
        /// The value given.
        cidr: String,
    },
    /// `--url` is not an `https://HOST[:PORT][/PATH]` URL.
    #[error("failed to use --url {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An object could not be written as YAML.
    #[error("failed to write {what} as YAML: {error}")]
    Yaml {
        /// The object.
        what: &'static str,
        /// The serializer's error (shown in the message).
        error: serde_yaml_ng::Error,
    },
}

/// How the install is generated, apart from the policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// driftgate's namespace (never protected).
    pub namespace: String,
    /// The container image.
    pub image: String,
    /// PEM of the CA that signed the serving certificate; `None` leaves `caBundle` out (for
    /// cert-manager's CA injector, or a caBundle added later by `driftgate register`).
    pub ca_bundle: Option<Vec<u8>>,
    /// Base URL of a driftgate outside the cluster (`https://HOST:PORT`); `None` for the Service.
    pub url: Option<String>,
    /// The only CIDRs the NetworkPolicy lets reach the webhook port (the control plane's
    /// addresses); empty: the whole cluster network and beyond.
    pub webhook_sources: Vec<String>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
            ca_bundle: None,
            url: None,
            webhook_sources: Vec::new(),
        }
    }
}

/// A policy file as shipped in the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// File name (the ConfigMap key).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// Everything the generation reads from disk.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The policies, in load order.
    pub policies: Vec<DriftPolicy>,
    /// The files they came from.
    pub files: Vec<PolicyFile>,
    /// The options (with the CA bundle read in).
    pub options: InstallOptions,
}

impl Inputs {
    /// Loads the policy folder and the CA bundle (if any), and checks the URL.
    pub fn load(
        policies_dir: &Path,
        ca_bundle: Option<&Path>,
        namespace: &str,
        image: &str,
        url: Option<&str>,
    ) -> Result<Inputs, InstallError> {
        let loaded = policy::load_dir(policies_dir)?;
        let mut files: Vec<PolicyFile> = Vec::new();
        for l in &loaded {
            let name = l.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if files.iter().any(|f| f.name == name) {
                continue;
            }
            let text = std::fs::read_to_string(&l.file)
                .map_err(|error| InstallError::PolicyFile { path: l.file.clone(), error })?;
            files.push(PolicyFile { name, text });
        }
        let ca_bundle = ca_bundle.map(read_ca_bundle).transpose()?;
        let url = url.map(check_url).transpose()?;
        Ok(Inputs {
            policies: loaded.into_iter().map(|l| l.policy).collect(),
            files,
            options: InstallOptions {
                namespace: namespace.to_owned(),
                image: image.to_owned(),
                ca_bundle,
                url,
                webhook_sources: Vec::new(),
            },
        })
    }
}

/// Checks that each value is an IP network (`ADDRESS/PREFIX`, the prefix within the address's
/// length); a bare address is taken as one host (`/32`, `/128`).
pub fn check_cidrs(cidrs: &[String]) -> Result<Vec<String>, InstallError> {
    cidrs
        .iter()
        .map(|cidr| {
            let bad = || InstallError::Cidr { cidr: cidr.clone() };
            let (address, prefix) = match cidr.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (cidr.as_str(), None),
            };
            let address: std::net::IpAddr = address.trim().parse().map_err(|_| bad())?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
                None => max,
            };
            Ok(format!("{address}/{prefix}"))
        })
        .collect()
}

/// The default `--ca-bundle`: `certs/ca.crt`, where `driftgate certs --out certs` writes it.
pub fn default_ca_bundle() -> PathBuf {
    Path::new("certs").join(certs::CA_CRT)
}

/// Reads a CA bundle and checks that it holds at least one PEM certificate.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<u8>, InstallError> {
    let pem = std::fs::read(path).map_err(|error| InstallError::CaBundle { path: path.to_owned(), error })?;
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let has_cert = CertificateDer::pem_slice_iter(&pem).any(|c| c.is_ok());
    if has_cert { Ok(pem) } else { Err(InstallError::CaBundleEmpty { path: path.to_owned() }) }
}

/// Checks a `--url` (`https://HOST[:PORT][/PATH]`, no query, no credentials) and returns it
/// without a trailing slash.
pub fn check_url(url: &str) -> Result<String, InstallError> {
    let bad = |reason| InstallError::Url { url: url.to_owned(), reason };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("the kube-apiserver calls webhooks over HTTPS only: use https://HOST:PORT"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the URL are not allowed"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad("a query or fragment is not allowed"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// One file of the install: its name under `manifests/base/` and its YAML documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File name under `manifests/base/` (`statefulset.yaml`).
    pub file: &'static str,
    /// The YAML documents, each ending in a newline, without `---` separators.
    pub docs: Vec<String>,
}

/// The first line of each generated file under `manifests/base/`.
pub const GENERATED_HEADER: &str =
    "# Generated by `make manifests` (driftgate manifests, from policies/) — do not edit by hand.\n";

impl Manifest {
    /// The file's text under `manifests/base/`: the header and the documents.
    pub fn file_text(&self) -> String {
        format!("{GENERATED_HEADER}{}", join_docs(&self.docs))
    }
}

/// Documents as one YAML stream, each introduced by `---`.
pub fn join_docs<S: AsRef<str>>(docs: &[S]) -> String {
    docs.iter().map(|d| format!("---\n{}", d.as_ref())).collect()
}

/// The whole install as one YAML stream (what `driftgate manifests` prints).
pub fn render(manifests: &[Manifest]) -> String {
    let docs: Vec<&String> = manifests.iter().flat_map(|m| &m.docs).collect();
    join_docs(&docs)
}

/// Every object of the install, grouped into the files of `manifests/base/`, in apply order.
pub fn manifests(inputs: &Inputs) -> Result<Vec<Manifest>, InstallError> {
    let opts = &inputs.options;
    let ns = opts.namespace.as_str();
    let hooks = webhooks(&inputs.policies, opts);
    let (role, binding) = workload::rbac(ns);
    let (guard, guard_binding) = guard::tamper_guard(&inputs.policies, opts);
    let (reader, reader_binding) = grants::reader(ns);
    Ok(vec![
        // The CRD first: what the grants webhook entry and the granter role are about.
        Manifest { file: "breakglassgrant-crd.yaml", docs: vec![yaml("CustomResourceDefinition", &grants::crd())?] },
        Manifest { file: "namespace.yaml", docs: vec![yaml("Namespace", &workload::namespace(ns))?] },
        Manifest { file: "serviceaccount.yaml", docs: vec![yaml("ServiceAccount", &workload::service_account(ns))?] },
        Manifest {
            file: "rbac.yaml",
            docs: vec![
                yaml("ClusterRole", &role)?,
                yaml("ClusterRoleBinding", &binding)?,
                yaml("ClusterRole", &grants::granter_role())?,
                yaml("Role", &reader)?,
                yaml("RoleBinding", &reader_binding)?,
            ],
        },
        Manifest {
            file: "policies.yaml",
            docs: vec![yaml("ConfigMap", &workload::policies_config_map(ns, &inputs.files))?],
        },
        // The Services before the StatefulSet that names the headless one.
        Manifest {
            file: "service.yaml",
            docs: vec![yaml("Service", &workload::service(ns))?, yaml("Service", &workload::headless_service(ns))?],
        },
        Manifest {
            file: "statefulset.yaml",
            docs: vec![yaml("StatefulSet", &workload::stateful_set(opts, &inputs.files))?],
        },
        Manifest { file: "poddisruptionbudget.yaml", docs: vec![yaml("PodDisruptionBudget", &workload::pdb(ns))?] },
        Manifest {
            file: "networkpolicy.yaml",
            docs: vec![yaml("NetworkPolicy", &workload::network_policy(ns, &opts.webhook_sources))?],
        },
        Manifest {
            file: "webhooks.yaml",
            docs: vec![
                yaml("ValidatingWebhookConfiguration", &hooks.validating)?,
                yaml("MutatingWebhookConfiguration", &hooks.mutating)?,
            ],
        },
        Manifest {
            file: "tamper-guard.yaml",
            docs: vec![
                yaml("ValidatingAdmissionPolicy", &guard)?,
                yaml("ValidatingAdmissionPolicyBinding", &guard_binding)?,
            ],
        },
    ])
}

fn yaml<T: Serialize>(what: &'static str, object: &T) -> Result<String, InstallError> {
    serde_yaml_ng::to_string(object).map_err(|error| InstallError::Yaml { what, error })
}

/// A DNS label from `name`: lowercase letters, digits and `-` (anything else becomes `-`), no
/// `-` at either end, at most `max` characters; `fallback` when nothing is left.
pub fn dns_label(name: &str, max: usize, fallback: &str) -> String {
    let mapped: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(max).collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() { fallback.to_owned() } else { trimmed.to_owned() }
}

/// A binding's reference to the `kind` (`Role`, `ClusterRole`) named `name`.
pub(crate) fn role_ref(kind: &str, name: &str) -> k8s_openapi::api::rbac::v1::RoleRef {
    k8s_openapi::api::rbac::v1::RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

/// A binding's subjects: driftgate's ServiceAccount in `ns`.
pub(crate) fn driftgate_account(ns: &str) -> Vec<k8s_openapi::api::rbac::v1::Subject> {
    vec![k8s_openapi::api::rbac::v1::Subject {
        kind: "ServiceAccount".to_owned(),
        name: APP.to_owned(),
        namespace: Some(ns.to_owned()),
        ..Default::default()
    }]
}

pub(crate) fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), APP.to_owned())])
}

pub(crate) fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

pub(crate) fn selector() -> LabelSelector {
    LabelSelector { match_labels: Some(labels()), ..LabelSelector::default() }
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_without_query_or_credentials() {
        assert_eq!(check_url("https://10.0.0.1:8443/").unwrap(), "https://10.0.0.1:8443");
        assert_eq!(check_url("https://dev.example:8443/hooks").unwrap(), "https://dev.example:8443/hooks");
        for bad in
            ["http://10.0.0.1:8443", "10.0.0.1:8443", "https://u:p@h:1", "https://h:1/?a=b", "https://h/#x", "::"]
        {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
