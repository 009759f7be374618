//! The shipped PrometheusRule and Grafana dashboard query only metrics the server exports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{DEFAULT_POLICY, TestServer};

/// Metrics that exist only where Kubernetes Events are on (in a cluster).
const IN_CLUSTER_ONLY: &[&str] = &["driftgate_events_dropped_total"];

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("driftgate_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        names.insert(name);
    }
    names
}

fn exprs_of(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs_of(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs_of(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_dashboard_query_exported_metrics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/monitoring");
    let rule: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("prometheusrule.yaml")).unwrap()).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "driftgate");
    let mut exprs = Vec::new();
    exprs_of(&rule, &mut exprs);
    let alerts = exprs.len();
    exprs_of(&dashboard, &mut exprs);
    assert!(alerts >= 6 && exprs.len() > alerts);

    // With a sink, so its delivery metrics are exported (its receiver is not there), and a
    // rate limit of one, so the second refusal is rate-limited.
    let server = TestServer::start_with(DEFAULT_POLICY, |s| {
        let mut hook = driftgate::sinks::SinkSettings::new(driftgate::sinks::SinkType::Webhook);
        hook.url = Some(driftgate::sinks::settings::Secret::Value("http://127.0.0.1:9/".into()));
        s.sinks = vec![hook];
        s.rate_limit_per_source = 0.001;
        s.rate_limit_burst = 1;
    })
    .await;
    server.validate_fixture("virtualservice-update-kubectl-edit-human.validating.json").await;
    server.validate_fixture("virtualservice-update-kubectl-edit-human.validating.json").await;
    server.validate(b"{".to_vec()).await;
    let scraped = server.metrics().await;
    for expr in &exprs {
        for name in metric_names(expr) {
            let base = name.strip_suffix("_bucket").unwrap_or(&name);
            let exported = scraped.lines().any(|l| {
                l.starts_with(&format!("{name}{{"))
                    || l.starts_with(&format!("{name} "))
                    || l.starts_with(&format!("{base}_bucket"))
            });
            assert!(
                exported || IN_CLUSTER_ONLY.contains(&name.as_str()),
                "{name} (in {expr:?}) is not exported:\n{scraped}"
            );
        }
    }
    server.stop().await;
}
