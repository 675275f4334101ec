//! Payments: a card charged through the sandbox gateway, money received offline
//! recorded by the merchant, and the customer's switch to another method. Every
//! attempt is checked by the workflow before anything is charged or written, and
//! again inside the transaction that records it.

use chrono::Utc;
use kassa_domain::Invalid;
use kassa_domain::ids::PaymentId;
use kassa_domain::money::{Currency, Money};
use kassa_domain::order::{PaymentMethod, PaymentStatus};
use kassa_domain::tenant::TenantSettings;
use kassa_domain::workflow::{self, PaymentFacts, Refused};
use kassa_payments::{Card, CardInput, CardProvider, TestCardGateway};
use kassa_store::{NewPayment, OrderRecord, PaymentRecord, Store, TenantRecord, Work};

use crate::error::OrdersError;

/// The result of a card payment.
#[derive(Debug)]
pub enum CardOutcome {
    Paid(Box<OrderRecord>),
    /// Declined: the attempt is recorded and `payment.failed` sent; the customer may
    /// retry or switch method.
    Declined {
        order: Box<OrderRecord>,
        payment: Box<PaymentRecord>,
    },
}

/// The facts of a payment of the whole order by `method`.
fn facts(order: &OrderRecord, method: PaymentMethod, succeeded: bool) -> PaymentFacts {
    PaymentFacts {
        id: PaymentId::generate(),
        method,
        amount: order.total,
        currency: order.currency.clone(),
        succeeded,
        at: Utc::now(),
    }
}

/// Charges the order's total to a card through the sandbox gateway. The order must
/// accept the card (placed or switched to it, in a store offering it) before the card
/// is charged.
pub async fn pay_with_card(
    store: &Store,
    tenant: &TenantRecord,
    order: &OrderRecord,
    input: &CardInput<'_>,
) -> Result<CardOutcome, OrdersError> {
    let enabled = TenantSettings::from_json(&tenant.settings).enabled_methods();
    order
        .state()?
        .pay(&facts(order, PaymentMethod::TestCard, true), &enabled)?;
    let card = Card::parse(input, Utc::now().date_naive())?;
    let currency = Currency::parse("currency", &order.currency)?;
    let result = TestCardGateway.charge(
        &card,
        Money {
            amount: order.total,
            currency,
        },
    );
    let payment = NewPayment {
        facts: facts(order, PaymentMethod::TestCard, result.is_ok()),
        card_brand: Some(card.brand.to_owned()),
        card_last4: Some(card.last4.clone()),
        reference: result.as_ref().ok().map(|c| c.reference.clone()),
        failure_code: result.as_ref().err().map(|d| d.code.to_owned()),
        failure_message: result.as_ref().err().map(|d| d.message.to_owned()),
    };
    let (order, payment) = record(store, tenant, &order.id, payment).await?;
    tracing::info!(order = %order.id, status = %payment.status, brand = card.brand, last4 = %card.last4, "card payment");
    Ok(match payment.status {
        PaymentStatus::Succeeded => CardOutcome::Paid(Box::new(order)),
        _ => CardOutcome::Declined {
            order: Box::new(order),
            payment: Box::new(payment),
        },
    })
}

/// Records money received offline (a bank transfer) for the whole order.
pub async fn record_offline_payment(
    store: &Store,
    tenant: &TenantRecord,
    order_id: &str,
    method: &str,
    amount: i64,
    currency: &str,
    reference: Option<String>,
) -> Result<OrderRecord, OrdersError> {
    let method = PaymentMethod::parse("method", method)?;
    if method.is_sandbox() {
        return Err(Invalid::field("method", "card payments are taken on the payment page").into());
    }
    if method.is_provider() {
        // Only the provider's signed webhook says its money moved.
        return Err(
            Invalid::field("method", "Stripe payments are recorded by Stripe's webhook").into(),
        );
    }
    let payment = NewPayment {
        facts: PaymentFacts {
            id: PaymentId::generate(),
            method,
            amount,
            currency: currency.to_ascii_uppercase(),
            succeeded: true,
            at: Utc::now(),
        },
        failure_code: None,
        failure_message: None,
        card_brand: None,
        card_last4: None,
        reference,
    };
    let (order, _) = record(store, tenant, order_id, payment).await?;
    Ok(order)
}

/// Records a payment attempt and what follows it, in one transaction, once the
/// workflow accepts it.
async fn record(
    store: &Store,
    tenant: &TenantRecord,
    order_id: &str,
    payment: NewPayment,
) -> Result<(OrderRecord, PaymentRecord), OrdersError> {
    let enabled = TenantSettings::from_json(&tenant.settings).enabled_methods();
    let mut work = store.work(&tenant.id).await?;
    let order = work.order(order_id).await?;
    let decided = order.pay(&payment.facts, &enabled)?;
    work.insert_payment(order_id, &payment, decided.status)
        .await?;
    let order = finish_payment(work, &order, &payment.facts, &decided).await?;
    let recorded = order
        .payments
        .iter()
        .find(|p| p.id == payment.facts.id.as_str())
        .cloned()
        .ok_or(OrdersError::NotFound)?;
    Ok((order, recorded))
}

/// Writes what a recorded payment attempt makes follow (the use of the order's coupon
/// counted, the order paid, its events, emails and deliveries) and commits: the end of
/// every payment, whatever recorded it.
pub(crate) async fn finish_payment(
    mut work: Work,
    order: &workflow::Order,
    facts: &PaymentFacts,
    decided: &workflow::Payment,
) -> Result<OrderRecord, OrdersError> {
    let order_id = order.id.as_str();
    if let (Some(coupon), Some(redemption)) = (&order.coupon, decided.redemption)
        && !work
            .redeem_coupon(&coupon.code, order.mode, redemption)
            .await?
    {
        return Err(Refused::CouponUsedUp.into());
    }
    if decided.order_paid {
        work.mark_paid(order_id, facts.method).await?;
    }
    work.follow(Some(order_id), &decided.followups).await?;
    let order = work.view_after_follow(order_id).await?;
    work.commit().await?;
    let method = facts.method.as_str();
    if decided.order_paid {
        metrics::counter!("kassa_orders_paid_total", "method" => method).increment(1);
    } else if !facts.succeeded {
        metrics::counter!("kassa_payment_failures_total", "method" => method).increment(1);
    }
    Ok(order)
}

/// The customer picks another of the store's payment methods for an unpaid order.
pub async fn switch_method(
    store: &Store,
    tenant: &TenantRecord,
    order_id: &str,
    method: PaymentMethod,
) -> Result<(), OrdersError> {
    let mut work = store.work(&tenant.id).await?;
    let order = work.order(order_id).await?;
    let enabled = TenantSettings::from_json(&tenant.settings)
        .offered_methods(order.mode, tenant.stripe_ready(order.mode));
    let followups = order.switch_method(method, &enabled)?;
    work.set_payment_method(order_id, method).await?;
    work.follow(Some(order_id), &followups).await?;
    work.commit().await?;
    Ok(())
}
