//! Offers: the terms a merchant fixed for one product in a signed link (a unit price,
//! a fixed discount, the currency they are in, the quantities they hold for, and an
//! expiry). An offer travels with its cart line and is checked again whenever the
//! line is priced (on the page, when the order is placed) and, for its expiry, when
//! the order is paid: outside its terms the signed price does not apply, it is refused.
//!
//! How an offer is written in a link, and signed, is [`crate::signed_link`]'s.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::catalog::MAX_QUANTITY;
use crate::money::{Currency, MAX_AMOUNT};

/// The terms of a signed link for one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The unit price in minor units of `currency`, instead of the catalog's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_amount: Option<i64>,
    /// A fixed amount off the line, in minor units of `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<i64>,
    /// The ISO 4217 code the offer is in (upper case); always set when the offer has a
    /// price or a discount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The quantities the offer holds for, both included.
    pub min_quantity: i64,
    pub max_quantity: i64,
    /// Unix seconds; the offer holds before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// What a signed link may set, as raw text (already percent-decoded and trimmed;
/// absent when not in the link).
#[derive(Debug, Clone, Copy, Default)]
pub struct OfferTerms<'a> {
    pub price: Option<&'a str>,
    pub discount: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub quantity: Option<&'a str>,
    pub min_quantity: Option<&'a str>,
    pub max_quantity: Option<&'a str>,
    pub expires: Option<&'a str>,
}

/// Why an offer does not apply to a cart line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Breach {
    #[error("this offer expired on {}; ask the store for a new link", when(*.0))]
    Expired(i64),
    #[error("this offer is for {}", quantities(*.min, *.max))]
    Quantity { min: i64, max: i64 },
    #[error("this offer's price is in {0}; switch back to {0} or ask the store for a new link")]
    Currency(String),
}

fn when(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

fn quantities(min: i64, max: i64) -> String {
    if min == max {
        format!("a quantity of exactly {min}")
    } else {
        format!("a quantity between {min} and {max}")
    }
}

impl Offer {
    /// Reads a signed link's terms. Amounts are minor units (0 to
    /// [`MAX_AMOUNT`]); a price or a discount needs a currency; without
    /// `min_quantity` and `max_quantity` the offer holds for `quantity` units only
    /// (1 when absent), and `quantity` must lie within the bounds. Errors name the
    /// link's parameter.
    pub fn parse(terms: &OfferTerms<'_>) -> Result<(Offer, i64), Invalid> {
        let mut invalid = Invalid::default();
        let whole = |name: &str, raw: Option<&str>, min: i64, max: i64, invalid: &mut Invalid| {
            let raw = raw?;
            match raw.parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Some(v),
                _ => {
                    invalid.push(name, format!("must be a whole number from {min} to {max}"));
                    None
                }
            }
        };
        let amount = |name: &str, raw: Option<&str>, invalid: &mut Invalid| {
            whole(name, raw, 0, MAX_AMOUNT, invalid)
        };
        let count = |name: &str, raw: Option<&str>, invalid: &mut Invalid| {
            whole(name, raw, 1, MAX_QUANTITY, invalid)
        };
        let unit_amount = amount("price", terms.price, &mut invalid);
        let discount = amount("discount", terms.discount, &mut invalid);
        let currency = terms
            .currency
            .and_then(|c| invalid.check(Currency::parse("currency", c)));
        if (terms.price.is_some() || terms.discount.is_some()) && terms.currency.is_none() {
            invalid.push("currency", "is required with a price or a discount");
        }
        let quantity = count("quantity", terms.quantity, &mut invalid);
        let min = count("min_quantity", terms.min_quantity, &mut invalid);
        let max = count("max_quantity", terms.max_quantity, &mut invalid);
        let expires = terms.expires.and_then(|raw| match raw.parse::<i64>() {
            Ok(v) if v > 0 => Some(v),
            _ => {
                invalid.push("expires", "must be a Unix time in seconds");
                None
            }
        });
        invalid.into_result()?;
        let bounded = terms.min_quantity.is_some() || terms.max_quantity.is_some();
        let (min_quantity, max_quantity) = if bounded {
            (min.unwrap_or(1), max.unwrap_or(MAX_QUANTITY))
        } else {
            let fixed = quantity.unwrap_or(1);
            (fixed, fixed)
        };
        if min_quantity > max_quantity {
            return Err(Invalid::field(
                "min_quantity",
                "must not be more than max_quantity",
            ));
        }
        let quantity = quantity.unwrap_or(min_quantity);
        if !(min_quantity..=max_quantity).contains(&quantity) {
            return Err(Invalid::field(
                "quantity",
                format!("must be {}", quantities(min_quantity, max_quantity)),
            ));
        }
        let offer = Offer {
            unit_amount,
            discount,
            currency: currency.map(|c| c.code().to_owned()),
            min_quantity,
            max_quantity,
            expires,
        };
        Ok((offer, quantity))
    }

    /// When the offer stops holding.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires.and_then(|s| Utc.timestamp_opt(s, 0).single())
    }

    /// Ok while the offer has not expired.
    pub fn open_at(&self, now: DateTime<Utc>) -> Result<(), Breach> {
        match self.expires {
            Some(at) if now.timestamp() >= at => Err(Breach::Expired(at)),
            _ => Ok(()),
        }
    }

    /// Checks the offer for a line of `quantity` in `currency` at `now`.
    pub fn check(
        &self,
        quantity: i64,
        currency: Currency,
        now: DateTime<Utc>,
    ) -> Result<(), Breach> {
        self.open_at(now)?;
        if let Some(code) = &self.currency
            && code != currency.code()
        {
            return Err(Breach::Currency(code.clone()));
        }
        if !(self.min_quantity..=self.max_quantity).contains(&quantity) {
            return Err(Breach::Quantity {
                min: self.min_quantity,
                max: self.max_quantity,
            });
        }
        Ok(())
    }
}

