//! Job leases. The database decides who may run a job, so a stream entry is only
//! a hint: duplicates, stale entries and entries for finished jobs are harmless.
//!
//! A job is leasable when it is `pending` and due, or `leased` with an expired
//! lease, has attempts left, and no earlier job of its conversation
//! (phone_number_id, sender) is still pending or leased: one at a time, in order.

use prost::Message as _;
use proto::ingest::inbound_message::Content;
use proto::ingest::{Business, InboundMessage, MessageContext, Text};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, Value,
};

use super::batch::JobRef;
use super::entities::{job, message};
use super::now_ms;
use crate::domain::db_text;
use crate::error::Result;

/// What [`try_lease`] found.
#[derive(Debug)]
pub(crate) enum LeaseAttempt {
    /// Leased to the caller: hand it out.
    Leased(Box<Leased>),
    /// Finished, dead or unknown: the stream entry can go.
    Gone,
    /// Not now (leased elsewhere, backing off, or behind an earlier job of its
    /// conversation); it is put on the stream again when that changes.
    NotNow,
}

/// A job under a fresh lease, with the message to answer.
#[derive(Debug)]
pub(crate) struct Leased {
    pub(crate) job: job::Model,
    pub(crate) message: InboundMessage,
}

/// Raw SQL with `$n` placeholders, rewritten to `?n` for SQLite.
fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

const LEASE_SQL: &str = "UPDATE jobs SET state = 'leased', lease_token = $1, lease_until = $2, \
     worker_id = $3, attempts = attempts + 1, updated_at = $4 \
     WHERE id = $5 AND attempts < $6 AND outbound_wamid IS NULL \
       AND ((state = 'pending' AND available_at <= $4) OR (state = 'leased' AND lease_until < $4)) \
       AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.phone_number_id = jobs.phone_number_id \
         AND e.sender_key = jobs.sender_key AND e.id < jobs.id AND e.state IN ('pending', 'leased'))";

/// Leases job `id` to `worker_id` under `token` until `now + lease_ms`, if it may run now.
pub(crate) async fn try_lease(
    db: &DatabaseConnection,
    id: i64,
    worker_id: &str,
    token: &str,
    lease_ms: i64,
    max_attempts: u32,
) -> Result<LeaseAttempt> {
    let now = now_ms();
    let values: Vec<Value> = vec![
        token.into(),
        (now + lease_ms).into(),
        db_text(worker_id).into(),
        now.into(),
        id.into(),
        i32::try_from(max_attempts).unwrap_or(i32::MAX).into(),
    ];
    let res = db
        .execute_raw(stmt(db.get_database_backend(), LEASE_SQL, values))
        .await?;
    let Some(job) = job::Entity::find_by_id(id).one(db).await? else {
        return Ok(LeaseAttempt::Gone);
    };
    if res.rows_affected() == 0 {
        if job.outbound_wamid.is_some() && settle_sent(db, id).await? {
            return Ok(LeaseAttempt::Gone);
        }
        let finished = matches!(job.state.as_str(), job::DONE | job::FAILED | job::DEAD);
        return Ok(if finished {
            LeaseAttempt::Gone
        } else {
            LeaseAttempt::NotNow
        });
    }
    let row = message::Entity::find()
        .filter(message::Column::Wamid.eq(job.message_wamid.as_str()))
        .one(db)
        .await?;
    let message = match row {
        Some(row) => {
            let mut m = InboundMessage::decode(row.content.as_slice()).unwrap_or_default();
            m.raw_json = row.raw_json;
            m
        }
        None => InboundMessage {
            wamid: job.message_wamid.clone(),
            ..Default::default()
        },
    };
    Ok(LeaseAttempt::Leased(Box::new(Leased { job, message })))
}

