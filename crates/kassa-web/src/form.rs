//! The checkout form as a browser sends it, applied to a cart: what the customer typed
//! (kept, within bounds, so the page shows it again), the quantities (each checked
//! next to its line), and the button pressed. No I/O, so it is fuzzed
//! (`fuzz/fuzz_targets/checkout_form.rs`) and property-tested: any form, however
//! malformed, gives a cart within bounds and field errors, never a panic.

use std::collections::BTreeMap;

use kassa_domain::catalog::{MAX_QUANTITY, parse_quantity};
use kassa_store::CartRecord;
use serde::Serialize;

use crate::page::{Errors, form_value};

/// The longest email and name kept in a cart.
const MAX_TEXT: usize = 300;

/// What the customer typed, shown again on the page.
#[derive(Debug, Default, Serialize)]
pub struct FormState {
    pub email: String,
    pub name: String,
    pub coupon: String,
    pub payment_method: String,
    pub consent_terms: bool,
    pub consent_personal_data: bool,
    /// The buy link the page was opened from while no cart is saved: the first POST
    /// makes the cart from it (see `buy`).
    pub link: Option<String>,
}

impl FormState {
    pub fn from_cart(cart: &CartRecord) -> Self {
        Self {
            email: cart.email.clone().unwrap_or_default(),
            name: cart.name.clone().unwrap_or_default(),
            coupon: cart.coupon_code.clone().unwrap_or_default(),
            payment_method: cart.payment_method.clone().unwrap_or_default(),
            consent_terms: false,
            consent_personal_data: false,
            link: None,
        }
    }
}

/// What the form asked for and what it changed.
#[derive(Debug)]
pub struct Submitted {
    /// What was typed, shown again.
    pub state: FormState,
    /// `action`: `update` (the default), `continue`, `back`, `apply_coupon` or
    /// `remove:N`.
    pub action: String,
    pub errors: Errors,
    /// Quantities typed that were not taken, by line, shown again beside their error.
    pub typed: BTreeMap<usize, String>,
}

/// Applies the checkout form `form` to `cart`.
pub fn apply(form: &[(String, String)], cart: &mut CartRecord) -> Submitted {
    let mut errors = Errors::new();
    let text = |name: &str| form_value(form, name).unwrap_or_default().trim().to_owned();
    let state = FormState {
        email: text("email"),
        name: text("name"),
        coupon: text("coupon"),
        payment_method: text("payment_method"),
        consent_terms: form_value(form, "consent_terms").is_some(),
        consent_personal_data: form_value(form, "consent_personal_data").is_some(),
        link: None,
    };
    // Keep what was typed, within reason: the page shows it again, errors included.
    cart.email =
        Some(state.email.chars().take(MAX_TEXT).collect()).filter(|s: &String| !s.is_empty());
    cart.name =
        Some(state.name.chars().take(MAX_TEXT).collect()).filter(|s: &String| !s.is_empty());
    cart.coupon_code =
        Some(state.coupon.to_ascii_uppercase()).filter(|s| !s.is_empty() && s.len() <= 64);
    if state.coupon.len() > 64 {
        errors.insert("coupon".into(), "this coupon does not exist".into());
    }
    cart.payment_method =
        Some(state.payment_method.clone()).filter(|s| !s.is_empty() && s.len() <= 40);
    if let Some(c) = form_value(form, "currency")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        cart.currency = Some(c.chars().take(3).collect::<String>().to_ascii_uppercase());
    }
    let mut typed = BTreeMap::new();
    for (i, line) in cart.lines.iter_mut().enumerate() {
        let Some(raw) = form_value(form, &format!("quantity_{i}")) else {
            continue;
        };
        match raw
            .trim()
            .parse::<i64>()
            .map_err(|_| ())
            .and_then(|q| parse_quantity("quantity", q).map_err(|_| ()))
        {
            Ok(q) => line.quantity = q,
            Err(()) => {
                typed.insert(i, raw.chars().take(20).collect());
                errors.insert(
                    format!("quantity_{i}"),
                    format!("must be a whole number between 1 and {MAX_QUANTITY}"),
                );
            }
        }
    }
    let action = form_value(form, "action").unwrap_or("update");
    if let Some(index) = action
        .strip_prefix("remove:")
        .and_then(|i| i.parse::<usize>().ok())
        && index < cart.lines.len()
    {
        cart.lines.remove(index);
    }
    Submitted {
        state,
        action: action.chars().take(40).collect(),
        errors,
        typed,
    }
}

/// Property tests (the cargo-fuzz target in `fuzz/` runs the same for longer).
#[cfg(test)]
mod properties {
    use kassa_domain::ids::ProductId;
    use kassa_store::CartLine;
    use proptest::prelude::*;

    use super::*;

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(
                &[
                    "email",
                    "name",
                    "coupon",
                    "payment_method",
                    "currency",
                    "consent_terms",
                    "consent_personal_data",
                    "action",
                    "quantity_0",
                    "quantity_1",
                    "quantity_2",
                ][..]
            )
            .prop_map(str::to_owned),
            ".{0,12}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof!["remove:[0-9]{1,3}", "-?[0-9]{1,25}", ".{0,400}",]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any form, however malformed, leaves a cart within bounds and never panics.
        #[test]
        fn any_form_leaves_a_cart_within_bounds(
            form in proptest::collection::vec((field(), value()), 0..16),
            lines in 0usize..4,
        ) {
            let mut cart = CartRecord::default();
            for _ in 0..lines {
                cart.lines.push(CartLine { product_id: ProductId::generate(), quantity: 1, offer: None });
            }
            let sent = apply(&form, &mut cart);
            prop_assert!(cart.lines.len() <= lines);
            prop_assert!(cart.lines.len() + 1 >= lines);
            prop_assert!(cart.lines.iter().all(|l| (1..=MAX_QUANTITY).contains(&l.quantity)));
            prop_assert!(cart.email.as_ref().is_none_or(|e| e.chars().count() <= MAX_TEXT));
            prop_assert!(cart.name.as_ref().is_none_or(|n| n.chars().count() <= MAX_TEXT));
            prop_assert!(cart.coupon_code.as_ref().is_none_or(|c| c.len() <= 64));
            prop_assert!(cart.currency.as_ref().is_none_or(|c| c.chars().count() <= 3));
            prop_assert!(sent.typed.values().all(|t| t.chars().count() <= 20));
            prop_assert!(sent.action.chars().count() <= 40);
        }
    }
}
