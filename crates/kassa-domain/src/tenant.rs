//! Tenants (a merchant's store) and the people and keys that act for them.

use crate::Invalid;
use crate::error::parse_text;

/// Paths at the top of the URL space that a store's slug must not shadow.
const RESERVED_SLUGS: &[&str] = &[
    "api",
    "dashboard",
    "healthz",
    "readyz",
    "metrics",
    "static",
    "assets",
    "admin",
    "login",
    "signup",
    "www",
];

/// A store's URL name: `acme` in `/acme/buy/prd_…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let slug = raw.trim();
        let ok_chars = slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !(2..=40).contains(&slug.len())
            || !ok_chars
            || slug.starts_with('-')
            || slug.ends_with('-')
        {
            return Err(Invalid::field(
                "slug",
                "must be 2 to 40 lowercase letters, digits or dashes, not starting or ending with a dash",
            ));
        }
        if RESERVED_SLUGS.contains(&slug) {
            return Err(Invalid::field("slug", format!("{slug:?} is reserved")));
        }
        Ok(Self(slug.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A store's display name.
pub fn parse_tenant_name(raw: &str) -> Result<String, Invalid> {
    parse_text("name", raw, 200)
}

/// An email address, checked for shape only (delivery proves the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email.matches('@').count() == 1;
        if valid {
            Ok(Self(email.to_owned()))
        } else {
            Err(Invalid::field(
                field,
                "must be an email address like name@example.com",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a member may do in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(TenantSlug::parse("acme").is_ok());
        assert!(TenantSlug::parse("acme-2").is_ok());
        for bad in [
            "",
            "a",
            "Acme",
            "acme_co",
            "-acme",
            "api",
            "ac me",
            &"x".repeat(41),
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(EmailAddress::parse("e", "o@acme.test").is_ok());
        for bad in [
            "",
            "o",
            "o@",
            "@acme.test",
            "o@acme",
            "o @acme.test",
            "o@@acme.test",
        ] {
            assert!(EmailAddress::parse("e", bad).is_err(), "{bad}");
        }
    }
}

/// A new API key as the merchant sees it once, and what Kassa keeps of it.
#[derive(Debug)]
pub struct NewApiKey {
    /// The whole key, `kassa_sk_…`; shown once, never stored.
    pub secret: String,
    /// The first characters, kept to tell keys apart in lists.
    pub prefix: String,
    /// SHA-256 of the key, hex. Keys carry 238 bits of randomness, so a fast hash is
    /// as safe as a slow one and keeps each request cheap.
    pub hash: String,
}

pub const API_KEY_PREFIX: &str = "kassa_sk_";

impl NewApiKey {
    pub fn generate() -> Self {
        use rand::Rng;
        use rand::distributions::Alphanumeric;
        let body: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        let secret = format!("{API_KEY_PREFIX}{body}");
        Self {
            prefix: secret[..API_KEY_PREFIX.len() + 6].to_owned(),
            hash: hash_api_key(&secret),
            secret,
        }
    }
}

/// The stored form of a presented key.
pub fn hash_api_key(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}
