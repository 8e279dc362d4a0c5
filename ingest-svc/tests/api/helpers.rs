//! `spawn_app()` and friends: a real ingest-svc on 127.0.0.1:0 with its own
//! PostgreSQL database (or SQLite file) and its own Redis key prefix.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use fred::prelude::{Client as RedisClient, ClientLike, Config as RedisConfig, KeysInterface};
use fred::types::Builder as RedisBuilder;
use ingest_svc::db::entities::job;
use ingest_svc::{Application, Settings, db};
use proto::ingest::ingest_service_client::IngestServiceClient;
use proto::ingest::{
    Business, InboundMessage, IngestWebhookRequest, MessageStatus, Sender, Text,
    inbound_message::Content,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Default maintenance database; override with TEST_DATABASE_URL.
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Default Redis; override with TEST_REDIS_URL.
const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
/// Business number used by the fixtures.
pub(crate) const PHONE_NUMBER_ID: &str = "106540352242922";

/// Where a test's data lives, so teardown can remove it.
enum Store {
    Postgres { admin_url: String, name: String },
    Sqlite { path: std::path::PathBuf },
}

/// A running ingest-svc plus handles to its database and Redis.
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) client: IngestServiceClient<Channel>,
    /// Our own pool on the app's database, for assertions.
    pub(crate) db: DatabaseConnection,
    pub(crate) redis: RedisClient,
    pub(crate) redis_prefix: String,
    store: Store,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

pub(crate) fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS.to_owned())
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned())
}

/// `postgres://u@h:p/db?x` with the database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

fn test_settings() -> Settings {
    let mut settings = Settings::from_lookup(|_| None).expect("default settings");
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.redis_url = redis_url();
    settings.redis_prefix = format!("test:{}:", uuid::Uuid::new_v4());
    settings.relay_interval = Duration::from_millis(100);
    settings
}

/// ingest-svc on a fresh PostgreSQL database.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// ingest-svc on a fresh PostgreSQL database, settings edited by `customise`.
pub(crate) async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let admin = admin_url();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let conn = db::connect(&admin, 1).await.expect("connect to PostgreSQL");
    conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    conn.close().await.ok();

    let mut settings = test_settings();
    settings.database_url = with_database(&admin, &name);
    customise(&mut settings);
    start(
        settings,
        Store::Postgres {
            admin_url: admin,
            name,
        },
    )
    .await
}

/// ingest-svc on a fresh SQLite file in a new temporary directory.
pub(crate) async fn spawn_sqlite_app() -> TestApp {
    let dir = std::env::temp_dir().join(format!("ingest-test-{}", uuid::Uuid::new_v4()));
    let path = dir.join("nested").join("ingest.db");
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}?mode=rwc", path.display());
    start(settings, Store::Sqlite { path: dir }).await
}

async fn start(settings: Settings, store: Store) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        ingest_svc::telemetry::init();
    }
    let redis_prefix = settings.redis_prefix.clone();
    let database_url = settings.database_url.clone();
    let app = Application::build(settings).await.expect("build app");
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone().cancelled_owned()));

    // The listener is bound already: connecting needs no retry loop.
    let client = IngestServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect client");
    let db = db::connect(&database_url, 2).await.expect("test db pool");
    let redis = RedisBuilder::from_config(RedisConfig::from_url(&redis_url()).unwrap())
        .build()
        .unwrap();
    redis.init().await.expect("test Redis client");
    TestApp {
        addr,
        client,
        db,
        redis,
        redis_prefix,
        store,
        shutdown,
        server,
    }
}

impl TestApp {
    /// The job stream key.
    pub(crate) fn stream_key(&self) -> String {
        format!("{}jobs", self.redis_prefix)
    }

    /// XLEN of the job stream (0 when absent).
    pub(crate) async fn stream_len(&self) -> u64 {
        use fred::interfaces::StreamsInterface;
        self.redis.xlen(self.stream_key()).await.unwrap()
    }

