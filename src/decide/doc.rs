//! One side of a request's object, read lazily: its metadata as a normalised value (small: the
//! large server-managed parts are skipped while parsing), every other top-level field as raw
//! JSON borrowed from the request. The changes between two of them are found by comparing raw
//! text and descending only where it differs, so the parts of a large object that did not
//! change are scanned once and never built into values. The result is the same as
//! [`super::changes::changes`] over the two normalised objects (the tests hold them equal). PURE.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::changes::{self, Change, MANAGED_ANNOTATIONS, SERVER_MANAGED};
use crate::admission::Operation;

/// An object of a request, read lazily.
#[derive(Debug, Clone)]
pub struct Doc<'a> {
    /// `metadata`, normalised (no managedFields, resourceVersion, …, last-applied annotation).
    pub metadata: Option<Value>,
    /// Every other top-level field, raw.
    pub rest: BTreeMap<String, &'a RawValue>,
    /// `metadata.uid` (normalising removes it from `metadata`).
    pub uid: Option<String>,
}

impl<'a> Doc<'a> {
    /// Reads an object (JSON text of an object).
    pub fn parse(text: &'a str) -> Result<Doc<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut doc = serde::Deserializer::deserialize_map(&mut de, DocVisitor(std::marker::PhantomData))?;
        de.end()?;
        // The lean parse left out the rest of what normalising removes.
        if let Some(Value::Object(meta)) = doc.metadata.as_mut() {
            doc.uid = match meta.remove("uid") {
                Some(Value::String(uid)) => Some(uid),
                _ => None,
            };
            if meta.get("annotations").and_then(Value::as_object).is_some_and(Map::is_empty) {
                meta.remove("annotations");
            }
        }
        Ok(doc)
    }

    /// The whole object, normalised, as a value (for the rare rules that need all of it).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        let mut map = Map::new();
        if let Some(meta) = &self.metadata {
            map.insert("metadata".to_owned(), meta.clone());
        }
        for (key, raw) in &self.rest {
            map.insert(key.clone(), parse(raw)?);
        }
        Ok(Value::Object(map))
    }

    /// Whether every top-level field but `metadata` is the same in `other`.
    pub fn same_rest(&self, other: &Doc<'_>) -> bool {
        self.rest.len() == other.rest.len()
            && self
                .rest
                .iter()
                .all(|(key, raw)| other.rest.get(key).is_some_and(|o| raw.get() == o.get() || same_value(raw, o)))
    }

    /// A metadata field.
    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.metadata.as_ref()?.get(key)
    }

    /// A top-level field, parsed.
    pub fn field(&self, key: &str) -> Result<Option<Value>, serde_json::Error> {
        self.rest.get(key).map(|raw| parse(raw)).transpose()
    }
}

/// A raw value parsed. Raw text is valid JSON, but its nesting was not bounded while it was
/// skipped: parsing it is where a too deeply nested value is refused.
fn parse(raw: &RawValue) -> Result<Value, serde_json::Error> {
    serde_json::from_str(raw.get())
}

/// Two raw values whose text differs are the same value (both parse, and equal).
fn same_value(a: &RawValue, b: &RawValue) -> bool {
    matches!((parse(a), parse(b)), (Ok(a), Ok(b)) if a == b)
}

/// How deep the raw diff descends before it compares what is left as values (whose parse
/// bounds the nesting).
const RAW_DEPTH: usize = 32;

struct DocVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de> Visitor<'de> for DocVisitor<'de> {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut doc = Doc { metadata: None, rest: BTreeMap::new(), uid: None };
        while let Some(key) = map.next_key::<String>()? {
            if key == "metadata" {
                doc.metadata = Some(map.next_value_seed(Lean::Metadata)?);
            } else {
                let raw: &'de RawValue = map.next_value()?;
                doc.rest.insert(key, raw);
            }
        }
        Ok(doc)
    }
}

/// Where a lean parse of `metadata` is: the levels that hold what normalising removes
/// ([`SERVER_MANAGED`] fields but `uid`, [`MANAGED_ANNOTATIONS`]), skipped unread and never made
/// into values (`managedFields` and the last-applied annotation are most of a typical object).
#[derive(Clone, Copy)]
enum Lean {
    Metadata,
    Annotations,
}

