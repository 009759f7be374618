//! The install: every Kubernetes object driftgate needs in a cluster, generated from the policy
//! set, and the two webhook configurations that `driftgate register` applies.
//!
//! Owns the generation (pure: policies and options in, typed k8s-openapi objects and YAML out)
//! and the few file reads that feed it ([`Inputs::load`]). It must not talk to a cluster (that
//! is `commands::register`) and must not decide requests: the webhook rules only keep requests
//! away from the server that the server would allow anyway, and never the other way round.
//!
//! `manifests/base/` in the repository is this module's output for `policies/` (without a
//! caBundle); `tests/manifests.rs` keeps the two equal and `make manifests` rewrites the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort,
    ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::certs;
use crate::policy::{self, DriftPolicy, Identities, Mode, NEVER_PROTECTED_DEFAULT, ResourceRule};

/// Name of the Service, ServiceAccount, Deployment, RBAC objects and webhook configurations.
pub const APP: &str = "driftgate";
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
/// The label every generated object carries (and the Deployment selects on).
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The immutable namespace label the kube-apiserver sets on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Pod-template annotation with a hash of the policy files: changing a policy rolls the pods.
pub const POLICIES_HASH_ANNOTATION: &str = "driftgate.dev/policies-hash";
/// HTTPS port of the container.
pub const HTTPS_PORT: i32 = 8443;
/// Metrics port of the container and the Service.
pub const METRICS_PORT: i32 = 9090;

const TLS_DIR: &str = "/etc/driftgate/tls";
const POLICIES_DIR: &str = "/etc/driftgate/policies";
const JOURNAL_DIR: &str = "/var/lib/driftgate";
/// Numeric user and group of the container (distroless "nonroot").
const RUN_AS: i64 = 65532;
const WEBHOOK_TIMEOUT_SECONDS: i32 = 5;

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
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
            ca_bundle: None,
            url: None,
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
            options: InstallOptions { namespace: namespace.to_owned(), image: image.to_owned(), ca_bundle, url },
        })
    }
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
    /// File name under `manifests/base/` (`deployment.yaml`).
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

/// The two webhook configurations derived from a policy set.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhooks {
    /// One validating webhook a policy, skipping its GitOps writers.
    pub validating: ValidatingWebhookConfiguration,
    /// One mutating webhook for each policy that repairs or stamps provenance (none with the
    /// shipped policies).
    pub mutating: MutatingWebhookConfiguration,
}

/// Every object of the install, grouped into the files of `manifests/base/`, in apply order.
pub fn manifests(inputs: &Inputs) -> Result<Vec<Manifest>, InstallError> {
    let opts = &inputs.options;
    let ns = opts.namespace.as_str();
    let hooks = webhooks(&inputs.policies, opts);
    let (role, binding) = rbac(ns);
    Ok(vec![
        Manifest { file: "namespace.yaml", docs: vec![yaml("Namespace", &namespace(ns))?] },
        Manifest { file: "serviceaccount.yaml", docs: vec![yaml("ServiceAccount", &service_account(ns))?] },
        Manifest { file: "rbac.yaml", docs: vec![yaml("ClusterRole", &role)?, yaml("ClusterRoleBinding", &binding)?] },
        Manifest { file: "policies.yaml", docs: vec![yaml("ConfigMap", &policies_config_map(ns, &inputs.files))?] },
        Manifest { file: "deployment.yaml", docs: vec![yaml("Deployment", &deployment(opts, &inputs.files))?] },
        Manifest { file: "service.yaml", docs: vec![yaml("Service", &service(ns))?] },
        Manifest { file: "poddisruptionbudget.yaml", docs: vec![yaml("PodDisruptionBudget", &pdb(ns))?] },
        Manifest { file: "networkpolicy.yaml", docs: vec![yaml("NetworkPolicy", &network_policy(ns))?] },
        Manifest {
            file: "webhooks.yaml",
            docs: vec![
                yaml("ValidatingWebhookConfiguration", &hooks.validating)?,
                yaml("MutatingWebhookConfiguration", &hooks.mutating)?,
            ],
        },
    ])
}

