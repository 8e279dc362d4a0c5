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

use std::collections::HashMap;
use std::time::Duration;

use proto::jobs::job_service_server::JobService;
use proto::jobs::server_message::Kind as ServerKind;
use proto::jobs::worker_message::Kind as WorkerKind;
use proto::jobs::{
    DeadJob, Heartbeat, IntentRecorded, JobLease, ListDeadJobsRequest, ListDeadJobsResponse,
    Refused, RetryJobRequest, RetryJobResponse, ServerMessage, WorkerMessage,
};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::db::leases::{self, Completion, LeaseAttempt, Retry};
use crate::error::{IngestError, report};
use crate::queue::{JobQueue, StreamEntry};
use crate::relay;

/// How often an idle session looks for new stream entries (reads never block:
/// the Redis connection is shared).
const POLL: Duration = Duration::from_millis(50);
/// Liveness: a heartbeat every so often; a worker silent for three is gone.
const HEARTBEAT: Duration = Duration::from_secs(5);
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
        let session = Session {
            api: self.clone(),
            consumer,
            capacity: hello.capacity as usize,
            held: HashMap::new(),
            tx,
        };
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

/// A lease this session handed out, and the stream entry it came from.
#[derive(Debug)]
struct Held {
    token: String,
    entry: String,
}

/// One worker's stream.
struct Session {
    api: JobsApi,
    consumer: String,
    capacity: usize,
    held: HashMap<i64, Held>,
    tx: mpsc::Sender<Result<ServerMessage, Status>>,
}

