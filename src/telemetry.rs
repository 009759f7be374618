//! Logs and traces. Logs are tracing events on stderr, as text or one JSON object a line
//! (`--log-format json`). When `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the span of each admission request, with its
//! operation, kind, namespace, name, user, decision and policy, is exported over OTLP/HTTP
//! (protobuf) to that collector; without it no exporter exists, so nothing is exported and
//! nothing is slower. Health probes and the metrics port make no spans.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, registry::LookupSpan};

use crate::config::LogFormat;

/// The environment variables that switch OTLP trace export on.
pub const OTLP_ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// What [`init`] set up; [`Telemetry::shutdown`] flushes spans not yet exported.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("driftgate: failed to flush traces: {e}");
        }
    }
}

/// Whether the environment asks for OTLP export.
pub fn otlp_requested(var: impl Fn(&str) -> Option<String>) -> bool {
    OTLP_ENDPOINT_VARS.iter().any(|v| var(v).is_some_and(|s| !s.trim().is_empty()))
}

/// The tracing layer that turns spans into OpenTelemetry spans of `provider`.
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("driftgate"))
}

fn otlp_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    // Its HTTP client takes the process's default TLS provider.
    crate::http::tls::install_default_provider();
    // The exporter reads the standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout).
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("driftgate").build())
        .build())
}

/// The span each admission request runs in (see [`crate::http`]).
pub const ADMISSION_SPAN: &str = "admission";

/// Installs logging (and OTLP trace export when asked for) as the global subscriber.
///
/// The log sees the admission span only at debug level: formatting its fields costs more than
/// the rest of a refusal's logging, and the few lines logged inside it at info or above carry
/// the request's identity themselves. So without OTLP export and at info level, no layer wants
/// the span and it is never made.
pub fn init(format: LogFormat, level: &str) -> Telemetry {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let log_spans = filter().max_level_hint().is_none_or(|max| max >= LevelFilter::DEBUG);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.with_ansi(ansi).boxed(),
    };
    let not_admission = filter_fn(move |meta| log_spans || !(meta.is_span() && meta.name() == ADMISSION_SPAN));
    let fmt = fmt.with_filter(filter().and(not_admission));
    let mut telemetry = Telemetry::default();
    let mut otel = None;
    if otlp_requested(|v| std::env::var(v).ok()) {
        match otlp_provider() {
            Ok(provider) => {
                otel = Some(otel_layer(&provider).with_filter(filter()));
                telemetry.provider = Some(provider);
            }
            Err(e) => eprintln!("driftgate: failed to set up OTLP trace export, continuing without: {e}"),
        }
    }
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
    if telemetry.exporting() {
        tracing::info!("exporting traces over OTLP");
    }
    telemetry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_is_off_unless_an_endpoint_is_set() {
        assert!(!otlp_requested(|_| None));
        assert!(!otlp_requested(|_| Some(" ".into())));
        assert!(otlp_requested(|v| (v == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://collector:4318".into())));
        assert!(otlp_requested(
            |v| (v == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://c:4318/v1/traces".into())
        ));
    }
}
