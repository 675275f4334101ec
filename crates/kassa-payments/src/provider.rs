//! The payment-provider interface: what Kassa asks of a real provider (Stripe first)
//! and what comes back, in Kassa's terms. A provider creates a payment for an order
//! (confirmed by the customer on Kassa's pay page with the provider's own script),
//! tells from its own signed webhook whether the money moved (and which refunds it
//! made), and refunds. It never decides whether an order is paid: the facts it
//! reports (amount, currency, mode) go to `kassa_domain::workflow`, which checks them
//! against the order before anything is written.

use std::future::Future;

use kassa_domain::Secret;
use kassa_domain::money::Money;

/// A payment to create for an order.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    /// The store's id (`ten_…`) and the order's (`ord_…`), carried by the provider and
    /// read back from its webhook.
    pub tenant_id: String,
    pub order_id: String,
    /// The order's total in its currency.
    pub amount: Money,
    /// The order's number in the store (`K-7`), shown in the provider's dashboard.
    pub order_number: String,
    /// Sent to the provider so a retried request makes one payment, not two.
    pub idempotency_key: String,
}

/// A payment created at the provider, for the customer to confirm on the pay page.
#[derive(Debug, Clone)]
pub struct CreatedPayment {
    /// The provider's id for it (a Stripe PaymentIntent `pi_…`).
    pub reference: String,
    /// What the provider's script on the pay page confirms it with (a Stripe client
    /// secret): given to the customer's browser only, never logged, never in a URL.
    pub client_secret: Secret,
    /// Whether the provider made it in its live mode.
    pub livemode: bool,
}

/// What a provider's webhook reports, read from a body whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// What happened to a payment.
    Payment(PaymentEvent),
    /// A refund made at the provider: by Kassa (a refund asked through the API or the
    /// dashboard), or by the merchant in the provider's own dashboard.
    Refund(RefundEvent),
}

/// A refund the provider reports it made of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundEvent {
    /// The provider's event id.
    pub event_id: String,
    /// The provider's id for the refund (a Stripe Refund `re_…`): a refund is recorded
    /// once, whoever made it and however often it is reported.
    pub reference: String,
    /// The payment refunded (a Stripe PaymentIntent `pi_…`), when the provider names
    /// one.
    pub payment_reference: Option<String>,
    /// What went back, in minor units, and the ISO 4217 code (upper case).
    pub amount: i64,
    pub currency: String,
    /// The provider's live mode (false for its test mode).
    pub livemode: bool,
    pub outcome: RefundOutcome,
    /// Why it failed, as the provider says (Stripe's `failure_reason`, or `canceled`).
    pub failure_reason: Option<String>,
}

/// Where a provider's refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded,
    /// On its way back: the provider is still working on it.
    Pending,
    /// Failed or canceled at the provider: nothing went back.
    Failed,
}

/// What a provider's webhook says happened to a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// The provider's event id: the same event delivered twice is recorded once.
    pub event_id: String,
    /// The provider's payment id (a Stripe PaymentIntent `pi_…`).
    pub reference: String,
    /// The provider's id to refund it with (the same PaymentIntent for Stripe).
    pub charge_reference: Option<String>,
    /// The store and order the payment was created for, as the provider kept them.
    pub tenant_id: Option<String>,
    pub order_id: Option<String>,
    /// What was paid, in minor units, and the ISO 4217 code (upper case).
    pub amount: i64,
    pub currency: String,
    /// The provider's live mode (false for its test mode).
    pub livemode: bool,
    pub outcome: Outcome,
}

/// Whether the money moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Refused, with the provider's code and message for the customer.
    Failed {
        code: String,
        message: String,
    },
    /// The payment was canceled unpaid at the provider: the attempt ends, nothing
    /// else happens.
    Canceled,
}

/// What a webhook carried that was not a payment to record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature, a wrong one, or one made with another secret: nothing is read.
    #[error("the webhook signature does not verify")]
    BadSignature,
    /// Signed too long ago (or in the future): a replay, refused.
    #[error("the webhook was signed outside the tolerance window")]
    Stale,
    #[error("the webhook body is not a provider event: {0}")]
    Malformed(String),
    /// A genuine event Kassa does not act on (answered 2xx so the provider stops).
    #[error("event type {0} is not one Kassa acts on")]
    Ignored(String),
}

/// Why a call to the provider did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused, with its code and message (a bad key, an amount it does
    /// not take, a refund above what was paid): retrying will not help.
    #[error("the provider refused: {message} ({code})")]
    Refused { code: String, message: String },
    /// The provider is down, slow or answered garbage: nothing happened that Kassa
    /// knows of; the same request (same idempotency key) may be tried again.
    #[error("the provider could not be reached: {0}")]
    Unavailable(String),
}

/// A refund made at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedRefund {
    /// The provider's id for it (a Stripe Refund `re_…`).
    pub reference: String,
    pub amount: i64,
    /// `succeeded`, or `pending` while the provider works on it.
    pub succeeded: bool,
}

/// A real payment provider.
pub trait PaymentProvider: Send + Sync {
    /// Creates a payment of the order's total, for the customer to confirm.
    fn create_payment(
        &self,
        request: &PaymentRequest,
    ) -> impl Future<Output = Result<CreatedPayment, ProviderError>> + Send;

    /// A payment created before (`reference`), as the pay page shows it again.
    fn payment(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<CreatedPayment, ProviderError>> + Send;

    /// Reads a webhook: its signature is checked (with the provider's own scheme,
    /// against `now`, Unix seconds) before a byte of the body is trusted.
    fn event(
        &self,
        signature_header: &str,
        body: &[u8],
        now: i64,
    ) -> Result<ProviderEvent, WebhookError>;

    /// Refunds `amount` (minor units) of a payment; `idempotency_key` makes a retry
    /// refund once.
    fn refund(
        &self,
        charge_reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<CreatedRefund, ProviderError>> + Send;
}
