//! Application lifecycle: `build` does every fallible step (database + migrations,
//! Redis client, bound listener); `run_until` serves until the shutdown future fires.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::config::Settings;
use crate::queue::JobQueue;
use crate::{db, grpc, relay};

/// How long in-flight calls get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long start-up waits for Redis before carrying on without it.
const REDIS_STARTUP_WAIT: Duration = Duration::from_millis(500);

/// A built, bound, not yet serving ingest-svc.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    db: DatabaseConnection,
    queue: JobQueue,
    settings: Settings,
}

impl Application {
    /// Connects the database and runs migrations, creates the Redis client (which
    /// connects in the background: Redis being down does not stop start-up), and binds
    /// the listener. When this returns the socket accepts connections.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let db = db::connect_and_migrate(&settings.database_url, settings.max_db_connections)
            .await
            .context("database: connect and migrate")?;

        let queue = JobQueue::connect(&settings.redis_url, &settings.redis_prefix)
            .context("REDIS_URL: cannot create the Redis client")?;
        if queue.wait_connected(REDIS_STARTUP_WAIT).await {
            if let Err(err) = relay::ensure_group(&db, &queue).await {
                tracing::warn!(error = %crate::error::report(&err), "cannot create the job consumer group yet");
            }
        } else {
            tracing::warn!("Redis not reachable at start-up; jobs stay in the outbox until it is");
        }

        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("INGEST_ADDR: cannot bind {}", settings.addr))?;
        let local_addr = listener.local_addr()?;
        Ok(Application {
            listener,
            local_addr,
            db,
            queue,
            settings,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The database pool (for tools and tests).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves until `shutdown` resolves, then drains in-flight calls (bounded), stops
    /// the relay and closes Redis and the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            db,
            queue,
            settings,
            ..
        } = self;
        // Cancelled first on shutdown: job streams hand their leases back before the
        // server drains, so in-flight jobs go to other workers at once.
        let streams_stop = CancellationToken::new();
        let policy = grpc::jobs::JobPolicy {
            lease: settings.job_lease,
            max_attempts: settings.max_attempts,
        };
        let (routes, health) = grpc::routes(
            db.clone(),
            queue.clone(),
            settings.api_token.clone(),
            policy,
            streams_stop.clone(),
        )
        .await?;

        let relay_stop = CancellationToken::new();
        let relay_task = tokio::spawn(relay::run(
            db.clone(),
            queue.clone(),
            settings.relay_interval,
            settings.max_attempts,
            relay_stop.clone(),
        ));

        let server_stop = CancellationToken::new();
        let serve = Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .trace_fn(request_span)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                server_stop.clone().cancelled_owned(),
            );
        tokio::pin!(serve);

        let result = tokio::select! {
            res = &mut serve => res.context("gRPC server failed"),
            () = shutdown => {
                tracing::info!("shutting down");
                health
                    .set_service_status(grpc::INGEST_SERVICE, tonic_health::ServingStatus::NotServing)
                    .await;
                streams_stop.cancel();
                server_stop.cancel();
                match tokio::time::timeout(DRAIN_TIMEOUT, &mut serve).await {
                    Ok(res) => res.context("gRPC server failed"),
                    Err(_) => {
                        tracing::warn!("drain timed out; dropping remaining calls");
                        Ok(())
                    }
                }
            }
        };

        relay_stop.cancel();
        let _ = relay_task.await;
        queue.quit().await;
        if let Err(err) = db.close().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
        result
    }

    /// [`run_until`](Self::run_until) Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// One span per call, carrying the path and the caller's `x-request-id`.
fn request_span(req: &http::Request<()>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| &s[..s.len().min(128)])
        .unwrap_or("");
    tracing::info_span!("grpc", path = %req.uri().path(), x_request_id = %request_id)
}

/// Resolves on Ctrl-C or (Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
