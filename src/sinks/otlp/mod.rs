//! The `otlp` sink: drift events as OpenTelemetry log records over OTLP/HTTP (protobuf), one
//! record an event, to the collector the traces go to unless the sink names its own endpoint.
//!
//! Attributes follow OpenTelemetry's semantic conventions where one fits (`k8s.namespace.name`,
//! `user.name`, `user.id`, `k8s.pod.name` on the resource); the rest are `driftgate.*`. The
//! record's trace id is the admission request's, when traces were exported for it. The records
//! are written straight to protobuf ([`wire`]).

pub mod wire;

use http::HeaderMap;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::settings::SinkSettings;
use super::{Deliver, Failure, Record, client};
use crate::event::DriftEvent;

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
    /// The encoded `Resource` and `InstrumentationScope` every request carries.
    resource: Vec<u8>,
    scope: Vec<u8>,
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
        Ok(Otlp {
            client,
            endpoint,
            headers,
            resource: resource(std::env::var("HOSTNAME").ok()).encode_to_vec(),
            scope: scope().encode_to_vec(),
        })
    }

    /// Where it exports, for logs.
    pub fn target(&self) -> String {
        self.endpoint.clone()
    }
}

impl<'e> Deliver<DriftEvent<'e>> for Otlp {
    /// Exports the events in one request.
    async fn deliver(&self, events: &[Record<'_, DriftEvent<'e>>]) -> Result<(), Failure> {
        let body = wire::request(&self.resource, &self.scope, events.iter().map(|r| &r.event), now_nanos());
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

/// The instrumentation scope: driftgate.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "driftgate".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(value), ..KeyValue::default() }
}

fn text(s: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s.to_owned())) }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};

    use super::*;
    use crate::commands::review::testing::{mk_event, mk_line};
    use crate::event::{Decision, DriftEvent};
    use crate::sinks::settings::SinkType;

    /// The request the wire bytes must decode to, built from the generated types: the mapping
    /// of drift event fields to OTLP, written out.
    fn typed_request<'a>(
        resource: Resource,
        events: impl IntoIterator<Item = &'a DriftEvent<'a>>,
        observed: u64,
    ) -> ExportLogsServiceRequest {
        let log_records = events.into_iter().map(|e| typed_record(e, observed)).collect();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource),
                scope_logs: vec![ScopeLogs { scope: Some(scope()), log_records, ..ScopeLogs::default() }],
                ..ResourceLogs::default()
            }],
        }
    }

    fn typed_record(event: &DriftEvent<'_>, observed: u64) -> LogRecord {
        let r = &event.resource;
        let (severity, severity_text) = match event.decision {
            Decision::Denied => (SeverityNumber::Warn, "WARN"),
            _ => (SeverityNumber::Info, "INFO"),
        };
        let list = |items: Vec<&str>| AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: items.into_iter().map(text).collect() })),
        };
        let mut attributes = vec![
            kv("driftgate.event.id", text(&event.id)),
            kv("driftgate.decision", text(event.decision.as_str())),
            kv("driftgate.mode", text(event.mode.as_str())),
            kv("driftgate.policy", text(&event.policy)),
            kv("driftgate.rule", text(&event.rule)),
            kv("driftgate.operation", text(event.operation.as_str())),
            kv("driftgate.dry_run", AnyValue { value: Some(any_value::Value::BoolValue(event.dry_run)) }),
            kv("user.name", text(&event.user.username)),
            kv("driftgate.user.groups", list(event.user.groups.iter().map(|g| g.as_ref()).collect())),
            kv("k8s.namespace.name", text(&r.namespace)),
            kv("driftgate.resource.group", text(&r.group)),
            kv("driftgate.resource.version", text(&r.version)),
            kv("driftgate.resource.kind", text(&r.kind)),
            kv("driftgate.resource.resource", text(&r.resource)),
            kv("driftgate.resource.name", text(&r.name)),
            kv("driftgate.changes.paths", list(event.changes.iter().map(|c| c.path.as_ref()).collect())),
            kv("driftgate.changes", text(&serde_json::to_string(&event.changes).unwrap())),
            kv("driftgate.request.uid", text(&event.request_uid)),
        ];
        if let Some(uid) = &event.user.uid {
            attributes.push(kv("user.id", text(uid)));
        }
        if !r.subresource.is_empty() {
            attributes.push(kv("driftgate.resource.subresource", text(&r.subresource)));
        }
        if event.changes_omitted > 0 {
            let omitted = i64::try_from(event.changes_omitted).unwrap();
            attributes
                .push(kv("driftgate.changes.omitted", AnyValue { value: Some(any_value::Value::IntValue(omitted)) }));
        }
        if let Some(owner) = &event.gitops {
            attributes.push(kv("driftgate.gitops.tool", text(owner.tool.as_str())));
            attributes.push(kv("driftgate.gitops.app", text(&owner.app)));
        }
        LogRecord {
            time_unix_nano: u64::try_from(event.time.unix_timestamp_nanos()).unwrap(),
            observed_time_unix_nano: observed,
            severity_number: severity as i32,
            severity_text: severity_text.to_owned(),
            body: Some(text(&event.message)),
            attributes,
            trace_id: event.trace_id.as_deref().and_then(wire::trace_bytes).unwrap_or_default(),
            event_name: EVENT_NAME.to_owned(),
            ..LogRecord::default()
        }
    }

    fn encoded(events: &[DriftEvent<'_>], observed: u64) -> ExportLogsServiceRequest {
        let resource = resource(Some("driftgate-0".into())).encode_to_vec();
        let bytes = wire::request(&resource, &scope().encode_to_vec(), events, observed);
        ExportLogsServiceRequest::decode(bytes).unwrap()
    }

    #[test]
    fn the_wire_bytes_decode_to_the_typed_request() {
        let line = mk_line("alice", "shop", "VirtualService", "denied", "2026-05-01T10:00:00Z", false);
        let mut first = mk_event(&line);
        first.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let mut second = mk_event(&line);
        second.decision = Decision::Warned;
        second.dry_run = true;
        second.changes_omitted = 300;
        second.user.uid = Some("u-1".into());
        second.resource.subresource = "status".into();
        second.user.groups = Vec::new();
        second.message = "é".repeat(200).into();
        // Enough records for every enclosing length to take three bytes.
        let mut events: Vec<DriftEvent<'_>> = (0..20).flat_map(|_| [first.clone(), second.clone()]).collect();
        // A record over 16 KiB, whose own length takes three bytes.
        let mut long = events[0].clone();
        long.message = "x".repeat(20_000).into();
        events.push(long);
        let typed = typed_request(resource(Some("driftgate-0".into())), &events, 7);
        assert_eq!(encoded(&events, 7), typed);
        assert_eq!(encoded(&[], 7), typed_request(resource(Some("driftgate-0".into())), &[], 7));
    }

    fn attr<'a>(record: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        record.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    #[test]
    fn one_record_an_event_with_semantic_attributes() {
        let line = mk_line("alice", "shop", "VirtualService", "denied", "2026-05-01T10:00:00Z", false);
        let mut event = mk_event(&line);
        event.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let decoded = encoded(&[event], 7);
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