impl<'de> DeserializeSeed<'de> for Lean {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lean {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let skip = match self {
                Lean::Metadata => key != "uid" && SERVER_MANAGED.contains(&key.as_str()),
                Lean::Annotations => MANAGED_ANNOTATIONS.contains(&key.as_str()),
            };
            if skip {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let value = match (self, key.as_str()) {
                (Lean::Metadata, "annotations") => map.next_value_seed(Lean::Annotations)?,
                _ => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Every change from `old` to `new`, as [`super::changes::changes`] gives it for the two
/// normalised objects. An error when a value it has to read is nested too deeply.
pub fn changes(
    operation: Operation,
    subresource: Option<&str>,
    old: Option<&Doc<'_>>,
    new: Option<&Doc<'_>>,
) -> Result<Vec<Change>, serde_json::Error> {
    Ok(match (operation, old, new) {
        (Operation::Update, Some(old), Some(new)) if subresource == Some("scale") => {
            let replicas = |d: &Doc<'_>| d.field("spec").map(|spec| spec.and_then(|s| s.get("replicas").cloned()));
            let (o, n) = (replicas(old)?, replicas(new)?);
            if o == n {
                Vec::new()
            } else {
                vec![Change {
                    path: "/spec/replicas".to_owned(),
                    old: o.unwrap_or(Value::Null),
                    new: n.unwrap_or(Value::Null),
                }]
            }
        }
        (Operation::Update, Some(old), Some(new)) => {
            let mut out = Vec::new();
            diff_docs(old, new, &mut out)?;
            out
        }
        (Operation::Create, _, Some(new)) => changes::changes(operation, subresource, None, Some(&created_view(new)?)),
        (Operation::Delete, Some(_), _) | (Operation::Delete, None, None) => {
            vec![Change { path: String::new(), old: Value::String("<object>".into()), new: Value::Null }]
        }
        _ => Vec::new(),
    })
}

/// What a CREATE reports reads the spec (or, without one, the top-level fields): only those
/// are parsed.
fn created_view(new: &Doc<'_>) -> Result<Value, serde_json::Error> {
    match new.rest.get("spec") {
        Some(spec) if kind(spec) == Kind::Object => {
            Ok(Value::Object(Map::from_iter([("spec".to_owned(), parse(spec)?)])))
        }
        _ => new.to_value(),
    }
}

/// The top level, in the order json-patch's diff visits a map (the new object's keys in order,
/// then the removed ones): `metadata` as values, the rest raw.
fn diff_docs(old: &Doc<'_>, new: &Doc<'_>, out: &mut Vec<Change>) -> Result<(), serde_json::Error> {
    let mut keys: Vec<&str> = new.rest.keys().map(String::as_str).collect();
    if new.metadata.is_some() {
        keys.push("metadata");
    }
    keys.sort_unstable();
    let mut path = String::new();
    for key in keys {
        path.clear();
        push_key(&mut path, key);
        if key == "metadata" {
            let new_meta = new.metadata.as_ref().unwrap_or(&Value::Null);
            match &old.metadata {
                Some(old_meta) => diff_values(old_meta, new_meta, &path, out),
                None => out.push(Change { path: path.clone(), old: Value::Null, new: new_meta.clone() }),
            }
            continue;
        }
        let raw_new = new.rest[key];
        match old.rest.get(key) {
            Some(raw_old) => diff_raw(raw_old, raw_new, &mut path, out, 0)?,
            None => out.push(Change { path: path.clone(), old: Value::Null, new: parse(raw_new)? }),
        }
    }
    let mut removed: Vec<(&str, Value)> = old
        .rest
        .iter()
        .filter(|(k, _)| !new.rest.contains_key(*k))
        .map(|(k, raw)| parse(raw).map(|v| (k.as_str(), v)))
        .collect::<Result<_, _>>()?;
    if let (Some(meta), None) = (&old.metadata, &new.metadata) {
        removed.push(("metadata", meta.clone()));
    }
    removed.sort_by(|a, b| a.0.cmp(b.0));
    for (key, old) in removed {
        path.clear();
        push_key(&mut path, key);
        out.push(Change { path: path.clone(), old, new: Value::Null });
    }
    Ok(())
}

/// Two values as json-patch's diff compares them, with original indices for removals.
fn diff_values(old: &Value, new: &Value, path: &str, out: &mut Vec<Change>) {
    for (at, op) in changes::diff_ops(old, new) {
        let full = format!("{path}{at}");
        let change = match op {
            json_patch::PatchOperation::Add(add) => Change { path: full, old: Value::Null, new: add.value },
            json_patch::PatchOperation::Replace(rep) => {
                Change { old: old.pointer(&at).cloned().unwrap_or(Value::Null), path: full, new: rep.value }
            }
            json_patch::PatchOperation::Remove(_) => {
                Change { old: old.pointer(&at).cloned().unwrap_or(Value::Null), path: full, new: Value::Null }
            }
            _ => continue,
        };
        out.push(change);
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    Scalar,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        _ => Kind::Scalar,
    }
}

/// Raw text that is the same is the same value: skip it unread. Where it differs, descend into
/// maps and lists (to [`RAW_DEPTH`]); compare scalars, mismatched kinds and what lies deeper as
/// values. `path` is where `old` and `new` are; it is restored before returning.
fn diff_raw(
    old: &RawValue,
    new: &RawValue,
    path: &mut String,
    out: &mut Vec<Change>,
    depth: usize,
) -> Result<(), serde_json::Error> {
    if old.get() == new.get() {
        return Ok(());
    }
    let at = path.len();
    match (kind(old), kind(new)) {
        (Kind::Object, Kind::Object) if depth < RAW_DEPTH => {
            let Entries(o) = serde_json::from_str(old.get())?;
            let Entries(n) = serde_json::from_str(new.get())?;
            let find = |key: &str| o.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok().map(|i| o[i].1);
            for (key, raw_new) in &n {
                let raw_old = find(key);
                if raw_old.is_some_and(|r| r.get() == raw_new.get()) {
                    continue;
                }
                push_key(path, key);
                match raw_old {
                    Some(raw_old) => diff_raw(raw_old, raw_new, path, out, depth + 1)?,
                    None => out.push(Change { path: path.clone(), old: Value::Null, new: parse(raw_new)? }),
                }
                path.truncate(at);
            }
            let kept = |key: &str| n.binary_search_by(|(k, _)| k.as_ref().cmp(key)).is_ok();
            for (key, raw_old) in o.iter().filter(|(k, _)| !kept(k)) {
                push_key(path, key);
                out.push(Change { path: path.clone(), old: parse(raw_old)?, new: Value::Null });
                path.truncate(at);
            }
        }
        (Kind::Array, Kind::Array) if depth < RAW_DEPTH => {
            let o: Vec<&RawValue> = serde_json::from_str(old.get())?;
            let n: Vec<&RawValue> = serde_json::from_str(new.get())?;
            for i in 0..o.len().max(n.len()) {
                let (a, b) = (o.get(i), n.get(i));
                if let (Some(a), Some(b)) = (a, b)
                    && a.get() == b.get()
                {
                    continue;
                }
                let _ = write!(path, "/{i}");
                match (a, b) {
                    (Some(a), Some(b)) => diff_raw(a, b, path, out, depth + 1)?,
                    (Some(a), None) => out.push(Change { path: path.clone(), old: parse(a)?, new: Value::Null }),
                    (None, Some(b)) => out.push(Change { path: path.clone(), old: Value::Null, new: parse(b)? }),
                    (None, None) => {}
                }
                path.truncate(at);
            }
        }
        (Kind::Object, Kind::Object) | (Kind::Array, Kind::Array) => {
            diff_values(&parse(old)?, &parse(new)?, path, out);
        }
        _ => {
            let (o, n) = (parse(old)?, parse(new)?);
            if o != n {
                out.push(Change { path: path.clone(), old: o, new: n });
            }
        }
    }
    Ok(())
}

/// The members of a JSON object, raw, sorted by key (the order a diff of values visits them);
/// keys are borrowed from the text unless they hold escapes. A repeated key keeps its last value,
/// as when parsing into a value.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match unique.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => unique.push(entry),
            }
        }
        Ok(Entries(unique))
    }
}

