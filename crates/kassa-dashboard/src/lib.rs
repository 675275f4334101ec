//! The merchant dashboard under `/dashboard`: accounts (sign up, verify, log in,
//! reset), stores and their settings, the catalog, orders with their timeline and
//! actions, developers' tools (API keys, webhooks, plugins) and the team.
//!
//! Pages are rendered on the server from `web/dashboard` and work without JavaScript.
//! Who may do what is decided by `kassa_domain::account::Role::may`; what happens to
//! orders by `kassa-orders`; this crate only speaks HTTP and must not hold SQL.

// A handler's refusal is the page it answers with, built once per request.
#![allow(clippy::result_large_err)]

mod account;
mod api_keys;
mod checkout_links;
mod coupons;
mod home;
mod mode;
mod orders;
mod outbox;
mod page;
mod plugins;
mod pools;
mod products;
mod stores;
mod team;
mod templates;
mod webhooks;

use std::sync::Arc;

pub use page::{Dash, too_large};
use poem::{EndpointExt, Route, get, post};

/// Adds the dashboard under `/dashboard`, and each store's logo at `/{slug}/logo`.
pub fn mount(route: Route, dash: Dash) -> Route {
    let ctx = Arc::new(dash);
    let pages = Route::new()
        .at("/", get(home::show))
        .at("/signup", get(account::signup_page).post(account::signup))
        .at("/verify", get(account::verify_page).post(account::verify))
        .at("/verify/resend", post(account::resend_verification))
        .at("/login", get(account::login_page).post(account::login))
        .at("/logout", post(account::logout))
        .at("/forgot", get(account::forgot_page).post(account::forgot))
        .at("/reset", get(account::reset_page).post(account::reset))
        .at("/mode", post(mode::switch))
        .at("/stores", get(stores::list).post(stores::switch))
        .at("/stores/new", get(stores::new_page).post(stores::create))
        .at(
            "/settings",
            get(stores::settings_page).post(stores::save_settings),
        )
        .at("/settings/logo", post(stores::upload_logo))
        .at("/settings/stripe", post(stores::save_stripe))
        .at("/products", get(products::list))
        .at(
            "/products/new",
            get(products::new_page).post(products::create),
        )
        .at("/products/:id", get(products::show))
        .at("/products/:id/copy-to-live", post(products::copy_to_live))
        .at("/pools", get(pools::list).post(pools::create))
        .at("/pools/:id", get(pools::show))
        .at("/pools/:id/keys", post(pools::upload_keys))
        .at("/coupons", get(coupons::list).post(coupons::create))
        .at(
            "/checkout-links",
            get(checkout_links::list).post(checkout_links::create),
        )
        .at("/checkout-links/:id/delete", post(checkout_links::delete))
        .at("/outbox", get(outbox::list))
        .at("/orders", get(orders::list))
        .at("/orders/live", get(orders::live))
        .at("/orders/:id", get(orders::show))
        .at("/orders/:id/payments", post(orders::record_payment))
        .at("/orders/:id/resend", post(orders::resend))
        .at("/orders/:id/refunds", post(orders::refund))
        .at("/orders/:id/lines/:line/retry", post(orders::retry))
        .at("/api-keys", get(api_keys::list).post(api_keys::create))
        .at(
            "/api-keys/:id/revoke",
            get(api_keys::confirm_revoke).post(api_keys::revoke),
        )
        .at("/webhooks", get(webhooks::list).post(webhooks::create))
        .at("/webhooks/:id", get(webhooks::show))
        .at("/webhooks/:id/secret", post(webhooks::reveal_secret))
        .at("/webhooks/:id/rotate", post(webhooks::rotate_secret))
        .at("/webhooks/:id/state", post(webhooks::set_state))
        .at("/webhooks/:id/edit", post(webhooks::edit))
        .at("/webhooks/:id/delete", post(webhooks::delete))
        .at("/webhooks/:id/redeliver", post(webhooks::redeliver))
        .at("/plugins", get(plugins::list).post(plugins::create))
        .at("/plugins/:id", get(plugins::show))
        .at("/plugins/:id/versions", post(plugins::add_version))
        .at(
            "/plugins/:id/versions/:version/live",
            post(plugins::make_live),
        )
        .at("/plugins/:id/config", post(plugins::save_config))
        .at("/plugins/:id/secrets", post(plugins::set_secret))
        .at("/plugins/:id/secrets/remove", post(plugins::remove_secret))
        .at("/plugins/:id/hosts", post(plugins::save_hosts))
        .at("/plugins/:id/test-run", post(plugins::test_run))
        .at("/team", get(team::show).post(team::invite))
        .at("/team/remove", post(team::remove))
        .at("/invitations", get(team::accept_page).post(team::accept))
        // Not `/*rest`, which would take `/dashboard` itself from `/`.
        .at("/:page", page::unknown)
        .at("/:page/*rest", page::unknown)
        .data(ctx.clone());
    route
        .nest("/dashboard", pages)
        .at("/:tenant/logo", get(stores::logo).data(ctx))
}
