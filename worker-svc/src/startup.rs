//! Building and running worker-svc.

use std::future::Future;
use std::sync::Arc;

use proto::tonic::transport::Endpoint;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::consumer::Worker;
use crate::whatsapp::GraphClient;

/// A configured worker, ready to run.
#[derive(Debug)]
pub struct Application {
    worker: Arc<Worker>,
}

impl Application {
    /// Validates the settings; the channel to ingest-svc connects lazily, so
    /// the worker starts (and keeps retrying) while ingest-svc is down.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(settings.ingest_url.clone())?
            .http2_keep_alive_interval(std::time::Duration::from_secs(10))
            .keep_alive_timeout(std::time::Duration::from_secs(5))
            .connect_lazy();
        let graph = settings
            .access_token
            .clone()
            .map(|token| GraphClient::new(&settings.api_base_url, token, settings.graph_timeout));
        if graph.is_none() {
            tracing::warn!(
                "WHATSAPP_ACCESS_TOKEN is not set: dry-run, replies are recorded and logged, not sent"
            );
        }
        Ok(Self {
            worker: Arc::new(Worker {
                settings,
                graph,
                channel,
            }),
        })
    }

    /// Runs until `shutdown` resolves, then drains in-flight jobs (bounded by the grace period).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let token = CancellationToken::new();
        let trigger = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });
        tracing::info!(ingest = %self.worker.settings.ingest_url, "worker-svc started");
        self.worker.run(token).await;
        tracing::info!("worker-svc stopped");
        Ok(())
    }

    /// Runs until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
