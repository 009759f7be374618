//! An OTLP/HTTP logs export request, written straight to protobuf bytes: one log record a drift
//! event, borrowing every string from the event rather than building the generated message
//! types first (two allocations an attribute, and every nested length computed again at each
//! level above it). The bytes decode to exactly the message [`super::tests`] builds from the
//! `opentelemetry-proto` types; field numbers are those of `opentelemetry/proto/logs/v1`.

use prost::bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::event::{Decision, DriftEvent};

/// `ExportLogsServiceRequest.resource_logs`, `ResourceLogs.resource`, `ScopeLogs.scope`.
const FIRST: u32 = 1;
/// `ResourceLogs.scope_logs`, `ScopeLogs.log_records`.
const SECOND: u32 = 2;

/// `LogRecord` fields.
mod record {
    pub const TIME_UNIX_NANO: u32 = 1;
    pub const SEVERITY_NUMBER: u32 = 2;
    pub const SEVERITY_TEXT: u32 = 3;
    pub const BODY: u32 = 5;
    pub const ATTRIBUTES: u32 = 6;
    pub const TRACE_ID: u32 = 9;
    pub const OBSERVED_TIME_UNIX_NANO: u32 = 11;
    pub const EVENT_NAME: u32 = 12;
}

/// `KeyValue.key`, `KeyValue.value`; `AnyValue`'s `string_value`, `bool_value`, `int_value`,
/// `array_value`; `ArrayValue.values`.
const KEY: u32 = 1;
const VALUE: u32 = 2;
const STRING_VALUE: u32 = 1;
const BOOL_VALUE: u32 = 2;
const INT_VALUE: u32 = 3;
const ARRAY_VALUE: u32 = 5;
const VALUES: u32 = 1;

/// `SeverityNumber` WARN and INFO.
const WARN: u64 = 13;
const INFO: u64 = 9;

/// The export request of `events`: `resource` and `scope` are the encoded `Resource` and
/// `InstrumentationScope` messages, `observed` the observation time (Unix nanoseconds).
pub fn request<'a>(
    resource: &[u8],
    scope: &[u8],
    events: impl IntoIterator<Item = &'a DriftEvent<'a>>,
    observed: u64,
) -> Bytes {
    // The records go after room for what encloses them, written once their length is known:
    // the body is never copied whole.
    let room = 2 * (1 + MAX_VARINT) + field_len(resource.len()) + field_len(scope.len());
    let events = events.into_iter();
    let mut out = Vec::with_capacity(room + events.size_hint().0 * RECORD_GUESS);
    out.resize(room, 0);
    for event in events {
        // Written in place after room for a two-byte length (a record of 128 bytes to 16 KiB),
        // which is fixed once its length is known.
        encode_key(SECOND, WireType::LengthDelimited, &mut out);
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        log_record(&mut out, event, observed);
        let len = (out.len() - at - 2) as u64;
        match out.get_mut(at..at + 2) {
            Some(mut slot) if encoded_len_varint(len) == 2 => encode_varint(len, &mut slot),
            _ => {
                let mut varint = Vec::with_capacity(MAX_VARINT);
                encode_varint(len, &mut varint);
                drop(out.splice(at..at + 2, varint));
            }
        }
    }
    let scope_logs = field_len(scope.len()) + (out.len() - room);
    let resource_logs = field_len(resource.len()) + field_len(scope_logs);
    let mut head = Vec::with_capacity(room);
    encode_key(FIRST, WireType::LengthDelimited, &mut head);
    encode_varint(resource_logs as u64, &mut head);
    bytes_field(&mut head, FIRST, resource);
    encode_key(SECOND, WireType::LengthDelimited, &mut head);
    encode_varint(scope_logs as u64, &mut head);
    bytes_field(&mut head, FIRST, scope);
    let start = room - head.len();
    out[start..room].copy_from_slice(&head);
    Bytes::from(out).slice(start..)
}

/// About the bytes of one record (an edit's is 1.3 KiB): the body is allocated once for most
/// batches.
const RECORD_GUESS: usize = 1536;

/// The most bytes a varint takes.
const MAX_VARINT: usize = 10;

