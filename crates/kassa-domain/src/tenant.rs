//! Tenants (a merchant's store) and the people and keys that act for them.

use std::time::Duration;

use crate::error::parse_text;
use crate::{Invalid, Secret};

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
    /// The whole key, `kassa_sk_test_…` or `kassa_sk_live_…`; shown once, never stored.
    pub secret: Secret,
    /// The first characters, kept to tell keys apart in lists.
    pub prefix: String,
    /// SHA-256 of the key, hex. Keys carry 238 bits of randomness, so a fast hash is
    /// as safe as a slow one and keeps each request cheap.
    pub hash: String,
    /// The world the key belongs to.
    pub mode: crate::mode::Mode,
}

pub const API_KEY_PREFIX: &str = "kassa_sk_";

impl NewApiKey {
    /// A key of `mode`'s world: it makes and sees only that mode's orders, pools and
    /// events. The mode is in the key itself (`kassa_sk_test_…`, `kassa_sk_live_…`), as
    /// in Stripe, so a merchant sees at a glance which one a config holds.
    pub fn generate(mode: crate::mode::Mode) -> Self {
        use rand::Rng;
        use rand::distributions::Alphanumeric;
        let body: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        let secret = format!("{API_KEY_PREFIX}{mode}_{body}");
        Self {
            prefix: secret[..API_KEY_PREFIX.len() + mode.as_str().len() + 7].to_owned(),
            hash: hash_api_key(&secret),
            secret: Secret::from(secret),
            mode,
        }
    }
}

/// A store's Stripe account in one mode: its secret key (restricted `rk_…` or
/// secret `sk_…`), its publishable key (`pk_…`, given to Stripe.js on the pay page:
/// not a secret) and its webhook endpoint's signing secret (`whsec_…`). The secrets
/// never print; once saved, only their last four characters are ever shown.
#[derive(Debug, Clone)]
pub struct StripeAccount {
    pub secret_key: Secret,
    /// Absent in accounts saved before the pay page confirmed cards itself
    /// (migration 0026): Stripe is offered again once it is set.
    pub publishable_key: Option<String>,
    pub webhook_secret: Secret,
}

/// Whether a Stripe secret key is one of its test mode keys (`sk_test_…`,
/// `rk_test_…`), which serve Kassa's test mode, or a live one.
pub fn is_stripe_test_key(key: &str) -> bool {
    key.starts_with("sk_test_") || key.starts_with("rk_test_")
}

/// What a merchant may paste from Stripe, by prefix, to name what they pasted.
const STRIPE_KEY_KINDS: [(&str, &str); 4] = [
    ("sk", "a secret key"),
    ("rk", "a restricted key"),
    ("pk", "a publishable key"),
    ("whsec", "a signing secret"),
];

/// Says exactly what is wrong with a pasted Stripe key, `None` when nothing is: `kinds`
/// are the prefixes the field takes (`sk`, `rk`), `what` names what it takes, and
/// `mode` the mode whose key it must be (`…_test_…` or `…_live_…`; a signing secret
/// has none). Stripe's keys are longer than this checks; a key cut short is told so.
fn stripe_key_problem(
    key: &str,
    kinds: &[&str],
    what: &str,
    mode: Option<crate::mode::Mode>,
) -> Option<String> {
    let wanted = mode.map(|m| if m.is_live() { "live" } else { "test" });
    let expected = kinds
        .iter()
        .map(|k| match wanted {
            Some(w) => format!("{k}_{w}_…"),
            None => format!("{k}_…"),
        })
        .collect::<Vec<_>>()
        .join(" or ");
    if key.is_empty() {
        return Some(format!(
            "is required: paste {what} ({expected}) from Stripe"
        ));
    }
    let Some(kind) = kinds.iter().find(|k| key.starts_with(&format!("{k}_"))) else {
        return Some(
            match STRIPE_KEY_KINDS
                .iter()
                .find(|(prefix, _)| key.starts_with(&format!("{prefix}_")))
            {
                Some((_, other)) => {
                    format!("is {other}, not {what}: this field takes {expected}")
                }
                None => format!("must start with {expected}"),
            },
        );
    };
    let rest = &key[kind.len() + 1..];
    let random = match wanted {
        None => rest,
        Some(wanted) => {
            let Some((key_mode, random)) = ["test", "live"]
                .iter()
                .find_map(|m| Some((*m, rest.strip_prefix(m)?.strip_prefix('_')?)))
            else {
                return Some(format!("must start with {expected}"));
            };
            if key_mode != wanted {
                return Some(format!(
                    "is a {key_mode} mode key; {wanted} mode needs a {wanted} mode key ({expected})"
                ));
            }
            random
        }
    };
    if !random
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Some(
            "may hold only letters, digits and _: paste the key exactly as Stripe shows it".into(),
        );
    }
    if random.len() < 10 {
        return Some(format!(
            "is too short to be a whole Stripe key: paste all of it, {expected}"
        ));
    }
    if key.len() > 255 {
        return Some("is too long for a Stripe key (at most 255 characters)".into());
    }
    None
}

