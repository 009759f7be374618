//! `make bench-load`: driftgate against the baselines (benches/baseline.rs) under the same load,
//! over HTTPS with keep-alive, side by side in one run:
//! - refusals of a person's 8 KB `kubectl edit` review and of the 270 KB EnvoyFilter patch
//!   review, against the durable baseline (the same group-committed fdatasync of a 1 KB line
//!   before each answer, none of the decision);
//! - the same two reviews sent by Argo CD (allowed), against the plain baseline (parses, answers
//!   allowed, writes nothing);
//!
//! at 1, 8 and 32 connections, each row as several driftgate/baseline pairs (alternating which
//! goes first), with the median ratio of requests/s. It also measures this disk's fdatasync
//! latency, which bounds every refusal. Prints requests/s, p50/p99 and peak RSS.
//!
//! Environment: `BENCH_SECONDS` (per run, default 3), `BENCH_PAIRS` (default 3),
//! `BENCH_CONCURRENCY` (default `1,8,32`), `BENCH_WORKLOADS` (only rows whose name contains it). Run through `make bench-load`, which builds the
//! release binaries first. `loadgen soak` is `make soak`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

const ALLOWED: &[&str] = &[
    "virtualservice-create-argocd-kubectl-apply",
    "destinationrule-create-argocd-kubectl-apply",
    "authorizationpolicy-create-argocd-kubectl-apply",
    "gateway-create-argocd-server-side-apply",
    "gateway-noop-reapply-argocd-server-side-apply",
    "virtualservice-noop-put-argocd",
    "flux-create-server-side-apply--authorizationpolicy-ratings-from-reviews",
    "flux-create-server-side-apply--peerauthentication-default",
    "flux-create-server-side-apply--requestauthentication-jwt",
    "flux-create-server-side-apply--serviceentry-payments-api",
    "flux-create-server-side-apply--sidecar-default",
    "flux-create-server-side-apply--telemetry-mesh-default",
    "flux-noop-reapply-server-side-apply",
    "virtualservice-status-update-istiod",
    "deployment-create-argocd-kubectl-apply",
    "deployment-scale-update-hpa",
    "deployment-scale-update-kubectl-scale-human",
    "envoyfilter-create-argocd-kubectl-apply-big",
];

const DENIED: &[&str] = &[
    "virtualservice-update-kubectl-edit-human",
    "virtualservice-update-kubectl-label-human",
    "virtualservice-update-kubectl-annotate-human",
    "serviceentry-create-kubectl-create-human",
    "authorizationpolicy-delete-kubectl-delete-human",
    "envoyfilter-update-kubectl-patch-json-human-big",
];

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Request {
    body: Bytes,
    allowed: bool,
}

fn load_mix(name: &str) -> Result<Vec<Request>, Error> {
    let read = |names: &[&str], allowed: bool| -> Result<Vec<Request>, Error> {
        names
            .iter()
            .map(|n| {
                let body = std::fs::read(Path::new(FIXTURES).join(format!("{n}.validating.json")))?;
                Ok(Request { body: Bytes::from(body), allowed })
            })
            .collect()
    };
    Ok(match name {
        "allowed" => read(ALLOWED, true)?,
        "denied" => read(DENIED, false)?,
        // A cluster under GitOps: mostly syncs, some drift.
        "mixed" => {
            let mut mix = read(ALLOWED, true)?;
            mix.extend(read(ALLOWED, true)?);
            mix.extend(read(DENIED, false)?);
            mix
        }
        other => return Err(format!("unknown mix {other:?}").into()),
    })
}

struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// The metrics port, for driftgate.
    metrics: Option<SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's output until `find` extracts the address, then drains the rest to `log`.
fn wait_for_addr(
    child: &mut Child,
    from_stderr: bool,
    log: PathBuf,
    find: fn(&str) -> Option<SocketAddr>,
) -> Result<(SocketAddr, String), Error> {
    let stream: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().ok_or("no stderr")?)
    } else {
        Box::new(child.stdout.take().ok_or("no stdout")?)
    };
    let mut lines = BufReader::new(stream).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(line) = lines.next() else { break };
        let line = line?;
        if let Some(addr) = find(&line) {
            let found = line.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                if let Ok(mut f) = std::fs::File::create(log) {
                    for l in lines.map_while(Result::ok) {
                        let _ = writeln!(f, "{l}");
                    }
                }
            });
            return Ok((addr, found));
        }
    }
    Err("the server did not say where it listens".into())
}

