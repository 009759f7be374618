//! TLS: the rustls server configuration and the certificate it serves.
//!
//! TLS 1.2 and 1.3 only, the ring provider's modern suites (AEAD with forward secrecy), ALPN
//! `h2` and `http/1.1` (the kube-apiserver uses both). The certificate is resolved through an
//! [`ArcSwap`]; the server's reloader ([`crate::server`]) replaces it for new connections when
//! the files change, without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::certs::{TLS_CRT, TLS_KEY};

/// Why a certificate pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM holds no certificate or no private key, or is malformed.
    #[error("failed to parse {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls cannot use it.
    #[error("failed to use the key pair in {dir}: {source}")]
    Key {
        /// The certificate folder.
        dir: PathBuf,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
}

/// The provider all TLS uses: ring, with its default (modern) cipher suites.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, once, for the HTTP clients that pick theirs that
/// way (the OTLP exporters): without it they would have none.
pub fn install_default_provider() {
    // Already installed (by an earlier call): nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads `tls.crt` and `tls.key` from `dir` and checks that they belong together.
pub fn load_pair(dir: &Path) -> Result<CertifiedKey, TlsError> {
    let (crt_pem, key_pem) = read_pair(dir)?;
    pair_from_pem(dir, &crt_pem, &key_pem)
}

/// The bytes of `tls.crt` and `tls.key` in `dir` (following symlinks, as Secret volumes use).
pub fn read_pair(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: PathBuf| std::fs::read(&path).map_err(|source| TlsError::Read { path, source });
    Ok((read(dir.join(TLS_CRT))?, read(dir.join(TLS_KEY))?))
}

/// Builds a certified key from PEM text; `dir` only labels errors.
pub fn pair_from_pem(dir: &Path, crt_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let crt_path = dir.join(TLS_CRT);
    let key_path = dir.join(TLS_KEY);
    let pem_err = |path: &Path, reason: String| TlsError::Pem { path: path.to_owned(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&crt_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_err(&crt_path, "no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| pem_err(&key_path, e.to_string()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|source| TlsError::Key { dir: dir.to_owned(), source })?;
    if expiry(&certified).is_none() {
        return Err(pem_err(&crt_path, "the certificate cannot be read as X.509".into()));
    }
    Ok(certified)
}

/// The serving certificate's notAfter, in seconds since the Unix epoch.
pub fn expiry(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Serves whatever certificate is current.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    /// A resolver serving `key`.
    pub fn new(key: CertifiedKey) -> Self {
        CertResolver { current: ArcSwap::from_pointee(key) }
    }

    /// Replaces the certificate for new connections.
    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server configuration: TLS 1.2+, ALPN h2 and http/1.1, certificates from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<ServerConfig, rustls::Error> {
    server_config_with(resolver, None)
}

/// Reads the CA bundle that signs the kube-apiserver's client certificate.
pub fn load_client_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsError::Pem { path: path.to_owned(), reason: e.to_string() })?;
        roots.add(cert).map_err(|e| TlsError::Pem { path: path.to_owned(), reason: e.to_string() })?;
    }
    if roots.is_empty() {
        return Err(TlsError::Pem { path: path.to_owned(), reason: "no CA certificate found".into() });
    }
    Ok(roots)
}

/// As [`server_config`], and with `client_roots`, client certificates signed by them are
/// verified. A client without one still connects (the kubelet's probes present none); the
/// webhook endpoints then refuse it, health endpoints do not.
pub fn server_config_with(
    resolver: Arc<CertResolver>,
    client_roots: Option<RootCertStore>,
) -> Result<ServerConfig, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| rustls::Error::General(format!("failed to build the client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
