//! The Helm chart on the real kube-apiserver. Installed with `webhook.url` pointing at a
//! driftgate on the host (the harness runs no pods), which serves the certificate the chart
//! made (copied from the Secret driftgate-tls, as an operator would for a driftgate outside the
//! cluster): a person's `kubectl edit` is refused; a person's `helm upgrade` is refused by the
//! tamper guard; Flux's helm-controller upgrades with a changed value while Argo CD keeps
//! writing and a person keeps trying: not one Argo CD write fails and every attempt of the
//! person is refused by driftgate; the caBundle stays, the serving certificate is new, and
//! driftgate serving it changes nothing. A person can neither delete the webhook configuration
//! nor `helm uninstall` it (the guarded objects stay and keep refusing; Helm removes the rest,
//! the guard included, and keeps the release `uninstalling`); the helm-controller's
//! `helm uninstall` removes everything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::Env;
use crate::objects::virtual_service;
use crate::scenarios::people::weight_editor;
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::{Cluster, Driftgate, Out, eventually, wait_for};

/// Flux's helm-controller: one of the shipped policies' GitOps identities, and what runs
/// `helm install/upgrade/uninstall` for a HelmRelease.
const HELM_CONTROLLER: &str = "system:serviceaccount:flux-system:helm-controller";
const RELEASE: &str = "driftgate";

/// `helm` on PATH or `$HELM`, else `.tools/bin/helm`, fetched by the project's script.
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(helm) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
            return PathBuf::from(helm);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-helm.sh");
        let out = Command::new("bash").arg(script).output().expect("bash runs");
        assert!(out.status.success(), "no helm: scripts/fetch-helm.sh: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// `helm ARGS` against the suite's cluster, as the admin (a person) or as `user`.
fn helm(c: &Cluster, user: Option<&str>, args: &[&str]) -> Out {
    let mut cmd = Command::new(helm_bin());
    cmd.args(args).env("KUBECONFIG", &c.kubeconfig).env("HELM_CACHE_HOME", c.dir.join("helm/cache"));
    cmd.env("HELM_CONFIG_HOME", c.dir.join("helm/config")).env("HELM_DATA_HOME", c.dir.join("helm/data"));
    if let Some(user) = user {
        cmd.args(["--kube-as-user", user]);
    }
    let out = cmd.output().expect("helm runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn chart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/driftgate").display().to_string()
}

/// Prints a command's output for the run's log, each line prefixed.
fn show(what: &str, out: &Out) {
    println!("e2e: helm: $ {what}  (exit {})", out.code);
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        // Helm pads its tables to the longest cell (a failed upgrade's whole error).
        let line = line.trim_end();
        let cut = line.char_indices().nth(240).map_or(line.len(), |(i, _)| i);
        println!("e2e: helm:   {}{}", &line[..cut], if cut < line.len() { " …" } else { "" });
    }
}