fn start_driftgate(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> Result<Server, Error> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--policies")
        .arg(dir.join("policies"))
        .arg("--cert-dir")
        .arg(dir.join("certs"))
        .arg("--journal")
        .arg(dir.join("drift-events.jsonl"))
        .env("DRIFTGATE_METRICS_LISTEN", "127.0.0.1:0")
        .env("DRIFTGATE_DEV_CERTS", "false")
        // Every refusal journaled one by one, as the kube-apiserver's would be: the load comes
        // from one address, far over the per-source rate limit.
        .env("DRIFTGATE_RATE_LIMIT_PER_SOURCE", "0")
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (addr, line) = wait_for_addr(&mut child, true, dir.join("driftgate.log"), |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v["message"] == "driftgate serving").then(|| v["addr"].as_str()?.parse().ok()).flatten()
    })?;
    let metrics =
        serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| v["metrics"].as_str()?.parse().ok());
    Ok(Server { name: "driftgate", child, addr, metrics })
}

fn start_baseline(bin: &Path, dir: &Path, journal: Option<&Path>) -> Result<Server, Error> {
    let mut command = Command::new(bin);
    command.arg("--cert-dir").arg(dir.join("certs"));
    if let Some(journal) = journal {
        command.arg("--journal").arg(journal);
    }
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let (addr, _) = wait_for_addr(&mut child, false, dir.join("baseline.log"), |line| {
        line.strip_prefix("listening on ")?.trim().parse().ok()
    })?;
    Ok(Server { name: if journal.is_some() { "durable baseline" } else { "baseline" }, child, addr, metrics: None })
}

/// Resets the process's peak RSS (VmHWM) so the next reading covers one row only.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// A memory figure of `/proc/PID/status` (`VmHWM:` peak RSS, `VmRSS:` current RSS) in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak RSS in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

#[derive(Debug, Default, Clone)]
struct Row {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    rss: f64,
}

fn client(ca: &[u8], addr: SocketAddr, concurrency: usize) -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([reqwest::Certificate::from_pem(ca)?])
        .resolve("localhost", addr)
        .http1_only()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(10))
        .build()?)
}

