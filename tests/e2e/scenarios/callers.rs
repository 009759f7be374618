//! Who may add to the audit trail: with `--client-ca` and the kube-apiserver's client
//! certificate (its AdmissionConfiguration), a person's refused edit is journaled as
//! authenticated and a direct POST is refused without a trace; without it, a flood of forged
//! reviews from another address is answered, summarised with its count, and the real refusals
//! the kube-apiserver sends meanwhile are all journaled and survive rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Env;
use crate::objects::virtual_service;
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::kubectl::ALICE;
use crate::support::{Driftgate, wait_for};

/// A review as the kube-apiserver sends it for a person's `kubectl edit` (a captured fixture).
fn captured_edit() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/virtualservice-update-kubectl-edit-human.validating.json");
    std::fs::read(path).unwrap()
}

/// A client of driftgate's port that trusts its CA and calls from `from`.
fn direct_client(dg: &Driftgate, from: [u8; 4]) -> reqwest::Client {
    driftgate::http::tls::install_default_provider();
    let ca = std::fs::read(dg.certs.join("ca.crt")).unwrap();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .local_address(std::net::IpAddr::from(from))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The weights patch a person sends with kubectl.
const PATCH: &str = r#"[{"op":"replace","path":"/spec/http/1/route/0/weight","value":50},{"op":"replace","path":"/spec/http/1/route/1/weight","value":50}]"#;

pub fn with_a_client_ca_the_apiserver_is_authenticated_and_a_direct_post_is_refused(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-client-ca";
    c.namespace(ns);
    let ca = c.webhook_client_ca.display().to_string();
    let dg = Driftgate::start(c, "client-ca", &[("default.yaml", DEFAULT_POLICY)], &["--client-ca", &ca]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    let out = c.alice().run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=json", "-p", PATCH]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("change it in Git"), "{}", out.stderr);
    let events = dg.events_in(ns);
    assert_eq!(events.len(), 1, "{events:#?}");
    let source = &events[0]["source"];
    assert_eq!(source["authenticated"], true, "{source}");
    assert_eq!(source["address"], "127.0.0.1");
    assert!(source["certificate"].as_str().unwrap().contains("CN=kube-apiserver"), "{source}");
    assert_eq!(events[0]["user"]["username"], ALICE);

    // Anyone else reaching the port: refused before any decision, and nothing journaled.
    let before = dg.journal_all().len();
    let status = runtime().block_on(async {
        let client = direct_client(&dg, [127, 0, 0, 2]);
        let resp = client
            .post(format!("https://127.0.0.1:{}/validate", dg.port))
            .header("content-type", "application/json")
            .body(captured_edit())
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    });
    assert_eq!(status, 401);
    assert_eq!(dg.journal_all().len(), before, "a refused caller adds nothing to the audit trail");
    let out = dg.cli(&["review", "--journal", &dg.journal.display().to_string(), "--unauthenticated", "-o", "json"]);
    assert!(out.ok() && out.stdout.trim().is_empty(), "{out:?}");
}

pub fn a_flood_of_forged_reviews_is_summarised_and_the_real_refusals_survive(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-flood";
    c.namespace(ns);
    // Small files, so the flood would rotate the real events out within seconds if it could.
    let settings = c.dir.join("flood-settings.yaml");
    std::fs::write(&settings, "journal_max_bytes: 65536\njournal_keep: 1\n").unwrap();
    let settings = settings.display().to_string();
    let dg = Driftgate::start(c, "flood", &[("default.yaml", DEFAULT_POLICY)], &["--config", &settings]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    // A person's refused patch before the flood, for comparison.
    let began = Instant::now();
    let out = c.alice().run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=json", "-p", PATCH]);
    let calm = began.elapsed();
    assert_eq!(out.code, 1, "{out:?}");

    // A pod forging reviews that blame someone, from its own address, as fast as it can.
    let forged = String::from_utf8(captured_edit()).unwrap().replace("alice@example.com", "mallory@example.com");
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime();
    let flood = {
        let client = direct_client(&dg, [127, 0, 0, 2]);
        let url = format!("https://127.0.0.1:{}/validate", dg.port);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (client, url, body, sent, stop) =
                    (client.clone(), url.clone(), forged.clone(), sent.clone(), stop.clone());
                rt.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        let answered = match resp {
                            Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["response"]["allowed"] == false),
                            Err(_) => false,
                        };
                        assert!(answered, "every forged review is answered truthfully");
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tasks
    };

    // Meanwhile the kube-apiserver sends a person's edits.
    std::thread::sleep(Duration::from_secs(2));
    let mut took = Vec::new();
    for _ in 0..6 {
        let began = Instant::now();
        let out = c.alice().run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=json", "-p", PATCH]);
        took.push(began.elapsed());
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("change it in Git"), "{}", out.stderr);
        std::thread::sleep(Duration::from_secs(1));
    }
    let rss_during = rss_mib(dg.pid().unwrap());
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        rt.block_on(task).unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);

    // The forged events' summary is journaled within the summary period.
    let journal = wait_for("the rate-limit summary", Duration::from_secs(30), || {
        let all = dg.journal_all();
        let counted: u64 = forged_counts(&all);
        (counted == sent).then_some(all)
    });
    let real: Vec<&Value> =
        journal.iter().filter(|e| e["user"]["username"] == ALICE && e["resource"]["namespace"] == ns).collect();
    assert_eq!(real.len(), 7, "every real refusal is journaled");
    assert!(real.iter().all(|e| e["source"]["address"] == "127.0.0.1" && e.get("rateLimited").is_none()));
    let forged_lines = journal.iter().filter(|e| e["user"]["username"] == "mallory@example.com").count();
    let summaries = journal.iter().filter(|e| e.get("rateLimited").is_some()).count();
    assert!(summaries >= 1 && (forged_lines as u64) < sent / 4, "{forged_lines} lines for {sent} forged reviews");
    assert!(
        journal
            .iter()
            .filter(|e| e["user"]["username"] == "mallory@example.com")
            .all(|e| e["source"]["address"] == "127.0.0.2" && e["source"]["authenticated"] == false)
    );
    let bytes = dg.journal_bytes();
    assert!(bytes < 4 * 1024 * 1024, "the journal stays small: {bytes} bytes");
    assert!(rss_during < 256.0, "memory stays bounded: {rss_during} MiB");
    let metrics = dg.metrics();
    assert!(metrics.contains(r#"driftgate_rate_limited_events_total{source="127.0.0.2"}"#), "{metrics}");
    // `driftgate review` counts them apart.
    let out = dg.cli(&["review", "--journal", &dg.journal.display().to_string(), "-o", "summary"]);
    assert!(out.ok() && out.stdout.contains("rate-limited: "), "{out:?}");
    took.sort();
    println!(
        "e2e: flood: {sent} forged reviews sent from 127.0.0.2 in ~8 s, answered; journaled as {forged_lines} lines \
         ({summaries} summaries); 7 of 7 real refusals kept; journal {:.1} KiB in all; driftgate RSS {rss_during:.1} MiB; \
         kubectl patch (a person, through the kube-apiserver) took {:.0} ms before the flood, {:.0}–{:.0} ms during it",
        bytes as f64 / 1024.0,
        calm.as_secs_f64() * 1000.0,
        took[0].as_secs_f64() * 1000.0,
        took[took.len() - 1].as_secs_f64() * 1000.0
    );
}

/// How many forged (mallory's) drift events the journal accounts for: lines, and the counts of
/// summaries.
fn forged_counts(journal: &[Value]) -> u64 {
    journal
        .iter()
        .filter(|e| e["user"]["username"] == "mallory@example.com")
        .map(|e| e["rateLimited"]["count"].as_u64().unwrap_or(1))
        .sum()
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
