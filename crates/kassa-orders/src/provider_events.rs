//! What a provider's webhook did, or why it was not acted on: the answers of
//! [`crate::stripe_event`] and of the payment and refund events it hands on.

use kassa_domain::mode::Mode;
use kassa_domain::workflow::Refused;
use kassa_payments::provider::WebhookError;
use kassa_store::{OrderRecord, StoreError};

use crate::error::OrdersError;

/// What a provider's webhook did.
#[derive(Debug)]
pub enum ProviderEventOutcome {
    /// The payment was recorded (the order paid, or the attempt failed).
    Recorded(Box<OrderRecord>),
    /// The event was acted on before: nothing done.
    Replayed,
    /// A genuine event Kassa does not act on (its type).
    Ignored(String),
}

/// Why a provider's webhook was not acted on.
#[derive(Debug, thiserror::Error)]
pub enum ProviderEventError {
    /// No store has this URL name.
    #[error("no such store")]
    UnknownStore,
    /// The store has no Stripe account in this mode: nothing can be verified.
    #[error("this store takes no Stripe payments in {0} mode")]
    NotSetUp(Mode),
    /// The signature does not verify, is stale, or the body is not an event: nothing
    /// was read.
    #[error("{0}")]
    Unverified(WebhookError),
    /// Genuine, but the workflow refuses it (another store's or an unknown order, the
    /// other mode, another amount or currency, an order not waiting for it).
    #[error("{0}")]
    Refused(Refused),
    /// The provider could not be reached for what the event asks of it (money to send
    /// back): nothing recorded, the provider sends the event again.
    #[error("the provider could not be reached: {0}")]
    ProviderUnavailable(String),
    #[error("{0}")]
    Orders(#[from] OrdersError),
}

impl From<StoreError> for ProviderEventError {
    fn from(e: StoreError) -> Self {
        Self::Orders(e.into())
    }
}
