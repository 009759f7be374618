//! `POST /mutate`: provenance stamps and repair patches, applied to the fixtures' objects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::{DEFAULT_POLICY, TestServer, fixture_json, policy_with};
use serde_json::{Value, json};

const EDIT: &str = "virtualservice-update-kubectl-edit-human.mutating.json";

/// The default policies with provenance stamping switched on.
fn with_provenance(policy: &str) -> String {
    policy.replace("  breakGlass:", "  provenance: true\n  breakGlass:")
}

/// The object that lands: the request's object with the answer's patch applied.
fn landed(review: &Value, answer: &Value) -> Value {
    let mut object = review["request"]["object"].clone();
    if let Some(patch) = answer["response"]["patch"].as_str() {
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD.decode(patch).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
    }
    object
}

async fn mutate(server: &TestServer, name: &str) -> (Value, Value) {
    let review = fixture_json(name);
    let (status, answer) = server.post("/mutate", serde_json::to_vec(&review).unwrap(), "application/json").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    (review, answer)
}

#[tokio::test(flavor = "multi_thread")]
async fn stamps_provenance_on_argocd_and_flux_writes() {
    let server = TestServer::start(&with_provenance(DEFAULT_POLICY)).await;
    let (review, answer) = mutate(&server, "virtualservice-create-argocd-kubectl-apply.mutating.json").await;
    assert_eq!(answer["response"]["allowed"], true);
    let mut expected = review["request"]["object"].clone();
    let annotations = expected["metadata"]["annotations"].as_object_mut().unwrap();
    annotations.insert(
        "driftgate.dev/last-writer".into(),
        json!("system:serviceaccount:argocd:argocd-application-controller"),
    );
    annotations.insert("driftgate.dev/gitops-app".into(), json!("argocd:mesh-config"));
    assert_eq!(landed(&review, &answer), expected);

    // Flux's object has no annotations at all: the map is added.
    let (review, answer) =
        mutate(&server, "flux-create-server-side-apply--peerauthentication-default.mutating.json").await;
    let mut expected = review["request"]["object"].clone();
    assert!(expected["metadata"].get("annotations").is_none());
    expected["metadata"]["annotations"] = json!({
        "driftgate.dev/last-writer": "system:serviceaccount:flux-system:kustomize-controller",
        "driftgate.dev/gitops-app": "flux:Kustomization flux-system/mesh",
    });
    assert_eq!(landed(&review, &answer), expected);
    assert!(server.journal().is_empty(), "GitOps writes are not drift");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_already_stamped_reapply_gets_no_patch() {
    let server = TestServer::start(&with_provenance(DEFAULT_POLICY)).await;
    let (_, answer) = mutate(&server, "virtualservice-noop-put-argocd-derived-stamped.mutating.json").await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none(), "{answer}");
    // Unstamped, the same re-apply is stamped once.
    let (_, answer) = mutate(&server, "virtualservice-noop-put-argocd.mutating.json").await;
    assert!(answer["response"]["patch"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stamps_nothing_unless_a_policy_asks_for_provenance() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    for name in
        ["virtualservice-create-argocd-kubectl-apply.mutating.json", "virtualservice-noop-put-argocd.mutating.json"]
    {
        let (_, answer) = mutate(&server, name).await;
        assert_eq!(answer["response"]["allowed"], true);
        assert!(answer["response"].get("patch").is_none(), "{name}: {answer}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stamps_every_admitted_write_so_the_stamp_is_never_stale() {
    // A person's change that warn mode lets through is stamped with the person.
    let server = TestServer::start(&with_provenance(&policy_with("warn", "all"))).await;
    let (review, answer) = mutate(&server, EDIT).await;
    let landed = landed(&review, &answer);
    assert_eq!(landed["metadata"]["annotations"]["driftgate.dev/last-writer"], "alice@example.com");
    assert_eq!(landed["metadata"]["annotations"]["driftgate.dev/gitops-app"], "argocd:mesh-config");
    assert_eq!(landed["spec"], review["request"]["object"]["spec"], "only the stamp is added");
    server.stop().await;
    // A change enforce mode refuses is not stamped (the validating webhook refuses it).
    let server = TestServer::start(&with_provenance(DEFAULT_POLICY)).await;
    let (_, answer) = mutate(&server, EDIT).await;
    assert!(answer["response"].get("patch").is_none(), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leaves_enforce_mode_drift_to_the_validating_webhook() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    for name in [
        EDIT,
        "virtualservice-status-update-istiod.mutating.json",
        "deployment-scale-update-kubectl-scale-human.mutating.json",
    ] {
        let (_, answer) = mutate(&server, name).await;
        assert_eq!(answer["response"]["allowed"], true, "{name}");
        assert!(answer["response"].get("patch").is_none(), "{name}");
    }
    assert!(server.journal().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_restores_every_protected_path() {
    let server = TestServer::start(&policy_with("repair", "all")).await;
    let (review, answer) = mutate(&server, EDIT).await;
    let r = &answer["response"];
    assert_eq!(r["allowed"], true);
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("were restored") && warning.contains("Reverted: /spec/http/1/route/0/weight (90 → 70)"),
        "{warning}"
    );
    let object = landed(&review, &answer);
    let (new, old) = (&review["request"]["object"], &review["request"]["oldObject"]);
    assert_eq!(object["spec"], old["spec"]);
    assert_eq!(object["metadata"]["annotations"], old["metadata"]["annotations"]);
    // What the API server manages stays as it set it.
    for key in ["managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"] {
        assert_eq!(object["metadata"][key], new["metadata"][key], "{key}");
    }
    let journal = server.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!((&journal[0]["decision"], &journal[0]["mode"]), (&json!("repaired"), &json!("repair")));
    assert_eq!(journal[0]["id"], r["auditAnnotations"]["drift-event-id"]);

    // The validating webhook then sees the repaired object: nothing left to refuse.
    let mut repaired = fixture_json("virtualservice-update-kubectl-edit-human.validating.json");
    repaired["request"]["object"] = object;
    let (_, answer) = server.validate(serde_json::to_vec(&repaired).unwrap()).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(server.journal().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_removes_a_label_and_lets_exempt_paths_through() {
    let policy = policy_with("repair", "all").replace(
        "  breakGlass:",
        "  exemptions:\n    - name: second-route\n      users: [alice@example.com]\n      paths: [/spec/http/1/route/1]\n  breakGlass:",
    );
    let server = TestServer::start(&policy).await;
    let (review, answer) = mutate(&server, "virtualservice-update-kubectl-label-human.mutating.json").await;
    let object = landed(&review, &answer);
    assert_eq!(object["metadata"]["labels"], review["request"]["oldObject"]["metadata"]["labels"]);

    let (review, answer) = mutate(&server, EDIT).await;
    let object = landed(&review, &answer);
    let route = &object["spec"]["http"][1]["route"];
    assert_eq!(
        (&route[0]["weight"], &route[1]["weight"]),
        (&json!(90), &json!(30)),
        "route/1 is exempt, route/0 is not"
    );
    let patch =
        base64::engine::general_purpose::STANDARD.decode(answer["response"]["patch"].as_str().unwrap()).unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(patch, json!([{"op": "replace", "path": "/spec/http/1/route/0/weight", "value": 90}]), "minimal patch");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_mode_still_refuses_what_it_cannot_repair() {
    let server = TestServer::start(&policy_with("repair", "all")).await;
    // A delete has nothing to restore: the mutating webhook lets it pass, the validating one refuses it.
    let (_, answer) = mutate(&server, "authorizationpolicy-delete-kubectl-delete-human.mutating.json").await;
    assert!(answer["response"].get("patch").is_none());
    let (_, answer) = server.validate_fixture("authorizationpolicy-delete-kubectl-delete-human.validating.json").await;
    assert_eq!(answer["response"]["allowed"], false);
    // Without the mutating webhook, an edit reaching validation unrepaired is refused.
    let (_, answer) = server.validate_fixture("virtualservice-update-kubectl-edit-human.validating.json").await;
    assert_eq!(answer["response"]["allowed"], false);
    server.stop().await;
}
