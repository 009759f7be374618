//! `make bench-apiserver`: what admission adds to a write through a real kube-apiserver v1.32.
//!
//! N (default 300, `BENCH_N`) sequential PUTs of a VirtualService through the kube-apiserver of
//! the end-to-end harness, side by side in one run, in rounds so that drift of the machine
//! spreads over every setup:
//!   none       no admission webhook or policy at all (a person's PUT goes through)
//!   vap        an in-process ValidatingAdmissionPolicy refuses the person (the reference peer)
//!   driftgate  driftgate refuses the person (journal fsync included)
//!   gitops     driftgate registered, Argo CD writes (matchConditions keep it in the apiserver)
//! Prints the median and p99 of each, and their ratio to `none`. The driftgate binary is
//! `target/release/driftgate`, or `DRIFTGATE_BIN` to measure another build (with its own policy
//! file in `BENCH_POLICY`, when it reads the shipped one differently).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/e2e/objects.rs"]
mod objects;
#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use support::driftgate::DEFAULT_POLICY;
use support::kubectl::{ALICE, ARGOCD, DEVS};
use support::{Cluster, Driftgate};

const NS: &str = "bench";
const ROUNDS: usize = 3;

const VAP: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: bench-gitops-only}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [networking.istio.io]
      apiVersions: ["*"]
      operations: [CREATE, UPDATE, DELETE]
      resources: ["*"]
  validations:
  - expression: "request.userInfo.username in ['system:serviceaccount:argocd:argocd-application-controller', 'system:serviceaccount:flux-system:kustomize-controller']"
    message: only GitOps may change mesh configuration
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: bench-gitops-only}
spec:
  policyName: bench-gitops-only
  validationActions: [Deny]
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    None,
    Vap,
    Driftgate,
    Gitops,
}

impl Setup {
    const ALL: [Setup; 4] = [Setup::None, Setup::Vap, Setup::Driftgate, Setup::Gitops];

    fn label(self) -> &'static str {
        match self {
            Setup::None => "no admission (a person's PUT)",
            Setup::Vap => "ValidatingAdmissionPolicy refuses the person",
            Setup::Driftgate => "driftgate refuses the person",
            Setup::Gitops => "driftgate registered, Argo CD writes",
        }
    }

    /// Who refuses the measured PUT (a word of the refusal), if anyone.
    fn refuser(self) -> Option<&'static str> {
        match self {
            Setup::Vap => Some("ValidatingAdmissionPolicy"),
            Setup::Driftgate => Some("driftgate:"),
            Setup::None | Setup::Gitops => None,
        }
    }

    /// Who refuses a person's PUT under this setup (to tell that it is in place).
    fn person_refuser(self) -> Option<&'static str> {
        match self {
            Setup::None => None,
            Setup::Vap => Some("ValidatingAdmissionPolicy"),
            Setup::Driftgate | Setup::Gitops => Some("driftgate:"),
        }
    }
}

/// A kube client that impersonates `user` in `groups`, from the cluster's admin kubeconfig.
async fn client_as(cluster: &Cluster, user: &str, groups: &[&str]) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await.unwrap();
    config.auth_info.impersonate = Some(user.to_owned());
    if !groups.is_empty() {
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    kube::Client::try_from(config).unwrap()
}

fn virtual_services(client: kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "networking.istio.io".into(),
        version: "v1".into(),
        api_version: "networking.istio.io/v1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    };
    Api::namespaced_with(client, NS, &resource)
}

