//! A Stripe webhook, verified and handed on: a payment event to the pay step
//! (`online.rs`), a refund Stripe made to the refunds (`refunds.rs`).

use kassa_domain::mode::Mode;
use kassa_payments::provider::{ProviderEvent, WebhookError};
use kassa_store::{Store, StoreError};

use crate::online::{Providers, payment_event};
use crate::provider_events::{ProviderEventError, ProviderEventOutcome};

/// Acts on a Stripe webhook that reached the endpoint of the store named `slug` for
/// `mode`. The one thing read before the signature is checked (at `now`, Unix
/// seconds) is that store's and mode's signing secret; then a payment of one of its
/// orders is recorded once per Stripe event id, and a refund Stripe made of one once
/// per Stripe refund id ([`crate::refunds::refund_at_provider`]).
pub async fn stripe_event(
    store: &Store,
    providers: &Providers,
    slug: &str,
    mode: Mode,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<ProviderEventOutcome, ProviderEventError> {
    let (tenant, webhook_secret) = match store.stripe_webhook_secret(slug, mode).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(ProviderEventError::NotSetUp(mode)),
        Err(StoreError::NotFound) => return Err(ProviderEventError::UnknownStore),
        Err(e) => return Err(e.into()),
    };
    match kassa_payments::stripe::read_event(&webhook_secret, signature, body, now) {
        Ok(ProviderEvent::Payment(event)) => {
            payment_event(store, providers, &tenant, mode, event).await
        }
        Ok(ProviderEvent::Refund(event)) => {
            crate::refunds::refund_at_provider(store, &tenant, mode, event).await
        }
        Err(WebhookError::Ignored(kind)) => Ok(ProviderEventOutcome::Ignored(kind)),
        Err(e) => Err(ProviderEventError::Unverified(e)),
    }
}