impl Session {
    async fn run(mut self, mut inbound: Streaming<WorkerMessage>) {
        tracing::info!(consumer = %self.consumer, capacity = self.capacity, "worker connected");
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut claim =
            tokio::time::interval((self.api.policy.lease / 2).max(Duration::from_millis(200)));
        let mut beat = tokio::time::interval(HEARTBEAT);
        let mut last_seen = Instant::now();
        let shutdown = self.api.shutdown.clone();

        let why = loop {
            tokio::select! {
                () = shutdown.cancelled() => break "server shutting down",
                () = self.tx.closed() => break "worker went away",
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => {
                        last_seen = Instant::now();
                        if let Some(kind) = m.kind {
                            self.handle(kind).await;
                        }
                    }
                    Ok(None) => break "worker closed the stream",
                    Err(_) => break "stream broken",
                },
                _ = poll.tick(), if self.held.len() < self.capacity => {
                    let free = (self.capacity - self.held.len()) as u64;
                    match self.api.queue.read(&self.consumer, free).await {
                        Ok(entries) => self.offer(entries).await,
                        Err(err) => tracing::debug!(error = %report(&err), "stream read failed"),
                    }
                }
                _ = claim.tick(), if self.held.len() < self.capacity => {
                    let free = (self.capacity - self.held.len()) as u64;
                    match self.api.queue.claim_idle(&self.consumer, self.api.policy.lease, free).await {
                        Ok(entries) => self.offer(entries).await,
                        Err(err) => tracing::debug!(error = %report(&err), "stream claim failed"),
                    }
                }
                _ = beat.tick() => {
                    if last_seen.elapsed() > HEARTBEAT * 3 {
                        break "worker stopped answering";
                    }
                    self.send(ServerKind::Heartbeat(Heartbeat {})).await;
                }
            }
        };
        self.hand_back(why).await;
    }

    /// Tries to lease each entry's job; entries that lead nowhere are acked.
    async fn offer(&mut self, entries: Vec<StreamEntry>) {
        let mut drop_entries = Vec::new();
        for entry in entries {
            let Some(job_id) = entry.job_id else {
                drop_entries.push(entry.id);
                continue;
            };
            if self.held.contains_key(&job_id) {
                drop_entries.push(entry.id);
                continue;
            }
            let token = uuid::Uuid::new_v4().simple().to_string();
            let lease_ms = i64::try_from(self.api.policy.lease.as_millis()).unwrap_or(i64::MAX);
            let attempt = leases::try_lease(
                &self.api.db,
                job_id,
                &self.consumer,
                &token,
                lease_ms,
                self.api.policy.max_attempts,
            )
            .await;
            match attempt {
                Ok(LeaseAttempt::Leased(leased)) => {
                    let job = leased.job;
                    tracing::info!(job_id, attempt = job.attempts, consumer = %self.consumer, "job leased");
                    let lease = JobLease {
                        job_id,
                        lease_token: token.clone(),
                        lease_deadline_ms: job.lease_until.unwrap_or_default(),
                        attempt: u32::try_from(job.attempts).unwrap_or_default(),
                        request_id: job.request_id,
                        message: Some(leased.message),
                        send_attempted: job.send_intent_at.is_some(),
                    };
                    self.held.insert(
                        job_id,
                        Held {
                            token,
                            entry: entry.id,
                        },
                    );
                    self.send(ServerKind::Job(lease)).await;
                }
                Ok(LeaseAttempt::Gone | LeaseAttempt::NotNow) => drop_entries.push(entry.id),
                // Left pending in Redis: claimed again once idle.
                Err(err) => tracing::warn!(job_id, error = %report(&err), "lease failed"),
            }
        }
        if let Err(err) = self.api.queue.ack(&drop_entries).await {
            tracing::debug!(error = %report(&err), "XACK failed; entries will be reclaimed");
        }
    }

    async fn handle(&mut self, kind: WorkerKind) {
        let db = &self.api.db;
        let result: Result<(), (i64, &str)> = match kind {
            WorkerKind::Hello(_) | WorkerKind::Heartbeat(_) => return,
            WorkerKind::Intent(i) => {
                match leases::record_intent(db, i.job_id, &i.lease_token).await {
                    Ok(true) => {
                        self.send(ServerKind::IntentRecorded(IntentRecorded {
                            job_id: i.job_id,
                        }))
                        .await;
                        return;
                    }
                    Ok(false) => Err((i.job_id, "stale lease: intent refused")),
                    Err(err) => {
                        tracing::warn!(error = %report(&err), "recording intent failed");
                        Err((i.job_id, "intent could not be recorded"))
                    }
                }
            }
            WorkerKind::Extend(e) => {
                let lease_ms = i64::try_from(self.api.policy.lease.as_millis()).unwrap_or(i64::MAX);
                match leases::extend(db, e.job_id, &e.lease_token, lease_ms).await {
                    Ok(true) => return,
                    Ok(false) => Err((e.job_id, "stale lease: extend refused")),
                    Err(err) => {
                        tracing::warn!(error = %report(&err), "extending a lease failed");
                        return;
                    }
                }
            }
            WorkerKind::Ack(a) => {
                let done = Completion {
                    outcome: a.outcome,
                    outbound_wamid: a.outbound_wamid,
                    reply_text: a.reply_text,
                    error_code: a.error_code,
                    error: a.error,
                };
                match leases::complete(db, a.job_id, &a.lease_token, &done).await {
                    Ok(true) => {
                        tracing::info!(job_id = a.job_id, outcome = %done.outcome, "job finished");
                        self.finish(a.job_id).await;
                        return;
                    }
                    Ok(false) => Err((a.job_id, "stale lease: ack refused")),
                    Err(err) => {
                        tracing::warn!(error = %report(&err), "recording an ack failed; the lease will expire");
                        return;
                    }
                }
            }
            WorkerKind::Nack(n) => {
                let delay = i64::from(n.retry_after_ms);
                match leases::retry_later(
                    db,
                    n.job_id,
                    &n.lease_token,
                    delay,
                    &n.error,
                    n.maybe_sent,
                    self.api.policy.max_attempts,
                )
                .await
                {
                    Ok(Retry::Scheduled) => {
                        tracing::info!(job_id = n.job_id, delay_ms = delay, "job will be retried");
                        self.finish(n.job_id).await;
                        return;
                    }
                    Ok(Retry::Dead(job)) => {
                        tracing::warn!(job_id = n.job_id, error = %n.error, "job dead-lettered after its last attempt");
                        if let Err(err) = self.api.queue.dead_letter(&job, &n.error).await {
                            tracing::warn!(error = %report(&err), "dead-letter stream write failed");
                        }
                        self.finish(n.job_id).await;
                        return;
                    }
                    Ok(Retry::Stale) => Err((n.job_id, "stale lease: nack refused")),
                    Err(err) => {
                        tracing::warn!(error = %report(&err), "recording a nack failed; the lease will expire");
                        return;
                    }
                }
            }
        };
        if let Err((job_id, reason)) = result {
            tracing::info!(job_id, reason, "worker report refused");
            if let Some(held) = self.held.get(&job_id) {
                // The lease moved on without us; our entry is done.
                let entry = held.entry.clone();
                self.held.remove(&job_id);
                let _ = self.api.queue.ack(&[entry]).await;
            }
            self.send(ServerKind::Refused(Refused {
                job_id,
                reason: reason.to_owned(),
            }))
            .await;
        }
    }

    /// A job left this session: ack its entry and wake the next job of its conversation.
    async fn finish(&mut self, job_id: i64) {
        if let Some(held) = self.held.remove(&job_id)
            && let Err(err) = self.api.queue.ack(&[held.entry]).await
        {
            tracing::debug!(error = %report(&err), "XACK failed; the entry will be reclaimed and dropped");
        }
        match leases::next_in_conversation(&self.api.db, job_id).await {
            Ok(Some(next)) => relay::wake(&self.api.queue, &next).await,
            Ok(None) => {}
            Err(err) => {
                tracing::debug!(error = %report(&err), "next job lookup failed; the sweeper catches up")
            }
        }
    }

    /// The session ends: leases still held go back to pending, at once.
    async fn hand_back(mut self, why: &str) {
        let held: Vec<(i64, String)> = self
            .held
            .iter()
            .map(|(id, h)| (*id, h.token.clone()))
            .collect();
        let entries: Vec<String> = self.held.drain().map(|(_, h)| h.entry).collect();
        tracing::info!(consumer = %self.consumer, reason = why, handed_back = held.len(), "worker session ended");
        match leases::release(&self.api.db, &held).await {
            Ok(released) => {
                let _ = self.api.queue.ack(&entries).await;
                relay::publish_after_commit(&self.api.db, &self.api.queue, &released).await;
            }
            Err(err) => {
                tracing::warn!(error = %report(&err), "handing back leases failed; they expire instead")
            }
        }
    }

    async fn send(&self, kind: ServerKind) {
        let _ = self.tx.send(Ok(ServerMessage { kind: Some(kind) })).await;
    }
}
