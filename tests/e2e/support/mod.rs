//! Support of the end-to-end suite: a real etcd, kube-apiserver and kube-controller-manager on
//! loopback ports ([`cluster`]), driftgate run the way the README tells a user to
//! ([`driftgate`]), and real `kubectl` as the people and controllers of a cluster ([`kubectl`]).
//!
//! Everything this starts is stopped by PID when its handle drops, on success or failure; the
//! PIDs are also written under the target folder, so a run killed outright has its leftovers
//! stopped by the next one.
#![allow(dead_code, unused_imports)]
// Harness code: a set-up that fails should stop the suite loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cluster;
pub mod driftgate;
pub mod kubectl;
pub mod pki;
pub mod process;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use cluster::Cluster;
pub use driftgate::Driftgate;
pub use kubectl::{Identity, Out};

/// The line `make test` prints when the binaries are absent (and the suite passes).
pub const SKIP_HINT: &str = "see README \"End-to-end tests\"";

/// Where the harness binaries are: `$KUBE_HARNESS`, else the default folder under the user's
/// cache (`$XDG_CACHE_HOME/driftgate/kube-harness`, `~/.cache/driftgate/kube-harness`).
pub fn harness_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBE_HARNESS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("driftgate").join("kube-harness")
}

/// The binaries the suite runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub apiserver: PathBuf,
    pub controller_manager: Option<PathBuf>,
}

/// Finds the binaries, or says in one line why the suite cannot run.
pub fn binaries() -> Result<Binaries, String> {
    let bin = harness_dir().join("bin");
    let apiserver = bin.join("kube-apiserver");
    if !apiserver.is_file() {
        return Err(format!("no kube-apiserver in {}", bin.display()));
    }
    let etcd = if bin.join("etcd").is_file() { Some(bin.join("etcd")) } else { which("etcd") };
    let Some(etcd) = etcd else { return Err(format!("no etcd in {} or on PATH", bin.display())) };
    if which("kubectl").is_none() {
        return Err("no kubectl on PATH".to_owned());
    }
    let kcm = bin.join("kube-controller-manager");
    Ok(Binaries { etcd, apiserver, controller_manager: kcm.is_file().then_some(kcm) })
}

/// A program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(name)).find(|p| p.is_file())
}

/// cargo's folder for the temporary files of tests (`target/tmp`).
pub fn target_tmp() -> PathBuf {
    match option_env!("CARGO_TARGET_TMPDIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp"),
    }
}

/// The folder this run keeps its files in (logs stay there after a failure).
pub fn run_dir() -> PathBuf {
    target_tmp().join("e2e")
}

/// A port on 127.0.0.1 that was free a moment ago (for the binaries that cannot report the
/// port they bound; driftgate itself binds port 0 and reports it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `check` holds within `deadline` (polled every 100 ms).
pub fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
