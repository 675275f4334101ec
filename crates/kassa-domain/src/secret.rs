//! A secret Kassa holds (an API key, a signing secret, a plugin's secret): it prints
//! as `[redacted]`, does not serialise, and is read only by an explicit
//! `expose_secret()` where it is used.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::NewApiKey;

    #[test]
    fn a_secret_prints_redacted() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose_secret(), "hunter2");
    }

    #[test]
    fn a_new_api_key_prints_without_its_secret() {
        let key = NewApiKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.secret.expose_secret()), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
