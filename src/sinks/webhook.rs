//! The `webhook` sink: one HTTPS POST a drift event, as a CloudEvents 1.0 structured JSON event
//! (`id` is the drift event's id, so a receiver dedupes the redeliveries at-least-once allows)
//! or as a Slack-compatible incoming-webhook message that says who, what, where, the changed
//! paths and what to do instead.

use std::fmt::Write as _;

use http::HeaderMap;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::settings::{SinkSettings, WebhookFormat};
use super::{Deliver, Failure, Record, client};
use crate::event::{Decision, DriftEvent};

/// The CloudEvents `type` of a drift event.
pub const CLOUDEVENT_TYPE: &str = "dev.driftgate.drift.v1";
/// At most this many changed paths are listed in a Slack message.
const SLACK_PATHS: usize = 10;

/// A configured webhook.
#[derive(Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    format: WebhookFormat,
    source: String,
}

impl Webhook {
    /// Reads the URL and headers (from files or the environment) and makes the client.
    pub fn new(settings: &SinkSettings) -> Result<Webhook, String> {
        let name = settings.name();
        let url = settings.url.as_ref().ok_or_else(|| format!("sink {name}: a webhook needs a url"))?;
        let url = url.resolve().map_err(|e| format!("sink {name}: url: {e}"))?;
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| format!("sink {name}: url {}: {e}", client::redacted(&url)))?;
        let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"));
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(format!("sink {name}: url must be https:// (http:// only to a loopback address)"));
        }
        let headers = client::headers(settings)?;
        let timeout = std::time::Duration::from_secs(settings.timeout_seconds);
        let client = client::build(settings.ca_file.as_deref(), timeout).map_err(|e| format!("sink {name}: {e}"))?;
        Ok(Webhook { client, url, headers, format: settings.format, source: source() })
    }

    /// Where it posts, for logs.
    pub fn target(&self) -> String {
        client::redacted(&self.url)
    }
}

impl<'e> Deliver<DriftEvent<'e>> for Webhook {
    /// POSTs the events one by one, in order; stops at the first that is not accepted.
    async fn deliver(&self, events: &[Record<'_, DriftEvent<'e>>]) -> Result<(), Failure> {
        for (i, Record { event, .. }) in events.iter().enumerate() {
            let (content_type, body) = match self.format {
                WebhookFormat::Cloudevents => ("application/cloudevents+json", cloudevent(event, &self.source)),
                WebhookFormat::Slack => ("application/json", slack(event)),
            };
            if let Err((refused, reason)) =
                client::post(&self.client, &self.url, &self.headers, content_type, body).await
            {
                return Err(Failure { delivered: i, rejected: usize::from(refused), reason });
            }
        }
        Ok(())
    }
}

/// The CloudEvents `source`: this driftgate (its pod's name in a cluster).
fn source() -> String {
    match std::env::var("HOSTNAME") {
        Ok(host) if !host.is_empty() => format!("driftgate/{host}"),
        _ => "driftgate".to_owned(),
    }
}

/// A CloudEvents 1.0 structured-mode JSON event carrying the drift event as `data`.
pub fn cloudevent(event: &DriftEvent<'_>, source: &str) -> Vec<u8> {
    let time = event.time.format(&Rfc3339).unwrap_or_default();
    let subject = format!("{} {}", event.resource.kind_label(), event.resource.object_ref());
    let mut ce = json!({
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": CLOUDEVENT_TYPE,
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "driftgatedecision": event.decision.as_str(),
        "data": event,
    });
    if let Some(trace) = &event.trace_id {
        // The Distributed Tracing extension: the admission request's trace.
        ce["traceparent"] = json!(format!("00-{trace}-0000000000000001-01"));
    }
    serde_json::to_vec(&ce).unwrap_or_default()
}

/// A Slack-compatible incoming-webhook message (`{"text": …}`, mrkdwn).
pub fn slack(event: &DriftEvent<'_>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "text": slack_text(event) })).unwrap_or_default()
}

/// The message's text: who tried what where, what the decision was, the changed paths, and
/// where the change belongs.
pub fn slack_text(event: &DriftEvent<'_>) -> String {
    let r = &event.resource;
    let what = match event.decision {
        Decision::Denied => "was refused",
        Decision::Warned => "was allowed with a warning",
        Decision::Audited => "was allowed (audit mode)",
        Decision::Repaired => "was allowed with the protected fields restored",
        Decision::BreakGlass => "was let through by break-glass",
        Decision::Allowed => "was allowed",
    };
    let dry = if event.dry_run { " (dry run)" } else { "" };
    let ns = if r.namespace.is_empty() { String::new() } else { format!(" in namespace `{}`", r.namespace) };
    let mut text = format!(
        "*Drift {what}*{dry}: `{}` tried to {} {} `{}`{ns} (policy `{}`, rule `{}`).",
        event.user.username,
        event.operation.as_str(),
        r.kind_label(),
        r.name,
        event.policy,
        event.rule,
    );
    if !event.changes.is_empty() {
        let paths: Vec<String> = event.changes.iter().take(SLACK_PATHS).map(|c| format!("`{}`", c.path)).collect();
        let more = event.changes.len().saturating_sub(SLACK_PATHS) as u64 + event.changes_omitted;
        let _ = write!(text, "\nChanged: {}", paths.join(", "));
        if more > 0 {
            let _ = write!(text, " and {more} more");
        }
    }
    match &event.gitops {
        Some(owner) => {
            let _ = write!(text, "\nThis object is managed by {}: change it in Git.", owner.describe());
        }
        None => text.push_str("\nChange it in Git."),
    }
    let _ = write!(text, "\nEvent `{}` at {}.", event.id, event.time.format(&Rfc3339).unwrap_or_default());
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::review::testing::{mk_event, mk_line};

    const ID: &str = "01a20abf-33ea-752b-8746-03435d90d32d";

    #[test]
    fn cloudevent_carries_the_drift_event_under_its_id() {
        let line = mk_line("alice", "shop", "VirtualService", "denied", "2026-05-01T10:00:00Z", false);
        let ce: serde_json::Value =
            serde_json::from_slice(&cloudevent(&mk_event(&line), "driftgate/driftgate-0")).unwrap();
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], ID);
        assert_eq!(ce["type"], CLOUDEVENT_TYPE);
        assert_eq!(ce["source"], "driftgate/driftgate-0");
        assert_eq!(ce["subject"], "VirtualService shop/reviews");
        assert_eq!(ce["time"], "2026-05-01T10:00:00Z");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["data"], serde_json::from_str::<serde_json::Value>(&line).unwrap());
        assert!(ce.get("traceparent").is_none());
    }

    #[test]
    fn slack_text_says_who_what_where_and_to_change_it_in_git() {
        let line = mk_line("alice@example.com", "shop", "VirtualService", "denied", "2026-05-01T10:00:00Z", false);
        let text = slack_text(&mk_event(&line));
        assert_eq!(
            text,
            format!(
                "*Drift was refused*: `alice@example.com` tried to UPDATE VirtualService `reviews` in namespace `shop` \
                 (policy `mesh-gitops`, rule `protected`).\nChanged: `/spec/a`, `/spec/b`, `/spec/c` and 4 more\n\
                 Change it in Git.\nEvent `{ID}` at 2026-05-01T10:00:00Z."
            )
        );
        let body: serde_json::Value = serde_json::from_slice(&slack(&mk_event(&line))).unwrap();
        assert_eq!(body["text"], text);
    }
}
