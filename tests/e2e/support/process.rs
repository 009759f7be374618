//! Child processes stopped by PID: on drop (so a failing test still tears down), and at the
//! start of the next run for anything a killed run left behind (recorded under the run folder).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running child whose output goes to a log file.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
    pid_file: PathBuf,
}

fn pid_dir() -> PathBuf {
    super::target_tmp().join("e2e-pids")
}

/// Stops what an earlier run that was killed outright left running: every recorded PID whose
/// executable is still the recorded one.
pub fn reap_leftovers() {
    let Ok(entries) = std::fs::read_dir(pid_dir()) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let pid = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok());
        let recorded = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(pid) = pid {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if !recorded.is_empty() && exe == Path::new(recorded.trim()) {
                eprintln!("e2e: stopping pid {pid} ({}) left by an earlier run", recorded.trim());
                signal(pid, "KILL");
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).stderr(Stdio::null()).status();
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = File::options().create(true).append(true).open(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name} ({cmd:?}): {e}"));
        std::fs::create_dir_all(pid_dir()).unwrap();
        let pid_file = pid_dir().join(child.id().to_string());
        let exe = std::fs::read_link(format!("/proc/{}/exe", child.id())).unwrap_or_default();
        std::fs::write(&pid_file, exe.display().to_string()).unwrap();
        Proc { name: name.to_owned(), log: log.to_owned(), child: Some(child), pid_file }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if matches!(child.try_wait(), Ok(None)) {
            signal(child.id(), "TERM");
            let end = Instant::now() + grace;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        self.stop(Duration::ZERO);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
