//! Decoding a managedFields entry's `fieldsV1` into the JSON pointers (RFC 6901) of the fields
//! it owns, resolved against the live object. PURE.
//!
//! `fieldsV1` is a trie of the owned fields: `f:<name>` is a field of a map, `k:<json>` the item
//! of an associative list whose key fields have those values (`k:{"name":"http"}`), `v:<json>`
//! the item of a set with that value, `i:<n>` the item at index n of an atomic list, and `.` the
//! node itself. List items become their index in the object (`/spec/ports/0`); an item the
//! object no longer has keeps its key as the segment (`/spec/ports/k:{"port":80}`), so nothing
//! owned is lost. A node whose only child is `.` owns its existence and no value (an empty map
//! that others fill); it is not reported.

use serde_json::{Map, Value};

/// The leaf paths a `fieldsV1` trie owns in `object`, sorted and each once.
pub fn owned_paths(fields: &Value, object: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(children) = fields {
        walk(children, "", Some(object), &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn walk(children: &Map<String, Value>, path: &str, node: Option<&Value>, out: &mut Vec<String>) {
    for (key, sub) in children {
        if key == "." {
            continue;
        }
        let (segment, child) = step(key, node);
        let here = format!("{path}/{segment}");
        match sub {
            Value::Object(grand) if grand.keys().any(|k| k != ".") => walk(grand, &here, child, out),
            Value::Object(grand) if grand.is_empty() => out.push(here),
            // Only `.`: the node exists because of this manager, its contents are others'.
            Value::Object(_) => {}
            // Not a fieldsV1 trie node: report the path rather than lose it.
            _ => out.push(here),
        }
    }
}

/// The JSON-pointer segment for one `fieldsV1` key, and the object's value there (if any).
fn step<'o>(key: &str, node: Option<&'o Value>) -> (String, Option<&'o Value>) {
    if let Some(name) = key.strip_prefix("f:") {
        return (escape(name), node.and_then(|n| n.get(name)));
    }
    let items = node.and_then(Value::as_array);
    let found = |pred: &dyn Fn(&Value) -> bool| items.and_then(|items| items.iter().position(pred));
    let index = if let Some(n) = key.strip_prefix("i:") {
        n.parse::<usize>().ok()
    } else if let Some(json) = key.strip_prefix("k:") {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(wanted)) => found(&|item| wanted.iter().all(|(k, v)| item.get(k) == Some(v))),
            _ => None,
        }
    } else if let Some(json) = key.strip_prefix("v:") {
        match serde_json::from_str::<Value>(json) {
            Ok(wanted) => found(&|item| *item == wanted),
            Err(_) => None,
        }
    } else {
        None
    };
    match index {
        Some(i) => (i.to_string(), items.and_then(|items| items.get(i))),
        None => (escape(key), None),
    }
}

/// A map key as a JSON-pointer segment (`~` → `~0`, `/` → `~1`).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The managedFields entries of a captured object (tests/fixtures), by manager.
    fn mk_fixture_entry(fixture: &str, manager: &str) -> (Value, Value) {
        let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let object = review["request"]["object"].clone();
        let entry = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .unwrap()
            .clone();
        (entry["fieldsV1"].clone(), object)
    }

    #[test]
    fn decodes_a_real_kubectl_edit_and_client_side_apply() {
        let fixture = "virtualservice-update-kubectl-edit-human.validating.json";
        let (edit, object) = mk_fixture_entry(fixture, "kubectl-edit");
        assert_eq!(owned_paths(&edit, &object), ["/spec/http"]);
        let (apply, object) = mk_fixture_entry(fixture, "kubectl-client-side-apply");
        assert_eq!(
            owned_paths(&apply, &object),
            [
                "/metadata/annotations/argocd.argoproj.io~1tracking-id",
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                "/metadata/labels/app.kubernetes.io~1instance",
                "/spec/hosts",
            ]
        );
    }

    #[test]
    fn decodes_a_real_server_side_apply_and_status_write() {
        let (argocd, object) =
            mk_fixture_entry("gateway-create-argocd-server-side-apply.mutating.json", "argocd-controller");
        assert_eq!(
            owned_paths(&argocd, &object),
            [
                "/metadata/annotations/argocd.argoproj.io~1tracking-id",
                "/metadata/labels/app.kubernetes.io~1instance",
                "/spec/selector/istio",
                "/spec/servers",
            ]
        );
        let (status, object) = mk_fixture_entry("virtualservice-status-update-istiod.validating.json", "kubectl-patch");
        assert_eq!(owned_paths(&status, &object), ["/status/conditions", "/status/observedGeneration"]);
    }

    #[test]
    fn resolves_a_real_associative_list_by_its_keys() {
        let (apply, object) =
            mk_fixture_entry("deployment-create-argocd-kubectl-apply.mutating.json", "kubectl-client-side-apply");
        let paths = owned_paths(&apply, &object);
        let containers: Vec<&str> =
            paths.iter().filter_map(|p| p.strip_prefix("/spec/template/spec/containers/")).collect();
        assert_eq!(
            containers,
            [
                "0/image",
                "0/imagePullPolicy",
                "0/name",
                "0/ports/0/containerPort",
                "0/ports/0/protocol",
                "0/resources",
                "0/terminationMessagePath",
                "0/terminationMessagePolicy",
            ]
        );
        assert!(paths.contains(&"/spec/strategy/rollingUpdate/maxSurge".to_owned()), "{paths:?}");
        assert!(paths.contains(&"/spec/template/metadata/labels/version".to_owned()), "{paths:?}");
        // An atomic map (the selector) is one leaf.
        assert!(paths.contains(&"/spec/selector".to_owned()), "{paths:?}");
    }

    #[test]
    fn resolves_list_items_by_key_value_and_index() {
        let object = json!({
            "metadata": {"finalizers": ["a.example/x", "b.example/y"]},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "http"}, {"port": 443, "protocol": "TCP"}],
                     "hosts": ["a", "b", "c"]}
        });
        let fields = json!({
            "f:metadata": {"f:finalizers": {".": {}, "v:\"b.example/y\"": {}}},
            "f:spec": {
                "f:ports": {
                    "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}},
                    "k:{\"port\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}
                },
                "f:hosts": {"i:2": {}}
            }
        });
        assert_eq!(
            owned_paths(&fields, &object),
            [
                "/metadata/finalizers/1",
                "/spec/hosts/2",
                "/spec/ports/1/port",
                "/spec/ports/1/protocol",
                // Gone from the object: the key stays, escaped, so the ownership is still shown.
                "/spec/ports/k:{\"port\":8080,\"protocol\":\"TCP\"}/port",
            ]
        );
    }

    #[test]
    fn skips_nodes_that_only_own_their_existence() {
        let fields = json!({"f:metadata": {"f:annotations": {".": {}}}, "f:spec": {".": {}, "f:a~b/c": {}}});
        assert_eq!(owned_paths(&fields, &json!({})), ["/spec/a~0b~1c"]);
        assert!(owned_paths(&json!({}), &json!({})).is_empty());
        assert!(owned_paths(&json!("not a trie"), &json!({})).is_empty());
    }
}
