//! Webhook JSON → `IngestWebhookRequest`: the parser lives in the
//! `whatsapp-payload` crate (shared with ingest-svc's replay); re-exported here.

pub use whatsapp_payload::*;