impl StripeAccount {
    /// Keys as a merchant pasted them for `mode`: Stripe test keys for test mode and
    /// live keys for live mode (`secret_key`, `publishable_key`), and a `whsec_`
    /// signing secret (`webhook_secret`).
    pub fn parse(
        mode: crate::mode::Mode,
        secret_key: &str,
        publishable_key: &str,
        webhook_secret: &str,
    ) -> Result<Self, Invalid> {
        let mut invalid = Invalid::default();
        let (key, pk, whsec) = (
            secret_key.trim(),
            publishable_key.trim(),
            webhook_secret.trim(),
        );
        if let Some(problem) = stripe_key_problem(key, &["sk", "rk"], "a secret key", Some(mode)) {
            invalid.push("secret_key", problem);
        }
        if let Some(problem) = stripe_key_problem(pk, &["pk"], "a publishable key", Some(mode)) {
            invalid.push("publishable_key", problem);
        }
        if let Some(problem) = stripe_key_problem(whsec, &["whsec"], "a signing secret", None) {
            invalid.push("webhook_secret", problem);
        }
        invalid.into_result()?;
        Ok(Self {
            secret_key: Secret::from(key),
            publishable_key: Some(pk.to_owned()),
            webhook_secret: Secret::from(whsec),
        })
    }
}

/// The last four characters of a saved secret: all that is ever shown of it again.
pub fn last4(secret: &Secret) -> String {
    let s = secret.expose_secret();
    s[s.len().saturating_sub(4)..].to_owned()
}

/// The stored form of a presented key.
pub fn hash_api_key(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// A store's branding, legal links, bank details and payment methods, as the merchant
/// sets them (`PATCH /api/v1/settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    pub logo_url: Option<String>,
    /// `#RRGGBB`, used for buttons and links on the checkout pages.
    pub accent_color: Option<String>,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
    pub support_email: Option<String>,
    pub bank: Option<BankDetails>,
    /// The enabled payment methods (`test_card`, `bank_transfer`, `stripe`); when
    /// empty, every method but `stripe` (which needs keys and is enabled by name).
    pub payment_methods: Vec<String>,
    /// When to remind a customer of an unpaid order (`24h`, `3d`), or `off`; the
    /// operator's default when absent.
    pub unpaid_reminder_after: Option<String>,
    /// When to delete an unpaid order (`30d`); at most the operator's limit.
    pub unpaid_delete_after: Option<String>,
    /// How long an unpaid order holds the use of a limited coupon (`24h`, `30m`); a day
    /// when absent.
    pub coupon_hold: Option<String>,
}

/// The longest a store may let an unpaid order hold a coupon's use.
const MAX_COUPON_HOLD: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where customers paying by bank transfer send the money.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BankDetails {
    pub account_holder: String,
    pub bank_name: String,
    pub iban: String,
    pub bic: String,
}

