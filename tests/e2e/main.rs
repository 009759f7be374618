//! The end-to-end suite: driftgate between a real kube-apiserver v1.32 and real kubectl.
//!
//! One control plane (etcd, kube-apiserver, kube-controller-manager) for the whole binary,
//! started from the harness binaries (`$KUBE_HARNESS/bin`, or the default folder under the
//! user's cache; README "End-to-end tests"); each scenario runs its own driftgate, registered
//! with `driftgate register --url`, and works in namespaces of its own. Scenarios run one at a
//! time. Without the binaries the suite prints one SKIPPED line and passes, unless
//! `DRIFTGATE_E2E_REQUIRED=1` (`make e2e`) asks for it to fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod objects;
mod scenarios;
mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use libtest_mimic::{Arguments, Trial};

use support::Cluster;

/// What every scenario gets: the shared control plane.
pub struct Env {
    pub cluster: Cluster,
}

/// A scenario: a name that reads as behaviour, and its body.
pub type Scenario = (&'static str, fn(&Env));

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    let required = std::env::var("DRIFTGATE_E2E_REQUIRED").is_ok_and(|v| v == "1");
    let bins = match support::binaries() {
        Ok(bins) => bins,
        Err(why) => {
            if required {
                eprintln!("e2e: FAILED ({why}; {}; DRIFTGATE_E2E_REQUIRED=1)", support::SKIP_HINT);
                return ExitCode::FAILURE;
            }
            println!("e2e: SKIPPED ({why}; {})", support::SKIP_HINT);
            return ExitCode::SUCCESS;
        }
    };
    if args.list {
        let trials: Vec<Trial> = scenarios::all().into_iter().map(|(name, _)| Trial::test(name, || Ok(()))).collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    // One control plane: scenarios take turns.
    args.test_threads = Some(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    support::process::reap_leftovers();
    let dir = support::run_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let cluster = Cluster::start(&bins, &dir);
    println!(
        "e2e: control plane up in {:.1} s at {} (files in {}; controller-manager: {})",
        started.elapsed().as_secs_f64(),
        cluster.server,
        dir.display(),
        if cluster.has_controller_manager { "yes" } else { "no" }
    );
    let env = Arc::new(Env { cluster });
    let trials = scenarios::all()
        .into_iter()
        .map(|(name, body)| {
            let env = env.clone();
            Trial::test(name, move || {
                let began = Instant::now();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&env)));
                let took = began.elapsed().as_secs_f64();
                match result {
                    Ok(()) => {
                        println!("e2e: {name}: {took:.1} s");
                        Ok(())
                    }
                    Err(panic) => {
                        let msg = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Err(format!("{msg}\n{}", env.cluster.log_tails()).into())
                    }
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    println!("e2e: {:.1} s in all", started.elapsed().as_secs_f64());
    // The last handle: dropping it stops the control plane.
    drop(env);
    conclusion.exit_code()
}
