//! Time-boxed break-glass: a BreakGlassGrant made with `driftgate break-glass grant` lets exactly
//! its subject change exactly its scope until it expires, then driftgate refuses again; grants
//! without a reason, longer than the cap, naming their own granter or made by someone without
//! the granter role are refused; creating and revoking a grant are journaled. The CRD and the
//! granter role are the ones `driftgate manifests` prints.

use std::time::Duration;

use serde_json::Value;

use crate::Env;
use crate::objects::virtual_service;
use crate::support::driftgate::DEFAULT_POLICY;
use crate::support::kubectl::{ALICE, DEVS};
use crate::support::{Driftgate, Identity, eventually};

const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// Applies the BreakGlassGrant CRD and the granter ClusterRole from `driftgate manifests`, and
/// lets bob grant (a RoleBinding in driftgate's namespace, as the README says).
fn install_grants(env: &Env, dg: &Driftgate) {
    let c = &env.cluster;
    let ca = dg.certs.join("ca.crt").display().to_string();
    let policies = dg.policies.display().to_string();
    let out = dg.cli(&["manifests", "--ca-bundle", &ca, "--policies", &policies]);
    assert!(out.ok(), "{out:?}");
    let wanted: Vec<&str> = out
        .stdout
        .split("\n---\n")
        .filter(|d| d.contains("kind: CustomResourceDefinition") || d.contains("name: driftgate-break-glass-granter"))
        .collect();
    assert_eq!(wanted.len(), 2, "the CRD and the granter role");
    c.admin().apply(&wanted.join("\n---\n"), &[]);
    c.admin().ok(&["wait", "--for=condition=Established", "crd/breakglassgrants.driftgate.dev", "--timeout=30s"]);
    c.namespace("driftgate");
    let out = c.admin().run(&[
        "-n",
        "driftgate",
        "create",
        "rolebinding",
        "e2e-bob-grants",
        "--clusterrole=driftgate-break-glass-granter",
        &format!("--user={BOB}"),
    ]);
    assert!(out.ok() || out.stderr.contains("already exists"), "{out:?}");
}

/// Removes what [`install_grants`] applied (the CRD with every grant), so that a later install
/// (the Helm chart's) makes them its own.
fn uninstall_grants(env: &Env) {
    let admin = env.cluster.admin();
    admin.ok(&["-n", "driftgate", "delete", "rolebinding", "e2e-bob-grants", "--ignore-not-found"]);
    admin.ok(&["delete", "clusterrole", "driftgate-break-glass-granter", "--ignore-not-found"]);
    admin.ok(&["delete", "crd", "breakglassgrants.driftgate.dev", "--ignore-not-found", "--wait=true"]);
}

/// Starts driftgate watching grants, after the CRD is there.
fn start(env: &Env, name: &str) -> Driftgate {
    let c = &env.cluster;
    let dg = Driftgate::start(c, name, &[("default.yaml", DEFAULT_POLICY)], &["--grants", "on"]);
    install_grants(env, &dg);
    dg.wait_effective(c);
    dg
}

