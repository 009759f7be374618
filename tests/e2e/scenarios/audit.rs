//! `driftgate audit` against live objects: what Argo CD and Flux wrote is clean; what a person
//! changed while driftgate was not there is found with the person's field manager, operation
//! and paths; a forced re-apply from Git makes it clean again; `--write-reports`, run as the
//! component's service account, creates the PolicyReports and then replaces them, deletes its
//! own stale ones and touches no other report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::Env;
use crate::objects::{destination_rule, flux_virtual_service, virtual_service};
use crate::scenarios::people::weight_editor;
use crate::support::driftgate::{DEFAULT_POLICY, bin};
use crate::support::{Cluster, Driftgate, Out, wait_for};

/// The component the reports need: the CRDs (Kyverno's copy) and the audit's RBAC.
const COMPONENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/components/policy-reports");
/// The audit's service account (manifests/components/policy-reports/rbac.yaml).
const AUDIT_SA: &str = "system:serviceaccount:driftgate:driftgate-audit";

const NS: &str = "e2e-audit";
/// Its one object is pruned by Argo CD half way: its report goes stale.
const NS_GONE: &str = "e2e-audit-gone";
/// Not audited: a report of driftgate's there must be left alone.
const NS_OTHER: &str = "e2e-audit-other";

/// Installs the PolicyReport CRDs and the audit's RBAC from the repository's component.
fn install_component(c: &Cluster) {
    c.namespace("driftgate");
    let dir = Path::new(COMPONENT);
    let crds = ["wgpolicyk8s.io_policyreports.yaml", "wgpolicyk8s.io_clusterpolicyreports.yaml"];
    for file in crds.iter().chain(&["rbac.yaml"]) {
        c.admin().ok(&["apply", "--server-side", "-f", &dir.join(file).display().to_string()]);
    }
    c.admin().ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/policyreports.wgpolicyk8s.io",
        "crd/clusterpolicyreports.wgpolicyk8s.io",
    ]);
    wait_for("the PolicyReport CRD to be served", Duration::from_secs(30), || {
        c.admin().run(&["get", "policyreports.wgpolicyk8s.io", "-A"]).ok().then_some(())
    });
}

