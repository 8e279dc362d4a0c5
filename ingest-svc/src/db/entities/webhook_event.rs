//! `webhook_events`: one row per webhook POST, with the raw bytes exactly as received.

use sea_orm::entity::prelude::*;

/// A stored webhook POST.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// Event id (referenced as `event_id` by every item).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Request id from the gateway.
    pub request_id: String,
    /// When the gateway received the body (Unix ms).
    pub received_at: i64,
    /// The envelope's `object`.
    pub object: String,
    /// Business phone_number_ids the POST carried, comma-joined.
    pub phone_number_ids: String,
    /// The POST body, byte for byte (BYTEA / BLOB, never JSON).
    #[sea_orm(column_type = "Blob")]
    pub raw_body: Vec<u8>,
    /// Insert time (Unix ms).
    pub created_at: i64,
}

/// No relations are declared; `event_id` columns are informational.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
