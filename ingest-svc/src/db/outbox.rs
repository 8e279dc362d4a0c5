//! The jobs outbox: pending jobs that have not reached the Redis stream yet.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::batch::JobRef;
use super::entities::job;
use super::{CHUNK, now_ms};
use crate::error::Result;

/// Pending, due jobs that are not on the stream (the outbox: never published,
/// retried, handed back or lost by Redis), oldest first, created before
/// `created_before` (Unix ms) so the relay leaves in-flight publishes alone.
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
        .filter(job::Column::CreatedAt.lte(created_before))
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
