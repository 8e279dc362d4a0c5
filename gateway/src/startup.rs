//! Building and running the HTTP server.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Settings;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::{health, metrics, webhook};

/// How long in-flight requests may take to finish after shutdown was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A built gateway: listener bound, routes assembled, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
}

impl Application {
    /// Does every fallible start-up step: builds the (lazy) ingest channel and
    /// binds the listener, so [`Application::local_addr`] is final and clients
    /// can connect as soon as this returns (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        if settings.insecure_skip_signature {
            tracing::warn!(
                "WHATSAPP_INSECURE_SKIP_SIGNATURE=true: webhook signatures are NOT checked; \
                 anyone can post fake webhooks. Never use this in production."
            );
        }
        let state = AppState::new(&settings)?;
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("GATEWAY_ADDR: cannot listen on {}", settings.addr))?;
        let local_addr = listener
            .local_addr()
            .context("cannot read the listener's address")?;
        Ok(Application {
            listener,
            local_addr,
            router: router(state),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for
    /// at most a few seconds.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let graceful = async move {
            shutdown.await;
            let _ = signalled_tx.send(());
        };
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(graceful)
            .into_future();
        let drain_deadline = async move {
            match signalled_rx.await {
                Ok(()) => tokio::time::sleep(DRAIN_TIMEOUT).await,
                // The server ended on its own; let it report why.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            result = server => result.context("HTTP server failed"),
            () = drain_deadline => {
                tracing::warn!(?DRAIN_TIMEOUT, "in-flight requests still running after the drain timeout; stopping");
                Ok(())
            }
        }
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// All routes with their layers and state.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(webhook::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { GatewayError::NotFound })
        .method_not_allowed_fallback(|| async { GatewayError::MethodNotAllowed })
        .layer(
            TraceLayer::new_for_http()
                // Path only: the handshake's query string carries the verify token.
                .make_span_with(|request: &Request<Body>| {
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = request.uri().path(),
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

#[cfg(test)]
mod tests;
