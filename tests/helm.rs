//! The Helm chart (`charts/driftgate`) against the generator of `driftgate manifests`: `helm lint`
//! and `helm template` with the default values and other sets; every rendered document parses
//! into its k8s-openapi type with no field lost, and the objects equal those
//! `driftgate::install::manifests` generates for the same inputs, object for object (by kind,
//! namespace and name, in any order), for the shipped policies and every other policy set of the
//! repository. The chart adds no label of Helm's own, so nothing is stripped before comparing.
//!
//! What the defaults add and leave out, and why: the chart makes its certificates (Secrets
//! driftgate-ca and driftgate-tls; `driftgate manifests` is given a CA made elsewhere) and does not
//! render the Namespace (Helm installs into a namespace that exists; `namespace.create` renders
//! it). With `namespace.create` and `certificates.source: existingSecret` the chart is exactly
//! `driftgate manifests`.
//!
//! Helm is `$HELM`, else `helm` on PATH, else `.tools/bin/helm`, which `scripts/fetch-helm.sh`
//! fetches when missing. `DRIFTGATE_BLESS=1 cargo test --test helm` (`make helm`) copies the
//! repository files the chart carries (the default policies, the monitoring files) into it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use driftgate::install::{self, Inputs, InstallOptions, PolicyFile};
use driftgate::policy;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/driftgate")
}

/// The Helm binary, fetched by the project's script when there is none.
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(helm) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
            return PathBuf::from(helm);
        }
        let out = Command::new("bash").arg(root().join("scripts/fetch-helm.sh")).output().unwrap();
        assert!(
            out.status.success(),
            "no helm, and scripts/fetch-helm.sh could not fetch it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin()).args(args).env_remove("KUBECONFIG").current_dir(root()).output().unwrap()
}

