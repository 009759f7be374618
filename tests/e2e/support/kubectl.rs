//! Real `kubectl` (the binary on PATH) against the suite's cluster, as the admin or, through
//! impersonation (`--as`, `--as-group`), as the people and controllers of a real cluster.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::cluster::Cluster;

/// Argo CD's application controller.
pub const ARGOCD: &str = "system:serviceaccount:argocd:argocd-application-controller";
/// Flux's kustomize-controller.
pub const FLUX: &str = "system:serviceaccount:flux-system:kustomize-controller";
/// A person with edit rights on mesh objects.
pub const ALICE: &str = "alice@example.com";
/// The group of people who may edit mesh objects (RBAC of the suite).
pub const DEVS: &str = "devs";
/// driftgate's default break-glass group.
pub const BREAK_GLASS: &str = "driftgate:break-glass";

/// Who runs a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The admin's client certificate (`system:masters`).
    Admin,
    /// `--as USER` with each `--as-group` (a service account gets its groups from the apiserver).
    As { user: String, groups: Vec<String> },
}

impl Identity {
    pub fn argocd() -> Identity {
        Identity::As { user: ARGOCD.to_owned(), groups: vec![] }
    }
    pub fn flux() -> Identity {
        Identity::As { user: FLUX.to_owned(), groups: vec![] }
    }
    pub fn alice() -> Identity {
        Identity::As { user: ALICE.to_owned(), groups: vec![DEVS.to_owned()] }
    }
    pub fn person(user: &str, groups: &[&str]) -> Identity {
        Identity::As { user: user.to_owned(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }
    pub fn user(&self) -> &str {
        match self {
            Identity::Admin => "kubernetes-admin",
            Identity::As { user, .. } => user,
        }
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// `kubectl` as one identity, with extra environment.
pub struct Kubectl<'a> {
    kubeconfig: &'a Path,
    identity: Identity,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// kubectl as the admin.
    pub fn admin(&self) -> Kubectl<'_> {
        self.kubectl(Identity::Admin)
    }

    /// kubectl as `identity`.
    pub fn kubectl(&self, identity: Identity) -> Kubectl<'_> {
        Kubectl { kubeconfig: &self.kubeconfig, identity, env: Vec::new() }
    }

    /// kubectl as Argo CD's application controller.
    pub fn argocd(&self) -> Kubectl<'_> {
        self.kubectl(Identity::argocd())
    }

    /// kubectl as Flux's kustomize-controller.
    pub fn flux(&self) -> Kubectl<'_> {
        self.kubectl(Identity::flux())
    }

    /// kubectl as alice (group devs).
    pub fn alice(&self) -> Kubectl<'_> {
        self.kubectl(Identity::alice())
    }

    /// Creates `ns` (as the admin) if it does not exist.
    pub fn namespace(&self, ns: &str) {
        let out = self.admin().run(&["create", "namespace", ns]);
        assert!(out.ok() || out.stderr.contains("AlreadyExists"), "create namespace {ns}: {}", out.stderr);
    }

    /// The object as JSON, or `None` when it does not exist.
    pub fn get_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.admin().run(&all);
        if !out.ok() {
            assert!(out.stderr.contains("NotFound"), "kubectl {all:?}: {}", out.stderr);
            return None;
        }
        Some(serde_json::from_str(&out.stdout).unwrap())
    }
}

impl Kubectl<'_> {
    /// Adds an environment variable (e.g. `EDITOR`).
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", self.kubeconfig).env_remove("KUBECTL_EXTERNAL_DIFF");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Identity::As { user, groups } = &self.identity {
            cmd.arg(format!("--as={user}"));
            for g in groups {
                cmd.arg(format!("--as-group={g}"));
            }
        }
        cmd.args(args);
        cmd
    }

    /// Runs kubectl with `args`.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_stdin(args, None)
    }

    /// Runs kubectl with `args`, writing `stdin` to it (`-f -`).
    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
        }
        let output = child.wait_with_output().expect("kubectl ends");
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs kubectl and asserts that it succeeded; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok(), "kubectl {args:?} as {} failed ({}): {}", self.identity.user(), out.code, out.stderr);
        out.stdout
    }

    /// `kubectl apply -f -` of `yaml` (extra flags in `args`), asserting success.
    pub fn apply(&self, yaml: &str, args: &[&str]) -> String {
        let mut all = vec!["apply", "-f", "-"];
        all.extend_from_slice(args);
        let out = self.run_stdin(&all, Some(yaml));
        assert!(out.ok(), "kubectl apply {args:?} as {} failed: {}", self.identity.user(), out.stderr);
        out.stdout
    }
}