/// A kubeconfig that is the admin's acting as the audit's service account (`as:`), as the
/// CronJob of the component runs.
fn audit_sa_kubeconfig(c: &Cluster) -> PathBuf {
    let mut config: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&c.kubeconfig).unwrap()).unwrap();
    config["users"][0]["user"]["as"] = Value::String(AUDIT_SA.to_owned());
    let path = c.dir.join("audit-sa.kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

/// `driftgate audit` over the scenario's namespaces (extra flags in `args`), with `kubeconfig`.
fn audit(kubeconfig: &Path, dir: &Path, policies: &Path, args: &[&str]) -> Out {
    let output = Command::new(bin())
        .arg("audit")
        .args(["--policies", &policies.display().to_string()])
        .args(["--namespace", NS, "--namespace", NS_GONE])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("DRIFTGATE_POLICIES")
        .env_remove("DRIFTGATE_NAMESPACE")
        .current_dir(dir)
        .output()
        .unwrap();
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The summary line an audit ends its standard error with.
fn summary(out: &Out) -> &str {
    out.stderr.lines().last().unwrap_or_default()
}

/// The drifted objects of a `--format json` run: (kind, name, manager, operation, paths) for
/// each writer, in output order.
fn drifted(out: &Out) -> Vec<(String, String, String, String, Vec<String>)> {
    let mut rows = Vec::new();
    for line in out.stdout.lines() {
        let f: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for w in f["writers"].as_array().unwrap() {
            rows.push((
                f["kind"].as_str().unwrap().to_owned(),
                f["name"].as_str().unwrap().to_owned(),
                w["manager"].as_str().unwrap().to_owned(),
                w["operation"].as_str().unwrap().to_owned(),
                w["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect(),
            ));
        }
    }
    rows
}

fn row(
    kind: &str,
    name: &str,
    manager: &str,
    operation: &str,
    paths: &[&str],
) -> (String, String, String, String, Vec<String>) {
    (kind.into(), name.into(), manager.into(), operation.into(), paths.iter().map(|p| p.to_string()).collect())
}

/// The report `driftgate-audit` in `ns`, if any.
fn report(c: &Cluster, ns: &str) -> Option<Value> {
    c.get_json(&["-n", ns, "policyreports.wgpolicyk8s.io", "driftgate-audit"])
}

/// (result, kind, name) of each result of a report.
fn results(report: &Value) -> Vec<(String, String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let res = &r["resources"][0];
            (
                r["result"].as_str().unwrap().to_owned(),
                res["kind"].as_str().unwrap().to_owned(),
                res["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn result(r: &str, kind: &str, name: &str) -> (String, String, String) {
    (r.into(), kind.into(), name.into())
}

const ARGOCD_SSA: [&str; 3] = ["--server-side", "--force-conflicts", "--field-manager=argocd-controller"];
const FLUX_SSA: [&str; 3] = ["--server-side", "--force-conflicts", "--field-manager=kustomize-controller"];

pub fn audit_finds_what_people_changed_while_driftgate_was_stopped_and_reports_it(env: &Env) {
    let c = &env.cluster;
    for ns in [NS, NS_GONE, NS_OTHER] {
        c.namespace(ns);
    }
    install_component(c);
    let mut dg = Driftgate::start(c, "audit", &[("default.yaml", DEFAULT_POLICY)], &[]);
    dg.wait_effective(c);
    let admin = c.kubeconfig.clone();
    let as_audit_sa = audit_sa_kubeconfig(c);
    let (dir, policies) = (dg.dir.clone(), dg.policy_dir().to_owned());
    let run = |kubeconfig: &Path, args: &[&str]| audit(kubeconfig, &dir, &policies, args);

    // GitOps writes, as Argo CD and Flux really make them: Argo CD applies client-side by default
    // (kubectl's apply code with field manager argocd-controller) and server-side with
    // ServerSideApply=true (the same manager, forced); Flux's kustomize-controller server-side.
    let reviews = virtual_service(NS, "reviews", "");
    c.argocd().apply(&reviews, &["--field-manager=argocd-controller"]);
    let rule = destination_rule(NS, "reviews");
    c.argocd().apply(&rule, &ARGOCD_SSA);
    let ratings = flux_virtual_service(NS, "ratings", 80);
    c.flux().apply(&ratings, &FLUX_SSA);
    let details = virtual_service(NS_GONE, "details", "");
    c.argocd().apply(&details, &ARGOCD_SSA);

    let out = run(&admin, &[]);
    assert_eq!(out.code, 0, "GitOps writes are no drift: {out:?}");
    assert_eq!(out.stdout, "", "no row without drift");
    assert!(summary(&out).starts_with("4 protected objects audited ("), "{}", out.stderr);

    // driftgate stopped and its webhooks gone (an uninstall, or the time before the install):
    // nothing refuses a person's edits now.
    dg.stop();
    assert!(dg.unregister().ok());
    let editor = weight_editor(c, "audit", false);
    c.alice().env("KUBE_EDITOR", &editor).ok(&["-n", NS, "edit", "virtualservice", "reviews"]);
    c.alice().ok(&[
        "-n",
        NS,
        "patch",
        "destinationrule",
        "reviews",
        "--type=merge",
        "-p",
        r#"{"spec":{"host":"reviews-canary"}}"#,
    ]);
    let hand_edited = flux_virtual_service(NS, "ratings", 50);
    let out = c.alice().run_stdin(&["replace", "-f", "-"], Some(&hand_edited));
    assert!(out.ok(), "kubectl replace: {out:?}");

    let table = run(&admin, &[]);
    println!("driftgate audit (after the edits), exit status {}:\n{}{}", table.code, table.stdout, table.stderr);
    assert_eq!(table.code, 1, "drift found: {table:?}");
    assert!(
        summary(&table).starts_with("4 protected objects audited (") && summary(&table).ends_with("), 3 drifted"),
        "{}",
        table.stderr
    );
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "a header and a row a drifted object:\n{}", table.stdout);
    assert!(lines[0].starts_with("OBJECT") && lines[0].ends_with("PATHS"), "{}", lines[0]);
    assert!(lines[3].starts_with("e2e-audit/reviews") && lines[3].contains("kubectl-edit"), "{}", lines[3]);

    let json = run(&admin, &["--format", "json"]);
    assert_eq!(json.code, 1, "{json:?}");
    assert_eq!(
        drifted(&json),
        [
            row("DestinationRule", "reviews", "kubectl-patch", "Update", &["/spec/host"]),
            row("VirtualService", "ratings", "kubectl-replace", "Update", &["/spec/http"]),
            row("VirtualService", "reviews", "kubectl-edit", "Update", &["/spec/http"]),
        ],
        "exactly the edited objects, with the person's manager and paths"
    );
    let first: Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["gitops"]["app"], "mesh-config");
    assert_eq!(first["apiVersion"], "networking.istio.io/v1");
    assert!(first["writers"][0]["time"].as_str().unwrap().ends_with('Z'));

    // Reports, written as the component's service account (its ClusterRole is enough). Others'
    // reports are left alone: one of another tool in an audited namespace, and one of
    // driftgate's own in a namespace this run does not audit.
    let foreign = format!(
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata:\n  name: polr-ns-{NS_GONE}\n  namespace: {NS_GONE}\n  labels: {{app.kubernetes.io/managed-by: kyverno}}\nresults: []\n"
    );
    c.admin().apply(&foreign, &[]);
    let unaudited = format!(
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata:\n  name: driftgate-audit\n  namespace: {NS_OTHER}\n  labels: {{app.kubernetes.io/managed-by: driftgate, driftgate.dev/report: audit}}\nresults: []\n"
    );
    c.admin().apply(&unaudited, &[]);
    let printed = run(&admin, &["--format", "report"]);
    assert_eq!(printed.code, 1, "{printed:?}");
    assert_eq!(printed.stdout.matches("kind: PolicyReport\n").count(), 2, "{}", printed.stdout);
    let written = run(&as_audit_sa, &["--write-reports"]);
    assert_eq!(written.code, 1, "{written:?}");
    assert!(
        written.stderr.contains(&format!("policyreport.wgpolicyk8s.io/{NS}/driftgate-audit serverside-applied")),
        "{}",
        written.stderr
    );
    let first_report = report(c, NS).unwrap();
    assert_eq!(
        results(&first_report),
        [
            result("fail", "DestinationRule", "reviews"),
            result("fail", "VirtualService", "ratings"),
            result("fail", "VirtualService", "reviews"),
        ]
    );
    assert_eq!(first_report["summary"]["fail"], 3);
    assert_eq!(first_report["metadata"]["labels"]["app.kubernetes.io/managed-by"], "driftgate");
    let shown: Value = serde_json::from_str(&c.admin().ok(&[
        "-n",
        NS,
        "get",
        "policyreports.wgpolicyk8s.io",
        "driftgate-audit",
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .unwrap();
    let managers: Vec<&str> =
        shown["metadata"]["managedFields"].as_array().unwrap().iter().map(|m| m["manager"].as_str().unwrap()).collect();
    assert_eq!(managers, ["driftgate"], "server-side applied by driftgate");
    let gone = report(c, NS_GONE).unwrap();
    assert_eq!(results(&gone), [result("pass", "VirtualService", "details")]);

    // Git wins again: Argo CD and Flux re-apply with --force-conflicts and take the fields back.
    c.argocd().apply(&reviews, &ARGOCD_SSA);
    c.argocd().apply(&rule, &ARGOCD_SSA);
    c.flux().apply(&ratings, &FLUX_SSA);
    // Argo CD prunes the only object of NS_GONE.
    c.argocd().ok(&["-n", NS_GONE, "delete", "virtualservice", "details"]);
    let clean = run(&as_audit_sa, &["--write-reports"]);
    println!(
        "driftgate audit --write-reports (after the re-apply), exit status {}:\n{}{}",
        clean.code, clean.stdout, clean.stderr
    );
    assert_eq!(clean.code, 0, "clean again: {clean:?}");
    assert!(
        summary(&clean).starts_with("3 protected objects audited (") && summary(&clean).ends_with("), 0 drifted"),
        "{}",
        clean.stderr
    );
    assert!(
        clean.stderr.contains(&format!("policyreport.wgpolicyk8s.io/{NS_GONE}/driftgate-audit deleted")),
        "{}",
        clean.stderr
    );
    let replaced = report(c, NS).unwrap();
    assert_eq!(replaced["metadata"]["uid"], first_report["metadata"]["uid"], "the same report, replaced");
    assert_eq!(
        results(&replaced),
        [
            result("pass", "DestinationRule", "reviews"),
            result("pass", "VirtualService", "ratings"),
            result("pass", "VirtualService", "reviews"),
        ],
        "replaced, not appended"
    );
    assert_eq!(replaced["summary"]["fail"], 0);
    assert_eq!(replaced["summary"]["pass"], 3);
    assert!(report(c, NS_GONE).is_none(), "stale: deleted");
    assert!(c.get_json(&["-n", NS_GONE, "policyreports.wgpolicyk8s.io", &format!("polr-ns-{NS_GONE}")]).is_some());
    assert!(report(c, NS_OTHER).is_some(), "not audited: left alone");

    // What a re-apply cannot take back: a field Git does not set stays the last writer's.
    c.alice().ok(&["-n", NS, "label", "virtualservice", "reviews", "team=checkout"]);
    c.argocd().apply(&reviews, &ARGOCD_SSA);
    let labelled = run(&admin, &["--format", "json"]);
    assert_eq!(labelled.code, 1, "{labelled:?}");
    assert_eq!(
        drifted(&labelled),
        [row("VirtualService", "reviews", "kubectl-label", "Update", &["/metadata/labels/team"])]
    );

    // A policy folder that does not load: the audit cannot run (2), which is not drift (1).
    let broken = audit(&admin, &dir, Path::new("/nonexistent"), &[]);
    assert_eq!(broken.code, 2, "{broken:?}");
    assert!(broken.stderr.contains("failed to load policies"), "{}", broken.stderr);
}
