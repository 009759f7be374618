//! The real binary under signals: SIGKILL mid-load loses no answered drift event, SIGTERM
//! drains without failing a request, and a restart carries on with the same journal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DEFAULT_POLICY, client_for, eventually, fixture};

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

/// A folder with the default policy and certificates; the CA's PEM.
fn prepare(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/default.yaml"), DEFAULT_POLICY).unwrap();
    let bundle = driftgate::certs::generate(&driftgate::certs::dev_request()).unwrap();
    driftgate::certs::write(&dir.join("certs"), &bundle, false).unwrap();
    bundle.ca_pem
}

/// Starts `driftgate serve` on an ephemeral port; waits for the address it logs.
fn spawn(dir: &Path, env: &[(&str, &str)]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("DRIFTGATE_METRICS_LISTEN", "127.0.0.1:0")
        .env("DRIFTGATE_DEV_CERTS", "false")
        // One client refusing hundreds a second: over the per-source rate limit, whose events
        // are summarised every 10 s (tests/flood.rs). This test is about each journaled line.
        .env("DRIFTGATE_RATE_LIMIT_PER_SOURCE", "0")
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("driftgate exited before serving").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "driftgate serving" {
            break v["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, addr)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn every_denial_answered_before_sigkill_is_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = prepare(dir.path());
    let (mut child, addr) = spawn(dir.path(), &[]);
    let client = client_for(&ca, addr, false);
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let body = fixture(EDIT);
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, answered, body) = (client.clone(), answered.clone(), body.clone());
            let url = format!("https://localhost:{}/validate", addr.port());
            tokio::spawn(async move {
                loop {
                    let sent =
                        client.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                    let Ok(resp) = sent else { break };
                    let Ok(answer) = resp.json::<serde_json::Value>().await else { break };
                    let id = answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned();
                    answered.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    assert!(eventually(Duration::from_secs(30), || answered.lock().unwrap().len() >= 300).await);
    child.kill().unwrap(); // SIGKILL, mid-load
    child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let ids = answered.lock().unwrap().clone();
    let journal_path = dir.path().join("drift-events.jsonl");
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    let missing: Vec<&String> = ids.iter().filter(|id| !journal.contains(id.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered denials are not in the journal: {missing:?}",
        missing.len(),
        ids.len()
    );

    // A crash in the middle of a write leaves a torn last line; a restart carries on after it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal_path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"id\":\"torn-by-a-crash"))
        .unwrap();
    // driftgate review reads it all the same, with a note about the torn line.
    let review = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["review", "--format", "json"])
        .arg(&journal_path)
        .output()
        .unwrap();
    assert!(review.status.success());
    let reviewed = String::from_utf8_lossy(&review.stdout);
    assert!(ids.iter().all(|id| reviewed.contains(id.as_str())));
    assert_eq!(reviewed.lines().count(), journal.lines().count());
    let note = String::from_utf8_lossy(&review.stderr);
    assert!(note.contains("skipped line"), "{note}");

    let (mut child, addr) = spawn(dir.path(), &[]);
    let client = client_for(&ca, addr, false);
    let answer: serde_json::Value = client
        .post(format!("https://localhost:{}/validate", addr.port()))
        .header("content-type", "application/json")
        .body(fixture(EDIT))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last_id = answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned();
    child.kill().unwrap();
    child.wait().unwrap();
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("{\"id\":\"torn")).count(), 1);
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["id"], last_id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_without_failing_a_request_and_a_restart_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let ca = prepare(dir.path());
    let env = [("DRIFTGATE_SHUTDOWN_DELAY_SECONDS", "1"), ("DRIFTGATE_SHUTDOWN_GRACE_SECONDS", "5")];
    let (mut child, addr) = spawn(dir.path(), &env);
    let client = client_for(&ca, addr, false);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let bodies = [fixture(EDIT), fixture("virtualservice-create-argocd-kubectl-apply.validating.json")];
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
            let body = bodies[w % 2].clone();
            let url = format!("https://localhost:{}/validate", addr.port());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent =
                        client.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                    let answered = match sent {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if answered {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // The endpoints controller's part: take the server out of rotation once it is unready.
    let readiness = {
        let (client, stop) = (client.clone(), stop.clone());
        let url = format!("https://localhost:{}/readyz", addr.port());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {}
                    _ => stop.store(true, Ordering::Relaxed),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    assert!(eventually(Duration::from_secs(30), || ok.load(Ordering::Relaxed) >= 200).await);
    let signalled = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(15))).await.unwrap();
    let status = status.expect("driftgate did not exit within the grace period");
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(1 + 5 + 3));
    stop.store(true, Ordering::Relaxed);
    readiness.await.unwrap();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during a graceful shutdown");

    // Restarted on the same folder and journal, it serves again.
    let (mut child, addr) = spawn(dir.path(), &env);
    let resp = client_for(&ca, addr, false)
        .post(format!("https://localhost:{}/validate", addr.port()))
        .header("content-type", "application/json")
        .body(fixture(EDIT))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    child.kill().unwrap();
    child.wait().unwrap();
}
