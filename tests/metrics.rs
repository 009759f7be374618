//! `GET /metrics` moves by exactly what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEFAULT_POLICY, TestServer};

/// The value of the sample whose line starts with `prefix` (name and labels), 0 if absent.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_requests_decisions_drift_and_bad_input_exactly() {
    let server = TestServer::start(DEFAULT_POLICY).await;
    let before = server.metrics().await;
    assert_eq!(sample(&before, "driftgate_policies_loaded"), 2.0);
    assert!(sample(&before, "driftgate_certificate_expiry_timestamp_seconds") > 1.7e9);
    assert_eq!(sample(&before, "driftgate_journal_healthy"), 1.0);

    for _ in 0..3 {
        server.validate_fixture("virtualservice-update-kubectl-edit-human.validating.json").await;
    }
    for _ in 0..2 {
        server.validate_fixture("virtualservice-create-argocd-kubectl-apply.validating.json").await;
    }
    server.validate(b"{".to_vec()).await;
    server
        .post(
            "/mutate",
            common::fixture("virtualservice-create-argocd-kubectl-apply.mutating.json"),
            "application/json",
        )
        .await;

    let text = server.metrics().await;
    let denied = r#"driftgate_admission_requests_total{endpoint="validate",operation="UPDATE",decision="denied",kind="VirtualService"}"#;
    let allowed = r#"driftgate_admission_requests_total{endpoint="validate",operation="CREATE",decision="allowed",kind="VirtualService"}"#;
    let mutated = r#"driftgate_admission_requests_total{endpoint="mutate",operation="CREATE",decision="allowed",kind="VirtualService"}"#;
    assert_eq!(sample(&text, denied), 3.0, "{text}");
    assert_eq!(sample(&text, allowed), 2.0);
    assert_eq!(sample(&text, mutated), 1.0);
    assert_eq!(sample(&text, r#"driftgate_admission_bad_requests_total{endpoint="validate",code="400"}"#), 1.0);
    assert_eq!(
        sample(
            &text,
            r#"driftgate_drift_events_total{decision="denied",authenticated="false",kind="VirtualService",namespace="shop"}"#
        ),
        3.0
    );
    assert_eq!(sample(&text, r#"driftgate_admission_duration_seconds_count{endpoint="validate"}"#), 5.0);
    assert_eq!(sample(&text, "driftgate_journal_append_seconds_count"), 3.0);
    assert_eq!(sample(&text, "driftgate_journal_lines_total"), 3.0);
    assert!(sample(&text, "driftgate_journal_fsync_seconds_count") >= 1.0);
    assert_eq!(sample(&text, "driftgate_journal_errors_total"), 0.0);
    assert!(text.contains("driftgate_build_info{version=\""));
    assert!(text.ends_with("# EOF\n"));
    server.stop().await;
}
