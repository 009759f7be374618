//! Argo CD and Flux write protected objects: create, apply, server-side apply and prune all go
//! through, nothing is journaled, and with the generated configurations none of it even reaches
//! driftgate (matchConditions; no mutating webhook unless a policy needs one).

use crate::Env;
use crate::objects::{flux_virtual_service, virtual_service, weights};
use crate::support::Driftgate;
use crate::support::driftgate::DEFAULT_POLICY;

pub fn argocd_and_flux_create_apply_and_prune_without_a_webhook_call(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-gitops";
    c.namespace(ns);
    let dg = Driftgate::start(c, "gitops", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    let calls = || dg.metric("driftgate_admission_requests_total", &[]);
    let before = calls();

    // Argo CD: client-side apply (create, then change), server-side apply, prune.
    let vs = virtual_service(ns, "reviews", "");
    c.argocd().apply(&vs, &[]);
    let changed = vs.replace("weight: 90", "weight: 75").replace("weight: 10", "weight: 25");
    c.argocd().apply(&changed, &[]);
    assert_eq!(weights(&c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap()), (75, 25));
    let ssa = vs.replace("name: reviews\n", "name: reviews-ssa\n");
    c.argocd().apply(&ssa, &["--server-side", "--field-manager=argocd-controller"]);
    c.argocd().apply(
        &ssa.replace("weight: 90", "weight: 60").replace("weight: 10", "weight: 40"),
        &["--server-side", "--field-manager=argocd-controller"],
    );
    c.argocd().ok(&["-n", ns, "delete", "virtualservice", "reviews-ssa"]);

    // Flux: server-side apply (create, change, no-op re-apply) and prune.
    let flux_args = ["--server-side", "--field-manager=kustomize-controller"];
    c.flux().apply(&flux_virtual_service(ns, "ratings", 50), &flux_args);
    c.flux().apply(&flux_virtual_service(ns, "ratings", 80), &flux_args);
    c.flux().apply(&flux_virtual_service(ns, "ratings", 80), &flux_args);
    let ratings = c.get_json(&["-n", ns, "virtualservice", "ratings"]).unwrap();
    assert_eq!(ratings["spec"]["http"][0]["route"][0]["weight"], 80);
    c.flux().ok(&["-n", ns, "delete", "virtualservice", "ratings"]);
    assert!(c.get_json(&["-n", ns, "virtualservice", "ratings"]).is_none());

    assert!(dg.events_in(ns).is_empty(), "GitOps writes are no drift: {:#?}", dg.events_in(ns));
    assert_eq!(calls(), before, "no GitOps write reached driftgate");
}
