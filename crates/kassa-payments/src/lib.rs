//! Payment providers. A provider takes a charge request and says whether the money
//! moved; it never sees the order store. Card numbers pass through here and are
//! dropped: only the brand and last four digits leave this crate.
//!
//! Real providers implement [`provider::PaymentProvider`] (create a payment, read its
//! signed webhook, refund); [`stripe`] is the first. They report facts; whether an
//! order is paid is `kassa_domain::workflow`'s to decide.
//!
//! The `test_card` sandbox (test mode only, like Stripe's test cards):
//! `4242 4242 4242 4242` succeeds, `4000 0000 0000 0002` is declined with
//! `card_declined`, `4000 0000 0000 9995` fails with `insufficient_funds`; any other
//! number that passes the Luhn check succeeds; any future expiry and any CVC.

pub mod provider;
pub mod stripe;

use chrono::Datelike;
use kassa_domain::Invalid;
use kassa_domain::money::Money;

/// What the customer typed on the card form.
pub struct CardInput<'a> {
    pub number: &'a str,
    /// `MM/YY` or `MM/YYYY`.
    pub expiry: &'a str,
    pub cvc: &'a str,
}

impl std::fmt::Debug for CardInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardInput { .. }")
    }
}

/// A card checked for shape. Only `brand` and `last4` may be stored or shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Card {
    digits: String,
    pub brand: &'static str,
    pub last4: String,
}

impl Card {
    /// Checks the number (Luhn), the expiry (this month or later) and the CVC, naming
    /// the form fields that are wrong: `card_number`, `expiry`, `cvc`.
    pub fn parse(input: &CardInput<'_>, today: chrono::NaiveDate) -> Result<Self, Invalid> {
        let mut invalid = Invalid::default();
        let digits: String = input
            .number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if !(12..=19).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || !luhn(&digits)
        {
            invalid.push("card_number", "is not a valid card number");
        }
        match parse_expiry(input.expiry) {
            None => invalid.push("expiry", "must be a month and year like 12/30"),
            Some((year, month)) => {
                if (year, month) < (today.year(), today.month()) {
                    invalid.push("expiry", "the card has expired");
                }
            }
        }
        let cvc = input.cvc.trim();
        if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            invalid.push("cvc", "must be 3 or 4 digits");
        }
        invalid.into_result()?;
        Ok(Self {
            brand: brand(&digits),
            last4: digits[digits.len() - 4..].to_owned(),
            digits,
        })
    }
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("brand", &self.brand)
            .field("last4", &self.last4)
            .finish_non_exhaustive()
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn parse_expiry(raw: &str) -> Option<(i32, u32)> {
    let (m, y) = raw.trim().split_once('/')?;
    let month: u32 = m.trim().parse().ok()?;
    let year: i32 = y.trim().parse().ok()?;
    let year = match y.trim().len() {
        2 => 2000 + year,
        4 => year,
        _ => return None,
    };
    (1..=12).contains(&month).then_some((year, month))
}

fn brand(digits: &str) -> &'static str {
    match digits.as_bytes().first() {
        Some(b'4') => "visa",
        Some(b'5') => "mastercard",
        Some(b'3') if digits.starts_with("34") || digits.starts_with("37") => "amex",
        Some(b'6') => "discover",
        _ => "card",
    }
}

/// A refused charge: a stable code and a message for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    pub code: &'static str,
    pub message: &'static str,
}

/// A charge that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider's id for the charge.
    pub reference: String,
}

/// A random id for something the sandbox did, e.g. `test_ch_…`.
fn sandbox_reference(prefix: &str) -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    let id: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("{prefix}_{id}")
}

/// A refund that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRefund {
    /// The sandbox's id for it, `test_re_…`.
    pub reference: String,
}

impl TestCardGateway {
    /// Gives `amount` of a sandbox charge back: at once, always (no money moved).
    pub fn refund(&self, _amount: Money) -> SandboxRefund {
        SandboxRefund {
            reference: sandbox_reference("test_re"),
        }
    }
}

/// A way to take a card payment.
pub trait CardProvider: Send + Sync {
    fn charge(&self, card: &Card, amount: Money) -> Result<Charge, Decline>;
}

/// The sandbox gateway: outcomes chosen by card number, no money moves.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestCardGateway;

impl CardProvider for TestCardGateway {
    fn charge(&self, card: &Card, _amount: Money) -> Result<Charge, Decline> {
        match card.digits.as_str() {
            "4000000000000002" => Err(Decline {
                code: "card_declined",
                message: "Your card was declined.",
            }),
            "4000000000009995" => Err(Decline {
                code: "insufficient_funds",
                message: "Your card has insufficient funds.",
            }),
            _ => Ok(Charge {
                reference: sandbox_reference("test_ch"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_domain::money::Currency;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    fn card(number: &str) -> Result<Card, Invalid> {
        Card::parse(
            &CardInput {
                number,
                expiry: "12/30",
                cvc: "123",
            },
            today(),
        )
    }

    fn usd(amount: i64) -> Money {
        Money {
            amount,
            currency: Currency::parse("c", "USD").unwrap(),
        }
    }

    #[test]
    fn the_documented_test_numbers() {
        let gw = TestCardGateway;
        let ok = card("4242 4242 4242 4242").unwrap();
        assert_eq!((ok.brand, ok.last4.as_str()), ("visa", "4242"));
        assert!(gw.charge(&ok, usd(100)).is_ok());
        let declined = gw.charge(&card("4000 0000 0000 0002").unwrap(), usd(100));
        assert_eq!(declined.unwrap_err().code, "card_declined");
        let poor = gw.charge(&card("4000000000009995").unwrap(), usd(100));
        assert_eq!(poor.unwrap_err().code, "insufficient_funds");
    }

    #[test]
    fn malformed_cards_name_their_fields() {
        let err = Card::parse(
            &CardInput {
                number: "4242 4242 4242 4241",
                expiry: "10/26",
                cvc: "12",
            },
            today(),
        )
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["card_number", "expiry", "cvc"]);
        assert!(card("abcd").is_err());
        assert!(
            Card::parse(
                &CardInput {
                    number: "4242424242424242",
                    expiry: "13/30",
                    cvc: "123"
                },
                today()
            )
            .is_err()
        );
    }

    #[test]
    fn debug_output_never_shows_the_number() {
        let input = CardInput {
            number: "4242424242424242",
            expiry: "12/30",
            cvc: "123",
        };
        assert!(!format!("{input:?}").contains("4242"));
        let card = Card::parse(&input, today()).unwrap();
        assert!(!format!("{card:?}").contains("42424242"));
    }
}