/// One PUT of the object with route weights `w`/`100-w` (another weight if it has that one
/// already: every PUT is a change); its latency and, when it was refused, the message.
async fn put(api: &Api<DynamicObject>, w: i64) -> (Duration, Option<String>) {
    let mut vs = api.get("reviews").await.unwrap();
    let w = if vs.data["spec"]["http"][1]["route"][0]["weight"] == w { 100 - w - 1 } else { w };
    vs.data["spec"]["http"][1]["route"][0]["weight"] = w.into();
    vs.data["spec"]["http"][1]["route"][1]["weight"] = (100 - w).into();
    let started = Instant::now();
    let result = api.replace("reviews", &PostParams::default(), &vs).await;
    let took = started.elapsed();
    match result {
        Ok(_) => (took, None),
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => (took, Some(status.message)),
        Err(e) => panic!("PUT failed: {e}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bins = match support::binaries() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("bench-apiserver: needs the harness binaries: {why}; {}", support::SKIP_HINT);
            std::process::exit(1);
        }
    };
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    support::process::reap_leftovers();
    let dir = support::target_tmp().join("bench-apiserver");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = Cluster::start(&bins, &dir);
    cluster.namespace(NS);
    cluster.argocd().apply(&objects::virtual_service(NS, "reviews", ""), &[]);
    let policy = match std::env::var_os("BENCH_POLICY") {
        Some(path) => std::fs::read_to_string(path).unwrap(),
        None => DEFAULT_POLICY.to_owned(),
    };
    // Every refusal journaled one by one: 900 refusals from one kube-apiserver in a minute are
    // over the per-source rate limit, whose events would be summarised instead.
    let settings = dir.join("driftgate-settings.yaml");
    std::fs::write(&settings, "rate_limit_per_source: 0\n").unwrap();
    let settings = settings.display().to_string();
    let mut dg = Driftgate::start(&cluster, "driftgate", &[("default.yaml", &policy)], &["--config", &settings]);
    dg.wait_effective(&cluster);
    let _ = dg.unregister();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let person = runtime.block_on(async { virtual_services(client_as(&cluster, ALICE, &[DEVS]).await) });
    let argocd = runtime.block_on(async { virtual_services(client_as(&cluster, ARGOCD, &[]).await) });
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); Setup::ALL.len()];
    let per_round = n.div_ceil(ROUNDS);
    for _ in 0..ROUNDS {
        for (i, setup) in Setup::ALL.into_iter().enumerate() {
            // Put exactly this setup's admission in place, and wait until the apiserver acts on it.
            match setup {
                Setup::None | Setup::Vap => {
                    let _ = dg.unregister();
                }
                Setup::Driftgate | Setup::Gitops => {
                    let out = dg.register();
                    assert!(out.ok(), "{out:?}");
                }
            }
            if setup == Setup::Vap {
                cluster.admin().apply(VAP, &[]);
            } else {
                cluster.admin().ok(&[
                    "delete",
                    "validatingadmissionpolicybinding,validatingadmissionpolicy",
                    "bench-gitops-only",
                    "--ignore-not-found",
                ]);
            }
            let api = if setup == Setup::Gitops { &argocd } else { &person };
            let refused_by = |message: &Option<String>, word: Option<&str>| match (message, word) {
                (None, None) => true,
                (Some(m), Some(w)) => m.contains(w),
                _ => false,
            };
            let mut last = None;
            let in_place = support::eventually(Duration::from_secs(60), || {
                let (_, message) = runtime.block_on(put(&person, 50));
                let ok = refused_by(&message, setup.person_refuser());
                last = message;
                ok
            });
            assert!(in_place, "{} did not take effect; a person's PUT got {last:?}", setup.label());
            // Warm the connection, then measure.
            runtime.block_on(put(api, 40));
            for k in 0..per_round {
                let (took, message) = runtime.block_on(put(api, 10 + (k as i64 % 80)));
                assert!(refused_by(&message, setup.refuser()), "{}: unexpected answer {message:?}", setup.label());
                samples[i].push(took);
            }
        }
    }
    let _ = dg.unregister();
    dg.stop();

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "bench-apiserver: {} sequential PUTs of a VirtualService per setup, {ROUNDS} rounds; {cores} cores, {cpu}",
        per_round * ROUNDS
    );
    println!("{:<46} {:>10} {:>10} {:>12} {:>10}", "setup", "median ms", "p99 ms", "median ×", "p99 ×");
    let stats: Vec<(f64, f64)> = samples
        .iter_mut()
        .map(|s| {
            s.sort();
            (percentile(s, 0.5), percentile(s, 0.99))
        })
        .collect();
    let (base_median, base_p99) = stats[0];
    for (setup, (median, p99)) in Setup::ALL.into_iter().zip(&stats) {
        println!(
            "{:<46} {:>10.3} {:>10.3} {:>12.2} {:>10.2}",
            setup.label(),
            median,
            p99,
            median / base_median,
            p99 / base_p99
        );
    }
    println!("journal: {} drift events (the refused PUTs and the probes)", dg.journal().len());
}
