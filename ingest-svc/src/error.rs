//! The one error type of ingest-svc and its single mapping to gRPC.

use sea_orm::{DbErr, RuntimeErr};
use tonic::{Code, Status};

/// Boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`IngestError`].
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request itself is wrong; the caller sees `InvalidArgument` with this message.
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing asked for does not exist; the caller sees `NotFound`.
    #[error("{0}")]
    NotFound(String),
    /// Missing or wrong bearer token; the caller sees `Unauthenticated`.
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    /// A dependency (database connection or pool, Redis) is down or timed out; the
    /// caller sees `Unavailable` and may retry.
    #[error("{what} unavailable")]
    Unavailable {
        /// Which dependency.
        what: &'static str,
        /// The underlying failure (logged, not sent).
        #[source]
        source: BoxError,
    },
    /// Any other database failure; the caller sees `Internal("internal error")`.
    #[error("database error")]
    Database(#[source] DbErr),
    /// A broken invariant; the caller sees `Internal("internal error")`.
    #[error("{0}")]
    Internal(String),
}

impl IngestError {
    /// Shorthand for [`IngestError::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }
}

/// `err: cause: cause…` on one line, for logs.
pub(crate) fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        cur = cause.source();
    }
    out
}

impl From<DbErr> for IngestError {
    /// Database facts become domain errors here: connectivity, pool exhaustion,
    /// lock contention and deadlocks are retryable (`Unavailable`), the rest is internal.
    fn from(err: DbErr) -> Self {
        if is_transient(&err) {
            IngestError::Unavailable {
                what: "database",
                source: Box::new(err),
            }
        } else {
            IngestError::Database(err)
        }
    }
}

/// Whether a database error may succeed on retry.
fn is_transient(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            use sea_orm::SqlxError as E;
            match e.as_ref() {
                E::Io(_)
                | E::Tls(_)
                | E::PoolTimedOut
                | E::PoolClosed
                | E::WorkerCrashed
                | E::Protocol(_) => true,
                E::Database(db) => db.code().is_some_and(|code| transient_sql_state(&code)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs (and SQLite result codes) that mean "try again".
fn transient_sql_state(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources (too many connections)
        || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
        || code == "40001" // serialization failure
        || code == "40P01" // deadlock detected
        || code == "5" // SQLITE_BUSY
        || code == "6" // SQLITE_LOCKED
        || code == "517" // SQLITE_BUSY_SNAPSHOT
}

impl From<fred::error::Error> for IngestError {
    fn from(err: fred::error::Error) -> Self {
        IngestError::Unavailable {
            what: "redis",
            source: Box::new(err),
        }
    }
}

impl From<IngestError> for Status {
    /// Exhaustive on purpose: a new variant cannot slip out unmapped. Server-side
    /// failures are logged here, once, inside the request span.
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::InvalidArgument(msg) => {
                tracing::info!(reason = %msg, "rejected invalid request");
                Status::invalid_argument(msg)
            }
            IngestError::NotFound(msg) => Status::not_found(msg),
            IngestError::Unauthenticated => {
                Status::new(Code::Unauthenticated, "missing or invalid bearer token")
            }
            IngestError::Unavailable { what, source } => {
                tracing::warn!(error = %report(source.as_ref()), "{what} unavailable");
                Status::unavailable(format!("{what} unavailable"))
            }
            IngestError::Database(source) => {
                tracing::error!(error = %report(&source), "database error");
                Status::internal("internal error")
            }
            IngestError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnAcquireErr;

    #[test]
    fn pool_timeout_is_unavailable_and_other_db_errors_are_internal() {
        let status = Status::from(IngestError::from(DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout,
        )));
        assert_eq!(status.code(), Code::Unavailable);

        let status = Status::from(IngestError::from(DbErr::Custom("boom".into())));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn sqlstates_classify() {
        assert!(transient_sql_state("08006"));
        assert!(transient_sql_state("40P01"));
        assert!(!transient_sql_state("23505"));
        assert!(!transient_sql_state("22021"));
    }
}
