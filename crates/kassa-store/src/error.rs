//! The storage layer's one error type.

/// What can go wrong in storage, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object for this tenant.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write (e.g. a coupon code already in use).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// The database cannot be reached now: it restarts or is down (connections refused
    /// or ended by the server), or no connection came free within the pool's acquire
    /// timeout. The same request may succeed a moment later (a 503, never a 500).
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The secrets key does not fit this database (another node's key, none set, a
    /// value sealed under a key this node lacks): what to do is in the message.
    #[error("secrets key: {0}")]
    SecretsKey(String),
    /// A stored value that does not parse: a bug or a hand-edited row.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    /// A column that does not decode (bad JSON, an unknown type) is a corrupt row.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            e if unavailable(&e) => StoreError::Unavailable(e),
            e => StoreError::Database(e),
        }
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`].
    pub(crate) fn on_unique(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |e| match e.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict(what.to_owned()),
            _ => StoreError::from(e),
        }
    }

    /// Whether the database could not be reached (try again shortly), as opposed to a
    /// failure that trying again would not fix.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLSTATE classes and codes meaning "the server is not there right now": connection
/// exceptions (08…), the server shutting down or starting up (57P01–57P03), and too
/// many connections (53300).
const UNAVAILABLE_STATES: [&str; 5] = ["08", "57P01", "57P02", "57P03", "53300"];

/// Whether `e` says the database cannot be reached now, rather than that the query
/// was wrong.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| UNAVAILABLE_STATES.iter().any(|s| code.starts_with(s))),
        _ => false,
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A stored name (a status, a method) read back as its enum; any other is corrupt.
pub(crate) fn named<T: std::str::FromStr>(raw: &str) -> Result<T, StoreError> {
    raw.parse()
        .map_err(|_| corrupt(format!("unknown {} {raw:?}", std::any::type_name::<T>())))
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    #[test]
    fn a_database_out_of_reach_is_unavailable_and_a_failed_query_is_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for reach in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(refused),
        ] {
            assert!(StoreError::from(reach).is_unavailable());
        }
        for failed in [
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("unexpected message".into()),
            sqlx::Error::ColumnNotFound("x".into()),
        ] {
            assert!(!StoreError::from(failed).is_unavailable());
        }
    }
}
