//! Orders: their states and legal transitions, and the price maths of a cart.
//!
//! Rounding rule: line amounts are exact (quantity × unit amount). A percentage coupon
//! is applied to the sum of the lines it covers and rounded half up to the minor unit;
//! the discount is then spread over those lines in proportion, the remainder going to
//! the last, so line discounts add up to the order discount. Nothing is ever negative.
//! Tax is not charged yet (0); prices are taken as tax-inclusive.

use crate::Invalid;
use crate::catalog::{Discount, MAX_QUANTITY};
use crate::ids::ProductId;
use crate::money::{Currency, Money};

crate::names::named_enum! {
    /// Whether the order has been paid for.
    OrderStatus {
        NotPaid = "not_paid",
        Paid = "paid",
        Refunded = "refunded",
        Deleted = "deleted",
    }
}

impl OrderStatus {
    /// The one place that says which status changes are allowed.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (NotPaid, Paid) | (NotPaid, Deleted) | (Paid, Refunded)
        )
    }
}

crate::names::named_enum! {
    /// Whether every line's license information has been delivered.
    DeliveryStatus {
        NotDelivered = "not_delivered",
        Delivered = "delivered",
    }
}

crate::names::named_enum! {
    /// Where one order line's delivery stands.
    LineStatus {
        /// Not delivered yet: waiting for payment, or due (or retried) once paid.
        Pending = "pending",
        /// Paid, but its pool has too few keys; woken when keys arrive.
        WaitingStock = "waiting_stock",
        Delivered = "delivered",
        /// Given up after the retries; the merchant was told.
        Failed = "failed",
        /// Refunded before it was delivered: it ends here and is never delivered
        /// (back to `pending` if the refund fails at the provider).
        Cancelled = "cancelled",
    }
}

crate::names::named_enum! {
    /// What became of one payment attempt.
    PaymentStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

crate::names::named_enum! {
    /// Where one refund stands.
    RefundStatus {
        /// Sent to a provider that has not confirmed it yet.
        Pending = "pending",
        /// The money went back (the sandbox at once; a bank transfer the merchant
        /// recorded as sent back).
        Succeeded = "succeeded",
        /// The provider could not give the money back (Stripe's `failed` or
        /// `canceled`): it no longer counts, the order was given back its state.
        Failed = "failed",
    }
}

crate::names::named_enum! {
    /// How a customer pays.
    PaymentMethod {
        /// The built-in sandbox card gateway.
        TestCard = "test_card",
        /// Offline: the customer transfers the money; the merchant records it.
        BankTransfer = "bank_transfer",
        /// Online through the store's own Stripe account (a PaymentIntent confirmed on
        /// the payment page by Stripe.js): paid
        /// when Stripe's signed webhook says so, in both modes (the store's Stripe
        /// test keys serve test orders, its live keys live ones).
        Stripe = "stripe",
    }
}

impl PaymentMethod {
    /// A method given as input: one of the known names, else a field error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        Self::from_name(raw)
            .ok_or_else(|| Invalid::field(field, format!("must be one of {}", Self::names())))
    }

    /// A sandbox method: no real money moves.
    pub fn is_sandbox(self) -> bool {
        self == PaymentMethod::TestCard
    }

    /// Paid through a provider's page and confirmed by its signed webhook.
    pub fn is_provider(self) -> bool {
        self == PaymentMethod::Stripe
    }

    /// The method a page chooses for the customer among `offered`: `chosen` when it is
    /// offered (what they chose before), else the one there is, else a card (paid, and
    /// the licenses delivered, at once) before a bank transfer (which waits for the
    /// bank); none when nothing is offered.
    pub fn preselected(chosen: Option<Self>, offered: &[Self]) -> Option<Self> {
        if let Some(chosen) = chosen.filter(|c| offered.contains(c)) {
            return Some(chosen);
        }
        [
            PaymentMethod::Stripe,
            PaymentMethod::TestCard,
            PaymentMethod::BankTransfer,
        ]
        .into_iter()
        .find(|m| offered.contains(m))
    }
}

#[cfg(test)]
mod preselected_tests {
    use super::PaymentMethod::{self, *};

