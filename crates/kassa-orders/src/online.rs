//! Payments through a provider confirmed on Kassa's pay page (Stripe PaymentIntents
//! and Stripe.js's card Element): a pending attempt is recorded with the provider's
//! payment, the customer confirms it on the pay page (the card goes to the provider,
//! never to Kassa), and the order is paid only when the provider's signed webhook says
//! the money moved, after the workflow checked it
//! against the order (its store, mode, amount and currency), in one transaction with
//! the payment, the provider's event id (each acted on once) and what follows.

use std::time::Duration;

use chrono::Utc;
use kassa_domain::ids::{PaymentId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::money::{Currency, Money};
use kassa_domain::order::{PaymentMethod, PaymentStatus};
use kassa_domain::tenant::{StripeAccount, TenantSettings};
use kassa_domain::workflow::{self, PaymentFacts, Refused};
use kassa_domain::{Invalid, Secret};
use kassa_payments::provider::{
    Outcome, PaymentEvent, PaymentProvider, PaymentRequest, ProviderError,
};
use kassa_payments::stripe::Stripe;
use kassa_store::{NewPayment, OrderRecord, Settlement, Store, StoreError, TenantRecord};

use crate::error::OrdersError;
use crate::payments::finish_payment;
use crate::provider_events::{ProviderEventError, ProviderEventOutcome};

/// Where Kassa reaches the providers, and how long it waits for them.
#[derive(Debug, Clone)]
pub struct Providers {
    /// Stripe's API (`https://api.stripe.com`), or a stand-in's in tests.
    pub stripe_api_base: String,
    /// Stripe.js, loaded by the pay page (`https://js.stripe.com/v3/`), or a
    /// stand-in's in tests.
    pub stripe_js_url: String,
    /// Every call to a provider gives up after this: the customer is told and may
    /// try again.
    pub timeout: Duration,
}

impl Default for Providers {
    fn default() -> Self {
        Self {
            stripe_api_base: kassa_payments::stripe::API_BASE.to_owned(),
            stripe_js_url: kassa_payments::stripe::JS_URL.to_owned(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Providers {
    pub(crate) fn stripe(&self, account: StripeAccount) -> Result<Stripe, OrdersError> {
        Stripe::new(
            &self.stripe_api_base,
            account.secret_key,
            account.webhook_secret,
            self.timeout,
        )
        .map_err(|e| OrdersError::Conflict(e.to_string()))
    }
}

/// What ends an attempt whose money went back because the order was paid another way.
pub(crate) const PAID_TWICE_CODE: &str = "paid_twice";

/// Money Stripe took for an order that was paid meanwhile another way
/// ([`workflow::Order::returns_late_payment`]) goes back in full at Stripe, once
/// (the PaymentIntent is the refund's idempotency key, so a redelivered event or two
/// nodes asking refund it once), and then the attempt ends with the refund named.
/// Stripe out of reach: nothing is recorded, and the webhook is answered 503 so Stripe
/// sends it again.
async fn return_late_payment(
    store: &Store,
    providers: &Providers,
    tenant: &TenantId,
    mode: Mode,
    event: &PaymentEvent,
) -> Result<ProviderEventOutcome, ProviderEventError> {
    let order_id = event.order_id.as_deref().unwrap_or_default();
    let account = store
        .stripe_account(tenant, mode)
        .await?
        .ok_or(ProviderEventError::NotSetUp(mode))?;
    let charge = event
        .charge_reference
        .as_deref()
        .unwrap_or(&event.reference);
    let key = format!("kassa-paid-twice-{}", event.reference);
    let message = match providers
        .stripe(account)?
        .refund(charge, event.amount, &key)
        .await
    {
        Ok(refund) => format!(
            "The order was already paid another way: this payment went back in full at \
             Stripe (refund {}).",
            refund.reference
        ),
        Err(ProviderError::Refused { message, .. }) => format!(
            "The order was already paid another way, and Stripe refused to send this \
             payment back ({message}): refund it in Stripe's dashboard."
        ),
        Err(e @ ProviderError::Unavailable(_)) => {
            return Err(ProviderEventError::ProviderUnavailable(e.to_string()));
        }
    };
    let mut work = store.work(tenant).await?;
    if !work
        .first_provider_event("stripe", &event.event_id, order_id)
        .await?
    {
        return Ok(ProviderEventOutcome::Replayed);
    }
    match work.provider_attempt(order_id, &event.reference).await? {
        Some(attempt) => {
            work.end_pending_attempt(order_id, &attempt.id, PAID_TWICE_CODE, &message)
                .await?
        }
        None => {
            let payment = NewPayment {
                facts: PaymentFacts {
                    id: PaymentId::generate(),
                    method: PaymentMethod::Stripe,
                    amount: event.amount,
                    currency: event.currency.clone(),
                    succeeded: false,
                    at: Utc::now(),
                },
                failure_code: Some(PAID_TWICE_CODE.to_owned()),
                failure_message: Some(message),
                card_brand: None,
                card_last4: None,
                reference: Some(event.reference.clone()),
            };
            work.insert_payment(order_id, &payment, PaymentStatus::Failed)
                .await?
        }
    }
    work.follow(Some(order_id), &workflow::paid_twice(&event.reference))
        .await?;
    let order = work.view(order_id).await?;
    work.commit().await?;
    tracing::warn!(order = %order_id, event = %event.event_id,
        "Stripe took money for an order paid another way: sent back");
    Ok(ProviderEventOutcome::Recorded(Box::new(order)))
}

/// The message next to the method when Stripe cannot be used now.
const UNAVAILABLE: &str =
    "Stripe could not be reached, nothing was charged: please try again in a moment";
const CANCELED_CODE: &str = "canceled";
const CANCELED: &str = "The Stripe payment was canceled before it was paid.";
const NOT_OFFERED: &str = "this store does not take payments with Stripe at the moment";

/// What the pay page needs to confirm a Stripe payment with Stripe.js: the store's
/// publishable key of the order's mode and the PaymentIntent's client secret (for the
/// customer's browser only: never logged, never in a URL).
#[derive(Debug, Clone)]
pub struct StripeCardForm {
    pub publishable_key: String,
    pub client_secret: Secret,
}

/// Starts paying `order` with Stripe: a PaymentIntent for its total (idempotent per
/// order and attempt), recorded as a pending attempt, for the customer to confirm on
/// the pay page ([`stripe_card_form`]). While an attempt is pending nothing new is
/// made. Stripe down, slow or refusing: a field error on `payment_method`, nothing
/// recorded, the customer may try again.
pub async fn pay_with_stripe(
    store: &Store,
    providers: &Providers,
    tenant: &TenantRecord,
    order: &OrderRecord,
) -> Result<(), OrdersError> {
    let mode = Mode::from_livemode(order.livemode);
    let state = order.state()?;
    let facts = PaymentFacts {
        id: PaymentId::generate(),
        method: PaymentMethod::Stripe,
        amount: order.total,
        currency: order.currency.clone(),
        succeeded: true,
        at: Utc::now(),
    };
    state.may_pay(&facts, &[])?;
    let account = offered_account(store, tenant, mode).await?;
    if pending_attempt(order).is_some() {
        return Ok(());
    }
    // A PaymentIntent can be confirmed for days: the order holds its coupon's use for
    // a day, so the payment it brings is one the coupon still had.
    let now = Utc::now();
    if let Some(hold) = state.hold_coupon_for_provider(now, now + chrono::TimeDelta::hours(24)) {
        let mut work = store.work(&tenant.id).await?;
        let mode = work.order(&order.id).await?.mode;
        if !work.hold_coupon(&order.id, mode, &hold).await? {
            return Err(Refused::CouponUsedUp.into());
        }
        work.commit().await?;
    }
    // One PaymentIntent per attempt, the attempt counted by the Stripe attempts that
    // ended: two clicks at once, or a retry after Stripe was unreachable, reuse the
    // key and Stripe gives back the same PaymentIntent.
    let attempt = 1 + order
        .payments
        .iter()
        .filter(|p| p.method == PaymentMethod::Stripe && p.status != PaymentStatus::Pending)
        .count();
    let request = PaymentRequest {
        tenant_id: tenant.id.as_str().to_owned(),
        order_id: order.id.clone(),
        amount: Money {
            amount: order.total,
            currency: Currency::parse("currency", &order.currency)?,
        },
        order_number: order.number.to_string(),
        idempotency_key: format!("kassa_{}_{attempt}", order.id),
    };
    let created = match providers.stripe(account)?.create_payment(&request).await {
        Ok(created) => created,
        Err(e) => {
            tracing::warn!(order = %order.id, error = %e, "a Stripe PaymentIntent was not made");
            return Err(Invalid::field("payment_method", UNAVAILABLE).into());
        }
    };
    let mut work = store.work(&tenant.id).await?;
    work.order(&order.id).await?.may_pay(&facts, &[])?;
    if work
        .provider_attempt(&order.id, &created.reference)
        .await?
        .is_none()
    {
        let payment = NewPayment {
            facts,
            failure_code: None,
            failure_message: None,
            card_brand: None,
            card_last4: None,
            reference: Some(created.reference.clone()),
        };
        work.insert_payment(&order.id, &payment, PaymentStatus::Pending)
            .await?;
    }
    work.commit().await?;
    tracing::info!(order = %order.id, payment_intent = %created.reference, "Stripe payment started");
    Ok(())
}

/// The card form for `order`'s pending Stripe attempt, if it has one: the store's
/// publishable key and the PaymentIntent's client secret, read back from Stripe.
/// Stripe down or slow: a field error on `payment_method`.
pub async fn stripe_card_form(
    store: &Store,
    providers: &Providers,
    tenant: &TenantRecord,
    order: &OrderRecord,
) -> Result<Option<StripeCardForm>, OrdersError> {
    let Some(reference) = pending_attempt(order) else {
        return Ok(None);
    };
    let mode = Mode::from_livemode(order.livemode);
    let account = offered_account(store, tenant, mode).await?;
    let Some(publishable_key) = account.publishable_key.clone() else {
        return Err(Invalid::field("payment_method", NOT_OFFERED).into());
    };
    match providers.stripe(account)?.payment(reference).await {
        Ok(payment) => Ok(Some(StripeCardForm {
            publishable_key,
            client_secret: payment.client_secret,
        })),
        Err(e) => {
            tracing::warn!(order = %order.id, error = %e, "a Stripe PaymentIntent was not read");
            Err(Invalid::field("payment_method", UNAVAILABLE).into())
        }
    }
}

/// The store's Stripe account in `mode`, if it offers Stripe there.
async fn offered_account(
    store: &Store,
    tenant: &TenantRecord,
    mode: Mode,
) -> Result<StripeAccount, OrdersError> {
    let offered = TenantSettings::from_json(&tenant.settings)
        .offered_methods(mode, tenant.stripe_ready(mode));
    match store.stripe_account(&tenant.id, mode).await? {
        Some(account) if offered.contains(&PaymentMethod::Stripe) => Ok(account),
        _ => Err(Invalid::field("payment_method", NOT_OFFERED).into()),
    }
}

/// The PaymentIntent of the order's Stripe attempt still pending, if any. An attempt
/// sent to a Checkout Session before Kassa confirmed cards itself (`cs_…`) is not one:
/// paying again starts a PaymentIntent (and the session, if paid after all, pays the
/// order through its PaymentIntent's `payment_intent.succeeded`, which carries the
/// order in its metadata).
fn pending_attempt(order: &OrderRecord) -> Option<&str> {
    order
        .payments
        .iter()
        .filter(|p| p.method == PaymentMethod::Stripe && p.status == PaymentStatus::Pending)
        .filter_map(|p| p.reference.as_deref())
        .find(|reference| reference.starts_with("pi_"))
}

/// A verified payment event of `tenant`'s endpoint for `mode`: recorded once per
/// Stripe event id, after the workflow checked it against the order.
pub(crate) async fn payment_event(
    store: &Store,
    providers: &Providers,
    tenant: &TenantId,
    mode: Mode,
    event: PaymentEvent,
) -> Result<ProviderEventOutcome, ProviderEventError> {
    let refused = ProviderEventError::Refused;
    workflow::same_store(tenant.as_str(), event.tenant_id.as_deref()).map_err(refused)?;
    let paid_in = Mode::from_livemode(event.livemode);
    if paid_in != mode {
        // A test mode event at the live endpoint (or the reverse).
        return Err(refused(Refused::PaymentOfOtherMode {
            order: mode,
            payment: paid_in,
        }));
    }
    let order_id = event
        .order_id
        .as_deref()
        .ok_or(refused(Refused::UnknownOrder))?;
    let mut work = store.work(tenant).await?;
    let order = match work.order(order_id).await {
        Ok(order) => order,
        Err(StoreError::NotFound) => return Err(refused(Refused::UnknownOrder)),
        Err(e) => return Err(e.into()),
    };
    if !work
        .first_provider_event("stripe", &event.event_id, order_id)
        .await?
    {
        return Ok(ProviderEventOutcome::Replayed);
    }
    let attempt = work.provider_attempt(order_id, &event.reference).await?;
    let (failure_code, failure_message) = match &event.outcome {
        Outcome::Succeeded => (None, None),
        Outcome::Failed { code, message } => (Some(code.as_str()), Some(message.as_str())),
        Outcome::Canceled => {
            // Canceled at Stripe unpaid: the attempt ends (the order page stops saying
            // the payment is being confirmed, and paying again makes a new
            // PaymentIntent); no payment failed, so no event and no email.
            if let Some(attempt) = &attempt {
                work.end_pending_attempt(order_id, &attempt.id, CANCELED_CODE, CANCELED)
                    .await?;
            }
            let order = work.view(order_id).await?;
            work.commit().await?;
            return Ok(ProviderEventOutcome::Recorded(Box::new(order)));
        }
    };
    let facts = PaymentFacts {
        id: attempt
            .as_ref()
            .and_then(|a| PaymentId::parse(&a.id).ok())
            .unwrap_or_else(PaymentId::generate),
        method: PaymentMethod::Stripe,
        amount: event.amount,
        currency: event.currency.clone(),
        succeeded: event.outcome == Outcome::Succeeded,
        // The offer had to hold when the Stripe payment was started.
        at: attempt.as_ref().map_or_else(Utc::now, |a| a.created_at.0),
    };
    let counted = attempt.as_ref().is_some_and(|a| a.succeeded);
    if order.returns_late_payment(&facts, paid_in, counted) {
        // Nothing is written while Stripe is asked: the refund first, then its record.
        drop(work);
        return return_late_payment(store, providers, tenant, mode, &event).await;
    }
    let decided = order
        .pay_online(&facts, paid_in, attempt.is_some(), &[])
        .map_err(refused)?;
    if attempt.is_none() {
        // A PaymentIntent Kassa made but did not get to record (it stopped in
        // between).
        let payment = NewPayment {
            facts: facts.clone(),
            failure_code: None,
            failure_message: None,
            card_brand: None,
            card_last4: None,
            reference: Some(event.reference.clone()),
        };
        work.insert_payment(order_id, &payment, decided.status)
            .await?;
    }
    let settlement = Settlement {
        status: decided.status,
        charge_reference: event.charge_reference.as_deref(),
        failure_code,
        failure_message,
    };
    work.settle_payment(order_id, facts.id.as_str(), &settlement)
        .await?;
    let order = finish_payment(work, &order, &facts, &decided).await?;
    tracing::info!(order = %order.id, event = %event.event_id, status = %decided.status, "Stripe payment");
    Ok(ProviderEventOutcome::Recorded(Box::new(order)))
}
