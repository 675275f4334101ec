//! The customer pages over HTTP: buy link, checkout, payment, order page and invoice.
//!
//! Pages are rendered on the server from `web/templates` with the texts and branding
//! of `kassa-emails` (they work with JavaScript off). Every form carries a CSRF token
//! (a double-submit cookie); every error is shown next to its field with what was
//! typed kept. Business rules are in `kassa-orders`; this crate only speaks HTTP.

mod buy;
mod checkout;
pub mod form;
mod link;
mod order;
pub mod page;
mod stripe_page;

use kassa_domain::mode::Mode;
pub use page::{WebContext, too_large};
use poem::{EndpointExt, Route, get, post};

/// Adds the customer pages at the root of `route`: `/{tenant}/buy/{product}`,
/// `/{tenant}/checkout`, `/{tenant}/orders/{token}` and below.
///
/// The test mode checkout is the same pages under `/{tenant}/test/`: what a customer
/// places there is a test order, paid with the sandbox, delivered from test pools.
pub fn mount(route: Route, ctx: WebContext) -> Route {
    let ctx = std::sync::Arc::new(ctx);
    route
        .at(
            "/:tenant/buy/:product",
            get(buy::buy).data(ctx.clone()).data(Mode::Live),
        )
        .at(
            "/:tenant/checkout",
            get(checkout::show)
                .post(checkout::submit)
                .data(ctx.clone())
                .data(Mode::Live),
        )
        .at(
            "/:tenant/test/buy/:product",
            get(buy::buy).data(ctx.clone()).data(Mode::Test),
        )
        .at(
            "/:tenant/test/checkout",
            get(checkout::show)
                .post(checkout::submit)
                .data(ctx.clone())
                .data(Mode::Test),
        )
        .at("/:tenant/orders/:token", get(order::show).data(ctx.clone()))
        .at(
            "/:tenant/orders/:token/pay",
            get(order::pay_page).post(order::pay).data(ctx.clone()),
        )
        .at(
            "/:tenant/orders/:token/method",
            post(order::change_method).data(ctx.clone()),
        )
        .at(
            "/:tenant/orders/:token/invoice",
            get(order::invoice).data(ctx),
        )
}