/// A data key of a Secret, decoded.
fn secret_key(c: &Cluster, ns: &str, name: &str, key: &str) -> String {
    let secret = c.get_json(&["-n", ns, "secret", name]).unwrap_or_else(|| panic!("no Secret {ns}/{name}"));
    let b64 = secret["data"][key].as_str().unwrap_or_else(|| panic!("no {key} in Secret {name}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

/// Puts the chart's serving certificate where the driftgate on the host reads it, and waits
/// until it serves it.
fn serve_the_charts_certificate(c: &Cluster, dg: &Driftgate, ns: &str) -> String {
    let cert = secret_key(c, ns, "driftgate-tls", "tls.crt");
    let key = secret_key(c, ns, "driftgate-tls", "tls.key");
    let before = dg.metric("driftgate_certificate_reloads_total", &[]);
    // The key first: until the certificate matches it, driftgate keeps serving the old pair.
    std::fs::write(dg.certs.join("tls.key"), &key).unwrap();
    std::fs::write(dg.certs.join("tls.crt"), &cert).unwrap();
    wait_for("driftgate to serve the chart's certificate", Duration::from_secs(30), || {
        (dg.metric("driftgate_certificate_reloads_total", &[]) > before).then_some(())
    });
    cert
}

fn webhook_json(c: &Cluster) -> Value {
    c.get_json(&["validatingwebhookconfiguration", "driftgate"]).expect("the webhook configuration")
}

fn ca_bundles(webhook: &Value) -> Vec<String> {
    webhook["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["clientConfig"]["caBundle"].as_str().unwrap().to_owned())
        .collect()
}

const REFUSED: &str =
    "admission webhook \"mesh-gitops.validate.driftgate.dev\" denied the request: driftgate: VirtualService";

pub fn the_chart_installs_upgrades_and_uninstalls_with_no_gap_in_refusals(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-helm";
    let mesh = "e2e-helm-mesh";
    c.namespace(ns);
    c.namespace(mesh);
    // Flux's helm-controller may do what a HelmRelease needs (cluster-admin in a real install).
    c.admin().apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: e2e-helm-controller}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n\
         subjects: [{kind: ServiceAccount, name: helm-controller, namespace: flux-system}]\n",
        &[],
    );

    // driftgate on the host, its namespace the release's; the chart registers the webhooks.
    let dg = Driftgate::start(c, "helm", &[("default.yaml", DEFAULT_POLICY)], &["--namespace", ns]);
    assert!(dg.unregister().ok());
    c.argocd().apply(&virtual_service(mesh, "reviews", ""), &[]);
    let url = format!("https://127.0.0.1:{}", dg.port);

    // Install, as a person (creating is not guarded), with the defaults but the URL.
    let chart = chart();
    let out = helm(c, None, &["install", RELEASE, &chart, "--namespace", ns, "--set", &format!("webhook.url={url}")]);
    show(&format!("helm install driftgate charts/driftgate -n {ns} --set webhook.url={url}"), &out);
    assert!(out.ok(), "helm install: {out:?}");
    assert!(out.stdout.contains("STATUS: deployed"), "{}", out.stdout);
    let installed = webhook_json(c);
    let bundles = ca_bundles(&installed);
    assert_eq!(bundles.len(), 5, "two policies, each with its break-glass twin, and the grants' entry");
    let ca = secret_key(c, ns, "driftgate-ca", "ca.crt");
    assert!(bundles.iter().all(|b| *b == base64::engine::general_purpose::STANDARD.encode(&ca)), "caBundle = the CA");
    let first_cert = serve_the_charts_certificate(c, &dg, ns);
    dg.wait_effective(c);

    // A person's kubectl edit is refused by driftgate, through the chart's webhooks.
    let editor = weight_editor(c, "helm", false);
    let out = c.alice().env("EDITOR", &editor).run(&["-n", mesh, "edit", "virtualservice", "reviews"]);
    println!("e2e: helm: $ kubectl -n {mesh} edit virtualservice reviews  (as alice; exit {})", out.code);
    println!("e2e: helm:   {}", out.stderr.trim());
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(REFUSED), "{}", out.stderr);

    // A person's helm upgrade is refused by the tamper guard.
    let upgrade = [
        "upgrade",
        RELEASE,
        chart.as_str(),
        "--namespace",
        ns,
        "--reuse-values",
        "--set",
        "webhook.timeoutSeconds=10",
        "--hide-notes",
    ];
    let out = helm(c, None, &upgrade);
    show(
        "helm upgrade driftgate charts/driftgate -n e2e-helm --reuse-values --set webhook.timeoutSeconds=10 --hide-notes  (as the admin)",
        &out,
    );
    assert!(!out.ok() && out.stderr.contains("driftgate tamper guard"), "{out:?}");
    assert_eq!(webhook_json(c)["webhooks"][0]["timeoutSeconds"], 5, "the webhooks stay as they were");

    // Flux's helm-controller upgrades while Argo CD writes and a person keeps trying.
    let stop = AtomicBool::new(false);
    let argocd_failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let attempts_not_refused: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let (mut argocd_writes, mut attempts) = (0, 0);
    let started = Instant::now();
    let second_cert = std::thread::scope(|s| {
        let gitops = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let weight = 80 + n % 10;
                let yaml = virtual_service(mesh, "reviews", "")
                    .replace("weight: 90", &format!("weight: {weight}"))
                    .replace("weight: 10", &format!("weight: {}", 100 - weight));
                let out = c.argocd().run_stdin(&["apply", "-f", "-"], Some(&yaml));
                if !out.ok() {
                    argocd_failures.lock().unwrap().push(out.stderr);
                }
                n += 1;
            }
            n
        });
        let person = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let patch = format!(r#"{{"metadata":{{"labels":{{"attempt":"a{n}"}}}}}}"#);
                let out =
                    c.alice().run(&["-n", mesh, "patch", "virtualservice", "reviews", "--type=merge", "-p", &patch]);
                if out.ok() || !out.stderr.contains(REFUSED) {
                    attempts_not_refused.lock().unwrap().push(format!("{out:?}"));
                }
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_secs(2));
        let out = helm(c, Some(HELM_CONTROLLER), &upgrade);
        show(
            "helm upgrade driftgate charts/driftgate -n e2e-helm --reuse-values --set webhook.timeoutSeconds=10 --hide-notes --kube-as-user system:serviceaccount:flux-system:helm-controller",
            &out,
        );
        assert!(out.ok(), "the helm-controller's upgrade: {out:?}");
        // The new serving certificate (same CA) reaches the driftgate on the host, as the kubelet
        // would update a pod's Secret volume, while both keep going.
        let cert = serve_the_charts_certificate(c, &dg, ns);
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        argocd_writes = gitops.join().unwrap();
        attempts = person.join().unwrap();
        cert
    });
    println!(
        "e2e: helm: during the upgrade ({:.1} s): {argocd_writes} Argo CD applies, {} failed; {attempts} kubectl patch by alice, {} not refused by driftgate",
        started.elapsed().as_secs_f64(),
        argocd_failures.lock().unwrap().len(),
        attempts_not_refused.lock().unwrap().len()
    );
    assert!(argocd_failures.lock().unwrap().is_empty(), "Argo CD failed: {:?}", argocd_failures.lock().unwrap());
    assert!(attempts_not_refused.lock().unwrap().is_empty(), "not refused: {:?}", attempts_not_refused.lock().unwrap());
    assert!(argocd_writes >= 3 && attempts >= 3, "{argocd_writes} writes, {attempts} attempts");
    let upgraded = webhook_json(c);
    assert!(upgraded["webhooks"].as_array().unwrap().iter().all(|w| w["timeoutSeconds"] == 10), "the changed value");
    assert_eq!(
        ca_bundles(&upgraded),
        bundles,
        "the caBundle is the same: no window where the kube-apiserver distrusts driftgate"
    );
    assert_eq!(secret_key(c, ns, "driftgate-ca", "ca.crt"), ca, "the CA kept");
    assert_ne!(second_cert, first_cert, "a new serving certificate");
    let digest = |pem: &str| {
        let sum = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes());
        sum.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    println!(
        "e2e: helm: caBundle before and after the upgrade: CA {} = {} (kept); serving certificate {} -> {} (made again, served by driftgate during the upgrade)",
        digest(&ca),
        digest(&secret_key(c, ns, "driftgate-ca", "ca.crt")),
        digest(&first_cert),
        digest(&second_cert)
    );
    let out = helm(c, None, &["history", RELEASE, "--namespace", ns]);
    show("helm history driftgate -n e2e-helm", &out);

    // A person cannot delete the webhook configuration; the helm-controller uninstalls.
    let out = c.admin().run(&["delete", "validatingwebhookconfiguration", "driftgate"]);
    println!("e2e: helm: $ kubectl delete validatingwebhookconfiguration driftgate  (as the admin; exit {})", out.code);
    println!("e2e: helm:   {}", out.stderr.trim());
    assert!(!out.ok() && out.stderr.contains("driftgate tamper guard"), "{out:?}");

    // A person's helm uninstall: the guarded objects are refused, so the webhooks stay and keep
    // refusing, and Helm keeps the release (`uninstalling`); but it carries on with the rest, the
    // guard itself among them (only RBAC protects an admission policy).
    let out = helm(c, None, &["uninstall", RELEASE, "--namespace", ns, "--debug"]);
    let reason = out.stderr.lines().find(|l| l.contains("Failed to delete release")).unwrap_or_default();
    let refused: Vec<&str> =
        reason.split("driftgate tamper guard: ").skip(1).filter_map(|r| r.split(" is part of").next()).collect();
    let errors: Vec<&str> = out.stderr.lines().filter(|l| !l.starts_with("level=")).collect();
    show(
        "helm uninstall driftgate -n e2e-helm --debug  (as the admin)",
        &Out { stderr: errors.join("\n"), ..out.clone() },
    );
    println!("e2e: helm:   (its debug log: refused by the tamper guard: {})", refused.join(", "));
    assert!(!out.ok() && reason.contains("driftgate tamper guard"), "{out:?}");
    for object in [
        &["validatingwebhookconfiguration", "driftgate"][..],
        &["mutatingwebhookconfiguration", "driftgate"],
        &["-n", ns, "statefulset", "driftgate"],
        &["-n", ns, "service", "driftgate"],
        &["-n", ns, "configmap", "driftgate-policies"],
    ] {
        assert!(c.get_json(object).is_some(), "{object:?} stays");
    }
    let out = c.admin().run(&[
        "get",
        "-n",
        ns,
        "secret,serviceaccount,networkpolicy,poddisruptionbudget",
        "-l",
        "app.kubernetes.io/name=driftgate",
        "-o",
        "name",
    ]);
    assert!(out.stdout.trim().is_empty(), "Helm deleted what the guard does not cover: {out:?}");
    let out = c.alice().run(&[
        "-n",
        mesh,
        "patch",
        "virtualservice",
        "reviews",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"after":"person-uninstall"}}}"#,
    ]);
    assert!(out.stderr.contains(REFUSED), "still refused by driftgate: {out:?}");
    let out = helm(c, None, &["status", RELEASE, "--namespace", ns]);
    let status = out.stdout.split("NOTES:").next().unwrap_or_default().to_owned();
    show("helm status driftgate -n e2e-helm  (up to the NOTES)", &Out { stdout: status, ..out.clone() });
    assert!(out.stdout.contains("STATUS: uninstalling"), "{out:?}");

    // The helm-controller finishes the uninstall.
    let out = helm(c, Some(HELM_CONTROLLER), &["uninstall", RELEASE, "--namespace", ns]);
    show("helm uninstall driftgate -n e2e-helm --kube-as-user system:serviceaccount:flux-system:helm-controller", &out);
    assert!(out.ok(), "helm uninstall: {out:?}");
    assert!(c.get_json(&["validatingwebhookconfiguration", "driftgate"]).is_none());
    assert!(c.get_json(&["mutatingwebhookconfiguration", "driftgate"]).is_none());
    assert!(c.get_json(&["validatingadmissionpolicy", "driftgate-tamper-guard"]).is_none());
    assert!(c.get_json(&["-n", ns, "statefulset", "driftgate"]).is_none());
    let out = c.admin().run(&[
        "get",
        "validatingwebhookconfiguration,mutatingwebhookconfiguration,validatingadmissionpolicy",
        "-o",
        "name",
    ]);
    println!(
        "e2e: helm: $ kubectl get validatingwebhookconfiguration,mutatingwebhookconfiguration,validatingadmissionpolicy -o name"
    );
    println!("e2e: helm:   {}", if out.stdout.trim().is_empty() { "(none)" } else { out.stdout.trim() });
    // With the webhooks gone the kube-apiserver stops calling: the person's change lands.
    let patch = r#"{"metadata":{"labels":{"after":"uninstall"}}}"#;
    assert!(eventually(Duration::from_secs(10), || {
        c.alice().run(&["-n", mesh, "patch", "virtualservice", "reviews", "--type=merge", "-p", patch]).ok()
    }));

    c.admin().ok(&["delete", "clusterrolebinding", "e2e-helm-controller"]);
    // The kube-apiserver's admission policies follow their objects through an informer: the
    // guard may hold a moment after its deletion.
    assert!(eventually(Duration::from_secs(10), || {
        c.admin().run(&["delete", "namespace", ns, mesh, "--wait=false", "--ignore-not-found"]).ok()
    }));
}
