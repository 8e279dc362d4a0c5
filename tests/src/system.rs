//! Starting the real services in-process: ingest-svc, then a gateway in front of it.

use std::net::SocketAddr;
use std::time::Duration;

use proto::ingest::ingest_service_client::IngestServiceClient;
use proto::tonic::transport::Channel;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{APP_SECRET, TestDb, VERIFY_TOKEN, init_tracing, sign};

/// A running ingest-svc with its own database and Redis prefix.
#[derive(Debug)]
pub struct TestIngest {
    /// Where its gRPC server listens.
    pub addr: SocketAddr,
    /// Its database (dropped with the test).
    pub db: TestDb,
    /// Every Redis key it writes starts with this.
    pub redis_prefix: String,
    /// The settings it was started with (to restart it on the same address).
    pub settings: ingest_svc::config::Settings,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl TestIngest {
    /// Settings for a test ingest-svc on `db` with a fresh Redis prefix.
    pub fn settings_for(db: &TestDb) -> ingest_svc::config::Settings {
        let mut s = ingest_svc::config::Settings::from_lookup(|_| None).expect("defaults");
        s.addr = "127.0.0.1:0".parse().expect("addr");
        s.database_url = db.url.clone();
        s.redis_url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        s.redis_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        s.relay_interval = Duration::from_millis(200);
        s
    }

    /// Starts ingest-svc on a new PostgreSQL database.
    pub async fn start() -> Self {
        Self::start_with(TestDb::postgres().await, |_| {}).await
    }

    /// Starts ingest-svc on `db`, after `customise` edits its settings.
    pub async fn start_with(
        db: TestDb,
        customise: impl FnOnce(&mut ingest_svc::config::Settings),
    ) -> Self {
        init_tracing();
        let mut settings = Self::settings_for(&db);
        customise(&mut settings);
        let app = ingest_svc::startup::Application::build(settings.clone())
            .await
            .expect("ingest-svc builds");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let task = spawn_ingest(app, stop.clone());
        let redis_prefix = settings.redis_prefix.clone();
        settings.addr = addr;
        Self {
            addr,
            db,
            redis_prefix,
            settings,
            stop,
            task: Some(task),
        }
    }

    /// `http://addr` for gRPC clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A gRPC client for the ingest API.
    pub async fn client(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::connect(self.url())
            .await
            .expect("connect to ingest-svc")
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Starts it again on the same address, database and Redis prefix.
    pub async fn restart(&mut self) {
        self.stop().await;
        let app = ingest_svc::startup::Application::build(self.settings.clone())
            .await
            .expect("ingest-svc rebuilds on its old address");
        self.stop = CancellationToken::new();
        self.task = Some(spawn_ingest(app, self.stop.clone()));
    }

    /// Current counters.
    pub async fn stats(&self) -> proto::ingest::GetStatsResponse {
        self.client()
            .await
            .get_stats(proto::ingest::GetStatsRequest {})
            .await
            .expect("GetStats")
            .into_inner()
    }

    /// Length of the Redis job stream.
    pub async fn stream_len(&self) -> i64 {
        use fred::prelude::*;
        let config = Config::from_url(&self.settings.redis_url).expect("redis url");
        let client = Client::new(config, None, None, None);
        client.init().await.expect("connect to Redis");
        let len: i64 = client
            .xlen(format!("{}jobs", self.redis_prefix))
            .await
            .expect("XLEN");
        let _ = client.quit().await;
        len
    }
}

fn spawn_ingest(app: ingest_svc::startup::Application, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        app.run_until(async move { stop.cancelled().await })
            .await
            .expect("ingest-svc runs");
    })
}

impl Drop for TestIngest {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// An HTTP client.
    pub http: reqwest::Client,
    stop: CancellationToken,
}

impl TestGateway {
    /// Test gateway settings pointing at `ingest_url`.
    pub fn settings(ingest_url: &str) -> gateway::config::Settings {
        let mut s = gateway::config::Settings::from_lookup(|name| match name {
            "WHATSAPP_APP_SECRET" => Some(APP_SECRET.to_owned()),
            "WHATSAPP_VERIFY_TOKEN" => Some(VERIFY_TOKEN.to_owned()),
            _ => None,
        })
        .expect("gateway defaults");
        s.addr = "127.0.0.1:0".parse().expect("addr");
        s.ingest_url = ingest_url.to_owned();
        s.ingest_timeout = Duration::from_secs(5);
        s
    }

