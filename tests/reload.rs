//! Policy hot reload: a changed set is swapped in whole; a broken one is refused, counted, and
//! the previous set stays in force.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DEFAULT_POLICY, TestServer, eventually, policy_with};

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

#[tokio::test(flavor = "multi_thread")]
async fn picks_up_changed_policies_and_refuses_broken_ones() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let file = server.settings.policies.join("policy.yaml");
    let (_, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(answer["response"]["allowed"], false);

    // enforce → warn, without a restart.
    std::fs::write(&file, policy_with("warn", "all")).unwrap();
    let reload = server.policy_reloads.clone();
    assert!(eventually(Duration::from_secs(10), || reload.reloads.load(Ordering::Relaxed) == 1).await);
    let (_, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"]["warnings"][0].is_string());

    // A broken file: refused, counted, the warn set stays in force.
    std::fs::write(&file, DEFAULT_POLICY.replace("mode: enforce", "mode: block")).unwrap();
    assert!(eventually(Duration::from_secs(10), || reload.errors.load(Ordering::Relaxed) == 1).await);
    let (_, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(answer["response"]["allowed"], true, "the previous set must stay in force");
    let metrics = server.metrics().await;
    assert!(metrics.contains("driftgate_policy_reload_errors_total 1"), "{metrics}");
    assert!(metrics.contains("driftgate_policy_files_in_force 0"), "{metrics}");
    // The refusal is not repeated for the same broken files.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(reload.errors.load(Ordering::Relaxed), 1);

    // Fixed: back to enforce.
    std::fs::write(&file, DEFAULT_POLICY).unwrap();
    assert!(eventually(Duration::from_secs(10), || reload.reloads.load(Ordering::Relaxed) == 2).await);
    let (_, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert!(server.metrics().await.contains("driftgate_policy_files_in_force 1"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_policy_folder_is_refused_not_taken_as_nothing_protected() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    std::fs::remove_file(server.settings.policies.join("policy.yaml")).unwrap();
    let reload = server.policy_reloads.clone();
    assert!(eventually(Duration::from_secs(10), || reload.errors.load(Ordering::Relaxed) == 1).await);
    let (_, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(answer["response"]["allowed"], false);
    server.stop().await;
}