async fn drive(
    client: &reqwest::Client,
    url: &str,
    mix: &Arc<Vec<Request>>,
    concurrency: usize,
    duration: Duration,
    check: bool,
) -> Row {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (client, url, mix) = (client.clone(), url.to_owned(), mix.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(100_000);
                let mut errors = 0u64;
                let mut i = w * 7;
                while Instant::now() < deadline {
                    let req = &mix[i % mix.len()];
                    i += 1;
                    let t = Instant::now();
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(req.body.clone())
                        .send()
                        .await;
                    let ok = match sent {
                        Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                            Ok(body) => {
                                !check
                                    || contains(
                                        &body,
                                        if req.allowed { b"\"allowed\":true" } else { b"\"allowed\":false" },
                                    )
                            }
                            Err(_) => false,
                        },
                        _ => false,
                    };
                    latencies.push(t.elapsed().as_micros() as u64);
                    if !ok {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let idx = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[idx] as f64 / 1000.0
    };
    Row { rps: all.len() as f64 / elapsed, p50: pct(0.50), p99: pct(0.99), errors, rss: 0.0 }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `loadgen soak`: mixed load on driftgate alone for `SOAK_SECONDS` (default 300) while its
/// certificate is rotated every 20 s and its policies reloaded every 15 s. Prints requests,
/// errors (must be 0), denials answered versus journal lines (must be equal) and RSS at the
/// start and the end.
async fn soak(release: &Path, dir: &Path) -> Result<(), Error> {
    let seconds: u64 = env_or("SOAK_SECONDS", "300").parse()?;
    let concurrency: usize = env_or("SOAK_CONCURRENCY", "16").parse()?;
    // Every certificate the soak will rotate through, made up front so the client trusts them all.
    let bundles: Vec<_> = (0..(seconds / 20 + 2))
        .map(|_| driftgate::certs::generate(&driftgate::certs::dev_request()))
        .collect::<Result<_, _>>()?;
    driftgate::certs::write(&dir.join("certs"), &bundles[0], true)?;
    // Keep every rotated journal file, so every denial can be counted.
    let server = start_driftgate(&release.join("driftgate"), dir, &[("DRIFTGATE_JOURNAL_KEEP", "10000")])?;
    let pid = server.child.id();
    let cas =
        bundles.iter().map(|b| reqwest::Certificate::from_pem(b.ca_pem.as_bytes())).collect::<Result<Vec<_>, _>>()?;
    let client = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(cas)
        .resolve("localhost", server.addr)
        .http1_only()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("https://localhost:{}/validate", server.addr.port());
    let mix = Arc::new(load_mix("mixed")?);
    let rss_start = current_rss_mib(pid);
    println!("soak: {seconds} s, {concurrency} clients, certificate rotation every 20 s, policy reload every 15 s");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (requests, errors, denials) = (
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (client, url, mix, stop) = (client.clone(), url.clone(), mix.clone(), stop.clone());
            let (requests, errors, denials) = (requests.clone(), errors.clone(), denials.clone());
            tokio::spawn(async move {
                let mut i = w * 7;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let req = &mix[i % mix.len()];
                    i += 1;
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(req.body.clone())
                        .send()
                        .await;
                    let body = match sent {
                        Ok(resp) if resp.status().is_success() => resp.bytes().await.ok(),
                        _ => None,
                    };
                    requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let expected: &[u8] = if req.allowed { b"\"allowed\":true" } else { b"\"allowed\":false" };
                    match body {
                        Some(b) if contains(&b, expected) => {
                            if !req.allowed {
                                denials.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        _ => {
                            errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let (mut rotations, mut reloads) = (0usize, 0usize);
    let mut rss_warm = None;
    let policy = dir.join("policies/default.yaml");
    let original = std::fs::read_to_string(&policy)?;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = started.elapsed().as_secs();
        if t >= 10 && rss_warm.is_none() {
            rss_warm = Some(current_rss_mib(pid));
        }
        if t / 20 > rotations as u64 && rotations + 1 < bundles.len() {
            rotations += 1;
            driftgate::certs::write(&dir.join("certs"), &bundles[rotations], true)?;
        }
        if t / 15 > reloads as u64 {
            reloads += 1;
            // A real change (the break-glass group's name) that leaves the mix's answers alone.
            let changed = original.replace(
                "groups: [driftgate:break-glass]",
                &format!("groups: [driftgate:break-glass, soak-{reloads}]"),
            );
            let tmp = policy.with_extension("tmp");
            std::fs::write(&tmp, changed)?;
            std::fs::rename(&tmp, &policy)?;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let rss_end = current_rss_mib(pid);
    // Let the last policy change be polled (every 2 s) before reading the counters.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let journal = journal_lines(dir);
    let metrics_addr = server.metrics.ok_or("driftgate did not log its metrics address")?;
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics")).await?.text().await?;
    let sample =
        |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
    let denials = denials.load(std::sync::atomic::Ordering::Relaxed);
    println!("requests:            {}", requests.load(std::sync::atomic::Ordering::Relaxed));
    println!("errors:              {}", errors.load(std::sync::atomic::Ordering::Relaxed));
    println!("denials answered:    {denials}");
    println!("journal lines:       {journal}  ({})", if journal as u64 == denials { "equal" } else { "DIFFERENT" });
    println!(
        "certificates:        {rotations} rotations written, {} taken into service",
        sample("driftgate_certificate_reloads_total").unwrap_or(0.0)
    );
    println!(
        "policy reloads:      {reloads} written, {} taken into force",
        sample("driftgate_policy_reloads_total").unwrap_or(0.0)
    );
    println!(
        "RSS:                 {rss_start:.1} MiB at start, {:.1} MiB after 10 s of load, {rss_end:.1} MiB at the end",
        rss_warm.unwrap_or(0.0)
    );
    drop(server);
    Ok(())
}

/// Lines in the journal and all its rotated files.
/// driftgate's own account of a run, from its metrics: time spent answering, waiting for the
/// journal, and how many drift events each fdatasync carried.
#[derive(Debug, Default, Clone, Copy)]
struct Inside {
    answer_seconds: f64,
    answers: f64,
    append_seconds: f64,
    appends: f64,
    fsyncs: f64,
}

impl Inside {
    async fn read(server: &Server) -> Inside {
        let Some(addr) = server.metrics else { return Inside::default() };
        let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else { return Inside::default() };
        let text = response.text().await.unwrap_or_default();
        // Every series of a metric, summed over its labels.
        let total = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Inside {
            answer_seconds: total("driftgate_admission_duration_seconds_sum"),
            answers: total("driftgate_admission_duration_seconds_count"),
            append_seconds: total("driftgate_journal_append_seconds_sum"),
            appends: total("driftgate_journal_append_seconds_count"),
            fsyncs: total("driftgate_journal_fsync_seconds_count"),
        }
    }

    fn add(&mut self, after: &Inside, before: &Inside) {
        self.answer_seconds += after.answer_seconds - before.answer_seconds;
        self.answers += after.answers - before.answers;
        self.append_seconds += after.append_seconds - before.append_seconds;
        self.appends += after.appends - before.appends;
        self.fsyncs += after.fsyncs - before.fsyncs;
    }

    fn describe(&self) -> String {
        let ms = |s: f64, n: f64| if n > 0.0 { s / n * 1000.0 } else { 0.0 };
        format!(
            "driftgate inside: answer {:.3} ms mean, of which journal {:.3} ms; {:.1} events per fdatasync",
            ms(self.answer_seconds, self.answers),
            ms(self.append_seconds, self.appends),
            if self.fsyncs > 0.0 { self.appends / self.fsyncs } else { 0.0 }
        )
    }
}

fn journal_lines(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("drift-events.jsonl"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .sum()
}

/// Current RSS in MiB.
fn current_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// The CPU time (user and system, all threads) process `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 12th and 13th.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// The p50 and p99 of `n` appends of a 1 KB line, each followed by fdatasync, in `dir` (ms).
fn fdatasync_latency(dir: &Path, n: usize) -> Result<(f64, f64), Error> {
    use std::io::Write as _;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::File::create(&path)?;
    let line = [b'x'; 1024];
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            file.write_all(&line).and_then(|()| file.sync_data()).map(|()| t.elapsed().as_secs_f64() * 1000.0)
        })
        .collect::<Result<_, _>>()?;
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    Ok((times[n / 2], times[n * 99 / 100]))
}

/// `body` as if sent by Argo CD's application controller (the identity GitOps writes as).
fn as_argocd(body: &[u8]) -> Result<Bytes, Error> {
    let mut review: serde_json::Value = serde_json::from_slice(body)?;
    review["request"]["userInfo"] = serde_json::json!({
        "username": "system:serviceaccount:argocd:argocd-application-controller",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"],
    });
    Ok(Bytes::from(serde_json::to_vec(&review)?))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// An HTTP receiver on loopback that answers 200 to every request (`hang`: accepts
/// connections and never answers); counts requests.
async fn receiver(hang: bool) -> Result<(SocketAddr, Arc<std::sync::atomic::AtomicU64>), Error> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    let Ok(n) = tcp.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    if hang {
                        continue;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    // One request: headers, then Content-Length bytes of body.
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if pending.len() < end + 4 + len {
                            break;
                        }
                        pending.drain(..end + 4 + len);
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok((addr, count))
}

/// `loadgen sinks` (`make bench-sinks`): refusals of the `kubectl edit` review by driftgate
/// without sinks and by driftgate with three (stdout, OTLP to a receiver that takes everything,
/// a webhook to one that accepts connections and never answers), side by side at 1, 8 and 32
/// connections, with each server's CPU time (all threads) per refusal, a steadier figure than
/// req/s on a shared machine; then `SINKS_SOAK_SECONDS` (default 120) of steady refusals with the dead
/// receiver, sampling RSS, to show memory stays flat while the backlog waits on disk.
async fn sinks(release: &Path, dir: &Path, bundle: &driftgate::certs::CertBundle) -> Result<(), Error> {
    let seconds: u64 = env_or("BENCH_SECONDS", "3").parse()?;
    let pairs: usize = env_or("BENCH_PAIRS", "3").parse()?;
    let soak: u64 = env_or("SINKS_SOAK_SECONDS", "120").parse()?;
    let concurrencies: Vec<usize> =
        env_or("BENCH_CONCURRENCY", "1,8,32").split(',').map(|c| c.trim().parse()).collect::<Result<_, _>>()?;
    let (otlp, otlp_count) = receiver(false).await?;
    let (dead, _) = receiver(true).await?;
    let with_dir = dir.join("with-sinks");
    std::fs::create_dir_all(&with_dir)?;
    for sub in ["policies", "certs"] {
        std::fs::create_dir_all(with_dir.join(sub))?;
        for entry in std::fs::read_dir(dir.join(sub))? {
            let entry = entry?;
            std::fs::copy(entry.path(), with_dir.join(sub).join(entry.file_name()))?;
        }
    }
    let sinks = serde_json::json!([
        {"type": "stdout"},
        {"type": "otlp", "endpoint": format!("http://{otlp}/v1/logs")},
        {"name": "dead-hook", "type": "webhook", "url": format!("http://{dead}/hook"), "timeout_seconds": 10},
    ])
    .to_string();
    // BENCH_SINKS replaces the list (`{otlp}` and `{dead}` stand for the receivers' addresses).
    let sinks = std::env::var("BENCH_SINKS")
        .map(|s| s.replace("{otlp}", &otlp.to_string()).replace("{dead}", &dead.to_string()))
        .unwrap_or(sinks);
    let without = start_driftgate(&release.join("driftgate"), dir, &[])?;
    let with = start_driftgate(&release.join("driftgate"), &with_dir, &[("DRIFTGATE_SINKS", &sinks)])?;
    let edit = Bytes::from(std::fs::read(
        Path::new(FIXTURES).join("virtualservice-update-kubectl-edit-human.validating.json"),
    )?);
    let mix = Arc::new(vec![Request { body: edit, allowed: false }]);
    println!(
        "sinks benchmark: refusals of the kubectl edit review, {seconds} s a run, {pairs} pairs a row; \
         with sinks = stdout + OTLP (receiver takes all) + webhook (receiver never answers)"
    );
    println!(
        "{:>4} | {:>11} {:>8} {:>6} | {:>11} {:>8} {:>6} | {:>8} {:>14}",
        "conc", "none req/s", "p99 ms", "cpu µs", "sinks req/s", "p99 ms", "cpu µs", "median ×", "pairs"
    );
    for &c in &concurrencies {
        let mut ratios = Vec::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut cpu_without, mut cpu_with) = (Vec::new(), Vec::new());
        for pair in 0..pairs {
            let order: [&Server; 2] = if pair % 2 == 0 { [&without, &with] } else { [&with, &without] };
            let mut got = Vec::new();
            for server in order {
                let client = client(bundle.ca_pem.as_bytes(), server.addr, c)?;
                let url = format!("https://localhost:{}/validate", server.addr.port());
                drive(&client, &url, &mix, c, Duration::from_millis(300), true).await;
                let cpu = cpu_seconds(server.child.id());
                let row = drive(&client, &url, &mix, c, Duration::from_secs(seconds), true).await;
                let cpu = cpu_seconds(server.child.id()) - cpu;
                let per_request = cpu * 1e6 / (row.rps * seconds as f64).max(1.0);
                got.push((std::ptr::eq(server, &with), row, per_request));
            }
            let w = got.iter().find(|(is_with, ..)| *is_with).map(|(_, r, _)| r.clone()).unwrap_or_default();
            let n = got.iter().find(|(is_with, ..)| !*is_with).map(|(_, r, _)| r.clone()).unwrap_or_default();
            for (is_with, _, us) in &got {
                if *is_with { cpu_with.push(*us) } else { cpu_without.push(*us) }
            }
            ratios.push(w.rps / n.rps.max(1e-9));
            a.push(n);
            b.push(w);
        }
        let mid = |rows: &mut Vec<Row>| -> Row {
            rows.sort_by(|x, y| x.rps.total_cmp(&y.rps));
            rows[rows.len() / 2].clone()
        };
        let (n, w) = (mid(&mut a), mid(&mut b));
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{c:>4} | {:>11.0} {:>8.3} {:>6.1} | {:>11.0} {:>8.3} {:>6.1} | {:>8.2} {:>14}",
            n.rps,
            n.p99,
            median(&mut cpu_without),
            w.rps,
            w.p99,
            median(&mut cpu_with),
            median(&mut ratios.clone()),
            each.join(" ")
        );
    }
    let pid = with.child.id();
    println!("dead receiver soak: {soak} s of refusals at 4 connections; RSS of driftgate with sinks:");
    let client = client(bundle.ca_pem.as_bytes(), with.addr, 4)?;
    let url = format!("https://localhost:{}/validate", with.addr.port());
    let mut total = 0.0;
    for t in (0..soak).step_by(10) {
        let row = drive(&client, &url, &mix, 4, Duration::from_secs(10.min(soak - t)), true).await;
        total += row.rps * 10.0_f64.min((soak - t) as f64);
        println!("  t={:>4} s  RSS {:>6.1} MiB  refusals so far {:>8.0}", t + 10, current_rss_mib(pid), total);
    }
    let metrics =
        reqwest::get(format!("http://{}/metrics", with.metrics.ok_or("no metrics port")?)).await?.text().await?;
    for line in metrics.lines().filter(|l| l.starts_with("driftgate_sink_")) {
        println!("  {line}");
    }
    println!("  OTLP receiver: {} export requests", otlp_count.load(std::sync::atomic::Ordering::Relaxed));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::args().nth(1).as_deref() == Some("soak") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("policies"))?;
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml"),
            dir.join("policies/default.yaml"),
        )?;
        return soak(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release"), &dir).await;
    }
    let seconds: u64 = env_or("BENCH_SECONDS", "3").parse()?;
    let pairs: usize = env_or("BENCH_PAIRS", "3").parse()?;
    let concurrencies: Vec<usize> =
        env_or("BENCH_CONCURRENCY", "1,8,32").split(',').map(|c| c.trim().parse()).collect::<Result<_, _>>()?;

    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-load");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies"))?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml"),
        dir.join("policies/default.yaml"),
    )?;
    let bundle = driftgate::certs::generate(&driftgate::certs::dev_request())?;
    driftgate::certs::write(&dir.join("certs"), &bundle, true)?;
    if std::env::args().nth(1).as_deref() == Some("sinks") {
        return sinks(&release, &dir, &bundle).await;
    }
    let (sync_p50, sync_p99) = fdatasync_latency(&dir, 400)?;

    let driftgate = start_driftgate(&release.join("driftgate"), &dir, &[])?;
    let plain = start_baseline(&release.join("examples/baseline"), &dir, None)?;
    let durable = start_baseline(&release.join("examples/baseline"), &dir, Some(&dir.join("baseline-journal.jsonl")))?;
    let read = |name: &str| -> Result<Bytes, Error> {
        Ok(Bytes::from(std::fs::read(Path::new(FIXTURES).join(format!("{name}.validating.json")))?))
    };
    let edit = read("virtualservice-update-kubectl-edit-human")?;
    let envoy = read("envoyfilter-update-kubectl-patch-json-human-big")?;
    let workloads: [(&str, Bytes, bool, &Server); 4] = [
        ("refuse edit", edit.clone(), false, &durable),
        ("refuse envoy", envoy.clone(), false, &durable),
        ("allow edit", as_argocd(&edit)?, true, &plain),
        ("allow envoy", as_argocd(&envoy)?, true, &plain),
    ];
    println!(
        "driftgate load benchmark: {} cores, {seconds} s a run, {pairs} pairs a row, HTTP/1.1 keep-alive over TLS",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "reviews: kubectl edit {} KB, EnvoyFilter patch {} KB; fdatasync of 1 KB on this disk: p50 {sync_p50:.3} ms, p99 {sync_p99:.3} ms",
        edit.len() / 1024,
        envoy.len() / 1024
    );
    println!(
        "refusals are compared with the durable baseline (fdatasync before each answer), allowed requests with the plain one"
    );
    println!(
        "{:<13} {:>4} | {:>9} {:>7} {:>7} {:>6} {:>4} | {:<8} {:>9} {:>7} {:>7} {:>6} | {:>8} {:>14}",
        "workload",
        "conc",
        "dg req/s",
        "p50 ms",
        "p99 ms",
        "RSS MB",
        "err",
        "baseline",
        "req/s",
        "p50 ms",
        "p99 ms",
        "RSS MB",
        "median ×",
        "pairs"
    );
    // BENCH_WORKLOADS=refuse runs only the rows whose name contains it.
    let only = env_or("BENCH_WORKLOADS", "");
    for (name, body, allowed, baseline) in workloads.iter().filter(|w| w.0.contains(&only)) {
        let mix = Arc::new(vec![Request { body: body.clone(), allowed: *allowed }]);
        for &c in &concurrencies {
            let mut ratios = Vec::new();
            let mut rows: (Vec<Row>, Vec<Row>) = (Vec::new(), Vec::new());
            let mut inside = Inside::default();
            for pair in 0..pairs {
                let order: [&Server; 2] = if pair % 2 == 0 { [&driftgate, baseline] } else { [baseline, &driftgate] };
                let mut got: Vec<(bool, Row)> = Vec::new();
                for server in order {
                    let client = client(bundle.ca_pem.as_bytes(), server.addr, c)?;
                    let url = format!("https://localhost:{}/validate", server.addr.port());
                    let check = server.name == "driftgate";
                    drive(&client, &url, &mix, c, Duration::from_millis(300), check).await; // warm-up
                    reset_peak(server.child.id());
                    let before = Inside::read(server).await;
                    let mut row = drive(&client, &url, &mix, c, Duration::from_secs(seconds), check).await;
                    row.rss = peak_rss_mib(server.child.id());
                    inside.add(&Inside::read(server).await, &before);
                    got.push((check, row));
                }
                let d = got.iter().find(|(is_dg, _)| *is_dg).map(|(_, r)| r.clone()).unwrap_or_default();
                let b = got.iter().find(|(is_dg, _)| !*is_dg).map(|(_, r)| r.clone()).unwrap_or_default();
                ratios.push(d.rps / b.rps.max(1e-9));
                rows.0.push(d);
                rows.1.push(b);
            }
            let mid = |rows: &[Row]| -> Row {
                let mut by_rps: Vec<&Row> = rows.iter().collect();
                by_rps.sort_by(|a, b| a.rps.total_cmp(&b.rps));
                by_rps[by_rps.len() / 2].clone()
            };
            let (d, b) = (mid(&rows.0), mid(&rows.1));
            let errors: u64 = rows.0.iter().map(|r| r.errors).sum();
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            println!(
                "{:<13} {:>4} | {:>9.0} {:>7.3} {:>7.3} {:>6.1} {:>4} | {:<8} {:>9.0} {:>7.3} {:>7.3} {:>6.1} | {:>8.2} {:>14}",
                name,
                c,
                d.rps,
                d.p50,
                d.p99,
                d.rss,
                errors,
                if baseline.name == "baseline" { "plain" } else { "durable" },
                b.rps,
                b.p50,
                b.p99,
                b.rss,
                median(&mut ratios.clone()),
                each.join(" ")
            );
            if !allowed {
                println!("{:<18} | {}", "", inside.describe());
            }
        }
    }
    let journal = journal_lines(&dir);
    println!("journal: {journal} drift events written durably during the run");
    Ok(())
}
