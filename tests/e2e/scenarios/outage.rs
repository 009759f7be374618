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

/// The tamper guard of `driftgate manifests`: even the cluster's admin cannot change or delete
/// driftgate's webhook configuration, the GitOps identity can; `driftgate unregister` run by
/// anyone else is refused with the guard's message.
pub fn the_tamper_guard_keeps_people_even_admins_from_removing_driftgate(env: &Env) {
    let c = &env.cluster;
    let dg = Driftgate::start(c, "guard", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    let ca = dg.certs.join("ca.crt").display().to_string();
    let policies = dg.policies.display().to_string();
    let out = dg.cli(&["manifests", "--ca-bundle", &ca, "--policies", &policies]);
    assert!(out.ok(), "{out:?}");
    let guard: Vec<&str> =
        out.stdout.split("\n---\n").filter(|d| d.contains("kind: ValidatingAdmissionPolicy")).collect();
    assert_eq!(guard.len(), 2, "the policy and its binding");
    c.admin().apply(&guard.join("\n---\n"), &[]);

    // The admin (system:masters) is refused, once the kube-apiserver has the policy.
    let refused = |out: &crate::support::Out| out.code != 0 && out.stderr.contains("driftgate tamper guard");
    let probe = ["label", "validatingwebhookconfiguration", "driftgate", "probe=1", "--dry-run=server"];
    assert!(
        eventually(Duration::from_secs(20), || refused(&c.admin().run(&probe))),
        "the guard takes effect: {:?}; {:?}",
        c.admin().run(&probe),
        c.admin().run(&["get", "validatingadmissionpolicy", "driftgate-tamper-guard", "-o", "yaml"])
    );
    let out = c.admin().run(&["delete", "validatingwebhookconfiguration", "driftgate"]);
    assert!(refused(&out), "{out:?}");
    assert!(
        out.stderr.contains("validatingwebhookconfigurations driftgate is part of driftgate's install"),
        "{}",
        out.stderr
    );
    println!(
        "e2e: tamper guard: kubectl delete validatingwebhookconfiguration driftgate (as admin) said: {}",
        out.stderr.trim()
    );
    let out = c.admin().run(&["-n", "driftgate", "delete", "configmap", "driftgate-policies", "--dry-run=server"]);
    assert!(refused(&out) || out.stderr.contains("not found"), "{out:?}");
    let out = dg.unregister();
    assert!(!out.ok() && out.stderr.contains("driftgate tamper guard"), "unregister as the admin: {out:?}");
    assert!(
        out.stderr.contains("driftgate's tamper guard refuses it for kubernetes-admin")
            && out.stderr.contains("Run `driftgate unregister` as the GitOps identity"),
        "unregister explains: {}",
        out.stderr
    );
    println!("e2e: tamper guard: driftgate unregister (as admin) said: {}", out.stderr.trim());

    // cert-manager's CA injector may rotate the caBundle, and change nothing else.
    let injector = crate::support::Identity::person("system:serviceaccount:cert-manager:cert-manager-cainjector", &[]);
    let bundle = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, std::fs::read(&ca).unwrap());
    let rotate = format!(r#"[{{"op":"replace","path":"/webhooks/0/clientConfig/caBundle","value":"{bundle}"}}]"#);
    let out = c.kubectl(injector.clone()).run(&[
        "patch",
        "validatingwebhookconfiguration",
        "driftgate",
        "--type=json",
        "-p",
        &rotate,
    ]);
    assert!(out.ok(), "the CA injector rotates the caBundle: {out:?}");
    let loosen = r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]"#;
    let out =
        c.kubectl(injector).run(&["patch", "validatingwebhookconfiguration", "driftgate", "--type=json", "-p", loosen]);
    assert!(refused(&out), "and nothing else: {out:?}");

    // The GitOps identity may: `driftgate unregister` run as it removes both configurations.
    let out = dg.cli(&["unregister", "--as", crate::support::kubectl::ARGOCD]);
    assert!(out.ok(), "unregister as the GitOps identity: {out:?}");
    println!(
        "e2e: tamper guard: driftgate unregister --as {}:\n{}",
        crate::support::kubectl::ARGOCD,
        out.stdout.trim_end()
    );
    assert!(c.get_json(&["validatingwebhookconfiguration", "driftgate"]).is_none());
    assert!(c.get_json(&["mutatingwebhookconfiguration", "driftgate"]).is_none());
    // The guard itself is guarded by RBAC only: the admin removes it.
    c.admin().ok(&["delete", "validatingadmissionpolicybinding", "driftgate-tamper-guard"]);
    c.admin().ok(&["delete", "validatingadmissionpolicy", "driftgate-tamper-guard"]);
}
