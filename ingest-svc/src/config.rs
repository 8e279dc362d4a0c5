//! Settings from environment variables (see the contract's configuration table).
//!
//! | variable | default |
//! | --- | --- |
//! | `INGEST_ADDR` | `127.0.0.1:50051` |
//! | `DATABASE_URL` | `sqlite://data/whatsapp-ingest.db?mode=rwc` |
//! | `DATABASE_MAX_CONNECTIONS` | `10` (SQLite always uses 1) |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` |
//! | `REDIS_PREFIX` | `wa:` |
//! | `INGEST_API_TOKEN` | unset (no auth) |
//! | `INGEST_RELAY_INTERVAL_MS` | `1000` |
//! | `JOB_LEASE_MS` | `30000` |
//! | `JOB_MAX_ATTEMPTS` | `5` |
//!
//! Empty values count as unset.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

/// Default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";
/// Default database: embedded SQLite under `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/whatsapp-ingest.db?mode=rwc";
/// Default Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default prefix of every Redis key.
pub const DEFAULT_REDIS_PREFIX: &str = "wa:";

/// Everything ingest-svc needs to start. A plain value: tests edit it freely.
#[derive(Clone)]
pub struct Settings {
    /// gRPC listen address (port 0 picks a free port).
    pub addr: SocketAddr,
    /// `postgres://…` or `sqlite:…`.
    pub database_url: String,
    /// `redis://…` or `rediss://…`.
    pub redis_url: String,
    /// Prefix of every Redis key (the job stream is `{prefix}jobs`).
    pub redis_prefix: String,
    /// When set, every RPC but health and reflection needs `authorization: Bearer <token>`.
    pub api_token: Option<SecretString>,
    /// Period of the outbox relay that re-enqueues jobs Redis never received.
    pub relay_interval: Duration,
    /// Pool size for PostgreSQL (SQLite always uses a single connection).
    pub max_db_connections: u32,
    /// How long a worker holds a job before it is handed to someone else
    /// (workers extend it while they work).
    pub job_lease: Duration,
    /// Deliveries before a job is dead-lettered.
    pub max_attempts: u32,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry passwords; the token is a secret.
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("database_url", &"[redacted]")
            .field("redis_url", &"[redacted]")
            .field("redis_prefix", &self.redis_prefix)
            .field("api_token", &self.api_token.as_ref().map(|_| "[redacted]"))
            .field("relay_interval", &self.relay_interval)
            .field("max_db_connections", &self.max_db_connections)
            .field("job_lease", &self.job_lease)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// A setting that is present but unusable. Displays as one line naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value), for tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());

        let addr_raw = get("INGEST_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = addr_raw.trim().parse().map_err(|_| ConfigError {
            var: "INGEST_ADDR",
            reason: format!("invalid socket address {addr_raw:?}"),
        })?;

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|scheme| database_url.starts_with(scheme))
        {
            return Err(ConfigError {
                var: "DATABASE_URL",
                reason: "expected a postgres:// or sqlite: URL".to_owned(),
            });
        }

        let redis_url = get("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
        if let Err(e) = fred::types::config::Config::from_url(&redis_url) {
            return Err(ConfigError {
                var: "REDIS_URL",
                reason: format!("invalid Redis URL ({})", e.details()),
            });
        }

        let max_db_connections = parse_number(&get, "DATABASE_MAX_CONNECTIONS", 10)?;
        let relay_ms = parse_number(&get, "INGEST_RELAY_INTERVAL_MS", 1000)?;
        let lease_ms = parse_number(&get, "JOB_LEASE_MS", 30_000)?;
        let max_attempts = parse_number(&get, "JOB_MAX_ATTEMPTS", 5)?;

        Ok(Settings {
            addr,
            database_url,
            redis_url,
            redis_prefix: get("REDIS_PREFIX").unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned()),
            api_token: get("INGEST_API_TOKEN").map(|t| SecretString::from(t.trim().to_owned())),
            relay_interval: Duration::from_millis(u64::from(relay_ms)),
            max_db_connections,
            job_lease: Duration::from_millis(u64::from(lease_ms)),
            max_attempts,
        })
    }
}

/// A positive integer variable with a default.
fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError {
                var,
                reason: format!("expected a positive integer, got {raw:?}"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_serve_local_use() {
        let s = load(&[]).unwrap();
        assert_eq!(s.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.redis_url, DEFAULT_REDIS_URL);
        assert_eq!(s.redis_prefix, "wa:");
        assert!(s.api_token.is_none());
        assert_eq!(s.relay_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_address_names_the_variable_on_one_line() {
        let err = load(&[("INGEST_ADDR", "x")]).unwrap_err().to_string();
        assert_eq!(err, "INGEST_ADDR: invalid socket address \"x\"");
    }

    #[test]
    fn bad_database_url_names_the_variable() {
        let err = load(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        let err = load(&[("REDIS_URL", "nope://")]).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn token_is_read_and_redacted() {
        let s = load(&[("INGEST_API_TOKEN", "s3cret")]).unwrap();
        assert_eq!(s.api_token.as_ref().unwrap().expose_secret(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(
            load(&[("INGEST_API_TOKEN", "")])
                .unwrap()
                .api_token
                .is_none()
        );
    }
}
