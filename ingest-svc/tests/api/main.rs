//! Integration tests: a real ingest-svc against real PostgreSQL/SQLite and Redis.
//! Each test gets its own database and Redis key prefix.

mod auth;
mod backends;
mod helpers;
mod ingest;
mod list;
mod statuses;
