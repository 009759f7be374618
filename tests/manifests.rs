//! `driftgate manifests` and the committed `manifests/`: every document is a valid Kubernetes
//! object (no field the API would drop), the StatefulSet keeps each replica's journal on a claim
//! of its own (or an `emptyDir` with the `ephemeral-journal` component), the webhook rules and
//! CEL `matchConditions` follow the policies, and the kustomize tree holds together.
//!
//! `DRIFTGATE_BLESS=1 cargo test --test manifests` (or `make manifests`) rewrites `manifests/base/`
//! from the generator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use driftgate::install::{self, Inputs, InstallOptions};
use driftgate::policy::{self, DriftPolicy};
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhookConfiguration, ValidatingWebhook, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const DEFAULT_GROUPS: &[&str] = &[
    "networking.istio.io",
    "security.istio.io",
    "telemetry.istio.io",
    "extensions.istio.io",
    "policy.linkerd.io",
    "linkerd.io",
    "gateway.networking.k8s.io",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn driftgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftgate")).args(args).current_dir(root()).output().unwrap()
}

/// A CA made for the test, written to `dir/ca.crt`.
fn mk_ca(dir: &Path) -> (PathBuf, String) {
    let bundle = driftgate::certs::generate(&driftgate::certs::dev_request()).unwrap();
    driftgate::certs::write(dir, &bundle, true).unwrap();
    (dir.join("ca.crt"), bundle.ca_pem)
}

fn manifests_stdout(extra: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = mk_ca(dir.path());
    let mut args = vec!["manifests", "--ca-bundle", ca.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = driftgate(&args);
    assert!(out.status.success(), "driftgate manifests failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), ca_pem)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml).map(|doc| Value::deserialize(doc).unwrap()).collect()
}

/// Deserializes into the k8s-openapi type and back: anything the type does not know (a typo,
/// a field in the wrong place) or reads differently is lost on the way and shows as a difference.
fn round_trip<T: DeserializeOwned + serde::Serialize>(doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, doc, "a field was dropped or changed by {}", std::any::type_name::<T>());
}

fn check_typed(doc: &Value) -> String {
    use k8s_openapi::api::{apps, core, networking, policy, rbac};
    let kind = doc["kind"].as_str().unwrap().to_owned();
    match kind.as_str() {
        "Namespace" => round_trip::<core::v1::Namespace>(doc),
        "ServiceAccount" => round_trip::<core::v1::ServiceAccount>(doc),
        "ConfigMap" => round_trip::<core::v1::ConfigMap>(doc),
        "Service" => round_trip::<core::v1::Service>(doc),
        "StatefulSet" => round_trip::<apps::v1::StatefulSet>(doc),
        "ClusterRole" => round_trip::<rbac::v1::ClusterRole>(doc),
        "ClusterRoleBinding" => round_trip::<rbac::v1::ClusterRoleBinding>(doc),
        "Role" => round_trip::<rbac::v1::Role>(doc),
        "RoleBinding" => round_trip::<rbac::v1::RoleBinding>(doc),
        "PodDisruptionBudget" => round_trip::<policy::v1::PodDisruptionBudget>(doc),
        "NetworkPolicy" => round_trip::<networking::v1::NetworkPolicy>(doc),
        "ValidatingWebhookConfiguration" => round_trip::<ValidatingWebhookConfiguration>(doc),
        "MutatingWebhookConfiguration" => round_trip::<MutatingWebhookConfiguration>(doc),
        "ValidatingAdmissionPolicy" => {
            round_trip::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy>(doc)
        }
        "ValidatingAdmissionPolicyBinding" => {
            round_trip::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>(doc)
        }
        "CustomResourceDefinition" => round_trip::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(doc),
        other => panic!("unexpected kind {other}"),
    }
    kind
}

fn of_kind<T: DeserializeOwned>(docs: &[Value], kind: &str) -> T {
    let doc = docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
    serde_json::from_value(doc.clone()).unwrap()
}

fn load(dir: &str) -> Vec<DriftPolicy> {
    policy::load_dir(&root().join(dir)).unwrap().into_iter().map(|l| l.policy).collect()
}

#[test]
fn every_document_is_a_kubernetes_object_with_no_unknown_field() {
    let (stdout, _) = manifests_stdout(&[]);
    let docs = documents(&stdout);
    let kinds: Vec<String> = docs.iter().map(check_typed).collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRole",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Service",
            "Service",
            "StatefulSet",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    );
    for doc in &docs {
        let namespaced = !matches!(
            doc["kind"].as_str(),
            Some(
                "Namespace"
                    | "CustomResourceDefinition"
                    | "ClusterRole"
                    | "ClusterRoleBinding"
                    | "ValidatingWebhookConfiguration"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            )
        );
        assert_eq!(doc["metadata"]["namespace"].as_str().is_some(), namespaced, "{}", doc["kind"]);
    }
}

