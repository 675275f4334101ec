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

    /// The amount written for people, e.g. `19.99 USD` or `1500 JPY`.
    pub fn display(&self) -> String {
        let exp = self.currency.exponent();
        if exp == 0 {
            return format!("{} {}", self.amount, self.currency);
        }
        let unit = 10_i64.pow(exp);
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        let unit = unit.unsigned_abs();
        format!(
            "{sign}{}.{:0width$} {}",
            abs / unit,
            abs % unit,
            self.currency,
            width = exp as usize
        )
    }
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
}
