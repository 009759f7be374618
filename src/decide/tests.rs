//! Table-driven tests of the decision core, on small hand-built requests. The real fixtures are
//! exercised end to end in `tests/`.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::admission::{self, UserInfo};
use crate::policy::load_str;

const BASE: &str = "apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: mesh}
spec:
  mode: MODE
  scope: SCOPE
  resources: [{group: networking.istio.io}]
  gitops:
    serviceAccounts: [argocd/argocd-application-controller, flux-system/kustomize-controller]
  exemptions:
    - name: hpa
      serviceAccounts: [kube-system/horizontal-pod-autoscaler]
      paths: [/spec/replicas]
    - name: restarts
      users: [rollouts]
      operations: [UPDATE]
      paths: [/metadata/annotations/kubectl.kubernetes.io~1restartedAt]
  breakGlass: {groups: [oncall], annotation: true}
";

fn mk_set(mode: &str, scope: &str) -> PolicySet {
    let yaml = BASE.replace("MODE", mode).replace("SCOPE", scope);
    PolicySet::new(load_str(Path::new("t.yaml"), &yaml).unwrap(), &["driftgate".to_owned()])
}

struct Req {
    op: &'static str,
    user: &'static str,
    groups: Vec<&'static str>,
    ns: &'static str,
    name: &'static str,
    group: &'static str,
    kind: &'static str,
    sub: Option<&'static str>,
    old: Value,
    new: Value,
}

fn tracked(spec: Value) -> Value {
    json!({"metadata": {"name": "reviews", "annotations": {"argocd.argoproj.io/tracking-id": "mesh-config:x"}}, "spec": spec})
}

fn mk_req() -> Req {
    Req {
        op: "UPDATE",
        user: "alice@example.com",
        groups: vec!["devs"],
        ns: "shop",
        name: "reviews",
        group: "networking.istio.io",
        kind: "VirtualService",
        sub: None,
        old: tracked(json!({"w": 90})),
        new: tracked(json!({"w": 70})),
    }
}

fn run(set: &PolicySet, r: Req) -> Verdict {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u", "operation": r.op, "namespace": r.ns, "name": r.name, "subResource": r.sub,
            "kind": {"group": r.group, "version": "v1", "kind": r.kind},
            "resource": {"group": r.group, "version": "v1", "resource": format!("{}s", r.kind.to_lowercase())},
            "userInfo": {"username": r.user, "groups": r.groups},
            "object": r.new, "oldObject": r.old,
        }
    })
    .to_string();
    let review = admission::parse(body.as_bytes()).unwrap();
    let stamp = EventStamp { id: "E".into(), time: time::OffsetDateTime::UNIX_EPOCH };
    admit(set, &review.request, Endpoint::validate(None), &stamp).unwrap().verdict
}

#[test]
fn decides_each_rule() {
    let set = mk_set("enforce", "all");
    let sa = |name| -> &'static str { name };
    let cases: Vec<(&str, Req, Decision, &str)> = vec![
        ("human edit", mk_req(), Decision::Denied, "protected"),
        (
            "argocd",
            Req { user: sa("system:serviceaccount:argocd:argocd-application-controller"), ..mk_req() },
            Decision::Allowed,
            "gitops:serviceAccount argocd/argocd-application-controller",
        ),
        ("other kind", Req { group: "apps", kind: "Deployment", ..mk_req() }, Decision::Allowed, "unprotected"),
        ("kube-system", Req { ns: "kube-system", ..mk_req() }, Decision::Allowed, "builtin:never-protected-namespace"),
        ("own namespace", Req { ns: "driftgate", ..mk_req() }, Decision::Allowed, "builtin:never-protected-namespace"),
        ("status", Req { sub: Some("status"), ..mk_req() }, Decision::Allowed, "builtin:status-subresource"),
        (
            "gc delete",
            Req {
                op: "DELETE",
                user: "system:serviceaccount:kube-system:generic-garbage-collector",
                new: Value::Null,
                ..mk_req()
            },
            Decision::Allowed,
            "builtin:cleanup-controller",
        ),
        ("human delete", Req { op: "DELETE", new: Value::Null, ..mk_req() }, Decision::Denied, "protected"),
        ("no change", Req { new: tracked(json!({"w": 90})), ..mk_req() }, Decision::Allowed, "no-change"),
        (
            "hpa on replicas",
            Req {
                user: "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                old: tracked(json!({"replicas": 1})),
                new: tracked(json!({"replicas": 3})),
                ..mk_req()
            },
            Decision::Allowed,
            "exemption:hpa",
        ),
        (
            "hpa beyond replicas",
            Req {
                user: "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                old: tracked(json!({"replicas": 1, "w": 1})),
                new: tracked(json!({"replicas": 3, "w": 2})),
                ..mk_req()
            },
            Decision::Denied,
            "exemption:hpa:partial",
        ),
        (
            "break-glass group",
            Req { groups: vec!["oncall"], ..mk_req() },
            Decision::BreakGlass,
            "break-glass:group oncall",
        ),
        (
            "create untracked",
            Req {
                op: "CREATE",
                old: Value::Null,
                new: json!({"metadata": {"name": "x"}, "spec": {"hosts": []}}),
                ..mk_req()
            },
            Decision::Denied,
            "protected",
        ),
    ];
    for (what, req, decision, rule) in cases {
        let v = run(&set, req);
        assert_eq!((v.decision, v.rule.to_string().as_str()), (decision, rule), "{what}: {v:?}");
    }
}

