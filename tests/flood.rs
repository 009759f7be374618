//! Flood resistance through the real server: a source over its rate limit is answered
//! truthfully, and its drift events are summarised in one journal line with their count, while
//! another source's events are journaled one by one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;

use common::{DEFAULT_POLICY, TestServer, fixture};
use reqwest::StatusCode;
use serde_json::Value;

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

/// A client that calls the server from `from` (any 127.0.0.0/8 address is this machine).
fn client_from(server: &TestServer, from: IpAddr) -> reqwest::Client {
    common::client_builder(&server.ca_pem, server.addr).local_address(from).build().unwrap()
}

async fn refuse(client: &reqwest::Client, server: &TestServer) -> Value {
    let resp = client
        .post(server.url("/validate"))
        .header("content-type", "application/json")
        .body(fixture(EDIT))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_source_is_answered_and_summarised_while_another_is_journaled_line_by_line() {
    let kept = tempfile::tempdir().unwrap();
    let path = kept.path().join("drift-events.jsonl");
    let server = TestServer::start_with(DEFAULT_POLICY, |s| {
        s.journal = path.clone();
        s.rate_limit_per_source = 1.0;
        s.rate_limit_burst = 5;
    })
    .await;
    let flood = client_from(&server, [127, 0, 0, 2].into());
    let apiserver = client_from(&server, [127, 0, 0, 1].into());
    let mut real = Vec::new();
    for i in 0..60 {
        let answer = refuse(&flood, &server).await;
        assert_eq!(answer["response"]["allowed"], false, "every forged request is still answered truthfully");
        if i % 20 == 0 {
            let answer = refuse(&apiserver, &server).await;
            assert_eq!(answer["response"]["allowed"], false);
            real.push(answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned());
        }
    }
    let metrics = server.metrics().await;
    let limited: f64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"driftgate_rate_limited_events_total{source="127.0.0.2"}"#))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    // Stopping journals what was held since the last summary.
    server.stop().await;
    let journal: Vec<Value> =
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let from = |addr: &str| journal.iter().filter(|e| e["source"]["address"] == addr).collect::<Vec<_>>();
    // The real source: every event, line by line.
    let ids: Vec<&str> = from("127.0.0.1").iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, real);
    // The flood: the burst line by line, then one summary standing for the rest.
    let flooded = from("127.0.0.2");
    let summaries: Vec<&&Value> = flooded.iter().filter(|e| e.get("rateLimited").is_some()).collect();
    assert!(!summaries.is_empty() && flooded.len() < 15, "{} lines for 60 forged events", flooded.len());
    let counted: u64 = summaries.iter().map(|e| e["rateLimited"]["count"].as_u64().unwrap()).sum();
    let one_by_one = (flooded.len() - summaries.len()) as u64;
    assert_eq!(one_by_one + counted, 60, "every forged event is accounted for");
    assert_eq!(counted as f64, limited);
    assert_eq!(summaries[0]["source"]["authenticated"], false);
}
