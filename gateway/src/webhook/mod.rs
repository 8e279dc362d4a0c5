//! `/webhooks/whatsapp`: the GET verification handshake and the POST receiver.

pub mod payload;
mod receive;
pub mod signature;
mod verify;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::state::AppState;

/// Path Meta calls (the app's Callback URL).
pub const PATH: &str = "/webhooks/whatsapp";

/// Routes of the webhook endpoint. The POST handler reads the body itself
/// with its own limit, so axum's default limit is disabled here.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(verify::verify).post(receive::receive))
        .layer(DefaultBodyLimit::disable())
}
