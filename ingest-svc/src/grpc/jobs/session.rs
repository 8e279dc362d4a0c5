//! One worker's job stream: hands out leases up to the worker's free capacity,
//! applies its reports, and hands back what it held when the stream ends.

use std::collections::HashMap;
use std::time::Duration;

use proto::jobs::server_message::Kind as ServerKind;
use proto::jobs::worker_message::Kind as WorkerKind;
use proto::jobs::{Heartbeat, IntentRecorded, JobLease, Refused, ServerMessage, WorkerMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Status, Streaming};

use super::JobsApi;
use crate::db::leases::{self, Completion, LeaseAttempt, Retry};
use crate::error::report;
use crate::queue::StreamEntry;
use crate::relay;

/// How often an idle session looks for new stream entries (reads never block:
/// the Redis connection is shared).
const POLL: Duration = Duration::from_millis(50);
/// Liveness: a heartbeat every so often; a worker silent for three is gone.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A lease this session handed out, and the stream entry it came from.
#[derive(Debug)]
struct Held {
    token: String,
    entry: String,
}

/// One worker's stream.
pub(super) struct Session {
    api: JobsApi,
    consumer: String,
    capacity: usize,
    held: HashMap<i64, Held>,
    tx: mpsc::Sender<Result<ServerMessage, Status>>,
}

impl Session {
    pub(super) fn new(
        api: JobsApi,
        consumer: String,
        capacity: usize,
        tx: mpsc::Sender<Result<ServerMessage, Status>>,
    ) -> Self {
        Self {
            api,
            consumer,
            capacity,
            held: HashMap::new(),
            tx,
        }
    }

    pub(super) async fn run(mut self, mut inbound: Streaming<WorkerMessage>) {
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