#[test]
fn the_round_trip_check_catches_unknown_and_misplaced_fields() {
    let doc = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"}, "automountToken": false});
    let caught = std::panic::catch_unwind(|| round_trip::<k8s_openapi::api::core::v1::ServiceAccount>(&doc));
    assert!(caught.is_err(), "an unknown field must fail the check");
}

#[test]
fn webhooks_cover_the_default_policy_groups_and_skip_kube_system_and_driftgate() {
    let (stdout, _) = manifests_stdout(&[]);
    let docs = documents(&stdout);
    let v: ValidatingWebhookConfiguration = of_kind(&docs, "ValidatingWebhookConfiguration");
    let m: MutatingWebhookConfiguration = of_kind(&docs, "MutatingWebhookConfiguration");
    assert_eq!(v.metadata.name.as_deref(), Some("driftgate"));
    let hooks = v.webhooks.unwrap();
    assert_eq!(hooks.len(), 5, "one webhook per policy, its break-glass entry, and the grants' entry");
    // Every grant write in driftgate's namespace goes to /grants and fails closed: a grant is
    // never made unchecked.
    let grants = hooks.last().unwrap();
    assert_eq!(grants.name, "breakglassgrants.driftgate.dev");
    assert_eq!(grants.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(grants.client_config.service.as_ref().unwrap().path.as_deref(), Some("/grants"));
    let rule = &grants.rules.as_ref().unwrap()[0];
    assert_eq!(
        (rule.api_groups.as_deref().unwrap(), rule.resources.as_deref().unwrap()),
        (&["driftgate.dev".to_owned()][..], &["breakglassgrants".to_owned()][..])
    );
    let only = &grants.namespace_selector.as_ref().unwrap().match_expressions.as_ref().unwrap()[0];
    assert_eq!((only.operator.as_str(), only.values.as_deref().unwrap()), ("In", &["driftgate".to_owned()][..]));
    let w = &hooks[0];
    assert_eq!(w.name, "mesh-gitops.validate.driftgate.dev");
    let rules = w.rules.clone().unwrap();
    let groups: Vec<String> = rules.iter().flat_map(|r| r.api_groups.clone().unwrap()).collect();
    assert_eq!(groups, DEFAULT_GROUPS);
    for r in &rules {
        assert_eq!(r.operations.as_deref().unwrap(), ["CREATE", "UPDATE", "DELETE"]);
        assert_eq!(r.resources.as_deref().unwrap(), ["*", "*/scale"]);
        assert_eq!(r.api_versions.as_deref().unwrap(), ["*"]);
    }
    assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(w.match_policy.as_deref(), Some("Equivalent"));
    assert_eq!(w.side_effects, "NoneOnDryRun");
    assert_eq!(w.timeout_seconds, Some(5));
    assert_eq!(w.admission_review_versions, ["v1"]);
    let service = w.client_config.service.clone().unwrap();
    assert_eq!(
        (service.namespace.as_str(), service.name.as_str(), service.path.as_deref(), service.port),
        ("driftgate", "driftgate", Some("/validate/mesh-gitops"), Some(443))
    );
    let selector = w.namespace_selector.clone().unwrap().match_expressions.unwrap();
    assert_eq!(selector.len(), 1);
    assert_eq!(selector[0].key, "kubernetes.io/metadata.name");
    assert_eq!(selector[0].operator, "NotIn");
    assert_eq!(selector[0].values.as_deref().unwrap(), ["kube-system", "driftgate"]);
    assert!(w.namespace_selector.as_ref().unwrap().match_labels.is_none(), "no label anyone could set opts out");

    // Break-glass members go to a twin entry that fails open: judged and recorded while
    // driftgate is up, let through while it is down.
    let bg = &hooks[1];
    assert_eq!(bg.name, "mesh-gitops-break-glass.validate.driftgate.dev");
    assert_eq!(bg.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!((bg.rules.clone(), bg.client_config.clone()), (w.rules.clone(), w.client_config.clone()));
    let last = |w: &ValidatingWebhook| w.match_conditions.clone().unwrap().pop().unwrap().name;
    assert_eq!((last(w), last(bg)), ("not-break-glass".to_owned(), "break-glass".to_owned()));

    // The tracked-namespace policy: DELETE of namespaces only.
    let ns = &hooks[2];
    assert_eq!(ns.name, "gitops-namespaces.validate.driftgate.dev");
    let rules = ns.rules.clone().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].api_groups.as_deref().unwrap(), [""]);
    assert_eq!(rules[0].resources.as_deref().unwrap(), ["namespaces"]);
    assert_eq!(rules[0].operations.as_deref().unwrap(), ["DELETE"]);
    assert!(ns.match_conditions.is_some(), "GitOps may delete its namespaces");

    // No shipped policy repairs or stamps provenance: no mutating webhook, so a GitOps write
    // makes no webhook call at all.
    assert_eq!(m.webhooks, Some(vec![]));
}

