//! The webhook configurations derived from the policies: a validating webhook for each policy
//! (`/validate/<policy>`), a mutating one for each policy that repairs or stamps provenance
//! (`/mutate/<policy>`), with exactly the rules, operations, namespaces and `matchConditions`
//! that keep away from driftgate what it would allow anyway. Pure.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{
    APP, InstallOptions, MUTATE_WEBHOOK_SUFFIX, NAMESPACE_NAME_LABEL, VALIDATE_WEBHOOK_SUFFIX, WEBHOOK_TIMEOUT_SECONDS,
    meta, strings,
};
use crate::policy::{DriftPolicy, Identities, Mode, NEVER_PROTECTED_DEFAULT, ResourceRule};

/// The two webhook configurations derived from a policy set.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhooks {
    /// One validating webhook a policy, skipping its GitOps writers.
    pub validating: ValidatingWebhookConfiguration,
    /// One mutating webhook for each policy that repairs or stamps provenance (none with the
    /// shipped policies).
    pub mutating: MutatingWebhookConfiguration,
}

/// The plural resource name of a kind, as CRDs conventionally name it: lowercase; a consonant
/// and `y` become `ies`; `s`, `x`, `z`, `ch`, `sh` take `es`; anything else takes `s`. A CRD
/// with another plural is protected by listing `resources` in the policy instead.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.is_empty()
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with(['s', 'x', 'z']) || lower.ends_with("ch") || lower.ends_with("sh") {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

/// The webhook `resources` for one protected API group.
///
/// A whole group (no kinds, no resources, or `*`) is `*` plus `*/scale`; kinds become their
/// plurals (the server matches a kind on the object, not on its subresources); plural
/// `resources` are sent with their `scale` subresource, since the server protects a plural's
/// subresources too. `status` is never sent: status writes are always allowed (a built-in
/// rule), and sending them would put istiod's and every controller's status updates behind the
/// webhook.
pub fn rule_resources(rule: &ResourceRule) -> Vec<String> {
    let whole = (rule.kinds.is_empty() && rule.resources.is_empty())
        || rule.kinds.iter().chain(&rule.resources).any(|n| n.0 == "*");
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    if whole {
        push("*".to_owned());
        push("*/scale".to_owned());
        return out;
    }
    for kind in &rule.kinds {
        push(plural(&kind.0));
    }
    for resource in &rule.resources {
        push(resource.0.clone());
        if !resource.0.contains('/') {
            push(format!("{}/scale", resource.0));
        }
    }
    out
}

/// Rules for `(group, resources, operations)`: groups with the same resources and operations
/// share one rule (a rule matches every group with every resource it lists), in order of first
/// appearance.
fn rules(triples: Vec<(String, Vec<String>, Vec<String>)>) -> Vec<RuleWithOperations> {
    let mut merged: Vec<(Vec<String>, Vec<String>, Vec<String>)> = Vec::new();
    for (group, resources, operations) in triples {
        match merged.iter_mut().find(|(_, r, o)| *r == resources && *o == operations) {
            Some((groups, _, _)) => {
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
            None => merged.push((vec![group], resources, operations)),
        }
    }
    merged
        .into_iter()
        .map(|(groups, resources, operations)| RuleWithOperations {
            api_groups: Some(groups),
            api_versions: Some(strings(&["*"])),
            operations: Some(operations),
            resources: Some(resources),
            scope: Some("*".to_owned()),
        })
        .collect()
}

/// The operations of `rule` that the webhook sends, of those `allowed` (`CREATE`, …).
fn rule_operations(rule: &ResourceRule, allowed: &[&str]) -> Vec<String> {
    allowed
        .iter()
        .filter(|op| rule.operations.is_empty() || rule.operations.iter().any(|o| o.as_str() == **op))
        .map(|op| (*op).to_owned())
        .collect()
}

/// A policy's rules for one webhook: each resource rule with its operations among `allowed`;
/// subresources are left out when `objects_only` (the mutating answer patches objects only).
fn policy_rules(policy: &DriftPolicy, allowed: &[&str], objects_only: bool) -> Vec<RuleWithOperations> {
    let triples = policy
        .spec
        .resources
        .iter()
        .filter_map(|r| {
            let operations = rule_operations(r, allowed);
            let mut resources = rule_resources(r);
            if objects_only {
                resources.retain(|res| !res.contains('/'));
            }
            (!operations.is_empty() && !resources.is_empty()).then(|| (r.group.clone(), resources, operations))
        })
        .collect();
    rules(triples)
}

const VALIDATE_OPERATIONS: &[&str] = &["CREATE", "UPDATE", "DELETE"];
/// The mutating answer can change only what is written: a DELETE has nothing to stamp or repair.
const MUTATE_OPERATIONS: &[&str] = &["CREATE", "UPDATE"];

/// A CEL string literal.
pub fn cel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn cel_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(cel_string).collect();
    format!("[{}]", items.join(", "))
}

/// The `matchConditions` that keep a policy's GitOps writers away from its validating webhook:
/// all must be true for the request to be sent. The server allows these writers anyway
/// (`gitops:` rule), so skipping them in the kube-apiserver changes no answer, only latency and
/// the blast radius of an outage.
pub fn gitops_match_conditions(gitops: &Identities) -> Vec<MatchCondition> {
    let mut conditions = Vec::new();
    if !gitops.service_accounts.is_empty() {
        let exact: Vec<String> = gitops
            .service_accounts
            .iter()
            .filter_map(|sa| sa.name.as_ref().map(|n| format!("system:serviceaccount:{}:{n}", sa.namespace)))
            .collect();
        let mut terms = Vec::new();
        if !exact.is_empty() {
            terms.push(format!("request.userInfo.username in {}", cel_list(exact.iter().map(String::as_str))));
        }
        for sa in gitops.service_accounts.iter().filter(|sa| sa.name.is_none()) {
            let prefix = format!("system:serviceaccount:{}:", sa.namespace);
            terms.push(format!("request.userInfo.username.startsWith({})", cel_string(&prefix)));
        }
        conditions.push(MatchCondition {
            name: "not-gitops-service-account".to_owned(),
            expression: format!("!({})", terms.join(" || ")),
        });
    }
    if !gitops.users.is_empty() {
        conditions.push(MatchCondition {
            name: "not-gitops-user".to_owned(),
            expression: format!(
                "!(request.userInfo.username in {})",
                cel_list(gitops.users.iter().map(|u| u.0.as_str()))
            ),
        });
    }
    if !gitops.groups.is_empty() {
        conditions.push(MatchCondition {
            name: "not-gitops-group".to_owned(),
            expression: format!(
                "!(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in {}))",
                cel_list(gitops.groups.iter().map(|g| g.0.as_str()))
            ),
        });
    }
    conditions
}

/// Namespaces no webhook is ever called for: kube-system and driftgate's own.
fn never_protected(ns: &str) -> Vec<String> {
    let mut out: Vec<String> = NEVER_PROTECTED_DEFAULT.iter().map(|s| (*s).to_owned()).collect();
    if !out.iter().any(|n| n == ns) {
        out.push(ns.to_owned());
    }
    out
}

/// A selector on the immutable `kubernetes.io/metadata.name` label (set by the kube-apiserver;
/// nobody can opt a namespace out by labelling it): not in `skip`, and in `only` if given.
fn namespace_selector(skip: Vec<String>, only: Vec<String>) -> LabelSelector {
    let mut expressions = vec![LabelSelectorRequirement {
        key: NAMESPACE_NAME_LABEL.to_owned(),
        operator: "NotIn".to_owned(),
        values: Some(dedup(skip)),
    }];
    if !only.is_empty() {
        expressions.push(LabelSelectorRequirement {
            key: NAMESPACE_NAME_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(dedup(only)),
        });
    }
    LabelSelector { match_expressions: Some(expressions), ..LabelSelector::default() }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

pub(crate) fn client_config(opts: &InstallOptions, path: &str) -> WebhookClientConfig {
    let ca_bundle = opts.ca_bundle.clone().map(ByteString);
    match &opts.url {
        Some(base) => {
            WebhookClientConfig { url: Some(format!("{base}{path}")), ca_bundle, ..WebhookClientConfig::default() }
        }
        None => WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: opts.namespace.clone(),
                name: APP.to_owned(),
                path: Some(path.to_owned()),
                port: Some(443),
            }),
            ca_bundle,
            ..WebhookClientConfig::default()
        },
    }
}