    #[test]
    fn a_page_chooses_what_was_chosen_else_a_card_before_a_transfer() {
        assert_eq!(
            PaymentMethod::preselected(None, &[BankTransfer]),
            Some(BankTransfer)
        );
        assert_eq!(
            PaymentMethod::preselected(None, &[BankTransfer, Stripe]),
            Some(Stripe)
        );
        assert_eq!(
            PaymentMethod::preselected(None, &[TestCard, BankTransfer]),
            Some(TestCard)
        );
        assert_eq!(
            PaymentMethod::preselected(Some(BankTransfer), &[TestCard, BankTransfer]),
            Some(BankTransfer)
        );
        // What was chosen and is no longer offered (the merchant turned it off).
        assert_eq!(
            PaymentMethod::preselected(Some(TestCard), &[BankTransfer]),
            Some(BankTransfer)
        );
        assert_eq!(PaymentMethod::preselected(Some(TestCard), &[]), None);
    }
}

/// What one cart line costs, as the catalog says now.
#[derive(Debug, Clone)]
pub struct LineInput {
    pub product_id: ProductId,
    pub name: String,
    pub quantity: i64,
    /// The product's price in the order's currency (or a signed override).
    pub unit_amount: i64,
    /// A fixed discount on this line from a signed link, in minor units.
    pub fixed_discount: i64,
}

/// A coupon as it applies to a cart.
#[derive(Debug, Clone)]
pub struct CouponInput {
    pub code: String,
    pub discount: Discount,
    /// Empty means every product.
    pub product_ids: Vec<ProductId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub product_id: ProductId,
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    /// quantity × unit_amount.
    pub subtotal: i64,
    pub discount: i64,
    /// subtotal − discount.
    pub total: i64,
}

/// The prices of a cart: shown on the page, stored with the order, and charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub currency: Currency,
    pub lines: Vec<PricedLine>,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    /// The coupon code that took something off, if any.
    pub coupon_code: Option<String>,
}

impl Quote {
    pub fn total_money(&self) -> Money {
        Money {
            amount: self.total,
            currency: self.currency,
        }
    }
}

/// Prices a cart. Fails on an empty cart or an impossible quantity.
pub fn quote(
    currency: Currency,
    lines: &[LineInput],
    coupon: Option<&CouponInput>,
) -> Result<Quote, Invalid> {
    if lines.is_empty() {
        return Err(Invalid::field("lines", "the cart is empty"));
    }
    let mut priced = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(Invalid::field(
                format!("lines[{i}].quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        let subtotal = line
            .quantity
            .checked_mul(line.unit_amount)
            .ok_or_else(|| Invalid::field(format!("lines[{i}].quantity"), "is too large"))?;
        let discount = line.fixed_discount.clamp(0, subtotal);
        priced.push(PricedLine {
            product_id: line.product_id.clone(),
            name: line.name.clone(),
            quantity: line.quantity,
            unit_amount: line.unit_amount,
            subtotal,
            discount,
            total: subtotal - discount,
        });
    }
    let mut coupon_code = None;
    if let Some(c) = coupon {
        let covered: Vec<usize> = priced
            .iter()
            .enumerate()
            .filter(|(_, l)| c.product_ids.is_empty() || c.product_ids.contains(&l.product_id))
            .map(|(i, _)| i)
            .collect();
        let base: i64 = covered.iter().map(|&i| priced[i].total).sum();
        let off = c.discount.amount_off(Money {
            amount: base,
            currency,
        });
        if off > 0 {
            coupon_code = Some(c.code.clone());
            spread(&mut priced, &covered, base, off);
        }
    }
    let subtotal = priced.iter().map(|l| l.subtotal).sum();
    let discount = priced.iter().map(|l| l.discount).sum();
    let total = priced.iter().map(|l| l.total).sum();
    Ok(Quote {
        currency,
        lines: priced,
        subtotal,
        discount,
        tax: 0,
        total,
        coupon_code,
    })
}

/// Spreads `off` (at most `base`, the covered lines' total) over the covered lines in
/// proportion to their totals, all of it: the shares round down, and what rounding
/// left over is taken from the covered lines that still have room, in order.
fn spread(lines: &mut [PricedLine], covered: &[usize], base: i64, off: i64) {
    let mut left = off;
    for (n, &i) in covered.iter().enumerate() {
        let share = if n + 1 == covered.len() {
            left
        } else {
            i64::try_from(i128::from(off) * i128::from(lines[i].total) / i128::from(base.max(1)))
                .unwrap_or(0)
        };
        let share = share.clamp(0, lines[i].total);
        lines[i].discount += share;
        lines[i].total -= share;
        left -= share;
    }
    for &i in covered {
        let share = left.clamp(0, lines[i].total);
        lines[i].discount += share;
        lines[i].total -= share;
        left -= share;
    }
}

/// A unique, human-typable payment reference for a bank transfer, e.g. `KS-4F7Q-9M2C`.
pub fn payment_reference() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let mut pick = || char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]);
    let a: String = (0..4).map(|_| pick()).collect();
    let b: String = (0..4).map(|_| pick()).collect();
    format!("KS-{a}-{b}")
}

