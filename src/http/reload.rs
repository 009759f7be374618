//! Policy hot reload: the policy folder is polled, and a changed set that loads cleanly replaces
//! the one in force in a single atomic swap. A set that does not load is refused: the old set
//! stays in force, every problem is logged with file, line and reason, and the failure is
//! counted. Never fail open silently.
//!
//! Contents are compared, not modification times, so a ConfigMap volume's `..data` symlink swap
//! is seen like an edit in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::policy::{self, PolicySet};

/// What policy reloading has done.
#[derive(Debug)]
pub struct ReloadStats {
    /// New policy sets taken into force.
    pub reloads: AtomicU64,
    /// New policy sets refused.
    pub errors: AtomicU64,
    /// Whether the files on disk are the set in force (false while a broken set is refused).
    pub in_sync: AtomicBool,
}

impl Default for ReloadStats {
    fn default() -> Self {
        ReloadStats { reloads: AtomicU64::new(0), errors: AtomicU64::new(0), in_sync: AtomicBool::new(true) }
    }
}

/// The policy files of `dir` and their contents, in name order.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files.into_iter().filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes))).collect()
}

/// The policy files as they were when the set in force was loaded.
pub type Snapshot = Vec<(PathBuf, Vec<u8>)>;

/// Polls `dir` every `interval`; swaps in a new set built with `never_protected` namespaces.
/// `loaded` is the snapshot taken just before the set in force was loaded.
pub async fn watch(
    dir: PathBuf,
    loaded: Snapshot,
    never_protected: Vec<String>,
    policies: Arc<ArcSwap<PolicySet>>,
    stats: Arc<ReloadStats>,
    interval: Duration,
) {
    let mut current = loaded;
    let mut refused: Option<Vec<(PathBuf, Vec<u8>)>> = None;
    loop {
        tokio::time::sleep(interval).await;
        let seen = snapshot_async(dir.clone()).await;
        if seen == current || refused.as_ref() == Some(&seen) {
            continue;
        }
        let loaded = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || policy::load_dir(&dir)).await
        };
        match loaded {
            Ok(Ok(loaded)) => {
                let set = PolicySet::new(loaded, &never_protected);
                tracing::info!(count = set.len(), dir = %dir.display(), "policies reloaded");
                policies.store(Arc::new(set));
                stats.reloads.fetch_add(1, Ordering::Relaxed);
                stats.in_sync.store(true, Ordering::Relaxed);
                current = seen;
                refused = None;
            }
            Ok(Err(e)) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.in_sync.store(false, Ordering::Relaxed);
                for problem in &e.errors {
                    tracing::error!(
                        file = %problem.file.display(),
                        line = problem.line,
                        reason = %problem.reason,
                        "policy reload refused; the previous policies stay in force"
                    );
                }
                refused = Some(seen);
            }
            Err(e) => tracing::error!(error = %e, "policy reload failed"),
        }
    }
}

async fn snapshot_async(dir: PathBuf) -> Vec<(PathBuf, Vec<u8>)> {
    tokio::task::spawn_blocking(move || snapshot(&dir)).await.unwrap_or_default()
}
