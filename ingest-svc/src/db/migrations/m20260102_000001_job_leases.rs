//! What the worker stream adds to `jobs`: the send intent (so a redelivered job
//! knows a reply may already have gone out) and the reply text of dry-runs.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

// async_trait's signature needs the elided lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table("jobs")
                    .add_column(big_integer_null("send_intent_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("jobs")
                    .add_column(text_null("reply_text"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in ["reply_text", "send_intent_at"] {
            manager
                .alter_table(Table::alter().table("jobs").drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}
