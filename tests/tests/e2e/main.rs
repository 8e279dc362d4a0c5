//! Cross-service flows: real gateway → real ingest-svc → real PostgreSQL/SQLite and Redis.

mod admin;
mod duplicates;
mod grpcurl;
mod handshake;
mod inbound;
mod leases;
mod outages;
mod processes;
mod properties;
mod replies;
mod shapes;
mod signature;
mod support;