/// A job whose reply is known to have gone out (its status webhook arrived) but
/// whose worker never acked is done: it must never be sent again, nor block its
/// conversation. Returns whether it was settled now.
async fn settle_sent(db: &DatabaseConnection, id: i64) -> Result<bool> {
    let now = now_ms();
    let res = job::Entity::update_many()
        .col_expr(job::Column::State, Expr::value(job::DONE))
        .col_expr(job::Column::Outcome, Expr::value("sent"))
        .col_expr(job::Column::LeaseToken, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::OutboundWamid.is_not_null())
        .filter(
            sea_orm::Condition::any()
                .add(job::Column::State.eq(job::PENDING))
                .add(
                    sea_orm::Condition::all()
                        .add(job::Column::State.eq(job::LEASED))
                        .add(job::Column::LeaseUntil.lt(now)),
                ),
        )
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Updates a job only while `token` is its current lease; returns whether it applied.
async fn if_leased(
    db: &impl ConnectionTrait,
    id: i64,
    token: &str,
    update: sea_orm::UpdateMany<job::Entity>,
) -> Result<bool> {
    let res = update
        .col_expr(job::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::State.eq(job::LEASED))
        .filter(job::Column::LeaseToken.eq(token))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records that the worker is about to call Graph. Refused (false) on a stale lease.
pub(crate) async fn record_intent(db: &DatabaseConnection, id: i64, token: &str) -> Result<bool> {
    let update = job::Entity::update_many()
        .col_expr(job::Column::SendIntentAt, Expr::value(now_ms()))
        .filter(job::Column::LeaseUntil.gte(now_ms()));
    if_leased(db, id, token, update).await
}

/// Extends a live lease by `lease_ms` from now. Refused (false) on a stale lease.
pub(crate) async fn extend(
    db: &DatabaseConnection,
    id: i64,
    token: &str,
    lease_ms: i64,
) -> Result<bool> {
    let update = job::Entity::update_many()
        .col_expr(job::Column::LeaseUntil, Expr::value(now_ms() + lease_ms));
    if_leased(db, id, token, update).await
}

/// A worker's final word on a job.
#[derive(Debug, Default)]
pub(crate) struct Completion {
    /// sent, skipped, dry_run, sent_unconfirmed, failed.
    pub(crate) outcome: String,
    pub(crate) outbound_wamid: String,
    pub(crate) reply_text: String,
    pub(crate) error_code: i64,
    pub(crate) error: String,
}

/// Applies an ack. The outbound message is recorded even on a stale lease (a
/// reply that went out must never be forgotten); the state changes only under the
/// current lease. Returns whether the lease was current.
pub(crate) async fn complete(
    db: &DatabaseConnection,
    id: i64,
    token: &str,
    done: &Completion,
) -> Result<bool> {
    let txn = db.begin().await?;
    let Some(job) = job::Entity::find_by_id(id).one(&txn).await? else {
        return Ok(false);
    };
    if !done.outbound_wamid.is_empty() {
        record_outbound(&txn, &job, done).await?;
    }
    let state = if done.outcome == "failed" {
        job::FAILED
    } else {
        job::DONE
    };
    let update = job::Entity::update_many()
        .col_expr(job::Column::State, Expr::value(state))
        .col_expr(job::Column::Outcome, Expr::value(db_text(&done.outcome)))
        .col_expr(
            job::Column::ErrorCode,
            Expr::value((done.error_code != 0).then_some(done.error_code)),
        )
        .col_expr(
            job::Column::LastError,
            Expr::value((!done.error.is_empty()).then(|| db_text(&done.error))),
        )
        .col_expr(
            job::Column::ReplyText,
            Expr::value((!done.reply_text.is_empty()).then(|| db_text(&done.reply_text))),
        )
        .col_expr(job::Column::LeaseToken, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseUntil, Expr::value(Option::<i64>::None));
    let applied = if_leased(&txn, id, token, update).await?;
    txn.commit().await?;
    Ok(applied)
}

/// The `biz_opaque_callback_data` the worker sends with a reply (`job=<id>`).
pub(crate) fn job_from_callback(callback: &str) -> Option<i64> {
    callback.strip_prefix("job=")?.parse().ok()
}

/// Status webhooks carry our `job=<id>` back. A reply whose ack never arrived
/// (the worker died after Graph accepted it) is recorded from its first status:
/// the outbound message appears, the job learns its wamid, and an unconfirmed
/// outcome becomes `sent`. Only when the status's recipient is the job's customer.
pub(crate) async fn link_reply_statuses(
    txn: &impl ConnectionTrait,
    statuses: &[(String, String, String)],
) -> Result<()> {
    for (wamid, callback, recipient) in statuses {
        let Some(id) = job_from_callback(callback) else {
            continue;
        };
        let Some(job) = job::Entity::find_by_id(id).one(txn).await? else {
            continue;
        };
        if job.outbound_wamid.is_some() {
            continue;
        }
        let customer = message::Entity::find()
            .filter(message::Column::Wamid.eq(job.message_wamid.as_str()))
            .one(txn)
            .await?
            .map(|m| m.wa_id)
            .unwrap_or_default();
        if !recipient.is_empty() && !customer.is_empty() && recipient != &customer {
            continue;
        }
        let done = Completion {
            outbound_wamid: wamid.clone(),
            reply_text: job.reply_text.clone().unwrap_or_default(),
            ..Default::default()
        };
        record_outbound(txn, &job, &done).await?;
        job::Entity::update_many()
            .col_expr(job::Column::Outcome, Expr::value("sent"))
            .filter(job::Column::Id.eq(id))
            .filter(job::Column::Outcome.eq("sent_unconfirmed"))
            .exec(txn)
            .await?;
        tracing::info!(job_id = id, "reply recorded from its status webhook");
    }
    Ok(())
}

/// Inserts the reply as an outbound message (once) and links it to the job.
async fn record_outbound(
    txn: &impl ConnectionTrait,
    job: &job::Model,
    done: &Completion,
) -> Result<()> {
    let inbound = message::Entity::find()
        .filter(message::Column::Wamid.eq(job.message_wamid.as_str()))
        .one(txn)
        .await?;
    let (display, wa_id, user_id) = inbound
        .map(|m| (m.display_phone_number, m.wa_id, m.user_id))
        .unwrap_or_default();
    let now = now_ms();
    let content = InboundMessage {
        wamid: done.outbound_wamid.clone(),
        business: Some(Business {
            phone_number_id: job.phone_number_id.clone(),
            display_phone_number: display.clone(),
            ..Default::default()
        }),
        timestamp: now / 1000,
        r#type: "text".to_owned(),
        context: Some(MessageContext {
            message_id: job.message_wamid.clone(),
            ..Default::default()
        }),
        content: Some(Content::Text(Text {
            body: done.reply_text.clone(),
        })),
        ..Default::default()
    };
    let row = message::ActiveModel {
        wamid: Set(db_text(&done.outbound_wamid)),
        direction: Set(message::OUTBOUND.to_owned()),
        event_id: Set(None),
        phone_number_id: Set(job.phone_number_id.clone()),
        display_phone_number: Set(display),
        sender_key: Set(job.sender_key.clone()),
        wa_id: Set(wa_id),
        user_id: Set(user_id),
        contact_name: Set(String::new()),
        msg_type: Set("text".to_owned()),
        text_body: Set(Some(db_text(&done.reply_text))),
        timestamp: Set(now / 1000),
        context_message_id: Set(Some(job.message_wamid.clone())),
        in_reply_to: Set(Some(job.message_wamid.clone())),
        job_id: Set(Some(job.id)),
        content: Set(content.encode_to_vec()),
        raw_json: Set(String::new()),
        request_id: Set(job.request_id.clone()),
        created_at: Set(now),
        ..Default::default()
    };
    message::Entity::insert(row)
        .on_conflict(
            OnConflict::column(message::Column::Wamid)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    job::Entity::update_many()
        .col_expr(
            job::Column::OutboundWamid,
            Expr::value(db_text(&done.outbound_wamid)),
        )
        .filter(job::Column::Id.eq(job.id))
        .filter(job::Column::OutboundWamid.is_null())
        .exec(txn)
        .await?;
    Ok(())
}

/// What a nack did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Back to pending, due after the delay.
    Scheduled,
    /// Out of attempts: dead-lettered.
    Dead(JobRef),
    /// The lease was not current; nothing changed.
    Stale,
}

/// Applies a nack: retry after `delay_ms`, or dead-letter when attempts are used up.
pub(crate) async fn retry_later(
    db: &DatabaseConnection,
    id: i64,
    token: &str,
    delay_ms: i64,
    error: &str,
    maybe_sent: bool,
    max_attempts: u32,
) -> Result<Retry> {
    let Some(job) = job::Entity::find_by_id(id).one(db).await? else {
        return Ok(Retry::Stale);
    };
    let dead = i64::from(job.attempts) >= i64::from(max_attempts);
    let mut update = job::Entity::update_many()
        .col_expr(
            job::Column::State,
            Expr::value(if dead { job::DEAD } else { job::PENDING }),
        )
        .col_expr(
            job::Column::AvailableAt,
            Expr::value(now_ms() + delay_ms.max(0)),
        )
        .col_expr(job::Column::LastError, Expr::value(db_text(error)))
        .col_expr(job::Column::QueuedAt, Expr::value(Option::<i64>::None))
        .col_expr(job::Column::LeaseToken, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseUntil, Expr::value(Option::<i64>::None));
    if !maybe_sent {
        // Graph answered with an error: nothing went out, the next attempt may send.
        update = update.col_expr(job::Column::SendIntentAt, Expr::value(Option::<i64>::None));
    }
    Ok(match if_leased(db, id, token, update).await? {
        false => Retry::Stale,
        true if dead => Retry::Dead(JobRef {
            id: job.id,
            wamid: job.message_wamid,
        }),
        true => Retry::Scheduled,
    })
}

/// Hands back leases of a worker that went away: due now, back in the outbox.
/// The attempt is not refunded (a crash may have been caused by the job).
pub(crate) async fn release(
    db: &DatabaseConnection,
    leases: &[(i64, String)],
) -> Result<Vec<JobRef>> {
    let mut released = Vec::new();
    for (id, token) in leases {
        let update = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(job::PENDING))
            .col_expr(job::Column::AvailableAt, Expr::value(now_ms()))
            .col_expr(job::Column::QueuedAt, Expr::value(Option::<i64>::None))
            .col_expr(job::Column::LeaseToken, Expr::value(Option::<String>::None))
            .col_expr(job::Column::LeaseUntil, Expr::value(Option::<i64>::None));
        if if_leased(db, *id, token, update).await?
            && let Some(j) = job::Entity::find_by_id(*id).one(db).await?
        {
            released.push(JobRef {
                id: j.id,
                wamid: j.message_wamid,
            });
        }
    }
    Ok(released)
}

/// The next job of `job`'s conversation still waiting, if any.
pub(crate) async fn next_in_conversation(
    db: &DatabaseConnection,
    id: i64,
) -> Result<Option<JobRef>> {
    let Some(job) = job::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let next: Option<(i64, String)> = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::MessageWamid])
        .filter(job::Column::PhoneNumberId.eq(job.phone_number_id))
        .filter(job::Column::SenderKey.eq(job.sender_key))
        .filter(job::Column::State.eq(job::PENDING))
        .order_by_asc(job::Column::Id)
        .into_tuple()
        .one(db)
        .await?;
    Ok(next.map(|(id, wamid)| JobRef { id, wamid }))
}

