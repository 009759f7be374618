//! The `table` and `json` formats of the drifted objects.

use std::io::{self, Write};

use super::assess::Finding;

const HEADERS: [&str; 7] = ["OBJECT", "KIND", "POLICY", "MANAGER", "OPERATION", "LAST WRITE", "PATHS"];
/// How many paths a row shows before counting the rest (`--format json` has them all).
const PATHS_SHOWN: usize = 3;

/// The first paths and a count of the rest: `/spec/http, /spec/hosts +2`.
pub fn paths(all: &[String]) -> String {
    let mut out = all.iter().take(PATHS_SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > PATHS_SHOWN {
        out.push_str(&format!(" +{}", all.len() - PATHS_SHOWN));
    }
    out
}

/// One row a drifted object and writer, columns aligned; nothing when nothing drifted.
pub fn write_table(findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    let mut rows: Vec<[String; 7]> = Vec::new();
    for f in findings.iter().filter(|f| f.drifted()) {
        for w in &f.writers {
            let operation = if w.subresource.is_empty() {
                w.operation.clone()
            } else {
                format!("{}/{}", w.operation, w.subresource)
            };
            rows.push([
                f.object_ref(),
                f.kind.clone(),
                f.policy.clone(),
                w.manager.clone(),
                operation,
                w.time.clone().unwrap_or_else(|| "-".to_owned()),
                paths(&w.paths),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 7]| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        s.push('\n');
        s
    };
    out.write_all(line(&HEADERS.map(str::to_owned)).as_bytes())?;
    for row in &rows {
        out.write_all(line(row).as_bytes())?;
    }
    Ok(())
}

/// One JSON object a line for each drifted object.
pub fn write_json(findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    for f in findings.iter().filter(|f| f.drifted()) {
        serde_json::to_writer(&mut *out, f)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::audit::assess::Writer;

    fn mk_finding(name: &str, writers: Vec<Writer>) -> Finding {
        Finding {
            policy: "mesh-gitops".into(),
            api_version: "networking.istio.io/v1".into(),
            kind: "VirtualService".into(),
            namespace: "shop".into(),
            name: name.into(),
            uid: String::new(),
            gitops: None,
            writers,
        }
    }

    fn mk_writer(manager: &str, subresource: &str, paths: &[&str]) -> Writer {
        Writer {
            manager: manager.into(),
            operation: "Update".into(),
            time: Some("2026-11-22T09:29:21Z".into()),
            subresource: subresource.into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn prints_a_row_a_drifted_writer_and_leaves_clean_objects_out() {
        let findings = [
            mk_finding("reviews", vec![mk_writer("kubectl-edit", "", &["/spec/http"])]),
            mk_finding("clean", vec![]),
            mk_finding(
                "web",
                vec![mk_writer("kube-controller-manager", "scale", &["/spec/a", "/spec/b", "/spec/c", "/spec/d"])],
            ),
        ];
        let mut out = Vec::new();
        write_table(&findings, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = "\
OBJECT        KIND            POLICY       MANAGER                  OPERATION     LAST WRITE            PATHS
shop/reviews  VirtualService  mesh-gitops  kubectl-edit             Update        2026-11-22T09:29:21Z  /spec/http
shop/web      VirtualService  mesh-gitops  kube-controller-manager  Update/scale  2026-11-22T09:29:21Z  /spec/a, /spec/b, /spec/c +1
";
        assert_eq!(text, want);
        let mut out = Vec::new();
        write_table(&findings[1..2], &mut out).unwrap();
        assert!(out.is_empty());
        let mut out = Vec::new();
        write_json(&findings, &mut out).unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["writers"][0]["paths"][0], "/spec/http");
        assert_eq!(lines[1]["writers"][0]["subresource"], "scale");
        assert_eq!(lines[0]["apiVersion"], "networking.istio.io/v1");
    }
}
