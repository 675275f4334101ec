//! Times are stored as Unix milliseconds, which both backends hold as a BIGINT.

use chrono::{DateTime, TimeZone, Utc};

/// A stored instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// Now, to the millisecond, as it will read back from the database.
    pub fn now() -> Self {
        Self::from(Utc::now().timestamp_millis())
    }

    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

impl From<i64> for Timestamp {
    fn from(ms: i64) -> Self {
        Self(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self::from(at.timestamp_millis())
    }
}

/// Serializes Unix milliseconds as [`rfc3339`].
pub(crate) fn serialize_millis<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// A stored time as the API writes it: RFC 3339, to the millisecond, UTC.
pub(crate) fn rfc3339(ms: i64) -> String {
    Timestamp::from(ms)
        .0
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
