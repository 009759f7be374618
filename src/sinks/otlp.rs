//! The `otlp` sink: drift events as OpenTelemetry log records over OTLP/HTTP (protobuf), one
//! record an event, to the collector the traces go to unless the sink names its own endpoint.
//!
//! Attributes follow OpenTelemetry's semantic conventions where one fits (`k8s.namespace.name`,
//! `user.name`, `user.id`, `k8s.pod.name` on the resource); the rest are `driftgate.*`. The
//! record's trace id is the admission request's, when traces were exported for it.

use http::HeaderMap;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::settings::SinkSettings;
use super::{Failure, Record, client};
use crate::event::{Decision, DriftEvent};

/// The log records' event name.
pub const EVENT_NAME: &str = "driftgate.drift";

/// The logs endpoint: the sink's own, else `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/logs`.
pub fn endpoint(settings: &SinkSettings, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    settings.endpoint.clone().or_else(|| set(var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"))).or_else(|| {
        set(var("OTEL_EXPORTER_OTLP_ENDPOINT")).map(|base| format!("{}/v1/logs", base.trim_end_matches('/')))
    })
}

/// A configured OTLP/HTTP logs exporter.
#[derive(Debug)]
pub struct Otlp {
    client: reqwest::Client,
    endpoint: String,
    headers: HeaderMap,
    resource: Resource,
}

impl Otlp {
    /// Finds the endpoint, reads the headers and makes the client.
    pub fn new(settings: &SinkSettings) -> Result<Otlp, String> {
        let name = settings.name();
        let endpoint = endpoint(settings, |v| std::env::var(v).ok()).ok_or_else(|| {
            format!(
                "sink {name}: no endpoint: set the sink's endpoint, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT"
            )
        })?;
        reqwest::Url::parse(&endpoint).map_err(|e| format!("sink {name}: endpoint {endpoint:?}: {e}"))?;
        let headers = client::headers(settings)?;
        let timeout = std::time::Duration::from_secs(settings.timeout_seconds);
        let client = client::build(settings.ca_file.as_deref(), timeout).map_err(|e| format!("sink {name}: {e}"))?;
        Ok(Otlp { client, endpoint, headers, resource: resource(std::env::var("HOSTNAME").ok()) })
    }

    /// Where it exports, for logs.
    pub fn target(&self) -> String {
        self.endpoint.clone()
    }

    /// Exports the events in one request.
    pub async fn deliver(&self, events: &[Record<'_>]) -> Result<(), Failure> {
        let body = request(self.resource.clone(), events.iter().map(|r| &r.event), now_nanos()).encode_to_vec();
        let posted = client::post(&self.client, &self.endpoint, &self.headers, "application/x-protobuf", body).await;
        // A payload the collector will never take is dropped whole (OTLP/HTTP: 400 is not
        // retryable); anything else is retried.
        posted.map_err(|(refused, reason)| Failure {
            delivered: 0,
            rejected: if refused { events.len() } else { 0 },
            reason,
        })
    }
}

fn now_nanos() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0)
}

/// The resource: the service, and the pod it runs in.
pub fn resource(pod: Option<String>) -> Resource {
    let mut attributes =
        vec![kv("service.name", text("driftgate")), kv("service.version", text(env!("CARGO_PKG_VERSION")))];
    if let Some(pod) = pod.filter(|p| !p.is_empty()) {
        attributes.push(kv("k8s.pod.name", text(&pod)));
    }
    Resource { attributes, ..Resource::default() }
}

