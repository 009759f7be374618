//! driftgate down: people are refused by the kube-apiserver itself (failurePolicy Fail), GitOps
//! keeps writing (matchConditions), break-glass members get through (their entry fails open),
//! kube-system is never blocked; `driftgate unregister` removes the configurations.

use std::time::Duration;

use crate::Env;
use crate::objects::{flux_virtual_service, virtual_service, weights};
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::kubectl::{ALICE, BREAK_GLASS, DEVS};
use crate::support::{Driftgate, eventually};

pub fn with_driftgate_down_people_are_refused_and_gitops_break_glass_and_kube_system_are_not(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-outage";
    c.namespace(ns);
    let mut dg = Driftgate::start(c, "outage", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);
    dg.stop();

    let patch = r#"{"metadata":{"labels":{"team":"checkout"}}}"#;
    let out = c.alice().run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=merge", "-p", patch]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Internal error occurred: failed calling webhook \"mesh-gitops.validate.driftgate.dev\""),
        "{}",
        out.stderr
    );

    // A break-glass member's emergency change goes through: their own entry fails open (the
    // kube-apiserver's audit log is then the only record).
    let oncall = crate::support::Identity::person(ALICE, &[DEVS, BREAK_GLASS]);
    let incident = r#"{"metadata":{"labels":{"incident":"inc-4711"}}}"#;
    let out = c.kubectl(oncall).run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=merge", "-p", incident]);
    assert!(out.ok(), "break-glass through an outage: {out:?}");
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(vs["metadata"]["labels"]["incident"], "inc-4711");

    // Argo CD and Flux never reach the webhook.
    let changed =
        virtual_service(ns, "reviews", "").replace("weight: 90", "weight: 80").replace("weight: 10", "weight: 20");
    c.argocd().apply(&changed, &[]);
    c.flux()
        .apply(&flux_virtual_service(ns, "ratings", 50), &["--server-side", "--field-manager=kustomize-controller"]);
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(weights(&vs), (80, 20));
    assert!(c.get_json(&["-n", ns, "virtualservice", "ratings"]).is_some());

    // kube-system is never sent to driftgate.
    c.alice().apply(&flux_virtual_service("kube-system", "e2e-outage", 50), &[]);
    c.admin().ok(&["-n", "kube-system", "delete", "virtualservice", "e2e-outage"]);

    let out = dg.unregister();
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("validatingwebhookconfiguration.admissionregistration.k8s.io/driftgate deleted"),
        "{}",
        out.stdout
    );
    assert!(c.get_json(&["validatingwebhookconfiguration", "driftgate"]).is_none());
    assert!(c.get_json(&["mutatingwebhookconfiguration", "driftgate"]).is_none());
    // With the configurations gone, the apiserver stops calling: the person's change lands.
    assert!(eventually(Duration::from_secs(10), || {
        c.alice().run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=merge", "-p", patch]).ok()
    }));
    let out = dg.unregister();
    assert!(out.ok() && out.stdout.contains("not found"), "unregister twice is fine: {out:?}");
}
