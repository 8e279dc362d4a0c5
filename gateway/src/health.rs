//! Liveness (`/healthz`) and readiness (`/readyz`: ingest-svc answers its
//! `grpc.health.v1.Health/Check` with SERVING).

use std::time::Duration;

use axum::extract::State;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::error::{GatewayError, Result};
use crate::state::AppState;

/// Upper bound of the readiness probe's gRPC call.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when ingest-svc reports SERVING, else 503 `not_ready`.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<&'static str> {
    let timeout = state.ingest_timeout().min(READY_TIMEOUT);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(timeout);
    state.authorize(request.metadata_mut());
    let mut client = state.health();
    match tokio::time::timeout(timeout, client.check(request)).await {
        Ok(Ok(response)) => {
            let status = response.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Ok("ready")
            } else {
                let name = ServingStatus::try_from(status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("UNRECOGNIZED");
                Err(GatewayError::NotReady(format!(
                    "ingest-svc health is {name}"
                )))
            }
        }
        Ok(Err(status)) => Err(GatewayError::NotReady(format!(
            "health check failed: {:?}: {}",
            status.code(),
            status.message()
        ))),
        Err(_) => Err(GatewayError::NotReady(format!(
            "health check got no answer within {timeout:?}"
        ))),
    }
}
