//! Loading policy files: every `*.yaml`/`*.yml` in a folder, several documents a file.
//!
//! Each error names the file, the line and the reason. Validation happens while deserialising
//! (so serde's location is the line of the offending value) and, for rules across documents
//! (duplicate names), at the line where the document starts.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::DriftPolicy;

/// One policy as loaded, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The policy.
    pub policy: DriftPolicy,
    /// The file it was read from.
    pub file: PathBuf,
    /// The line its document starts on (1-based).
    pub line: usize,
}

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFileError {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based), when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// Why a policy folder could not be loaded: every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The problems, in file order.
    pub errors: Vec<PolicyFileError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(f, "failed to load policies: {n} problem{}", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

fn err(file: &Path, line: Option<usize>, reason: impl Into<String>) -> PolicyFileError {
    PolicyFileError { file: file.to_owned(), line, reason: reason.into() }
}

/// The policy files of a folder and their contents, in name order: what a policy set is
/// loaded from, and what hot reload compares to see a change.
pub type Snapshot = Vec<(PathBuf, Vec<u8>)>;

/// The policy files (`*.yaml`, `*.yml`, not recursive) of `dir` and their contents, in name
/// order. A folder or file that cannot be read is an error naming it.
pub fn snapshot(dir: &Path) -> Result<Snapshot, LoadError> {
    let one = |path: &Path, reason: String| LoadError { errors: vec![err(path, None, reason)] };
    let entries = std::fs::read_dir(dir).map_err(|e| one(dir, format!("failed to read policy folder: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| match std::fs::read(&file) {
            Ok(bytes) => Ok((file, bytes)),
            Err(e) => Err(one(&file, format!("failed to read: {e}"))),
        })
        .collect()
}

/// Loads every policy file in `dir` (not recursive), in file-name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Loaded>, LoadError> {
    load_snapshot(dir, &snapshot(dir)?)
}

/// Loads the policies of a folder's snapshot (`dir` names the folder in errors).
pub fn load_snapshot(dir: &Path, files: &Snapshot) -> Result<Vec<Loaded>, LoadError> {
    if files.is_empty() {
        let reason = "no policy files (*.yaml, *.yml) found: refusing to run with nothing protected";
        return Err(LoadError { errors: vec![err(dir, None, reason)] });
    }
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for (file, bytes) in files {
        match std::str::from_utf8(bytes) {
            Ok(text) => match load_str(file, text) {
                Ok(mut policies) => loaded.append(&mut policies),
                Err(mut e) => errors.append(&mut e.errors),
            },
            Err(e) => errors.push(err(file, None, format!("failed to read: {e}"))),
        }
    }
    check_unique(&loaded, &mut errors);
    if loaded.is_empty() && errors.is_empty() {
        errors.push(err(dir, None, "no DriftPolicy documents found: refusing to run with nothing protected"));
    }
    if errors.is_empty() { Ok(loaded) } else { Err(LoadError { errors }) }
}

fn check_unique(loaded: &[Loaded], errors: &mut Vec<PolicyFileError>) {
    let mut seen: HashMap<&str, &Loaded> = HashMap::new();
    for l in loaded {
        if let Some(first) = seen.insert(&l.policy.metadata.name.0, l) {
            errors.push(err(
                &l.file,
                Some(l.line),
                format!(
                    "policy name {:?} is already used at {}:{}",
                    l.policy.metadata.name.0,
                    first.file.display(),
                    first.line
                ),
            ));
        }
    }
}

/// Parses the documents of one file. `file` only labels errors.
pub fn load_str(file: &Path, text: &str) -> Result<Vec<Loaded>, LoadError> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for (start, doc) in documents(text) {
        if doc.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            continue;
        }
        match serde_yaml_ng::from_str::<DriftPolicy>(doc) {
            Ok(policy) => {
                if let Some((key, reason)) = semantic_problem(&policy) {
                    errors.push(err(file, Some(start - 1 + key_line(doc, key)), reason));
                } else {
                    loaded.push(Loaded { policy, file: file.to_owned(), line: start });
                }
            }
            Err(e) => {
                let reason = strip_location(&e.to_string());
                let at = e.location().map_or(1, |l| l.line());
                let line = start - 1 + refine_line(doc, at, &reason);
                errors.push(err(file, Some(line), reason));
            }
        }
    }
    if errors.is_empty() { Ok(loaded) } else { Err(LoadError { errors }) }
}

