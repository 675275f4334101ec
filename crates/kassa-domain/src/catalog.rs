//! The merchant's catalog: products with prices and a delivery method, coupons,
//! checkout links and the keys uploaded to license pools.

use chrono::{DateTime, Utc};

use crate::Invalid;
use crate::error::parse_text;
use crate::ids::{LicensePoolId, PluginId, ProductId};
use crate::money::{Currency, Money};

/// The most units of one product in one order line.
pub const MAX_QUANTITY: i64 = 1_000;
/// The most keys accepted in one upload; larger sets go in several uploads.
pub const MAX_KEYS_PER_UPLOAD: usize = 10_000;
/// The longest license key accepted.
pub const MAX_KEY_LEN: usize = 1_000;

pub fn parse_product_name(raw: &str) -> Result<String, Invalid> {
    parse_text("name", raw, 200)
}

pub fn parse_description(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => parse_text("description", text, 5_000).map(Some),
    }
}

/// One price per currency, at least one.
pub fn parse_prices(raw: &[(String, i64)]) -> Result<Vec<Money>, Invalid> {
    let mut invalid = Invalid::default();
    if raw.is_empty() {
        invalid.push("prices", "must hold at least one price");
    }
    if raw.len() > 200 {
        invalid.push("prices", "must hold at most 200 prices");
    }
    let mut prices: Vec<Money> = Vec::with_capacity(raw.len());
    for (i, (code, amount)) in raw.iter().enumerate() {
        let Some(currency) = invalid.check(Currency::parse(&format!("prices[{i}].currency"), code))
        else {
            continue;
        };
        if prices.iter().any(|p| p.currency == currency) {
            invalid.push(
                format!("prices[{i}].currency"),
                format!("{currency} is priced twice"),
            );
            continue;
        }
        if let Some(price) = invalid.check(Money::parse_price(
            &format!("prices[{i}].amount"),
            *amount,
            currency,
        )) {
            prices.push(price);
        }
    }
    invalid.into_result().map(|()| prices)
}

/// How many licenses an order line gets, from a pool, a web service or a plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeysPer {
    /// One key for each unit: quantity 3 gets 3 keys.
    #[default]
    Unit,
    /// One key for the whole line, whatever the quantity.
    Line,
}

impl KeysPer {
    /// The licenses a line of `quantity` units gets.
    pub fn count(self, quantity: i64) -> i64 {
        match self {
            KeysPer::Unit => quantity,
            KeysPer::Line => 1,
        }
    }

    /// Whether `answered` licenses (from a web service or a plugin) deliver a line of
    /// `quantity` units: exactly [`KeysPer::count`], so a paid unit is never left
    /// without its license.
    pub fn check_answer(self, quantity: i64, answered: usize) -> Result<(), String> {
        let needed = self.count(quantity);
        if i64::try_from(answered).is_ok_and(|n| n == needed) {
            return Ok(());
        }
        Err(match self {
            KeysPer::Unit => format!(
                "{answered} licenses answered for {quantity} units; the product takes one \
                 license per unit (keys_per = unit)"
            ),
            KeysPer::Line => format!(
                "{answered} licenses answered; the product takes one license for the whole \
                 line (keys_per = line)"
            ),
        })
    }
}

/// Where a product's license information comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Delivery {
    LicensePool {
        pool_id: LicensePoolId,
        keys_per: KeysPer,
    },
    WebService {
        url: String,
        /// Products stored before this field took one license per unit.
        #[serde(default)]
        keys_per: KeysPer,
    },
    Plugin {
        plugin_id: PluginId,
        #[serde(default)]
        keys_per: KeysPer,
    },
}

impl Delivery {
    /// How many licenses a line of this delivery gets.
    pub fn keys_per(&self) -> KeysPer {
        match self {
            Delivery::LicensePool { keys_per, .. }
            | Delivery::WebService { keys_per, .. }
            | Delivery::Plugin { keys_per, .. } => *keys_per,
        }
    }

    pub fn method(&self) -> &'static str {
        match self {
            Delivery::LicensePool { .. } => "license_pool",
            Delivery::WebService { .. } => "web_service",
            Delivery::Plugin { .. } => "plugin",
        }
    }
}

/// An outgoing HTTP(S) URL a merchant gives Kassa to call.
pub fn parse_outgoing_url(field: &str, raw: &str) -> Result<String, Invalid> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| Invalid::field(field, format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Invalid::field(field, "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::field(field, "must name a host"));
    }
    if raw.len() > 2_000 {
        return Err(Invalid::field(field, "must be at most 2000 characters"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::field(
            field,
            "must not carry a user name or password",
        ));
    }
    Ok(url.to_string())
}

/// A quantity for one order line.
pub fn parse_quantity(field: &str, quantity: i64) -> Result<i64, Invalid> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(Invalid::field(
            field,
            format!("must be between 1 and {MAX_QUANTITY}"),
        ))
    }
}

/// A coupon code as customers type it; matched without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponCode(String);