impl BankDetails {
    /// Bank details as a merchant typed them: the holder and IBAN required, the bank's
    /// name and BIC optional.
    pub fn parse(
        account_holder: &str,
        bank_name: &str,
        iban: &str,
        bic: &str,
    ) -> Result<Self, Invalid> {
        let mut invalid = Invalid::default();
        let mut text = |field: &str, value: &str, required: bool| -> String {
            let value = value.trim();
            if value.is_empty() && !required {
                return String::new();
            }
            invalid
                .check(parse_text(&format!("bank.{field}"), value, 200))
                .unwrap_or_default()
        };
        let bank = Self {
            account_holder: text("account_holder", account_holder, true),
            bank_name: text("bank_name", bank_name, false),
            iban: text("iban", iban, true),
            bic: text("bic", bic, false),
        };
        invalid.into_result()?;
        Ok(bank)
    }
}

impl TenantSettings {
    /// A store made in the dashboard starts with only what it can take at once: the
    /// sandbox card, in test mode. Bank transfer waits for the bank details customers
    /// pay to, and Stripe for its keys; the merchant ticks each once it is set up. (A
    /// store without settings, made by the command line, keeps the old default: every
    /// method but Stripe.)
    pub fn for_new_store() -> Self {
        Self {
            payment_methods: vec![crate::order::PaymentMethod::TestCard.as_str().to_owned()],
            ..Self::default()
        }
    }

    /// Reads stored settings; unreadable settings fall back to the defaults.
    pub fn from_json(raw: &str) -> Self {
        serde_json::from_str(raw).unwrap_or_default()
    }

    /// Checks what a merchant sent, field by field.
    pub fn validate(&self) -> Result<(), Invalid> {
        use crate::catalog::parse_outgoing_url;
        let mut invalid = Invalid::default();
        for (field, url) in [
            ("logo_url", &self.logo_url),
            ("terms_url", &self.terms_url),
            ("privacy_url", &self.privacy_url),
        ] {
            if let Some(url) = url {
                invalid.check(parse_outgoing_url(field, url));
            }
        }
        if let Some(color) = &self.accent_color {
            invalid.check(AccentColor::parse("accent_color", color));
        }
        if let Some(email) = &self.support_email {
            invalid.check(EmailAddress::parse("support_email", email));
        }
        if let Some(raw) = &self.unpaid_reminder_after
            && raw != "off"
            && humantime::parse_duration(raw).is_err()
        {
            invalid.push(
                "unpaid_reminder_after",
                "must be a duration like 24h or 3d, or off",
            );
        }
        if let Some(raw) = &self.unpaid_delete_after
            && humantime::parse_duration(raw).is_err()
        {
            invalid.push("unpaid_delete_after", "must be a duration like 30d");
        }
        if let Some(raw) = &self.coupon_hold
            && humantime::parse_duration(raw).map_or(true, |d| d > MAX_COUPON_HOLD)
        {
            invalid.push(
                "coupon_hold",
                "must be a duration like 30m or 24h, at most 30d",
            );
        }
        for (i, m) in self.payment_methods.iter().enumerate() {
            invalid.check(crate::order::PaymentMethod::parse(
                &format!("payment_methods[{i}]"),
                m,
            ));
        }
        invalid.into_result()
    }

    /// When this store reminds customers of unpaid orders: its own setting, else the
    /// operator's default; `None` when turned off.
    pub fn reminder_after(&self, default: Option<Duration>) -> Option<Duration> {
        match self.unpaid_reminder_after.as_deref() {
            Some("off") => None,
            Some(raw) => humantime::parse_duration(raw).ok().or(default),
            None => default,
        }
    }

    /// How long an unpaid order holds the use of a limited coupon: the store's setting,
    /// else a day. Long enough to pay by card or by Stripe (whose sessions last a day
    /// at most); a transfer that arrives after it still pays (see docs/security.md).
    pub fn coupon_hold(&self) -> chrono::TimeDelta {
        self.coupon_hold
            .as_deref()
            .and_then(|raw| humantime::parse_duration(raw).ok())
            .filter(|d| *d <= MAX_COUPON_HOLD)
            .and_then(|d| chrono::TimeDelta::from_std(d).ok())
            .unwrap_or(chrono::TimeDelta::days(1))
    }