    /// Waits until the stream holds `n` entries and every job is marked queued: the
    /// publish runs in the background after the RPC has answered.
    pub(crate) async fn until_published(&self, n: u64) {
        eventually(
            Duration::from_secs(10),
            &format!("{n} job(s) on the stream"),
            || async {
                let queued = self.jobs().await.iter().all(|j| j.queued_at.is_some());
                (queued && self.stream_len().await == n).then_some(())
            },
        )
        .await;
    }

    /// Calls IngestWebhook and expects success.
    pub(crate) async fn ingest(
        &mut self,
        req: proto::ingest::IngestWebhookRequest,
    ) -> proto::ingest::IngestWebhookResponse {
        self.client
            .ingest_webhook(req)
            .await
            .expect("IngestWebhook")
            .into_inner()
    }

    /// Calls GetStats.
    pub(crate) async fn stats(&mut self) -> proto::ingest::GetStatsResponse {
        let req = proto::ingest::GetStatsRequest {};
        self.client
            .get_stats(req)
            .await
            .expect("GetStats")
            .into_inner()
    }

    /// Every job row, by id.
    pub(crate) async fn jobs(&self) -> Vec<job::Model> {
        use sea_orm::QueryOrder;
        job::Entity::find()
            .order_by_asc(job::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// Stops the server (waiting for it), then drops the database / file and Redis keys.
    pub(crate) async fn teardown(self) {
        let stream_key = self.stream_key();
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(15), self.server)
            .await
            .expect("server stops within the drain timeout")
            .expect("server task");
        result.expect("server exits cleanly");
        let _: i64 = self.redis.del(stream_key).await.unwrap_or(0);
        let _ = self.redis.quit().await;
        self.db.close().await.ok();
        match self.store {
            Store::Postgres { admin_url, name } => {
                let conn = db::connect(&admin_url, 1).await.unwrap();
                conn.execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                ))
                .await
                .unwrap();
                conn.close().await.ok();
            }
            Store::Sqlite { path } => {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
}

/// Polls `check` every 20 ms until it yields `Some`, failing after `deadline`.
pub(crate) async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------ fixtures

/// A typed inbound text message as the gateway would send it.
pub(crate) fn text_message(wamid: &str, from: &str, body: &str) -> InboundMessage {
    InboundMessage {
        wamid: wamid.to_owned(),
        business: Some(Business {
            phone_number_id: PHONE_NUMBER_ID.to_owned(),
            display_phone_number: "15550001111".to_owned(),
            waba_id: "102290129340398".to_owned(),
        }),
        sender: Some(Sender {
            key: from.to_owned(),
            wa_id: from.to_owned(),
            name: "Kerry Fisher".to_owned(),
            ..Default::default()
        }),
        timestamp: 1_749_416_383,
        r#type: "text".to_owned(),
        raw_json: format!(r#"{{"from":"{from}","id":"{wamid}","type":"text"}}"#),
        content: Some(Content::Text(Text {
            body: body.to_owned(),
        })),
        ..Default::default()
    }
}

/// A status of an outbound message.
pub(crate) fn status(wamid: &str, name: &str, timestamp: i64) -> MessageStatus {
    MessageStatus {
        wamid: wamid.to_owned(),
        status: name.to_owned(),
        timestamp,
        recipient_id: "16505551234".to_owned(),
        business: Some(Business {
            phone_number_id: PHONE_NUMBER_ID.to_owned(),
            ..Default::default()
        }),
        raw_json: format!(r#"{{"id":"{wamid}","status":"{name}"}}"#),
        ..Default::default()
    }
}

/// A webhook request carrying `messages` and `statuses`.
pub(crate) fn webhook(
    messages: Vec<InboundMessage>,
    statuses: Vec<MessageStatus>,
) -> IngestWebhookRequest {
    IngestWebhookRequest {
        raw_body: br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec(),
        request_id: uuid::Uuid::new_v4().to_string(),
        received_at_ms: 1_749_416_384_000,
        object: "whatsapp_business_account".to_owned(),
        phone_number_ids: vec![PHONE_NUMBER_ID.to_owned()],
        messages,
        statuses,
        ..Default::default()
    }
}