/// A DNS label from a policy name (lowercase letters, digits and `-`, at most 63 characters).
fn dns_label(name: &str) -> String {
    super::dns_label(name, 63, "policy")
}

/// `<policy>.<suffix>` for each policy, unique even where two names map to one label.
fn webhook_names(policies: &[&DriftPolicy], suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(policies.len());
    for p in policies {
        let base = dns_label(&p.metadata.name.0);
        let mut label = base.clone();
        let mut n = 2;
        while names.iter().any(|existing| existing.starts_with(&format!("{label}."))) {
            let tail = format!("-{n}");
            label = format!("{}{tail}", base.chars().take(63 - tail.len()).collect::<String>());
            n += 1;
        }
        names.push(format!("{label}.{suffix}"));
    }
    names
}

/// The name of a policy's break-glass entry: `<policy>-break-glass.<suffix>`, its first label
/// kept within 63 characters.
fn break_glass_name(name: &str) -> String {
    const TAIL: &str = "-break-glass";
    let (label, suffix) = name.split_once('.').unwrap_or((name, ""));
    let base: String = label.chars().take(63 - TAIL.len()).collect();
    format!("{}{TAIL}.{suffix}", base.trim_end_matches('-'))
}

/// The path of a policy's endpoint: `/validate/<policy>`, the name percent-encoded.
pub fn policy_path(endpoint: &str, policy: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    format!("/{endpoint}/{}", percent_encoding::utf8_percent_encode(policy, SEGMENT))
}

