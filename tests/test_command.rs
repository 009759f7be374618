//! `driftgate test` as CI runs it: the real binary over the fixtures and their expectations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn driftgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftgate")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn every_fixture_meets_its_expectation() {
    let expectations = repo("tests/fixtures/expectations.yaml");
    let output = driftgate(&["test", expectations.to_str().unwrap()]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(!out.contains("FAIL"), "{out}");

    // Every validating fixture has a case: a new fixture must say what it expects.
    let listed = std::fs::read_to_string(&expectations).unwrap();
    let fixtures = std::fs::read_dir(repo("tests/fixtures")).unwrap();
    let mut count = 0;
    for entry in fixtures {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".validating.json") {
            count += 1;
            assert!(listed.contains(&format!("review: {name}\n")), "{name} has no case in expectations.yaml");
        }
    }
    assert!(out.contains(&format!("{count} passed, 0 failed")), "{out}");
}

#[test]
fn the_progressive_delivery_examples_let_the_controllers_write_what_they_write() {
    let cases = repo("tests/fixtures/progressive-delivery.yaml");
    let output = driftgate(&["test", cases.to_str().unwrap()]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("10 passed, 0 failed"), "{out}");
    // And the example policies are valid as shipped.
    let check = driftgate(&["check", repo("policies/examples").to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn a_wrong_expectation_fails_naming_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let test = dir.path().join("wrong.yaml");
    let fixtures = repo("tests/fixtures");
    std::fs::write(
        &test,
        format!(
            "policies: {policies}\ncases:\n\
             - review: {fixtures}/virtualservice-create-argocd-kubectl-apply.validating.json\n  decision: allowed\n\
             - name: alice's edit\n  review: {fixtures}/virtualservice-update-kubectl-edit-human.validating.json\n  \
               decision: allowed\n",
            policies = repo("policies").display(),
            fixtures = fixtures.display(),
        ),
    )
    .unwrap();
    let output = driftgate(&["test", test.to_str().unwrap()]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let fail = out.lines().find(|l| l.starts_with("FAIL")).unwrap_or_else(|| panic!("no FAIL line: {out}"));
    assert!(fail.contains("wrong.yaml: case 2 (alice's edit)"), "{fail}");
    assert!(fail.contains("expected allowed, got denied (policy mesh-gitops, rule protected)"), "{fail}");
    assert!(fail.contains("VirtualService shop/reviews is managed by GitOps"), "{fail}");
    assert!(out.lines().any(|l| l.starts_with("ok") && l.contains("case 1")), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");
}

#[test]
fn replays_review_files_one_line_each() {
    let output = driftgate(&[
        "test",
        "--policies",
        "policies",
        "tests/fixtures/virtualservice-update-kubectl-edit-human.validating.json",
        "tests/fixtures/deployment-scale-update-hpa.validating.json",
    ]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0][..4], ["FILE", "DECISION", "POLICY", "RULE"]);
    assert_eq!(
        lines[1][..6],
        [
            "tests/fixtures/virtualservice-update-kubectl-edit-human.validating.json",
            "denied",
            "mesh-gitops",
            "protected",
            "VirtualService",
            "shop/reviews"
        ]
    );
    assert_eq!(lines[2], ["tests/fixtures/deployment-scale-update-hpa.validating.json", "allowed", "-", "unprotected"]);
}

#[test]
fn reports_unreadable_files_and_broken_policies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "kind: Nope\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["test", "tests/fixtures/missing.validating.json"], "failed to read tests/fixtures/missing.validating.json"),
        (&["test", "Cargo.toml"], "failed to parse test file Cargo.toml"),
        (
            &[
                "test",
                "--policies",
                dir.path().to_str().unwrap(),
                "tests/fixtures/deployment-scale-update-hpa.validating.json",
            ],
            "bad.yaml",
        ),
    ];
    for (args, want) in cases {
        let output = driftgate(args);
        let out = text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {out}");
        assert!(out.contains(want), "{args:?}: {out}");
    }
}
