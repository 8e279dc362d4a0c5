//! Schema migrations (run at start-up and by `ingest-svc migrate`).

use sea_orm_migration::prelude::*;

mod m20260101_000001_initial;
mod m20260102_000001_job_leases;
mod m20260103_000001_item_dedupe_keys;

/// The one migrator of ingest-svc.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_initial::Migration),
            Box::new(m20260102_000001_job_leases::Migration),
            Box::new(m20260103_000001_item_dedupe_keys::Migration),
        ]
    }
}
