//! Cross-service flows: real gateway → real ingest-svc → real PostgreSQL/SQLite and Redis.

mod duplicates;
mod grpcurl;
mod handshake;
mod inbound;
mod outages;
mod signature;
mod support;
