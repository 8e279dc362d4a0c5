//! Storage: connection, migrations, entities and the queries the RPCs need.
//! PostgreSQL and SQLite are both supported; `DATABASE_URL` picks.

use std::path::Path;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

pub(crate) mod batch;
pub mod entities;
pub(crate) mod leases;
pub mod migrations;
pub(crate) mod outbox;
pub(crate) mod read;
pub(crate) mod repo;

pub use migrations::Migrator;

/// Rows per multi-row INSERT: ~20 columns × 200 rows stays far below both
/// PostgreSQL's 65 535 and SQLite's 32 766 bind-parameter limits.
pub(crate) const CHUNK: usize = 200;

/// Whether `url` points at SQLite.
pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Opens a pool. For SQLite the file's parent directory is created if missing and the
/// pool has exactly one connection: that serialises writers, so concurrent ingests
/// queue up in the pool instead of failing with `SQLITE_BUSY`.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let max = if is_sqlite(url) {
        create_sqlite_parent_dir(url)?;
        1
    } else {
        max_connections.max(1)
    };
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    if is_sqlite(url) && !url.contains(":memory:") {
        // Write-ahead log: one fsync per commit instead of rollback-journal churn,
        // still durable (synchronous stays FULL). Persists in the file.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Ok(db)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Connects and migrates: what start-up and `ingest-svc migrate` do.
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    let db = connect(url, max_connections).await?;
    migrate(&db).await?;
    Ok(db)
}

/// `sqlite://data/x.db?mode=rwc` → creates `data/`. In-memory databases need nothing.
fn create_sqlite_parent_dir(url: &str) -> Result<(), DbErr> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(":memory:") || path.starts_with("file::memory:") {
        return Ok(());
    }
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_parent_dir_is_created() {
        let dir = std::env::temp_dir().join(format!("ingest-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/sub/x.db?mode=rwc", dir.display());
        create_sqlite_parent_dir(&url).unwrap();
        assert!(dir.join("sub").is_dir());
        std::fs::remove_dir_all(dir).unwrap();
        create_sqlite_parent_dir("sqlite::memory:").unwrap();
    }
}
