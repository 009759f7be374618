//! A full journal disk: enforce still denies, audit still allows, /readyz is unready and the
//! errors are counted; writing resumes when space is freed. Needs root to mount a small tmpfs;
//! elsewhere it says so and checks nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{TestServer, eventually, policy_with};
use reqwest::StatusCode;

const EDIT: &str = "virtualservice-update-kubectl-edit-human.validating.json";

/// A 256 KiB tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).ok()?;
        let ok =
            Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(dir).status().ok()?.success();
        ok.then(|| SmallDisk(dir.to_owned()))
    }

    /// Fills the disk; the filler file, to free the space again.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: the journal's writer thread may still be closing its file.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

async fn full_disk(mode: &str, allowed: bool) {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&root.path().join("journal")) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the full-disk journal test did not run");
        return;
    };
    let journal = disk.0.join("drift-events.jsonl");
    let server = TestServer::start_with(&policy_with(mode, "all"), |s| s.journal = journal.clone()).await;
    let (_, answer) = server.validate_fixture(EDIT).await;
    assert_eq!(answer["response"]["allowed"], allowed);
    assert_eq!(server.get("/readyz").await.0, StatusCode::OK);

    let filler = disk.fill();
    // The journal's last page may still hold an event or two; then the disk is full for it too.
    for _ in 0..10 {
        let (status, answer) = server.validate_fixture(EDIT).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["response"]["allowed"], allowed, "{mode}: the answer must not change with the journal");
    }
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("cannot be written"));
    let metrics = server.metrics().await;
    assert!(sample(&metrics, "driftgate_journal_errors_total") >= 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "driftgate_journal_healthy"), 0.0);

    // Space again: ready without any request (the journal probes itself), and events land.
    std::fs::remove_file(filler).unwrap();
    let state = server.state.clone();
    assert!(eventually(Duration::from_secs(10), || state.journal.is_healthy()).await);
    assert_eq!(server.get("/readyz").await.0, StatusCode::OK);
    let (_, answer) = server.validate_fixture(EDIT).await;
    let id = answer["response"]["auditAnnotations"]["drift-event-id"].as_str().unwrap().to_owned();
    assert!(std::fs::read_to_string(&journal).unwrap().contains(&id));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_still_denies_on_a_full_journal_disk() {
    full_disk("enforce", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_still_allows_on_a_full_journal_disk() {
    full_disk("audit", true).await;
}
