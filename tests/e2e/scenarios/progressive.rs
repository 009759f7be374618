//! Progressive delivery under the shipped example policies: Argo Rollouts shifts a Git-managed
//! VirtualService's traffic and nothing else; Flagger writes the objects its Canary owns, and
//! nobody else may. Each write is a full-object PUT (`kubectl replace`), as both controllers
//! write, as the controller's service account.

use serde_json::{Value, json};

use crate::Env;
use crate::objects::virtual_service;
use crate::support::{Cluster, Driftgate, Identity, Out};

const ROLLOUTS_POLICY: &str = include_str!("../../../policies/examples/istio-argo-rollouts.yaml");
const FLAGGER_POLICY: &str = include_str!("../../../policies/examples/istio-flagger.yaml");

fn rollouts() -> Identity {
    Identity::person("system:serviceaccount:argo-rollouts:argo-rollouts", &[])
}

fn flagger() -> Identity {
    Identity::person("system:serviceaccount:istio-system:flagger", &[])
}

/// Reads `ns/kind/name`, changes it with `edit`, and PUTs it back as `who`.
fn replace(c: &Cluster, who: Identity, ns: &str, kind: &str, name: &str, edit: impl FnOnce(&mut Value)) -> Out {
    let mut object = c.get_json(&["-n", ns, kind, name]).unwrap();
    edit(&mut object);
    c.kubectl(who).run_stdin(&["-n", ns, "replace", "-f", "-"], Some(&object.to_string()))
}

pub fn argo_rollouts_shifts_weights_and_manages_header_routes_but_not_hosts(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-rollouts";
    c.namespace(ns);
    let dg = Driftgate::start(c, "rollouts", &[("istio-argo-rollouts.yaml", ROLLOUTS_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    let out = replace(c, rollouts(), ns, "virtualservice", "reviews", |vs| {
        vs["spec"]["http"][1]["route"][0]["weight"] = json!(80);
        vs["spec"]["http"][1]["route"][1]["weight"] = json!(20);
    });
    assert!(out.ok(), "SetWeight: {out:?}");
    let header = json!({"name": "canary-header", "match": [{"headers": {"x-canary": {"exact": "true"}}}],
        "route": [{"destination": {"host": "reviews", "subset": "v2"}, "weight": 100}]});
    let out = replace(c, rollouts(), ns, "virtualservice", "reviews", |vs| {
        vs["spec"]["http"].as_array_mut().unwrap().insert(0, header);
    });
    assert!(out.ok(), "SetHeaderRoute: {out:?}");
    assert_eq!(
        c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap()["spec"]["http"][0]["name"],
        "canary-header"
    );
    let out = replace(c, rollouts(), ns, "virtualservice", "reviews", |vs| {
        vs["spec"]["http"].as_array_mut().unwrap().remove(0);
    });
    assert!(out.ok(), "RemoveManagedRoutes: {out:?}");
    assert!(dg.events_in(ns).is_empty(), "the controller's writes are no drift: {:#?}", dg.events_in(ns));

    let out = replace(c, rollouts(), ns, "virtualservice", "reviews", |vs| {
        vs["spec"]["hosts"].as_array_mut().unwrap().push(json!("evil.example.com"));
    });
    assert_eq!(out.code, 1, "{out:?}");
    let events = dg.events_in(ns);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["rule"], "exemption:argo-rollouts-weights:partial");
    let message = events[0]["message"].as_str().unwrap();
    assert!(message.contains("Not exempt: /spec/hosts/1 (unset → \"evil.example.com\")."), "{message}");
    assert!(out.stderr.contains(message), "{}", out.stderr);
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(vs["spec"]["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(vs["spec"]["http"][1]["route"][1]["weight"], 20, "the shifted weights stay");
}

pub fn flagger_writes_what_its_canary_owns_and_a_person_may_not(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-flagger";
    c.namespace(ns);
    let dg = Driftgate::start(c, "flagger", &[("istio-flagger.yaml", FLAGGER_POLICY)], &[]);
    dg.wait_effective(c);
    c.admin().apply(
        &format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: {ns}}}\nspec: {{service: {{port: 9898}}}}\n"
        ),
        &[],
    );
    let canary = c.get_json(&["-n", ns, "canary", "podinfo"]).unwrap();
    let generated = json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "podinfo", "namespace": ns,
            "annotations": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"},
            "ownerReferences": [{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                "uid": canary["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"hosts": ["podinfo"], "gateways": ["mesh"], "http": [{"route": [
            {"destination": {"host": "podinfo-primary"}, "weight": 100},
            {"destination": {"host": "podinfo-canary"}, "weight": 0}]}]}
    });
    let out = c.kubectl(flagger()).run_stdin(&["create", "-f", "-"], Some(&generated.to_string()));
    assert!(out.ok(), "Flagger creates its VirtualService: {out:?}");
    let out = replace(c, flagger(), ns, "virtualservice", "podinfo", |vs| {
        vs["spec"]["http"][0]["route"][0]["weight"] = json!(90);
        vs["spec"]["http"][0]["route"][1]["weight"] = json!(10);
    });
    assert!(out.ok(), "Flagger shifts its weights: {out:?}");
    assert!(dg.events_in(ns).is_empty(), "{:#?}", dg.events_in(ns));

    let out = replace(c, Identity::alice(), ns, "virtualservice", "podinfo", |vs| {
        vs["spec"]["http"][0]["route"][0]["weight"] = json!(50);
        vs["spec"]["http"][0]["route"][1]["weight"] = json!(50);
    });
    assert_eq!(out.code, 1, "{out:?}");
    let events = dg.events_in(ns);
    assert_eq!(events.len(), 1, "{events:#?}");
    let message = events[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "driftgate: VirtualService {ns}/podinfo is protected by driftgate policy istio-flagger: only GitOps may change it; direct changes by alice@example.com are not allowed"
        )),
        "{message}"
    );
    assert!(out.stderr.contains(message), "{}", out.stderr);
    let vs = c.get_json(&["-n", ns, "virtualservice", "podinfo"]).unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 10);
}
