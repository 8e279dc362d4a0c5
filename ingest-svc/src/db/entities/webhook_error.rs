//! `webhook_errors`: one row per `value.errors[]` element.

use sea_orm::entity::prelude::*;

/// A webhook-level error.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_errors")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Webhook event that carried it.
    pub event_id: i64,
    /// Business number.
    pub phone_number_id: String,
    /// Meta error code.
    pub code: i64,
    /// Error title.
    pub title: String,
    /// Error message.
    pub message: String,
    /// `error_data.details`.
    pub details: String,
    /// The element's JSON.
    #[sea_orm(column_type = "Text")]
    pub raw_json: String,
    /// Insert time (Unix ms).
    pub created_at: i64,
    /// Redelivery key: lowercase hex SHA-256 of the raw body + ":" + the item's
    /// path in the POST; unique. NULL on rows stored before it existed.
    #[sea_orm(unique, nullable)]
    pub dedupe_key: Option<String>,
}

/// No relations are declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
