//! `messages`: inbound messages (from webhooks) and outbound replies, unique on wamid.

use sea_orm::entity::prelude::*;

/// `direction` of a message Meta sent us.
pub const INBOUND: &str = "inbound";
/// `direction` of a reply we sent.
pub const OUTBOUND: &str = "outbound";

/// One WhatsApp message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    /// Row id; also the paging cursor (newest first).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// WhatsApp message id (`wamid…`), unique.
    #[sea_orm(unique)]
    pub wamid: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Webhook event that created it (inbound only).
    pub event_id: Option<i64>,
    /// Business number.
    pub phone_number_id: String,
    /// Business number as displayed.
    pub display_phone_number: String,
    /// Conversation key: `user_id` when present, else `wa_id`.
    pub sender_key: String,
    /// Sender's (or, outbound, recipient's) `wa_id`.
    pub wa_id: String,
    /// Business-scoped user id.
    pub user_id: String,
    /// `contacts[].profile.name`.
    pub contact_name: String,
    /// `type` as sent.
    pub msg_type: String,
    /// Text body, caption or reply title, when the type has one.
    pub text_body: Option<String>,
    /// WhatsApp timestamp (Unix seconds).
    pub timestamp: i64,
    /// Quoted message (`context.id`).
    pub context_message_id: Option<String>,
    /// Outbound only: the inbound wamid this replies to.
    pub in_reply_to: Option<String>,
    /// Outbound only: the job that sent it.
    pub job_id: Option<i64>,
    /// prost-encoded `whatsapp.ingest.v1.InboundMessage` (its `raw_json` left empty).
    #[sea_orm(column_type = "Blob")]
    pub content: Vec<u8>,
    /// The element's JSON.
    #[sea_orm(column_type = "Text")]
    pub raw_json: String,
    /// Request id that carried it.
    pub request_id: String,
    /// Insert time (Unix ms).
    pub created_at: i64,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
