//! `POST /validate` end to end: real HTTPS, real AdmissionReview fixtures, the real journal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEFAULT_POLICY, TestServer, fixture, fixture_json, policy_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

fn response(answer: &Value) -> &Value {
    &answer["response"]
}

#[tokio::test(flavor = "multi_thread")]
async fn denies_human_kubectl_edit() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (status, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    let r = response(&answer);
    assert_eq!(r["uid"], "57b2f500-a8ca-4930-b895-019970830612");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    assert_eq!(r["status"]["reason"], "Forbidden");
    let message = r["status"]["message"].as_str().unwrap();
    let id = r["auditAnnotations"]["drift-event-id"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "driftgate: VirtualService shop/reviews is managed by GitOps (Argo CD app mesh-config); direct changes by \
             alice@example.com are not allowed — change it in Git. Changed: /spec/http/1/route/0/weight (90 → 70), \
             /spec/http/1/route/1/weight (10 → 30). Drift event {id}."
        )
    );

    let journal = server.journal();
    assert_eq!(journal.len(), 1);
    let e = &journal[0];
    assert_eq!(e["id"], id);
    assert_eq!(e["decision"], "denied");
    assert_eq!(e["mode"], "enforce");
    assert_eq!(e["policy"], "mesh-gitops");
    assert_eq!(e["rule"], "protected");
    assert_eq!(e["message"], message);
    assert_eq!(e["operation"], "UPDATE");
    assert_eq!(e["dryRun"], false);
    assert_eq!(e["user"], json!({"username": "alice@example.com", "groups": ["devs", "system:authenticated"]}));
    assert_eq!(
        e["resource"],
        json!({"group": "networking.istio.io", "version": "v1", "kind": "VirtualService",
               "resource": "virtualservices", "namespace": "shop", "name": "reviews"})
    );
    assert_eq!(e["gitops"], json!({"tool": "argocd", "app": "mesh-config"}));
    assert_eq!(
        e["changes"],
        json!([
            {"path": "/spec/http/1/route/0/weight", "old": 90, "new": 70},
            {"path": "/spec/http/1/route/1/weight", "old": 10, "new": 30},
        ])
    );
    assert_eq!(e["requestUid"], "57b2f500-a8ca-4930-b895-019970830612");
    let time = e["time"].as_str().unwrap();
    assert!(time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok(), "{time}");
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    server.stop().await;
}

