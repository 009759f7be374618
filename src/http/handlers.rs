//! Request handlers: parse → [`crate::decide::admit`] → journal → respond.
//!
//! Every decision, and the answer itself, comes from the core; this module adds only what
//! needs I/O or a clock: the event id and time, the durable journal write before a drift answer,
//! the Kubernetes Event, logs, metrics and the tracing span. Bad input gets a 4xx with a JSON
//! body naming the problem, never a panic.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::AppState;
use super::caller::Caller;
use crate::admission;
use crate::decide::{self, Endpoint, EventStamp, Rule};
use crate::metrics::{DriftLabels, RequestLabels};

/// A request this server will not answer with an AdmissionReview.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status.as_u16(), error = %self.message, "request refused");
        let body = json!({ "error": self.message, "code": self.status.as_u16() }).to_string();
        (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /metrics` (metrics port): Prometheus/OpenMetrics text.
pub async fn metrics(State(metrics): State<Arc<crate::metrics::Metrics>>) -> Response {
    let body = metrics.encode();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// `GET /readyz`: 200 while the server can record drift and is not shutting down, else 503
/// with the reasons.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut problems = Vec::new();
    if state.shutting_down.load(Ordering::Acquire) {
        problems.push("shutting down".to_owned());
    }
    if !state.journal.is_healthy() {
        problems.push(format!("journal {} cannot be written", state.journal.path().display()));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let body = json!({ "ready": false, "problems": problems }).to_string();
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// `POST /validate`: answers an AdmissionReview for the validating webhook, judged by every
/// policy that covers it.
pub async fn validate(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    serve(&state, request, Endpoint::validate(None)).await
}

/// `POST /validate/<policy>`: as `/validate`, judged by the named policy alone (what the
/// generated configurations call: one webhook, and one drift event, per policy).
pub async fn validate_policy(
    State(state): State<Arc<AppState>>,
    Path(policy): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(&state, request, Endpoint::validate(Some(&policy))).await
}

/// `POST /grants`: answers an AdmissionReview about a BreakGlassGrant (its own webhook entry):
/// refused unless valid, and recorded either way.
pub async fn grants(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    serve(&state, request, Endpoint::grants()).await
}

/// `POST /mutate`: answers an AdmissionReview for the mutating webhook, with a JSONPatch when
/// it stamps provenance or repairs.
pub async fn mutate(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    serve(&state, request, Endpoint::mutate(None)).await
}

/// `POST /mutate/<policy>`: as `/mutate`, for the named policy alone.
pub async fn mutate_policy(
    State(state): State<Arc<AppState>>,
    Path(policy): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(&state, request, Endpoint::mutate(Some(&policy))).await
}

/// Checks the caller and the time limit around [`answer`], and counts the outcome.
async fn serve(state: &AppState, request: Request, endpoint: Endpoint<'_>) -> Result<Response, ApiError> {
    let started = Instant::now();
    let path = endpoint.path();
    let caller = request.extensions().get::<Caller>().cloned();
    let verified = caller.as_ref().is_some_and(Caller::authenticated);
    let result = if state.require_client_cert && !verified {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate signed by the configured client CA is required",
        ))
    } else {
        match tokio::time::timeout(state.request_timeout, answer(state, request, endpoint, caller)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("request not answered within {} s", state.request_timeout.as_secs()),
            )),
        }
    };
    match result {
        Ok((body, labels)) => {
            state.metrics.request(labels, started.elapsed());
            Ok(json_response(body))
        }
        Err(e) => {
            state.metrics.bad_request(path, e.status.as_u16());
            Err(e)
        }
    }
}

/// Parses, calls the decision core, journals a drift event durably, and writes the answer.
async fn answer(
    state: &AppState,
    request: Request,
    endpoint: Endpoint<'_>,
    caller: Option<Caller>,
) -> Result<(Vec<u8>, RequestLabels), ApiError> {
    check_content_type(&request)?;
    let body = read_body(request.into_body(), state.max_body_bytes).await?;
    let review = admission::parse(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let req = &review.request;
    let span = tracing::info_span!(
        crate::telemetry::ADMISSION_SPAN,
        endpoint = endpoint.path(),
        uid = %req.uid,
        operation = req.operation.as_str(),
        kind = %req.kind.kind,
        namespace = %req.namespace,
        name = %req.name,
        user = %req.user_info.username,
        decision = Empty,
        policy = Empty,
    );
    let stamp = EventStamp {
        id: uuid::Uuid::now_v7().to_string(),
        time: time::OffsetDateTime::now_utc(),
        trace_id: trace_id(&span),
    };
    let mut outcome = span
        .in_scope(|| decide::admit(&state.policies.load(), &state.grants.load(), req, endpoint, &stamp))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    // Who delivered it: built only when there is an event to carry it.
    if let (Some(event), Some(caller)) = (outcome.event.as_mut(), &caller) {
        event.source = caller.source();
    }
    let verdict = &outcome.verdict;
    span.record("decision", verdict.decision.as_str());
    span.record("policy", verdict.policy_name().unwrap_or("-"));
    let limited = match (&outcome.event, &caller) {
        (Some(event), Some(caller)) => !state.flood.admit(caller.address, event, Instant::now()),
        _ => false,
    };
    if limited {
        // Answered all the same; the journal gets this source's count every few seconds.
        if let Some(event) = &outcome.event {
            state.metrics.rate_limited(&event.source.address, 1);
        }
    } else if let Some(event) = &outcome.event {
        let appending = Instant::now();
        let journaled = state.journal.append(event.to_line()).instrument(span.clone()).await;
        state.metrics.drift_event(
            DriftLabels {
                decision: event.decision.as_str(),
                authenticated: if event.source.authenticated { "true" } else { "false" },
                kind: req.kind.kind.clone(),
                namespace: event.resource.namespace.to_string(),
            },
            appending.elapsed(),
        );
        if let Some(sink) = &state.events {
            // Never waits: a full queue drops (and counts) the Event; the journal has it all.
            sink.submit_regarding(event, verdict.object.uid.as_deref());
        }
        let _entered = span.enter();
        match journaled {
            // The journal has the event whole; the log says it at debug, and a summary at info
            // every few seconds (server.rs) tells an operator drift is happening.
            Ok(()) => tracing::debug!(event = %event.id, rule = %verdict.rule, dry_run = req.dry_run, "drift"),
            // The answer stands: enforce still denies, warn/audit still allow. /readyz reports it.
            Err(e) => tracing::error!(
                event = %event.id,
                error = %e,
                uid = %req.uid,
                kind = %req.kind.kind,
                object = %verdict.object.object_ref(),
                user = %req.user_info.username,
                "drift event could not be journaled"
            ),
        }
    } else if verdict.rule == Rule::UnknownPolicy {
        let _entered = span.enter();
        tracing::error!(
            policy = verdict.policy_name().unwrap_or_default(),
            uid = %req.uid,
            kind = %req.kind.kind,
            object = %verdict.object.object_ref(),
            "a webhook calls a policy that is not loaded; run `driftgate register` again"
        );
    } else {
        let _entered = span.enter();
        tracing::debug!(rule = %verdict.rule, "allowed");
    }
    let labels = RequestLabels {
        endpoint: endpoint.path(),
        operation: req.operation.as_str(),
        decision: outcome.answered.as_str(),
        kind: req.kind.kind.clone(),
    };
    Ok((outcome.answer.into_body(review.version), labels))
}

/// The trace id of the request's span when it is exported over OTLP (no span, no id).
fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn check_content_type(request: &Request) -> Result<(), ApiError> {
    let ct = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {ct:?} is not supported: send application/json"),
        ))
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than the limit of {limit} bytes"))
    };
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, format!("failed to read request body: {e}"))),
    }
}
