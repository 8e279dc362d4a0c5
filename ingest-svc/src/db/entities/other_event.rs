//! `other_events`: changes whose field is not `messages`, kept as they came.

use sea_orm::entity::prelude::*;

/// A non-message change.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "other_events")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Webhook event that carried it.
    pub event_id: i64,
    /// The envelope's `object`.
    pub object: String,
    /// The change's `field`.
    pub field: String,
    /// `entry.id`.
    pub entry_id: String,
    /// `entry.time` (Unix seconds, 0 when absent).
    pub entry_time: i64,
    /// The change's JSON.
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
