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
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
            e => StoreError::Database(e),
        }
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`].
    pub(crate) fn on_unique(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |e| match e.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict(what.to_owned()),
            _ => StoreError::Database(e),
        }
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