/// Rules that span fields, checked once a document has parsed: the key to point at, and why.
fn semantic_problem(p: &DriftPolicy) -> Option<(&'static str, String)> {
    let name = &p.metadata.name;
    if p.spec.resources.is_empty() {
        return Some(("resources", format!("policy {name}: spec.resources must list at least one API group")));
    }
    if p.spec.gitops.is_empty() {
        return Some((
            "gitops",
            format!(
                "policy {name}: spec.gitops lists no writer; without one nobody could change the protected resources"
            ),
        ));
    }
    for ex in &p.spec.exemptions {
        if ex.service_accounts.is_empty() && ex.users.is_empty() && ex.groups.is_empty() {
            return Some((
                "exemptions",
                format!("policy {name}: exemption {}: name at least one of serviceAccounts, users, groups", ex.name),
            ));
        }
    }
    None
}

/// The line (1-based, within `doc`) of `key:`, else of `spec:`, else 1.
fn key_line(doc: &str, key: &str) -> usize {
    let find = |k: &str| doc.lines().position(|l| l.trim_start().strip_prefix(k).is_some_and(|r| r.starts_with(':')));
    find(key).or_else(|| find("spec")).map_or(1, |i| i + 1)
}

/// serde_yaml reports a value refused by its own `TryFrom` at the enclosing mapping; where the
/// reason quotes the value, the line that holds it is more useful.
fn refine_line(doc: &str, reported: usize, reason: &str) -> usize {
    let quoted = reason.split('"').nth(1).filter(|v| !v.is_empty());
    let Some(value) = quoted else { return reported };
    doc.lines()
        .enumerate()
        .skip(reported.saturating_sub(1))
        .find(|(_, l)| l.contains(value))
        .map_or(reported, |(i, _)| i + 1)
}

/// Serde's message ends with " at line L column C"; the caller reports the line itself.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Splits a YAML stream on `---` lines, giving each document with its first line (1-based).
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") || bare == "..." {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: driftgate.dev/v1alpha1
kind: DriftPolicy
metadata:
  name: mesh
spec:
  resources:
    - group: networking.istio.io
  gitops:
    serviceAccounts: [argocd/argocd-application-controller]
";

    fn errors_of(text: &str) -> Vec<PolicyFileError> {
        load_str(Path::new("p.yaml"), text).unwrap_err().errors
    }

    #[test]
    fn loads_several_documents_with_their_lines() {
        let text = format!("# comment\n---\n{GOOD}---\n{}", GOOD.replace("name: mesh", "name: other"));
        let loaded = load_str(Path::new("p.yaml"), &text).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].line, 3);
        assert_eq!(loaded[1].line, 13);
        assert_eq!(loaded[1].policy.metadata.name.0, "other");
    }

    #[test]
    fn reports_file_line_and_reason() {
        let cases = [
            (GOOD.replace("  resources:", "  mode: block\n  resources:"), 6, "unknown variant `block`"),
            (GOOD.replace("argocd/argocd-application-controller", "argocd"), 9, "namespace/name"),
            (GOOD.replace("kind: DriftPolicy", "kind: Policy"), 2, "kind \"Policy\""),
            (GOOD.replace("  gitops:", "  gitopz:"), 8, "unknown field `gitopz`"),
            (GOOD.replace("    - group: networking.istio.io\n", ""), 6, "at least one API group"),
            (
                format!(
                    "{GOOD}---\n{}",
                    GOOD.replace("  gitops:\n    serviceAccounts: [argocd/argocd-application-controller]\n", "")
                ),
                15,
                "lists no writer",
            ),
            (GOOD.replace("spec:", "spec: [").to_string(), 5, ""),
        ];
        for (text, line, reason) in cases {
            let errors = errors_of(&text);
            assert_eq!(errors.len(), 1, "{text}: {errors:?}");
            assert_eq!(errors[0].line, Some(line), "{text}: {errors:?}");
            assert!(errors[0].reason.contains(reason), "{text}: {errors:?}");
        }
    }

    #[test]
    fn refuses_duplicate_names_and_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no policy files"), "{e}");
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.yml"), format!("\n{GOOD}")).unwrap();
        let e = load_dir(dir.path()).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        let want =
            format!("b.yml:1: policy name \"mesh\" is already used at {}:1", dir.path().join("a.yaml").display());
        assert!(e.errors[0].to_string().ends_with(&want), "{e}");
    }
}