impl CouponCode {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let code = raw.trim().to_ascii_uppercase();
        let ok = (1..=64).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(code))
        } else {
            Err(Invalid::field(
                field,
                "must be 1 to 64 letters, digits, dashes or underscores",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a coupon takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// Whole percent, 1 to 100.
    Percent(i64),
    /// A fixed amount in one currency; the coupon applies only to orders in it.
    Amount(Money),
}

impl Discount {
    pub fn parse(
        percent_off: Option<i64>,
        amount_off: Option<i64>,
        currency: Option<&str>,
    ) -> Result<Self, Invalid> {
        match (percent_off, amount_off) {
            (Some(p), None) => {
                if currency.is_some() {
                    return Err(Invalid::field(
                        "currency",
                        "only applies to an amount_off coupon",
                    ));
                }
                if (1..=100).contains(&p) {
                    Ok(Discount::Percent(p))
                } else {
                    Err(Invalid::field("percent_off", "must be between 1 and 100"))
                }
            }
            (None, Some(amount)) => {
                let currency = Currency::parse(
                    "currency",
                    currency
                        .ok_or_else(|| Invalid::field("currency", "is required with amount_off"))?,
                )?;
                if amount == 0 {
                    return Err(Invalid::field("amount_off", "must be more than zero"));
                }
                Money::parse_price("amount_off", amount, currency).map(Discount::Amount)
            }
            _ => Err(Invalid::field(
                "percent_off",
                "give exactly one of percent_off and amount_off",
            )),
        }
    }

    /// The discount on `subtotal`, in its minor units.
    ///
    /// Rounding rule: a percentage is rounded half up to the nearest minor unit
    /// (10 % of 1.05 is 0.11). A discount never exceeds the subtotal, and a fixed
    /// amount in another currency takes nothing off.
    pub fn amount_off(&self, subtotal: Money) -> i64 {
        let off = match self {
            Discount::Percent(p) => (i128::from(subtotal.amount) * i128::from(*p) + 50) / 100,
            Discount::Amount(m) if m.currency == subtotal.currency => i128::from(m.amount),
            Discount::Amount(_) => 0,
        };
        i64::try_from(off.min(i128::from(subtotal.amount))).unwrap_or(subtotal.amount)
    }
}

/// Why a coupon cannot be used right now.
pub fn coupon_unusable_reason(
    active: bool,
    expires_at: Option<DateTime<Utc>>,
    max_redemptions: Option<i64>,
    times_redeemed: i64,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    if !active {
        return Some("this coupon is no longer active");
    }
    if expires_at.is_some_and(|at| at <= now) {
        return Some("this coupon has expired");
    }
    if max_redemptions.is_some_and(|max| times_redeemed >= max) {
        return Some("this coupon has been used up");
    }
    None
}

/// Parses a coupon's optional limits.
pub fn parse_coupon_limits(
    expires_at: Option<DateTime<Utc>>,
    max_redemptions: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), Invalid> {
    let mut invalid = Invalid::default();
    if expires_at.is_some_and(|at| at <= now) {
        invalid.push("expires_at", "must be in the future");
    }
    if max_redemptions.is_some_and(|m| m < 1) {
        invalid.push("max_redemptions", "must be at least 1");
    }
    invalid.into_result()
}

/// Checks a product scope list for duplicates; existence is checked by the caller.
pub fn parse_product_scope(ids: &[String]) -> Result<Vec<ProductId>, Invalid> {
    let mut invalid = Invalid::default();
    let mut out: Vec<ProductId> = Vec::new();
    for (i, raw) in ids.iter().enumerate() {
        match ProductId::parse(raw) {
            Ok(id) if !out.contains(&id) => out.push(id),
            Ok(_) => {}
            Err(_) => invalid.push(format!("product_ids[{i}]"), "is not a product id"),
        }
    }
    invalid.into_result().map(|()| out)
}

/// The result of reading an upload of license keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyUpload {
    /// Distinct keys in upload order.
    pub keys: Vec<String>,
    /// Keys that appeared more than once in this upload (counted once each repeat).
    pub repeated: Vec<String>,
}

/// Trims each key, skips blank lines, and sets repeats aside.
pub fn parse_license_keys<'a>(
    raw: impl IntoIterator<Item = &'a str>,
) -> Result<KeyUpload, Invalid> {
    let mut upload = KeyUpload::default();
    let mut seen = std::collections::HashSet::new();
    let mut invalid = Invalid::default();
    for (i, line) in raw.into_iter().enumerate() {
        let key = line.trim();
        if key.is_empty() {
            continue;
        }
        if key.chars().count() > MAX_KEY_LEN || key.chars().any(char::is_control) {
            invalid.push(
                format!("keys[{i}]"),
                format!("must be at most {MAX_KEY_LEN} characters without control characters"),
            );
            continue;
        }
        if seen.insert(key.to_owned()) {
            upload.keys.push(key.to_owned());
        } else {
            upload.repeated.push(key.to_owned());
        }
    }
    if upload.keys.len() > MAX_KEYS_PER_UPLOAD {
        invalid.push(
            "keys",
            format!("at most {MAX_KEYS_PER_UPLOAD} keys per upload"),
        );
    }
    if upload.keys.is_empty() && invalid.errors.is_empty() {
        invalid.push("keys", "must hold at least one key");
    }
    invalid.into_result().map(|()| upload)
}