fn yaml<T: Serialize>(what: &'static str, object: &T) -> Result<String, InstallError> {
    serde_yaml_ng::to_string(object).map_err(|error| InstallError::Yaml { what, error })
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), APP.to_owned())])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn selector() -> LabelSelector {
    LabelSelector { match_labels: Some(labels()), ..LabelSelector::default() }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn namespace(ns: &str) -> Namespace {
    let mut metadata = meta(ns, None);
    // The pod passes the restricted Pod Security Standard; hold the namespace to it.
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert("pod-security.kubernetes.io/enforce".to_owned(), "restricted".to_owned());
    Namespace { metadata, ..Namespace::default() }
}

fn service_account(ns: &str) -> ServiceAccount {
    ServiceAccount { metadata: meta(APP, Some(ns)), ..ServiceAccount::default() }
}

/// The server's only API rights: Events (create, and patch to count repeats) in the namespaces
/// of the objects it reports on, hence cluster-wide. `register` runs with the operator's own
/// credentials; the server never touches its webhook configurations.
fn rbac(ns: &str) -> (ClusterRole, ClusterRoleBinding) {
    let role = ClusterRole {
        metadata: meta(APP, None),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&["events.k8s.io"])),
            resources: Some(strings(&["events"])),
            verbs: strings(&["create", "patch"]),
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(APP, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: APP.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: APP.to_owned(),
            namespace: Some(ns.to_owned()),
            ..Subject::default()
        }]),
    };
    (role, binding)
}

fn policies_config_map(ns: &str, files: &[PolicyFile]) -> ConfigMap {
    ConfigMap {
        metadata: meta(POLICIES_CONFIGMAP, Some(ns)),
        data: Some(files.iter().map(|f| (f.name.clone(), f.text.clone())).collect()),
        ..ConfigMap::default()
    }
}

/// FNV-1a (64 bit) over the policy files: a change marker for the pod template, not security.
fn policies_hash(files: &[PolicyFile]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        for byte in f.name.bytes().chain([0]).chain(f.text.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), ..EnvVar::default() }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("https".to_owned()),
            scheme: Some("HTTPS".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([("cpu".to_owned(), Quantity(cpu.to_owned())), ("memory".to_owned(), Quantity(memory.to_owned()))])
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.to_owned(), mount_path: path.to_owned(), read_only: Some(true), ..VolumeMount::default() }
}

fn spread(topology_key: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: topology_key.to_owned(),
        // Soft: a one-node development cluster still runs both replicas.
        when_unsatisfiable: "ScheduleAnyway".to_owned(),
        label_selector: Some(selector()),
        match_label_keys: Some(strings(&["pod-template-hash"])),
        ..TopologySpreadConstraint::default()
    }
}

