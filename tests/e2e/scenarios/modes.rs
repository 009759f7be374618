//! The other answers: warn mode, repair mode and break-glass, as kubectl shows them.

use super::people::weight_editor;
use crate::Env;
use crate::objects::{virtual_service, weights};
use crate::support::Driftgate;
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::kubectl::{ALICE, BREAK_GLASS, DEVS};

const WEIGHTS_CHANGED: &str = "/spec/http/1/route/0/weight (90 → 70), /spec/http/1/route/1/weight (10 → 30).";

pub fn warn_mode_lets_the_edit_through_and_kubectl_prints_the_warning(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-warn";
    c.namespace(ns);
    let policy = DEFAULT_POLICY.replace("mode: enforce", "mode: warn");
    let dg = Driftgate::start(c, "warn", &[("default.yaml", &policy)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    let editor = weight_editor(c, "warn", false);
    let out = c.alice().env("KUBE_EDITOR", &editor).run(&["-n", ns, "edit", "virtualservice", "reviews"]);
    assert!(out.ok(), "{out:?}");
    let events = dg.events_in(ns);
    assert_eq!(events.len(), 1, "{events:#?}");
    let id = events[0]["id"].as_str().unwrap();
    let warning = format!(
        "Warning: driftgate: VirtualService {ns}/reviews is managed by GitOps (Argo CD app mesh-config); this direct change by {ALICE} bypasses Git and is recorded as drift — change it in Git. Changed: {WEIGHTS_CHANGED} Drift event {id}."
    );
    assert!(out.stderr.contains(&warning), "kubectl said:\n{}\nexpected:\n{warning}", out.stderr);
    assert!(out.stdout.contains("virtualservice.networking.istio.io/reviews edited"), "{}", out.stdout);
    assert_eq!(events[0]["decision"], "warned");
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(weights(&vs), (70, 30), "warn mode lets the change land");
}

pub fn repair_mode_restores_protected_fields_and_keeps_exempt_paths(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-repair";
    c.namespace(ns);
    let policy = DEFAULT_POLICY.replace("mode: enforce", "mode: repair").replace(
        "  breakGlass:",
        "  exemptions:\n    - name: notes\n      groups: [devs]\n      paths: [/metadata/annotations/example.com~1note]\n  breakGlass:",
    );
    let dg = Driftgate::start(c, "repair", &[("default.yaml", &policy)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    let editor = weight_editor(c, "repair", true);
    let out = c.alice().env("KUBE_EDITOR", &editor).run(&["-n", ns, "edit", "virtualservice", "reviews"]);
    assert!(out.ok(), "{out:?}");
    let events = dg.events_in(ns);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["decision"], "repaired");
    let id = events[0]["id"].as_str().unwrap();
    let warning = format!(
        "Warning: driftgate: VirtualService {ns}/reviews is managed by GitOps (Argo CD app mesh-config); the protected fields changed by {ALICE} were restored — change it in Git. Reverted: {WEIGHTS_CHANGED} Drift event {id}."
    );
    assert!(out.stderr.contains(&warning), "kubectl said:\n{}\nexpected:\n{warning}", out.stderr);
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(weights(&vs), (90, 10), "the protected fields are restored");
    assert_eq!(vs["metadata"]["annotations"]["example.com/note"], "tuning", "the exempt path is kept");
}

pub fn break_glass_members_get_through_with_a_warning_and_a_record(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-break-glass";
    c.namespace(ns);
    let dg = Driftgate::start(c, "break-glass", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    let oncall = crate::support::Identity::person(ALICE, &[DEVS, BREAK_GLASS]);
    let editor = weight_editor(c, "break-glass", false);
    let out = c.kubectl(oncall).env("KUBE_EDITOR", &editor).run(&["-n", ns, "edit", "virtualservice", "reviews"]);
    assert!(out.ok(), "{out:?}");
    let events = dg.events_in(ns);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["decision"], "break-glass");
    let id = events[0]["id"].as_str().unwrap();
    let warning = format!(
        "Warning: driftgate: break-glass change to VirtualService {ns}/reviews by {ALICE} (break-glass:group {BREAK_GLASS}) is let through and recorded — bring Git in line. Changed: {WEIGHTS_CHANGED} Drift event {id}."
    );
    assert!(out.stderr.contains(&warning), "kubectl said:\n{}\nexpected:\n{warning}", out.stderr);
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(weights(&vs), (70, 30));
}