#[test]
fn break_glass_annotation_needs_a_reason() {
    let set = mk_set("enforce", "all");
    let with = |reason: &str| {
        let mut new = tracked(json!({"w": 70}));
        new["metadata"]["annotations"]["driftgate.dev/break-glass"] = json!(reason);
        run(&set, Req { new, ..mk_req() })
    };
    let v = with("INC-42 outage");
    assert_eq!((v.decision, v.reason()), (Decision::BreakGlass, Some("INC-42 outage")));
    assert_eq!(with("  ").decision, Decision::Denied);
}

#[test]
fn modes_and_scopes() {
    assert_eq!(run(&mk_set("warn", "all"), mk_req()).decision, Decision::Warned);
    assert_eq!(run(&mk_set("audit", "all"), mk_req()).decision, Decision::Audited);
    assert_eq!(run(&mk_set("repair", "all"), mk_req()).decision, Decision::Denied);
    let untracked = || Req {
        old: json!({"metadata": {"name": "r"}, "spec": {"w": 1}}),
        new: json!({"metadata": {"name": "r"}, "spec": {"w": 2}}),
        ..mk_req()
    };
    assert_eq!(run(&mk_set("enforce", "managed"), untracked()).rule.to_string(), "scope:untracked");
    assert_eq!(run(&mk_set("enforce", "all"), untracked()).decision, Decision::Denied);
    assert_eq!(run(&mk_set("enforce", "managed"), mk_req()).decision, Decision::Denied);
}

#[test]
fn most_severe_policy_wins() {
    let yaml = format!(
        "{}---\n{}",
        BASE.replace("MODE", "audit").replace("SCOPE", "all"),
        BASE.replace("MODE", "enforce").replace("SCOPE", "all").replace("name: mesh", "name: strict")
    );
    let set = PolicySet::new(load_str(Path::new("t.yaml"), &yaml).unwrap(), &[]);
    let v = run(&set, mk_req());
    assert_eq!((v.decision, v.policy_name()), (Decision::Denied, Some("strict")));
}

#[test]
fn messages_say_who_what_and_where_to_change_it() {
    let v = run(&mk_set("enforce", "all"), mk_req());
    let alice = UserInfo { username: "alice@example.com".into(), uid: None, groups: vec![] };
    assert_eq!(
        v.message(&alice, "E1"),
        "driftgate: VirtualService shop/reviews is managed by GitOps (Argo CD app mesh-config); direct changes by \
         alice@example.com are not allowed — change it in Git. Changed: /spec/w (90 → 70). Drift event E1."
    );
    let deleted = run(&mk_set("enforce", "all"), Req { op: "DELETE", new: Value::Null, name: "", ..mk_req() });
    assert_eq!(deleted.object.name, "reviews");
    assert!(deleted.message(&alice, "E2").contains("Attempted: delete. Drift event E2."));
    let many = run(
        &mk_set("enforce", "all"),
        Req { new: tracked(json!({"a": 1, "b": 2, "c": 3, "d": 4, "w": 90})), ..mk_req() },
    );
    assert!(many.message(&alice, "E3").contains("/spec/c (unset → 3) and 1 more."), "{}", many.message(&alice, "E3"));
}