/// What each captured request gets from the default policy set.
#[tokio::test(flavor = "multi_thread")]
async fn answers_every_fixture_as_expected() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let cases: &[(&str, bool, Option<&str>)] = &[
        ("virtualservice-create-argocd-kubectl-apply", true, None),
        ("destinationrule-create-argocd-kubectl-apply", true, None),
        ("authorizationpolicy-create-argocd-kubectl-apply", true, None),
        ("gateway-create-argocd-server-side-apply", true, None),
        ("gateway-noop-reapply-argocd-server-side-apply", true, None),
        ("envoyfilter-create-argocd-kubectl-apply-big", true, None),
        ("virtualservice-noop-put-argocd", true, None),
        ("flux-create-server-side-apply--authorizationpolicy-ratings-from-reviews", true, None),
        ("flux-create-server-side-apply--peerauthentication-default", true, None),
        ("flux-create-server-side-apply--requestauthentication-jwt", true, None),
        ("flux-create-server-side-apply--serviceentry-payments-api", true, None),
        ("flux-create-server-side-apply--sidecar-default", true, None),
        ("flux-create-server-side-apply--telemetry-mesh-default", true, None),
        ("flux-noop-reapply-server-side-apply", true, None),
        ("virtualservice-status-update-istiod", true, None),
        ("namespace-delete-namespace-controller--virtualservice-collection", true, None),
        ("deployment-create-argocd-kubectl-apply", true, None),
        ("deployment-scale-update-hpa", true, None),
        ("deployment-scale-update-kubectl-scale-human", true, None),
        ("virtualservice-update-kubectl-edit-human", false, Some("denied")),
        ("virtualservice-update-kubectl-label-human", false, Some("denied")),
        ("virtualservice-update-kubectl-annotate-human", false, Some("denied")),
        ("virtualservice-update-kubectl-patch-dry-run-server-human", false, Some("denied")),
        ("virtualservice-update-kubectl-replace-dry-run-server-human", false, Some("denied")),
        ("envoyfilter-update-kubectl-patch-json-human-big", false, Some("denied")),
        ("serviceentry-create-kubectl-create-human", false, Some("denied")),
        ("authorizationpolicy-delete-kubectl-delete-human", false, Some("denied")),
        ("serviceentry-delete-kubectl-delete-dry-run-server-human", false, Some("denied")),
    ];
    for (name, allowed, decision) in cases {
        let before = server.journal().len();
        let (status, answer) = server.validate_fixture(&format!("{name}.validating.json")).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(response(&answer)["allowed"], *allowed, "{name}: {answer}");
        let journal = server.journal();
        match decision {
            Some(d) => {
                assert_eq!(journal.len(), before + 1, "{name}");
                assert_eq!(journal[before]["decision"], *d, "{name}");
            }
            None => assert_eq!(journal.len(), before, "{name}: allowed requests leave no event"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn journals_dry_run_denials_as_dry_run() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (_, answer) =
        server.validate_fixture("virtualservice-update-kubectl-replace-dry-run-server-human.validating.json").await;
    assert_eq!(response(&answer)["allowed"], false);
    let (_, answer) =
        server.validate_fixture("serviceentry-delete-kubectl-delete-dry-run-server-human.validating.json").await;
    let message = response(&answer)["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("ServiceEntry shop/payments-api is managed by GitOps (Flux Kustomization flux-system/mesh)"),
        "{message}"
    );
    assert!(message.contains("Attempted: delete."), "{message}");
    let journal = server.journal();
    assert_eq!(journal.len(), 2);
    assert!(journal.iter().all(|e| e["dryRun"] == true && e["decision"] == "denied"));
    assert_eq!(journal[1]["operation"], "DELETE");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn human_delete_is_denied() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (_, answer) = server.validate_fixture("authorizationpolicy-delete-kubectl-delete-human.validating.json").await;
    let r = response(&answer);
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"].as_str().unwrap().starts_with(
        "driftgate: AuthorizationPolicy shop/reviews-viewer is managed by GitOps (Argo CD app mesh-config); direct changes by alice@example.com"
    ));
    assert_eq!(server.journal()[0]["changes"], json!([{"path": "", "old": "<object>", "new": null}]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warn_mode_allows_with_a_warning() {
    let server = TestServer::start(&policy_with("warn", "all")).await;
    let (_, answer) = server.validate_fixture(EDIT).await;
    let r = response(&answer);
    assert_eq!(r["allowed"], true);
    assert!(r.get("status").is_none());
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(warning.contains("bypasses Git") && warning.contains("alice@example.com"), "{warning}");
    let id = r["auditAnnotations"]["drift-event-id"].as_str().unwrap();
    let journal = server.journal();
    assert_eq!((journal.len(), &journal[0]["decision"], &journal[0]["id"]), (1, &json!("warned"), &json!(id)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_mode_allows_silently_and_journals() {
    let server = TestServer::start(&policy_with("audit", "all")).await;
    let (_, answer) = server.validate_fixture(EDIT).await;
    let r = response(&answer);
    assert_eq!(r["allowed"], true);
    assert!(r.get("warnings").is_none() && r.get("status").is_none());
    assert!(r["auditAnnotations"]["drift-event-id"].is_string());
    let journal = server.journal();
    assert_eq!((journal.len(), &journal[0]["decision"], &journal[0]["mode"]), (1, &json!("audited"), &json!("audit")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn break_glass_by_group_and_by_annotation() {
    let with_annotation = DEFAULT_POLICY
        .replace("groups: [driftgate:break-glass]", "groups: [driftgate:break-glass]\n    annotation: true");
    let server = TestServer::start(&with_annotation).await;
    let (_, answer) = server
        .validate_fixture("virtualservice-update-kubectl-edit-human-derived-break-glass-group.validating.json")
        .await;
    assert_eq!(response(&answer)["allowed"], true);
    assert!(response(&answer)["warnings"][0].as_str().unwrap().contains("break-glass"));
    let (_, answer) = server
        .validate_fixture("virtualservice-update-kubectl-edit-human-derived-break-glass-annotation.validating.json")
        .await;
    assert_eq!(response(&answer)["allowed"], true);
    let journal = server.journal();
    assert_eq!(journal.len(), 2);
    assert_eq!(
        (&journal[0]["decision"], &journal[0]["rule"]),
        (&json!("break-glass"), &json!("break-glass:group driftgate:break-glass"))
    );
    assert_eq!(
        (&journal[1]["decision"], &journal[1]["rule"]),
        (&json!("break-glass"), &json!("break-glass:annotation"))
    );
    assert!(journal[1]["message"].as_str().unwrap().contains("INC-4711"));
    server.stop().await;

    // The shipped policy does not honour the annotation: anyone who may edit could set it.
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (_, answer) = server
        .validate_fixture("virtualservice-update-kubectl-edit-human-derived-break-glass-annotation.validating.json")
        .await;
    assert_eq!(response(&answer)["allowed"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn untracked_create_depends_on_scope() {
    let create = "serviceentry-create-kubectl-create-human.validating.json";
    let all = TestServer::start(&policy_with("enforce", "all")).await;
    let (_, answer) = all.validate_fixture(create).await;
    let message = response(&answer)["status"]["message"].as_str().unwrap().to_owned();
    assert_eq!(response(&answer)["allowed"], false);
    assert!(
        message.contains(
            "ServiceEntry shop/legacy-db is protected by driftgate policy mesh-gitops: only GitOps may change it"
        ),
        "{message}"
    );
    all.stop().await;
    let managed = TestServer::start(&policy_with("enforce", "managed")).await;
    let (_, answer) = managed.validate_fixture(create).await;
    assert_eq!(response(&answer)["allowed"], true);
    assert!(managed.journal().is_empty());
    // A tracked object is still protected under `managed`.
    let (_, answer) = managed.validate_fixture(EDIT).await;
    assert_eq!(response(&answer)["allowed"], false);
    managed.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_v1beta1_in_v1beta1() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (_, answer) =
        server.validate_fixture("virtualservice-update-kubectl-edit-human-derived-v1beta1.validating.json").await;
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(response(&answer)["allowed"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn never_protects_kube_system_or_its_own_namespace() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    for ns in ["kube-system", "driftgate"] {
        let mut review = fixture_json(EDIT);
        review["request"]["namespace"] = json!(ns);
        review["request"]["object"]["metadata"]["namespace"] = json!(ns);
        review["request"]["oldObject"]["metadata"]["namespace"] = json!(ns);
        let (_, answer) = server.validate(serde_json::to_vec(&review).unwrap()).await;
        assert_eq!(response(&answer)["allowed"], true, "{ns}");
    }
    assert!(server.journal().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_denial_is_on_disk_when_its_answer_arrives() {
    let server = std::sync::Arc::new(TestServer::start(DEFAULT_POLICY).await);
    let body = fixture(EDIT);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let server = server.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let (_, answer) = server.validate(body).await;
                let id = answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned();
                // Read the file the moment the answer is in: the event must already be there.
                let on_disk = std::fs::read_to_string(server.journal_path()).unwrap();
                assert!(on_disk.contains(&id), "event {id} not on disk when its answer arrived");
                id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    assert_eq!(server.journal().len(), 40);
}

/// A second policy over the VirtualServices of namespace shop.
const TEAM_POLICY: &str = "---
apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: team-routes}
spec:
  resources: [{group: networking.istio.io, kinds: [VirtualService]}]
  namespaces: {include: [shop]}
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
";

#[tokio::test(flavor = "multi_thread")]
async fn each_policy_endpoint_judges_only_its_policy() {
    let server = TestServer::start(&format!("{DEFAULT_POLICY}{TEAM_POLICY}")).await;
    for policy in ["mesh-gitops", "team-routes"] {
        let (status, answer) = server.post(&format!("/validate/{policy}"), fixture(EDIT), "application/json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(response(&answer)["allowed"], false);
    }
    let journal = server.journal();
    let policies: Vec<&str> = journal.iter().map(|e| e["policy"].as_str().unwrap()).collect();
    assert_eq!(policies, ["mesh-gitops", "team-routes"], "one event per policy that judged the attempt");
    // The tracked-namespace policy does not cover VirtualServices: its endpoint allows.
    let (_, answer) = server.post("/validate/gitops-namespaces", fixture(EDIT), "application/json").await;
    assert_eq!(response(&answer)["allowed"], true);
    assert_eq!(server.journal().len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_that_is_not_loaded_allows_with_a_warning() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (status, answer) = server.post("/validate/renamed%20policy", fixture(EDIT), "application/json").await;
    assert_eq!(status, StatusCode::OK);
    let r = response(&answer);
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"][0],
        "driftgate: policy renamed policy is not loaded, so nothing was checked; the webhook configuration is out of date (run `driftgate register`)"
    );
    assert!(server.journal().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allows_finishing_a_deletion_and_records_nothing() {
    let server = TestServer::start(&policy_with("repair", "all")).await;
    for name in [
        "virtualservice-update-foreground-finalizer-removal-garbage-collector.validating.json",
        "virtualservice-update-orphan-finalizer-removal-garbage-collector.validating.json",
        "destinationrule-update-orphaning-garbage-collector.validating.json",
        "virtualservice-update-finalizer-removal-kubectl-patch-human.validating.json",
    ] {
        for path in ["/validate", "/validate/mesh-gitops", "/mutate/mesh-gitops"] {
            let (status, answer) = server.post(path, fixture(name), "application/json").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(response(&answer)["allowed"], true, "{name} {path}: {answer}");
            assert!(response(&answer).get("patch").is_none(), "never repaired: {name} {path}");
        }
    }
    assert!(server.journal().is_empty(), "{:#?}", server.journal());
    // Anything more than removing finalizers is still judged.
    let (_, answer) = server
        .validate_fixture(
            "virtualservice-update-finalizer-removal-kubectl-patch-human-derived-spec-change.validating.json",
        )
        .await;
    assert_eq!(response(&answer)["allowed"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_person_deleting_a_tracked_namespace() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (_, answer) = server
        .post(
            "/validate/gitops-namespaces",
            fixture("namespace-delete-kubectl-delete-human-derived-tracked.validating.json"),
            "application/json",
        )
        .await;
    let r = response(&answer);
    assert_eq!(r["allowed"], false);
    let id = r["auditAnnotations"]["drift-event-id"].as_str().unwrap();
    assert_eq!(
        r["status"]["message"],
        format!(
            "driftgate: Namespace doomed is managed by GitOps (Argo CD app platform); direct changes by alice@example.com are not allowed — change it in Git. Attempted: delete. Drift event {id}."
        )
    );
    let e = &server.journal()[0];
    assert_eq!(
        e["resource"],
        json!({"group": "", "version": "v1", "kind": "Namespace", "resource": "namespaces", "namespace": "", "name": "doomed"})
    );
    let (_, answer) = server
        .post(
            "/validate/gitops-namespaces",
            fixture("namespace-delete-kubectl-delete-human.validating.json"),
            "application/json",
        )
        .await;
    assert_eq!(response(&answer)["allowed"], true, "an untracked namespace stays open");
    server.stop().await;
}
