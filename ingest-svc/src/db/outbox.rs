//! The jobs outbox: due jobs not on the Redis stream yet, and the sweeps that put
//! jobs back into it (expired leases, entries Redis lost).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::batch::JobRef;
use super::entities::job;
use super::{CHUNK, now_ms};
use crate::error::Result;

/// Pending, due jobs that are not on the stream (the outbox: never published,
/// retried, handed back or lost by Redis), oldest first, created before
/// `created_before` (Unix ms) unless already tried once, so the relay leaves the
/// post-commit publish of brand-new jobs alone but retries promptly.
pub(crate) async fn unqueued_jobs(
    db: &impl ConnectionTrait,
    created_before: i64,
    limit: u64,
) -> Result<Vec<JobRef>> {
    let rows: Vec<(i64, String)> = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::MessageWamid])
        .filter(job::Column::State.eq(job::PENDING))
        .filter(job::Column::QueuedAt.is_null())
        .filter(
            Condition::any()
                .add(job::Column::CreatedAt.lte(created_before))
                .add(job::Column::Attempts.gt(0)),
        )
        .filter(job::Column::AvailableAt.lte(now_ms()))
        .order_by_asc(job::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, wamid)| JobRef { id, wamid })
        .collect())
}

/// Records that these jobs are on the stream.
pub(crate) async fn mark_queued(db: &impl ConnectionTrait, ids: &[i64]) -> Result<()> {
    let now = now_ms();
    for chunk in ids.chunks(CHUNK) {
        job::Entity::update_many()
            .col_expr(job::Column::QueuedAt, Expr::value(now))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.is_in(chunk.iter().copied()))
            .filter(job::Column::QueuedAt.is_null())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Expired leases: out of attempts → dead (returned, for the dead-letter stream);
/// otherwise back to pending in the outbox. Catches workers that vanished while
/// Redis lost their pending entries.
pub(crate) async fn sweep_expired(
    db: &DatabaseConnection,
    max_attempts: u32,
) -> Result<Vec<JobRef>> {
    let now = now_ms();
    let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
    let expired = || {
        job::Entity::update_many()
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .col_expr(job::Column::LeaseToken, Expr::value(Option::<String>::None))
            .col_expr(job::Column::LeaseUntil, Expr::value(Option::<i64>::None))
            .filter(job::Column::State.eq(job::LEASED))
            .filter(job::Column::LeaseUntil.lt(now))
    };
    let dying: Vec<(i64, String)> = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::MessageWamid])
        .filter(job::Column::State.eq(job::LEASED))
        .filter(job::Column::LeaseUntil.lt(now))
        .filter(job::Column::Attempts.gte(max))
        .into_tuple()
        .all(db)
        .await?;
    if !dying.is_empty() {
        expired()
            .col_expr(job::Column::State, Expr::value(job::DEAD))
            .col_expr(
                job::Column::LastError,
                Expr::value("lease expired on the last attempt"),
            )
            .filter(job::Column::Id.is_in(dying.iter().map(|(id, _)| *id)))
            .exec(db)
            .await?;
    }
    expired()
        .col_expr(job::Column::State, Expr::value(job::PENDING))
        .col_expr(job::Column::AvailableAt, Expr::value(now))
        .col_expr(job::Column::QueuedAt, Expr::value(Option::<i64>::None))
        .filter(job::Column::Attempts.lt(max))
        .exec(db)
        .await?;
    Ok(dying
        .into_iter()
        .map(|(id, wamid)| JobRef { id, wamid })
        .collect())
}

/// Pending, due jobs published longer than `older_than_ms` ago and still not
/// leased go back to the outbox: their stream entry was lost, or they waited
/// behind a job of their conversation that ended without waking them.
pub(crate) async fn requeue_stale(db: &DatabaseConnection, older_than_ms: i64) -> Result<u64> {
    let now = now_ms();
    let res = job::Entity::update_many()
        .col_expr(job::Column::QueuedAt, Expr::value(Option::<i64>::None))
        .filter(job::Column::State.eq(job::PENDING))
        .filter(job::Column::QueuedAt.lt(now - older_than_ms))
        .filter(job::Column::AvailableAt.lte(now))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Puts every pending job back in the outbox (Redis lost its stream).
pub(crate) async fn requeue_pending(db: &DatabaseConnection) -> Result<u64> {
    let res = job::Entity::update_many()
        .col_expr(job::Column::QueuedAt, Expr::value(Option::<i64>::None))
        .filter(job::Column::State.eq(job::PENDING))
        .filter(job::Column::QueuedAt.is_not_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
