//! What a request changes, as journaled and shown, over the real fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEFAULT_POLICY, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn reports_metadata_paths_of_label_and_annotate() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    server.validate_fixture("virtualservice-update-kubectl-label-human.validating.json").await;
    server.validate_fixture("virtualservice-update-kubectl-annotate-human.validating.json").await;
    let journal = server.journal();
    assert_eq!(journal[0]["changes"], json!([{"path": "/metadata/labels/team", "old": null, "new": "checkout"}]));
    let annotate = journal[1]["changes"].as_array().unwrap();
    assert_eq!(annotate.len(), 1, "{annotate:?}");
    assert_eq!(annotate[0]["path"], "/metadata/annotations/example.com~1note");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_one_deep_change_in_the_big_envoyfilter() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    server.validate_fixture("envoyfilter-update-kubectl-patch-json-human-big.validating.json").await;
    let e = &server.journal()[0];
    assert_eq!(
        e["changes"],
        json!([{"path": "/spec/configPatches/17/patch/operation", "old": "INSERT_BEFORE", "new": "INSERT_AFTER"}])
    );
    assert!(e.get("changesOmitted").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn caps_a_long_change_list_with_a_count() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (_, answer) = server
        .validate_fixture("envoyfilter-update-kubectl-patch-json-human-big-derived-many-changes.validating.json")
        .await;
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("/spec/configPatches/0/patch/operation (\"INSERT_BEFORE\" → \"INSERT_FIRST\")"),
        "{message}"
    );
    assert!(message.contains(" and 66 more."), "{message}");
    let e = &server.journal()[0];
    assert_eq!(e["changes"].as_array().unwrap().len(), 50);
    assert_eq!(e["changesOmitted"], 19);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_noop_put_by_a_human_is_no_drift() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let (_, answer) = server.validate_fixture("virtualservice-noop-put-derived-human.validating.json").await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(server.journal().is_empty());
    server.stop().await;
}

const DEPLOYMENTS: &str = "apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: deployments}
spec:
  resources: [{group: apps, resources: [deployments]}]
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
  exemptions:
    - name: hpa
      serviceAccounts: [kube-system/horizontal-pod-autoscaler]
      subresources: [scale]
      paths: [/spec/replicas]
";

#[tokio::test(flavor = "multi_thread")]
async fn scale_by_the_hpa_is_exempt_and_by_a_human_is_denied() {
    let server = TestServer::start(DEPLOYMENTS).await;
    let (_, answer) = server.validate_fixture("deployment-scale-update-hpa.validating.json").await;
    assert_eq!(answer["response"]["allowed"], true);
    let (_, answer) = server.validate_fixture("deployment-scale-update-kubectl-scale-human.validating.json").await;
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert!(message.contains("deployments/scale shop/reviews"), "{message}");
    assert!(message.contains("Changed: /spec/replicas (4 → 1)."), "{message}");
    let journal = server.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["resource"]["subresource"], "scale");
    assert_eq!(journal[0]["changes"], json!([{"path": "/spec/replicas", "old": 4, "new": 1}]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partly_exempt_change_is_denied_naming_the_rest() {
    let policy = DEFAULT_POLICY.replace(
        "  breakGlass:",
        "  exemptions:\n    - name: second-route\n      users: [alice@example.com]\n      paths: [/spec/http/1/route/1]\n  breakGlass:",
    );
    let server = TestServer::start(&policy).await;
    let (_, answer) = server.validate_fixture("virtualservice-update-kubectl-edit-human.validating.json").await;
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert!(message.contains("Not exempt: /spec/http/1/route/0/weight (90 → 70). Drift event"), "{message}");
    assert_eq!(server.journal()[0]["rule"], "exemption:second-route:partial");
    server.stop().await;
}
