//! `statuses`: delivery statuses of our outbound messages, unique on (wamid, status).

use sea_orm::entity::prelude::*;

/// One status of one message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "statuses")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// wamid of the outbound message.
    pub wamid: String,
    /// sent, delivered, read, played, failed, or a newer name.
    pub status: String,
    /// Webhook event that carried it.
    pub event_id: i64,
    /// Business number.
    pub phone_number_id: String,
    /// WhatsApp timestamp (Unix seconds).
    pub timestamp: i64,
    /// Recipient (`recipient_id`, else `recipient_user_id`).
    pub recipient_id: String,
    /// Echo of the string we set when sending.
    pub biz_opaque_callback_data: String,
    /// prost-encoded `whatsapp.ingest.v1.MessageStatus` (errors, pricing, conversation).
    #[sea_orm(column_type = "Blob")]
    pub content: Vec<u8>,
    /// The element's JSON.
    #[sea_orm(column_type = "Text")]
    pub raw_json: String,
    /// Insert time (Unix ms).
    pub created_at: i64,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