#[test]
fn webhooks_follow_each_example_policy() {
    let policies = load("policies/examples");
    let hooks = install::webhooks(&policies, &InstallOptions::default());
    let v = hooks.validating.webhooks.unwrap();
    let by_name = |name: &str| -> &ValidatingWebhook { v.iter().find(|w| w.name == name).unwrap() };
    type Table<'a> = [(&'a str, &'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str])];
    // webhook, failurePolicy, resources of the first rule, NotIn, In
    let table: &Table = &[
        (
            "gateway-api.validate.driftgate.dev",
            "Fail",
            &["gateways", "httproutes", "grpcroutes", "tlsroutes", "referencegrants"],
            &["kube-system", "driftgate"],
            &["shop", "payments"],
        ),
        (
            "gateway-api-argo-rollouts.validate.driftgate.dev",
            "Fail",
            &["httproutes", "grpcroutes", "tcproutes", "tlsroutes"],
            &["kube-system", "driftgate"],
            &[],
        ),
        ("gateway-api-flagger.validate.driftgate.dev", "Fail", &["httproutes"], &["kube-system", "driftgate"], &[]),
        (
            "istio-argo-rollouts.validate.driftgate.dev",
            "Fail",
            &["virtualservices", "destinationrules"],
            &["kube-system", "driftgate", "istio-system"],
            &[],
        ),
        (
            "istio-flagger.validate.driftgate.dev",
            "Fail",
            &["virtualservices", "destinationrules"],
            &["kube-system", "driftgate", "istio-system"],
            &[],
        ),
        (
            "istio-argocd.validate.driftgate.dev",
            "Fail",
            &["*", "*/scale"],
            &["kube-system", "driftgate", "istio-system"],
            &[],
        ),
        ("istio-flux.validate.driftgate.dev", "Fail", &["*", "*/scale"], &["kube-system", "driftgate"], &[]),
        (
            "linkerd.validate.driftgate.dev",
            "Ignore",
            &["*", "*/scale"],
            &["kube-system", "driftgate", "linkerd", "linkerd-viz"],
            &[],
        ),
    ];
    // Each policy that fails closed has a break-glass twin that fails open.
    let twins = table.iter().filter(|t| t.1 == "Fail").count();
    // And the grants' entry.
    assert_eq!(v.len(), table.len() + twins + 1);
    for (name, failure, resources, not_in, only) in table {
        let w = by_name(name);
        assert_eq!(w.failure_policy.as_deref(), Some(*failure), "{name}");
        if *failure == "Fail" {
            let twin = by_name(&name.replacen('.', "-break-glass.", 1));
            assert_eq!(twin.failure_policy.as_deref(), Some("Ignore"), "{name}");
            assert_eq!(twin.rules, w.rules, "{name}");
        }
        assert_eq!(w.rules.as_ref().unwrap()[0].resources.as_deref().unwrap(), *resources, "{name}");
        let exprs = w.namespace_selector.clone().unwrap().match_expressions.unwrap();
        assert_eq!(exprs[0].values.as_deref().unwrap(), *not_in, "{name}");
        match exprs.get(1) {
            Some(e) => {
                assert_eq!(e.operator, "In", "{name}");
                assert_eq!(e.values.as_deref().unwrap(), *only, "{name}");
            }
            None => assert!(only.is_empty(), "{name}"),
        }
    }
    // Linkerd's second rule names one kind.
    let linkerd = by_name("linkerd.validate.driftgate.dev").rules.clone().unwrap();
    assert_eq!(linkerd[1].resources.as_deref().unwrap(), ["serviceprofiles"]);
}

#[test]
fn ca_bundle_decodes_to_the_ca() {
    let (stdout, ca_pem) = manifests_stdout(&[]);
    let docs = documents(&stdout);
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        let doc = docs.iter().find(|d| d["kind"] == kind).unwrap();
        for hook in doc["webhooks"].as_array().unwrap() {
            let b64 = hook["clientConfig"]["caBundle"].as_str().unwrap();
            let pem = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            assert_eq!(String::from_utf8(pem).unwrap(), ca_pem, "{kind}");
        }
    }
}