/// What a cart line costs: its unit amount and fixed discount, from the catalog's
/// `catalog_amount` and the line's offer if it has one. A line outside its offer's
/// terms is refused (`lines[i].quantity` for a quantity, `lines[i].offer` otherwise):
/// the signed price never applies to other terms, and the catalog price is not put in
/// its place behind the customer's back.
pub fn line_amounts(
    index: usize,
    offer: Option<&Offer>,
    quantity: i64,
    currency: Currency,
    catalog_amount: i64,
    now: DateTime<Utc>,
) -> Result<(i64, i64), Invalid> {
    let Some(offer) = offer else {
        return Ok((catalog_amount, 0));
    };
    match offer.check(quantity, currency, now) {
        Ok(()) => Ok((
            offer.unit_amount.unwrap_or(catalog_amount),
            offer.discount.unwrap_or(0),
        )),
        Err(breach @ Breach::Quantity { .. }) => Err(Invalid::field(
            format!("lines[{index}].quantity"),
            breach.to_string(),
        )),
        Err(breach) => Err(Invalid::field(
            format!("lines[{index}].offer"),
            breach.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(unix, 0).unwrap()
    }

    fn usd() -> Currency {
        Currency::parse("c", "USD").unwrap()
    }

    fn offer(terms: OfferTerms<'_>) -> Offer {
        Offer::parse(&terms).unwrap().0
    }

    #[test]
    fn a_signed_price_holds_only_in_its_currency() {
        // The attack: a 9.00 USD signature bought 1,000 units at 900 JPY.
        let o = offer(OfferTerms {
            price: Some("900"),
            currency: Some("usd"),
            ..OfferTerms::default()
        });
        assert_eq!(o.currency.as_deref(), Some("USD"));
        let jpy = Currency::parse("c", "JPY").unwrap();
        let refused = line_amounts(0, Some(&o), 1, jpy, 3000, at(0)).unwrap_err();
        assert_eq!(refused.errors[0].field, "lines[0].offer");
        assert!(refused.errors[0].message.contains("in USD"));
        assert_eq!(
            line_amounts(0, Some(&o), 1, usd(), 1999, at(0)),
            Ok((900, 0))
        );
    }

    #[test]
    fn a_signed_quantity_is_fixed_unless_bounds_are_signed() {
        // The attack: a discount signed for 10 units kept when the quantity dropped to 1.
        let (o, quantity) = Offer::parse(&OfferTerms {
            discount: Some("9000"),
            currency: Some("USD"),
            quantity: Some("10"),
            ..OfferTerms::default()
        })
        .unwrap();
        assert_eq!((quantity, o.min_quantity, o.max_quantity), (10, 10, 10));
        let refused = line_amounts(2, Some(&o), 1, usd(), 1000, at(0)).unwrap_err();
        assert_eq!(refused.errors[0].field, "lines[2].quantity");
        assert_eq!(
            refused.errors[0].message,
            "this offer is for a quantity of exactly 10"
        );
        assert_eq!(
            line_amounts(2, Some(&o), 10, usd(), 1000, at(0)),
            Ok((1000, 9000))
        );

        let (o, quantity) = Offer::parse(&OfferTerms {
            min_quantity: Some("2"),
            max_quantity: Some("5"),
            ..OfferTerms::default()
        })
        .unwrap();
        assert_eq!(quantity, 2, "the lower bound when no quantity is given");
        assert!(o.check(5, usd(), at(0)).is_ok());
        assert_eq!(
            o.check(6, usd(), at(0)),
            Err(Breach::Quantity { min: 2, max: 5 })
        );
        let only_max = offer(OfferTerms {
            max_quantity: Some("3"),
            ..OfferTerms::default()
        });
        assert_eq!((only_max.min_quantity, only_max.max_quantity), (1, 3));
    }

    #[test]
    fn an_offer_expires_for_good() {
        let o = offer(OfferTerms {
            price: Some("500"),
            currency: Some("USD"),
            expires: Some("2000"),
            ..OfferTerms::default()
        });
        assert!(o.check(1, usd(), at(1999)).is_ok());
        assert_eq!(o.check(1, usd(), at(2000)), Err(Breach::Expired(2000)));
        let refused = line_amounts(0, Some(&o), 1, usd(), 1999, at(5000)).unwrap_err();
        assert_eq!(refused.errors[0].field, "lines[0].offer");
        assert_eq!(
            refused.errors[0].message,
            "this offer expired on 1970-01-01 00:33 UTC; ask the store for a new link"
        );
        assert_eq!(o.expires_at(), Some(at(2000)));
    }

    #[test]
    fn bad_terms_name_the_link_parameter() {
        let fields = |terms: OfferTerms<'_>| -> Vec<String> {
            Offer::parse(&terms)
                .unwrap_err()
                .errors
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(
            fields(OfferTerms {
                price: Some("-1"),
                discount: Some("1.5"),
                currency: Some("XYZ"),
                quantity: Some("0"),
                min_quantity: Some("abc"),
                max_quantity: Some("1001"),
                expires: Some("soon"),
            }),
            [
                "price",
                "discount",
                "currency",
                "quantity",
                "min_quantity",
                "max_quantity",
                "expires"
            ]
        );
        assert_eq!(
            fields(OfferTerms {
                price: Some("1"),
                ..OfferTerms::default()
            }),
            ["currency"]
        );
        assert_eq!(
            fields(OfferTerms {
                min_quantity: Some("5"),
                max_quantity: Some("2"),
                ..OfferTerms::default()
            }),
            ["min_quantity"]
        );
        assert_eq!(
            fields(OfferTerms {
                quantity: Some("9"),
                max_quantity: Some("2"),
                ..OfferTerms::default()
            }),
            ["quantity"]
        );
    }

    #[test]
    fn a_line_without_offer_costs_the_catalog_price() {
        assert_eq!(line_amounts(0, None, 7, usd(), 1999, at(0)), Ok((1999, 0)));
    }
}
