//! Outbox → stream. Jobs are committed to the database first; this module puts them
//! on the Redis stream, right after commit (best effort) and again from a periodic
//! relay for jobs Redis never got (down at commit time, or a failed publish).

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::db::{self, batch::JobRef, leases, outbox};
use crate::error::{Result, report};
use crate::queue::JobQueue;

/// The relay leaves jobs younger than this to the post-commit publish that is
/// probably still in flight (a race only costs a duplicate stream entry, which the
/// DB-side lease makes harmless, but there is no need to provoke it).
const GRACE_MS: i64 = 3_000;
/// Jobs per relay round.
const BATCH: u64 = 500;

/// XADDs `jobs` and records them as queued. Returns how many reached the stream.
pub(crate) async fn publish(
    db: &DatabaseConnection,
    queue: &JobQueue,
    jobs: &[JobRef],
) -> Result<usize> {
    let ids = queue.enqueue(jobs).await?;
    outbox::mark_queued(db, &ids).await?;
    Ok(ids.len())
}

/// Post-commit publish: failures are logged at warn and never reach the caller
/// (the jobs stay in the outbox and the relay retries them).
pub(crate) async fn publish_after_commit(
    db: &DatabaseConnection,
    queue: &JobQueue,
    jobs: &[JobRef],
) {
    if jobs.is_empty() {
        return;
    }
    if let Err(err) = publish(db, queue, jobs).await {
        tracing::warn!(
            error = %report(&err),
            jobs = jobs.len(),
            "jobs committed but not yet on the stream; the relay will retry"
        );
    }
}

/// Puts a job's entry on the stream again without touching the database (it is
/// already marked queued): wakes a job that waited behind another of its conversation.
pub(crate) async fn wake(queue: &JobQueue, job: &JobRef) {
    if let Err(err) = queue.enqueue(std::slice::from_ref(job)).await {
        tracing::debug!(job_id = job.id, error = %report(&err), "wake-up XADD failed; the sweeper re-queues it");
    }
}

/// Makes sure the consumer group exists. When it had to be created Redis lost the
/// stream (restarted empty, flushed) or never had it: every pending job goes back
/// to the outbox so nothing waits on an entry that no longer exists.
pub(crate) async fn ensure_group(db: &DatabaseConnection, queue: &JobQueue) -> Result<()> {
    if queue.ensure_group().await? {
        let n = outbox::requeue_pending(db).await?;
        if n > 0 {
            tracing::warn!(
                jobs = n,
                "job stream was missing; pending jobs re-queued from the database"
            );
        }
    }
    Ok(())
}

/// A published job still pending after this long is published again (safety net
/// for lost entries; a duplicate entry is harmless).
const STALE_QUEUED_MS: i64 = 30_000;

/// Expired leases back to the outbox (or dead-lettered on their last attempt), and
/// long-waiting published jobs re-published.
async fn sweep(db: &DatabaseConnection, queue: &JobQueue, max_attempts: u32) -> Result<()> {
    let stale = outbox::requeue_stale(db, STALE_QUEUED_MS).await?;
    if stale > 0 {
        tracing::info!(
            jobs = stale,
            "re-publishing jobs that waited too long on the stream"
        );
    }
    for job in outbox::sweep_expired(db, max_attempts).await? {
        tracing::warn!(
            job_id = job.id,
            "lease expired on the last attempt; job dead-lettered"
        );
        if let Err(err) = queue
            .dead_letter(&job, "lease expired on the last attempt")
            .await
        {
            tracing::warn!(error = %report(&err), "dead-letter stream write failed");
        }
        // The next job of its conversation no longer waits behind it.
        if let Some(next) = leases::next_in_conversation(db, job.id).await? {
            wake(queue, &next).await;
        }
    }
    Ok(())
}

/// One relay round: make sure the consumer group exists, sweep expired leases,
/// then publish due jobs that are not on the stream. Returns how many were published.
pub(crate) async fn relay_once(
    db: &DatabaseConnection,
    queue: &JobQueue,
    max_attempts: u32,
) -> Result<usize> {
    ensure_group(db, queue).await?;
    sweep(db, queue, max_attempts).await?;
    let mut published = 0;
    loop {
        let jobs = outbox::unqueued_jobs(db, db::now_ms() - GRACE_MS, BATCH).await?;
        if jobs.is_empty() {
            return Ok(published);
        }
        let n = publish(db, queue, &jobs).await?;
        published += n;
        if (n as u64) < BATCH {
            return Ok(published);
        }
    }
}

/// Runs [`relay_once`] every `interval` until `stop` is cancelled. Logs once when
/// relaying starts failing and once when it recovers.
pub(crate) async fn run(
    db: DatabaseConnection,
    queue: JobQueue,
    interval: Duration,
    max_attempts: u32,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match relay_once(&db, &queue, max_attempts).await {
            Ok(n) => {
                if failing {
                    tracing::info!("job relay recovered");
                    failing = false;
                }
                if n > 0 {
                    tracing::info!(jobs = n, "relayed outbox jobs to the stream");
                }
            }
            Err(err) if !failing => {
                tracing::warn!(error = %report(&err), "job relay failing; will keep retrying");
                failing = true;
            }
            Err(err) => tracing::debug!(error = %report(&err), "job relay still failing"),
        }
    }
}
