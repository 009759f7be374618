//! Certificate hot reload: a Kubernetes Secret volume's `..data` swap under a request loop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{DEFAULT_POLICY, eventually, fixture};
use driftgate::certs::{self, CertBundle};
use driftgate::{App, Settings};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

/// Lays `bundle` out as the kubelet does for a Secret volume: the files live in a timestamped
/// folder, `..data` points at it, and `tls.crt`/`tls.key` point through `..data`. A new version
/// is a new folder and an atomic rename of a fresh `..data` symlink over the old one.
fn publish(dir: &Path, bundle: &CertBundle, version: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), &bundle.cert_pem).unwrap();
    std::fs::write(versioned.join("tls.key"), &bundle.key_pem).unwrap();
    std::fs::write(versioned.join("ca.crt"), &bundle.ca_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key", "ca.crt"] {
        let link = dir.join(f);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), link).unwrap();
        }
    }
}

/// The certificate a fresh TLS connection is served, trusting only `ca_pem`; None if the
/// handshake fails.
async fn served_cert(addr: std::net::SocketAddr, ca_pem: &str) -> Option<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.ok()?;
    tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec())
}

fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotates_without_failing_a_request_and_refuses_a_broken_pair() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::for_test(dir.path());
    std::fs::create_dir_all(&settings.policies).unwrap();
    std::fs::write(settings.policies.join("p.yaml"), DEFAULT_POLICY).unwrap();
    std::fs::create_dir_all(&settings.cert_dir).unwrap();
    let first = certs::generate(&certs::dev_request()).unwrap();
    let second = certs::generate(&certs::dev_request()).unwrap();
    publish(&settings.cert_dir, &first, "2026_11_23_10_00_00.1");

    let server = App::from_settings(&settings).await.unwrap();
    let addr = server.local_addr().unwrap();
    let reloads = server.cert_reloads();
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    assert_eq!(served_cert(addr, &first.ca_pem).await, Some(der_of(&first.cert_pem)));

    // A client that trusts both CAs and opens a new connection for every request.
    let client = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([
            reqwest::Certificate::from_pem(first.ca_pem.as_bytes()).unwrap(),
            reqwest::Certificate::from_pem(second.ca_pem.as_bytes()).unwrap(),
        ])
        .resolve("localhost", addr)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let body = fixture("virtualservice-create-argocd-kubectl-apply.validating.json");
    let looping = {
        let (running, ok, failed) = (running.clone(), ok.clone(), failed.clone());
        let url = format!("https://localhost:{}/validate", addr.port());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let sent = client.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                match sent {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    assert!(eventually(Duration::from_secs(10), || ok.load(Ordering::Relaxed) > 10).await);

    publish(&settings.cert_dir, &second, "2026_11_23_11_00_00.2");
    let mut rotated = false;
    for _ in 0..200 {
        if served_cert(addr, &second.ca_pem).await == Some(der_of(&second.cert_pem)) {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated, "new connections never saw the new certificate");
    let before = ok.load(Ordering::Relaxed);
    assert!(eventually(Duration::from_secs(10), || ok.load(Ordering::Relaxed) > before + 10).await);
    running.store(false, Ordering::Relaxed);
    looping.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during rotation");
    assert_eq!(reloads.reloads.load(Ordering::Relaxed), 1);

    // A certificate with someone else's key is refused; the current one stays in service.
    let third = certs::generate(&certs::dev_request()).unwrap();
    let broken = CertBundle { key_pem: first.key_pem.clone(), ..third };
    publish(&settings.cert_dir, &broken, "2026_11_23_12_00_00.3");
    assert!(eventually(Duration::from_secs(10), || reloads.errors.load(Ordering::Relaxed) == 1).await);
    assert_eq!(served_cert(addr, &second.ca_pem).await, Some(der_of(&second.cert_pem)));
    assert_eq!(reloads.reloads.load(Ordering::Relaxed), 1);

    stop_server.send(()).unwrap();
    handle.await.unwrap();
}
