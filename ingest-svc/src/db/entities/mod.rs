//! SeaORM entities, one per table. All times are Unix milliseconds (`i64`) except
//! WhatsApp's own `timestamp` fields, which stay in seconds as Meta sends them.

pub mod job;
pub mod message;
pub mod other_event;
pub mod quarantined_item;
pub mod status;
pub mod webhook_error;
pub mod webhook_event;
