//! Kassa's customer pages, rendered on the server from the templates and texts under
//! `web/` (they work with JavaScript off): the buy link, the checkout with its cart,
//! the payment page, the order page and the invoice. Every form carries a CSRF token
//! (a double-submit cookie); every error is shown next to its field with what was
//! typed kept. Business rules are in `kassa-checkout`; this crate only speaks HTTP.

mod buy;
mod checkout;
pub mod emails;
mod order;
mod page;

use kassa_store::Store;
use poem::{EndpointExt, Route, get, post};

/// What every page needs.
#[derive(Clone)]
pub struct WebContext {
    pub store: Store,
    /// Where customers reach Kassa, without a trailing slash.
    pub public_url: String,
    /// Whether cookies are marked `Secure` (true when the public URL is https).
    pub secure_cookies: bool,
}

/// Adds the customer pages at the root of `route`: `/{tenant}/buy/{product}`,
/// `/{tenant}/checkout`, `/{tenant}/orders/{token}` and below.
pub fn mount(route: Route, ctx: WebContext) -> Route {
    let ctx = std::sync::Arc::new(ctx);
    route
        .at("/:tenant/buy/:product", get(buy::buy).data(ctx.clone()))
        .at(
            "/:tenant/checkout",
            get(checkout::show).post(checkout::submit).data(ctx.clone()),
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
