//! Money: an integer amount of minor units (cents) and its ISO 4217 currency.
//! There are no floats anywhere in Kassa's money paths.

use crate::Invalid;

/// The largest amount Kassa accepts for a single price (10 billion in major units of a
/// two-decimal currency). Keeps quantity × price far from `i64` overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// An ISO 4217 currency code Kassa can sell in, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Accepts an active ISO 4217 code in any case (`usd`, `USD`).
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let code = raw.trim().to_ascii_uppercase();
        match iso_currency::Currency::from_code(&code) {
            // Funds and metals (XAU, XDR, …) have no minor unit and are not money a
            // customer pays with.
            Some(c) if c.exponent().is_some() => Ok(Self(c)),
            _ => Err(Invalid::field(
                field,
                format!("{raw:?} is not an ISO 4217 currency code"),
            )),
        }
    }

    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// How many decimal places the minor unit has (2 for USD, 0 for JPY).
    pub fn exponent(&self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount in minor units with its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// A price: zero or more, at most [`MAX_AMOUNT`].
    pub fn parse_price(field: &str, amount: i64, currency: Currency) -> Result<Self, Invalid> {
        if amount < 0 {
            return Err(Invalid::field(field, "must not be negative"));
        }
        if amount > MAX_AMOUNT {
            return Err(Invalid::field(
                field,
                format!("must be at most {MAX_AMOUNT} minor units"),
            ));
        }
        Ok(Self { amount, currency })
    }

    /// An amount as people type it, in major units (`19.99`, `19,99`, `1500`), turned
    /// into minor units exactly: no more decimals than the currency has.
    pub fn parse_major(field: &str, raw: &str, currency: Currency) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let exp = currency.exponent() as usize;
        let (whole, frac) = match raw.split_once(['.', ',']) {
            Some((w, f)) => (w, f),
            None => (raw, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let shape = format!(
            "must be an amount like {}",
            if exp == 0 {
                "1500".to_owned()
            } else {
                format!("19.{}", "9".repeat(exp))
            }
        );
        if whole.is_empty() || whole.len() > 15 || !digits(whole) || !digits(frac) {
            return Err(Invalid::field(field, shape));
        }
        if frac.len() > exp {
            return Err(Invalid::field(
                field,
                format!("{} has {exp} decimal places at most", currency.code()),
            ));
        }
        let padded = format!("{whole}{frac:0<exp$}");
        let amount: i64 = padded
            .parse()
            .map_err(|_| Invalid::field(field, shape.clone()))?;
        Self::parse_price(field, amount, currency)
    }

    /// The amount written for people, e.g. `19.99 USD` or `1500 JPY`.
    pub fn display(&self) -> String {
        format!("{} {}", self.major(), self.currency)
    }

    /// The amount in major units, as [`Money::parse_major`] reads it back: `19.99`,
    /// `1500` (JPY).
    pub fn major(&self) -> String {
        let exp = self.currency.exponent();
        if exp == 0 {
            return self.amount.to_string();
        }
        let unit = 10_i64.pow(exp).unsigned_abs();
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / unit,
            abs % unit,
            width = exp as usize
        )
    }
}

/// What is left to refund of `paid` once `refunded` went back: never negative, so a
/// refund can never take more than was paid, however the two were recorded.
pub fn left_to_refund(paid: i64, refunded: i64) -> i64 {
    paid.saturating_sub(refunded.max(0)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_checked_against_iso_4217() {
        assert_eq!(Currency::parse("c", "usd").map(|c| c.code()), Ok("USD"));
        assert_eq!(Currency::parse("c", "JPY").map(|c| c.exponent()), Ok(0));
        assert!(Currency::parse("c", "XYZ").is_err());
        assert!(Currency::parse("c", "").is_err());
        assert!(Currency::parse("c", "XAU").is_err());
    }

    #[test]
    fn amounts_typed_in_major_units_are_exact() {
        let usd = Currency::parse("c", "USD").unwrap();
        let jpy = Currency::parse("c", "JPY").unwrap();
        let minor = |raw: &str, c| Money::parse_major("a", raw, c).map(|m| m.amount);
        assert_eq!(minor("19.99", usd), Ok(1999));
        assert_eq!(minor("19,9", usd), Ok(1990));
        assert_eq!(minor("20", usd), Ok(2000));
        assert_eq!(minor("1500", jpy), Ok(1500));
        for bad in [
            "",
            "1.999",
            "-1",
            "1e3",
            "abc",
            "1.2.3",
            "99999999999999999",
        ] {
            assert!(minor(bad, usd).is_err(), "{bad}");
        }
        assert!(minor("15.5", jpy).is_err());
    }

    #[test]
    fn prices_are_bounded() {
        let usd = Currency::parse("c", "USD").unwrap();
        assert!(Money::parse_price("a", -1, usd).is_err());
        assert!(Money::parse_price("a", MAX_AMOUNT + 1, usd).is_err());
        assert_eq!(
            Money::parse_price("a", 1999, usd).unwrap().display(),
            "19.99 USD"
        );
        let jpy = Currency::parse("c", "JPY").unwrap();
        assert_eq!(
            Money::parse_price("a", 1500, jpy).unwrap().display(),
            "1500 JPY"
        );
    }

    #[test]
    fn major_units_read_back_as_the_same_amount() {
        for (code, amount) in [
            ("USD", 1999),
            ("USD", 5),
            ("USD", 0),
            ("JPY", 1500),
            ("EUR", 1),
        ] {
            let currency = Currency::parse("c", code).unwrap();
            let money = Money::parse_price("a", amount, currency).unwrap();
            let back = Money::parse_major("a", &money.major(), currency).unwrap();
            assert_eq!(back, money, "{code} {amount}: {}", money.major());
        }
    }
}
