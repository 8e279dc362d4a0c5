//! Shared request state: the gRPC clients and the settings handlers need.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use proto::ingest::ingest_service_client::IngestServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

use crate::config::Settings;
use crate::metrics::Metrics;

/// Cheaply clonable handle given to every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    ingest: IngestServiceClient<Channel>,
    health: HealthClient<Channel>,
    /// `Bearer <INGEST_API_TOKEN>`, marked sensitive.
    authorization: Option<MetadataValue<Ascii>>,
    app_secrets: Vec<SecretString>,
    insecure_skip_signature: bool,
    verify_token: Option<SecretString>,
    ingest_timeout: Duration,
    body_limit: usize,
    metrics: Metrics,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[REDACTED]"),
            )
            .field("app_secrets", &self.app_secrets.len())
            .field("insecure_skip_signature", &self.insecure_skip_signature)
            .field(
                "verify_token",
                &self.verify_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("ingest_timeout", &self.ingest_timeout)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state. The channel to ingest-svc is lazy: nothing connects
    /// until the first call, so the gateway starts (and answers `/healthz`)
    /// while ingest-svc is still down. Must run inside a Tokio runtime.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(settings.ingest_url.clone())
            .with_context(|| format!("INGEST_URL: invalid endpoint {:?}", settings.ingest_url))?
            .connect_timeout(settings.ingest_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        let authorization = match &settings.api_token {
            None => None,
            Some(token) => {
                let mut value: MetadataValue<Ascii> = format!("Bearer {}", token.expose_secret())
                    .parse()
                    .context("INGEST_API_TOKEN: not a valid header value")?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                ingest: IngestServiceClient::new(channel.clone()),
                health: HealthClient::new(channel),
                authorization,
                app_secrets: settings.app_secrets.clone(),
                insecure_skip_signature: settings.insecure_skip_signature,
                verify_token: settings.verify_token.clone(),
                ingest_timeout: settings.ingest_timeout,
                body_limit: settings.body_limit,
                metrics: Metrics::default(),
            }),
        })
    }

    pub(crate) fn ingest(&self) -> IngestServiceClient<Channel> {
        self.inner.ingest.clone()
    }

    pub(crate) fn health(&self) -> HealthClient<Channel> {
        self.inner.health.clone()
    }

    /// Adds `authorization: Bearer <token>` when a token is configured.
    pub(crate) fn authorize(&self, metadata: &mut MetadataMap) {
        if let Some(value) = &self.inner.authorization {
            metadata.insert("authorization", value.clone());
        }
    }

    pub(crate) fn app_secrets(&self) -> &[SecretString] {
        &self.inner.app_secrets
    }

    pub(crate) fn insecure_skip_signature(&self) -> bool {
        self.inner.insecure_skip_signature
    }

    pub(crate) fn verify_token(&self) -> Option<&SecretString> {
        self.inner.verify_token.as_ref()
    }

    pub(crate) fn ingest_timeout(&self) -> Duration {
        self.inner.ingest_timeout
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// The process counters served on `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}
