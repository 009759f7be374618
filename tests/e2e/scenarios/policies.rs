//! Policies as a cluster sees them: two policies over one object, Kubernetes Events for a
//! refusal, a policy reload while the kube-apiserver keeps sending requests, and protected
//! namespaces.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::Env;
use crate::objects::virtual_service;
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::kubectl::ALICE;
use crate::support::{Cluster, Driftgate, eventually, wait_for};

/// A second policy over VirtualServices in `ns` only.
fn overlapping_policy(ns: &str) -> String {
    format!(
        r#"apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata:
  name: team-routes
spec:
  resources:
    - group: networking.istio.io
      kinds: [VirtualService]
  namespaces:
    include: [{ns}]
  gitops:
    serviceAccounts: [argocd/argocd-application-controller]
"#
    )
}

/// The `DriftBlocked` Events (events.k8s.io) in `ns`.
fn drift_events(c: &Cluster, ns: &str, reason: &str) -> Vec<Value> {
    let list = c.get_json(&["events.v1.events.k8s.io", "-n", ns]).unwrap();
    list["items"].as_array().unwrap().iter().filter(|e| e["reason"] == reason).cloned().collect()
}

pub fn two_policies_over_one_object_give_one_journal_line_each_and_one_event(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-overlap";
    c.namespace(ns);
    let second = overlapping_policy(ns);
    let dg = Driftgate::start(c, "overlap", &[("default.yaml", DEFAULT_POLICY), ("team.yaml", &second)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);
    let out = c.alice().run(&["-n", ns, "label", "virtualservice", "reviews", "team=checkout"]);
    assert_eq!(out.code, 1, "{out:?}");
    let events = dg.events_in(ns);
    let mut policies: Vec<&str> = events.iter().map(|e| e["policy"].as_str().unwrap()).collect();
    policies.sort_unstable();
    assert_eq!(policies, ["mesh-gitops", "team-routes"], "one journal line per policy: {events:#?}");
    // One attempt, one Event (on the object, counted once).
    let found = wait_for("the DriftBlocked Event", Duration::from_secs(20), || {
        let found = drift_events(c, ns, "DriftBlocked");
        (!found.is_empty()).then_some(found)
    });
    std::thread::sleep(Duration::from_secs(2));
    let found_later = drift_events(c, ns, "DriftBlocked");
    assert_eq!(found_later.len(), 1, "{found:#?}");
    assert!(found_later[0]["series"].is_null(), "one attempt is counted once: {:#}", found_later[0]);
}

pub fn a_refusal_becomes_a_kubernetes_event_with_a_kubeconfig(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-events";
    c.namespace(ns);
    let dg = Driftgate::start(c, "events", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    let said =
        dg.logs().into_iter().find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("Kubernetes Events")));
    let said = said.expect("a start-up line says whether Events are on");
    assert_eq!(said["message"], "Kubernetes Events on", "{said}");
    assert_eq!(said["cluster"], c.server.as_str(), "{said}");

    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);
    let out = c.alice().run(&["-n", ns, "annotate", "virtualservice", "reviews", "example.com/note=hi"]);
    assert_eq!(out.code, 1);
    let event = wait_for("the DriftBlocked Event", Duration::from_secs(20), || {
        drift_events(c, ns, "DriftBlocked").into_iter().next()
    });
    let journal = dg.events_in(ns);
    assert_eq!(event["note"], journal[0]["message"]);
    assert_eq!(event["regarding"]["name"], "reviews");
    assert_eq!(event["type"], "Warning");
    // kubectl describe lists it on the object.
    let described = c.admin().ok(&["-n", ns, "describe", "virtualservice", "reviews"]);
    assert!(described.contains("DriftBlocked"), "{described}");
}

pub fn a_policy_reload_while_the_apiserver_sends_requests_loses_no_answer(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-reload";
    c.namespace(ns);
    let dg = Driftgate::start(c, "reload", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = std::thread::scope(|s| {
        let stop2 = stop.clone();
        let worker = s.spawn(move || {
            let mut outcomes = Vec::new();
            let mut n = 0;
            while !stop2.load(Ordering::Relaxed) {
                n += 1;
                let label = format!("attempt={n}");
                let out = c.alice().run(&["-n", ns, "label", "--overwrite", "virtualservice", "reviews", &label]);
                outcomes.push(out);
            }
            outcomes
        });
        std::thread::sleep(Duration::from_secs(2));
        dg.set_policies(&[("default.yaml", &DEFAULT_POLICY.replace("mode: enforce", "mode: warn"))]);
        // Past the reload, at least one change goes through with a warning.
        assert!(eventually(Duration::from_secs(20), || { dg.events_in(ns).iter().any(|e| e["decision"] == "warned") }));
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap()
    });
    let refused =
        outcomes.iter().filter(|o| o.code == 1 && o.stderr.contains("denied the request: driftgate:")).count();
    let warned = outcomes.iter().filter(|o| o.ok() && o.stderr.contains("Warning: driftgate:")).count();
    assert_eq!(refused + warned, outcomes.len(), "every answer is driftgate's: {outcomes:#?}");
    assert!(refused > 0 && warned > 0, "{refused} refused, {warned} warned");
    let journal = dg.events_in(ns);
    assert_eq!(journal.len(), outcomes.len(), "one journal line per attempt");
}

/// A namespace tracked by the Argo CD application `platform`.
fn tracked_namespace(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    app.kubernetes.io/instance: platform\n  annotations:\n    argocd.argoproj.io/tracking-id: platform:/Namespace:/{name}\n"
    )
}

pub fn deleting_a_tracked_namespace_is_refused_for_a_person_and_allowed_for_argocd(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-tracked-ns";
    let dg = Driftgate::start(c, "tracked-ns", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&tracked_namespace(ns), &[]);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    let out = c.alice().run(&["delete", "namespace", ns, "--wait=false"]);
    assert_eq!(out.code, 1, "{out:?}");
    let events = dg.events_in(ns);
    assert_eq!(events.len(), 1, "{events:#?}");
    let id = events[0]["id"].as_str().unwrap();
    let message = format!(
        "driftgate: Namespace {ns} is managed by GitOps (Argo CD app platform); direct changes by {ALICE} are not allowed — change it in Git. Attempted: delete. Drift event {id}."
    );
    assert!(out.stderr.contains(&message), "kubectl said:\n{}\nexpected:\n{message}", out.stderr);
    assert!(c.get_json(&["namespace", ns]).unwrap()["metadata"].get("deletionTimestamp").is_none());

    // An untracked namespace stays anyone's to delete (README: what remains unprotected).
    c.namespace("e2e-untracked-ns");
    c.alice().ok(&["delete", "namespace", "e2e-untracked-ns", "--wait=false"]);

    c.argocd().ok(&["delete", "namespace", ns, "--wait=false"]);
    if c.has_controller_manager {
        assert!(eventually(Duration::from_secs(60), || c.get_json(&["namespace", ns]).is_none()), "{ns} is gone");
    }
    assert_eq!(dg.events_in(ns).len(), 1);
}