    /// Starts a gateway in front of `ingest_url`, after `customise` edits its settings.
    pub async fn start_with(
        ingest_url: &str,
        customise: impl FnOnce(&mut gateway::config::Settings),
    ) -> Self {
        init_tracing();
        let mut settings = Self::settings(ingest_url);
        customise(&mut settings);
        let app = gateway::startup::Application::build(settings)
            .await
            .expect("gateway builds");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            app.run_until(async move { token.cancelled().await })
                .await
                .expect("gateway runs");
        });
        Self {
            addr,
            http: reqwest::Client::new(),
            stop,
        }
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` to the webhook, signed with the test app secret.
    pub async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        self.post_with_signature(body, Some(&sign(body))).await
    }

    /// POSTs `body` with the given signature header (or none).
    pub async fn post_with_signature(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.expect("gateway answers")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// ingest-svc and a gateway in front of it.
#[derive(Debug)]
pub struct TestSystem {
    /// The ingest service.
    pub ingest: TestIngest,
    /// The gateway.
    pub gateway: TestGateway,
}

impl TestSystem {
    /// Both services on a fresh PostgreSQL database.
    pub async fn start() -> Self {
        Self::on(TestDb::postgres().await).await
    }

    /// Both services on `db`.
    pub async fn on(db: TestDb) -> Self {
        Self::on_with(db, |_| {}).await
    }

    /// Both services on a fresh PostgreSQL database, after `customise` edits
    /// ingest-svc's settings (lease length, attempts, token…).
    pub async fn start_with(customise: impl FnOnce(&mut ingest_svc::config::Settings)) -> Self {
        Self::on_with(TestDb::postgres().await, customise).await
    }

    async fn on_with(
        db: TestDb,
        customise: impl FnOnce(&mut ingest_svc::config::Settings),
    ) -> Self {
        let ingest = TestIngest::start_with(db, customise).await;
        let gateway = TestGateway::start_with(&ingest.url(), |_| {}).await;
        Self { ingest, gateway }
    }

    /// POSTs `body`, signed, and asserts Meta gets its 200.
    pub async fn post_ok(&self, body: &[u8]) {
        let status = self.gateway.post_signed(body).await.status();
        assert_eq!(status, 200, "a signed webhook is acknowledged");
    }

    /// Waits (20 s at most) until the job of `wamid` is in `state`; returns the message.
    pub async fn until_job(&self, wamid: &str, state: &str) -> proto::ingest::MessageRecord {
        crate::eventually(
            &format!("job of {wamid} {state}"),
            Duration::from_secs(20),
            || async {
                let m = self.message(wamid).await;
                (m.job.as_ref().is_some_and(|j| j.state == state)).then_some(m)
            },
        )
        .await
    }

    /// Reads a message back through the gRPC API.
    pub async fn message(&self, wamid: &str) -> proto::ingest::MessageRecord {
        self.ingest
            .client()
            .await
            .get_message(proto::ingest::GetMessageRequest {
                wamid: wamid.to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("GetMessage {wamid}: {s}"))
            .into_inner()
            .message
            .expect("a message record")
    }
}

/// A running worker-svc.
#[derive(Debug)]
pub struct TestWorker {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl TestWorker {
    /// Worker settings for `ingest_url` answering through `graph_base_url` with a token.
    pub fn settings(ingest_url: &str, graph_base_url: &str) -> worker_svc::config::Settings {
        let mut s = worker_svc::config::Settings::from_lookup(|_| None).expect("worker defaults");
        s.ingest_url = ingest_url.to_owned();
        s.api_base_url = graph_base_url.to_owned();
        s.access_token = Some(secret("test-access-token"));
        s.worker_id = format!(
            "test-worker-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        s.capacity = 4;
        s.retry_base = Duration::from_millis(100);
        s.graph_timeout = Duration::from_secs(5);
        s.shutdown_grace = Duration::from_secs(5);
        s
    }

    /// Starts a worker after `customise` edits its settings.
    pub async fn start_with(
        ingest_url: &str,
        graph_base_url: &str,
        customise: impl FnOnce(&mut worker_svc::config::Settings),
    ) -> Self {
        init_tracing();
        let mut settings = Self::settings(ingest_url, graph_base_url);
        customise(&mut settings);
        let app = worker_svc::startup::Application::build(settings)
            .await
            .expect("worker builds");
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            app.run_until(async move { token.cancelled().await })
                .await
                .expect("worker runs");
        });
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Graceful stop (what SIGTERM does): waits until the worker has exited.
    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("worker exits cleanly");
        }
    }

    /// Kills the worker mid-flight: its task is aborted, nothing is handed back.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Keeps `SecretString` in the public signature set stable for helpers.
pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}