fn deployment(opts: &InstallOptions, files: &[PolicyFile]) -> Deployment {
    let ns = opts.namespace.as_str();
    let container = Container {
        name: APP.to_owned(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(strings(&["serve"])),
        env: Some(vec![
            env("DRIFTGATE_LISTEN", &format!("0.0.0.0:{HTTPS_PORT}")),
            env("DRIFTGATE_METRICS_LISTEN", &format!("0.0.0.0:{METRICS_PORT}")),
            env("DRIFTGATE_CERT_DIR", TLS_DIR),
            env("DRIFTGATE_DEV_CERTS", "false"),
            env("DRIFTGATE_POLICIES", POLICIES_DIR),
            env("DRIFTGATE_JOURNAL", &format!("{JOURNAL_DIR}/drift-events.jsonl")),
            env("DRIFTGATE_LOG_FORMAT", "json"),
            // From the pod itself, so an overlay that moves driftgate keeps its namespace unprotected.
            EnvVar {
                name: "DRIFTGATE_NAMESPACE".to_owned(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.namespace".to_owned(),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some("https".to_owned()),
                container_port: HTTPS_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("metrics".to_owned()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("50m", "64Mi")),
            limits: Some(quantities("1", "256Mi")),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(strings(&["ALL"])), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("tls", TLS_DIR),
            mount("policies", POLICIES_DIR),
            VolumeMount { name: "journal".to_owned(), mount_path: JOURNAL_DIR.to_owned(), ..VolumeMount::default() },
        ]),
        ..Container::default()
    };
    let pod = PodSpec {
        service_account_name: Some(APP.to_owned()),
        enable_service_links: Some(false),
        // Longer than the server's 20 s shutdown grace, so requests in flight finish.
        termination_grace_period_seconds: Some(30),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        topology_spread_constraints: Some(vec![
            spread("kubernetes.io/hostname"),
            spread("topology.kubernetes.io/zone"),
        ]),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "tls".to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(TLS_SECRET.to_owned()),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "policies".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: POLICIES_CONFIGMAP.to_owned(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "journal".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("1Gi".to_owned())),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    let mut template_meta = ObjectMeta { labels: Some(labels()), ..ObjectMeta::default() };
    template_meta.annotations = Some(BTreeMap::from([(POLICIES_HASH_ANNOTATION.to_owned(), policies_hash(files))]));
    Deployment {
        metadata: meta(APP, Some(ns)),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: selector(),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec { metadata: Some(template_meta), spec: Some(pod) },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn service(ns: &str) -> Service {
    Service {
        metadata: meta(APP, Some(ns)),
        spec: Some(ServiceSpec {
            selector: Some(labels()),
            ports: Some(vec![
                ServicePort {
                    name: Some("https".to_owned()),
                    port: 443,
                    target_port: Some(IntOrString::String("https".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("metrics".to_owned()),
                    port: METRICS_PORT,
                    target_port: Some(IntOrString::String("metrics".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pdb(ns: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(APP, Some(ns)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector()),
            // A crash-looping pod must not block a node drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }
}

/// In: the webhook port from anywhere (the kube-apiserver is often not a pod), metrics from pods
/// of any namespace. Out: the kube-apiserver only (Events), whose address after the Service's
/// DNAT listens on 443 or 6443; no DNS is needed (the in-cluster client dials an IP).
fn network_policy(ns: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(APP, Some(ns)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector()),
            policy_types: Some(strings(&["Ingress", "Egress"])),
            ingress: Some(vec![
                NetworkPolicyIngressRule { ports: Some(vec![tcp(HTTPS_PORT)]), ..NetworkPolicyIngressRule::default() },
                NetworkPolicyIngressRule {
                    ports: Some(vec![tcp(METRICS_PORT)]),
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        ..NetworkPolicyPeer::default()
                    }]),
                },
            ]),
            egress: Some(vec![NetworkPolicyEgressRule {
                ports: Some(vec![tcp(443), tcp(6443)]),
                ..NetworkPolicyEgressRule::default()
            }]),
        }),
    }
}

/// The plural resource name of a kind, as CRDs conventionally name it: lowercase; a consonant
/// and `y` become `ies`; `s`, `x`, `z`, `ch`, `sh` take `es`; anything else takes `s`. A CRD
/// with another plural is protected by listing `resources` in the policy instead.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.is_empty()
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with(['s', 'x', 'z']) || lower.ends_with("ch") || lower.ends_with("sh") {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

/// The webhook `resources` for one protected API group.
///
/// A whole group (no kinds, no resources, or `*`) is `*` plus `*/scale`; kinds become their
/// plurals (the server matches a kind on the object, not on its subresources); plural
/// `resources` are sent with their `scale` subresource, since the server protects a plural's
/// subresources too. `status` is never sent: status writes are always allowed (a built-in
/// rule), and sending them would put istiod's and every controller's status updates behind the
/// webhook.
pub fn rule_resources(rule: &ResourceRule) -> Vec<String> {
    let whole = (rule.kinds.is_empty() && rule.resources.is_empty())
        || rule.kinds.iter().chain(&rule.resources).any(|n| n.0 == "*");
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    if whole {
        push("*".to_owned());
        push("*/scale".to_owned());
        return out;
    }
    for kind in &rule.kinds {
        push(plural(&kind.0));
    }
    for resource in &rule.resources {
        push(resource.0.clone());
        if !resource.0.contains('/') {
            push(format!("{}/scale", resource.0));
        }
    }
    out
}

/// Rules for `(group, resources, operations)`: groups with the same resources and operations
/// share one rule (a rule matches every group with every resource it lists), in order of first
/// appearance.
fn rules(triples: Vec<(String, Vec<String>, Vec<String>)>) -> Vec<RuleWithOperations> {
    let mut merged: Vec<(Vec<String>, Vec<String>, Vec<String>)> = Vec::new();
    for (group, resources, operations) in triples {
        match merged.iter_mut().find(|(_, r, o)| *r == resources && *o == operations) {
            Some((groups, _, _)) => {
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
            None => merged.push((vec![group], resources, operations)),
        }
    }
    merged
        .into_iter()
        .map(|(groups, resources, operations)| RuleWithOperations {
            api_groups: Some(groups),
            api_versions: Some(strings(&["*"])),
            operations: Some(operations),
            resources: Some(resources),
            scope: Some("*".to_owned()),
        })
        .collect()
}

/// The operations of `rule` that the webhook sends, of those `allowed` (`CREATE`, …).
fn rule_operations(rule: &ResourceRule, allowed: &[&str]) -> Vec<String> {
    allowed
        .iter()
        .filter(|op| rule.operations.is_empty() || rule.operations.iter().any(|o| o.as_str() == **op))
        .map(|op| (*op).to_owned())
        .collect()
}

/// A policy's rules for one webhook: each resource rule with its operations among `allowed`;
/// subresources are left out when `objects_only` (the mutating answer patches objects only).
fn policy_rules(policy: &DriftPolicy, allowed: &[&str], objects_only: bool) -> Vec<RuleWithOperations> {
    let triples = policy
        .spec
        .resources
        .iter()
        .filter_map(|r| {
            let operations = rule_operations(r, allowed);
            let mut resources = rule_resources(r);
            if objects_only {
                resources.retain(|res| !res.contains('/'));
            }
            (!operations.is_empty() && !resources.is_empty()).then(|| (r.group.clone(), resources, operations))
        })
        .collect();
    rules(triples)
}

const VALIDATE_OPERATIONS: &[&str] = &["CREATE", "UPDATE", "DELETE"];
/// The mutating answer can change only what is written: a DELETE has nothing to stamp or repair.
const MUTATE_OPERATIONS: &[&str] = &["CREATE", "UPDATE"];

/// A CEL string literal.
pub fn cel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn cel_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(cel_string).collect();
    format!("[{}]", items.join(", "))
}

/// The `matchConditions` that keep a policy's GitOps writers away from its validating webhook:
/// all must be true for the request to be sent. The server allows these writers anyway
/// (`gitops:` rule), so skipping them in the kube-apiserver changes no answer, only latency and
/// the blast radius of an outage.
pub fn gitops_match_conditions(gitops: &Identities) -> Vec<MatchCondition> {
    let mut conditions = Vec::new();
    if !gitops.service_accounts.is_empty() {
        let exact: Vec<String> = gitops
            .service_accounts
            .iter()
            .filter_map(|sa| sa.name.as_ref().map(|n| format!("system:serviceaccount:{}:{n}", sa.namespace)))
            .collect();
        let mut terms = Vec::new();
        if !exact.is_empty() {
            terms.push(format!("request.userInfo.username in {}", cel_list(exact.iter().map(String::as_str))));
        }
        for sa in gitops.service_accounts.iter().filter(|sa| sa.name.is_none()) {
            let prefix = format!("system:serviceaccount:{}:", sa.namespace);
            terms.push(format!("request.userInfo.username.startsWith({})", cel_string(&prefix)));
        }
        conditions.push(MatchCondition {
            name: "not-gitops-service-account".to_owned(),
            expression: format!("!({})", terms.join(" || ")),
        });
    }
    if !gitops.users.is_empty() {
        conditions.push(MatchCondition {
            name: "not-gitops-user".to_owned(),
            expression: format!(
                "!(request.userInfo.username in {})",
                cel_list(gitops.users.iter().map(|u| u.0.as_str()))
            ),
        });
    }
    if !gitops.groups.is_empty() {
        conditions.push(MatchCondition {
            name: "not-gitops-group".to_owned(),
            expression: format!(
                "!(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in {}))",
                cel_list(gitops.groups.iter().map(|g| g.0.as_str()))
            ),
        });
    }
    conditions
}

/// Namespaces no webhook is ever called for: kube-system and driftgate's own.
fn never_protected(ns: &str) -> Vec<String> {
    let mut out: Vec<String> = NEVER_PROTECTED_DEFAULT.iter().map(|s| (*s).to_owned()).collect();
    if !out.iter().any(|n| n == ns) {
        out.push(ns.to_owned());
    }
    out
}

/// A selector on the immutable `kubernetes.io/metadata.name` label (set by the kube-apiserver;
/// nobody can opt a namespace out by labelling it): not in `skip`, and in `only` if given.
fn namespace_selector(skip: Vec<String>, only: Vec<String>) -> LabelSelector {
    let mut expressions = vec![LabelSelectorRequirement {
        key: NAMESPACE_NAME_LABEL.to_owned(),
        operator: "NotIn".to_owned(),
        values: Some(dedup(skip)),
    }];
    if !only.is_empty() {
        expressions.push(LabelSelectorRequirement {
            key: NAMESPACE_NAME_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(dedup(only)),
        });
    }
    LabelSelector { match_expressions: Some(expressions), ..LabelSelector::default() }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn client_config(opts: &InstallOptions, path: &str) -> WebhookClientConfig {
    let ca_bundle = opts.ca_bundle.clone().map(ByteString);
    match &opts.url {
        Some(base) => {
            WebhookClientConfig { url: Some(format!("{base}{path}")), ca_bundle, ..WebhookClientConfig::default() }
        }
        None => WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: opts.namespace.clone(),
                name: APP.to_owned(),
                path: Some(path.to_owned()),
                port: Some(443),
            }),
            ca_bundle,
            ..WebhookClientConfig::default()
        },
    }
}

/// A DNS label from a policy name (lowercase letters, digits and `-`, at most 63 characters).
fn dns_label(name: &str) -> String {
    let mapped: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_owned();
    if trimmed.is_empty() { "policy".to_owned() } else { trimmed }
}

/// `<policy>.<suffix>` for each policy, unique even where two names map to one label.
fn webhook_names(policies: &[&DriftPolicy], suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(policies.len());
    for p in policies {
        let base = dns_label(&p.metadata.name.0);
        let mut label = base.clone();
        let mut n = 2;
        while names.iter().any(|existing| existing.starts_with(&format!("{label}."))) {
            let tail = format!("-{n}");
            label = format!("{}{tail}", base.chars().take(63 - tail.len()).collect::<String>());
            n += 1;
        }
        names.push(format!("{label}.{suffix}"));
    }
    names
}

/// The path of a policy's endpoint: `/validate/<policy>`, the name percent-encoded.
pub fn policy_path(endpoint: &str, policy: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    format!("/{endpoint}/{}", percent_encoding::utf8_percent_encode(policy, SEGMENT))
}

fn failure_policy(fail: bool) -> String {
    if fail { "Fail" } else { "Ignore" }.to_owned()
}

/// A policy's namespace selector: never kube-system and driftgate's own namespace, nor the
/// policy's excluded ones; only its included ones, if it lists any.
fn policy_namespaces(policy: &DriftPolicy, never: &[String]) -> LabelSelector {
    let spec = &policy.spec;
    namespace_selector(
        never.iter().cloned().chain(spec.namespaces.exclude.iter().map(|n| n.0.clone())).collect(),
        spec.namespaces.include.iter().map(|n| n.0.clone()).collect(),
    )
}

/// The validating and mutating webhook configurations for a policy set: a validating webhook
/// for each policy, and a mutating one for each policy that repairs or stamps provenance.
pub fn webhooks(policies: &[DriftPolicy], opts: &InstallOptions) -> Webhooks {
    let never = never_protected(&opts.namespace);
    let all: Vec<&DriftPolicy> = policies.iter().collect();
    let validating: Vec<ValidatingWebhook> = all
        .iter()
        .zip(webhook_names(&all, VALIDATE_WEBHOOK_SUFFIX))
        .map(|(p, name)| {
            let spec = &p.spec;
            let conditions = gitops_match_conditions(&spec.gitops);
            ValidatingWebhook {
                name,
                admission_review_versions: strings(&["v1"]),
                client_config: client_config(opts, &policy_path("validate", &p.metadata.name.0)),
                rules: Some(policy_rules(p, VALIDATE_OPERATIONS, false)),
                match_conditions: (!conditions.is_empty()).then_some(conditions),
                namespace_selector: Some(policy_namespaces(p, &never)),
                object_selector: Some(LabelSelector::default()),
                match_policy: Some("Equivalent".to_owned()),
                failure_policy: Some(failure_policy(matches!(spec.mode, Mode::Enforce | Mode::Repair))),
                side_effects: "NoneOnDryRun".to_owned(),
                timeout_seconds: Some(WEBHOOK_TIMEOUT_SECONDS),
            }
        })
        .collect();

    let mutated: Vec<&DriftPolicy> = policies.iter().filter(|p| p.spec.needs_mutation()).collect();
    let mutating: Vec<MutatingWebhook> = mutated
        .iter()
        .zip(webhook_names(&mutated, MUTATE_WEBHOOK_SUFFIX))
        .map(|(p, name)| {
            let spec = &p.spec;
            // Provenance stamps every admitted write, GitOps's included; repair alone has nothing
            // to do for the GitOps writers, so their requests stay in the kube-apiserver.
            let conditions = if spec.provenance { Vec::new() } else { gitops_match_conditions(&spec.gitops) };
            MutatingWebhook {
                name,
                admission_review_versions: strings(&["v1"]),
                client_config: client_config(opts, &policy_path("mutate", &p.metadata.name.0)),
                rules: Some(policy_rules(p, MUTATE_OPERATIONS, true)),
                match_conditions: (!conditions.is_empty()).then_some(conditions),
                namespace_selector: Some(policy_namespaces(p, &never)),
                object_selector: Some(LabelSelector::default()),
                match_policy: Some("Equivalent".to_owned()),
                // Repair fails closed like enforce; stamping alone fails open.
                failure_policy: Some(failure_policy(spec.mode == Mode::Repair)),
                reinvocation_policy: Some("Never".to_owned()),
                side_effects: "NoneOnDryRun".to_owned(),
                timeout_seconds: Some(WEBHOOK_TIMEOUT_SECONDS),
            }
        })
        .collect();

    Webhooks {
        validating: ValidatingWebhookConfiguration { metadata: meta(APP, None), webhooks: Some(validating) },
        mutating: MutatingWebhookConfiguration { metadata: meta(APP, None), webhooks: Some(mutating) },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn mk_policies(yaml: &str) -> Vec<DriftPolicy> {
        policy::load_str(Path::new("t.yaml"), yaml).unwrap().into_iter().map(|l| l.policy).collect()
    }

    fn mk_policy(name: &str, mode: &str, resources: &str, namespaces: &str) -> String {
        format!(
            "---\napiVersion: driftgate.dev/v1alpha1\nkind: DriftPolicy\nmetadata: {{name: {name}}}\nspec:\n  mode: {mode}\n  resources: {resources}\n  namespaces: {namespaces}\n  gitops: {{serviceAccounts: [argocd/argocd-application-controller, tenant-a/*], users: [ci], groups: [\"it's\"]}}\n"
        )
    }

    #[test]
    fn plurals_follow_the_crd_convention() {
        for (kind, want) in [
            ("VirtualService", "virtualservices"),
            ("Gateway", "gateways"),
            ("AuthorizationPolicy", "authorizationpolicies"),
            ("ServiceEntry", "serviceentries"),
            ("Telemetry", "telemetries"),
            ("HTTPRoute", "httproutes"),
            ("ServiceProfile", "serviceprofiles"),
            ("Ingress", "ingresses"),
            ("Mesh", "meshes"),
            ("Box", "boxes"),
            ("Y", "ys"),
        ] {
            assert_eq!(plural(kind), want, "{kind}");
        }
    }

    #[test]
    fn rule_resources_cover_exactly_what_the_server_protects() {
        let rule = |kinds: &[&str], resources: &[&str]| ResourceRule {
            group: "g".into(),
            kinds: kinds.iter().map(|k| policy::NonEmpty((*k).into())).collect(),
            resources: resources.iter().map(|k| policy::NonEmpty((*k).into())).collect(),
            operations: vec![],
        };
        for (kinds, resources, want) in [
            (&[][..], &[][..], &["*", "*/scale"][..]),
            (&["*"], &[], &["*", "*/scale"]),
            (&["Gateway", "HTTPRoute"], &[], &["gateways", "httproutes"]),
            (&[], &["deployments"], &["deployments", "deployments/scale"]),
            (&[], &["deployments/scale"], &["deployments/scale"]),
            (&["Deployment"], &["deployments"], &["deployments", "deployments/scale"]),
        ] {
            assert_eq!(rule_resources(&rule(kinds, resources)), want, "{kinds:?} {resources:?}");
        }
    }

    #[test]
    fn cel_strings_escape_quotes_and_backslashes() {
        for (raw, want) in [("a", "'a'"), ("it's", r"'it\'s'"), (r"a\b", r"'a\\b'"), ("a\nb", r"'a\nb'")] {
            assert_eq!(cel_string(raw), want);
        }
    }

    #[test]
    fn match_conditions_name_every_gitops_identity() {
        let p = &mk_policies(&mk_policy("p", "enforce", "[{group: g}]", "{}"))[0];
        let conditions = gitops_match_conditions(&p.spec.gitops);
        let got: Vec<(&str, &str)> = conditions.iter().map(|c| (c.name.as_str(), c.expression.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "not-gitops-service-account",
                    "!(request.userInfo.username in ['system:serviceaccount:argocd:argocd-application-controller'] || request.userInfo.username.startsWith('system:serviceaccount:tenant-a:'))"
                ),
                ("not-gitops-user", "!(request.userInfo.username in ['ci'])"),
                (
                    "not-gitops-group",
                    r"!(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ['it\'s']))"
                ),
            ]
        );
    }

    #[test]
    fn one_validating_webhook_per_policy_with_its_mode_and_namespaces() {
        let yaml = [
            mk_policy("Mesh GitOps", "enforce", "[{group: networking.istio.io}]", "{exclude: [istio-system]}"),
            mk_policy(
                "mesh-gitops",
                "audit",
                "[{group: gateway.networking.k8s.io, kinds: [HTTPRoute]}]",
                "{include: [shop]}",
            ),
            mk_policy(
                "fix",
                "repair",
                "[{group: apps, resources: [deployments]}]",
                "{include: [shop], exclude: [istio-system]}",
            ),
        ]
        .concat();
        let hooks = webhooks(&mk_policies(&yaml), &InstallOptions::default());
        let v = hooks.validating.webhooks.unwrap();
        let names: Vec<&str> = v.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mesh-gitops.validate.driftgate.dev",
                "mesh-gitops-2.validate.driftgate.dev",
                "fix.validate.driftgate.dev"
            ]
        );
        let policies: Vec<&str> = v.iter().map(|w| w.failure_policy.as_deref().unwrap()).collect();
        assert_eq!(policies, ["Fail", "Ignore", "Fail"]);
        let selector = |w: &ValidatingWebhook| -> Vec<(String, Vec<String>)> {
            w.namespace_selector
                .clone()
                .unwrap()
                .match_expressions
                .unwrap()
                .into_iter()
                .map(|e| (e.operator, e.values.unwrap()))
                .collect()
        };
        let s = |v: &[&str]| strings(v);
        assert_eq!(selector(&v[0]), [("NotIn".to_owned(), s(&["kube-system", "driftgate", "istio-system"]))]);
        assert_eq!(
            selector(&v[1]),
            [("NotIn".to_owned(), s(&["kube-system", "driftgate"])), ("In".to_owned(), s(&["shop"]))]
        );

        let paths: Vec<String> = v.iter().map(|w| w.client_config.service.clone().unwrap().path.unwrap()).collect();
        assert_eq!(paths, ["/validate/Mesh%20GitOps", "/validate/mesh-gitops", "/validate/fix"]);

        // Only the repair policy needs the mutating webhook; it skips the GitOps writers.
        let m = hooks.mutating.webhooks.unwrap();
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.name, "fix.mutate.driftgate.dev");
        assert_eq!(m.client_config.service.clone().unwrap().path.as_deref(), Some("/mutate/fix"));
        assert_eq!(m.failure_policy.as_deref(), Some("Fail"), "repair fails closed");
        assert_eq!(m.match_conditions.as_ref().map(Vec::len), Some(3), "GitOps writers never reach it");
        let rules: Vec<(Vec<String>, Vec<String>, Vec<String>)> = m
            .rules
            .clone()
            .unwrap()
            .into_iter()
            .map(|r| (r.api_groups.unwrap(), r.resources.unwrap(), r.operations.unwrap()))
            .collect();
        assert_eq!(rules, [(s(&["apps"]), s(&["deployments"]), s(&["CREATE", "UPDATE"]))]);
        let ms: Vec<(String, Vec<String>)> = m
            .namespace_selector
            .clone()
            .unwrap()
            .match_expressions
            .unwrap()
            .into_iter()
            .map(|e| (e.operator, e.values.unwrap()))
            .collect();
        assert_eq!(
            ms,
            [("NotIn".to_owned(), s(&["kube-system", "driftgate", "istio-system"])), ("In".to_owned(), s(&["shop"]))]
        );
    }

    #[test]
    fn provenance_puts_gitops_writes_through_the_mutating_webhook_and_fails_open() {
        let yaml = mk_policy("stamp", "enforce", "[{group: networking.istio.io}]", "{}") + "  provenance: true\n";
        let hooks = webhooks(&mk_policies(&yaml), &InstallOptions::default());
        let m = hooks.mutating.webhooks.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "stamp.mutate.driftgate.dev");
        assert!(m[0].match_conditions.is_none(), "every admitted write is stamped, GitOps's too");
        assert_eq!(m[0].failure_policy.as_deref(), Some("Ignore"));
        let none = webhooks(&mk_policies(&mk_policy("p", "enforce", "[{group: g}]", "{}")), &InstallOptions::default());
        assert_eq!(none.mutating.webhooks, Some(vec![]), "no policy repairs or stamps: no mutating webhook");
    }

    #[test]
    fn rule_operations_narrow_the_webhook_rules() {
        let yaml = mk_policy("ns", "enforce", "[{group: '', kinds: [Namespace], operations: [DELETE]}]", "{}");
        let hooks = webhooks(&mk_policies(&yaml), &InstallOptions::default());
        let rules = hooks.validating.webhooks.unwrap()[0].rules.clone().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups, Some(strings(&[""])));
        assert_eq!(rules[0].resources, Some(strings(&["namespaces"])));
        assert_eq!(rules[0].operations, Some(strings(&["DELETE"])));
    }

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

    #[test]
    fn policy_names_become_unique_dns_labels() {
        for (name, want) in [("mesh-gitops", "mesh-gitops"), ("Mesh_GitOps.v2", "mesh-gitops-v2"), ("--", "policy")] {
            assert_eq!(dns_label(name), want);
        }
        assert_eq!(dns_label(&"a".repeat(100)).len(), 63);
    }
}
