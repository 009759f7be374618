//! The policy file with the proposed exemptions added, as text: the file stays as it was
//! (comments included) and the exemptions are appended to the end of the policy's document,
//! which is inside `spec` when `spec` is its last key. The result is checked by loading it as
//! the server would: it must give the same policies, each with exactly the new exemptions
//! added; otherwise the rewrite is refused and the YAML to paste is given instead.

use std::path::Path;

use super::propose::{Proposal, Writer};
use crate::policy::{self, DriftPolicy};

/// The exemptions' YAML as list items, indented by `indent`.
pub fn exemptions_yaml(proposals: &[&Proposal], indent: &str) -> String {
    let mut out = String::new();
    for p in proposals {
        let seen = format!("{} drift events, {} to {}", p.count, p.first.date(), p.last.date());
        out.push_str(&format!("{indent}# suggested by `driftgate suggest`: {seen}\n"));
        out.push_str(&format!("{indent}- name: {}\n", p.name));
        match &p.writer {
            Writer::ServiceAccount { namespace, name } => {
                out.push_str(&format!("{indent}  serviceAccounts: [{namespace}/{name}]\n"));
            }
            Writer::Controller { username } | Writer::Person { username } => {
                out.push_str(&format!("{indent}  users: [\"{username}\"]\n"));
            }
        }
        let ops: Vec<&str> = p.operations.iter().map(|o| o.as_str()).collect();
        out.push_str(&format!("{indent}  operations: [{}]\n", ops.join(", ")));
        if !p.subresources.is_empty() {
            let subs: Vec<&str> = p.subresources.iter().map(String::as_str).collect();
            out.push_str(&format!("{indent}  subresources: [{}]\n", subs.join(", ")));
        }
        if !p.paths.is_empty() {
            out.push_str(&format!("{indent}  paths:\n"));
            for path in &p.paths {
                out.push_str(&format!("{indent}    - \"{path}\"\n"));
            }
        }
    }
    out
}

/// `text` (the policy file `file`) with `proposals` added to the policy `policy`, checked.
pub fn add_exemptions(file: &Path, text: &str, policy: &str, proposals: &[&Proposal]) -> Result<String, String> {
    let before = policy::load_str(file, text).map_err(|e| e.to_string())?;
    let target = before
        .iter()
        .find(|l| l.policy.metadata.name.0 == policy)
        .ok_or_else(|| format!("{} has no policy {policy}", file.display()))?;
    // The document's lines: from its first line to the next `---` (or the end).
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = target.line.saturating_sub(1);
    let end =
        lines.iter().enumerate().skip(start + 1).find(|(_, l)| l.trim_end() == "---").map_or(lines.len(), |(i, _)| i);
    let doc = &lines[start..end];
    if doc.iter().any(|l| l.trim_start().starts_with("exemptions:")) {
        return Err(format!(
            "policy {policy} in {} already has exemptions: add these to its list by hand",
            file.display()
        ));
    }
    // The indentation of spec's keys, from the first key line after `spec:`.
    let spec_at = doc
        .iter()
        .position(|l| l.trim_end() == "spec:")
        .ok_or_else(|| format!("policy {policy} in {}: no `spec:` line found", file.display()))?;
    let indent: String = doc[spec_at + 1..]
        .iter()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.chars().take_while(|c| *c == ' ').collect())
        .unwrap_or_else(|| "  ".to_owned());
    // After the document's last line that is not blank or a comment.
    let last = doc.iter().rposition(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).unwrap_or(0);
    let at = start + last + 1;
    let mut out = String::new();
    for l in &lines[..at] {
        out.push_str(l);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{indent}exemptions:\n"));
    out.push_str(&exemptions_yaml(proposals, &format!("{indent}  ")));
    for l in &lines[at..] {
        out.push_str(l);
    }
    check(file, &before, &out, policy, proposals)?;
    Ok(out)
}

/// The rewritten text loads into the same policies, the target with exactly the proposals'
/// exemptions added.
fn check(
    file: &Path,
    before: &[policy::Loaded],
    text: &str,
    policy: &str,
    proposals: &[&Proposal],
) -> Result<(), String> {
    let after = policy::load_str(file, text).map_err(|e| format!("the rewritten file does not load: {e}"))?;
    let strip = |p: &DriftPolicy| {
        let mut p = p.clone();
        if p.metadata.name.0 == policy {
            p.spec.exemptions.truncate(p.spec.exemptions.len().saturating_sub(proposals.len()));
        }
        p
    };
    let same = before.len() == after.len()
        && before.iter().zip(&after).all(|(b, a)| b.policy == strip(&a.policy))
        && after.iter().any(|a| {
            a.policy.metadata.name.0 == policy
                && a.policy.spec.exemptions.iter().rev().take(proposals.len()).count() == proposals.len()
        });
    if same {
        Ok(())
    } else {
        Err(format!(
            "policy {policy} in {}: its `spec` is not the document's last key, so the exemptions cannot be appended safely",
            file.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::suggest::propose::propose;
    use crate::event::DriftEvent;

    const POLICY: &str = include_str!("../../../policies/default.yaml");

    fn rollouts_proposal() -> Proposal {
        let line = r#"{"id":"e","time":"2026-11-23T11:00:00Z","decision":"audited","mode":"audit","policy":"mesh-gitops","rule":"protected","message":"m","operation":"UPDATE","dryRun":false,"user":{"username":"system:serviceaccount:argo-rollouts:argo-rollouts","groups":[]},"resource":{"group":"networking.istio.io","version":"v1","kind":"VirtualService","resource":"virtualservices","namespace":"shop","name":"reviews"},"changes":[{"path":"/spec/http/0/route/1/weight","old":10,"new":20}],"requestUid":"u"}"#;
        let events: Vec<DriftEvent> = (0..3).map(|_| DriftEvent::parse(line.as_bytes()).unwrap()).collect();
        propose(&events, 3).proposals.remove(0)
    }

    #[test]
    fn appends_to_the_policy_keeping_the_rest_of_the_file_and_its_comments() {
        let p = rollouts_proposal();
        let out = add_exemptions(Path::new("default.yaml"), POLICY, "mesh-gitops", &[&p]).unwrap();
        assert!(out.starts_with(POLICY.split("---").next().unwrap().trim_end()), "the first document is kept");
        assert!(out.contains("# Namespaces that Argo CD or Flux manage."), "comments stay");
        assert!(out.contains("  exemptions:\n    # suggested by `driftgate suggest`: 3 drift events, 2026-11-23 to 2026-11-23\n    - name: suggested-argo-rollouts\n      serviceAccounts: [argo-rollouts/argo-rollouts]\n      operations: [UPDATE]\n      paths:\n        - \"/spec/http/*/route/*/weight\"\n"), "{out}");
        let loaded = policy::load_str(Path::new("default.yaml"), &out).unwrap();
        assert_eq!(loaded[0].policy.spec.exemptions.len(), 1);
        assert!(loaded[1].policy.spec.exemptions.is_empty());
        let again = add_exemptions(Path::new("default.yaml"), &out, "mesh-gitops", &[&p]).unwrap_err();
        assert!(again.contains("already has exemptions"), "{again}");
        assert!(
            add_exemptions(Path::new("default.yaml"), POLICY, "nope", &[&p]).unwrap_err().contains("no policy nope")
        );
    }
}
