//! The gateway's one error type and its single mapping to HTTP answers.
//!
//! Every error body is `{"error":{"code":"…","message":"…"}}`. Client-caused
//! errors carry a precise code and are logged at debug/info; server-caused
//! ones (ingest-svc unreachable or failing) get a generic message and one
//! warn/error log line with the cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::Code;

use crate::webhook::payload::PayloadError;

/// Shorthand for results whose error is [`GatewayError`].
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// Everything a request can fail with; each variant's doc says what the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// 401 `missing_signature`: no `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    MissingSignature,
    /// 403 `invalid_signature`: malformed header, or no app secret matches the raw body.
    #[error("invalid X-Hub-Signature-256: {0}")]
    InvalidSignature(#[from] crate::webhook::signature::SignatureError),
    /// 413 `payload_too_large`: the body exceeds the configured limit.
    #[error("body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// 408 `body_timeout`: the body did not arrive in time.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// 400 `invalid_body`: the body could not be read (client aborted, bad framing).
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// 400 `invalid_json` / `not_an_object` / `missing_entry`: unusable webhook body.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// 400 `missing_parameter`: a `hub.*` parameter of the GET handshake is absent.
    #[error("missing query parameter `{0}`")]
    MissingParameter(&'static str),
    /// 403 `verification_failed`: wrong mode or verify token, or none configured.
    #[error("webhook verification failed")]
    VerificationFailed,
    /// 400 `rejected`: ingest-svc refused the request as invalid (InvalidArgument).
    #[error("ingest-svc rejected the webhook: {0}")]
    Rejected(String),
    /// 503 `ingest_unavailable`: ingest-svc failed, timed out or is unreachable;
    /// nothing is known to be stored, so Meta must retry.
    #[error("ingest-svc unavailable: {0}")]
    IngestUnavailable(String),
    /// 503 `not_ready`: the readiness probe could not confirm ingest-svc is serving.
    #[error("not ready: {0}")]
    NotReady(String),
    /// 404 `not_found`: no such route.
    #[error("no such route")]
    NotFound,
    /// 405 `method_not_allowed`: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl GatewayError {
    /// HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingSignature => StatusCode::UNAUTHORIZED,
            Self::InvalidSignature(_) | Self::VerificationFailed => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead(_)
            | Self::Payload(_)
            | Self::MissingParameter(_)
            | Self::Rejected(_) => StatusCode::BAD_REQUEST,
            Self::IngestUnavailable(_) | Self::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Machine-readable code in the JSON body (also the metrics outcome label).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::BodyRead(_) => "invalid_body",
            Self::Payload(err) => err.code(),
            Self::MissingParameter(_) => "missing_parameter",
            Self::VerificationFailed => "verification_failed",
            Self::Rejected(_) => "rejected",
            Self::IngestUnavailable(_) => "ingest_unavailable",
            Self::NotReady(_) => "not_ready",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// Text for the client: precise for client errors, generic for server ones
    /// (the cause goes to the log).
    fn public_message(&self) -> String {
        match self {
            Self::IngestUnavailable(_) => {
                "the webhook could not be stored right now; retry later".to_owned()
            }
            Self::NotReady(_) => "ingest-svc is not serving".to_owned(),
            Self::MissingSignature
            | Self::InvalidSignature(_)
            | Self::PayloadTooLarge { .. }
            | Self::BodyTimeout
            | Self::BodyRead(_)
            | Self::Payload(_)
            | Self::MissingParameter(_)
            | Self::VerificationFailed
            | Self::Rejected(_)
            | Self::NotFound
            | Self::MethodNotAllowed => self.to_string(),
        }
    }

    fn log(&self) {
        match self {
            Self::IngestUnavailable(cause) => {
                tracing::warn!(code = self.code(), %cause, "ingest call failed, answering 503");
            }
            Self::NotReady(cause) => tracing::info!(%cause, "readiness check failed"),
            Self::Rejected(_) | Self::InvalidSignature(_) => {
                tracing::info!(code = self.code(), error = %self, "webhook refused");
            }
            Self::MissingSignature
            | Self::PayloadTooLarge { .. }
            | Self::BodyTimeout
            | Self::BodyRead(_)
            | Self::Payload(_)
            | Self::MissingParameter(_)
            | Self::VerificationFailed
            | Self::NotFound
            | Self::MethodNotAllowed => {
                tracing::debug!(code = self.code(), error = %self, "request refused");
            }
        }
    }

    /// The one mapping of a failed IngestWebhook call. Only `InvalidArgument`
    /// means "this request can never succeed"; every other code (and transport
    /// failures, which tonic reports as `Unavailable`) leaves storage unknown
    /// or failed, so the answer is 503 and Meta retries.
    pub fn from_ingest_status(status: &tonic::Status) -> GatewayError {
        match status.code() {
            Code::InvalidArgument => GatewayError::Rejected(status.message().to_owned()),
            Code::Ok
            | Code::Cancelled
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
            | Code::Unauthenticated => GatewayError::IngestUnavailable(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            )),
        }
    }
}

/// Renders `{"error":{"code","message"}}` as a JSON response body.
pub(crate) fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.log();
        let body = error_body(self.code(), &self.public_message());
        let mut response = (self.status(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalid_argument_is_a_rejection() {
        let rejected = GatewayError::from_ingest_status(&tonic::Status::invalid_argument("bad"));
        assert_eq!(rejected.status(), StatusCode::BAD_REQUEST);
        assert_eq!(rejected.code(), "rejected");
        for status in [
            tonic::Status::unavailable("down"),
            tonic::Status::deadline_exceeded("slow"),
            tonic::Status::unauthenticated("token"),
            tonic::Status::internal("db"),
            tonic::Status::unknown("?"),
            tonic::Status::already_exists("dup"),
        ] {
            let err = GatewayError::from_ingest_status(&status);
            assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE, "{status:?}");
            assert_eq!(err.code(), "ingest_unavailable");
        }
    }

    #[test]
    fn server_errors_hide_their_cause() {
        let err = GatewayError::IngestUnavailable("password=hunter2".into());
        assert!(!err.public_message().contains("hunter2"));
    }

    #[test]
    fn body_is_the_documented_json_shape() {
        let body: serde_json::Value =
            serde_json::from_str(&error_body("invalid_json", "nope")).unwrap();
        assert_eq!(body["error"]["code"], "invalid_json");
        assert_eq!(body["error"]["message"], "nope");
    }
}
