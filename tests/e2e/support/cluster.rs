//! A real control plane on loopback: etcd, kube-apiserver v1.32 and (when built) the
//! kube-controller-manager with the namespace, garbage-collector and service-account
//! controllers. The flags are those that work for the harness; certificates are made here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::pki::{self, Ca};
use super::process::Proc;
use super::{Binaries, free_port, wait_for};

/// The mesh CRDs the suite applies (minimal copies: open schemas, status subresource).
pub const CRD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/crds");
/// RBAC of the identities the suite impersonates.
pub const RBAC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/rbac.yaml");

/// The control plane. Dropping it stops every process (controller-manager, apiserver, etcd).
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub server: String,
    pub ca: PathBuf,
    /// Client certificate the kube-apiserver presents to webhooks (AdmissionConfiguration),
    /// and the CA that signed it (for driftgate's `--client-ca`).
    pub webhook_client_ca: PathBuf,
    pub has_controller_manager: bool,
    // Dropped in this order: controllers first, etcd last.
    kcm: Option<Proc>,
    apiserver: Proc,
    etcd: Proc,
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: {user}}}\ncurrent-context: e2e\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

impl Cluster {
    /// Starts etcd, the kube-apiserver and the controller-manager in `dir`, applies the CRDs and
    /// RBAC, and waits until the API serves them.
    pub fn start(bins: &Binaries, dir: &Path) -> Cluster {
        let pki_dir = dir.join("pki");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&pki_dir).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        let loopback: IpAddr = [127, 0, 0, 1].into();

        let ca = Ca::new("e2e-kubernetes-ca");
        let ca_path = ca.write(&pki_dir.join("ca.crt"));
        let serving = ca.server(
            &pki_dir,
            "apiserver",
            &["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            &[loopback, [10, 0, 0, 1].into()],
        );
        let admin = ca.client(&pki_dir, "admin", "kubernetes-admin", &["system:masters"]);
        let kcm_cert = ca.client(&pki_dir, "kcm", "system:kube-controller-manager", &[]);
        let (sa_key, sa_pub) = pki::service_account_key(&pki_dir);

        // The kube-apiserver's identity towards webhooks: a client certificate from a CA of its
        // own, presented to every webhook (AdmissionConfiguration; `*` matches any host).
        let webhook_ca = Ca::new("e2e-webhook-client-ca");
        let webhook_client_ca = webhook_ca.write(&pki_dir.join("webhook-client-ca.crt"));
        let webhook_client = webhook_ca.client(&pki_dir, "webhook-client", "kube-apiserver", &[]);
        let webhook_kubeconfig = pki_dir.join("webhook-kubeconfig.yaml");
        std::fs::write(
            &webhook_kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nusers:\n- name: '*'\n  user:\n    client-certificate: {}\n    client-key: {}\n",
                webhook_client.cert.display(),
                webhook_client.key.display()
            ),
        )
        .unwrap();
        let admission_config = pki_dir.join("admission.yaml");
        let plugin = |name: &str| {
            format!(
                "- name: {name}\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {}\n",
                webhook_kubeconfig.display()
            )
        };
        std::fs::write(
            &admission_config,
            format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n{}{}",
                plugin("ValidatingAdmissionWebhook"),
                plugin("MutatingAdmissionWebhook")
            ),
        )
        .unwrap();

        let (client_port, peer_port) = (free_port(), free_port());
        let mut etcd_cmd = Command::new(&bins.etcd);
        etcd_cmd.args([
            "--name",
            "e2e",
            "--data-dir",
            &dir.join("etcd").display().to_string(),
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client_port}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client_port}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer_port}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer_port}"),
            "--initial-cluster",
            &format!("e2e=http://127.0.0.1:{peer_port}"),
            "--initial-cluster-state",
            "new",
            "--unsafe-no-fsync",
        ]);
        let etcd = Proc::spawn("etcd", etcd_cmd, &logs.join("etcd.log"));

        let api_port = free_port();
        let server = format!("https://127.0.0.1:{api_port}");
        let mut api_cmd = Command::new(&bins.apiserver);
        let path = |p: &Path| p.display().to_string();
        api_cmd.args([
            format!("--etcd-servers=http://127.0.0.1:{client_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            "--endpoint-reconciler-type=none".into(),
            format!("--tls-cert-file={}", path(&serving.cert)),
            format!("--tls-private-key-file={}", path(&serving.key)),
            format!("--client-ca-file={}", path(&ca_path)),
            "--authorization-mode=Node,RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            "--api-audiences=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", path(&sa_pub)),
            format!("--service-account-signing-key-file={}", path(&sa_key)),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            format!("--admission-control-config-file={}", path(&admission_config)),
        ]);
        let apiserver = Proc::spawn("kube-apiserver", api_cmd, &logs.join("kube-apiserver.log"));

        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server, &ca.pem, "admin", &admin.cert_pem, &admin.key_pem))
            .unwrap();
        let mut cluster = Cluster {
            dir: dir.to_owned(),
            kubeconfig,
            server: server.clone(),
            ca: ca_path.clone(),
            webhook_client_ca,
            has_controller_manager: false,
            kcm: None,
            apiserver,
            etcd,
        };
        wait_for("the kube-apiserver to be ready", Duration::from_secs(90), || {
            if !cluster.apiserver.alive() || !cluster.etcd.alive() {
                panic!(
                    "the control plane stopped:\n--- etcd\n{}\n--- kube-apiserver\n{}",
                    cluster.etcd.log_tail(20),
                    cluster.apiserver.log_tail(30)
                );
            }
            let out = cluster.admin().run(&["get", "--raw", "/readyz"]);
            (out.ok() && out.stdout.trim() == "ok").then_some(())
        });

        if let Some(kcm_bin) = &bins.controller_manager {
            let kcm_kubeconfig = dir.join("kcm.kubeconfig");
            std::fs::write(
                &kcm_kubeconfig,
                kubeconfig_yaml(
                    &server,
                    &ca.pem,
                    "system:kube-controller-manager",
                    &kcm_cert.cert_pem,
                    &kcm_cert.key_pem,
                ),
            )
            .unwrap();
            let mut kcm_cmd = Command::new(kcm_bin);
            let k = path(&kcm_kubeconfig);
            kcm_cmd.args([
                format!("--kubeconfig={k}"),
                format!("--authentication-kubeconfig={k}"),
                format!("--authorization-kubeconfig={k}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", free_port()),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=true".into(),
                "--controllers=namespace-controller,garbage-collector-controller,serviceaccount-controller".into(),
                format!("--root-ca-file={}", path(&ca_path)),
            ]);
            cluster.kcm = Some(Proc::spawn("kube-controller-manager", kcm_cmd, &logs.join("kcm.log")));
            cluster.has_controller_manager = true;
        }

        cluster.admin().ok(&["apply", "-f", CRD_DIR, "-f", RBAC]);
        cluster.admin().ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
        wait_for("the mesh CRDs to be served", Duration::from_secs(30), || {
            cluster.admin().run(&["get", "virtualservices.networking.istio.io", "-A"]).ok().then_some(())
        });
        cluster
    }

    /// Whether the processes are still up (a test that killed one would be a bug).
    pub fn alive(&mut self) -> bool {
        self.apiserver.alive() && self.etcd.alive()
    }

    /// The tail of the control plane's logs, for a failure report.
    pub fn log_tails(&self) -> String {
        let mut out = format!("--- kube-apiserver\n{}\n", self.apiserver.log_tail(5));
        if let Some(kcm) = &self.kcm {
            out.push_str(&format!("--- kube-controller-manager\n{}\n", kcm.log_tail(5)));
        }
        out
    }
}
