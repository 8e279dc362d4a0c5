//! The read side: messages with their statuses, job and replies; counters.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{
    job, message, other_event, quarantined_item, status, webhook_error, webhook_event,
};
use crate::error::Result;

/// A message row and everything attached to it.
#[derive(Debug)]
pub(crate) struct MessageView {
    pub(crate) message: message::Model,
    pub(crate) statuses: Vec<status::Model>,
    pub(crate) job: Option<job::Model>,
    /// wamids of outbound messages replying to this one, oldest first.
    pub(crate) replies: Vec<String>,
}

/// ListMessages filters (empty = any).
#[derive(Debug, Default)]
pub(crate) struct MessageFilter {
    pub(crate) phone_number_id: String,
    pub(crate) sender_key: String,
    pub(crate) direction: String,
}

/// GetStats counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) webhook_events: u64,
    pub(crate) messages: u64,
    pub(crate) statuses: u64,
    pub(crate) webhook_errors: u64,
    pub(crate) other_events: u64,
    pub(crate) quarantined: u64,
    pub(crate) outbound_messages: u64,
    /// Every state of `job::STATES`, 0 when none.
    pub(crate) jobs: BTreeMap<String, u64>,
}

/// One stored webhook event (with its raw bytes), or `None`.
pub(crate) async fn webhook_event(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<webhook_event::Model>> {
    Ok(webhook_event::Entity::find_by_id(id).one(db).await?)
}

/// One message by wamid, or `None`.
pub(crate) async fn message(db: &impl ConnectionTrait, wamid: &str) -> Result<Option<MessageView>> {
    let Some(row) = message::Entity::find()
        .filter(message::Column::Wamid.eq(wamid))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(attach(db, vec![row]).await?.pop())
}

/// A page of messages, newest first, with ids below `before` (a cursor); returns the
/// page and whether more rows follow.
pub(crate) async fn messages(
    db: &impl ConnectionTrait,
    filter: &MessageFilter,
    before: Option<i64>,
    page_size: u64,
) -> Result<(Vec<MessageView>, bool)> {
    let mut query = message::Entity::find();
    if !filter.phone_number_id.is_empty() {
        query = query.filter(message::Column::PhoneNumberId.eq(filter.phone_number_id.as_str()));
    }
    if !filter.sender_key.is_empty() {
        query = query.filter(message::Column::SenderKey.eq(filter.sender_key.as_str()));
    }
    if !filter.direction.is_empty() {
        query = query.filter(message::Column::Direction.eq(filter.direction.as_str()));
    }
    if let Some(before) = before {
        query = query.filter(message::Column::Id.lt(before));
    }
    let mut rows = query
        .order_by_desc(message::Column::Id)
        .limit(page_size + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > page_size;
    rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    Ok((attach(db, rows).await?, more))
}

/// Loads statuses, jobs and replies for a set of messages in three queries.
async fn attach(db: &impl ConnectionTrait, rows: Vec<message::Model>) -> Result<Vec<MessageView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let wamids: Vec<String> = rows.iter().map(|m| m.wamid.clone()).collect();

    let mut statuses: HashMap<String, Vec<status::Model>> = HashMap::new();
    for s in status::Entity::find()
        .filter(status::Column::Wamid.is_in(wamids.iter().cloned()))
        .order_by_asc(status::Column::Id)
        .all(db)
        .await?
    {
        statuses.entry(s.wamid.clone()).or_default().push(s);
    }

    let mut jobs: HashMap<String, job::Model> = job::Entity::find()
        .filter(job::Column::MessageWamid.is_in(wamids.iter().cloned()))
        .all(db)
        .await?
        .into_iter()
        .map(|j| (j.message_wamid.clone(), j))
        .collect();

    let mut replies: HashMap<String, Vec<String>> = HashMap::new();
    let reply_rows: Vec<(String, String)> = message::Entity::find()
        .select_only()
        .columns([message::Column::InReplyTo, message::Column::Wamid])
        .filter(message::Column::InReplyTo.is_in(wamids.iter().cloned()))
        .order_by_asc(message::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    for (parent, wamid) in reply_rows {
        replies.entry(parent).or_default().push(wamid);
    }

    Ok(rows
        .into_iter()
        .map(|m| MessageView {
            statuses: statuses.remove(&m.wamid).unwrap_or_default(),
            job: jobs.remove(&m.wamid),
            replies: replies.remove(&m.wamid).unwrap_or_default(),
            message: m,
        })
        .collect())
}

/// Counters for GetStats.
pub(crate) async fn stats(db: &impl ConnectionTrait) -> Result<Stats> {
    let mut jobs: BTreeMap<String, u64> =
        job::STATES.iter().map(|s| ((*s).to_owned(), 0)).collect();
    let by_state: Vec<(String, i64)> = job::Entity::find()
        .select_only()
        .column(job::Column::State)
        .column_as(job::Column::Id.count(), "n")
        .group_by(job::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    for (state, n) in by_state {
        *jobs.entry(state).or_default() += u64::try_from(n).unwrap_or(0);
    }

    Ok(Stats {
        webhook_events: webhook_event::Entity::find().count(db).await?,
        messages: message::Entity::find()
            .filter(message::Column::Direction.eq(message::INBOUND))
            .count(db)
            .await?,
        statuses: status::Entity::find().count(db).await?,
        webhook_errors: webhook_error::Entity::find().count(db).await?,
        other_events: other_event::Entity::find().count(db).await?,
        quarantined: quarantined_item::Entity::find().count(db).await?,
        outbound_messages: message::Entity::find()
            .filter(message::Column::Direction.eq(message::OUTBOUND))
            .count(db)
            .await?,
        jobs,
    })
}
