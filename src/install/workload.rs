//! The objects that run driftgate: Namespace, ServiceAccount, RBAC, the policies' ConfigMap,
//! the StatefulSet (a PersistentVolumeClaim per replica for the journal), its headless Service,
//! the webhook Service, PodDisruptionBudget and NetworkPolicy. Pure: options in, typed objects
//! out.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    Namespace, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    APP, HEADLESS_SERVICE, HTTPS_PORT, InstallOptions, JOURNAL_DIR, JOURNAL_SIZE, JOURNAL_VOLUME, METRICS_PORT,
    POLICIES_CONFIGMAP, POLICIES_DIR, POLICIES_HASH_ANNOTATION, PolicyFile, RUN_AS, TLS_DIR, TLS_SECRET, labels, meta,
    selector, strings,
};

pub(crate) fn namespace(ns: &str) -> Namespace {
    let mut metadata = meta(ns, None);
    // The pod passes the restricted Pod Security Standard; hold the namespace to it.
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert("pod-security.kubernetes.io/enforce".to_owned(), "restricted".to_owned());
    Namespace { metadata, ..Namespace::default() }
}

pub(crate) fn service_account(ns: &str) -> ServiceAccount {
    ServiceAccount { metadata: meta(APP, Some(ns)), ..ServiceAccount::default() }
}

/// The server's only API rights: Events (create, and patch to count repeats) in the namespaces
/// of the objects it reports on, hence cluster-wide. `register` runs with the operator's own
/// credentials; the server never touches its webhook configurations.
pub(crate) fn rbac(ns: &str) -> (ClusterRole, ClusterRoleBinding) {
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
        role_ref: super::role_ref("ClusterRole", APP),
        subjects: Some(super::driftgate_account(ns)),
    };
    (role, binding)
}

pub(crate) fn policies_config_map(ns: &str, files: &[PolicyFile]) -> ConfigMap {
    ConfigMap {
        metadata: meta(POLICIES_CONFIGMAP, Some(ns)),
        data: Some(files.iter().map(|f| (f.name.clone(), f.text.clone())).collect()),
        ..ConfigMap::default()
    }
}

/// A change marker for the pod template over the policy files, not security: the first 16 hex
/// digits of SHA-256 over `sha256(name) sha256(text)` of each file in name order (lowercase
/// hex), which the Helm chart computes with its own functions (`sha256sum`, in
/// `charts/driftgate/templates/_policies.tpl`) to the same value.
fn policies_hash(files: &[PolicyFile]) -> String {
    let hex = |data: &[u8]| -> String {
        ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    };
    let mut sorted: Vec<&PolicyFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let each: String = sorted.iter().map(|f| hex(f.name.as_bytes()) + &hex(f.text.as_bytes())).collect();
    hex(each.as_bytes()).chars().take(16).collect()
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
        // Every replica counts, whatever its revision (no `matchLabelKeys`): a StatefulSet
        // replaces pods in place, one at a time, so the old-revision pod next to the new one keeps
        // running and the new one should spread away from it. (A Deployment's surge pods made
        // `pod-template-hash` right there; StatefulSet pods do not carry that label.)
        label_selector: Some(selector()),
        ..TopologySpreadConstraint::default()
    }
}

/// driftgate as a StatefulSet: each replica keeps its own journal on a PersistentVolumeClaim
/// (`journal-driftgate-<ordinal>`) that outlives the pod, so a restart, a rescheduled pod or a
/// rollout keeps the audit trail and the events not yet delivered. Everything else as a
/// stateless webhook needs: probes, the restricted security context, the spread, the policies
/// hash that rolls the pods when a policy changes.
pub(crate) fn stateful_set(opts: &InstallOptions, files: &[PolicyFile]) -> StatefulSet {
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
            VolumeMount {
                name: JOURNAL_VOLUME.to_owned(),
                mount_path: JOURNAL_DIR.to_owned(),
                ..VolumeMount::default()
            },
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
            // The claim keeps its files from one pod to the next: change their group only when
            // the volume's root is not already the pod's, not every file at every start.
            fs_group_change_policy: Some("OnRootMismatch".to_owned()),
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
            // The journal volume comes from `volumeClaimTemplates`.
        ]),
        ..PodSpec::default()
    };
    let mut template_meta = ObjectMeta { labels: Some(labels()), ..ObjectMeta::default() };
    template_meta.annotations = Some(BTreeMap::from([(POLICIES_HASH_ANNOTATION.to_owned(), policies_hash(files))]));
    StatefulSet {
        metadata: meta(APP, Some(ns)),
        spec: Some(StatefulSetSpec {
            replicas: Some(2),
            selector: selector(),
            service_name: Some(HEADLESS_SERVICE.to_owned()),
            // Replicas share nothing (each answers alone and journals to its own claim), so
            // nothing is gained by starting pod 1 only once pod 0 is ready, and with
            // OrderedReady one pod stuck (its volume cannot attach, its node is gone) would
            // keep the other from being created at all. Parallel applies to creation and
            // scaling only: a rollout still replaces one pod at a time.
            pod_management_policy: Some("Parallel".to_owned()),
            // One pod at a time, highest ordinal first, each ready before the next goes: with
            // two replicas the other keeps answering, within the PodDisruptionBudget's
            // maxUnavailable 1. (A pod cannot surge: the new one needs the old one's claim.)
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            // The journal is the audit trail: deleting the StatefulSet or scaling it down keeps
            // the claims (the API's default, written out so no one has to look it up).
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Retain".to_owned()),
                when_scaled: Some("Retain".to_owned()),
            }),
            template: PodTemplateSpec { metadata: Some(template_meta), spec: Some(pod) },
            volume_claim_templates: Some(vec![journal_claim()]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The claim each replica gets for its journal: ReadWriteOnce, [`JOURNAL_SIZE`], and no
/// `storageClassName`, so the cluster's default StorageClass provisions it.
fn journal_claim() -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(JOURNAL_VOLUME.to_owned()), labels: Some(labels()), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(strings(&["ReadWriteOnce"])),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(JOURNAL_SIZE.to_owned()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The StatefulSet's governing Service: headless, for the pods' stable DNS names only. It has
/// no ports: the webhook and metrics go through [`service`], and a ServiceMonitor selecting
/// driftgate's label finds no second `metrics` port here (which would scrape every pod twice).
pub(crate) fn headless_service(ns: &str) -> Service {
    Service {
        metadata: meta(HEADLESS_SERVICE, Some(ns)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(labels()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub(crate) fn service(ns: &str) -> Service {
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

pub(crate) fn pdb(ns: &str) -> PodDisruptionBudget {
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
pub(crate) fn network_policy(ns: &str, webhook_sources: &[String]) -> NetworkPolicy {
    // The webhook port from the given CIDRs (the control plane), or from anywhere.
    let webhook_from = (!webhook_sources.is_empty()).then(|| {
        webhook_sources
            .iter()
            .map(|cidr| NetworkPolicyPeer {
                ip_block: Some(IPBlock { cidr: cidr.clone(), except: None }),
                ..NetworkPolicyPeer::default()
            })
            .collect()
    });
    NetworkPolicy {
        metadata: meta(APP, Some(ns)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector()),
            policy_types: Some(strings(&["Ingress", "Egress"])),
            ingress: Some(vec![
                NetworkPolicyIngressRule { ports: Some(vec![tcp(HTTPS_PORT)]), from: webhook_from },
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
