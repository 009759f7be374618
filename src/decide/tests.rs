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
    outcome(set, &Grants::none(), Endpoint::validate(None), time::OffsetDateTime::UNIX_EPOCH, r).verdict
}

fn outcome(set: &PolicySet, grants: &Grants, endpoint: Endpoint<'_>, now: time::OffsetDateTime, r: Req) -> Outcome {
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
    let stamp = EventStamp { id: "E".into(), time: now, trace_id: None };
    admit(set, grants, &review.request, endpoint, &stamp).unwrap()
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

const PROGRESSIVE: &str = "apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata: {name: mesh}
spec:
  resources: [{group: networking.istio.io}]
  gitops: {serviceAccounts: [argocd/argocd-application-controller]}
  exemptions:
    - name: rollouts-weights
      serviceAccounts: [argo-rollouts/argo-rollouts]
      operations: [UPDATE]
      paths: [/spec/http/*/route/*/weight, /metadata/labels/rollouts.argoproj.io~1gatewayapi-canary]
    - name: flagger-generated
      serviceAccounts: [istio-system/flagger]
      operations: [CREATE, UPDATE]
      owners: [{apiGroup: flagger.app, kind: Canary}]
";

fn routes(w: i64) -> Value {
    json!({"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "stable"}, "weight": 100 - w},
        {"destination": {"host": "canary"}, "weight": w}]}]})
}

fn owned(spec: Value, owner_kind: &str) -> Value {
    json!({"metadata": {"name": "podinfo", "ownerReferences": [
        {"apiVersion": "flagger.app/v1beta1", "kind": owner_kind, "name": "podinfo", "uid": "u-1", "controller": true}]},
        "spec": spec})
}

#[test]
fn progressive_delivery_controllers_write_what_they_write_and_nothing_else() {
    let set = PolicySet::new(load_str(Path::new("t.yaml"), PROGRESSIVE).unwrap(), &[]);
    const ROLLOUTS: &str = "system:serviceaccount:argo-rollouts:argo-rollouts";
    const FLAGGER: &str = "system:serviceaccount:istio-system:flagger";
    let mut labelled = tracked(routes(30));
    labelled["metadata"]["labels"] = json!({"rollouts.argoproj.io/gatewayapi-canary": "in-progress"});
    let mut rehosted = routes(30);
    rehosted["hosts"] = json!(["reviews", "evil.example.com"]);
    let cases: Vec<(&str, Req, Decision, &str)> = vec![
        (
            "rollouts shifts weights",
            Req { user: ROLLOUTS, old: tracked(routes(0)), new: tracked(routes(30)), ..mk_req() },
            Decision::Allowed,
            "exemption:rollouts-weights",
        ),
        (
            "rollouts adds its first label with the weights (the labels map is new)",
            Req { user: ROLLOUTS, old: tracked(routes(0)), new: labelled, ..mk_req() },
            Decision::Allowed,
            "exemption:rollouts-weights",
        ),
        (
            "rollouts changes hosts too",
            Req { user: ROLLOUTS, old: tracked(routes(0)), new: tracked(rehosted), ..mk_req() },
            Decision::Denied,
            "exemption:rollouts-weights:partial",
        ),
        (
            "a person shifts weights",
            Req { old: tracked(routes(0)), new: tracked(routes(30)), ..mk_req() },
            Decision::Denied,
            "protected",
        ),
        (
            "flagger creates what a Canary owns",
            Req { op: "CREATE", user: FLAGGER, old: Value::Null, new: owned(routes(0), "Canary"), ..mk_req() },
            Decision::Allowed,
            "exemption:flagger-generated",
        ),
        (
            "flagger rewrites what a Canary owns",
            Req {
                user: FLAGGER,
                old: owned(routes(0), "Canary"),
                new: owned(rehost(routes(10)), "Canary"),
                ..mk_req()
            },
            Decision::Allowed,
            "exemption:flagger-generated",
        ),
        (
            "flagger creates something a Canary does not own",
            Req { op: "CREATE", user: FLAGGER, old: Value::Null, new: owned(routes(0), "MetricTemplate"), ..mk_req() },
            Decision::Denied,
            "protected",
        ),
        (
            "flagger writes an ownerReference onto a Git-managed object",
            Req { user: FLAGGER, old: tracked(routes(0)), new: owned(routes(10), "Canary"), ..mk_req() },
            Decision::Denied,
            "protected",
        ),
        (
            "flagger drops the Canary's ownerReference",
            Req {
                user: FLAGGER,
                old: owned(routes(0), "Canary"),
                new: json!({"metadata": {"name": "podinfo"}, "spec": routes(10)}),
                ..mk_req()
            },
            Decision::Denied,
            "protected",
        ),
        (
            "flagger deletes what a Canary owns (the garbage collector does that)",
            Req { op: "DELETE", user: FLAGGER, old: owned(routes(0), "Canary"), new: Value::Null, ..mk_req() },
            Decision::Denied,
            "protected",
        ),
        (
            "a person changes what a Canary owns",
            Req { old: owned(routes(0), "Canary"), new: owned(routes(50), "Canary"), ..mk_req() },
            Decision::Denied,
            "protected",
        ),
    ];
    for (what, req, decision, rule) in cases {
        let v = run(&set, req);
        assert_eq!((v.decision, v.rule.to_string().as_str()), (decision, rule), "{what}: {v:?}");
    }
}

