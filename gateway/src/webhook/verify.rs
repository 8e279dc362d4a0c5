//! `GET /webhooks/whatsapp`: Meta's verification handshake.
//!
//! `?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C` → 200 with the bare
//! challenge `C` when `T` equals the configured verify token (constant-time
//! compare); 403 otherwise, and always when no token is configured; 400 when a
//! parameter is missing.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::{GatewayError, Result};
use crate::state::AppState;

/// The handshake. The query is read as raw pairs (not a strict struct) so a
/// missing parameter yields our JSON 400 rather than axum's plain rejection;
/// an unreadable query counts as empty.
pub(crate) async fn verify(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let param = |name: &'static str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or(GatewayError::MissingParameter(name))
    };
    let mode = param("hub.mode")?;
    let token = param("hub.verify_token")?;
    let challenge = param("hub.challenge")?;

    let expected = state
        .verify_token()
        .ok_or(GatewayError::VerificationFailed)?;
    let token_ok: bool = token
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    if mode != "subscribe" || !token_ok {
        return Err(GatewayError::VerificationFailed);
    }
    tracing::info!("webhook verification handshake succeeded");
    let mut response = challenge.to_owned().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
