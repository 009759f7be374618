//! What BreakGlassGrants need in a cluster: their CustomResourceDefinition, the
//! `driftgate-break-glass-granter` ClusterRole (the only role the install gives that may create
//! grants; bind it in driftgate's namespace to the people who may grant), and the validating
//! webhook entry that sends every grant write to driftgate (`/grants`). Pure.

use k8s_openapi::api::admissionregistration::v1::{RuleWithOperations, ValidatingWebhook};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::json;

use super::{InstallOptions, NAMESPACE_NAME_LABEL, WEBHOOK_TIMEOUT_SECONDS, meta, strings};
use crate::policy::grant;

/// The ClusterRole that may create, list and revoke grants.
pub const GRANTER_ROLE: &str = "driftgate-break-glass-granter";
/// The Role that lets driftgate read the grants of its namespace.
pub const READER_ROLE: &str = "driftgate-grants-reader";
/// The name of the grants' webhook entry.
pub const WEBHOOK_NAME: &str = "breakglassgrants.driftgate.dev";
/// The endpoint grant writes go to.
pub const PATH: &str = "/grants";

/// The BreakGlassGrant CustomResourceDefinition: namespaced (driftgate watches its own
/// namespace only), every field typed, a reason required.
pub fn crd() -> CustomResourceDefinition {
    let strings_list = json!({"type": "array", "items": {"type": "string", "minLength": 1}});
    let subject = json!({
        "type": "object",
        "required": ["kind", "name"],
        "properties": {
            "kind": {"type": "string", "enum": ["User", "Group", "ServiceAccount"]},
            "name": {"type": "string", "minLength": 1},
            "namespace": {"type": "string", "description": "A ServiceAccount's namespace."},
        },
    });
    let spec = json!({
        "type": "object",
        "required": ["subjects", "scope", "reason", "granter"],
        "properties": {
            "subjects": {
                "type": "array",
                "minItems": 1,
                "description": "Who may change the scope: users, groups, service accounts.",
                "items": subject,
            },
            "scope": {
                "type": "object",
                "description": "What may be changed: each list given must match (at least one list).",
                "properties": {"namespaces": strings_list, "kinds": strings_list, "names": strings_list},
            },
            "expiresAt": {"type": "string", "format": "date-time", "description": "When the grant stops matching (or give duration)."},
            "duration": {"type": "string", "description": "How long from creation, e.g. 1h or 30m (or give expiresAt)."},
            "reason": {"type": "string", "minLength": 1, "description": "Why: an incident reference."},
            "granter": {"type": "string", "minLength": 1, "description": "The user creating the grant; driftgate checks it against the request."},
        },
    });
    let schema = json!({
        "type": "object",
        "description": "Lets named subjects change a scope of driftgate-protected objects until it expires, for a reason; checked and recorded by driftgate.",
        "required": ["spec"],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}, "spec": spec},
    });
    let columns = json!([
        {"name": "Granter", "type": "string", "jsonPath": ".spec.granter"},
        {"name": "Reason", "type": "string", "jsonPath": ".spec.reason"},
        {"name": "Duration", "type": "string", "jsonPath": ".spec.duration"},
        {"name": "Expires At", "type": "string", "jsonPath": ".spec.expiresAt"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]);
    let value = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", grant::PLURAL, grant::GROUP), "labels": super::labels()},
        "spec": {
            "group": grant::GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": grant::KIND,
                "listKind": format!("{}List", grant::KIND),
                "plural": grant::PLURAL,
                "singular": grant::KIND.to_lowercase(),
                "shortNames": ["bgg"],
                "categories": ["driftgate"],
            },
            "versions": [{
                "name": grant::VERSION,
                "served": true,
                "storage": true,
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    });
    // A literal of this module's own that the unit test reads back: it always is the type.
    serde_json::from_value(value).unwrap_or_default()
}

/// The ClusterRole of granters: bind it in driftgate's namespace (a RoleBinding) to the people
/// who may grant break-glass.
pub fn granter_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(GRANTER_ROLE, None),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&[grant::GROUP])),
            resources: Some(strings(&[grant::PLURAL])),
            verbs: strings(&["get", "list", "watch", "create", "delete"]),
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    }
}

/// The Role (and its binding to driftgate's ServiceAccount) that lets driftgate watch the grants
/// of its own namespace, and nothing else.
pub fn reader(ns: &str) -> (Role, RoleBinding) {
    let role = Role {
        metadata: meta(READER_ROLE, Some(ns)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&[grant::GROUP])),
            resources: Some(strings(&[grant::PLURAL])),
            verbs: strings(&["get", "list", "watch"]),
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(READER_ROLE, Some(ns)),
        role_ref: super::role_ref("Role", READER_ROLE),
        subjects: Some(super::driftgate_account(ns)),
    };
    (role, binding)
}

/// The webhook entry for grant writes in driftgate's namespace: everyone's, failing closed (a
/// grant is never made unchecked; while driftgate is down the break-glass group is the way in).
pub fn webhook(opts: &InstallOptions) -> ValidatingWebhook {
    ValidatingWebhook {
        name: WEBHOOK_NAME.to_owned(),
        admission_review_versions: strings(&["v1"]),
        client_config: super::webhooks::client_config(opts, PATH),
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(strings(&[grant::GROUP])),
            api_versions: Some(strings(&["*"])),
            operations: Some(strings(&["CREATE", "UPDATE", "DELETE"])),
            resources: Some(strings(&[grant::PLURAL])),
            scope: Some("Namespaced".to_owned()),
        }]),
        match_conditions: None,
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: NAMESPACE_NAME_LABEL.to_owned(),
                operator: "In".to_owned(),
                values: Some(vec![opts.namespace.clone()]),
            }]),
            ..LabelSelector::default()
        }),
        object_selector: Some(LabelSelector::default()),
        match_policy: Some("Equivalent".to_owned()),
        failure_policy: Some("Fail".to_owned()),
        side_effects: "NoneOnDryRun".to_owned(),
        timeout_seconds: Some(WEBHOOK_TIMEOUT_SECONDS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crd_reads_as_its_type_and_requires_a_reason() {
        let crd = crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("breakglassgrants.driftgate.dev"));
        assert_eq!(crd.spec.scope, "Namespaced");
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let required = &schema["openAPIV3Schema"]["properties"]["spec"]["required"];
        assert!(required.as_array().unwrap().contains(&json!("reason")), "{required}");
    }
}