/// One drift event's `LogRecord` (without its own key and length).
fn log_record(out: &mut Vec<u8>, event: &DriftEvent<'_>, observed: u64) {
    let r = &event.resource;
    let (severity, severity_text) = match event.decision {
        Decision::Denied => (WARN, "WARN"),
        _ => (INFO, "INFO"),
    };
    encode_key(record::TIME_UNIX_NANO, WireType::SixtyFourBit, out);
    out.extend_from_slice(&u64::try_from(event.time.unix_timestamp_nanos()).unwrap_or(0).to_le_bytes());
    encode_key(record::SEVERITY_NUMBER, WireType::Varint, out);
    encode_varint(severity, out);
    bytes_field(out, record::SEVERITY_TEXT, severity_text.as_bytes());
    encode_key(record::BODY, WireType::LengthDelimited, out);
    encode_varint(string_value_len(&event.message) as u64, out);
    bytes_field(out, STRING_VALUE, event.message.as_bytes());
    let text = |out: &mut Vec<u8>, key: &str, value: &str| attribute(out, key, Value::Text(value));
    text(out, "driftgate.event.id", &event.id);
    text(out, "driftgate.decision", event.decision.as_str());
    text(out, "driftgate.mode", event.mode.as_str());
    text(out, "driftgate.policy", &event.policy);
    text(out, "driftgate.rule", &event.rule);
    text(out, "driftgate.operation", event.operation.as_str());
    attribute(out, "driftgate.dry_run", Value::Bool(event.dry_run));
    text(out, "user.name", &event.user.username);
    attribute(
        out,
        "driftgate.user.groups",
        Value::List(&event.user.groups.iter().map(|g| g.as_ref()).collect::<Vec<_>>()),
    );
    text(out, "k8s.namespace.name", &r.namespace);
    text(out, "driftgate.resource.group", &r.group);
    text(out, "driftgate.resource.version", &r.version);
    text(out, "driftgate.resource.kind", &r.kind);
    text(out, "driftgate.resource.resource", &r.resource);
    text(out, "driftgate.resource.name", &r.name);
    attribute(
        out,
        "driftgate.changes.paths",
        Value::List(&event.changes.iter().map(|c| c.path.as_ref()).collect::<Vec<_>>()),
    );
    text(out, "driftgate.changes", &serde_json::to_string(&event.changes).unwrap_or_default());
    text(out, "driftgate.request.uid", &event.request_uid);
    if let Some(uid) = &event.user.uid {
        text(out, "user.id", uid);
    }
    if !r.subresource.is_empty() {
        text(out, "driftgate.resource.subresource", &r.subresource);
    }
    if event.changes_omitted > 0 {
        attribute(
            out,
            "driftgate.changes.omitted",
            Value::Int(i64::try_from(event.changes_omitted).unwrap_or(i64::MAX)),
        );
    }
    if let Some(owner) = &event.gitops {
        text(out, "driftgate.gitops.tool", owner.tool.as_str());
        text(out, "driftgate.gitops.app", &owner.app);
    }
    if let Some(trace) = event.trace_id.as_deref().and_then(trace_bytes) {
        bytes_field(out, record::TRACE_ID, &trace);
    }
    encode_key(record::OBSERVED_TIME_UNIX_NANO, WireType::SixtyFourBit, out);
    out.extend_from_slice(&observed.to_le_bytes());
    bytes_field(out, record::EVENT_NAME, super::EVENT_NAME.as_bytes());
}

/// An attribute's value.
enum Value<'a> {
    Text(&'a str),
    Bool(bool),
    Int(i64),
    List(&'a [&'a str]),
}

impl Value<'_> {
    /// The length of its `AnyValue` message.
    fn len(&self) -> usize {
        match self {
            Value::Text(s) => string_value_len(s),
            Value::Bool(_) => 2,
            Value::Int(i) => 1 + encoded_len_varint(*i as u64),
            Value::List(items) => field_len(list_len(items)),
        }
    }
}

/// Appends `attributes` entry `key` = `value` (a `KeyValue`).
fn attribute(out: &mut Vec<u8>, key: &str, value: Value<'_>) {
    let any = value.len();
    encode_key(record::ATTRIBUTES, WireType::LengthDelimited, out);
    encode_varint((field_len(key.len()) + field_len(any)) as u64, out);
    bytes_field(out, KEY, key.as_bytes());
    encode_key(VALUE, WireType::LengthDelimited, out);
    encode_varint(any as u64, out);
    match value {
        Value::Text(s) => bytes_field(out, STRING_VALUE, s.as_bytes()),
        Value::Bool(b) => {
            encode_key(BOOL_VALUE, WireType::Varint, out);
            encode_varint(u64::from(b), out);
        }
        Value::Int(i) => {
            encode_key(INT_VALUE, WireType::Varint, out);
            encode_varint(i as u64, out);
        }
        Value::List(items) => {
            encode_key(ARRAY_VALUE, WireType::LengthDelimited, out);
            encode_varint(list_len(items) as u64, out);
            for item in items {
                encode_key(VALUES, WireType::LengthDelimited, out);
                encode_varint(string_value_len(item) as u64, out);
                bytes_field(out, STRING_VALUE, item.as_bytes());
            }
        }
    }
}

/// The length of an `ArrayValue` of strings.
fn list_len(items: &[&str]) -> usize {
    items.iter().map(|item| field_len(string_value_len(item))).sum()
}

/// The length of an `AnyValue` holding string `s`.
fn string_value_len(s: &str) -> usize {
    field_len(s.len())
}

/// The length of a length-delimited field (key of a field number below 16, length, content)
/// whose content is `len` bytes.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Appends length-delimited field `tag` holding `bytes`.
fn bytes_field(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// 32 hex digits as the 16 bytes of a trace id.
pub fn trace_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 32 {
        return None;
    }
    (0..16).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}
