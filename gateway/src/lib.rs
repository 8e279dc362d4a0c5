//! The WhatsApp webhook gateway: receives Meta's webhook POSTs, checks their
//! signature over the raw bytes, types every item and hands the whole POST to
//! ingest-svc in one `IngestWebhook` gRPC call; answers 200 only once that
//! call succeeded.

pub mod config;
pub mod error;
pub mod health;
pub mod metrics;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod webhook;
