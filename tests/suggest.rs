//! `driftgate suggest` over a journal the real server wrote in audit mode: Argo Rollouts
//! shifting HTTPRoute weights and updating a DestinationRule's hash (captured requests), and a
//! person's edits. One exemption is proposed, for the controller alone, narrowed to what it
//! changed; the person is listed as "would be refused"; the written `driftgate test` case
//! passes with the suggested policies and fails with the ones in force.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{DEFAULT_POLICY, TestServer};

fn driftgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftgate")).args(args).current_dir(dir).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn suggests_one_narrowed_exemption_for_the_controller_and_none_for_the_person() {
    let audit = DEFAULT_POLICY.replacen("mode: enforce", "mode: audit", 1);
    let server = TestServer::start(&audit).await;
    for _ in 0..5 {
        for fixture in [
            "httproute-update-argo-rollouts-plugin-set-weight.validating.json",
            "destinationrule-update-argo-rollouts-update-hash.validating.json",
            "virtualservice-update-kubectl-edit-human.validating.json",
        ] {
            let (status, answer) = server.validate_fixture(fixture).await;
            assert_eq!(status, 200);
            assert_eq!(answer["response"]["allowed"], true, "audit mode lets everything through");
        }
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::copy(server.journal_path(), dir.join("drift-events.jsonl")).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/default.yaml"), &audit).unwrap();
    server.stop().await;

    let out = driftgate(dir, &["suggest", "drift-events.jsonl", "--policies", "policies", "--out", "suggested"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("suggested exemptions (1):"), "{said}");
    assert!(said.contains("system:serviceaccount:argo-rollouts:argo-rollouts"), "{said}");
    assert!(said.contains("would be refused once enforced (1):") && said.contains("alice@example.com"), "{said}");
    assert!(said.contains("+    - name: suggested-argo-rollouts"), "a unified diff of the policy file: {said}");
    println!("{said}");
    // The suggested folder loads, and its exemption names the controller and nothing else.
    let check = driftgate(dir, &["check", "suggested/policies"]);
    assert!(check.status.success(), "{}", text(&check));
    let suggested = std::fs::read_to_string(dir.join("suggested/policies/default.yaml")).unwrap();
    assert!(suggested.contains("serviceAccounts: [argo-rollouts/argo-rollouts]"), "{suggested}");
    assert!(!suggested.contains("alice"), "{suggested}");
    // Its test case passes with the suggestion …
    let passed = driftgate(dir, &["test", "suggested/suggested-tests.yaml"]);
    assert!(passed.status.success(), "{}", text(&passed));
    assert!(text(&passed).contains("1 passed"), "{}", text(&passed));
    // … and fails with the policies in force (what keeps the suggestion honest in CI).
    let tests = std::fs::read_to_string(dir.join("suggested/suggested-tests.yaml")).unwrap();
    std::fs::write(
        dir.join("suggested/current-tests.yaml"),
        tests.replace("policies: policies", "policies: ../policies"),
    )
    .unwrap();
    let failed = driftgate(dir, &["test", "suggested/current-tests.yaml"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(text(&failed).contains("expected allowed (policy mesh-gitops), got audited"), "{}", text(&failed));
    // JSON for tools.
    let json = driftgate(dir, &["suggest", "drift-events.jsonl", "--policies", "policies", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["proposals"][0]["writer"]["name"], "argo-rollouts");
    assert_eq!(v["refused"][0]["username"], "alice@example.com");
    // Bad input: a clear error, exit 2.
    let bad = driftgate(dir, &["suggest", "missing.jsonl"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("no journal at missing.jsonl"), "{}", text(&bad));
}