#[test]
fn url_flag_gives_client_config_url_instead_of_the_service() {
    let (stdout, _) = manifests_stdout(&["--url", "https://172.18.0.1:8443/"]);
    let docs = documents(&stdout);
    let v: ValidatingWebhookConfiguration = of_kind(&docs, "ValidatingWebhookConfiguration");
    let m: MutatingWebhookConfiguration = of_kind(&docs, "MutatingWebhookConfiguration");
    let urls: Vec<String> = v.webhooks.unwrap().into_iter().map(|w| w.client_config.url.unwrap()).collect();
    assert_eq!(
        urls,
        [
            "https://172.18.0.1:8443/validate/mesh-gitops",
            "https://172.18.0.1:8443/validate/mesh-gitops",
            "https://172.18.0.1:8443/validate/gitops-namespaces",
            "https://172.18.0.1:8443/validate/gitops-namespaces",
            "https://172.18.0.1:8443/grants"
        ]
    );
    assert_eq!(m.webhooks, Some(vec![]));
}

#[test]
fn webhook_source_cidrs_close_the_webhook_port_to_everyone_else() {
    let port_rule = |stdout: &str| {
        let np: NetworkPolicy = of_kind(&documents(stdout), "NetworkPolicy");
        let ingress = np.spec.unwrap().ingress.unwrap();
        ingress.into_iter().find(|r| r.ports.as_ref().unwrap()[0].port == Some(IntOrString::Int(8443))).unwrap()
    };
    // The default admits the webhook port from anywhere (the README says so).
    let (stdout, _) = manifests_stdout(&[]);
    assert!(port_rule(&stdout).from.is_none());
    let (stdout, _) = manifests_stdout(&["--webhook-source-cidr", "10.0.0.0/24", "--webhook-source-cidr", "fd00::7"]);
    let cidrs: Vec<String> = port_rule(&stdout).from.unwrap().into_iter().map(|p| p.ip_block.unwrap().cidr).collect();
    assert_eq!(cidrs, ["10.0.0.0/24", "fd00::7/128"]);
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = mk_ca(dir.path());
    let out = driftgate(&["manifests", "--ca-bundle", ca.to_str().unwrap(), "--webhook-source-cidr", "10.0.0/24"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--webhook-source-cidr \"10.0.0/24\"") && err.contains("10.0.0.0/24"), "{err}");
}

#[test]
fn namespace_and_image_flags_move_the_install() {
    let (stdout, _) = manifests_stdout(&["--namespace", "mesh-guard", "--image", "registry.example/driftgate:1.2.3"]);
    let docs = documents(&stdout);
    for doc in &docs {
        if let Some(ns) = doc["metadata"]["namespace"].as_str() {
            assert_eq!(ns, "mesh-guard", "{}", doc["kind"]);
        }
    }
    let ns = docs.iter().find(|d| d["kind"] == "Namespace").unwrap();
    assert_eq!(ns["metadata"]["name"], "mesh-guard");
    let binding = docs.iter().find(|d| d["kind"] == "ClusterRoleBinding").unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], "mesh-guard");
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example/driftgate:1.2.3");
    let v: ValidatingWebhookConfiguration = of_kind(&docs, "ValidatingWebhookConfiguration");
    let w = &v.webhooks.unwrap()[0];
    assert_eq!(w.client_config.service.as_ref().unwrap().namespace, "mesh-guard");
    let not_in = w.namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values.clone().unwrap();
    assert_eq!(not_in, ["kube-system", "mesh-guard"]);
}

#[test]
fn bad_flags_are_refused_naming_the_flag_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.crt");
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let (ca, _) = mk_ca(dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["--ca-bundle", missing.to_str().unwrap()], vec!["--ca-bundle".into(), missing.display().to_string()]),
        (
            vec!["--ca-bundle", not_pem.to_str().unwrap()],
            vec!["no PEM certificate".into(), not_pem.display().to_string()],
        ),
        (
            vec!["--ca-bundle", ca.to_str().unwrap(), "--url", "http://10.0.0.1:8443"],
            vec!["--url".into(), "HTTPS".into()],
        ),
        (
            vec!["--ca-bundle", ca.to_str().unwrap(), "--policies", empty.to_str().unwrap()],
            vec!["no policy files".into()],
        ),
    ];
    for (flags, wants) in cases {
        let mut args = vec!["manifests"];
        args.extend(flags.iter());
        let out = driftgate(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} must fail");
        assert!(out.stdout.is_empty(), "{flags:?}: nothing on stdout");
        for want in wants {
            assert!(stderr.contains(&want), "{flags:?}: {stderr} should name {want}");
        }
    }
}

/// The generated files as they should be under `manifests/base/`: the default policies, no caBundle
/// (cert-manager's injector or `driftgate register` fills it in).
fn generated() -> Vec<install::Manifest> {
    let inputs =
        Inputs::load(&root().join("policies"), None, install::DEFAULT_NAMESPACE, install::DEFAULT_IMAGE, None).unwrap();
    install::manifests(&inputs).unwrap()
}

