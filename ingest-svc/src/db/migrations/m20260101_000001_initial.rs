//! Every table of the first release, including the jobs outbox. Column types are
//! chosen to mean the same on PostgreSQL and SQLite: `text`, `bigint` (times in Unix
//! ms), and `bytea`/`blob` for exact bytes (never JSON/JSONB, which would normalise).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// Tables in creation order (dropped in reverse).
const TABLES: [&str; 7] = [
    "webhook_events",
    "messages",
    "statuses",
    "webhook_errors",
    "other_events",
    "quarantined_items",
    "jobs",
];

fn table(name: &'static str) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(big_pk_auto("id"))
        .to_owned()
}

fn index(name: &'static str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table).if_not_exists();
    for col in cols {
        idx.col(*col);
    }
    idx.to_owned()
}

// async_trait's signature needs the elided lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            table("webhook_events")
                .col(text("request_id"))
                .col(big_integer("received_at"))
                .col(text("object"))
                .col(text("phone_number_ids"))
                .col(blob("raw_body"))
                .col(big_integer("created_at"))
                .to_owned(),
            table("messages")
                .col(text_uniq("wamid"))
                .col(text("direction"))
                .col(big_integer_null("event_id"))
                .col(text("phone_number_id"))
                .col(text("display_phone_number"))
                .col(text("sender_key"))
                .col(text("wa_id"))
                .col(text("user_id"))
                .col(text("contact_name"))
                .col(text("msg_type"))
                .col(text_null("text_body"))
                .col(big_integer("timestamp"))
                .col(text_null("context_message_id"))
                .col(text_null("in_reply_to"))
                .col(big_integer_null("job_id"))
                .col(blob("content"))
                .col(text("raw_json"))
                .col(text("request_id"))
                .col(big_integer("created_at"))
                .to_owned(),
            table("statuses")
                .col(text("wamid"))
                .col(text("status"))
                .col(big_integer("event_id"))
                .col(text("phone_number_id"))
                .col(big_integer("timestamp"))
                .col(text("recipient_id"))
                .col(text("biz_opaque_callback_data"))
                .col(blob("content"))
                .col(text("raw_json"))
                .col(big_integer("created_at"))
                .to_owned(),
            table("webhook_errors")
                .col(big_integer("event_id"))
                .col(text("phone_number_id"))
                .col(big_integer("code"))
                .col(text("title"))
                .col(text("message"))
                .col(text("details"))
                .col(text("raw_json"))
                .col(big_integer("created_at"))
                .to_owned(),
            table("other_events")
                .col(big_integer("event_id"))
                .col(text("object"))
                .col(text("field"))
                .col(text("entry_id"))
                .col(big_integer("entry_time"))
                .col(text("raw_json"))
                .col(big_integer("created_at"))
                .to_owned(),
            table("quarantined_items")
                .col(big_integer("event_id"))
                .col(text("kind"))
                .col(text("reason"))
                .col(text("path"))
                .col(text("raw_json"))
                .col(big_integer("created_at"))
                .to_owned(),
            table("jobs")
                .col(text_uniq("message_wamid"))
                .col(text("request_id"))
                .col(text("phone_number_id"))
                .col(text("sender_key"))
                .col(text("state"))
                .col(integer("attempts"))
                .col(big_integer("available_at"))
                .col(text_null("lease_token"))
                .col(big_integer_null("lease_until"))
                .col(text_null("worker_id"))
                .col(big_integer_null("queued_at"))
                .col(text_null("last_error"))
                .col(text_null("outcome"))
                .col(big_integer_null("error_code"))
                .col(text_null("outbound_wamid"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
        ];
        for t in tables {
            manager.create_table(t).await?;
        }

        let indexes = [
            // The idempotency key of statuses: ON CONFLICT (wamid, status) DO NOTHING.
            index("ux_statuses_wamid_status", "statuses", &["wamid", "status"])
                .unique()
                .to_owned(),
            index(
                "ix_messages_conversation",
                "messages",
                &["phone_number_id", "sender_key"],
            ),
            index("ix_messages_in_reply_to", "messages", &["in_reply_to"]),
            // Finding the rows this ingest call created.
            index("ix_messages_event_id", "messages", &["event_id"]),
            // The outbox relay: pending jobs never queued.
            index("ix_jobs_state_queued_at", "jobs", &["state", "queued_at"]),
            // Jobs of one conversation run in arrival order.
            index(
                "ix_jobs_conversation",
                "jobs",
                &["phone_number_id", "sender_key", "id"],
            ),
        ];
        for i in indexes {
            manager.create_index(i).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in TABLES.iter().rev() {
            manager
                .drop_table(Table::drop().table(*name).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
