//! driftgate run as the README tells a user to run it against a development cluster:
//! `driftgate certs`, `driftgate serve`, `driftgate register --url …` (the release of the
//! workspace: the binary cargo built for this test).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::cluster::Cluster;
use super::kubectl::Out;
use super::process::Proc;
use super::wait_for;

/// The driftgate binary under test: `DRIFTGATE_BIN` if set (to measure another build), else the
/// one cargo built for this test (or, from a benchmark, `target/release/driftgate`).
pub fn bin() -> PathBuf {
    if let Some(path) = std::env::var_os("DRIFTGATE_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    match option_env!("CARGO_BIN_EXE_driftgate") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/driftgate"),
    }
}
/// The shipped default policies.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/default.yaml");

/// A driftgate server on the host, registered with the cluster through `--url`.
pub struct Driftgate {
    pub dir: PathBuf,
    pub certs: PathBuf,
    pub policies: PathBuf,
    pub journal: PathBuf,
    pub port: u16,
    pub metrics_port: u16,
    kubeconfig: PathBuf,
    extra: Vec<String>,
    proc: Option<Proc>,
}

impl Driftgate {
    /// Makes certificates, writes `policies` (file name, YAML) into its policy folder, starts
    /// `driftgate serve` with `extra` flags, and registers it with the cluster.
    pub fn start(cluster: &Cluster, name: &str, policies: &[(&str, &str)], extra: &[&str]) -> Driftgate {
        let dir = cluster.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        let mut dg = Driftgate {
            certs: dir.join("certs"),
            policies: dir.join("policies"),
            journal: dir.join("drift-events.jsonl"),
            dir,
            port: 0,
            metrics_port: 0,
            kubeconfig: cluster.kubeconfig.clone(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            proc: None,
        };
        for (file, yaml) in policies {
            std::fs::write(dg.policies.join(file), yaml).unwrap();
        }
        let certs = dg.certs.display().to_string();
        let out = dg.cli(&["certs", "--out", &certs, "--dns", "localhost", "--ip", "127.0.0.1"]);
        assert!(out.ok(), "driftgate certs: {}", out.stderr);
        dg.spawn();
        let out = dg.register();
        assert!(out.ok(), "driftgate register: {}", out.stderr);
        dg
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    /// Every journal file's events (rotated files first, oldest first, then the live file).
    pub fn journal_all(&self) -> Vec<Value> {
        let mut files: Vec<(usize, PathBuf)> = Vec::new();
        let name = self.journal.file_name().unwrap().to_string_lossy().into_owned();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file == name {
                files.push((0, entry.path()));
            } else if let Some(n) = file.strip_prefix(&format!("{name}.")).and_then(|n| n.parse().ok()) {
                files.push((n, entry.path()));
            }
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        files
            .iter()
            .flat_map(|(_, f)| {
                std::fs::read_to_string(f).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    /// The bytes of every journal file.
    pub fn journal_bytes(&self) -> u64 {
        let name = self.journal.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                f == name || f.strip_prefix(&format!("{name}.")).is_some_and(|n| n.parse::<usize>().is_ok())
            })
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// Runs the driftgate binary with `args` (KUBECONFIG is the cluster's).
    pub fn cli(&self, args: &[&str]) -> Out {
        self.cli_stdin(args, None)
    }

    /// Runs the driftgate binary with `args`, writing `stdin` to it.
    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut child = Command::new(bin())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(&self.dir)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(bytes) = stdin {
            child.stdin.take().unwrap().write_all(bytes).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `https://127.0.0.1:PORT`, what the webhooks call.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `driftgate register --url … --ca-bundle certs/ca.crt --policies …`.
    pub fn register(&self) -> Out {
        let url = self.url();
        let ca = self.certs.join("ca.crt").display().to_string();
        let policies = self.policies.display().to_string();
        self.cli(&["register", "--url", &url, "--ca-bundle", &ca, "--policies", &policies])
    }

    /// `driftgate unregister`.
    pub fn unregister(&self) -> Out {
        self.cli(&["unregister"])
    }

    fn log(&self) -> PathBuf {
        self.dir.join("serve.log")
    }

    /// Starts `driftgate serve` (on the port it had, or a new one the first time).
    fn spawn(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--cert-dir", &self.certs.display().to_string()])
            .args(["--policies", &self.policies.display().to_string()])
            .args(["--journal", &self.journal.display().to_string()])
            .args(["--log-format", "json"])
            .args(&self.extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("DRIFTGATE_METRICS_LISTEN", format!("127.0.0.1:{}", self.metrics_port))
            .env("DRIFTGATE_POLICY_RELOAD_SECONDS", "1")
            .env("DRIFTGATE_SHUTDOWN_DELAY_SECONDS", "0")
            .env("DRIFTGATE_DEV_CERTS", "false")
            .env_remove("RUST_LOG")
            .current_dir(&self.dir);
        let log = self.log();
        let seen = std::fs::read_to_string(&log).map(|t| t.len()).unwrap_or(0);
        let mut proc = Proc::spawn("driftgate", cmd, &log);
        let (port, metrics_port) = wait_for("driftgate to serve", Duration::from_secs(30), || {
            if !proc.alive() {
                panic!("driftgate serve exited:\n{}", proc.log_tail(20));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text[seen.min(text.len())..].lines().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                (v["message"] == "driftgate serving").then(|| {
                    let port = |key: &str| -> u16 {
                        v[key].as_str().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap()
                    };
                    (port("addr"), port("metrics"))
                })
            })
        });
        self.port = port;
        self.metrics_port = metrics_port;
        self.proc = Some(proc);
    }

    /// Stops the server (SIGTERM, as a rollout would); the webhooks stay registered.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(20));
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The log lines of the server, as JSON.
    pub fn logs(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The journal's events, in order.
    pub fn journal(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The journal's events about objects in `namespace` (or about the namespace itself).
    pub fn events_in(&self, namespace: &str) -> Vec<Value> {
        self.journal()
            .into_iter()
            .filter(|e| {
                e["resource"]["namespace"] == namespace
                    || (e["resource"]["resource"] == "namespaces" && e["resource"]["name"] == namespace)
            })
            .collect()
    }

    /// `GET /metrics` on the metrics port.
    pub fn metrics(&self) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
    }

    /// The sum of the samples of `name` whose labels include every `key="value"` in `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics(), name, labels)
    }

    /// Replaces the policy files (file name, YAML) and waits until the server has taken them.
    pub fn set_policies(&self, files: &[(&str, &str)]) {
        let before = self.metric("driftgate_policy_reloads_total", &[]);
        for entry in std::fs::read_dir(&self.policies).unwrap().flatten() {
            std::fs::remove_file(entry.path()).unwrap();
        }
        for (file, yaml) in files {
            std::fs::write(self.policies.join(file), yaml).unwrap();
        }
        wait_for("the policies to be reloaded", Duration::from_secs(20), || {
            (self.metric("driftgate_policy_reloads_total", &[]) > before).then_some(())
        });
    }

    /// The policy folder.
    pub fn policy_dir(&self) -> &Path {
        &self.policies
    }

    /// Waits until the kube-apiserver sends requests to this server: a person's server-side dry
    /// run of a VirtualService in `e2e-probe` (journaled as a dry run there) reaches it.
    pub fn wait_effective(&self, cluster: &Cluster) {
        cluster.namespace("e2e-probe");
        let probe = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: probe, namespace: e2e-probe}\nspec: {hosts: [probe]}\n";
        self.wait_reached(cluster, probe);
    }

    /// Waits until a person's server-side dry-run create of `yaml` reaches this server.
    pub fn wait_reached(&self, cluster: &Cluster, yaml: &str) {
        let before = self.metric("driftgate_admission_requests_total", &[]);
        wait_for("the kube-apiserver to call driftgate", Duration::from_secs(30), || {
            let _ = cluster.alice().run_stdin(&["create", "--dry-run=server", "-f", "-"], Some(yaml));
            (self.metric("driftgate_admission_requests_total", &[]) > before).then_some(())
        });
    }
}

impl Drop for Driftgate {
    fn drop(&mut self) {
        // Leave the cluster as it was found: no webhook pointing at a server that is gone.
        let _ = self.unregister();
    }
}

/// The sum of the samples of `name` (Prometheus text) whose labels include every pair.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}
