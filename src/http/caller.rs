//! Who is calling: each connection's peer address and, when it presented one that the client
//! CA signed (rustls verified it in the handshake), its certificate's subject. Every drift
//! event records it as its `source`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::event::Source;

/// Set on every request of a connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The peer's IP address.
    pub address: IpAddr,
    /// The verified client certificate's subject, when one was presented.
    pub certificate: Option<Arc<str>>,
}

impl Caller {
    /// The caller of a connection from `address` that presented `certificates` (rustls gives
    /// them only once they verified against the client CA).
    pub fn new(address: IpAddr, certificates: Option<&[CertificateDer<'_>]>) -> Caller {
        let certificate = certificates.and_then(|c| c.first()).map(|leaf| subject(leaf).into());
        Caller { address, certificate }
    }

    /// Whether it proved itself with a client certificate.
    pub fn authenticated(&self) -> bool {
        self.certificate.is_some()
    }

    /// The drift event's `source`.
    pub fn source(&self) -> Source<'static> {
        Source {
            address: Cow::Owned(self.address.to_canonical().to_string()),
            authenticated: self.authenticated(),
            certificate: self.certificate.as_deref().map(|s| Cow::Owned(s.to_owned())),
        }
    }
}

/// A certificate's subject (`CN=kube-apiserver,O=…`); a verified certificate that does not
/// parse here still counts as presented.
fn subject(leaf: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(leaf.as_ref()) {
        Ok((_, cert)) => cert.subject().to_string(),
        Err(_) => "(unreadable subject)".to_owned(),
    }
}