#[test]
fn committed_manifests_match_generation() {
    let bless = std::env::var_os("DRIFTGATE_BLESS").is_some();
    let dir = root().join("manifests/base");
    let mut stale = Vec::new();
    for m in generated() {
        let path = dir.join(m.file);
        let want = m.file_text();
        if bless {
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "out of date (run `make manifests`): {stale:?}");
}

#[test]
fn committed_manifests_are_what_the_command_prints() {
    let (stdout, _) = manifests_stdout(&[]);
    for m in generated() {
        for doc in &m.docs {
            if m.file == "webhooks.yaml" {
                // The only difference: the command fills in the caBundle.
                continue;
            }
            assert!(stdout.contains(doc.as_str()), "{} differs from `driftgate manifests`", m.file);
        }
    }
    let committed = std::fs::read_to_string(root().join("manifests/base/webhooks.yaml")).unwrap();
    let printed: Vec<Value> = documents(&stdout)
        .into_iter()
        .filter(|d| d["kind"].as_str().unwrap().ends_with("WebhookConfiguration"))
        .collect();
    let mut without_ca = printed.clone();
    for doc in &mut without_ca {
        for hook in doc["webhooks"].as_array_mut().unwrap() {
            hook["clientConfig"].as_object_mut().unwrap().remove("caBundle");
        }
    }
    assert_eq!(documents(&committed), without_ca);
}

fn kustomization(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn kustomizations_list_only_files_that_exist_and_every_generated_file() {
    let top = root().join("manifests");
    let k = kustomization(&top.join("base"));
    let listed: Vec<&str> = k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    for m in generated() {
        assert!(listed.contains(&m.file), "{} is not in manifests/base/kustomization.yaml", m.file);
    }
    let mut dirs = vec![top.clone()];
    let mut seen = 0;
    while let Some(dir) = dirs.pop() {
        let k = kustomization(&dir);
        seen += 1;
        for key in ["resources", "components"] {
            for entry in k[key].as_array().into_iter().flatten() {
                let path = dir.join(entry.as_str().unwrap());
                assert!(path.exists(), "{} lists {} which does not exist", dir.display(), path.display());
                if path.is_dir() {
                    assert!(path.join("kustomization.yaml").exists(), "{} has no kustomization.yaml", path.display());
                }
            }
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path.join("kustomization.yaml").exists() {
                dirs.push(path);
            } else if path.is_dir() {
                for sub in std::fs::read_dir(&path).unwrap() {
                    let sub = sub.unwrap().path();
                    if sub.join("kustomization.yaml").exists() {
                        dirs.push(sub);
                    }
                }
            }
        }
    }
    assert!(seen >= 4, "manifests/, its base, the cert-manager component and its overlay");
    let component = kustomization(&top.join("components/cert-manager"));
    assert_eq!(component["kind"], "Component");
}

#[test]
fn each_replica_keeps_its_journal_on_a_claim_of_its_own() {
    let (yaml, _) = manifests_stdout(&[]);
    let docs = documents(&yaml);
    let sts: StatefulSet = of_kind(&docs, "StatefulSet");
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.service_name.as_deref(), Some("driftgate-headless"));
    assert_eq!(spec.update_strategy.unwrap().type_.as_deref(), Some("RollingUpdate"));
    let claims = spec.volume_claim_templates.unwrap();
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("journal"));
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.access_modes.as_deref(), Some(&["ReadWriteOnce".to_owned()][..]));
    assert_eq!(claim_spec.storage_class_name, None, "the cluster's default StorageClass");
    assert_eq!(claim_spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "1Gi");
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    let pod = spec.template.spec.unwrap();
    let container: &Container = &pod.containers[0];
    let mount = container.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "journal").unwrap();
    assert_eq!(mount.mount_path, "/var/lib/driftgate");
    let env = container.env.as_ref().unwrap();
    let journal = env.iter().find(|e| e.name == "DRIFTGATE_JOURNAL").unwrap();
    assert!(journal.value.as_deref().unwrap().starts_with("/var/lib/driftgate/"), "{journal:?}");
    assert!(pod.volumes.unwrap().iter().all(|v| v.name != "journal"), "the claim is the journal volume");
    let services: Vec<Service> =
        docs.iter().filter(|d| d["kind"] == "Service").map(|d| serde_json::from_value(d.clone()).unwrap()).collect();
    let headless = services.iter().find(|s| s.metadata.name.as_deref() == Some("driftgate-headless")).unwrap();
    assert_eq!(headless.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"));
    let pdb: PodDisruptionBudget = of_kind(&docs, "PodDisruptionBudget");
    assert!(pdb.spec.unwrap().max_unavailable.is_some(), "a rollout or drain takes one pod at a time");
}

