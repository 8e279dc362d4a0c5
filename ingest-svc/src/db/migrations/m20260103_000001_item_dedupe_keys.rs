//! Idempotent redelivery for items without a WhatsApp key: `webhook_errors`,
//! `other_events` and `quarantined_items` get a `dedupe_key` (lowercase hex
//! SHA-256 of the raw body + ":" + the item's path in the POST) with a unique
//! index, so a redelivered POST inserts them with ON CONFLICT DO NOTHING.
//! Rows stored before this migration keep a NULL key (NULLs never conflict).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// `(table, unique index)` pairs that get the key.
const TABLES: [(&str, &str); 3] = [
    ("webhook_errors", "ux_webhook_errors_dedupe_key"),
    ("other_events", "ux_other_events_dedupe_key"),
    ("quarantined_items", "ux_quarantined_items_dedupe_key"),
];

// async_trait's signature needs the elided lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index) in TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(text_null("dedupe_key"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(index)
                        .table(table)
                        .col("dedupe_key")
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index) in TABLES.iter().rev() {
            manager
                .drop_index(Index::drop().name(*index).table(*table).to_owned())
                .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table(*table)
                        .drop_column("dedupe_key")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
