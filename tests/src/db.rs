//! One fresh database per test: a new PostgreSQL database, or a SQLite file.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// Base URL of the PostgreSQL server tests create databases on.
pub fn postgres_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database owned by one test; PostgreSQL databases are dropped afterwards.
#[derive(Debug)]
pub struct TestDb {
    /// The `DATABASE_URL` for ingest-svc.
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempdir::Dir>,
}

impl TestDb {
    /// Creates a new, empty PostgreSQL database.
    pub async fn postgres() -> Self {
        let base = postgres_base_url();
        let name = format!("wa_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&base)
            .await
            .expect("connect to PostgreSQL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let (prefix, _) = base.rsplit_once('/').expect("URL has a database path");
        Self {
            url: format!("{prefix}/{name}"),
            pg_name: Some(name),
            _dir: None,
        }
    }

    /// Creates a SQLite database file in a fresh temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempdir::Dir::new();
        let url = format!("sqlite://{}/ingest.db?mode=rwc", dir.path.display());
        Self {
            url,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// A direct connection, for assertions on what was stored.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Runs a `SELECT COUNT(*)` style query returning one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        let conn = self.connect().await;
        let backend = conn.get_database_backend();
        let row = conn
            .query_one_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .expect("count query")
            .expect("one row");
        let n: i64 = row.try_get_by_index(0).expect("integer column");
        conn.close().await.ok();
        n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop on a separate thread: Drop cannot await, and the test's runtime may be gone.
        let base = postgres_base_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(&base).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = admin.execute_unprepared(&sql).await;
                        let _ = admin.close().await;
                    }
                });
            }
        })
        .join();
    }
}

mod tempdir {
    use std::path::PathBuf;

    /// A temporary directory removed on drop.
    #[derive(Debug)]
    pub(crate) struct Dir {
        pub(crate) path: PathBuf,
    }

    impl Dir {
        pub(crate) fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("wa-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