/// `kubectl kustomize` builds each kustomization, where kubectl is installed (it is not
/// needed otherwise, so the check is skipped without it).
#[test]
fn kustomize_builds_the_base_and_the_cert_manager_overlay() {
    if Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        eprintln!("kubectl not found: skipping the kustomize build");
        return;
    }
    let build = |dir: &str| -> Vec<Value> {
        let out = Command::new("kubectl").args(["kustomize", dir]).current_dir(root()).output().unwrap();
        assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
        documents(&String::from_utf8(out.stdout).unwrap())
    };
    let base = build("manifests");
    assert_eq!(base.len(), 18);
    // Without storage: the same StatefulSet, its journal on an emptyDir.
    let ephemeral = build("manifests/ephemeral-journal");
    assert_eq!(ephemeral.len(), base.len());
    let sts: StatefulSet = of_kind(&ephemeral, "StatefulSet");
    let spec = sts.spec.unwrap();
    assert!(spec.volume_claim_templates.is_none());
    let volumes = spec.template.spec.unwrap().volumes.unwrap();
    let journal = volumes.iter().find(|v| v.name == "journal").unwrap();
    assert_eq!(journal.empty_dir.as_ref().unwrap().size_limit.as_ref().unwrap().0, "1Gi");
    // The webhook port open to the control plane's CIDRs only.
    let sources = build("manifests/webhook-sources");
    let np: NetworkPolicy = of_kind(&sources, "NetworkPolicy");
    let rule = &np.spec.unwrap().ingress.unwrap()[0];
    assert_eq!(rule.ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(8443)));
    assert_eq!(rule.from.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr, "192.0.2.0/24");
    let overlay = build("manifests/cert-manager");
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        let doc = overlay.iter().find(|d| d["kind"] == kind).unwrap();
        assert_eq!(
            doc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"], "driftgate/driftgate-tls",
            "{kind}"
        );
    }
    let serving =
        overlay.iter().find(|d| d["kind"] == "Certificate" && d["spec"]["secretName"] == "driftgate-tls").unwrap();
    let names: Vec<&str> =
        serving["spec"]["dnsNames"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["driftgate", "driftgate.driftgate", "driftgate.driftgate.svc", "driftgate.driftgate.svc.cluster.local"]
    );
    assert_eq!(overlay.len(), base.len() + 4, "two issuers and two certificates");
}

// --- matchConditions, evaluated with a CEL interpreter against captured AdmissionReviews ---

fn fixture_request(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures").join(name)).unwrap();
    let review: Value = serde_json::from_str(&text).unwrap();
    review["request"].clone()
}

/// Whether the kube-apiserver would call the webhook: every condition must be true.
fn sent(conditions: &[MatchCondition], request: &Value) -> bool {
    let mut ctx = cel::Context::default();
    ctx.add_variable("request", cel::to_value(request).unwrap()).unwrap();
    conditions.iter().all(|c| {
        let program = cel::Program::compile(&c.expression).unwrap_or_else(|e| panic!("{}: {e}", c.expression));
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => b,
            other => panic!("{} gave {other:?}", c.expression),
        }
    })
}

/// The conditions of the default policy's entry and of its break-glass twin.
fn default_conditions() -> [Vec<MatchCondition>; 2] {
    let hooks = install::webhooks(&load("policies"), &InstallOptions::default()).validating.webhooks.unwrap();
    [hooks[0].match_conditions.clone().unwrap(), hooks[1].match_conditions.clone().unwrap()]
}

/// Whether the request reaches the policy through either entry; never through both.
fn sent_to_policy(conditions: &[Vec<MatchCondition>; 2], request: &Value) -> bool {
    let (main, break_glass) = (sent(&conditions[0], request), sent(&conditions[1], request));
    assert!(!(main && break_glass), "one entry or the other: {request}");
    main || break_glass
}

#[test]
fn argocd_and_flux_requests_never_leave_the_apiserver_and_a_human_edit_is_sent() {
    let conditions = default_conditions();
    let mut flux = 0;
    for entry in std::fs::read_dir(root().join("tests/fixtures")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("flux-create-server-side-apply--") && name.ends_with(".validating.json") {
            assert!(!sent_to_policy(&conditions, &fixture_request(&name)), "{name}: Flux must be skipped");
            flux += 1;
        }
    }
    assert!(flux >= 5, "the Flux fixtures are there");
    assert!(!sent_to_policy(
        &conditions,
        &fixture_request("virtualservice-create-argocd-kubectl-apply.validating.json")
    ));
    let edit = fixture_request("virtualservice-update-kubectl-edit-human.validating.json");
    assert!(sent(&conditions[0], &edit) && !sent(&conditions[1], &edit), "a person: the entry that fails closed");
    let member = fixture_request("virtualservice-update-kubectl-edit-human-derived-break-glass-group.validating.json");
    assert!(!sent(&conditions[0], &member) && sent(&conditions[1], &member), "break-glass: the entry that fails open");
}

