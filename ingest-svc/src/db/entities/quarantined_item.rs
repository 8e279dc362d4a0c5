//! `quarantined_items`: items the gateway could not type, with their raw JSON.

use sea_orm::entity::prelude::*;

/// A quarantined item.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "quarantined_items")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Webhook event that carried it.
    pub event_id: i64,
    /// message, status, error, change, entry.
    pub kind: String,
    /// Why it could not be recorded.
    pub reason: String,
    /// Where it sat in the POST.
    pub path: String,
    /// The item's JSON.
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
