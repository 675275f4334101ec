//! A secret Kassa holds (an API key, a signing secret, a plugin's secret): it prints
//! as `[redacted]`, does not serialise, and is read only by an explicit
//! `expose_secret()` where it is used.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Whether `sent` is `secret`, compared in time that does not depend on where they
/// differ (tokens a client sends: CSRF, the metrics token).
pub fn same(secret: &str, sent: &str) -> bool {
    secret.len() == sent.len()
        && secret
            .bytes()
            .zip(sent.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A secret value, built on `secrecy` (zeroed when dropped).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// The value itself, for the one place that signs, hashes or shows it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How long a rotated secret stays valid beside its successor unless the merchant
/// says otherwise: links already handed out and receivers not yet updated keep working.
pub const DEFAULT_OVERLAP_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// The longest overlap a merchant may ask for.
pub const MAX_OVERLAP_MILLIS: i64 = 7 * DEFAULT_OVERLAP_MILLIS;

/// A rotation's overlap (`24h`, `0s` for none), in milliseconds; absent is 24 hours.
pub fn parse_overlap(field: &str, raw: Option<&str>) -> Result<i64, crate::Invalid> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(DEFAULT_OVERLAP_MILLIS);
    };
    humantime::parse_duration(raw)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms <= MAX_OVERLAP_MILLIS)
        .ok_or_else(|| crate::Invalid::field(field, "must be a duration from 0s to 7d, e.g. 24h"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::NewApiKey;

    #[test]
    fn overlaps_are_durations_up_to_a_week() {
        assert_eq!(parse_overlap("o", None).unwrap(), DEFAULT_OVERLAP_MILLIS);
        assert_eq!(parse_overlap("o", Some("0s")).unwrap(), 0);
        assert_eq!(parse_overlap("o", Some("1h")).unwrap(), 3_600_000);
        for bad in ["", "soon", "8d", "-1h"] {
            assert!(parse_overlap("o", Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_prints_redacted() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose_secret(), "hunter2");
    }

    #[test]
    fn a_new_api_key_prints_without_its_secret() {
        let key = NewApiKey::generate(crate::mode::Mode::Test);
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.secret.expose_secret()), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
