//! The tamper guard: a ValidatingAdmissionPolicy and its binding that refuse UPDATE and DELETE
//! of driftgate's own install (its webhook configurations, StatefulSet, Services, policies
//! ConfigMap and namespace) by anyone but the policies' GitOps writers and break-glass groups.
//!
//! The kube-apiserver never sends webhook configurations to webhooks, so driftgate cannot guard
//! itself; an admission policy runs in the kube-apiserver and holds while driftgate is down. The
//! kube-apiserver exempts admission policies and bindings from admission policies, so the guard
//! itself is protected by RBAC alone. Pure.

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec, ValidatingAdmissionPolicySpec, Validation,
};

use super::webhooks::cel_string;
use super::{APP, HEADLESS_SERVICE, InstallOptions, POLICIES_CONFIGMAP, meta, strings};
use crate::policy::DriftPolicy;

/// The guard's name (policy and binding).
pub const TAMPER_GUARD: &str = "driftgate-tamper-guard";
/// How every refusal of the guard begins (`driftgate unregister` recognises it by this).
pub const REFUSAL_PREFIX: &str = "driftgate tamper guard:";
/// cert-manager's CA injector, which may write the webhooks' `caBundle` and nothing else.
pub const CA_INJECTOR: &str = "system:serviceaccount:cert-manager:cert-manager-cainjector";

/// True only for the CA injector changing nothing but the webhooks' `caBundle`.
fn ca_bundle_only() -> String {
    let same =
        |field: &str| format!("(has(o.{field}) == has(w.{field}) && (!has(w.{field}) || o.{field} == w.{field}))");
    let fields = [
        "rules",
        "failurePolicy",
        "matchPolicy",
        "namespaceSelector",
        "objectSelector",
        "matchConditions",
        "sideEffects",
        "timeoutSeconds",
        "admissionReviewVersions",
        "reinvocationPolicy",
        "clientConfig.service",
        "clientConfig.url",
    ];
    let each: Vec<String> = fields.iter().map(|f| same(f)).collect();
    format!(
        "request.userInfo.username == {} && request.operation == 'UPDATE' \
         && request.resource.resource.endsWith('webhookconfigurations') \
         && object.webhooks.size() == oldObject.webhooks.size() \
         && object.webhooks.all(w, oldObject.webhooks.exists(o, o.name == w.name && {}))",
        cel_string(CA_INJECTOR),
        each.join(" && ")
    )
}

fn rule(group: &str, resources: &[&str], names: &[&str]) -> NamedRuleWithOperations {
    NamedRuleWithOperations {
        api_groups: Some(strings(&[group])),
        api_versions: Some(strings(&["*"])),
        operations: Some(strings(&["UPDATE", "DELETE"])),
        resources: Some(strings(resources)),
        resource_names: Some(strings(names)),
        scope: Some("*".to_owned()),
    }
}

/// Who may change driftgate's install: every policy's GitOps writers and break-glass groups.
fn allowed(policies: &[DriftPolicy]) -> String {
    let mut users: Vec<String> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let add = |list: &mut Vec<String>, item: String| {
        if !list.contains(&item) {
            list.push(item);
        }
    };
    for p in policies {
        for sa in &p.spec.gitops.service_accounts {
            match &sa.name {
                Some(name) => add(&mut users, format!("system:serviceaccount:{}:{name}", sa.namespace)),
                None => add(&mut prefixes, format!("system:serviceaccount:{}:", sa.namespace)),
            }
        }
        for u in &p.spec.gitops.users {
            add(&mut users, u.0.clone());
        }
        for g in p.spec.gitops.groups.iter().chain(&p.spec.break_glass.groups) {
            add(&mut groups, g.0.clone());
        }
    }
    let list = |items: &[String]| format!("[{}]", items.iter().map(|i| cel_string(i)).collect::<Vec<_>>().join(", "));
    let mut terms = vec![format!("request.userInfo.username in {}", list(&users))];
    terms.extend(prefixes.iter().map(|p| format!("request.userInfo.username.startsWith({})", cel_string(p))));
    if !groups.is_empty() {
        terms.push(format!(
            "(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in {}))",
            list(&groups)
        ));
    }
    terms.join(" || ")
}

