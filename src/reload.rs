//! Hot reload by polling, for the policies and the serving certificate alike.
//!
//! A source is read every interval (its contents, not modification times, so a Kubernetes
//! ConfigMap or Secret volume's `..data` symlink swap is seen like an edit in place); a changed
//! snapshot is applied in one step. One that does not apply is refused once (the caller logs
//! why), counted, and the previous state stays in force: never fail open silently. Reading runs
//! on the blocking pool; applying runs on the poller's task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What a reloader has done, for logs, metrics and readiness.
#[derive(Debug)]
pub struct ReloadStats {
    /// Changed snapshots taken into force.
    pub reloads: AtomicU64,
    /// Changed snapshots refused (the previous state kept).
    pub errors: AtomicU64,
    /// Whether what is in force is what the source holds (false while a change is refused).
    pub in_sync: AtomicBool,
}

impl Default for ReloadStats {
    fn default() -> Self {
        ReloadStats { reloads: AtomicU64::new(0), errors: AtomicU64::new(0), in_sync: AtomicBool::new(true) }
    }
}

/// Polls `read` every `interval`; when it gives a snapshot other than the one in force
/// (`current`, read just before the state in force was made), calls `apply` with it. `apply`
/// returning `false` refuses the snapshot until the source changes again. A source that cannot
/// be read (`None`: a file missing for a moment mid-rotation) is tried again at the next poll.
pub async fn poll_reload<S, R, A>(
    interval: Duration,
    current: Option<S>,
    read: R,
    mut apply: A,
    stats: Arc<ReloadStats>,
) where
    S: PartialEq + Send + 'static,
    R: Fn() -> Option<S> + Clone + Send + 'static,
    A: FnMut(&S) -> bool,
{
    let mut current = current;
    let mut refused: Option<S> = None;
    loop {
        tokio::time::sleep(interval).await;
        let read = read.clone();
        let Ok(Some(seen)) = tokio::task::spawn_blocking(read).await else { continue };
        if current.as_ref() == Some(&seen) || refused.as_ref() == Some(&seen) {
            continue;
        }
        if apply(&seen) {
            stats.reloads.fetch_add(1, Ordering::Relaxed);
            stats.in_sync.store(true, Ordering::Relaxed);
            current = Some(seen);
            refused = None;
        } else {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            stats.in_sync.store(false, Ordering::Relaxed);
            refused = Some(seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn applies_changes_once_and_refuses_bad_ones_once() {
        let source = Arc::new(Mutex::new(Some(1)));
        let applied = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(ReloadStats::default());
        let (s, a) = (source.clone(), applied.clone());
        let task = tokio::spawn(poll_reload(
            Duration::from_millis(10),
            Some(1),
            move || *s.lock().unwrap(),
            move |v: &i32| {
                a.lock().unwrap().push(*v);
                *v != 3
            },
            stats.clone(),
        ));
        let step = |v: Option<i32>| {
            *source.lock().unwrap() = v;
        };
        for v in [Some(1), Some(2), Some(2), None, Some(3), Some(3), Some(4)] {
            step(v);
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        task.abort();
        assert_eq!(*applied.lock().unwrap(), [2, 3, 4], "each change applied once, the bad one tried once");
        assert_eq!(stats.reloads.load(Ordering::Relaxed), 2);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 1);
        assert!(stats.in_sync.load(Ordering::Relaxed));
    }
}
