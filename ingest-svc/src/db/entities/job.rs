//! `jobs`: the reply-job outbox. The database is the source of truth; the Redis stream
//! only delivers. One job per inbound message (unique `message_wamid`).

use sea_orm::entity::prelude::*;

/// Waiting to be handed to a worker.
pub const PENDING: &str = "pending";
/// Handed to a worker under a lease.
pub const LEASED: &str = "leased";
/// Finished (sent, skipped or dry-run).
pub const DONE: &str = "done";
/// Failed permanently.
pub const FAILED: &str = "failed";
/// Dead-lettered after too many attempts.
pub const DEAD: &str = "dead";
/// Every state, in lifecycle order.
pub const STATES: [&str; 5] = [PENDING, LEASED, DONE, FAILED, DEAD];

/// A reply job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    /// Job id (the stream's `job_id` field).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The inbound message to answer, unique.
    #[sea_orm(unique)]
    pub message_wamid: String,
    /// Request id of the webhook that created it.
    pub request_id: String,
    /// Business number (conversation key, with `sender_key`).
    pub phone_number_id: String,
    /// Sender (conversation key, with `phone_number_id`).
    pub sender_key: String,
    /// pending, leased, done, failed, dead.
    pub state: String,
    /// Deliveries so far.
    pub attempts: i32,
    /// Not to be delivered before (Unix ms).
    pub available_at: i64,
    /// Token of the current lease.
    pub lease_token: Option<String>,
    /// Current lease deadline (Unix ms).
    pub lease_until: Option<i64>,
    /// Worker holding the lease.
    pub worker_id: Option<String>,
    /// When XADD to the stream succeeded (Unix ms); NULL = still in the outbox.
    pub queued_at: Option<i64>,
    /// Last error reported by a worker.
    pub last_error: Option<String>,
    /// sent, skipped, dry_run, failed.
    pub outcome: Option<String>,
    /// Graph error code of a permanent failure.
    pub error_code: Option<i64>,
    /// wamid of the reply, once sent.
    pub outbound_wamid: Option<String>,
    /// Insert time (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
    /// When a worker announced it was about to call Graph (Unix ms); set without a
    /// result, the reply may already have reached the customer.
    pub send_intent_at: Option<i64>,
    /// The reply text recorded by the worker (also for dry-runs).
    #[sea_orm(column_type = "Text", nullable)]
    pub reply_text: Option<String>,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