/// The guard for an install of `policies` in `opts.namespace`.
pub fn tamper_guard(
    policies: &[DriftPolicy],
    opts: &InstallOptions,
) -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    let ns = opts.namespace.as_str();
    let rules = vec![
        rule(
            "admissionregistration.k8s.io",
            &["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
            &[APP],
        ),
        rule("apps", &["statefulsets"], &[APP]),
        rule("", &["services"], &[APP, HEADLESS_SERVICE]),
        rule("", &["configmaps"], &[POLICIES_CONFIGMAP]),
        rule("", &["namespaces"], &[ns]),
    ];
    let conditions = vec![
        MatchCondition {
            name: "driftgate-install".to_owned(),
            // The namespaced objects in driftgate's namespace only (names repeat elsewhere); a
            // cluster-scoped request has no namespace at all.
            expression: format!(
                "!has(request.namespace) || request.namespace == '' || request.namespace == {}",
                cel_string(ns)
            ),
        },
        MatchCondition {
            name: "not-gitops-or-break-glass".to_owned(),
            expression: format!("!({})", allowed(policies)),
        },
    ];
    let message = format!(
        "'{REFUSAL_PREFIX} ' + request.resource.resource + ' ' + request.name + ' is part of driftgate\\'s install, \
         which only the GitOps identities change. Change it in Git; to remove driftgate, run `driftgate unregister` \
         as the GitOps identity or a break-glass member ({}), or delete it from Git.'",
        "kubectl --as-group driftgate:break-glass"
    );
    let policy = ValidatingAdmissionPolicy {
        metadata: meta(TAMPER_GUARD, None),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".to_owned()),
            match_constraints: Some(MatchResources { resource_rules: Some(rules), ..MatchResources::default() }),
            match_conditions: Some(conditions),
            validations: Some(vec![Validation {
                expression: ca_bundle_only(),
                message_expression: Some(message),
                reason: Some("Forbidden".to_owned()),
                ..Validation::default()
            }]),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        status: None,
    };
    let binding = ValidatingAdmissionPolicyBinding {
        metadata: meta(TAMPER_GUARD, None),
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(TAMPER_GUARD.to_owned()),
            validation_actions: Some(strings(&["Deny"])),
            ..ValidatingAdmissionPolicyBindingSpec::default()
        }),
    };
    (policy, binding)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy;

    #[test]
    fn lets_only_the_gitops_writers_and_break_glass_change_the_install() {
        let policies: Vec<DriftPolicy> =
            policy::load_str(Path::new("d.yaml"), include_str!("../../policies/default.yaml"))
                .unwrap()
                .into_iter()
                .map(|l| l.policy)
                .collect();
        let (vap, binding) = tamper_guard(&policies, &InstallOptions::default());
        let spec = vap.spec.unwrap();
        let conditions = spec.match_conditions.unwrap();
        assert_eq!(
            conditions[1].expression,
            "!(request.userInfo.username in ['system:serviceaccount:argocd:argocd-application-controller', \
             'system:serviceaccount:flux-system:kustomize-controller', 'system:serviceaccount:flux-system:helm-controller'] \
             || (has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in ['driftgate:break-glass'])))"
        );
        let rules = spec.match_constraints.unwrap().resource_rules.unwrap();
        let names: Vec<Vec<String>> = rules.iter().map(|r| r.resource_names.clone().unwrap()).collect();
        assert_eq!(names[0], ["driftgate"]);
        assert_eq!(names[4], ["driftgate"], "the namespace");
        assert!(rules.iter().all(|r| r.operations.as_deref() == Some(&strings(&["UPDATE", "DELETE"])[..])));
        assert_eq!(binding.spec.unwrap().validation_actions, Some(strings(&["Deny"])));
    }
}