/// Flagger rewrites the whole spec: a changed host as well as the weights.
fn rehost(mut spec: Value) -> Value {
    spec["hosts"] = json!(["podinfo", "podinfo.shop"]);
    spec
}

mod grants {
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::policy::grant::{Grant, GrantLimits};

    const T0: OffsetDateTime = datetime!(2026-12-02 14:00 UTC);

    fn grant_object(spec: Value) -> Value {
        json!({"apiVersion": "driftgate.dev/v1alpha1", "kind": "BreakGlassGrant",
               "metadata": {"name": "inc-4711", "namespace": "driftgate", "creationTimestamp": "2026-12-02T14:00:00Z"},
               "spec": spec})
    }

    fn alice_in_shop() -> Value {
        grant_object(json!({"subjects": [{"kind": "User", "name": "alice@example.com"}],
                            "scope": {"namespaces": ["shop"], "kinds": ["VirtualService"]},
                            "duration": "1h", "reason": "INC-4711", "granter": "bob@example.com"}))
    }

    fn live() -> Grants {
        let g = Grant::from_object(&alice_in_shop(), GrantLimits::default(), T0).unwrap();
        Grants { items: vec![g], limits: GrantLimits::default() }
    }

    #[test]
    fn a_grant_lets_its_subject_through_its_scope_until_it_expires_and_says_so() {
        let set = mk_set("enforce", "all");
        let at = |now, r| outcome(&set, &live(), Endpoint::validate(None), now, r);
        let through = at(T0 + Duration::minutes(30), mk_req());
        assert_eq!(through.verdict.decision, Decision::BreakGlass);
        assert_eq!(through.verdict.rule.to_string(), "break-glass:grant inc-4711");
        let event = through.event.unwrap();
        let grant = event.grant.unwrap();
        assert_eq!(
            (grant.name.as_str(), grant.reason.as_str(), grant.granter.as_str()),
            ("inc-4711", "INC-4711", "bob@example.com")
        );
        assert!(
            event.message.contains("grant inc-4711 by bob@example.com until 2026-12-02T15:00:00Z, reason: INC-4711"),
            "{}",
            event.message
        );
        // Expired, another namespace, another person: refused as ever.
        assert_eq!(at(T0 + Duration::hours(1), mk_req()).verdict.decision, Decision::Denied);
        assert_eq!(at(T0, Req { ns: "payments", ..mk_req() }).verdict.decision, Decision::Denied);
        assert_eq!(at(T0, Req { user: "carol@example.com", ..mk_req() }).verdict.decision, Decision::Denied);
    }

    fn grant_write(op: &'static str, user: &'static str, old: Value, new: Value) -> Outcome {
        let set = mk_set("enforce", "all");
        let r = Req {
            op,
            user,
            groups: vec![],
            ns: "driftgate",
            name: "inc-4711",
            group: "driftgate.dev",
            kind: "BreakGlassGrant",
            sub: None,
            old,
            new,
        };
        outcome(&set, &Grants::none(), Endpoint::grants(), T0, r)
    }

    #[test]
    fn grant_writes_are_checked_and_recorded() {
        let created = grant_write("CREATE", "bob@example.com", Value::Null, alice_in_shop());
        assert_eq!(created.verdict.decision, Decision::Audited);
        assert_eq!(created.verdict.rule.to_string(), "grant:create");
        assert!(created.answer.allowed);
        let event = created.event.unwrap();
        assert_eq!(event.grant.unwrap().expires_at, Some(T0 + Duration::hours(1)));
        assert!(
            event.message.contains("granted by bob@example.com until 2026-12-02T15:00:00Z, reason: INC-4711"),
            "{}",
            event.message
        );

        let refused = |op, user, old, new| {
            let o = grant_write(op, user, old, new);
            assert_eq!(o.verdict.decision, Decision::Denied, "{:?}", o.verdict);
            assert!(o.event.is_some(), "a refused grant is recorded too");
            o.event.unwrap().message.into_owned()
        };
        let mut no_reason = alice_in_shop();
        no_reason["spec"]["reason"] = json!("");
        assert!(refused("CREATE", "bob@example.com", Value::Null, no_reason).contains("spec.reason is required"));
        let mut long = alice_in_shop();
        long["spec"]["duration"] = json!("8h");
        assert!(refused("CREATE", "bob@example.com", Value::Null, long).contains("longer than the 4h"));
        assert!(
            refused("CREATE", "mallory@example.com", Value::Null, alice_in_shop())
                .contains("spec.granter must be the user creating the grant, mallory@example.com")
        );
        let mut own = alice_in_shop();
        own["spec"]["granter"] = json!("alice@example.com");
        assert!(refused("CREATE", "alice@example.com", Value::Null, own).contains("may not name its own granter"));
        let mut widened = alice_in_shop();
        widened["spec"]["scope"]["namespaces"] = json!(["shop", "payments"]);
        assert!(refused("UPDATE", "bob@example.com", alice_in_shop(), widened).contains("spec cannot change"));

        let mut labelled = alice_in_shop();
        labelled["metadata"]["labels"] = json!({"team": "shop"});
        assert_eq!(
            grant_write("UPDATE", "bob@example.com", alice_in_shop(), labelled).verdict.decision,
            Decision::Audited
        );
        let revoked = grant_write("DELETE", "carol@example.com", alice_in_shop(), Value::Null);
        assert_eq!(revoked.verdict.rule.to_string(), "grant:delete");
        assert!(revoked.event.unwrap().message.contains("revoked by carol@example.com"));
    }
}
