//! JSON-pointer path patterns of exemptions: `/spec/replicas`,
//! `/metadata/annotations/kubectl.kubernetes.io~1restartedAt`, `/spec/http/*/route/*/weight`.
//!
//! A pattern covers a path that is it or lies below it, segment by segment; a `*` segment
//! matches exactly one segment (an array index or a map key). A change whose path lies *above*
//! a pattern (a map or list added or removed whole, such as the first annotation of an object)
//! is covered when every leaf of its old and new values is. The same matcher serves the
//! decision core and `driftgate suggest`, so what is proposed is what a policy can say. Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A path pattern: a JSON pointer (RFC 6901) whose segments may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPattern {
    text: String,
}

/// The segments of a JSON pointer (still escaped: `~1` stays `~1`).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

impl PathPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` is this pattern or lies below it.
    pub fn covers(&self, path: &str) -> bool {
        if path.is_empty() {
            return false;
        }
        let mut path = segments(path);
        segments(&self.text).all(|p| path.next().is_some_and(|s| p == "*" || p == s))
    }

    /// Whether `path` lies strictly above this pattern (a prefix of it, segment-wise).
    fn is_above(&self, path: &str) -> bool {
        let own: Vec<&str> = segments(&self.text).collect();
        let theirs: Vec<&str> = if path.is_empty() { Vec::new() } else { segments(path).collect() };
        theirs.len() < own.len() && theirs.iter().zip(&own).all(|(s, p)| *p == "*" || p == s)
    }
}

/// Whether the change at `path` from `old` to `new` lies under `patterns`: its path is covered,
/// or it lies above them and every leaf of `old` and `new` is covered.
pub fn covers_change(patterns: &[PathPattern], path: &str, old: &Value, new: &Value) -> bool {
    if patterns.iter().any(|p| p.covers(path)) {
        return true;
    }
    if !patterns.iter().any(|p| p.is_above(path)) {
        return false;
    }
    let mut leaves = Vec::new();
    leaf_paths(path, old, &mut leaves);
    leaf_paths(path, new, &mut leaves);
    !leaves.is_empty() && leaves.iter().all(|leaf| patterns.iter().any(|p| p.covers(leaf)))
}

/// The paths of the leaves of `value` at `path` (an absent value has none; an empty map or list
/// is a leaf itself).
fn leaf_paths(path: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                leaf_paths(&format!("{path}/{}", key.replace('~', "~0").replace('/', "~1")), v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                leaf_paths(&format!("{path}/{i}"), v, out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

impl TryFrom<String> for PathPattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if !value.starts_with('/') || value.len() < 2 {
            return Err(format!("path {value:?} must be a JSON pointer such as /spec/replicas"));
        }
        if value.ends_with('/') {
            return Err(format!("path {value:?} must not end with /"));
        }
        for segment in segments(&value) {
            if segment.is_empty() {
                return Err(format!("path {value:?} has an empty segment (//)"));
            }
            if segment.contains('*') && segment != "*" {
                return Err(format!(
                    "path {value:?}: * must be a whole segment, matching exactly one (/spec/http/*/route/*/weight), not {segment:?}"
                ));
            }
            let mut chars = segment.chars();
            while let Some(c) = chars.next() {
                if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                    return Err(format!("path {value:?}: ~ must be escaped as ~0 (and / in a key as ~1)"));
                }
            }
        }
        Ok(PathPattern { text: value })
    }
}

impl From<PathPattern> for String {
    fn from(value: PathPattern) -> String {
        value.text
    }
}

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn covers_whole_segments_and_wildcards_match_exactly_one() {
        let cases = [
            ("/spec/replicas", "/spec/replicas", true),
            ("/spec/replicas", "/spec/replicas/x", true),
            ("/spec/replicas", "/spec/replicasX", false),
            ("/spec/replicas", "/spec", false),
            ("/spec/http/*/route/*/weight", "/spec/http/1/route/0/weight", true),
            ("/spec/http/*/route/*/weight", "/spec/http/12/route/3/weight", true),
            ("/spec/http/*/route/*/weight", "/spec/http/1/route/0/destination/host", false),
            ("/spec/http/*/route/*/weight", "/spec/http/1/route/0", false),
            ("/spec/http/*/route/*/weight", "/spec/http/1/0/route/0/weight", false),
            ("/spec/*", "/spec/hosts/0", true),
            (
                "/metadata/annotations/kubectl.kubernetes.io~1restartedAt",
                "/metadata/annotations/kubectl.kubernetes.io~1restartedAt",
                true,
            ),
            ("/spec/replicas", "", false),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(p(pattern).covers(path), want, "{pattern} covers {path}");
        }
    }

    #[test]
    fn a_map_added_or_removed_whole_is_covered_leaf_by_leaf() {
        let label = [p("/metadata/labels/rollouts.argoproj.io~1gatewayapi-canary")];
        let added = json!({"rollouts.argoproj.io/gatewayapi-canary": "in-progress"});
        assert!(covers_change(&label, "/metadata/labels", &Value::Null, &added));
        assert!(covers_change(&label, "/metadata/labels", &added, &Value::Null));
        let more = json!({"rollouts.argoproj.io/gatewayapi-canary": "in-progress", "team": "x"});
        assert!(!covers_change(&label, "/metadata/labels", &Value::Null, &more));
        let weights = [p("/spec/http/*/route/*/weight")];
        assert!(covers_change(&weights, "/spec/http/0/route/1", &Value::Null, &json!({"weight": 5})));
        assert!(!covers_change(
            &weights,
            "/spec/http/0/route/1",
            &Value::Null,
            &json!({"weight": 5, "destination": {"host": "x"}})
        ));
        assert!(!covers_change(&weights, "/spec", &Value::Null, &json!({})), "an empty map is a leaf of its own");
        assert!(!covers_change(&weights, "/spec/hosts/0", &json!("a"), &json!("b")));
    }

    #[test]
    fn refuses_malformed_patterns_saying_why() {
        for (bad, why) in [
            ("spec", "JSON pointer"),
            ("/", "JSON pointer"),
            ("/spec/", "must not end with /"),
            ("/spec//x", "empty segment"),
            ("/a~2b", "~ must be escaped"),
            ("/spec/http/**/weight", "whole segment"),
            ("/spec/ro*te", "whole segment"),
        ] {
            let e = PathPattern::try_from(bad.to_owned()).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