/// `helm template` of the chart into namespace `ns` with `values` (YAML): its stdout or stderr.
fn try_render(ns: &str, values: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let chart = chart();
    let out = helm(&[
        "template",
        "driftgate",
        chart.to_str().unwrap(),
        "--namespace",
        ns,
        "--values",
        file.to_str().unwrap(),
    ]);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The chart's documents for `values`, each checked against its k8s-openapi type.
fn render(ns: &str, values: &str) -> Objects {
    let yaml = try_render(ns, values).unwrap_or_else(|e| panic!("helm template with {values}:\n{e}"));
    objects(&yaml)
}

/// Objects by (kind, namespace, name).
type Objects = BTreeMap<(String, String, String), Value>;

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

fn objects(yaml: &str) -> Objects {
    let mut out = Objects::new();
    for doc in documents(yaml) {
        let key = (
            doc["kind"].as_str().unwrap().to_owned(),
            doc["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
            doc["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        let typed = typed(&doc);
        assert!(out.insert(key.clone(), typed).is_none(), "{key:?} twice");
    }
    out
}

/// Deserializes into the k8s-openapi type and back: a field the type does not know, or reads
/// differently, shows as a difference. Kinds of other projects (cert-manager, Prometheus
/// Operator) stay as they are.
fn typed(doc: &Value) -> Value {
    fn via<T: DeserializeOwned + serde::Serialize>(doc: &Value) -> Value {
        let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"));
        let back = serde_json::to_value(&typed).unwrap();
        assert_eq!(&back, doc, "a field was dropped or changed by {}", std::any::type_name::<T>());
        back
    }
    use k8s_openapi::api::{admissionregistration::v1 as admission, apps, core, networking, policy, rbac};
    match doc["kind"].as_str().unwrap() {
        "Namespace" => via::<core::v1::Namespace>(doc),
        "ServiceAccount" => via::<core::v1::ServiceAccount>(doc),
        "ConfigMap" => via::<core::v1::ConfigMap>(doc),
        "Secret" => via::<core::v1::Secret>(doc),
        "Service" => via::<core::v1::Service>(doc),
        "StatefulSet" => via::<apps::v1::StatefulSet>(doc),
        "ClusterRole" => via::<rbac::v1::ClusterRole>(doc),
        "ClusterRoleBinding" => via::<rbac::v1::ClusterRoleBinding>(doc),
        "PodDisruptionBudget" => via::<policy::v1::PodDisruptionBudget>(doc),
        "NetworkPolicy" => via::<networking::v1::NetworkPolicy>(doc),
        "ValidatingWebhookConfiguration" => via::<ValidatingWebhookConfiguration>(doc),
        "MutatingWebhookConfiguration" => via::<MutatingWebhookConfiguration>(doc),
        "ValidatingAdmissionPolicy" => via::<ValidatingAdmissionPolicy>(doc),
        "ValidatingAdmissionPolicyBinding" => via::<admission::ValidatingAdmissionPolicyBinding>(doc),
        "CustomResourceDefinition" => {
            via::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(doc)
        }
        "Role" => via::<rbac::v1::Role>(doc),
        "RoleBinding" => via::<rbac::v1::RoleBinding>(doc),
        "Issuer" | "Certificate" | "ServiceMonitor" | "PrometheusRule" => doc.clone(),
        other => panic!("a kind this test does not know yet: {other} (add its k8s-openapi type)"),
    }
}

fn get<T: DeserializeOwned>(objects: &Objects, kind: &str, name: &str) -> T {
    let (_, doc) = objects
        .iter()
        .find(|((k, _, n), _)| k == kind && n == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", objects.keys().collect::<Vec<_>>()));
    serde_json::from_value(doc.clone()).unwrap()
}

/// What `driftgate manifests` generates for `inputs`, as objects.
fn generated(inputs: &Inputs) -> Objects {
    objects(&install::render(&install::manifests(inputs).unwrap()))
}

/// The inputs of `driftgate manifests --policies DIR --namespace NS --ca-bundle CA [--url URL]`.
fn inputs(policies_dir: &Path, ns: &str, ca_pem: &str, url: Option<&str>) -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, ca_pem).unwrap();
    Inputs::load(policies_dir, Some(&ca), ns, install::DEFAULT_IMAGE, url).unwrap()
}

/// Panics with every difference between the chart's objects and the generator's.
fn assert_same(chart: &Objects, manifests: &Objects, what: &str) {
    let only = |a: &Objects, b: &Objects| a.keys().filter(|k| !b.contains_key(*k)).cloned().collect::<Vec<_>>();
    let (extra, missing) = (only(chart, manifests), only(manifests, chart));
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: only in the chart {extra:?}, only in manifests {missing:?}"
    );
    for (key, want) in manifests {
        let got = &chart[key];
        assert!(
            got == want,
            "{what}: {key:?} differs\n--- driftgate manifests\n{}\n--- chart\n{}",
            serde_yaml_ng::to_string(want).unwrap(),
            serde_yaml_ng::to_string(got).unwrap()
        );
    }
}

fn without(mut objects: Objects, kinds_names: &[(&str, &str)]) -> Objects {
    objects.retain(|(k, _, n), _| !kinds_names.iter().any(|(kind, name)| k == kind && n == name));
    objects
}

/// A CA made for the test (as `driftgate certs` makes it): its PEM.
fn mk_ca() -> String {
    driftgate::certs::generate(&driftgate::certs::dev_request()).unwrap().ca_pem
}

/// Values for a render whose certificates come from an existing Secret signed by `ca_pem`.
fn existing_secret(ca_pem: &str) -> String {
    format!("certificates:\n  source: existingSecret\n  caBundle: {}\n", serde_json::to_string(ca_pem).unwrap())
}

fn secret_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn env_of(sts: &StatefulSet, name: &str) -> Option<String> {
    let container = &sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    container.env.iter().flatten().find(|e| e.name == name).map(|e| e.value.clone().unwrap_or_default())
}

// --- the defaults ---

#[test]
fn the_chart_lints_with_the_default_and_other_value_sets() {
    let ca = mk_ca();
    let chart = chart();
    for values in [
        String::new(),
        existing_secret(&ca),
        "certificates: {source: certManager}\npersistence: {enabled: false}\n".to_owned(),
        "metrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}, grafanaDashboard: {enabled: true}}\n"
            .to_owned(),
        "webhook: {url: https://127.0.0.1:8443}\nnamespace: {create: true}\n".to_owned(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, &values).unwrap();
        let out = helm(&["lint", "--strict", chart.to_str().unwrap(), "--values", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "helm lint with {values:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn default_values_render_driftgate_manifests_with_the_certificates_the_chart_made() {
    let chart = render("driftgate", "");
    let ca: Secret = get(&chart, "Secret", "driftgate-ca");
    let tls: Secret = get(&chart, "Secret", "driftgate-tls");
    let ca_pem = secret_text(&ca, "ca.crt");
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(secret_text(&tls, "ca.crt"), ca_pem);
    let manifests = generated(&inputs(&root().join("policies"), "driftgate", &ca_pem, None));
    assert_same(
        &without(chart.clone(), &[("Secret", "driftgate-ca"), ("Secret", "driftgate-tls")]),
        &without(manifests, &[("Namespace", "driftgate")]),
        "default values",
    );
    // The serving certificate is valid for the Service's names, signed by the caBundle's CA.
    verify_serving(&secret_text(&tls, "tls.crt"), &ca_pem, "driftgate.driftgate.svc");
    verify_serving(&secret_text(&tls, "tls.crt"), &ca_pem, "driftgate.driftgate");
    assert!(secret_text(&tls, "tls.key").contains("PRIVATE KEY"));
    assert!(secret_text(&ca, "ca.key").contains("PRIVATE KEY"));
}

/// Checks that `cert_pem` is a serving certificate for `name` issued by `ca_pem`, as the
/// kube-apiserver would (webpki, the CA as the only root).
fn verify_serving(cert_pem: &str, ca_pem: &str, name: &str) {
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let server = ServerName::try_from(name.to_owned()).unwrap();
    verifier
        .verify_server_cert(&leaf, &[], &server, &[], UnixTime::now())
        .unwrap_or_else(|e| panic!("the serving certificate is not valid for {name}: {e}"));
}

#[test]
fn with_the_namespace_and_an_existing_secret_the_chart_is_driftgate_manifests() {
    let ca = mk_ca();
    for ns in ["driftgate", "mesh-guard"] {
        let chart = render(ns, &format!("namespace: {{create: true}}\n{}", existing_secret(&ca)));
        let manifests = generated(&inputs(&root().join("policies"), ns, &ca, None));
        assert_same(&chart, &manifests, &format!("namespace {ns}, existing Secret"));
    }
    // The image, as `--image` gives it.
    let chart = render(
        "driftgate",
        &format!(
            "namespace: {{create: true}}\nimage: {{repository: registry.example/driftgate, tag: 1.2.3}}\n{}",
            existing_secret(&ca)
        ),
    );
    let mut inputs = inputs(&root().join("policies"), "driftgate", &ca, None);
    inputs.options.image = "registry.example/driftgate:1.2.3".to_owned();
    assert_same(&chart, &generated(&inputs), "--image");
}

#[test]
fn an_external_url_renders_what_manifests_url_prints() {
    let ca = mk_ca();
    let url = "https://127.0.0.1:8443";
    let chart = render(
        "driftgate",
        &format!("namespace: {{create: true}}\nwebhook: {{url: '{url}//'}}\n{}", existing_secret(&ca)),
    );
    let manifests = generated(&inputs(&root().join("policies"), "driftgate", &ca, Some(url)));
    assert_same(&chart, &manifests, "webhook.url");
    let v: ValidatingWebhookConfiguration = get(&chart, "ValidatingWebhookConfiguration", "driftgate");
    let first = &v.webhooks.unwrap()[0];
    assert_eq!(first.client_config.url.as_deref(), Some("https://127.0.0.1:8443/validate/mesh-gitops"));
    assert!(first.client_config.service.is_none());

    // The chart's own certificate is then made for the URL's host too, so that the driftgate
    // outside the cluster can serve it (copied from the Secret).
    for (url, host) in [("https://127.0.0.1:8443", "127.0.0.1"), ("https://dev.example:9443/hooks", "dev.example")] {
        let chart = render("driftgate", &format!("webhook: {{url: '{url}'}}\n"));
        let tls: Secret = get(&chart, "Secret", "driftgate-tls");
        let ca_pem = secret_text(&get(&chart, "Secret", "driftgate-ca"), "ca.crt");
        verify_serving(&secret_text(&tls, "tls.crt"), &ca_pem, host);
        verify_serving(&secret_text(&tls, "tls.crt"), &ca_pem, "driftgate.driftgate.svc");
    }
}

// --- the policies: every set of the repository, and one that exercises every rule ---

/// Policies that take every path of the derivation: modes, provenance, plurals, resources and
/// their scale, narrowed operations, namespaces, tenant service accounts, users, groups to
/// escape, names that collide as DNS labels or need percent-encoding, break-glass groups
/// default, custom and none, documents that are only comments.
const EDGE_POLICIES: &[(&str, &str)] = &[
    (
        "a-modes.yaml",
        r#"# Comments only before the first document.
---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: Mesh GitOps}
spec:
  resources:
    - group: networking.istio.io
      kinds: [VirtualService, Gateway, ServiceEntry, Telemetry, Mesh, Box, "Y", Ray]
    - group: telemetry.istio.io
      kinds: [VirtualService, Gateway, ServiceEntry, Telemetry, Mesh, Box, "Y", Ray]
  namespaces: {exclude: [istio-system, istio-system]}
  gitops:
    serviceAccounts: [argocd/argocd-application-controller, tenant-a/*, tenant-b/*]
    users: [ci@example.com]
    groups: ["it's", 'back\slash']
  breakGlass: {annotation: true}
---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: mesh_gitops}
spec:
  mode: warn
  resources:
    - {group: gateway.networking.k8s.io, kinds: [HTTPRoute], operations: [UPDATE]}
  namespaces: {include: [shop, payments], exclude: [legacy]}
  gitops: {users: [ci@example.com]}
...
"#,
    ),
    (
        "b-repair.yml",
        r#"apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: fix}
spec:
  mode: repair
  resources:
    - {group: apps, resources: [deployments, deployments/scale, statefulsets/scale]}
    - {group: "", kinds: [Namespace], operations: [DELETE]}
    - {group: policy.linkerd.io, kinds: ["*"]}
  gitops: {groups: [gitops-writers]}
  breakGlass: {groups: [oncall, sre]}
--- # a second document
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: stamp}
spec:
  mode: audit
  provenance: true
  resources: [{group: linkerd.io}, {group: policy.linkerd.io}]
  gitops: {serviceAccounts: [flux-system/*]}
  breakGlass: {groups: []}
---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: stamp-enforce}
spec:
  provenance: true
  resources: [{group: split.smi-spec.io, resources: [trafficsplits]}]
  gitops: {serviceAccounts: [flux-system/kustomize-controller]}
---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: réseau/maillé+ü}
spec:
  mode: enforce
  resources: [{group: networking.istio.io, kinds: [DestinationRule], operations: [CREATE, DELETE]}]
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
  breakGlass: {groups: [driftgate:break-glass]}
"#,
    ),
    (
        "c-long.yaml",
        r#"apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: a-very-long-policy-name-that-goes-on-and-on-beyond-the-sixty-three-characters-of-a-dns-label}
spec:
  resources: [{group: networking.istio.io}]
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: a-very-long-policy-name-that-goes-on-and-on-beyond-the-sixty-three-characters-of-a-dns-label-2}
spec:
  resources: [{group: networking.istio.io}]
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: --}
spec:
  mode: audit
  resources: [{group: networking.istio.io}]
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: "!!"}
spec:
  mode: audit
  resources: [{group: networking.istio.io}]
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
"#,
    ),
];

/// Values whose `policies.files` are `files`.
fn policy_values(files: &[(String, String)]) -> String {
    let map: BTreeMap<&str, &str> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    serde_yaml_ng::to_string(&json!({"policies": {"files": map}})).unwrap()
}

/// The chart and the generator on the same policy files, in a folder of their own.
fn assert_same_for_policies(what: &str, files: &[(String, String)], ns: &str, extra_values: &str) {
    let ca = mk_ca();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let chart = render(
        ns,
        &format!("{}namespace: {{create: true}}\n{}{extra_values}", policy_values(files), existing_secret(&ca)),
    );
    assert_same(&chart, &generated(&inputs(dir.path(), ns, &ca, None)), what);
}

fn example_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(root().join("policies/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_policy_set_derives_the_same_webhooks_guard_and_configmap() {
    let examples = example_files();
    assert!(examples.len() >= 5);
    for file in &examples {
        assert_same_for_policies(&file.0, std::slice::from_ref(file), "driftgate", "");
    }
    // All of them at once (their names are unique), in another namespace.
    assert_same_for_policies("every example", &examples, "mesh-guard", "");
}

#[test]
fn policies_that_take_every_path_of_the_derivation_derive_the_same_objects() {
    let files: Vec<(String, String)> = EDGE_POLICIES.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
    // The generator loads them (they are valid policies), and the chart agrees.
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let loaded = policy::load_dir(dir.path()).unwrap();
    assert_eq!(loaded.len(), 10);
    assert_same_for_policies("edge policies", &files, "driftgate", "");
    // The mutating webhooks are there, and the names as they should be.
    let chart = render("driftgate", &format!("{}{}", policy_values(&files), existing_secret(&mk_ca())));
    let m: MutatingWebhookConfiguration = get(&chart, "MutatingWebhookConfiguration", "driftgate");
    let names: Vec<String> = m.webhooks.unwrap().into_iter().map(|w| w.name).collect();
    assert_eq!(names, ["fix.mutate.driftgate.dev", "stamp.mutate.driftgate.dev", "stamp-enforce.mutate.driftgate.dev"]);
    let v: ValidatingWebhookConfiguration = get(&chart, "ValidatingWebhookConfiguration", "driftgate");
    let hooks = v.webhooks.unwrap();
    let paths: Vec<String> = hooks.iter().map(|w| w.client_config.service.clone().unwrap().path.unwrap()).collect();
    assert!(paths.contains(&"/validate/Mesh%20GitOps".to_owned()), "{paths:?}");
    assert!(paths.contains(&"/validate/r%C3%A9seau%2Fmaill%C3%A9%2B%C3%BC".to_owned()), "{paths:?}");
    let names: Vec<&str> = hooks.iter().map(|w| w.name.as_str()).collect();
    assert!(names.contains(&"mesh-gitops-2.validate.driftgate.dev"), "{names:?}");
}

// --- the other values ---

#[test]
fn the_pod_template_hash_of_policy_files_given_as_values_is_the_generators() {
    // The pod-template hash is the generator's, for the files given as values too.
    let files = vec![("mesh.yaml".to_owned(), std::fs::read_to_string(root().join("policies/default.yaml")).unwrap())];
    let chart = render("driftgate", &policy_values(&files));
    let sts: StatefulSet = get(&chart, "StatefulSet", "driftgate");
    let hash =
        sts.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[install::POLICIES_HASH_ANNOTATION].clone();
    let inputs = Inputs {
        policies: Vec::new(),
        files: vec![PolicyFile { name: files[0].0.clone(), text: files[0].1.clone() }],
        options: InstallOptions::default(),
    };
    let generated = generated(&inputs);
    let want: StatefulSet = get(&generated, "StatefulSet", "driftgate");
    assert_eq!(
        Some(&hash),
        want.spec.unwrap().template.metadata.unwrap().annotations.unwrap().get(install::POLICIES_HASH_ANNOTATION)
    );
}

#[test]
fn persistence_values_give_the_claim_or_the_emptydir_of_the_ephemeral_journal() {
    let ca = mk_ca();
    let claim = |values: &str| -> Value {
        let chart = render("driftgate", &format!("{}{values}", existing_secret(&ca)));
        let sts: StatefulSet = get(&chart, "StatefulSet", "driftgate");
        serde_json::to_value(&sts.spec.unwrap().volume_claim_templates.unwrap()[0].spec).unwrap()
    };
    let fast = claim("persistence: {size: 5Gi, storageClass: fast, accessModes: [ReadWriteOncePod]}\n");
    assert_eq!(fast["storageClassName"], "fast");
    assert_eq!(fast["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(fast["accessModes"], json!(["ReadWriteOncePod"]));
    assert_eq!(claim("persistence: {storageClass: '-'}\n")["storageClassName"], "");

    let chart = render("driftgate", &format!("{}persistence: {{enabled: false}}\n", existing_secret(&ca)));
    let sts: StatefulSet = get(&chart, "StatefulSet", "driftgate");
    let spec = sts.spec.clone().unwrap();
    assert!(spec.volume_claim_templates.is_none());
    let volumes = spec.template.spec.unwrap().volumes.unwrap();
    let journal = volumes.iter().find(|v| v.name == "journal").unwrap();
    assert_eq!(journal.empty_dir.as_ref().unwrap().size_limit.as_ref().unwrap().0, "1Gi");
    // The same StatefulSet as the kustomize component, where kubectl is there to build it.
    if let Some(kustomized) = kustomize("manifests/ephemeral-journal") {
        let want: StatefulSet = get(&kustomized, "StatefulSet", "driftgate");
        assert_eq!(serde_json::to_value(&sts).unwrap(), serde_json::to_value(&want).unwrap());
    }
}

/// `kubectl kustomize DIR` as objects, where kubectl is installed.
fn kustomize(dir: &str) -> Option<Objects> {
    let out = Command::new("kubectl").args(["kustomize", dir]).current_dir(root()).output().ok()?;
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    Some(objects(&String::from_utf8(out.stdout).unwrap()))
}

#[test]
fn cert_manager_values_render_the_cert_manager_overlay() {
    let chart = render("driftgate", "certificates: {source: certManager}\nnamespace: {create: true}\n");
    assert!(!chart.keys().any(|(k, _, _)| k == "Secret"), "cert-manager makes the Secrets");
    let v: ValidatingWebhookConfiguration = get(&chart, "ValidatingWebhookConfiguration", "driftgate");
    assert_eq!(v.metadata.annotations.unwrap()["cert-manager.io/inject-ca-from"], "driftgate/driftgate-tls");
    assert!(v.webhooks.unwrap().iter().all(|w| w.client_config.ca_bundle.is_none()), "the CA injector fills it in");
    // Exactly `kubectl kustomize manifests/cert-manager`: the base and the component.
    if let Some(kustomized) = kustomize("manifests/cert-manager") {
        assert_same(&chart, &kustomized, "manifests/cert-manager");
    }
    // Another namespace moves the certificate's names and the injection.
    let chart = render("mesh-guard", "certificates: {source: certManager}\n");
    let serving = &chart[&("Certificate".to_owned(), "mesh-guard".to_owned(), "driftgate-tls".to_owned())];
    assert_eq!(serving["spec"]["dnsNames"][2], "driftgate.mesh-guard.svc");
    let m: MutatingWebhookConfiguration = get(&chart, "MutatingWebhookConfiguration", "driftgate");
    assert_eq!(m.metadata.annotations.unwrap()["cert-manager.io/inject-ca-from"], "mesh-guard/driftgate-tls");
    // An issuer of the cluster's own: one Certificate, from it.
    let chart = render(
        "driftgate",
        "certificates: {source: certManager, certManager: {issuerRef: {kind: ClusterIssuer, name: corp-ca, group: cert-manager.io}}}\n",
    );
    let kinds: Vec<&str> =
        chart.keys().filter(|(k, _, _)| k == "Issuer" || k == "Certificate").map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds, ["Certificate"]);
    let serving = &chart[&("Certificate".to_owned(), "driftgate".to_owned(), "driftgate-tls".to_owned())];
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"kind": "ClusterIssuer", "name": "corp-ca", "group": "cert-manager.io"})
    );
}

#[test]
fn an_existing_secret_and_configmap_are_mounted_and_guarded_by_name() {
    let ca = mk_ca();
    let chart = render(
        "driftgate",
        &format!(
            "certificates:\n  source: existingSecret\n  existingSecret: mesh-tls\n  caBundle: {}\npolicies: {{existingConfigMap: mesh-policies}}\n",
            serde_json::to_string(&ca).unwrap()
        ),
    );
    assert!(!chart.keys().any(|(k, _, _)| k == "Secret" || k == "ConfigMap"));
    let sts: StatefulSet = get(&chart, "StatefulSet", "driftgate");
    let volumes = sts.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    assert_eq!(volumes[0].secret.as_ref().unwrap().secret_name.as_deref(), Some("mesh-tls"));
    assert_eq!(volumes[1].config_map.as_ref().unwrap().name, "mesh-policies");
    let guard: ValidatingAdmissionPolicy = get(&chart, "ValidatingAdmissionPolicy", "driftgate-tamper-guard");
    let rules = guard.spec.unwrap().match_constraints.unwrap().resource_rules.unwrap();
    assert_eq!(rules[3].resource_names.as_deref(), Some(&["mesh-policies".to_owned()][..]));
    let v: ValidatingWebhookConfiguration = get(&chart, "ValidatingWebhookConfiguration", "driftgate");
    let bundle = v.webhooks.unwrap()[0].client_config.ca_bundle.clone().unwrap();
    assert_eq!(bundle.0, ca.as_bytes());
}

#[test]
fn metrics_values_render_the_monitoring_files_in_the_release_namespace() {
    let chart = render(
        "observed",
        "metrics:\n  serviceMonitor: {enabled: true, interval: 15s, labels: {release: prom}}\n  prometheusRule: {enabled: true, labels: {release: prom}}\n  grafanaDashboard: {enabled: true}\n",
    );
    let file = |name: &str| -> Value {
        serde_yaml_ng::from_str(&std::fs::read_to_string(root().join("manifests/monitoring").join(name)).unwrap())
            .unwrap()
    };
    let key = |kind: &str, name: &str| (kind.to_owned(), "observed".to_owned(), name.to_owned());
    let monitor = &chart[&key("ServiceMonitor", "driftgate")];
    let mut want = file("servicemonitor.yaml")["spec"].clone();
    want["endpoints"][0]["interval"] = json!("15s");
    assert_eq!(monitor["spec"], want);
    assert_eq!(monitor["metadata"]["labels"], json!({"app.kubernetes.io/name": "driftgate", "release": "prom"}));
    let rule = &chart[&key("PrometheusRule", "driftgate")];
    assert_eq!(rule["spec"], file("prometheusrule.yaml")["spec"], "the alerts as in manifests/monitoring");
    let dashboard = &chart[&key("ConfigMap", "driftgate-grafana-dashboard")];
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json_text = dashboard["data"]["driftgate.json"].as_str().unwrap();
    assert_eq!(json_text, std::fs::read_to_string(root().join("manifests/monitoring/grafana-dashboard.json")).unwrap());
    // Off by default.
    let defaults = render("observed", "");
    assert!(!defaults.keys().any(|(k, _, n)| k == "ServiceMonitor" || k == "PrometheusRule" || n.contains("grafana")));
}

#[test]
fn workload_values_reach_the_statefulset_and_its_neighbours() {
    let ca = mk_ca();
    let values = format!(
        "{}{}",
        existing_secret(&ca),
        r#"image: {repository: registry.example/driftgate, digest: "sha256:0000000000000000000000000000000000000000000000000000000000000001", pullPolicy: Always}
imagePullSecrets: [{name: registry}]
replicas: 3
resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 512Mi}}
nodeSelector: {node-role.kubernetes.io/infra: ""}
tolerations: [{key: infra, operator: Exists, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}]}}}
priorityClassName: system-cluster-critical
podAnnotations: {example.com/owner: platform}
podLabels: {team: platform}
podDisruptionBudget: {maxUnavailable: 2}
commonLabels: {example.com/part-of: mesh}
sinks:
  - type: stdout
  - name: mesh-team
    type: webhook
    format: slack
    url: {from_env: SLACK_WEBHOOK_URL}
    decisions: [denied, break-glass]
extraEnv: [{name: SLACK_WEBHOOK_URL, valueFrom: {secretKeyRef: {name: slack, key: url}}}]
extraVolumes: [{name: audit-ca, configMap: {name: audit-ca}}]
extraVolumeMounts: [{name: audit-ca, mountPath: /etc/driftgate/audit-ca, readOnly: true}]
networkPolicy: {webhookSourceCIDRs: [192.0.2.0/24, "2001:db8::/64"]}
"#
    );
    let chart = render("driftgate", &values);
    for ((kind, _, name), object) in &chart {
        assert_eq!(object["metadata"]["labels"]["example.com/part-of"], "mesh", "{kind} {name}");
    }
    let sts: StatefulSet = get(&chart, "StatefulSet", "driftgate");
    let spec = sts.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels.unwrap().len(), 1, "the selector stays app.kubernetes.io/name only");
    let template = spec.template;
    let labels = template.metadata.clone().unwrap().labels.unwrap();
    assert_eq!((labels["team"].as_str(), labels["example.com/part-of"].as_str()), ("platform", "mesh"));
    assert_eq!(template.metadata.unwrap().annotations.unwrap()["example.com/owner"], "platform");
    let pod = template.spec.unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-cluster-critical"));
    assert_eq!(pod.node_selector.unwrap()["node-role.kubernetes.io/infra"], "");
    assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("infra"));
    assert!(pod.affinity.unwrap().node_affinity.is_some());
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "registry");
    assert!(pod.volumes.unwrap().iter().any(|v| v.name == "audit-ca"));
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/driftgate@sha256:0000000000000000000000000000000000000000000000000000000000000001")
    );
    assert_eq!(container.image_pull_policy.as_deref(), Some("Always"));
    let resources = container.resources.clone().unwrap();
    assert_eq!(resources.requests.unwrap()["cpu"].0, "100m");
    // Maps merge with the chart's defaults (Helm's rule): the default cpu limit stays.
    let limits = resources.limits.unwrap();
    assert_eq!((limits["cpu"].0.as_str(), limits["memory"].0.as_str()), ("1", "512Mi"));
    assert!(container.volume_mounts.iter().flatten().any(|m| m.mount_path == "/etc/driftgate/audit-ca"));
    assert!(container.env.iter().flatten().any(|e| e.name == "SLACK_WEBHOOK_URL" && e.value_from.is_some()));
    // The sinks reach driftgate as DRIFTGATE_SINKS, which its settings read and accept.
    let sinks_json = env_of(&sts, "DRIFTGATE_SINKS").unwrap();
    let sinks: Vec<driftgate::sinks::settings::SinkSettings> = serde_yaml_ng::from_str(&sinks_json).unwrap();
    driftgate::sinks::settings::validate_all(&sinks).unwrap();
    assert_eq!(sinks.len(), 2);
    let pdb = &chart[&("PodDisruptionBudget".to_owned(), "driftgate".to_owned(), "driftgate".to_owned())];
    assert_eq!(pdb["spec"]["maxUnavailable"], 2);
    // The webhook sources as `--webhook-source-cidr` gives them.
    let np: NetworkPolicy = get(&chart, "NetworkPolicy", "driftgate");
    let mut inputs = inputs(&root().join("policies"), "driftgate", &ca, None);
    inputs.options.webhook_sources =
        install::check_cidrs(&["192.0.2.0/24".to_owned(), "2001:db8::/64".to_owned()]).unwrap();
    let want: NetworkPolicy = get(&generated(&inputs), "NetworkPolicy", "driftgate");
    assert_eq!(np.spec, want.spec);

    // And what can be switched off.
    let chart = render(
        "driftgate",
        &format!(
            "{}podDisruptionBudget: {{enabled: false}}\nnetworkPolicy: {{enabled: false}}\ntamperGuard: {{enabled: false}}\n",
            existing_secret(&ca)
        ),
    );
    let kinds: Vec<&str> = chart.keys().map(|(k, _, _)| k.as_str()).collect();
    for gone in
        ["PodDisruptionBudget", "NetworkPolicy", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    {
        assert!(!kinds.contains(&gone), "{gone} in {kinds:?}");
    }
}

#[test]
fn webhook_values_set_timeouts_failure_policies_and_exclusions() {
    let ca = mk_ca();
    let chart = render(
        "driftgate",
        &format!(
            "{}webhook:\n  timeoutSeconds: 10\n  excludeNamespaces: [istio-system, kube-system]\n  failurePolicy: {{enforce: Ignore, repair: Fail, warn: Fail, audit: Ignore}}\n",
            existing_secret(&ca)
        ),
    );
    let v: ValidatingWebhookConfiguration = get(&chart, "ValidatingWebhookConfiguration", "driftgate");
    let hooks = v.webhooks.unwrap();
    // Enforce fails open now: no break-glass twin is needed. The grants' entry always fails
    // closed (a grant is never made unchecked) and keeps to the release namespace.
    let names: Vec<&str> = hooks.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mesh-gitops.validate.driftgate.dev",
            "gitops-namespaces.validate.driftgate.dev",
            "breakglassgrants.driftgate.dev"
        ]
    );
    let (grants, hooks) = hooks.split_last().unwrap();
    assert_eq!((grants.failure_policy.as_deref(), grants.timeout_seconds), (Some("Fail"), Some(10)));
    for w in hooks {
        assert_eq!(w.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(w.timeout_seconds, Some(10));
        let not_in = w.namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values.clone().unwrap();
        assert_eq!(not_in, ["kube-system", "driftgate", "istio-system"]);
        let conditions: Vec<String> = w.match_conditions.iter().flatten().map(|c| c.name.clone()).collect();
        assert_eq!(conditions, ["not-gitops-service-account"]);
    }
    // A warn policy set to fail closed gets the twin.
    let files = vec![(
        "warn.yaml".to_owned(),
        std::fs::read_to_string(root().join("policies/default.yaml")).unwrap().replace("mode: enforce", "mode: warn"),
    )];
    let chart = render(
        "driftgate",
        &format!(
            "{}{}webhook: {{failurePolicy: {{enforce: Fail, repair: Fail, warn: Fail, audit: Ignore}}}}\n",
            policy_values(&files),
            existing_secret(&ca)
        ),
    );
    let v: ValidatingWebhookConfiguration = get(&chart, "ValidatingWebhookConfiguration", "driftgate");
    let policies: Vec<(String, String)> =
        v.webhooks.unwrap().into_iter().map(|w| (w.name, w.failure_policy.unwrap())).collect();
    assert_eq!(policies[0], ("mesh-gitops.validate.driftgate.dev".to_owned(), "Fail".to_owned()));
    assert_eq!(policies[1], ("mesh-gitops-break-glass.validate.driftgate.dev".to_owned(), "Ignore".to_owned()));
}

#[test]
fn a_typo_a_wrong_type_or_a_wrong_policy_fails_the_render_naming_it() {
    for (values, want) in [
        ("replica: 3\n", "additional properties 'replica' not allowed"),
        ("persistence: {sise: 1Gi}\n", "'sise' not allowed"),
        ("webhook: {timeoutSeconds: '5'}\n", "/webhook/timeoutSeconds"),
        ("webhook: {timeoutSeconds: 31}\n", "/webhook/timeoutSeconds"),
        ("webhook: {url: 'http://10.0.0.1:8443'}\n", "/webhook/url"),
        (
            "webhook: {failurePolicy: {enforce: Deny, repair: Fail, warn: Ignore, audit: Ignore}}\n",
            "/webhook/failurePolicy/enforce",
        ),
        ("certificates: {source: vault}\n", "/certificates/source"),
        ("certificates: {source: existingSecret}\n", "/certificates/caBundle"),
        ("certificates: {source: existingSecret, caBundle: not-a-pem}\n", "/certificates/caBundle"),
        ("metrics: {serviceMonitor: {enabeld: true}}\n", "'enabeld' not allowed"),
        ("commonLabels: {app.kubernetes.io/name: other}\n", "/commonLabels"),
        ("policies: {files: {mesh.txt: 'x'}}\n", "'mesh.txt' does not match pattern"),
        (
            "policies: {files: {mesh.yaml: \"apiVersion: driftgate.dev/v1alpha1\\nkind: DriftPolicy\\nmetadata: {name: m}\\nspec: {resources: [{group: g, kinds: [Y]}], gitops: {users: [ci]}}\\n\"}}\n",
            "kinds holds true, which is not a string: quote it",
        ),
        (
            "policies: {files: {mesh.yaml: \"apiVersion: driftgate.dev/v1alpha1\\nkind: DriftPolicy\\nmetadata: {name: m}\\nspec: {mode: block, resources: [{group: g}], gitops: {users: [ci]}}\\n\"}}\n",
            "policies mesh.yaml: policy m: spec.mode block",
        ),
        (
            "policies: {files: {mesh.yaml: \"apiVersion: driftgate.dev/v1alpha1\\nkind: DriftPolicy\\nmetadata: {name: m}\\nspec: {resources: [{group: g}]}\\n\"}}\n",
            "spec.gitops lists no writer",
        ),
        ("policies: {files: {mesh.yaml: \"# nothing\\n\"}}\n", "no DriftPolicy documents found"),
    ] {
        let err = try_render("driftgate", values).expect_err(values);
        assert!(err.contains(want), "{values}: {err}");
    }
}

#[test]
fn the_files_the_chart_carries_are_the_repositorys() {
    let bless = std::env::var_os("DRIFTGATE_BLESS").is_some();
    let mut stale = Vec::new();
    for (from, to) in [
        ("policies/default.yaml", "files/policies/default.yaml"),
        ("manifests/monitoring/prometheusrule.yaml", "files/monitoring/prometheusrule.yaml"),
        ("manifests/monitoring/servicemonitor.yaml", "files/monitoring/servicemonitor.yaml"),
        ("manifests/monitoring/grafana-dashboard.json", "files/monitoring/grafana-dashboard.json"),
        ("manifests/base/breakglassgrant-crd.yaml", "files/crds/breakglassgrant-crd.yaml"),
    ] {
        let want = std::fs::read_to_string(root().join(from)).unwrap();
        let path = chart().join(to);
        if bless {
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(format!("charts/driftgate/{to} (from {from})"));
        }
    }
    assert!(stale.is_empty(), "out of date (run `make helm`): {stale:?}");
    let policies: Vec<String> = std::fs::read_dir(chart().join("files/policies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(policies, ["default.yaml"], "the chart's default policies are policies/default.yaml alone");
    let meta: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"), "the chart's image tag is driftgate's version");
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_notes_say_how_to_see_a_persons_edit_refused() {
    let chart = chart();
    let out = helm(&["install", "driftgate", chart.to_str().unwrap(), "--namespace", "driftgate", "--dry-run=client"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let notes = text.split_once("NOTES:").map(|(_, n)| n).unwrap_or_else(|| panic!("no NOTES in {text}"));
    for want in [
        "kubectl -n driftgate rollout status statefulset/driftgate",
        "kubectl -n shop edit virtualservice reviews",
        "admission webhook\n     \"mesh-gitops.validate.driftgate.dev\" denied the request",
        "--kube-as-group driftgate:break-glass",
    ] {
        assert!(notes.contains(want), "NOTES should say {want:?}:\n{notes}");
    }
}
