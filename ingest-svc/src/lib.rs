//! ingest-svc: owns the database and the Redis job stream, and serves
//! `whatsapp.ingest.v1.IngestService` (plus health and reflection) over gRPC.
//!
//! Flow of `IngestWebhook`: one transaction stores the raw webhook and every item
//! (insert-if-absent on WhatsApp's keys) plus a reply job per newly created message;
//! after commit the jobs are XADDed to `{prefix}jobs`, and a relay re-sends any job
//! the stream never got.

pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub(crate) mod grpc;
pub mod queue;
pub(crate) mod relay;
pub mod startup;
pub mod telemetry;

pub use config::Settings;
pub use error::IngestError;
pub use startup::Application;
