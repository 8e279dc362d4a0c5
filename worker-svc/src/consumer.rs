//! The job stream: one `StreamJobs` session at a time, reconnecting with backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::jobs::job_service_client::JobServiceClient;
use proto::jobs::server_message::Kind as ServerKind;
use proto::jobs::worker_message::Kind as WorkerKind;
use proto::jobs::{Ack, Extend, Heartbeat, Hello, Intent, JobLease, Nack, WorkerMessage};
use proto::tonic::transport::Channel;
use proto::tonic::{Request, metadata::MetadataValue};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::handler::{Decision, decide, retry_delay};
use crate::whatsapp::{GraphClient, GraphError};

type Waiters = Arc<Mutex<HashMap<i64, oneshot::Sender<bool>>>>;

/// Everything a job needs, shared by all in-flight jobs.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) settings: Settings,
    pub(crate) graph: Option<GraphClient>,
    pub(crate) channel: Channel,
}

impl Worker {
    /// Runs sessions until `shutdown`; a broken stream is reopened with backoff.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.clone().session(&shutdown).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(status) => {
                    tracing::warn!(code = ?status.code(), error = status.message(), "job stream failed; reconnecting");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(
        self: Arc<Self>,
        shutdown: &CancellationToken,
    ) -> Result<(), proto::tonic::Status> {
        let (tx, rx) = mpsc::channel::<WorkerMessage>(256);
        let hello = Hello {
            worker_id: self.settings.worker_id.clone(),
            capacity: self.settings.capacity,
        };
        let _ = tx.send(msg(WorkerKind::Hello(hello))).await;
        let mut request = Request::new(ReceiverStream::new(rx));
        if let Some(token) = &self.settings.api_token {
            let value = MetadataValue::try_from(format!("Bearer {}", token.expose_secret()))
                .map_err(|_| {
                    proto::tonic::Status::invalid_argument("INGEST_API_TOKEN is not a valid header")
                })?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut inbound = JobServiceClient::new(self.channel.clone())
            .stream_jobs(request)
            .await?
            .into_inner();
        tracing::info!(worker_id = %self.settings.worker_id, capacity = self.settings.capacity, "job stream open");
        let waiters: Waiters = Arc::default();
        let mut tasks = JoinSet::new();

        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                next = inbound.message() => match next? {
                    None => return Ok(()),
                    Some(m) => match m.kind {
                        Some(ServerKind::Job(lease)) => {
                            tasks.spawn(self.clone().process(lease, tx.clone(), waiters.clone()));
                        }
                        Some(other) => handle_control(other, &tx, &waiters).await,
                        None => {}
                    },
                },
            }
        }

