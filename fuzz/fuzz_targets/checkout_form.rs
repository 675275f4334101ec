//! Any body posted to the checkout, read as the form is read, applied to a cart of
//! three lines: no panic, and the cart stays within bounds.
#![no_main]

use kassa_domain::catalog::MAX_QUANTITY;
use kassa_domain::ids::ProductId;
use kassa_store::{CartLine, CartRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().collect();
    let mut cart = CartRecord::default();
    for _ in 0..3 {
        cart.lines.push(CartLine {
            product_id: ProductId::generate(),
            quantity: 1,
            offer: None,
        });
    }
    let sent = kassa_web::form::apply(&form, &mut cart);
    assert!(cart.lines.len() >= 2);
    assert!(
        cart.lines
            .iter()
            .all(|l| (1..=MAX_QUANTITY).contains(&l.quantity))
    );
    assert!(cart.email.as_ref().is_none_or(|e| e.chars().count() <= 300));
    assert!(sent.action.chars().count() <= 40);
});
