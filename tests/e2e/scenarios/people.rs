//! A person's changes to Git-managed mesh objects, with every verb kubectl has for it: refused
//! with the message of DESIGN.md, journaled, and the object left as it was.

use crate::Env;
use crate::objects::{deployment, virtual_service, weights};
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::kubectl::ALICE;
use crate::support::{Cluster, Driftgate};

/// A policy over Deployments (and their scale subresource) in `ns`, with the HPA exempt.
pub fn deployments_policy(ns: &str) -> String {
    format!(
        r#"apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata:
  name: deployments
spec:
  resources:
    - group: apps
      resources: [deployments]
  namespaces:
    include: [{ns}]
  gitops:
    serviceAccounts: [argocd/argocd-application-controller]
  exemptions:
    - name: hpa
      serviceAccounts: [kube-system/horizontal-pod-autoscaler]
      subresources: [scale]
      paths: [/spec/replicas]
"#
    )
}

/// An EDITOR for `kubectl edit` that sets route 1's weights to 70/30 (and, when `note`, adds
/// an annotation too).
pub fn weight_editor(cluster: &Cluster, name: &str, note: bool) -> String {
    let path = cluster.dir.join(format!("{name}-editor.sh"));
    let annotate = if note { r#" -e 's|^  annotations:$|  annotations:\n    example.com/note: tuning|'"# } else { "" };
    std::fs::write(
        &path,
        format!("#!/bin/sh\nsed -i -e 's/weight: 90/weight: 70/' -e 's/weight: 10/weight: 30/'{annotate} \"$1\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The message a person sees for a refused change of `ns/reviews`.
pub fn refusal(ns: &str, what: &str, changed: &str, id: &str) -> String {
    format!(
        "driftgate: {what} {ns}/reviews is managed by GitOps (Argo CD app mesh-config); direct changes by {ALICE} are not allowed — change it in Git. {changed} Drift event {id}."
    )
}

const WEIGHTS_CHANGED: &str = "Changed: /spec/http/1/route/0/weight (90 → 70), /spec/http/1/route/1/weight (10 → 30).";

fn webhook(policy: &str) -> String {
    format!("admission webhook \"{policy}.validate.driftgate.dev\" denied the request: ")
}

/// The newest journal event about `ns`, after asserting there are `count` of them.
fn last_event(dg: &Driftgate, ns: &str, count: usize) -> serde_json::Value {
    let events = dg.events_in(ns);
    assert_eq!(events.len(), count, "events in {ns}: {events:#?}");
    events.last().cloned().unwrap()
}

pub fn a_persons_kubectl_edit_is_refused_with_the_design_message(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-edit";
    c.namespace(ns);
    let dg = Driftgate::start(c, "edit", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);

    let editor = weight_editor(c, "edit", false);
    let out = c.alice().env("KUBE_EDITOR", &editor).run(&["-n", ns, "edit", "virtualservice", "reviews"]);
    assert_eq!(out.code, 1, "{out:?}");
    let event = last_event(&dg, ns, 1);
    let id = event["id"].as_str().unwrap();
    let message = refusal(ns, "VirtualService", WEIGHTS_CHANGED, id);
    let expected = format!(
        "error: virtualservices.networking.istio.io \"reviews\" could not be patched: {}{message}",
        webhook("mesh-gitops")
    );
    assert!(out.stderr.contains(&expected), "kubectl said:\n{}\nexpected:\n{expected}", out.stderr);
    assert_eq!(event["decision"], "denied");
    assert_eq!(event["policy"], "mesh-gitops");
    assert_eq!(event["operation"], "UPDATE");
    assert_eq!(event["dryRun"], false);
    assert_eq!(event["user"]["username"], ALICE);
    assert_eq!(event["gitops"]["app"], "mesh-config");
    assert_eq!(event["message"], message.as_str());
    assert_eq!(event["changes"][0]["path"], "/spec/http/1/route/0/weight");
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(weights(&vs), (90, 10), "the object is unchanged");
}

pub fn a_persons_patch_label_annotate_delete_and_forced_apply_are_refused(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-verbs";
    c.namespace(ns);
    let dg = Driftgate::start(c, "verbs", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    let vs = virtual_service(ns, "reviews", "");
    c.argocd().apply(&vs, &["--server-side", "--field-manager=argocd-controller"]);
    let forbidden = |out: &crate::support::Out, count: usize, changed: &str| {
        assert_eq!(out.code, 1, "{out:?}");
        let event = last_event(&dg, ns, count);
        let message = refusal(ns, "VirtualService", changed, event["id"].as_str().unwrap());
        let expected = format!("Error from server (Forbidden): {}{message}", webhook("mesh-gitops"));
        assert!(out.stderr.contains(&expected), "kubectl said:\n{}\nexpected:\n{expected}", out.stderr);
        assert_eq!(event["decision"], "denied");
        event
    };

    let patch = r#"[{"op":"replace","path":"/spec/http/1/route/0/weight","value":50},{"op":"replace","path":"/spec/http/1/route/1/weight","value":50}]"#;
    let out = c.alice().run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=json", "-p", patch]);
    forbidden(&out, 1, "Changed: /spec/http/1/route/0/weight (90 → 50), /spec/http/1/route/1/weight (10 → 50).");

    let out = c.alice().run(&["-n", ns, "label", "virtualservice", "reviews", "team=checkout"]);
    forbidden(&out, 2, "Changed: /metadata/labels/team (unset → \"checkout\").");

    let out = c.alice().run(&["-n", ns, "annotate", "virtualservice", "reviews", "example.com/note=hi"]);
    forbidden(&out, 3, "Changed: /metadata/annotations/example.com~1note (unset → \"hi\").");

    let out = c.alice().run(&["-n", ns, "delete", "virtualservice", "reviews"]);
    let event = forbidden(&out, 4, "Attempted: delete.");
    assert_eq!(event["operation"], "DELETE");

    let changed = vs.replace("weight: 90", "weight: 60").replace("weight: 10", "weight: 40");
    let out = c.alice().run_stdin(
        &["apply", "--server-side", "--force-conflicts", "--field-manager=alice", "-f", "-"],
        Some(&changed),
    );
    forbidden(&out, 5, "Changed: /spec/http/1/route/0/weight (90 → 60), /spec/http/1/route/1/weight (10 → 40).");

    let now = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(weights(&now), (90, 10));
    assert!(now["metadata"]["labels"].get("team").is_none());
    assert!(now["metadata"]["annotations"].get("example.com/note").is_none());
}

pub fn a_persons_scale_is_refused_and_the_hpa_may_scale(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-scale";
    c.namespace(ns);
    let policy = deployments_policy(ns);
    let dg = Driftgate::start(c, "scale", &[("default.yaml", DEFAULT_POLICY), ("deployments.yaml", &policy)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&deployment(ns, "reviews", 2), &[]);

    let out = c.alice().run(&["-n", ns, "scale", "deployment", "reviews", "--replicas=3"]);
    assert_eq!(out.code, 1, "{out:?}");
    let event = last_event(&dg, ns, 1);
    // A Scale carries no metadata of its Deployment, so the message names the policy.
    let message = format!(
        "driftgate: deployments/scale {ns}/reviews is protected by driftgate policy deployments: only GitOps may change it; direct changes by {ALICE} are not allowed — change it in Git. Changed: /spec/replicas (2 → 3). Drift event {}.",
        event["id"].as_str().unwrap()
    );
    let expected = format!("Error from server (Forbidden): {}{message}", webhook("deployments"));
    assert!(out.stderr.contains(&expected), "kubectl said:\n{}\nexpected:\n{expected}", out.stderr);
    assert_eq!(event["resource"]["subresource"], "scale");

    let hpa = crate::support::Identity::person("system:serviceaccount:kube-system:horizontal-pod-autoscaler", &[]);
    c.kubectl(hpa).ok(&["-n", ns, "scale", "deployment", "reviews", "--replicas=4"]);
    let d = c.get_json(&["-n", ns, "deployment", "reviews"]).unwrap();
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(dg.events_in(ns).len(), 1, "the exempt scale is no drift");
}

pub fn a_server_dry_run_is_answered_truthfully_and_journaled_as_dry_run(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-dry-run";
    c.namespace(ns);
    let dg = Driftgate::start(c, "dry-run", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    c.argocd().apply(&virtual_service(ns, "reviews", ""), &[]);
    let patch = r#"{"spec":{"hosts":["other.example"]}}"#;
    let out = c.alice().run(&[
        "-n",
        ns,
        "patch",
        "virtualservice",
        "reviews",
        "--type=merge",
        "-p",
        patch,
        "--dry-run=server",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let event = last_event(&dg, ns, 1);
    assert_eq!(event["dryRun"], true);
    assert_eq!(event["decision"], "denied");
    let message = event["message"].as_str().unwrap();
    assert!(message.contains("Changed: /spec/hosts/0 ("), "{message}");
    assert!(out.stderr.contains(message), "{}", out.stderr);
    let vs = c.get_json(&["-n", ns, "virtualservice", "reviews"]).unwrap();
    assert_eq!(vs["spec"]["hosts"][0], format!("reviews.{ns}.svc.cluster.local"));

    // Argo CD's own dry runs (its diff) are answered like its writes.
    c.argocd().ok(&["-n", ns, "patch", "virtualservice", "reviews", "--type=merge", "-p", patch, "--dry-run=server"]);
    assert_eq!(dg.events_in(ns).len(), 1);
}
