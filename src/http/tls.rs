//! TLS: the rustls server configuration and the certificate it serves.
//!
//! TLS 1.2 and 1.3 only, the ring provider's modern suites (AEAD with forward secrecy), ALPN
//! `h2` and `http/1.1` (the kube-apiserver uses both). The certificate is resolved through an
//! [`ArcSwap`], so a new pair can replace it for new connections without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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

/// Reads `tls.crt` and `tls.key` from `dir` and checks that they belong together.
pub fn load_pair(dir: &Path) -> Result<CertifiedKey, TlsError> {
    let crt_path = dir.join(TLS_CRT);
    let key_path = dir.join(TLS_KEY);
    let read = |path: &Path| std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source });
    let crt_pem = read(&crt_path)?;
    let key_pem = read(&key_path)?;
    let pem_err = |path: &Path, reason: String| TlsError::Pem { path: path.to_owned(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&crt_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&crt_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_err(&crt_path, "no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| pem_err(&key_path, e.to_string()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|source| TlsError::Key { dir: dir.to_owned(), source })?;
    Ok(certified)
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
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