fn patch_as(env: &Env, who: Identity, ns: &str, label: &str) -> crate::support::Out {
    let patch = format!(r#"{{"metadata":{{"labels":{{"changed":"{label}"}}}}}}"#);
    env.cluster.kubectl(who).run(&["-n", ns, "patch", "virtualservice", "reviews", "--type=merge", "-p", &patch])
}

fn alice() -> Identity {
    Identity::person(ALICE, &[DEVS])
}

pub fn a_grant_lets_exactly_its_subject_change_exactly_its_scope_until_it_expires(env: &Env) {
    let c = &env.cluster;
    let (shop, other) = ("e2e-grants", "e2e-grants-other");
    c.namespace(shop);
    c.namespace(other);
    let dg = start(env, "grants");
    c.argocd().apply(&virtual_service(shop, "reviews", ""), &[]);
    c.argocd().apply(&virtual_service(other, "reviews", ""), &[]);
    let out = patch_as(env, alice(), shop, "before");
    assert!(!out.ok() && out.stderr.contains("not allowed"), "refused before any grant: {out:?}");

    let grant = |who: &str, extra: &[&str]| {
        let mut args =
            vec!["break-glass", "--as", who, "grant", "--user", ALICE, "--namespace", shop, "--kind", "VirtualService"];
        args.extend_from_slice(extra);
        dg.cli(&args)
    };
    // Someone without the granter role cannot make a grant at all (RBAC).
    let out = grant(CAROL, &["--for", "20s", "--reason", "INC-4711"]);
    assert!(!out.ok() && out.stderr.contains("forbidden"), "{out:?}");
    println!("e2e: grants: driftgate break-glass grant (as carol, no granter role) said: {}", out.stderr.trim());

    let out = grant(BOB, &["--for", "20s", "--reason", "INC-4711"]);
    assert!(out.ok(), "{out:?}");
    println!("e2e: grants: driftgate break-glass grant (as bob) said: {}", out.stdout.trim());
    assert!(
        out.stdout.contains("user alice@example.com may change kind VirtualService in e2e-grants until"),
        "{}",
        out.stdout
    );
    let name = out.stdout.split_whitespace().nth(1).unwrap().trim_start_matches("driftgate/").to_owned();

    // Alice may change VirtualServices in shop now (once the watcher has the grant): recorded as
    // break-glass through the grant, with a warning that names it.
    assert!(
        eventually(Duration::from_secs(10), || patch_as(env, alice(), shop, "granted").ok()),
        "the grant lets alice through: {:?}",
        patch_as(env, alice(), shop, "granted")
    );
    let out = patch_as(env, alice(), shop, "granted-again");
    assert!(out.ok() && out.stderr.contains(&format!("grant {name} by {BOB}")), "{out:?}");
    println!("e2e: grants: alice's kubectl patch within the grant printed: {}", out.stderr.trim());
    // Not elsewhere, and nobody else.
    let out = patch_as(env, alice(), other, "elsewhere");
    assert!(!out.ok() && out.stderr.contains("not allowed"), "outside the scope: {out:?}");
    let out = patch_as(env, Identity::person(CAROL, &[DEVS]), shop, "someone-else");
    assert!(!out.ok() && out.stderr.contains("not allowed"), "not a subject: {out:?}");

    let listed = dg.cli(&["break-glass", "list"]);
    assert!(listed.ok() && listed.stdout.contains(&name) && listed.stdout.contains("active"), "{listed:?}");
    println!("e2e: grants: driftgate break-glass list:\n{}", listed.stdout.trim_end());

    // Expired: refused again, though the grant is still stored (each try a new value: a patch
    // that changes nothing is no drift).
    let mut tries = 0;
    assert!(
        eventually(Duration::from_secs(40), || {
            tries += 1;
            let out = patch_as(env, alice(), shop, &format!("try-{tries}"));
            !out.ok() && out.stderr.contains("not allowed")
        }),
        "refused once the grant expired"
    );
    assert!(c.get_json(&["-n", "driftgate", "breakglassgrant", &name]).is_some(), "still stored");
    let listed = dg.cli(&["break-glass", "list"]);
    assert!(listed.stdout.contains("expired"), "{listed:?}");

    let out = dg.cli(&["break-glass", "--as", BOB, "revoke", &name]);
    assert!(out.ok() && out.stdout.contains("revoked"), "{out:?}");
    assert!(c.get_json(&["-n", "driftgate", "breakglassgrant", &name]).is_none());

    // The journal: the grant's creation (by bob), the changes through it, its revocation.
    let journal = dg.journal_all();
    let rule = |e: &Value| e["rule"].as_str().unwrap_or_default().to_owned();
    let created = journal.iter().find(|e| rule(e) == "grant:create").expect("grant creation journaled");
    assert_eq!((created["user"]["username"].as_str(), created["grant"]["granter"].as_str()), (Some(BOB), Some(BOB)));
    assert_eq!(created["grant"]["reason"], "INC-4711");
    let through: Vec<&Value> = journal.iter().filter(|e| rule(e) == format!("break-glass:grant {name}")).collect();
    assert!(through.len() >= 2, "{journal:#?}");
    assert!(through.iter().all(|e| e["decision"] == "break-glass" && e["user"]["username"] == ALICE));
    assert_eq!(through[0]["grant"]["name"], name.as_str());
    assert!(journal.iter().any(|e| rule(e) == "grant:delete" && e["grant"]["name"] == name.as_str()));
    uninstall_grants(env);
}

pub fn grants_without_a_reason_beyond_the_cap_or_for_their_granter_are_refused(env: &Env) {
    let c = &env.cluster;
    let dg = start(env, "grants-refused");
    let try_grant = |args: &[&str]| {
        let mut all = vec!["break-glass", "--as", BOB, "grant", "--namespace", "shop", "--kind", "VirtualService"];
        all.extend_from_slice(args);
        dg.cli(&all)
    };
    let out = try_grant(&["--user", ALICE, "--for", "5h", "--reason", "INC-4712"]);
    assert!(!out.ok() && out.stderr.contains("lasts 5h, longer than the 4h driftgate allows"), "{out:?}");
    println!("e2e: grants: a 5h grant: {}", out.stderr.trim());
    let out = try_grant(&["--user", BOB, "--for", "1h", "--reason", "INC-4712"]);
    assert!(!out.ok() && out.stderr.contains("may not name its own granter"), "{out:?}");
    println!("e2e: grants: bob granting himself: {}", out.stderr.trim());

    // Written by hand with kubectl: a blank reason (driftgate), no reason (the CRD's schema), a
    // granter that is not the creating user (driftgate).
    let grant = |reason: &str, granter: &str| {
        format!(
            "apiVersion: driftgate.dev/v1alpha1\nkind: BreakGlassGrant\nmetadata: {{name: by-hand, namespace: driftgate}}\n\
             spec:\n  subjects: [{{kind: User, name: {ALICE}}}]\n  scope: {{namespaces: [shop]}}\n  duration: 30m\n{reason}  granter: {granter}\n"
        )
    };
    let bob = c.kubectl(Identity::person(BOB, &[]));
    let out = bob.run_stdin(&["create", "-f", "-"], Some(&grant("  reason: \" \"\n", BOB)));
    assert!(!out.ok() && out.stderr.contains("spec.reason is required"), "{out:?}");
    println!("e2e: grants: kubectl create with a blank reason: {}", out.stderr.trim());
    let out = bob.run_stdin(&["create", "-f", "-"], Some(&grant("", BOB)));
    assert!(!out.ok() && out.stderr.contains("reason"), "{out:?}");
    let out = bob.run_stdin(&["create", "-f", "-"], Some(&grant("  reason: INC-4713\n", "someone-else@example.com")));
    assert!(
        !out.ok() && out.stderr.contains(&format!("spec.granter must be the user creating the grant, {BOB}")),
        "{out:?}"
    );
    // A valid one by hand is taken, and its spec never changes afterwards (not even by the admin).
    let out = bob.run_stdin(&["create", "-f", "-"], Some(&grant("  reason: INC-4713\n", BOB)));
    assert!(out.ok(), "{out:?}");
    let widen = r#"{"spec":{"scope":{"namespaces":["shop","payments"]}}}"#;
    let out = c.admin().run(&["-n", "driftgate", "patch", "breakglassgrant", "by-hand", "--type=merge", "-p", widen]);
    assert!(!out.ok() && out.stderr.contains("spec cannot change"), "{out:?}");
    bob.ok(&["-n", "driftgate", "delete", "breakglassgrant", "by-hand"]);

    let refused: Vec<Value> =
        dg.journal_all().into_iter().filter(|e| e["rule"] == "grant:refused" && e["decision"] == "denied").collect();
    assert!(refused.len() >= 4, "each refusal is journaled: {refused:#?}");
    uninstall_grants(env);
}