/// An object key, borrowed when the text allows.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

/// Appends `/key` to a JSON Pointer, escaped.
fn push_key(path: &mut String, key: &str) {
    path.push('/');
    if key.contains(['~', '/']) {
        path.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        path.push_str(key);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The lazy diff and the diff of fully parsed, normalised objects agree.
    fn agree(old: &Value, new: &Value) {
        let (ot, nt) = (old.to_string(), new.to_string());
        let (od, nd) = (Doc::parse(&ot).unwrap(), Doc::parse(&nt).unwrap());
        let (mut ov, mut nv) = (old.clone(), new.clone());
        changes::normalise(&mut ov);
        changes::normalise(&mut nv);
        for op in [Operation::Update, Operation::Create, Operation::Delete] {
            let lazy = changes(op, None, Some(&od), Some(&nd)).unwrap();
            let full = changes::changes(op, None, Some(&ov), Some(&nv));
            assert_eq!(lazy, full, "{op:?}: {old} -> {new}");
        }
        assert_eq!(od.to_value().unwrap(), ov);
    }

    #[test]
    fn a_lean_parse_is_a_normalised_parse() {
        let text = r#"{"apiVersion":"v1","metadata":{"name":"a","uid":"u-1","resourceVersion":"7","managedFields":[{"manager":"m","fieldsV1":{"f:spec":{}}}],"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","team":"x"},"labels":{"l":"1"}},"spec":{"list":[1,2.5,"s",null,true,{"k":[]}]}}"#;
        let doc = Doc::parse(text).unwrap();
        let mut full: Value = serde_json::from_str(text).unwrap();
        changes::normalise(&mut full);
        assert_eq!(doc.to_value().unwrap(), full);
        assert_eq!(doc.uid.as_deref(), Some("u-1"));
        let only_last_applied =
            Doc::parse(r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}}}"#)
                .unwrap();
        assert_eq!(only_last_applied.to_value().unwrap(), json!({"metadata": {}}));
        assert!(Doc::parse("{").is_err() && Doc::parse("{} x").is_err() && Doc::parse("[]").is_err());
    }

    #[test]
    fn the_lazy_diff_is_the_diff() {
        let base = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "resourceVersion": "1", "managedFields": [{"m": 1}], "labels": {"a": "1"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "n": "1"}},
            "spec": {"w": [90, 10], "keep": {"deep": [1, {"x": 2}]}, "gone": "x", "list": ["a", "b", "c"], "a/b~c": 1, "q\"k": {"x": 1}}});
        let cases = [
            json!({"apiVersion": "v1", "kind": "X",
                "metadata": {"name": "a", "resourceVersion": "2", "labels": {"a": "2", "b": "3"}},
                "spec": {"w": [70, 30], "keep": {"deep": [1, {"x": 3}]}, "new": true, "list": ["a"], "a/b~c": 2, "q\"k": {"x": 2}}}),
            json!({"apiVersion": "v2", "kind": "X", "spec": {"w": 1}}),
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "status": {"ok": true}}),
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "spec": []}),
            base.clone(),
        ];
        for new in &cases {
            agree(&base, new);
            agree(new, &base);
        }
    }

    #[test]
    fn deep_values_are_diffed_as_values_and_too_deep_ones_refused() {
        let nest = |depth: usize, leaf: Value| (0..depth).fold(leaf, |inner, _| json!({"n": [inner]}));
        // Beyond the raw descent, what differs is compared as values, with the same result.
        agree(&json!({"spec": nest(40, json!(1))}), &json!({"spec": nest(40, json!(2))}));
        // Nesting past serde_json's limit is an error, not a stack overflow or a silent `null`.
        let deep =
            |leaf: &str| format!(r#"{{"spec":{{"deep":{}{leaf}{}}}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let (old, new) = (deep("1"), deep("2"));
        let (old, new) = (Doc::parse(&old).unwrap(), Doc::parse(&new).unwrap());
        let err = changes(Operation::Update, None, Some(&old), Some(&new)).unwrap_err();
        assert!(err.to_string().contains("recursion limit exceeded"), "{err}");
        // An unchanged deep part is never read.
        assert_eq!(changes(Operation::Update, None, Some(&old), Some(&old)).unwrap(), Vec::new());
    }

    #[test]
    fn the_lazy_diff_of_every_captured_update_is_the_diff() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") {
                continue;
            }
            let review: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            let (old, new) = (&review["request"]["oldObject"], &review["request"]["object"]);
            if old.is_object() && new.is_object() {
                agree(old, new);
            }
        }
    }
}