        // Draining: finish what is in flight, hand back anything new, then close.
        tracing::info!(in_flight = tasks.len(), "draining the job stream");
        let grace = tokio::time::sleep(self.settings.shutdown_grace);
        tokio::pin!(grace);
        while !tasks.is_empty() {
            tokio::select! {
                () = &mut grace => {
                    tracing::warn!(in_flight = tasks.len(), "grace period over; leases will expire and be redelivered");
                    tasks.abort_all();
                    break;
                }
                _ = tasks.join_next() => {}
                next = inbound.message() => match next {
                    Ok(Some(m)) => match m.kind {
                        Some(ServerKind::Job(lease)) => {
                            let back = Nack { job_id: lease.job_id, lease_token: lease.lease_token, retry_after_ms: 0, error: "worker shutting down".into(), maybe_sent: false };
                            let _ = tx.send(msg(WorkerKind::Nack(back))).await;
                        }
                        Some(other) => handle_control(other, &tx, &waiters).await,
                        None => {}
                    },
                    _ => break,
                },
            }
        }
        Ok(())
    }

    /// Processes one lease and reports the outcome on the stream. The lease is
    /// extended while the job runs (Graph may be slow); aborting this future
    /// (a killed worker) stops the extensions too, so the lease lapses.
    async fn process(
        self: Arc<Self>,
        lease: JobLease,
        tx: mpsc::Sender<WorkerMessage>,
        waiters: Waiters,
    ) {
        let (job_id, token) = (lease.job_id, lease.lease_token.clone());
        let lease_left = u64::try_from(lease.lease_deadline_ms - now_ms()).unwrap_or(0);
        let every = Duration::from_millis(lease_left.max(1_000) / 2);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let work = self.outcome(lease, &tx, &waiters);
        tokio::pin!(work);
        let report = loop {
            tokio::select! {
                report = &mut work => break report,
                _ = ticker.tick() => {
                    let extend = Extend { job_id, lease_token: token.clone() };
                    let _ = tx.send(msg(WorkerKind::Extend(extend))).await;
                }
            }
        };
        if let Some(kind) = report {
            let _ = tx.send(msg(kind)).await;
        }
    }

    async fn outcome(
        &self,
        lease: JobLease,
        tx: &mpsc::Sender<WorkerMessage>,
        waiters: &Waiters,
    ) -> Option<WorkerKind> {
        let message = lease.message.clone().unwrap_or_default();
        let ack = |outcome: &str| Ack {
            job_id: lease.job_id,
            lease_token: lease.lease_token.clone(),
            outcome: outcome.to_owned(),
            ..Default::default()
        };
        let (phone_number_id, to, wamid) = match decide(&message, &self.settings, now_ms() / 1000) {
            Decision::Skip(reason) => {
                tracing::info!(job_id = lease.job_id, reason, "no reply");
                return Some(WorkerKind::Ack(Ack {
                    error: reason.to_owned(),
                    ..ack("skipped")
                }));
            }
            Decision::Reply {
                phone_number_id,
                to,
                wamid,
            } => (phone_number_id, to, wamid),
        };
        if lease.send_attempted {
            // A previous delivery may have reached Graph: never risk answering twice.
            tracing::warn!(
                job_id = lease.job_id,
                "send attempted before without a result; not sending again"
            );
            return Some(WorkerKind::Ack(ack("sent_unconfirmed")));
        }
        let Some(graph) = &self.graph else {
            tracing::info!(job_id = lease.job_id, wa_message_id = %wamid, "dry-run reply (no WHATSAPP_ACCESS_TOKEN): recorded, not sent");
            return Some(WorkerKind::Ack(Ack {
                reply_text: self.settings.reply_text.clone(),
                ..ack("dry_run")
            }));
        };
        if !record_intent(lease.job_id, &lease.lease_token, tx, waiters).await {
            tracing::warn!(
                job_id = lease.job_id,
                "send intent refused (stale lease); dropping this delivery"
            );
            return None;
        }
        let callback = format!("job={}", lease.job_id);
        match graph
            .send_text(
                &phone_number_id,
                &to,
                &self.settings.reply_text,
                &wamid,
                &callback,
            )
            .await
        {
            Ok(outbound) => {
                if let Err(e) = graph.mark_read(&phone_number_id, &wamid).await {
                    tracing::warn!(job_id = lease.job_id, error = %e, "mark-read failed");
                }
                tracing::info!(job_id = lease.job_id, outbound_wamid = %outbound, "reply sent");
                Some(WorkerKind::Ack(Ack {
                    outbound_wamid: outbound,
                    reply_text: self.settings.reply_text.clone(),
                    ..ack("sent")
                }))
            }
            Err(e) if e.is_retryable() => {
                let delay = retry_delay(lease.attempt, &e, self.settings.retry_base);
                tracing::warn!(job_id = lease.job_id, attempt = lease.attempt, error = %e, ?delay, "send failed; will retry");
                Some(WorkerKind::Nack(Nack {
                    job_id: lease.job_id,
                    lease_token: lease.lease_token.clone(),
                    retry_after_ms: u32::try_from(delay.as_millis()).unwrap_or(u32::MAX),
                    error: e.to_string(),
                    maybe_sent: matches!(e, GraphError::Transport(_)),
                }))
            }
            Err(e) => {
                tracing::warn!(job_id = lease.job_id, code = e.code(), error = %e, "send failed permanently");
                Some(WorkerKind::Ack(Ack {
                    error_code: e.code(),
                    error: e.to_string(),
                    ..ack("failed")
                }))
            }
        }
    }
}

/// Records the send intent and waits until ingest-svc has stored it.
async fn record_intent(
    job_id: i64,
    token: &str,
    tx: &mpsc::Sender<WorkerMessage>,
    waiters: &Waiters,
) -> bool {
    let (done, recorded) = oneshot::channel();
    waiters.lock().expect("waiters lock").insert(job_id, done);
    let intent = Intent {
        job_id,
        lease_token: token.to_owned(),
    };
    if tx.send(msg(WorkerKind::Intent(intent))).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(10), recorded).await,
        Ok(Ok(true))
    )
}

async fn handle_control(kind: ServerKind, tx: &mpsc::Sender<WorkerMessage>, waiters: &Waiters) {
    match kind {
        ServerKind::Heartbeat(_) => {
            let _ = tx.send(msg(WorkerKind::Heartbeat(Heartbeat {}))).await;
        }
        ServerKind::IntentRecorded(r) => resolve(waiters, r.job_id, true),
        ServerKind::Refused(r) => {
            tracing::info!(job_id = r.job_id, reason = %r.reason, "ingest-svc refused a report");
            resolve(waiters, r.job_id, false);
        }
        ServerKind::Job(_) => {}
    }
}

fn resolve(waiters: &Waiters, job_id: i64, ok: bool) {
    if let Some(w) = waiters.lock().expect("waiters lock").remove(&job_id) {
        let _ = w.send(ok);
    }
}

fn msg(kind: WorkerKind) -> WorkerMessage {
    WorkerMessage { kind: Some(kind) }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