    /// When this store deletes unpaid orders: its own setting, never later than the
    /// operator's limit.
    pub fn delete_after(&self, limit: Duration) -> Duration {
        self.unpaid_delete_after
            .as_deref()
            .and_then(|raw| humantime::parse_duration(raw).ok())
            .map_or(limit, |d| d.min(limit))
    }

    /// The store's accent colour: its own, else Kassa's.
    pub fn accent(&self) -> AccentColor {
        self.accent_color
            .as_deref()
            .and_then(|raw| AccentColor::parse("accent_color", raw).ok())
            .unwrap_or(AccentColor::DEFAULT)
    }

    /// The methods the merchant enabled, in display order. An empty list enables
    /// every method that needs no setting up; a provider (`stripe`) only when listed.
    pub fn enabled_methods(&self) -> Vec<crate::order::PaymentMethod> {
        crate::order::PaymentMethod::ALL
            .iter()
            .copied()
            .filter(|m| {
                self.payment_methods.iter().any(|s| s == m.as_str())
                    || (self.payment_methods.is_empty() && !m.is_provider())
            })
            .collect()
    }

    /// The methods customers may choose in `mode`: enabled, existing in that mode
    /// (no sandbox in live mode), and for Stripe, only when that mode's Stripe keys
    /// are set (`stripe_ready`).
    pub fn offered_methods(
        &self,
        mode: crate::mode::Mode,
        stripe_ready: bool,
    ) -> Vec<crate::order::PaymentMethod> {
        mode.methods(&self.enabled_methods())
            .into_iter()
            .filter(|m| *m != crate::order::PaymentMethod::Stripe || stripe_ready)
            .collect()
    }
}

/// A store's accent colour (`#rrggbb`): the checkout's buttons and links, the emails'
/// rule and links. Any colour a brand has must stay readable, so pages never put text
/// on it or in it as it is: [`AccentColor::text_on`] and [`AccentColor::ink`] say what
/// to use, at WCAG's AA contrast (4.5:1) or better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccentColor([u8; 3]);

impl AccentColor {
    /// Kassa's own blue, for a store without one.
    pub const DEFAULT: Self = Self([0x1a, 0x56, 0xdb]);

    /// AA contrast for normal text.
    const READABLE: f64 = 4.5;

    /// The darkest page background `ink` must read on: light greys such as the
    /// checkout's `#f6f7f9` are lighter than this.
    const LIGHT_BACKGROUND: f64 = 0.9;

    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let hex = raw.trim().strip_prefix('#').unwrap_or_default();
        let channel = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
        match (hex.len(), channel(0), channel(2), channel(4)) {
            (6, Some(r), Some(g), Some(b)) if hex.is_ascii() => Ok(Self([r, g, b])),
            _ => Err(Invalid::field(field, "must be a colour like #1a73e8")),
        }
    }

    /// Text on the colour (a button's label): white or black, whichever contrasts
    /// more; one of them always reaches 4.5:1.
    pub fn text_on(&self) -> Self {
        let (white, black) = (Self([0xff; 3]), Self([0; 3]));
        if contrast(self.luminance(), white.luminance())
            >= contrast(self.luminance(), black.luminance())
        {
            white
        } else {
            black
        }
    }

    /// The colour as text or links on a light page: itself when readable there,
    /// else the same hue darkened just enough.
    pub fn ink(&self) -> Self {
        let mut ink = *self;
        for step in 1..=20u16 {
            if contrast(ink.luminance(), Self::LIGHT_BACKGROUND) >= Self::READABLE {
                break;
            }
            // Towards black in twentieths: black itself is the last step.
            let scale = |c: u8| u8::try_from(u16::from(c) * (20 - step) / 20).unwrap_or(0);
            ink = Self(self.0.map(scale));
        }
        ink
    }

    /// WCAG 2's relative luminance.
    fn luminance(&self) -> f64 {
        let linear = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.0.map(linear);
        0.2126 * r + 0.7152 * g + 0.0722 * b
    }
}