fn failure_policy(fail: bool) -> String {
    if fail { "Fail" } else { "Ignore" }.to_owned()
}

/// A policy's namespace selector: never kube-system and driftgate's own namespace, nor the
/// policy's excluded ones; only its included ones, if it lists any.
fn policy_namespaces(policy: &DriftPolicy, never: &[String]) -> LabelSelector {
    let spec = &policy.spec;
    namespace_selector(
        never.iter().cloned().chain(spec.namespaces.exclude.iter().map(|n| n.0.clone())).collect(),
        spec.namespaces.include.iter().map(|n| n.0.clone()).collect(),
    )
}

/// The validating and mutating webhook configurations for a policy set: a validating webhook
/// for each policy, and a mutating one for each policy that repairs or stamps provenance.
pub fn webhooks(policies: &[DriftPolicy], opts: &InstallOptions) -> Webhooks {
    let never = never_protected(&opts.namespace);
    let all: Vec<&DriftPolicy> = policies.iter().collect();
    let validating: Vec<ValidatingWebhook> = all
        .iter()
        .zip(webhook_names(&all, VALIDATE_WEBHOOK_SUFFIX))
        .flat_map(|(p, name)| {
            let spec = &p.spec;
            let conditions = gitops_match_conditions(&spec.gitops);
            let fails_closed = matches!(spec.mode, Mode::Enforce | Mode::Repair);
            let hook = |name: String, conditions: Vec<MatchCondition>, fail: bool| ValidatingWebhook {
                name,
                admission_review_versions: strings(&["v1"]),
                client_config: client_config(opts, &policy_path("validate", &p.metadata.name.0)),
                rules: Some(policy_rules(p, VALIDATE_OPERATIONS, false)),
                match_conditions: (!conditions.is_empty()).then_some(conditions),
                namespace_selector: Some(policy_namespaces(p, &never)),
                object_selector: Some(LabelSelector::default()),
                match_policy: Some("Equivalent".to_owned()),
                failure_policy: Some(failure_policy(fail)),
                side_effects: "NoneOnDryRun".to_owned(),
                timeout_seconds: Some(WEBHOOK_TIMEOUT_SECONDS),
            };
            let groups: Vec<&str> = spec.break_glass.groups.iter().map(|g| g.0.as_str()).collect();
            if !fails_closed || groups.is_empty() {
                return vec![hook(name, conditions, fails_closed)];
            }
            // Break-glass members go to an entry of their own that fails open: judged and
            // recorded while driftgate is up, let through when it is down (an emergency must not
            // wait for the server it may be about to repair).
            let member =
                format!("has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in {})", cel_list(groups));
            let mut everyone = conditions.clone();
            everyone.push(MatchCondition { name: "not-break-glass".to_owned(), expression: format!("!({member})") });
            let mut members = conditions;
            members.push(MatchCondition { name: "break-glass".to_owned(), expression: member });
            let break_glass = break_glass_name(&name);
            vec![hook(name, everyone, true), hook(break_glass, members, false)]
        })
        .collect();

    let mutated: Vec<&DriftPolicy> = policies.iter().filter(|p| p.spec.needs_mutation()).collect();
    let mutating: Vec<MutatingWebhook> = mutated
        .iter()
        .zip(webhook_names(&mutated, MUTATE_WEBHOOK_SUFFIX))
        .map(|(p, name)| {
            let spec = &p.spec;
            // Provenance stamps every admitted write, GitOps's included; repair alone has nothing
            // to do for the GitOps writers, so their requests stay in the kube-apiserver.
            let conditions = if spec.provenance { Vec::new() } else { gitops_match_conditions(&spec.gitops) };
            MutatingWebhook {
                name,
                admission_review_versions: strings(&["v1"]),
                client_config: client_config(opts, &policy_path("mutate", &p.metadata.name.0)),
                rules: Some(policy_rules(p, MUTATE_OPERATIONS, true)),
                match_conditions: (!conditions.is_empty()).then_some(conditions),
                namespace_selector: Some(policy_namespaces(p, &never)),
                object_selector: Some(LabelSelector::default()),
                match_policy: Some("Equivalent".to_owned()),
                // Repair fails closed like enforce; stamping alone fails open.
                failure_policy: Some(failure_policy(spec.mode == Mode::Repair)),
                reinvocation_policy: Some("Never".to_owned()),
                side_effects: "NoneOnDryRun".to_owned(),
                timeout_seconds: Some(WEBHOOK_TIMEOUT_SECONDS),
            }
        })
        .collect();

    let mut validating = validating;
    validating.push(super::grants::webhook(opts));
    Webhooks {
        validating: ValidatingWebhookConfiguration { metadata: meta(APP, None), webhooks: Some(validating) },
        mutating: MutatingWebhookConfiguration { metadata: meta(APP, None), webhooks: Some(mutating) },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy;

    fn mk_policies(yaml: &str) -> Vec<DriftPolicy> {
        policy::load_str(Path::new("t.yaml"), yaml).unwrap().into_iter().map(|l| l.policy).collect()
    }

    fn mk_policy(name: &str, mode: &str, resources: &str, namespaces: &str) -> String {
        format!(
            "---\napiVersion: driftgate.dev/v1alpha1\nkind: DriftPolicy\nmetadata: {{name: {name}}}\nspec:\n  mode: {mode}\n  resources: {resources}\n  namespaces: {namespaces}\n  gitops: {{serviceAccounts: [argocd/argocd-application-controller, tenant-a/*], users: [ci], groups: [\"it's\"]}}\n"
        )
    }

    #[test]
    fn plurals_follow_the_crd_convention() {
        for (kind, want) in [
            ("VirtualService", "virtualservices"),
            ("Gateway", "gateways"),
            ("AuthorizationPolicy", "authorizationpolicies"),
            ("ServiceEntry", "serviceentries"),
            ("Telemetry", "telemetries"),
            ("HTTPRoute", "httproutes"),
            ("ServiceProfile", "serviceprofiles"),
            ("Ingress", "ingresses"),
            ("Mesh", "meshes"),
            ("Box", "boxes"),
            ("Y", "ys"),
        ] {
            assert_eq!(plural(kind), want, "{kind}");
        }
    }

    #[test]
    fn rule_resources_cover_exactly_what_the_server_protects() {
        let rule = |kinds: &[&str], resources: &[&str]| ResourceRule {
            group: "g".into(),
            kinds: kinds.iter().map(|k| policy::NonEmpty((*k).into())).collect(),
            resources: resources.iter().map(|k| policy::NonEmpty((*k).into())).collect(),
            operations: vec![],
        };
        for (kinds, resources, want) in [
            (&[][..], &[][..], &["*", "*/scale"][..]),
            (&["*"], &[], &["*", "*/scale"]),
            (&["Gateway", "HTTPRoute"], &[], &["gateways", "httproutes"]),
            (&[], &["deployments"], &["deployments", "deployments/scale"]),
            (&[], &["deployments/scale"], &["deployments/scale"]),
            (&["Deployment"], &["deployments"], &["deployments", "deployments/scale"]),
        ] {
            assert_eq!(rule_resources(&rule(kinds, resources)), want, "{kinds:?} {resources:?}");
        }
    }

    #[test]
    fn cel_strings_escape_quotes_and_backslashes() {
        for (raw, want) in [("a", "'a'"), ("it's", r"'it\'s'"), (r"a\b", r"'a\\b'"), ("a\nb", r"'a\nb'")] {
            assert_eq!(cel_string(raw), want);
        }
    }

    #[test]
    fn match_conditions_name_every_gitops_identity() {
        let p = &mk_policies(&mk_policy("p", "enforce", "[{group: g}]", "{}"))[0];
        let conditions = gitops_match_conditions(&p.spec.gitops);
        let got: Vec<(&str, &str)> = conditions.iter().map(|c| (c.name.as_str(), c.expression.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "not-gitops-service-account",
                    "!(request.userInfo.username in ['system:serviceaccount:argocd:argocd-application-controller'] || request.userInfo.username.startsWith('system:serviceaccount:tenant-a:'))"
                ),
                ("not-gitops-user", "!(request.userInfo.username in ['ci'])"),
                (
                    "not-gitops-group",
                    r"!(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ['it\'s']))"
                ),
            ]
        );
    }

    #[test]
    fn one_validating_webhook_per_policy_with_its_mode_and_namespaces() {
        let yaml = [
            mk_policy("Mesh GitOps", "enforce", "[{group: networking.istio.io}]", "{exclude: [istio-system]}"),
            mk_policy(
                "mesh-gitops",
                "audit",
                "[{group: gateway.networking.k8s.io, kinds: [HTTPRoute]}]",
                "{include: [shop]}",
            ),
            mk_policy(
                "fix",
                "repair",
                "[{group: apps, resources: [deployments]}]",
                "{include: [shop], exclude: [istio-system]}",
            ),
        ]
        .concat();
        let hooks = webhooks(&mk_policies(&yaml), &InstallOptions::default());
        let v = hooks.validating.webhooks.unwrap();
        let names: Vec<&str> = v.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mesh-gitops.validate.driftgate.dev",
                "mesh-gitops-break-glass.validate.driftgate.dev",
                "mesh-gitops-2.validate.driftgate.dev",
                "fix.validate.driftgate.dev",
                "fix-break-glass.validate.driftgate.dev",
                // BreakGlassGrant writes, whatever the policies.
                "breakglassgrants.driftgate.dev"
            ]
        );
        let v: Vec<ValidatingWebhook> =
            v.into_iter().filter(|w| w.name != super::super::grants::WEBHOOK_NAME).collect();
        // Enforce and repair fail closed, except for break-glass members, whose entry fails
        // open (an emergency must not wait for driftgate); warn never fails closed.
        let policies: Vec<&str> = v.iter().map(|w| w.failure_policy.as_deref().unwrap()).collect();
        assert_eq!(policies, ["Fail", "Ignore", "Ignore", "Fail", "Ignore"]);
        let last = |w: &ValidatingWebhook| w.match_conditions.clone().unwrap().pop().unwrap();
        let member =
            "has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ['driftgate:break-glass'])";
        assert_eq!((last(&v[0]).name, last(&v[0]).expression), ("not-break-glass".to_owned(), format!("!({member})")));
        assert_eq!((last(&v[1]).name, last(&v[1]).expression), ("break-glass".to_owned(), member.to_owned()));
        assert_eq!(v[0].match_conditions.as_ref().unwrap().len(), 4, "the GitOps writers skip both");
        let v: Vec<ValidatingWebhook> = v.into_iter().filter(|w| !w.name.contains("-break-glass.")).collect();
        let selector = |w: &ValidatingWebhook| -> Vec<(String, Vec<String>)> {
            w.namespace_selector
                .clone()
                .unwrap()
                .match_expressions
                .unwrap()
                .into_iter()
                .map(|e| (e.operator, e.values.unwrap()))
                .collect()
        };
        let s = |v: &[&str]| strings(v);
        assert_eq!(selector(&v[0]), [("NotIn".to_owned(), s(&["kube-system", "driftgate", "istio-system"]))]);
        assert_eq!(
            selector(&v[1]),
            [("NotIn".to_owned(), s(&["kube-system", "driftgate"])), ("In".to_owned(), s(&["shop"]))]
        );

        let paths: Vec<String> = v.iter().map(|w| w.client_config.service.clone().unwrap().path.unwrap()).collect();
        assert_eq!(paths, ["/validate/Mesh%20GitOps", "/validate/mesh-gitops", "/validate/fix"]);

        // Only the repair policy needs the mutating webhook; it skips the GitOps writers.
        let m = hooks.mutating.webhooks.unwrap();
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.name, "fix.mutate.driftgate.dev");
        assert_eq!(m.client_config.service.clone().unwrap().path.as_deref(), Some("/mutate/fix"));
        assert_eq!(m.failure_policy.as_deref(), Some("Fail"), "repair fails closed");
        assert_eq!(m.match_conditions.as_ref().map(Vec::len), Some(3), "GitOps writers never reach it");
        let rules: Vec<(Vec<String>, Vec<String>, Vec<String>)> = m
            .rules
            .clone()
            .unwrap()
            .into_iter()
            .map(|r| (r.api_groups.unwrap(), r.resources.unwrap(), r.operations.unwrap()))
            .collect();
        assert_eq!(rules, [(s(&["apps"]), s(&["deployments"]), s(&["CREATE", "UPDATE"]))]);
        let ms: Vec<(String, Vec<String>)> = m
            .namespace_selector
            .clone()
            .unwrap()
            .match_expressions
            .unwrap()
            .into_iter()
            .map(|e| (e.operator, e.values.unwrap()))
            .collect();
        assert_eq!(
            ms,
            [("NotIn".to_owned(), s(&["kube-system", "driftgate", "istio-system"])), ("In".to_owned(), s(&["shop"]))]
        );
    }

    #[test]
    fn provenance_puts_gitops_writes_through_the_mutating_webhook_and_fails_open() {
        let yaml = mk_policy("stamp", "enforce", "[{group: networking.istio.io}]", "{}") + "  provenance: true\n";
        let hooks = webhooks(&mk_policies(&yaml), &InstallOptions::default());
        let m = hooks.mutating.webhooks.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "stamp.mutate.driftgate.dev");
        assert!(m[0].match_conditions.is_none(), "every admitted write is stamped, GitOps's too");
        assert_eq!(m[0].failure_policy.as_deref(), Some("Ignore"));
        let none = webhooks(&mk_policies(&mk_policy("p", "enforce", "[{group: g}]", "{}")), &InstallOptions::default());
        assert_eq!(none.mutating.webhooks, Some(vec![]), "no policy repairs or stamps: no mutating webhook");
    }

    #[test]
    fn rule_operations_narrow_the_webhook_rules() {
        let yaml = mk_policy("ns", "enforce", "[{group: '', kinds: [Namespace], operations: [DELETE]}]", "{}");
        let hooks = webhooks(&mk_policies(&yaml), &InstallOptions::default());
        let rules = hooks.validating.webhooks.unwrap()[0].rules.clone().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups, Some(strings(&[""])));
        assert_eq!(rules[0].resources, Some(strings(&["namespaces"])));
        assert_eq!(rules[0].operations, Some(strings(&["DELETE"])));
    }

    #[test]
    fn break_glass_entries_keep_their_first_label_within_63_characters() {
        assert_eq!(break_glass_name("mesh.validate.driftgate.dev"), "mesh-break-glass.validate.driftgate.dev");
        let long = break_glass_name(&format!("{}.validate.driftgate.dev", "a".repeat(63)));
        assert_eq!(long.split('.').next().unwrap().len(), 63);
    }

    #[test]
    fn policy_names_become_unique_dns_labels() {
        for (name, want) in [("mesh-gitops", "mesh-gitops"), ("Mesh_GitOps.v2", "mesh-gitops-v2"), ("--", "policy")] {
            assert_eq!(dns_label(name), want);
        }
        assert_eq!(dns_label(&"a".repeat(100)).len(), 63);
    }
}
