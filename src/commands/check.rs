//! `driftgate check [DIR]`: validates policy files.

use std::path::Path;
use std::process::ExitCode;

use crate::policy;

/// Loads every policy file in `dir`; prints a summary, or each problem with file, line and
/// reason (exit code 1).
pub fn run(dir: &Path) -> ExitCode {
    match policy::load_dir(dir) {
        Ok(loaded) => {
            for l in &loaded {
                let spec = &l.policy.spec;
                let groups: Vec<&str> = spec.resources.iter().map(|r| r.group.as_str()).collect();
                println!(
                    "{}:{}: {} (mode {}, scope {}, {})",
                    l.file.display(),
                    l.line,
                    l.policy.metadata.name,
                    spec.mode.as_str(),
                    spec.scope.as_str(),
                    groups.join(", ")
                );
            }
            let n = loaded.len();
            println!("ok: {n} polic{} in {}", if n == 1 { "y" } else { "ies" }, dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::FAILURE
        }
    }
}
