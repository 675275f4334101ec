//! Kassa's use cases: each command of the order workflow (place an order, record a
//! payment or a failure, refund, switch method, deliver a line or try a failed one
//! again, restock a pool, remind, delete) loads what it needs, asks `kassa_domain::workflow`,
//! and hands the result to `kassa-store`, which writes it all in one transaction.
//! Beside them, the checks of what a merchant saves that need more than the domain (a
//! product's delivery names a pool or plugin of the store; a webhook endpoint's URL is
//! one Kassa may send to), so the API and the dashboard apply the same ones. No SQL
//! here, no HTTP: the pages, the API and the jobs are the callers.

mod catalog;
mod checkout;
mod error;
mod fulfillment;
mod online;
mod payments;
mod provider_events;
mod refunds;
mod stripe_webhooks;
mod unpaid;
mod webhooks;

pub use catalog::{
    CheckoutLinkInput, CouponInput, DeliveryChoice, checkout_link_url, create_checkout_link,
    create_coupon, delivery,
};
pub use checkout::{CONSENTS, OrderInput, consent_version, place_order, price};
pub use error::OrdersError;
pub use fulfillment::{
    PoolDelivery, add_keys, deliver_from_pool, deliver_with, delivery_failed, resend_licenses,
    retry_delivery,
};
pub use online::{Providers, StripeCardForm, pay_with_stripe, stripe_card_form};
pub use payments::{CardOutcome, pay_with_card, record_offline_payment, switch_method};
pub use provider_events::{ProviderEventError, ProviderEventOutcome};
pub use refunds::{RefundInput, plan_refund, refund};
pub use stripe_webhooks::stripe_event;
pub use unpaid::{UnpaidPolicy, UnpaidSweep, sweep_unpaid};
pub use webhooks::{EndpointInput, endpoint_fields};
