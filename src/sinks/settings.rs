//! How a sink is configured: the `sinks:` list of the settings file (or `DRIFTGATE_SINKS`, the
//! same list as YAML or JSON), one entry a sink. Plain serde types, checked once at start-up by
//! [`SinkSettings::validate`]; secrets (a webhook's URL, header values) are read from a file or
//! an environment variable when the sink starts ([`Secret::resolve`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::event::{Brief, Decision};

/// Where a sink sends drift events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    /// One JSON line a drift event on standard output.
    Stdout,
    /// OpenTelemetry log records over OTLP/HTTP.
    Otlp,
    /// HTTPS POSTs: CloudEvents, or Slack-compatible text.
    Webhook,
    /// Kubernetes Events on the objects (from `events: auto|on|off`, not from `sinks:`).
    Events,
}

impl SinkType {
    /// The name in settings and in metrics (`type` label).
    pub fn as_str(self) -> &'static str {
        match self {
            SinkType::Stdout => "stdout",
            SinkType::Otlp => "otlp",
            SinkType::Webhook => "webhook",
            SinkType::Events => "events",
        }
    }
}

/// What a webhook sink POSTs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// A CloudEvents 1.0 structured JSON event (`id` is the drift event's id).
    #[default]
    Cloudevents,
    /// A Slack-compatible incoming-webhook message (`{"text": …}`).
    Slack,
}

/// A value given in the settings, or read from a file or an environment variable (a Secret
/// mounted as a file, or passed as an env var).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// `from_file: /path` — the file's content, trimmed.
    File {
        /// The file.
        from_file: PathBuf,
    },
    /// `from_env: NAME` — the variable's value.
    Env {
        /// The variable.
        from_env: String,
    },
    /// The value itself.
    Value(String),
}

impl Secret {
    /// The value, read now.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Env { from_env } => std::env::var(from_env)
                .map_err(|_| format!("environment variable {from_env} is not set"))
                .map(|v| v.trim().to_owned()),
            Secret::File { from_file } => std::fs::read_to_string(from_file)
                .map(|v| v.trim().to_owned())
                .map_err(|e| format!("failed to read {}: {e}", from_file.display())),
        }
    }
}

/// One sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// Names the sink in logs, metrics (`sink` label) and its cursor file; `[a-z0-9-]`, unique.
    /// Defaults to the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `stdout`, `otlp` or `webhook`.
    #[serde(rename = "type")]
    pub kind: SinkType,
    /// `webhook`: where to POST (https://…; http:// only to loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// `webhook`: `cloudevents` (default) or `slack`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// `otlp`: the logs endpoint; defaults to `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/logs` (the collector the traces go to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `webhook`, `otlp`: headers sent with every request (an `Authorization` token).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// `webhook`, `otlp`: a PEM CA bundle trusted instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// `webhook`, `otlp`: seconds one request may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Only these decisions (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    /// Only these namespaces (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only these policies (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Deliver dry-run attempts too (off: `kubectl --dry-run=server` and GitOps diffs are not
    /// anyone's change).
    #[serde(default)]
    pub include_dry_run: bool,
    /// The first time the sink runs, deliver what the journal already holds (off: only events
    /// recorded from then on).
    #[serde(default)]
    pub replay: bool,
    /// Most drift events in one delivery.
    #[serde(default = "default_batch")]
    pub batch_max_events: usize,
    /// Milliseconds a caught-up sink gathers events after the first new one before it delivers
    /// (sooner once `batch_max_events` are waiting): one request and one cursor write for a
    /// burst instead of one per event.
    #[serde(default = "default_batch_wait")]
    pub batch_max_wait_ms: u64,
}

fn default_timeout() -> u64 {
    10
}

fn default_batch() -> usize {
    500
}

fn default_batch_wait() -> u64 {
    1000
}

impl SinkSettings {
    /// A sink of `kind` with every default.
    pub fn new(kind: SinkType) -> Self {
        SinkSettings {
            name: None,
            kind,
            url: None,
            format: WebhookFormat::default(),
            endpoint: None,
            headers: BTreeMap::new(),
            ca_file: None,
            timeout_seconds: default_timeout(),
            decisions: Vec::new(),
            namespaces: Vec::new(),
            policies: Vec::new(),
            include_dry_run: false,
            replay: false,
            batch_max_events: default_batch(),
            batch_max_wait_ms: default_batch_wait(),
        }
    }