/// WCAG 2's contrast ratio of two relative luminances.
fn contrast(a: f64, b: f64) -> f64 {
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

impl std::fmt::Display for AccentColor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

#[cfg(test)]
mod accent_tests {
    use super::*;

    fn accent(raw: &str) -> AccentColor {
        AccentColor::parse("accent_color", raw).unwrap()
    }

    #[test]
    fn a_colour_is_six_hex_digits_after_a_hash() {
        assert_eq!(accent("#1A56db").to_string(), "#1a56db");
        for bad in [
            "blue",
            "#1a56d",
            "#1a56dbb",
            "1a56db",
            "#gg56db",
            "#1a5\u{e9}b",
            "",
        ] {
            assert!(AccentColor::parse("accent_color", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_on_any_accent_and_the_accent_as_text_are_readable() {
        for raw in [
            "#1a56db", "#f5c518", "#ffffff", "#000000", "#777777", "#00ff00", "#aa3300",
        ] {
            let a = accent(raw);
            assert!(
                contrast(a.luminance(), a.text_on().luminance()) >= 4.5,
                "{raw} with {}",
                a.text_on()
            );
            let ink = a.ink();
            assert!(
                contrast(ink.luminance(), 1.0) >= 4.5,
                "{raw} as {ink} on white"
            );
            assert!(
                contrast(ink.luminance(), accent("#f6f7f9").luminance()) >= 4.5,
                "{raw} as {ink} on the checkout's grey"
            );
        }
    }

    #[test]
    fn a_readable_accent_is_kept_and_a_light_one_darkened_in_its_hue() {
        assert_eq!(AccentColor::DEFAULT.ink(), AccentColor::DEFAULT);
        assert_eq!(AccentColor::DEFAULT.text_on().to_string(), "#ffffff");
        let yellow = accent("#f5c518");
        assert_eq!(yellow.text_on().to_string(), "#000000");
        let [r, g, b] = yellow.ink().0;
        assert!(r > g && g > b, "still a yellow-brown: {}", yellow.ink());
    }
}

/// A merchant user's password, checked for length and hashed with Argon2id (the
/// crate's defaults, with a random salt) for storage.
pub fn hash_password(password: &str) -> Result<String, Invalid> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let length = password.chars().count();
    if !(10..=200).contains(&length) {
        return Err(Invalid::field(
            "password",
            "must be between 10 and 200 characters",
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Invalid::field("password", format!("cannot be hashed: {e}")))
}

/// True when `password` matches a stored Argon2 hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2_and_verified() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(hash_password("short").is_err());
        assert_ne!(
            hash,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
    }
}

#[cfg(test)]
mod stripe_tests {
    use super::*;

    #[test]
    fn stripe_keys_go_with_their_mode_and_never_print() {
        use crate::mode::Mode;
        const PK_TEST: &str = "pk_test_abcdef123456";
        const PK_LIVE: &str = "pk_live_abcdef123456";
        const WHSEC: &str = "whsec_abcdef123456";
        let test =
            StripeAccount::parse(Mode::Test, " rk_test_abcdef123456 ", PK_TEST, WHSEC).unwrap();
        assert_eq!(last4(&test.secret_key), "3456");
        assert_eq!(test.publishable_key.as_deref(), Some(PK_TEST));
        assert!(!format!("{:?}", test.secret_key).contains("abcdef"));
        assert!(!format!("{:?}", test.webhook_secret).contains("abcdef"));
        assert!(StripeAccount::parse(Mode::Live, "sk_live_abcdef123456", PK_LIVE, WHSEC).is_ok());
        let fields = |mode, key: &str, pk: &str, whsec: &str| -> Vec<String> {
            StripeAccount::parse(mode, key, pk, whsec)
                .unwrap_err()
                .errors
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        // A test key for live mode and the reverse; a publishable key as the secret
        // one and the reverse; no whsec_.
        assert_eq!(
            fields(Mode::Live, "sk_test_abcdef123456", PK_LIVE, WHSEC),
            ["secret_key"]
        );
        assert_eq!(
            fields(Mode::Test, "rk_live_abcdef123456", PK_TEST, WHSEC),
            ["secret_key"]
        );
        assert_eq!(fields(Mode::Test, PK_TEST, PK_TEST, WHSEC), ["secret_key"]);
        assert_eq!(
            fields(Mode::Test, "sk_test_abcdef123456", PK_LIVE, WHSEC),
            ["publishable_key"]
        );
        assert_eq!(
            fields(
                Mode::Live,
                "sk_live_abcdef123456",
                "sk_live_abcdef123456",
                WHSEC
            ),
            ["publishable_key"]
        );
        assert_eq!(
            fields(Mode::Test, "sk_test_abcdef123456", PK_TEST, "abcdef123456"),
            ["webhook_secret"]
        );
        // Each says exactly what is wrong.
        let message = |mode, key: &str, pk: &str, whsec: &str| -> Vec<String> {
            StripeAccount::parse(mode, key, pk, whsec)
                .unwrap_err()
                .errors
                .into_iter()
                .map(|e| e.message)
                .collect()
        };
        assert_eq!(
            message(Mode::Live, "sk_live_abcdef123456", "pk_live_x", WHSEC),
            ["is too short to be a whole Stripe key: paste all of it, pk_live_…"]
        );
        assert_eq!(
            message(Mode::Live, "sk_test_abcdef123456", PK_LIVE, WHSEC),
            ["is a test mode key; live mode needs a live mode key (sk_live_… or rk_live_…)"]
        );
        assert_eq!(
            message(Mode::Test, "sk_test_abcdef123456", PK_LIVE, WHSEC),
            ["is a live mode key; test mode needs a test mode key (pk_test_…)"]
        );
        assert_eq!(
            message(Mode::Test, PK_TEST, PK_TEST, WHSEC),
            ["is a publishable key, not a secret key: this field takes sk_test_… or rk_test_…"]
        );
        assert_eq!(
            message(Mode::Test, "sk_test_abcdef123456", "pk_abcdef123456", WHSEC),
            ["must start with pk_test_…"]
        );
        assert_eq!(
            message(Mode::Test, "sk_test_abcdef123456", PK_TEST, "wh_abc"),
            ["must start with whsec_…"]
        );
        assert_eq!(
            message(Mode::Test, "", PK_TEST, WHSEC),
            ["is required: paste a secret key (sk_test_… or rk_test_…) from Stripe"]
        );
        assert_eq!(
            message(Mode::Test, "sk_test_abc def123456", PK_TEST, WHSEC),
            ["may hold only letters, digits and _: paste the key exactly as Stripe shows it"]
        );
    }

    #[test]
    fn stripe_is_offered_only_when_enabled_by_name_and_its_keys_are_set() {
        use crate::mode::Mode;
        use crate::order::PaymentMethod::*;
        let all = TenantSettings::default();
        assert_eq!(all.enabled_methods(), [TestCard, BankTransfer]);
        assert_eq!(
            all.offered_methods(Mode::Test, true),
            [TestCard, BankTransfer]
        );
        let stripe = TenantSettings {
            payment_methods: vec!["stripe".into(), "test_card".into()],
            ..TenantSettings::default()
        };
        assert_eq!(stripe.offered_methods(Mode::Test, true), [TestCard, Stripe]);
        assert_eq!(stripe.offered_methods(Mode::Test, false), [TestCard]);
        assert_eq!(stripe.offered_methods(Mode::Live, true), [Stripe]);
        assert!(stripe.offered_methods(Mode::Live, false).is_empty());
    }
}