/// For every captured request: skipped by the conditions exactly when the server would allow it
/// as a GitOps write of the policy; so skipping never changes an answer.
#[test]
fn match_conditions_agree_with_the_servers_gitops_rule_on_every_fixture() {
    let policies = load("policies");
    let conditions = default_conditions();
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("tests/fixtures")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".validating.json") {
            continue;
        }
        let request = fixture_request(&name);
        let user: driftgate::admission::UserInfo = serde_json::from_value(request["userInfo"].clone()).unwrap();
        let gitops = policies[0].spec.gitops.matching(&user).is_some();
        assert_eq!(sent_to_policy(&conditions, &request), !gitops, "{name} ({})", user.username);
        checked += 1;
    }
    assert!(checked >= 20);
}

#[test]
fn match_conditions_cover_tenant_service_accounts_users_and_groups() {
    let yaml = r#"
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: tenants}
spec:
  resources: [{group: networking.istio.io}]
  gitops:
    serviceAccounts: [argocd/argocd-application-controller, tenant-a/*]
    users: [ci@example.com]
    groups: [gitops-writers]
"#;
    let policies: Vec<DriftPolicy> =
        policy::load_str(Path::new("t.yaml"), yaml).unwrap().into_iter().map(|l| l.policy).collect();
    let hooks = install::webhooks(&policies, &InstallOptions::default());
    let conditions = hooks.validating.webhooks.unwrap()[0].match_conditions.clone().unwrap();
    let human = fixture_request("virtualservice-update-kubectl-edit-human.validating.json");
    let as_user = |username: &str, groups: &[&str]| {
        let mut r = human.clone();
        r["userInfo"] = json!({"username": username, "groups": groups});
        r
    };
    let no_groups = {
        let mut r = human.clone();
        r["userInfo"] = json!({"username": "system:anonymous"});
        r
    };
    for (request, want_sent, why) in [
        (as_user("system:serviceaccount:tenant-a:sync", &["system:serviceaccounts"]), false, "tenant-a/*"),
        (as_user("system:serviceaccount:tenant-ab:sync", &[]), true, "tenant-ab is another namespace"),
        (as_user("system:serviceaccount:argocd:argocd-server", &[]), true, "another Argo CD account"),
        (as_user("ci@example.com", &["system:authenticated"]), false, "listed user"),
        (as_user("bob", &["gitops-writers"]), false, "listed group"),
        (as_user("bob", &["devs"]), true, "a person"),
        (as_user("tenant-a:sync", &[]), true, "not a service account"),
        (no_groups, true, "no groups at all is no error"),
    ] {
        assert_eq!(sent(&conditions, &request), want_sent, "{why}");
    }
}

/// The documents of a file of the `policy-reports` component.
fn component_documents(file: &str) -> Vec<Value> {
    let path = root().join("manifests/components/policy-reports").join(file);
    documents(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn the_policy_reports_component_holds_the_crds_the_audits_rbac_and_its_cronjob() {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    let k = kustomization(&root().join("manifests/components/policy-reports"));
    assert_eq!(k["kind"], "Component");
    // The CRDs the audit writes: wgpolicyk8s.io/v1alpha2, served and stored, one of each scope.
    for (file, plural, scope) in [
        ("wgpolicyk8s.io_policyreports.yaml", "policyreports", "Namespaced"),
        ("wgpolicyk8s.io_clusterpolicyreports.yaml", "clusterpolicyreports", "Cluster"),
    ] {
        let docs = component_documents(file);
        assert_eq!(docs.len(), 1, "{file}");
        round_trip::<CustomResourceDefinition>(&docs[0]);
        let crd: CustomResourceDefinition = serde_json::from_value(docs[0].clone()).unwrap();
        assert_eq!(
            (crd.spec.group.as_str(), crd.spec.names.plural.as_str(), crd.spec.scope.as_str()),
            ("wgpolicyk8s.io", plural, scope)
        );
        let v1alpha2 = crd.spec.versions.iter().find(|v| v.name == "v1alpha2").unwrap();
        assert!(v1alpha2.served && v1alpha2.storage, "{file}");
    }
    // The audit's RBAC: its own account and ClusterRole, reading every group the default
    // policies protect and writing its reports.
    let rbac = component_documents("rbac.yaml");
    let sa: ServiceAccount = of_kind(&rbac, "ServiceAccount");
    round_trip::<ServiceAccount>(rbac.iter().find(|d| d["kind"] == "ServiceAccount").unwrap());
    let role: ClusterRole = of_kind(&rbac, "ClusterRole");
    round_trip::<ClusterRole>(rbac.iter().find(|d| d["kind"] == "ClusterRole").unwrap());
    let binding: ClusterRoleBinding = of_kind(&rbac, "ClusterRoleBinding");
    round_trip::<ClusterRoleBinding>(rbac.iter().find(|d| d["kind"] == "ClusterRoleBinding").unwrap());
    let rules = role.rules.unwrap();
    let grants = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == "*" || x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    for policy in load("policies") {
        // What the audit lists: the kinds a policy protects from updates.
        for rule in policy.spec.resources.iter().filter(|r| r.covers(driftgate::admission::Operation::Update)) {
            for verb in ["list", "watch"] {
                assert!(
                    grants(&rule.group, "anything", verb),
                    "{verb} of group {:?} ({})",
                    rule.group,
                    policy.metadata.name
                );
            }
        }
    }
    for resource in ["policyreports", "clusterpolicyreports"] {
        for verb in ["list", "create", "patch", "delete"] {
            assert!(grants("wgpolicyk8s.io", resource, verb), "{verb} {resource}");
        }
    }
    assert!(!grants("networking.istio.io", "virtualservices", "patch"), "the audit never changes what it reads");
    assert_eq!(binding.role_ref.name, role.metadata.name.clone().unwrap());
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", sa.metadata.name.as_deref().unwrap())
    );
    assert_eq!(subject.namespace.as_deref(), sa.metadata.namespace.as_deref());
    // The nightly audit: as that account, with the install's policies and image.
    let cron_docs = component_documents("cronjob.yaml");
    round_trip::<CronJob>(&cron_docs[0]);
    let cron: CronJob = of_kind(&cron_docs, "CronJob");
    let job = cron.spec.unwrap().job_template.spec.unwrap();
    let pod = job.template.spec.unwrap();
    assert_eq!(pod.service_account_name, sa.metadata.name);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let container = &pod.containers[0];
    assert_eq!(container.args.as_deref(), Some(&["audit".to_owned(), "--write-reports".to_owned()][..]));
    assert_eq!(container.image.as_deref(), Some(install::DEFAULT_IMAGE));
    let rule = &job.pod_failure_policy.unwrap().rules[0];
    assert_eq!(rule.action, "FailJob");
    let codes = rule.on_exit_codes.as_ref().unwrap();
    assert_eq!((codes.container_name.as_deref(), codes.values.as_slice()), (Some(container.name.as_str()), &[1][..]));
    let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == "policies").unwrap();
    assert_eq!(volume.config_map.unwrap().name, install::POLICIES_CONFIGMAP);
    let (yaml, _) = manifests_stdout(&[]);
    let sts: StatefulSet = of_kind(&documents(&yaml), "StatefulSet");
    let served = sts.spec.unwrap().template.spec.unwrap().containers.remove(0);
    let env = |c: &Container, name: &str| c.env.iter().flatten().find(|e| e.name == name).cloned().unwrap();
    assert_eq!(env(container, "DRIFTGATE_POLICIES"), env(&served, "DRIFTGATE_POLICIES"), "the server's policies");
    assert_eq!(env(container, "DRIFTGATE_NAMESPACE"), env(&served, "DRIFTGATE_NAMESPACE"));
    let mount =
        |c: &Container| c.volume_mounts.iter().flatten().find(|m| m.name == "policies").unwrap().mount_path.clone();
    assert_eq!(mount(container), mount(&served));
}

/// `kubectl kustomize` builds the base with the `policy-reports` component, where kubectl is
/// installed.
#[test]
fn kustomize_builds_the_base_with_the_policy_reports_component() {
    if Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        eprintln!("kubectl not found: skipping the kustomize build");
        return;
    }
    // kustomize wants relative paths: an overlay inside the repository's target folder.
    let target = root().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let overlay = tempfile::tempdir_in(&target).unwrap();
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../manifests/base]\ncomponents: [../../manifests/components/policy-reports]\n",
    )
    .unwrap();
    let out = Command::new("kubectl").arg("kustomize").arg(overlay.path()).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(docs.len(), 18 + 6, "the base, two CRDs, the account, role, binding and CronJob");
    let audit = |kind: &str| {
        docs.iter()
            .filter(|d| d["kind"] == kind && d["metadata"]["labels"]["app.kubernetes.io/component"] == "audit")
            .count()
    };
    assert_eq!([audit("ServiceAccount"), audit("ClusterRole"), audit("ClusterRoleBinding"), audit("CronJob")], [1; 4]);
    // The PolicyReport CRDs, and the base's BreakGlassGrant.
    assert_eq!(docs.iter().filter(|d| d["kind"] == "CustomResourceDefinition").count(), 3);
}
