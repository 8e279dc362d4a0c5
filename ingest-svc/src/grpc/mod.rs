//! gRPC surface: the ingest service, auth, health and reflection.
//!
//! `JobService` (the worker stream and the dead-letter admin calls) lives in
//! `jobs.rs`, behind the same [`auth::BearerAuth`] interceptor.

use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tonic::service::{Routes, interceptor::InterceptedService};
use tonic_health::server::HealthReporter;

use crate::queue::JobQueue;

pub(crate) mod auth;
pub(crate) mod convert;
pub(crate) mod ingest;
pub(crate) mod jobs;

/// Webhooks are up to ~3 MB raw plus their typed items; leave ample room.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Fully-qualified name of the ingest service (for health).
pub(crate) const INGEST_SERVICE: &str = "whatsapp.ingest.v1.IngestService";
/// Fully-qualified name of the job service (for health).
pub(crate) const JOB_SERVICE: &str = "whatsapp.jobs.v1.JobService";

/// Every service this server answers, plus the health reporter to flip statuses.
pub(crate) async fn routes(
    db: DatabaseConnection,
    queue: JobQueue,
    api_token: Option<SecretString>,
    policy: jobs::JobPolicy,
    shutdown: CancellationToken,
) -> anyhow::Result<(Routes, HealthReporter)> {
    use proto::ingest::ingest_service_server::IngestServiceServer;
    use proto::jobs::job_service_server::JobServiceServer;

    let auth = auth::BearerAuth::new(api_token);
    let jobs = JobServiceServer::new(jobs::JobsApi::new(
        db.clone(),
        queue.clone(),
        policy,
        shutdown,
    ));
    let ingest = IngestServiceServer::new(ingest::IngestApi::new(db, queue))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(INGEST_SERVICE, tonic_health::ServingStatus::Serving)
        .await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };

    reporter
        .set_service_status(JOB_SERVICE, tonic_health::ServingStatus::Serving)
        .await;

    let routes = Routes::new(InterceptedService::new(ingest, auth.clone()))
        .add_service(InterceptedService::new(jobs, auth))
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    Ok((routes, reporter))
}