/// The keys of a CSV upload: the first column of each row, skipping a `key` header.
/// `field` names the upload in errors.
pub fn csv_keys(field: &str, text: &str) -> Result<Vec<String>, Invalid> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut keys = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Invalid::field(field, format!("is not valid CSV: {e}")))?;
        let first = record.get(0).unwrap_or_default().trim();
        if i == 0 && first.eq_ignore_ascii_case("key") {
            continue;
        }
        keys.push(first.to_owned());
    }
    Ok(keys)
}

pub fn parse_pool_name(raw: &str) -> Result<String, Invalid> {
    parse_text("name", raw, 200)
}

pub fn parse_low_stock_threshold(raw: Option<i64>) -> Result<Option<i64>, Invalid> {
    match raw {
        Some(n) if !(0..=1_000_000).contains(&n) => Err(Invalid::field(
            "low_stock_threshold",
            "must be between 0 and 1000000",
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paid_unit_never_goes_without_its_license() {
        assert_eq!(KeysPer::Unit.check_answer(3, 3), Ok(()));
        assert_eq!(KeysPer::Line.check_answer(3, 1), Ok(()));
        let short = KeysPer::Unit.check_answer(3, 1).unwrap_err();
        assert!(short.contains("1 licenses answered for 3 units"), "{short}");
        assert!(KeysPer::Unit.check_answer(2, 3).is_err());
        assert!(KeysPer::Line.check_answer(3, 3).is_err());
        // Stored before keys_per: one license per unit.
        let old: Delivery =
            serde_json::from_str(r#"{"method": "web_service", "url": "https://x.test/"}"#).unwrap();
        assert_eq!(old.keys_per(), KeysPer::Unit);
    }

    fn usd(amount: i64) -> Money {
        Money {
            amount,
            currency: Currency::parse("c", "USD").unwrap(),
        }
    }

    #[test]
    fn prices_need_distinct_known_currencies_and_sane_amounts() {
        assert_eq!(
            parse_prices(&[("USD".into(), 1999), ("eur".into(), 1799)])
                .unwrap()
                .len(),
            2
        );
        let err = parse_prices(&[
            ("USD".into(), 1),
            ("usd".into(), 2),
            ("ABC".into(), 3),
            ("EUR".into(), -5),
        ])
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "prices[1].currency",
                "prices[2].currency",
                "prices[3].amount"
            ]
        );
        assert!(parse_prices(&[]).is_err());
    }

    #[test]
    fn percent_discounts_round_half_up_and_never_exceed_the_subtotal() {
        assert_eq!(Discount::Percent(10).amount_off(usd(105)), 11);
        assert_eq!(Discount::Percent(10).amount_off(usd(104)), 10);
        assert_eq!(Discount::Percent(100).amount_off(usd(999)), 999);
        assert_eq!(Discount::Amount(usd(5000)).amount_off(usd(1999)), 1999);
        let eur = Money {
            amount: 500,
            currency: Currency::parse("c", "EUR").unwrap(),
        };
        assert_eq!(Discount::Amount(eur).amount_off(usd(1999)), 0);
    }

    #[test]
    fn discount_needs_exactly_one_kind() {
        assert!(Discount::parse(Some(10), Some(100), None).is_err());
        assert!(Discount::parse(None, None, None).is_err());
        assert!(Discount::parse(Some(0), None, None).is_err());
        assert!(Discount::parse(Some(101), None, None).is_err());
        assert!(Discount::parse(None, Some(100), None).is_err());
        assert_eq!(
            Discount::parse(None, Some(100), Some("usd")),
            Ok(Discount::Amount(usd(100)))
        );
    }

    #[test]
    fn key_uploads_skip_blanks_and_set_repeats_aside() {
        let upload = parse_license_keys(["A-1", " A-2 ", "", "A-1"]).unwrap();
        assert_eq!(upload.keys, ["A-1", "A-2"]);
        assert_eq!(upload.repeated, ["A-1"]);
        assert!(parse_license_keys(["", "  "]).is_err());
    }

    #[test]
    fn outgoing_urls() {
        assert!(parse_outgoing_url("url", "https://example.com/hook").is_ok());
        assert!(parse_outgoing_url("url", "ftp://example.com").is_err());
        assert!(parse_outgoing_url("url", "not a url").is_err());
        assert!(parse_outgoing_url("url", "https://u:p@example.com").is_err());
    }

    #[test]
    fn coupons_stop_working_when_expired_or_used_up() {
        let now = Utc::now();
        assert_eq!(coupon_unusable_reason(true, None, None, 0, now), None);
        assert!(coupon_unusable_reason(true, Some(now), None, 0, now).is_some());
        assert!(coupon_unusable_reason(true, None, Some(2), 2, now).is_some());
        assert!(coupon_unusable_reason(false, None, None, 0, now).is_some());
    }
}
