//! The HTTPS client the webhook and OTLP sinks share: rustls with ring (as the server), the
//! system's roots or a CA bundle of the sink's own, HTTP/2 when the receiver offers it, and the
//! sink's timeout on every request.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::settings::SinkSettings;
use crate::http::tls;

/// A client for one sink; `ca_file` replaces the system's roots.
pub fn build(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    tls::install_default_provider();
    let roots = match ca_file {
        Some(path) => tls::load_client_roots(path).map_err(|e| e.to_string())?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (_added, _unusable) = roots.add_parsable_certificates(found.certs);
            roots
        }
    };
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("failed to configure TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("driftgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("failed to make an HTTP client: {e}"))
}

/// POSTs `body` with the sink's headers. `Err` carries, besides the reason for the log, whether
/// the receiver refused the payload for good ([`refuses_payload`]) rather than "not now".
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    content_type: &'static str,
    body: impl Into<reqwest::Body>,
) -> Result<(), (bool, String)> {
    let sent = client
        .post(url)
        .headers(headers.clone())
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => {
            let status = answer.status();
            Err((refuses_payload(status), format!("{} answered {status}", redacted(url))))
        }
        Err(e) => Err((false, format!("{}: {}", redacted(url), error_chain(&e)))),
    }
}

/// A reqwest error with its causes, without the URL (it may hold a secret): "could not connect:
/// … : Connection refused".
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The sink's headers, their values read now (from files or the environment) and marked
/// sensitive so they are never printed.
pub fn headers(settings: &SinkSettings) -> Result<HeaderMap, String> {
    let name = settings.name();
    let mut headers = HeaderMap::new();
    for (key, value) in &settings.headers {
        let value = value.resolve().map_err(|e| format!("sink {name}: header {key}: {e}"))?;
        let key = HeaderName::try_from(key.as_str()).map_err(|e| format!("sink {name}: header {key:?}: {e}"))?;
        let mut value = HeaderValue::try_from(value).map_err(|e| format!("sink {name}: header {key}: {e}"))?;
        value.set_sensitive(true);
        headers.insert(key, value);
    }
    Ok(headers)
}

/// A URL as logs may show it: scheme, host and port only (a webhook URL's path and query often
/// hold its secret).
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/…", u.scheme()),
            (Some(host), None) => format!("{}://{host}/…", u.scheme()),
            _ => "(a URL without a host)".to_owned(),
        },
        Err(_) => "(an unparseable URL)".to_owned(),
    }
}

/// Whether an HTTP answer means "this payload will never be accepted" (so retrying is useless)
/// rather than "not now": 400, 413, 415 and 422. Authentication and not-found answers are
/// retried, as they are usually fixed by correcting the receiver's configuration.
pub fn refuses_payload(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 415 | 422)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_paths_and_queries() {
        assert_eq!(redacted("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com/…");
        assert_eq!(redacted("https://10.0.0.1:8443/x?token=y"), "https://10.0.0.1:8443/…");
        assert_eq!(redacted("not a url"), "(an unparseable URL)");
    }

    #[test]
    fn only_payload_refusals_are_final() {
        for code in [400, 413, 415, 422] {
            assert!(refuses_payload(reqwest::StatusCode::from_u16(code).unwrap()));
        }
        for code in [401, 403, 404, 408, 429, 500, 502, 503] {
            assert!(!refuses_payload(reqwest::StatusCode::from_u16(code).unwrap()));
        }
    }
}
