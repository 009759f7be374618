//! OpenTelemetry: one span per admission request, with the attributes an operator filters on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEFAULT_POLICY, TestServer};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

// One thread: the subscriber set for this test is seen by the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn exports_one_span_per_admission_request_with_its_attributes() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry().with(driftgate::telemetry::otel_layer(&provider));
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::start(DEFAULT_POLICY).await;
    server.validate_fixture("virtualservice-update-kubectl-edit-human.validating.json").await;
    server.get("/healthz").await;
    server.get("/readyz").await;
    server.stop().await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let admission: Vec<_> = spans.iter().filter(|s| s.name == "admission").collect();
    assert_eq!(
        admission.len(),
        1,
        "health probes make no spans: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let attr = |key: &str| admission[0].attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.clone());
    for (key, want) in [
        ("operation", "UPDATE"),
        ("kind", "VirtualService"),
        ("namespace", "shop"),
        ("name", "reviews"),
        ("user", "alice@example.com"),
        ("decision", "denied"),
        ("policy", "mesh-gitops"),
    ] {
        assert_eq!(attr(key), Some(Value::from(want)), "{key}: {:?}", admission[0].attributes);
    }
}