/// An unguessable token that gives a customer access to one order's pages.
pub fn order_token() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("c", "USD").unwrap()
    }

    fn line(quantity: i64, unit_amount: i64) -> LineInput {
        LineInput {
            product_id: ProductId::generate(),
            name: "P".into(),
            quantity,
            unit_amount,
            fixed_discount: 0,
        }
    }

    #[test]
    fn only_legal_status_changes() {
        use OrderStatus::*;
        assert!(NotPaid.can_become(Paid));
        assert!(NotPaid.can_become(Deleted));
        assert!(!Paid.can_become(NotPaid));
        assert!(!Deleted.can_become(Paid));
        assert!(!Paid.can_become(Deleted));
    }

    #[test]
    fn quantity_times_price() {
        let q = quote(usd(), &[line(2, 1999)], None).unwrap();
        assert_eq!((q.subtotal, q.discount, q.total), (3998, 0, 3998));
    }

    #[test]
    fn percent_coupons_round_half_up_and_spread_over_lines() {
        let lines = [line(1, 333), line(1, 334)];
        let coupon = CouponInput {
            code: "TEN".into(),
            discount: Discount::Percent(10),
            product_ids: vec![],
        };
        let q = quote(usd(), &lines, Some(&coupon)).unwrap();
        // 10 % of 6.67 is 0.667, rounded half up to 0.67.
        assert_eq!(q.discount, 67);
        assert_eq!(q.total, 600);
        assert_eq!(q.lines.iter().map(|l| l.discount).sum::<i64>(), 67);
        assert_eq!(q.lines.iter().map(|l| l.total).sum::<i64>(), q.total);
    }

    #[test]
    fn scoped_coupons_only_touch_their_products() {
        let lines = [line(1, 1000), line(1, 1000)];
        let coupon = CouponInput {
            code: "HALF".into(),
            discount: Discount::Percent(50),
            product_ids: vec![lines[1].product_id.clone()],
        };
        let q = quote(usd(), &lines, Some(&coupon)).unwrap();
        assert_eq!(q.lines[0].discount, 0);
        assert_eq!(q.lines[1].discount, 500);
        assert_eq!(q.total, 1500);
    }

    #[test]
    fn fixed_discounts_never_go_below_zero() {
        let mut l = line(1, 500);
        l.fixed_discount = 900;
        let q = quote(usd(), &[l], None).unwrap();
        assert_eq!(q.total, 0);
        assert_eq!(q.discount, 500);
    }

    #[test]
    fn bad_carts() {
        assert!(quote(usd(), &[], None).is_err());
        assert!(quote(usd(), &[line(0, 1)], None).is_err());
        assert!(quote(usd(), &[line(MAX_QUANTITY + 1, 1)], None).is_err());
    }

    #[test]
    fn references_are_distinct() {
        assert_ne!(payment_reference(), payment_reference());
        assert_eq!(order_token().len(), 32);
    }

    #[test]
    fn an_amount_coupon_comes_off_in_full_over_small_lines() {
        // Three lines of 0.01 and a coupon of 0.02: the proportional shares round down
        // to nothing, and the last line alone cannot take the 0.02.
        let lines = [line(1, 1), line(1, 1), line(1, 1)];
        let coupon = CouponInput {
            code: "TWO".into(),
            discount: Discount::Amount(Money {
                amount: 2,
                currency: usd(),
            }),
            product_ids: vec![],
        };
        let q = quote(usd(), &lines, Some(&coupon)).unwrap();
        assert_eq!((q.subtotal, q.discount, q.total), (3, 2, 1));
    }

    mod money_maths {
        use proptest::prelude::*;

        use super::super::*;
        use crate::money::MAX_AMOUNT;

        fn usd() -> Currency {
            Currency::parse("c", "USD").unwrap()
        }

        /// A line as a cart or an API call can make it: quantity and price within the
        /// bounds the edges enforce, and any fixed discount a signed link may carry.
        fn a_line() -> impl Strategy<Value = LineInput> {
            (
                1..=MAX_QUANTITY,
                prop_oneof![0..=100i64, 0..=MAX_AMOUNT],
                prop_oneof![Just(0i64), -10..=10_000i64, any::<i64>()],
            )
                .prop_map(|(quantity, unit_amount, fixed_discount)| LineInput {
                    product_id: ProductId::generate(),
                    name: "P".into(),
                    quantity,
                    unit_amount,
                    fixed_discount,
                })
        }

        fn a_discount() -> impl Strategy<Value = Discount> {
            prop_oneof![
                (1..=100i64).prop_map(Discount::Percent),
                prop_oneof![1..=1_000i64, 1..=MAX_AMOUNT].prop_map(|amount| Discount::Amount(
                    Money {
                        amount,
                        currency: usd()
                    }
                )),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Totals never go negative, never overflow, and always add up: each line's
            /// total is its subtotal less its discount, the order's figures are the sums
            /// of its lines', and a coupon takes off exactly what it says, in full,
            /// from the lines it covers.
            #[test]
            fn totals_add_up(
                lines in proptest::collection::vec(a_line(), 1..=100),
                discount in proptest::option::of(a_discount()),
                scope in proptest::collection::vec(any::<bool>(), 100),
            ) {
                let coupon = discount.map(|discount| CouponInput {
                    code: "C".into(),
                    discount,
                    product_ids: lines
                        .iter()
                        .zip(&scope)
                        .filter(|(_, covered)| **covered)
                        .map(|(l, _)| l.product_id.clone())
                        .collect(),
                });
                let q = quote(usd(), &lines, coupon.as_ref()).unwrap();
                let mut fixed_total = 0i64;
                let mut base = 0i64;
                for (l, input) in q.lines.iter().zip(&lines) {
                    prop_assert_eq!(l.subtotal, input.quantity * input.unit_amount);
                    prop_assert!(0 <= l.discount && l.discount <= l.subtotal, "{:?}", l);
                    prop_assert_eq!(l.total, l.subtotal - l.discount);
                    let fixed = input.fixed_discount.clamp(0, l.subtotal);
                    fixed_total += fixed;
                    let covered = coupon.as_ref().is_some_and(|c| {
                        c.product_ids.is_empty() || c.product_ids.contains(&l.product_id)
                    });
                    if covered {
                        base += l.subtotal - fixed;
                    } else {
                        prop_assert_eq!(l.discount, fixed, "a line the coupon does not cover");
                    }
                }
                prop_assert_eq!(q.subtotal, q.lines.iter().map(|l| l.subtotal).sum::<i64>());
                prop_assert_eq!(q.discount, q.lines.iter().map(|l| l.discount).sum::<i64>());
                prop_assert_eq!(q.total, q.lines.iter().map(|l| l.total).sum::<i64>());
                prop_assert_eq!(q.total, q.subtotal - q.discount);
                prop_assert!(q.total >= 0);
                let off = coupon.as_ref().map_or(0, |c| {
                    c.discount.amount_off(Money { amount: base, currency: usd() })
                });
                prop_assert!(off <= base);
                prop_assert_eq!(q.discount - fixed_total, off, "the coupon comes off in full");
                prop_assert_eq!(q.coupon_code.is_some(), off > 0);
            }
        }
    }
}