/// Dead (or failed) jobs back to pending with a fresh attempt budget.
pub(crate) async fn revive(db: &DatabaseConnection, id: i64) -> Result<Option<JobRef>> {
    let res = job::Entity::update_many()
        .col_expr(job::Column::State, Expr::value(job::PENDING))
        .col_expr(job::Column::Attempts, Expr::value(0))
        .col_expr(job::Column::AvailableAt, Expr::value(now_ms()))
        .col_expr(job::Column::QueuedAt, Expr::value(Option::<i64>::None))
        .col_expr(job::Column::SendIntentAt, Expr::value(Option::<i64>::None))
        .col_expr(job::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::State.is_in([job::DEAD, job::FAILED]))
        .filter(job::Column::OutboundWamid.is_null())
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    Ok(job::Entity::find_by_id(id).one(db).await?.map(|j| JobRef {
        id: j.id,
        wamid: j.message_wamid,
    }))
}

/// Dead-lettered jobs, newest first.
pub(crate) async fn dead_jobs(db: &DatabaseConnection, limit: u64) -> Result<Vec<job::Model>> {
    Ok(job::Entity::find()
        .filter(job::Column::State.eq(job::DEAD))
        .order_by_desc(job::Column::UpdatedAt)
        .limit(limit)
        .all(db)
        .await?)
}
