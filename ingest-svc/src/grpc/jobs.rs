//! `whatsapp.jobs.v1.JobService`: one bidirectional stream per worker session.
//!
//! ```text
//! worker                      ingest-svc
//!   Hello{id, capacity}  ──▶
//!                        ◀──  JobLease{job, token, deadline}   (≤ free capacity)
//!   Intent{job, token}   ──▶  send_intent_at recorded
//!                        ◀──  IntentRecorded{job}              (then the worker calls Graph)
//!   Extend{job, token}   ──▶  lease_until pushed out
//!   Ack / Nack           ──▶  done|failed / pending later|dead; stream entry XACKed
//!                        ◀──  Refused{job, reason}             (stale token)
//!   Heartbeat            ◀─▶  liveness; a silent worker loses its leases
//! ```

use std::time::Duration;

mod session;

use proto::jobs::job_service_server::JobService;
use proto::jobs::worker_message::Kind as WorkerKind;
use proto::jobs::{
    DeadJob, ListDeadJobsRequest, ListDeadJobsResponse, RetryJobRequest, RetryJobResponse,
    ServerMessage, WorkerMessage,
};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::db::leases;
use crate::error::IngestError;
use crate::queue::JobQueue;
use crate::relay;

/// Largest capacity a worker may announce.
const MAX_CAPACITY: u32 = 1_000;

/// Lease and retry policy of the job stream.
#[derive(Debug, Clone)]
pub(crate) struct JobPolicy {
    pub(crate) lease: Duration,
    pub(crate) max_attempts: u32,
}

/// The JobService implementation.
#[derive(Debug, Clone)]
pub(crate) struct JobsApi {
    db: DatabaseConnection,
    queue: JobQueue,
    policy: JobPolicy,
    shutdown: CancellationToken,
}

impl JobsApi {
    pub(crate) fn new(
        db: DatabaseConnection,
        queue: JobQueue,
        policy: JobPolicy,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            queue,
            policy,
            shutdown,
        }
    }
}

#[tonic::async_trait]
impl JobService for JobsApi {
    type StreamJobsStream = ReceiverStream<Result<ServerMessage, Status>>;

    async fn stream_jobs(
        &self,
        request: Request<Streaming<WorkerMessage>>,
    ) -> Result<Response<Self::StreamJobsStream>, Status> {
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
            Ok(Ok(Some(WorkerMessage {
                kind: Some(WorkerKind::Hello(h)),
            }))) => h,
            _ => return Err(Status::invalid_argument("a job stream opens with Hello")),
        };
        if hello.capacity == 0 || hello.capacity > MAX_CAPACITY {
            return Err(Status::invalid_argument(format!(
                "capacity must be 1..={MAX_CAPACITY}"
            )));
        }
        let worker_id = if hello.worker_id.trim().is_empty() {
            "anonymous".to_owned()
        } else {
            hello.worker_id
        };
        let consumer = format!(
            "{worker_id}:{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (tx, rx) = mpsc::channel(hello.capacity as usize * 2 + 16);
        let session = session::Session::new(self.clone(), consumer, hello.capacity as usize, tx);
        tokio::spawn(session.run(inbound));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_dead_jobs(
        &self,
        request: Request<ListDeadJobsRequest>,
    ) -> Result<Response<ListDeadJobsResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 50,
            n => u64::from(n.min(500)),
        };
        let jobs = leases::dead_jobs(&self.db, limit).await?;
        Ok(Response::new(ListDeadJobsResponse {
            jobs: jobs
                .into_iter()
                .map(|j| DeadJob {
                    job_id: j.id,
                    wamid: j.message_wamid,
                    attempts: u32::try_from(j.attempts).unwrap_or_default(),
                    last_error: j.last_error.unwrap_or_default(),
                    state: j.state,
                    updated_at_ms: j.updated_at,
                })
                .collect(),
        }))
    }

    async fn retry_job(
        &self,
        request: Request<RetryJobRequest>,
    ) -> Result<Response<RetryJobResponse>, Status> {
        let id = request.into_inner().job_id;
        let Some(job) = leases::revive(&self.db, id).await? else {
            return Err(IngestError::NotFound(format!(
                "no dead or failed job {id} without a sent reply"
            ))
            .into());
        };
        relay::publish_after_commit(&self.db, &self.queue, &[job]).await;
        tracing::info!(job_id = id, "dead job put back to pending by an operator");
        Ok(Response::new(RetryJobResponse {
            state: "pending".to_owned(),
        }))
    }
}
