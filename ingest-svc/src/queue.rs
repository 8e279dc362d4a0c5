//! The job stream on Redis (fred). Delivery path only: the database stays the source
//! of truth, so every call here may fail without losing a job.
//!
//! Keys (all under the configured prefix):
//! - `{prefix}jobs` — a stream; each entry has the fields `job_id` and `wamid`.
//! - consumer group [`GROUP`] on that stream.

use std::future::Future;
use std::time::Duration;

use fred::interfaces::{ClientLike, StreamsInterface};
use fred::prelude::{Client, Config, ReconnectPolicy};
use fred::types::Builder;
use fred::types::streams::{XReadResponse, XReadValue};

use crate::db::batch::JobRef;
use crate::error::{IngestError, Result};

/// Consumer group workers read the stream with.
pub const GROUP: &str = "workers";
/// Suffix of the dead-letter stream (`{prefix}jobs:dead`).
const DEAD_SUFFIX: &str = ":dead";
/// Every Redis call runs under this deadline, so a dead Redis costs at most this much.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// The Redis job stream.
#[derive(Clone)]
pub struct JobQueue {
    client: Client,
    stream_key: String,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("stream_key", &self.stream_key)
            .field("connected", &self.client.is_connected())
            .finish()
    }
}

/// Stream key for a prefix: `{prefix}jobs`.
pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}jobs")
}

impl JobQueue {
    /// Creates the client and starts connecting in the background. Never waits for
    /// Redis: a Redis that is down at start-up is retried forever with backoff.
    pub fn connect(redis_url: &str, prefix: &str) -> Result<JobQueue> {
        let mut config = Config::from_url(redis_url)?;
        // Apply the reconnect policy to the first connection too.
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()?;
        // The returned handle drives the connection until `quit`; dropping it is fine.
        drop(client.connect());
        Ok(JobQueue {
            client,
            stream_key: stream_key(prefix),
        })
    }

    /// Waits up to `timeout` for the first connection (start-up nicety, never an error).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        if self.client.is_connected() {
            return true;
        }
        matches!(
            tokio::time::timeout(timeout, self.client.wait_for_connect()).await,
            Ok(Ok(()))
        )
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The stream key (`{prefix}jobs`).
    pub fn stream_key(&self) -> &str {
        &self.stream_key
    }

    /// `XGROUP CREATE {prefix}jobs workers 0 MKSTREAM`; an existing group is fine.
    /// Starting at `0` means a group re-created after a Redis restart sees every entry.
    /// Returns whether the group had to be created: then Redis lost (or never had)
    /// the stream, and every job it held must be put back.
    pub async fn ensure_group(&self) -> Result<bool> {
        self.require_connection()?;
        let res: Result<(), fred::error::Error> =
            timed(
                self.client
                    .xgroup_create(self.stream_key.as_str(), GROUP, "0", true),
            )
            .await;
        match res {
            Ok(()) => Ok(true),
            Err(e) if e.details().starts_with("BUSYGROUP") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `count` new entries for `consumer` (no blocking: the connection is
    /// shared). Entries move to the consumer's pending list until [`ack`](Self::ack).
    pub(crate) async fn read(&self, consumer: &str, count: u64) -> Result<Vec<StreamEntry>> {
        self.require_connection()?;
        let reply: XReadResponse<String, String, String, String> =
            timed(self.client.xreadgroup_map(
                GROUP,
                consumer,
                Some(count),
                None,
                false,
                self.stream_key.as_str(),
                ">",
            ))
            .await?;
        Ok(reply
            .into_values()
            .flatten()
            .map(StreamEntry::from)
            .collect())
    }

    /// `XAUTOCLAIM`: takes over up to `count` entries idle for `min_idle` in any
    /// consumer's pending list (a worker session that died holding them).
    pub(crate) async fn claim_idle(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: u64,
    ) -> Result<Vec<StreamEntry>> {
        self.require_connection()?;
        let min_idle = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let (_next, entries): (String, Vec<XReadValue<String, String, String>>) =
            timed(self.client.xautoclaim_values(
                self.stream_key.as_str(),
                GROUP,
                consumer,
                min_idle,
                "0-0",
                Some(count),
                false,
            ))
            .await?;
        Ok(entries.into_iter().map(StreamEntry::from).collect())
    }

    /// `XACK`s entries: they are done with (their job finished, or the database
    /// said there is nothing to hand out).
    pub(crate) async fn ack(&self, entry_ids: &[String]) -> Result<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        self.require_connection()?;
        let _: i64 = timed(
            self.client
                .xack(self.stream_key.as_str(), GROUP, entry_ids.to_vec()),
        )
        .await?;
        Ok(())
    }

    /// Records a dead-lettered job on `{prefix}jobs:dead` (fields `job_id`, `wamid`, `error`).
    pub(crate) async fn dead_letter(&self, job: &JobRef, error: &str) -> Result<()> {
        self.require_connection()?;
        let key = format!("{}{DEAD_SUFFIX}", self.stream_key);
        let fields = vec![
            ("job_id", job.id.to_string()),
            ("wamid", job.wamid.clone()),
            ("error", error.to_owned()),
        ];
        let _: String = timed(
            self.client
                .xadd(key.as_str(), false, None::<()>, "*", fields),
        )
        .await?;
        Ok(())
    }

    /// XADDs each job (fields `job_id`, `wamid`) in one pipeline; returns the ids
    /// Redis accepted. Fails fast when the connection is down.
    pub(crate) async fn enqueue(&self, jobs: &[JobRef]) -> Result<Vec<i64>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.require_connection()?;
        let pipeline = self.client.pipeline();
        for job in jobs {
            let fields = vec![("job_id", job.id.to_string()), ("wamid", job.wamid.clone())];
            let () = pipeline
                .xadd(self.stream_key.as_str(), false, None::<()>, "*", fields)
                .await?;
        }
        let _ids: Vec<String> = timed(pipeline.all()).await?;
        Ok(jobs.iter().map(|j| j.id).collect())
    }

    /// Fails fast instead of queueing commands behind a reconnect.
    fn require_connection(&self) -> Result<()> {
        if self.client.is_connected() {
            Ok(())
        } else {
            Err(IngestError::Unavailable {
                what: "redis",
                source: "not connected".into(),
            })
        }
    }

    /// Closes the connection (bounded by the command timeout).
    pub async fn quit(&self) {
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, self.client.quit()).await;
    }
}

/// One stream entry: its id and the job it points at (`None` when malformed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEntry {
    pub(crate) id: String,
    pub(crate) job_id: Option<i64>,
}

impl From<XReadValue<String, String, String>> for StreamEntry {
    fn from((id, fields): XReadValue<String, String, String>) -> Self {
        let job_id = fields.get("job_id").and_then(|v| v.parse().ok());
        StreamEntry { id, job_id }
    }
}

/// Runs a Redis call under [`COMMAND_TIMEOUT`] even if fred's own timeout misbehaves.
async fn timed<T>(
    fut: impl Future<Output = Result<T, fred::error::Error>>,
) -> Result<T, fred::error::Error> {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(res) => res,
        Err(_) => Err(fred::error::Error::new(
            fred::error::ErrorKind::Timeout,
            "redis command timed out",
        )),
    }
}
