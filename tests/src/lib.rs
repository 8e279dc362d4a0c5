//! Test harness for cross-service flows: real gateway and ingest-svc started
//! in-process on port 0, each test with its own PostgreSQL database (or SQLite
//! file) and its own Redis key prefix, so tests run in parallel.

pub mod db;
pub mod graph;
pub mod system;

use std::path::PathBuf;
use std::time::Duration;

pub use db::TestDb;
pub use graph::{Answer, FakeGraph};
pub use system::{TestGateway, TestIngest, TestSystem, TestWorker};

/// The app secret every test gateway is configured with.
pub const APP_SECRET: &str = "test-app-secret";
/// The verify token every test gateway is configured with.
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// Initialises logging once; silent unless `TEST_LOG=1`.
pub fn init_tracing() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_test_writer()
            .try_init();
    }
}

/// `sha256=<hex>` HMAC of `body` under `secret`, as Meta sends it.
pub fn sign_with(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Signs with the test app secret.
pub fn sign(body: &[u8]) -> String {
    sign_with(APP_SECRET, body)
}

/// The workspace root (where `fixtures/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The bytes of `fixtures/webhooks/<name>`, exactly as on disk.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = workspace_root().join("fixtures/webhooks").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Polls `check` until it yields `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