    /// How long a caught-up sink gathers events before it delivers.
    pub fn batch_max_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.batch_max_wait_ms)
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.as_str())
    }

    /// Whether the sink wants the event `event` briefs.
    pub fn wants(&self, event: &Brief<'_>) -> bool {
        (self.include_dry_run || !event.dry_run)
            && (self.decisions.is_empty() || self.decisions.contains(&event.decision))
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| *n == event.resource.namespace))
            && (self.policies.is_empty() || self.policies.iter().any(|p| *p == event.policy))
    }

    /// Checks what types alone do not; the reason names the sink.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name();
        if name.is_empty()
            || name.len() > 63
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("sink name {name:?} must be 1-63 characters of a-z, 0-9 and -"));
        }
        let fail = |what: &str| Err(format!("sink {name}: {what}"));
        match self.kind {
            SinkType::Webhook if self.url.is_none() => return fail("a webhook needs a url"),
            SinkType::Events => return fail("type events is set with `events: auto|on|off`, not in sinks"),
            SinkType::Stdout | SinkType::Otlp if self.url.is_some() => {
                return fail("url is for webhooks (an otlp sink takes an endpoint)");
            }
            _ => {}
        }
        if self.endpoint.is_some() && self.kind != SinkType::Otlp {
            return fail("endpoint is for otlp sinks");
        }
        if self.kind == SinkType::Stdout && (!self.headers.is_empty() || self.ca_file.is_some()) {
            return fail("headers and ca_file are for webhook and otlp sinks");
        }
        if self.timeout_seconds == 0 || self.timeout_seconds > 300 {
            return fail("timeout_seconds must be between 1 and 300");
        }
        if self.batch_max_events == 0 || self.batch_max_events > 10_000 {
            return fail("batch_max_events must be between 1 and 10000");
        }
        if self.batch_max_wait_ms > 60_000 {
            return fail("batch_max_wait_ms must be at most 60000");
        }
        Ok(())
    }
}

/// Checks every sink and that names are unique.
pub fn validate_all(sinks: &[SinkSettings]) -> Result<(), String> {
    for (i, sink) in sinks.iter().enumerate() {
        sink.validate()?;
        if sinks[..i].iter().any(|s| s.name() == sink.name()) || sink.name() == SinkType::Events.as_str() {
            return Err(format!(
                "sink name {:?} is used twice (or is `events`, the Kubernetes Events sink): give each sink its own name",
                sink.name()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<SinkSettings>, String> {
        let sinks: Vec<SinkSettings> = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        validate_all(&sinks).map(|()| sinks)
    }

    #[test]
    fn reads_sinks_and_refuses_mistakes() {
        let sinks = parse(
            "- type: stdout\n\
             - name: slack\n  type: webhook\n  format: slack\n  url: {from_env: SLACK_URL}\n  decisions: [denied, break-glass]\n\
             - type: webhook\n  url: https://example.com/hook\n  headers: {Authorization: {from_file: /t}}\n\
             - type: otlp\n",
        )
        .unwrap();
        assert_eq!(sinks.iter().map(SinkSettings::name).collect::<Vec<_>>(), ["stdout", "slack", "webhook", "otlp"]);
        assert_eq!(sinks[1].url, Some(Secret::Env { from_env: "SLACK_URL".into() }));
        assert_eq!(sinks[2].headers["Authorization"], Secret::File { from_file: "/t".into() });
        assert_eq!(sinks[1].decisions, [Decision::Denied, Decision::BreakGlass]);
        assert_eq!((sinks[0].batch_max_events, sinks[0].batch_max_wait_ms), (500, 1000));
        for (yaml, says) in [
            ("- type: webhook\n", "needs a url"),
            ("- type: stdout\n- type: stdout\n", "used twice"),
            ("- type: stdout\n  name: Bad_Name\n", "must be 1-63"),
            ("- type: otlp\n  url: x\n", "url is for webhooks"),
            ("- type: stdout\n  endpont: x\n", "unknown field"),
            ("- type: kafka\n", "unknown variant"),
            ("- type: webhook\n  url: x\n  timeout_seconds: 0\n", "timeout_seconds"),
            ("- type: stdout\n  batch_max_wait_ms: 600000\n", "batch_max_wait_ms"),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }

    #[test]
    fn filters_by_decision_namespace_policy_and_dry_run() {
        let line = crate::commands::review::testing::mk_line(
            "alice",
            "shop",
            "VirtualService",
            "denied",
            "2026-12-02T00:00:00Z",
            false,
        );
        let event = Brief::parse(line.as_bytes()).unwrap();
        let whole = crate::event::DriftEvent::parse(line.as_bytes()).unwrap();
        assert_eq!(whole.brief(), event, "a brief reads what the whole event holds");
        let mut s = SinkSettings::new(SinkType::Stdout);
        assert!(s.wants(&event));
        s.decisions = vec![Decision::BreakGlass];
        assert!(!s.wants(&event));
        s.decisions = vec![Decision::Denied];
        s.namespaces = vec!["other".into()];
        assert!(!s.wants(&event));
        s.namespaces = vec!["shop".into()];
        s.policies = vec!["mesh-gitops".into()];
        assert!(s.wants(&event));
        let dry = crate::commands::review::testing::mk_line(
            "a",
            "shop",
            "VirtualService",
            "denied",
            "2026-12-02T00:00:00Z",
            true,
        );
        let dry = Brief::parse(dry.as_bytes()).unwrap();
        assert!(!s.wants(&dry));
        s.include_dry_run = true;
        assert!(s.wants(&dry));
    }

    #[test]
    fn secrets_come_from_values_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(Secret::File { from_file: file }.resolve().unwrap(), "s3cret");
        assert_eq!(Secret::Value("v".into()).resolve().unwrap(), "v");
        let e = Secret::Env { from_env: "DRIFTGATE_TEST_SURELY_UNSET".into() }.resolve().unwrap_err();
        assert!(e.contains("DRIFTGATE_TEST_SURELY_UNSET is not set"), "{e}");
    }
}
