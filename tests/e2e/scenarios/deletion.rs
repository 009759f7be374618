//! Deletions finish: foreground, background and orphan deletion by Argo CD (the garbage
//! collector then removes its finalizer, and orphans dependents by rewriting their
//! ownerReferences), objects the garbage collector removes because their owner went, and
//! namespaces deleted with protected objects in them.

use std::time::Duration;

use serde_json::Value;

use crate::Env;
use crate::objects::{deployment, destination_rule, virtual_service};
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::{Cluster, Driftgate, eventually};

const GONE_WITHIN: Duration = Duration::from_secs(60);

/// `ownerReferences` metadata (indented for [`virtual_service`]'s extra metadata) naming `owner`.
fn owned_by(owner: &Value, controller: bool) -> String {
    format!(
        "  ownerReferences:\n  - apiVersion: {}\n    kind: {}\n    name: {}\n    uid: {}\n    controller: {controller}\n    blockOwnerDeletion: true\n",
        owner["apiVersion"].as_str().unwrap(),
        owner["kind"].as_str().unwrap(),
        owner["metadata"]["name"].as_str().unwrap(),
        owner["metadata"]["uid"].as_str().unwrap(),
    )
}

fn wait_gone(c: &Cluster, args: &[&str]) {
    assert!(
        eventually(GONE_WITHIN, || c.get_json(args).is_none()),
        "{args:?} is still there after {GONE_WITHIN:?}: {:#}",
        c.get_json(args).map(|v| v["metadata"].clone()).unwrap_or_default()
    );
}

fn require_controller_manager(c: &Cluster) {
    assert!(c.has_controller_manager, "deletions need the garbage collector: build kube-controller-manager too");
}

pub fn argocd_foreground_background_and_orphan_deletions_finish(env: &Env) {
    let c = &env.cluster;
    require_controller_manager(c);
    let ns = "e2e-deletion";
    c.namespace(ns);
    let dg = Driftgate::start(c, "deletion", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    for cascade in ["foreground", "background", "orphan"] {
        let owner_name = format!("reviews-{cascade}");
        c.argocd().apply(&virtual_service(ns, &owner_name, ""), &[]);
        let owner = c.get_json(&["-n", ns, "virtualservice", &owner_name]).unwrap();
        // A dependent: a DestinationRule the VirtualService owns.
        let dependent = destination_rule(ns, &owner_name)
            .replace("  annotations:\n", &format!("{}  annotations:\n", owned_by(&owner, true)));
        c.argocd().apply(&dependent, &[]);
        c.argocd().ok(&[
            "-n",
            ns,
            "delete",
            "virtualservice",
            &owner_name,
            &format!("--cascade={cascade}"),
            "--wait=false",
        ]);
        wait_gone(c, &["-n", ns, "virtualservice", &owner_name]);
        match cascade {
            "orphan" => {
                let dr = c.get_json(&["-n", ns, "destinationrule", &owner_name]).expect("the orphan stays");
                assert!(dr["metadata"].get("ownerReferences").is_none(), "orphaned: {:#}", dr["metadata"]);
            }
            _ => wait_gone(c, &["-n", ns, "destinationrule", &owner_name]),
        }
    }
    assert_eq!(dg.events_in(ns), Vec::<Value>::new(), "finishing a deletion is no drift");
}

pub fn the_garbage_collector_removes_objects_whose_owner_went(env: &Env) {
    let c = &env.cluster;
    require_controller_manager(c);
    let ns = "e2e-gc";
    c.namespace(ns);
    let dg = Driftgate::start(c, "gc", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&deployment(ns, "reviews", 1), &[]);
    let owner = c.get_json(&["-n", ns, "deployment", "reviews"]).unwrap();
    c.argocd().apply(&virtual_service(ns, "reviews", &owned_by(&owner, true)), &[]);
    c.argocd().ok(&["-n", ns, "delete", "deployment", "reviews", "--wait=false"]);
    wait_gone(c, &["-n", ns, "virtualservice", "reviews"]);
    assert_eq!(dg.events_in(ns), Vec::<Value>::new());
}

pub fn deleting_a_namespace_with_protected_objects_finishes(env: &Env) {
    let c = &env.cluster;
    require_controller_manager(c);
    let ns = "e2e-ns-delete";
    c.namespace(ns);
    let dg = Driftgate::start(c, "ns-delete", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);
    c.argocd().apply(&destination_rule(ns, "reviews"), &[]);
    c.admin().ok(&["delete", "namespace", ns, "--wait=false"]);
    wait_gone(c, &["namespace", ns]);
    assert_eq!(dg.events_in(ns), Vec::<Value>::new());
}
