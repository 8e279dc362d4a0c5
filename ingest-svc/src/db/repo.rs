//! The write side: one transaction per webhook, idempotent on WhatsApp's own keys.

use std::collections::HashSet;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use super::batch::{IngestOutcome, JobRef, NewMessage, NewStatus, NewWebhook};

use super::entities::{
    job, message, other_event, quarantined_item, status, webhook_error, webhook_event,
};
use super::{CHUNK, leases, now_ms};
use crate::domain::db_text;
use crate::error::Result;

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Rows an insert reported as affected, as a response counter.
fn created_count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Stores a webhook in ONE transaction: the event, then insert-if-absent batches of
/// messages (unique wamid), statuses (unique wamid+status) and the items without a
/// WhatsApp id (unique dedupe key), and a pending job for every message this call
/// newly created that wants one. Every counter reports rows this call created.
///
/// Rows are sorted by their unique key before insertion so that concurrent calls with
/// overlapping items take row locks in the same order (no deadlocks on PostgreSQL).
pub(crate) async fn ingest(db: &DatabaseConnection, hook: NewWebhook) -> Result<IngestOutcome> {
    let now = now_ms();
    let request_id = db_text(&hook.request_id);
    let txn = db.begin().await?;

    // A replay reuses the stored event; its messages already carry that event id,
    // so the ones that existed before this call are remembered and not counted new.
    let (event_id, existed) = match hook.replay_of {
        Some(id) => (id, existing_wamids(&txn, &hook.messages).await?),
        None => {
            let event = webhook_event::ActiveModel {
                request_id: Set(request_id.clone()),
                received_at: Set(hook.received_at_ms),
                object: Set(db_text(&hook.object)),
                phone_number_ids: Set(db_text(&hook.phone_number_ids.join(","))),
                raw_body: Set(hook.raw_body),
                created_at: Set(now),
                ..Default::default()
            };
            let id = webhook_event::Entity::insert(event)
                .exec(&txn)
                .await?
                .last_insert_id;
            (id, HashSet::new())
        }
    };
    let mut out = IngestOutcome {
        event_id,
        ..Default::default()
    };

    // Messages: duplicates inside one request are fine (first one wins).
    let total_messages = hook.messages.len();
    let mut seen = HashSet::new();
    let mut messages: Vec<NewMessage> = hook
        .messages
        .into_iter()
        .filter(|m| seen.insert(db_text(&m.wamid)))
        .collect();
    messages.sort_by(|a, b| a.wamid.cmp(&b.wamid));
    for chunk in messages.chunks(CHUNK) {
        let rows = chunk
            .iter()
            .map(|m| message_row(m, event_id, &request_id, now));
        message::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(message::Column::Wamid)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    // The rows carry this call's event id, so "created by this call" is a plain
    // SELECT on both backends; a concurrent duplicate kept the other call's id.
    let created: HashSet<String> = message::Entity::find()
        .select_only()
        .column(message::Column::Wamid)
        .filter(message::Column::EventId.eq(event_id))
        .into_tuple::<String>()
        .all(&txn)
        .await?
        .into_iter()
        .filter(|w| !existed.contains(w))
        .collect();
    out.messages_created = count(created.len());
    out.messages_duplicate = count(total_messages - created.len());

    // Statuses.
    let total_statuses = hook.statuses.len();
    let mut statuses = hook.statuses;
    statuses.sort_by(|a, b| (&a.wamid, &a.status).cmp(&(&b.wamid, &b.status)));
    let mut statuses_created = 0;
    for chunk in statuses.chunks(CHUNK) {
        let rows = chunk.iter().map(|s| status_row(s, event_id, now));
        statuses_created += status::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([status::Column::Wamid, status::Column::Status])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    out.statuses_created = created_count(statuses_created);
    let replies: Vec<(String, String, String)> = statuses
        .iter()
        .filter(|s| leases::job_from_callback(&s.biz_opaque_callback_data).is_some())
        .map(|s| {
            (
                db_text(&s.wamid),
                s.biz_opaque_callback_data.clone(),
                db_text(&s.recipient_id),
            )
        })
        .collect();
    leases::link_reply_statuses(&txn, &replies).await?;
    out.statuses_duplicate = count(total_statuses).saturating_sub(out.statuses_created);

    // Items without a WhatsApp id: insert-if-absent on their dedupe key (body hash +
    // path), so a redelivered POST adds none of them again. Sorted by key, like the
    // statuses, so concurrent redeliveries lock rows in the same order.
    let mut errors = hook.errors;
    errors.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
    let mut errors_created = 0;
    for chunk in errors.chunks(CHUNK) {
        let rows = chunk.iter().map(|e| webhook_error::ActiveModel {
            event_id: Set(event_id),
            phone_number_id: Set(db_text(&e.phone_number_id)),
            code: Set(e.code),
            title: Set(db_text(&e.title)),
            message: Set(db_text(&e.message)),
            details: Set(db_text(&e.details)),
            raw_json: Set(db_text(&e.raw_json)),
            created_at: Set(now),
            dedupe_key: Set(Some(db_text(&e.dedupe_key))),
            ..Default::default()
        });
        errors_created += webhook_error::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(webhook_error::Column::DedupeKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    out.webhook_errors = created_count(errors_created);

    let mut other_events = hook.other_events;
    other_events.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
    let mut other_created = 0;
    for chunk in other_events.chunks(CHUNK) {
        let rows = chunk.iter().map(|e| other_event::ActiveModel {
            event_id: Set(event_id),
            object: Set(db_text(&e.object)),
            field: Set(db_text(&e.field)),
            entry_id: Set(db_text(&e.entry_id)),
            entry_time: Set(e.entry_time),
            raw_json: Set(db_text(&e.raw_json)),
            created_at: Set(now),
            dedupe_key: Set(Some(db_text(&e.dedupe_key))),
            ..Default::default()
        });
        other_created += other_event::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(other_event::Column::DedupeKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    out.other_events = created_count(other_created);

    let mut quarantined = hook.quarantined;
    quarantined.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
    let mut quarantined_created = 0;
    for chunk in quarantined.chunks(CHUNK) {
        let rows = chunk.iter().map(|q| quarantined_item::ActiveModel {
            event_id: Set(event_id),
            kind: Set(db_text(&q.kind)),
            reason: Set(db_text(&q.reason)),
            path: Set(db_text(&q.path)),
            raw_json: Set(db_text(&q.raw_json)),
            created_at: Set(now),
            dedupe_key: Set(Some(db_text(&q.dedupe_key))),
            ..Default::default()
        });
        quarantined_created += quarantined_item::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(quarantined_item::Column::DedupeKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    out.quarantined = created_count(quarantined_created);

    // Jobs: only for messages this call created (never for a duplicate).
    let wanting: Vec<&NewMessage> = messages
        .iter()
        .filter(|m| m.wants_job && created.contains(&db_text(&m.wamid)))
        .collect();
    for chunk in wanting.chunks(CHUNK) {
        let rows = chunk.iter().map(|m| job_row(m, &request_id, now));
        job::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(job::Column::MessageWamid)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        let wamids = chunk.iter().map(|m| db_text(&m.wamid));
        let jobs: Vec<(i64, String)> = job::Entity::find()
            .select_only()
            .columns([job::Column::Id, job::Column::MessageWamid])
            .filter(job::Column::MessageWamid.is_in(wamids))
            .filter(job::Column::QueuedAt.is_null())
            .into_tuple()
            .all(&txn)
            .await?;
        out.new_jobs
            .extend(jobs.into_iter().map(|(id, wamid)| JobRef { id, wamid }));
    }
    out.new_jobs.sort_by_key(|j| j.id);

    txn.commit().await?;
    Ok(out)
}

/// The wamids among `messages` that are already stored.
async fn existing_wamids(
    txn: &impl sea_orm::ConnectionTrait,
    messages: &[NewMessage],
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in messages.chunks(CHUNK) {
        let rows: Vec<String> = message::Entity::find()
            .select_only()
            .column(message::Column::Wamid)
            .filter(message::Column::Wamid.is_in(chunk.iter().map(|m| db_text(&m.wamid))))
            .into_tuple()
            .all(txn)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

fn message_row(m: &NewMessage, event_id: i64, request_id: &str, now: i64) -> message::ActiveModel {
    message::ActiveModel {
        wamid: Set(db_text(&m.wamid)),
        direction: Set(message::INBOUND.to_owned()),
        event_id: Set(Some(event_id)),
        phone_number_id: Set(db_text(&m.phone_number_id)),
        display_phone_number: Set(db_text(&m.display_phone_number)),
        sender_key: Set(db_text(&m.sender_key)),
        wa_id: Set(db_text(&m.wa_id)),
        user_id: Set(db_text(&m.user_id)),
        contact_name: Set(db_text(&m.contact_name)),
        msg_type: Set(db_text(&m.msg_type)),
        text_body: Set(m.text_body.as_deref().map(db_text)),
        timestamp: Set(m.timestamp),
        context_message_id: Set(m.context_message_id.as_deref().map(db_text)),
        in_reply_to: Set(None),
        job_id: Set(None),
        content: Set(m.content.clone()),
        raw_json: Set(db_text(&m.raw_json)),
        request_id: Set(request_id.to_owned()),
        created_at: Set(now),
        ..Default::default()
    }
}

fn status_row(s: &NewStatus, event_id: i64, now: i64) -> status::ActiveModel {
    status::ActiveModel {
        wamid: Set(db_text(&s.wamid)),
        status: Set(db_text(&s.status)),
        event_id: Set(event_id),
        phone_number_id: Set(db_text(&s.phone_number_id)),
        timestamp: Set(s.timestamp),
        recipient_id: Set(db_text(&s.recipient_id)),
        biz_opaque_callback_data: Set(db_text(&s.biz_opaque_callback_data)),
        content: Set(s.content.clone()),
        raw_json: Set(db_text(&s.raw_json)),
        created_at: Set(now),
        ..Default::default()
    }
}

fn job_row(m: &NewMessage, request_id: &str, now: i64) -> job::ActiveModel {
    job::ActiveModel {
        message_wamid: Set(db_text(&m.wamid)),
        request_id: Set(request_id.to_owned()),
        phone_number_id: Set(db_text(&m.phone_number_id)),
        sender_key: Set(db_text(&m.sender_key)),
        state: Set(job::PENDING.to_owned()),
        attempts: Set(0),
        available_at: Set(now),
        lease_token: Set(None),
        lease_until: Set(None),
        worker_id: Set(None),
        queued_at: Set(None),
        last_error: Set(None),
        outcome: Set(None),
        error_code: Set(None),
        outbound_wamid: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}
