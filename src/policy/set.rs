//! The loaded policies, indexed for the decision core.
//!
//! Look-ups go group → kind/resource → namespace, so the cost of finding the policies for a
//! request does not grow with the number of policies that do not apply to it.

use std::collections::{HashMap, HashSet};

use super::load::Loaded;
use super::{DriftPolicy, ResourceRule};
use crate::admission::Operation;

/// Namespaces that are never protected, whatever the policies say: a webhook that guards
/// kube-system or its own namespace can lock a cluster out.
pub const NEVER_PROTECTED_DEFAULT: &[&str] = &["kube-system"];

const ANY: &str = "*";

/// A policy index with the operations its rule protects (a bit per [`Operation`]).
type Entry = (usize, u8);

fn bit(operation: Operation) -> u8 {
    match operation {
        Operation::Create => 1,
        Operation::Update => 2,
        Operation::Delete => 4,
        Operation::Connect => 8,
    }
}

fn mask(rule: &ResourceRule) -> u8 {
    if rule.operations.is_empty() { u8::MAX } else { rule.operations.iter().fold(0, |m, op| m | bit(*op)) }
}

#[derive(Debug, Default)]
struct Bucket {
    any_namespace: Vec<Entry>,
    by_namespace: HashMap<String, Vec<Entry>>,
}

/// An immutable, indexed set of policies. Share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Loaded>,
    excluded: Vec<HashSet<String>>,
    index: HashMap<String, HashMap<String, Bucket>>,
    never_protected: HashSet<String>,
}

impl PolicySet {
    /// Builds the set. `never_protected` are namespaces no policy may protect (kube-system is
    /// always among them).
    pub fn new(policies: Vec<Loaded>, never_protected: &[String]) -> Self {
        let mut set = PolicySet {
            never_protected: NEVER_PROTECTED_DEFAULT
                .iter()
                .map(|s| s.to_string())
                .chain(never_protected.iter().cloned())
                .collect(),
            ..PolicySet::default()
        };
        for (i, loaded) in policies.iter().enumerate() {
            let spec = &loaded.policy.spec;
            set.excluded.push(spec.namespaces.exclude.iter().map(|n| n.0.clone()).collect());
            for rule in &spec.resources {
                let names: Vec<&str> = if rule.kinds.is_empty() && rule.resources.is_empty() {
                    vec![ANY]
                } else {
                    rule.kinds.iter().chain(&rule.resources).map(|n| n.0.as_str()).collect()
                };
                let entry = (i, mask(rule));
                for name in names {
                    let bucket = set.index.entry(rule.group.clone()).or_default().entry(name.to_owned()).or_default();
                    if spec.namespaces.include.is_empty() {
                        bucket.any_namespace.push(entry);
                    } else {
                        for ns in &spec.namespaces.include {
                            bucket.by_namespace.entry(ns.0.clone()).or_default().push(entry);
                        }
                    }
                }
            }
        }
        set.policies = policies;
        set
    }

    /// All policies, in load order.
    pub fn policies(&self) -> impl Iterator<Item = &DriftPolicy> {
        self.policies.iter().map(|l| &l.policy)
    }

    /// The policies with where they were loaded from.
    pub fn loaded(&self) -> &[Loaded] {
        &self.policies
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// True when the set holds no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether `namespace` is one that is never protected.
    pub fn is_never_protected(&self, namespace: &str) -> bool {
        self.never_protected.contains(namespace)
    }

    /// The policies that protect `operation` on `group`'s `kind` (or plural `resource`) in
    /// `namespace`, in load order, each once. `out` is cleared first; passing it in lets callers
    /// reuse its buffer.
    pub fn matching(
        &self,
        group: &str,
        kind: &str,
        resource: &str,
        namespace: &str,
        operation: Operation,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        let Some(by_name) = self.index.get(group) else { return };
        let wanted = bit(operation);
        let mut take = |entries: &[Entry]| {
            out.extend(entries.iter().filter(|(_, ops)| ops & wanted != 0).map(|(i, _)| *i));
        };
        for name in [kind, resource, ANY] {
            if name.is_empty() {
                continue;
            }
            if let Some(bucket) = by_name.get(name) {
                take(&bucket.any_namespace);
                if let Some(entries) = bucket.by_namespace.get(namespace) {
                    take(entries);
                }
            }
        }
        out.retain(|&i| !self.excluded[i].contains(namespace));
        out.sort_unstable();
        out.dedup();
    }

    /// The policy at `index` (as returned by [`PolicySet::matching`]).
    pub fn get(&self, index: usize) -> Option<&DriftPolicy> {
        self.policies.get(index).map(|l| &l.policy)
    }

    /// The index of the policy named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.policies.iter().position(|l| l.policy.metadata.name.0 == name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::load_str;

    fn mk_set(yaml: &str) -> PolicySet {
        PolicySet::new(load_str(Path::new("t.yaml"), yaml).unwrap(), &["driftgate".to_owned()])
    }

    fn mk_policy(name: &str, resources: &str, namespaces: &str) -> String {
        format!(
            "---\napiVersion: driftgate.dev/v1alpha1\nkind: DriftPolicy\nmetadata: {{name: {name}}}\nspec:\n  resources: {resources}\n  namespaces: {namespaces}\n  gitops: {{users: [ci]}}\n"
        )
    }

    #[test]
    fn finds_policies_by_group_kind_resource_and_namespace() {
        let yaml = [
            mk_policy("all-istio", "[{group: networking.istio.io}]", "{}"),
            mk_policy("vs-shop", "[{group: networking.istio.io, kinds: [VirtualService]}]", "{include: [shop]}"),
            mk_policy("not-dev", "[{group: networking.istio.io, kinds: [VirtualService]}]", "{exclude: [dev]}"),
            mk_policy("deploy-scale", "[{group: apps, resources: [deployments]}]", "{}"),
            mk_policy("ns-delete", "[{group: '', kinds: [Namespace], operations: [DELETE]}]", "{}"),
        ]
        .concat();
        let set = mk_set(&yaml);
        let mut out = Vec::new();
        let names = |out: &Vec<usize>| -> Vec<String> {
            out.iter().map(|&i| set.get(i).unwrap().metadata.name.0.clone()).collect()
        };
        let update = Operation::Update;
        set.matching("networking.istio.io", "VirtualService", "virtualservices", "shop", update, &mut out);
        assert_eq!(names(&out), ["all-istio", "vs-shop", "not-dev"]);
        set.matching("networking.istio.io", "VirtualService", "virtualservices", "dev", update, &mut out);
        assert_eq!(names(&out), ["all-istio"]);
        set.matching("networking.istio.io", "Gateway", "gateways", "shop", update, &mut out);
        assert_eq!(names(&out), ["all-istio"]);
        set.matching("apps", "Scale", "deployments", "shop", update, &mut out);
        assert_eq!(names(&out), ["deploy-scale"]);
        set.matching("security.istio.io", "AuthorizationPolicy", "authorizationpolicies", "shop", update, &mut out);
        assert!(out.is_empty());
        set.matching("", "Namespace", "namespaces", "shop", update, &mut out);
        assert!(out.is_empty(), "only DELETE of namespaces is protected");
        set.matching("", "Namespace", "namespaces", "shop", Operation::Delete, &mut out);
        assert_eq!(names(&out), ["ns-delete"]);
        assert_eq!(set.index_of("vs-shop"), Some(1));
        assert_eq!(set.index_of("nope"), None);
        assert!(set.is_never_protected("kube-system"));
        assert!(set.is_never_protected("driftgate"));
        assert!(!set.is_never_protected("shop"));
    }
}
