//! `POST /webhooks/whatsapp`: raw bytes → signature → typed payload → ONE
//! `IngestWebhook` call → 200 only when that call succeeded.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use http_body_util::LengthLimitError;
use proto::ingest::{IngestWebhookRequest, IngestWebhookResponse};
use secrecy::ExposeSecret;
use tonic::metadata::MetadataValue;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{payload, signature};
use crate::error::{GatewayError, Result};
use crate::metrics::ItemCounts;
use crate::state::AppState;

/// Response header (and gRPC metadata key) carrying the request id.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// A body that trickles in slower than this is abandoned (408).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra time granted to the local timer over the gRPC deadline, so the
/// server-side `DeadlineExceeded` normally wins and is the one logged.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// The handler. Every answer carries `x-request-id`.
pub(crate) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = Uuid::new_v4().to_string();
    let received_at_ms = now_ms();
    let span = tracing::info_span!("webhook", request_id = %request_id);

    let result = handle(&state, &headers, body, &request_id, received_at_ms)
        .instrument(span.clone())
        .await;
    state
        .metrics()
        .webhook_request(result.as_ref().map_or_else(GatewayError::code, |()| "ok"));
    let mut response = {
        let _entered = span.enter();
        match result {
            Ok(()) => ok_response(),
            Err(err) => err.into_response(),
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    received_at_ms: i64,
) -> Result<()> {
    let limit = state.body_limit();
    // Refuse early when the client announces an oversized body.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let bytes = read_body(body, limit).await?;

    if !state.insecure_skip_signature() {
        check_signature(state, headers, &bytes)?;
    }

    let mut request = payload::parse(&bytes)?;
    request.request_id = request_id.to_owned();
    request.received_at_ms = received_at_ms;
    let counts = ItemCounts {
        messages: request.messages.len(),
        statuses: request.statuses.len(),
        errors: request.errors.len(),
        other_events: request.other_events.len(),
        quarantined: request.quarantined.len(),
    };

    let started = Instant::now();
    let result = forward(state, request, request_id).await;
    state
        .metrics()
        .ingest_call(started.elapsed(), result.is_ok());
    let stored = result?;
    state.metrics().items(counts);
    tracing::info!(
        event_id = stored.event_id,
        messages = counts.messages,
        messages_created = stored.messages_created,
        statuses = counts.statuses,
        errors = counts.errors,
        other_events = counts.other_events,
        quarantined = counts.quarantined,
        jobs_created = stored.jobs_created,
        "webhook stored"
    );
    Ok(())
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(GatewayError::BodyTimeout),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) => {
            let err = err.into_inner();
            if err.downcast_ref::<LengthLimitError>().is_some() {
                Err(GatewayError::PayloadTooLarge { limit })
            } else {
                Err(GatewayError::BodyRead(err.to_string()))
            }
        }
    }
}

fn check_signature(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<()> {
    let header = headers
        .get(signature::HEADER)
        .ok_or(GatewayError::MissingSignature)?;
    let header = header
        .to_str()
        .map_err(|_| signature::SignatureError::Malformed)?;
    let secrets: Vec<&[u8]> = state
        .app_secrets()
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect();
    signature::verify(&secrets, header, body)?;
    Ok(())
}

/// The one IngestWebhook call, with a deadline (sent as `grpc-timeout` and
/// enforced locally), the bearer token and the request id as metadata.
async fn forward(
    state: &AppState,
    request: IngestWebhookRequest,
    request_id: &str,
) -> Result<IngestWebhookResponse> {
    let timeout = state.ingest_timeout();
    let mut call = tonic::Request::new(request);
    call.set_timeout(timeout);
    state.authorize(call.metadata_mut());
    if let Ok(value) = MetadataValue::try_from(request_id) {
        call.metadata_mut().insert(REQUEST_ID, value);
    }
    let mut client = state.ingest();
    match tokio::time::timeout(timeout + DEADLINE_GRACE, client.ingest_webhook(call)).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(GatewayError::from_ingest_status(&status)),
        Err(_) => Err(GatewayError::IngestUnavailable(format!(
            "no answer within {timeout:?}"
        ))),
    }
}

fn ok_response() -> Response {
    let mut response = r#"{"status":"ok"}"#.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