/// One export request holding one log record an event.
pub fn request<'a>(
    resource: Resource,
    events: impl IntoIterator<Item = &'a DriftEvent<'a>>,
    observed: u64,
) -> ExportLogsServiceRequest {
    let log_records = events.into_iter().map(|e| record(e, observed)).collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "driftgate".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                log_records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// The log record of one drift event: its message as the body, its fields as attributes.
pub fn record(event: &DriftEvent<'_>, observed: u64) -> LogRecord {
    let r = &event.resource;
    let (severity, severity_text) = match event.decision {
        Decision::Denied => (SeverityNumber::Warn, "WARN"),
        _ => (SeverityNumber::Info, "INFO"),
    };
    let mut attributes = vec![
        kv("driftgate.event.id", text(&event.id)),
        kv("driftgate.decision", text(event.decision.as_str())),
        kv("driftgate.mode", text(&mode(event))),
        kv("driftgate.policy", text(&event.policy)),
        kv("driftgate.rule", text(&event.rule)),
        kv("driftgate.operation", text(event.operation.as_str())),
        kv("driftgate.dry_run", AnyValue { value: Some(any_value::Value::BoolValue(event.dry_run)) }),
        kv("user.name", text(&event.user.username)),
        kv("driftgate.user.groups", list(event.user.groups.iter().map(|g| g.as_ref()))),
        kv("k8s.namespace.name", text(&r.namespace)),
        kv("driftgate.resource.group", text(&r.group)),
        kv("driftgate.resource.version", text(&r.version)),
        kv("driftgate.resource.kind", text(&r.kind)),
        kv("driftgate.resource.resource", text(&r.resource)),
        kv("driftgate.resource.name", text(&r.name)),
        kv("driftgate.changes.paths", list(event.changes.iter().map(|c| c.path.as_ref()))),
        kv("driftgate.changes", text(&serde_json::to_string(&event.changes).unwrap_or_default())),
        kv("driftgate.request.uid", text(&event.request_uid)),
    ];
    if let Some(uid) = &event.user.uid {
        attributes.push(kv("user.id", text(uid)));
    }
    if !r.subresource.is_empty() {
        attributes.push(kv("driftgate.resource.subresource", text(&r.subresource)));
    }
    if event.changes_omitted > 0 {
        let omitted = i64::try_from(event.changes_omitted).unwrap_or(i64::MAX);
        attributes.push(kv("driftgate.changes.omitted", AnyValue { value: Some(any_value::Value::IntValue(omitted)) }));
    }
    if let Some(owner) = &event.gitops {
        attributes.push(kv("driftgate.gitops.tool", text(owner.tool.as_str())));
        attributes.push(kv("driftgate.gitops.app", text(&owner.app)));
    }
    LogRecord {
        time_unix_nano: u64::try_from(event.time.unix_timestamp_nanos()).unwrap_or(0),
        observed_time_unix_nano: observed,
        severity_number: severity as i32,
        severity_text: severity_text.to_owned(),
        body: Some(text(&event.message)),
        attributes,
        trace_id: event.trace_id.as_deref().and_then(trace_bytes).unwrap_or_default(),
        event_name: EVENT_NAME.to_owned(),
        ..LogRecord::default()
    }
}

fn mode(event: &DriftEvent<'_>) -> String {
    serde_json::to_value(event.mode).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// 32 hex digits as the 16 bytes of a trace id.
fn trace_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 32 {
        return None;
    }
    (0..16).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(value), ..KeyValue::default() }
}

fn text(s: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s.to_owned())) }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> AnyValue {
    AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values: items.map(text).collect() })) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::review::testing::{mk_event, mk_line};
    use crate::sinks::settings::SinkType;

    fn attr<'a>(record: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        record.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    #[test]
    fn one_record_an_event_with_semantic_attributes() {
        let line = mk_line("alice", "shop", "VirtualService", "denied", "2026-05-01T10:00:00Z", false);
        let mut event = mk_event(&line);
        event.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let req = request(resource(Some("driftgate-0".into())), &[event], 7);
        let decoded = ExportLogsServiceRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        let scope = &decoded.resource_logs[0].scope_logs[0];
        assert_eq!(scope.log_records.len(), 1);
        let r = &scope.log_records[0];
        assert_eq!(r.time_unix_nano, 1_777_629_600_000_000_000);
        assert_eq!(r.observed_time_unix_nano, 7);
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(r.event_name, EVENT_NAME);
        assert_eq!(r.trace_id.len(), 16);
        assert_eq!(r.trace_id[0], 0x4b);
        assert_eq!(attr(r, "k8s.namespace.name"), Some(&any_value::Value::StringValue("shop".into())));
        assert_eq!(attr(r, "user.name"), Some(&any_value::Value::StringValue("alice".into())));
        assert_eq!(attr(r, "driftgate.decision"), Some(&any_value::Value::StringValue("denied".into())));
        assert_eq!(attr(r, "driftgate.mode"), Some(&any_value::Value::StringValue("enforce".into())));
        assert_eq!(
            attr(r, "driftgate.event.id"),
            Some(&any_value::Value::StringValue("01a20abf-33ea-752b-8746-03435d90d32d".into()))
        );
        let pods = &decoded.resource_logs[0].resource.as_ref().unwrap().attributes;
        assert!(pods.iter().any(|a| a.key == "k8s.pod.name"));
    }

    #[test]
    fn endpoint_defaults_to_the_traces_collector() {
        let s = SinkSettings::new(SinkType::Otlp);
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://collector:4318/".to_owned());
        assert_eq!(endpoint(&s, env).as_deref(), Some("http://collector:4318/v1/logs"));
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" => Some("http://logs:4318/v1/logs".to_owned()),
            _ => Some("http://collector:4318".to_owned()),
        };
        assert_eq!(endpoint(&s, env).as_deref(), Some("http://logs:4318/v1/logs"));
        let own = SinkSettings { endpoint: Some("https://otel.example/v1/logs".into()), ..s };
        assert_eq!(endpoint(&own, |_| None).as_deref(), Some("https://otel.example/v1/logs"));
        assert_eq!(endpoint(&SinkSettings::new(SinkType::Otlp), |_| None), None);
    }
}
