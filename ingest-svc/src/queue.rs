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

use crate::db::batch::JobRef;
use crate::error::{IngestError, Result};

/// Consumer group workers read the stream with.
pub const GROUP: &str = "workers";
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
    pub async fn ensure_group(&self) -> Result<()> {
        self.require_connection()?;
        let res: Result<(), fred::error::Error> =
            timed(
                self.client
                    .xgroup_create(self.stream_key.as_str(), GROUP, "0", true),
            )
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.details().starts_with("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
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
