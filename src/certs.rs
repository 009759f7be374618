//! Certificates: a CA and an ECDSA P-256 serving certificate signed by it, made with rcgen.
//!
//! Used by `driftgate certs` and by `serve` for the development certificates it makes in
//! `./certs` when none are there. The CA's private key is not written: nothing re-signs with it.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate (the webhook configuration's `caBundle`).
pub const CA_CRT: &str = "ca.crt";
/// File name of the serving certificate.
pub const TLS_CRT: &str = "tls.crt";
/// File name of the serving key.
pub const TLS_KEY: &str = "tls.key";

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters (an invalid DNS name, say).
    #[error("failed to make certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The files exist and `force` was not given.
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    /// No name to put in the certificate.
    #[error("give at least one --dns name or --ip address")]
    NoNames,
}

/// What to put in the certificates.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// DNS names (SANs).
    pub dns: Vec<String>,
    /// IP addresses (SANs).
    pub ips: Vec<IpAddr>,
    /// Validity in days.
    pub days: u32,
}

/// PEM text of the generated files.
#[derive(Debug, Clone)]
pub struct CertBundle {
    /// The CA certificate.
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving key (PKCS#8).
    pub key_pem: String,
}

/// Makes a CA and a serving certificate for the request's names.
pub fn generate(req: &CertRequest) -> Result<CertBundle, CertError> {
    if req.dns.is_empty() && req.ips.is_empty() {
        return Err(CertError::NoNames);
    }
    let mut leaf = CertificateParams::new(req.dns.clone())?;
    leaf.subject_alt_names.extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let name = req.dns.first().cloned().unwrap_or_else(|| "driftgate".into());
    let (ca_pem, cert_pem, key_pem) =
        ca_and_leaf("driftgate CA", leaf, &name, ExtendedKeyUsagePurpose::ServerAuth, req.days)?;
    Ok(CertBundle { ca_pem, cert_pem, key_pem })
}

/// A new CA named `ca_name` and `leaf` (named `common_name`, for `usage`) signed by it, both
/// valid from five minutes ago for `days`: the PEM of the CA, the leaf and the leaf's key.
fn ca_and_leaf(
    ca_name: &str,
    mut leaf: CertificateParams,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    days: u32,
) -> Result<(String, String, String), CertError> {
    let now = OffsetDateTime::now_utc();
    let (not_before, not_after) = (now - Duration::minutes(5), now + Duration::days(i64::from(days.max(1))));
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, common_name);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![usage];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok((ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem()))
}

/// PEM text of a client CA and a client certificate it signed.
#[derive(Debug, Clone)]
pub struct ClientBundle {
    /// The client CA (driftgate's `--client-ca`).
    pub ca_pem: String,
    /// The client certificate (the kube-apiserver presents it).
    pub cert_pem: String,
    /// Its key (PKCS#8).
    pub key_pem: String,
}

/// Makes a client CA and a client certificate for `common_name` (the kube-apiserver's identity
/// towards driftgate).
pub fn generate_client(common_name: &str, days: u32) -> Result<ClientBundle, CertError> {
    let leaf = CertificateParams::new(Vec::<String>::new())?;
    let (ca_pem, cert_pem, key_pem) =
        ca_and_leaf("driftgate client CA", leaf, common_name, ExtendedKeyUsagePurpose::ClientAuth, days)?;
    Ok(ClientBundle { ca_pem, cert_pem, key_pem })
}

/// Writes `files` (name, text, mode) into `dir`, creating it; refuses to replace existing
/// files unless `force`.
pub fn write_files(dir: &Path, files: &[(&str, &str, u32)], force: bool) -> Result<(), CertError> {
    if !force && let Some((name, _, _)) = files.iter().find(|(name, _, _)| dir.join(name).exists()) {
        return Err(CertError::Exists(dir.join(name)));
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write { path: dir.to_owned(), source })?;
    for (name, text, mode) in files {
        let path = dir.join(name);
        write_file(&path, text.as_bytes(), *mode).map_err(|source| CertError::Write { path, source })?;
    }
    Ok(())
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`, creating it.
/// Refuses to replace existing files unless `force`.
pub fn write(dir: &Path, bundle: &CertBundle, force: bool) -> Result<(), CertError> {
    write_files(
        dir,
        &[(CA_CRT, &bundle.ca_pem, 0o644), (TLS_CRT, &bundle.cert_pem, 0o644), (TLS_KEY, &bundle.key_pem, 0o600)],
        force,
    )
}

/// Writes a file through a temporary name and a rename, so a reader never sees half of it.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The certificates `serve` makes for local development: a CA and `localhost`, `127.0.0.1`, `::1`.
pub fn dev_request() -> CertRequest {
    CertRequest {
        dns: vec!["localhost".into()],
        ips: vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])],
        days: 365,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_a_serving_pair_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = generate(&dev_request()).unwrap();
        assert!(bundle.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.key_pem.contains("PRIVATE KEY"));
        write(dir.path(), &bundle, false).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(TLS_KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(write(dir.path(), &bundle, false), Err(CertError::Exists(_))));
        write(dir.path(), &bundle, true).unwrap();
        assert!(matches!(generate(&CertRequest { dns: vec![], ips: vec![], days: 1 }), Err(CertError::NoNames)));
    }
}
