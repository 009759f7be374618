//! The shipped install as the kube-apiserver takes it: the StatefulSet keeps each replica's
//! journal on a claim of its own (stored with its volumeClaimTemplates, the cluster's default
//! StorageClass), and the `ephemeral-journal` overlay's emptyDir passes server-side validation.
//! Workload objects only, in a namespace of their own: the harness runs no pods, and the
//! webhook configurations are the other scenarios' business.

use std::path::Path;
use std::process::Command;

use crate::Env;

/// The overlay's documents of the workload kinds, moved to namespace `ns`.
fn workload(overlay: &str, ns: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("kubectl").args(["kustomize", overlay]).current_dir(root).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let kinds = ["ServiceAccount", "ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget", "NetworkPolicy"];
    text.split("\n---\n")
        .filter(|doc| {
            kinds.iter().any(|k| doc.contains(&format!("\nkind: {k}\n")) || doc.starts_with(&format!("kind: {k}\n")))
        })
        .map(|doc| format!("{}\n", doc.trim_end()).replace("namespace: driftgate\n", &format!("namespace: {ns}\n")))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

pub fn the_shipped_statefulset_keeps_each_journal_on_a_claim(env: &Env) {
    let c = &env.cluster;
    let ns = "e2e-install";
    c.namespace(ns);
    let yaml = workload("manifests", ns);
    assert!(yaml.contains("kind: StatefulSet"), "{yaml}");
    let out = c.admin().apply(&yaml, &["--server-side", "--field-manager=e2e"]);
    assert!(out.contains("statefulset.apps/driftgate serverside-applied"), "{out}");
    let sts = c.get_json(&["-n", ns, "statefulset", "driftgate"]).expect("stored");
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "journal");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteOnce");
    assert!(claim["spec"].get("storageClassName").is_none(), "the default StorageClass: {claim}");
    assert_eq!(sts["spec"]["serviceName"], "driftgate-headless");
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"], "Retain");
    let pdb = c.get_json(&["-n", ns, "poddisruptionbudget", "driftgate"]).expect("stored");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    // Without storage: the same StatefulSet with an emptyDir, as the apiserver validates it (in
    // a namespace of its own: volumeClaimTemplates cannot change in place, see the component).
    let other = "e2e-install-ephemeral";
    c.namespace(other);
    let ephemeral = workload("manifests/ephemeral-journal", other);
    let out = c.admin().run_stdin(&["apply", "--dry-run=server", "-o", "json", "-f", "-"], Some(&ephemeral));
    assert!(out.ok(), "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let sts =
        list["items"].as_array().expect("a list").iter().find(|o| o["kind"] == "StatefulSet").expect("a StatefulSet");
    assert!(sts["spec"].get("volumeClaimTemplates").is_none_or(|v| v.as_array().is_some_and(Vec::is_empty)));
    let volumes = sts["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes");
    let journal = volumes.iter().find(|v| v["name"] == "journal").expect("the journal volume");
    assert_eq!(journal["emptyDir"]["sizeLimit"], "1Gi");
    c.admin().ok(&["delete", "namespace", ns, other, "--wait=false"]);
}
