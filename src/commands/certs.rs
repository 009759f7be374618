//! `driftgate certs`: makes a CA and a serving certificate into a folder; with `--client`, a
//! client CA and the kube-apiserver's client certificate, with the AdmissionConfiguration and
//! kubeconfig that make the kube-apiserver present it to driftgate.

use std::net::IpAddr;
use std::path::Path;

use crate::certs::{self, CertRequest};

/// Writes `ca.crt`, `tls.crt` and `tls.key` for the names into `out`.
pub fn run(out: &Path, dns: Vec<String>, ips: Vec<IpAddr>, days: u32, force: bool) -> anyhow::Result<()> {
    let bundle = certs::generate(&CertRequest { dns, ips, days })?;
    certs::write(out, &bundle, force)?;
    println!("wrote {0}/ca.crt, {0}/tls.crt, {0}/tls.key", out.display());
    Ok(())
}

/// Writes `client-ca.crt` (driftgate's `--client-ca`), `client.crt`, `client.key`, and, for the
/// kube-apiserver, `admission-kubeconfig.yaml` (the certificate embedded, for the webhooks of
/// driftgate's Service in `namespace`, or of `host` when given) and `admission-config.yaml`
/// (`--admission-control-config-file`; it names the kubeconfig at `config_dir`).
pub fn run_client(
    out: &Path,
    name: &str,
    namespace: &str,
    host: Option<&str>,
    config_dir: &Path,
    days: u32,
    force: bool,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    let bundle = certs::generate_client(name, days)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let host = host.map_or_else(|| format!("driftgate.{namespace}.svc"), str::to_owned);
    let kubeconfig = format!(
        "# The kube-apiserver's client certificate towards driftgate ({host}), for its\n\
         # WebhookAdmissionConfiguration (see admission-config.yaml).\n\
         apiVersion: v1\nkind: Config\nusers:\n- name: '{host}'\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&bundle.cert_pem),
        b64(&bundle.key_pem),
    );
    let kubeconfig_path = config_dir.join("admission-kubeconfig.yaml");
    let admission = format!(
        "# kube-apiserver --admission-control-config-file=<this file>: present the client certificate\n\
         # of admission-kubeconfig.yaml to driftgate's webhooks. Both files must be readable by the\n\
         # kube-apiserver at these paths (on kubeadm, mount the folder into its static pod).\n\
         apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n\
         - name: ValidatingAdmissionWebhook\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {k}\n\
         - name: MutatingAdmissionWebhook\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {k}\n",
        k = kubeconfig_path.display()
    );
    certs::write_files(
        out,
        &[
            ("client-ca.crt", &bundle.ca_pem, 0o644),
            ("client.crt", &bundle.cert_pem, 0o644),
            ("client.key", &bundle.key_pem, 0o600),
            ("admission-kubeconfig.yaml", &kubeconfig, 0o600),
            ("admission-config.yaml", &admission, 0o644),
        ],
        force,
    )?;
    println!(
        "wrote {0}/client-ca.crt (driftgate --client-ca), {0}/client.crt, {0}/client.key, \
         {0}/admission-kubeconfig.yaml and {0}/admission-config.yaml (for the kube-apiserver, at {1})",
        out.display(),
        config_dir.display()
    );
    Ok(())
}
