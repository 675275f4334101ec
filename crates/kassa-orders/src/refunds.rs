//! Refunds: money going back to a customer, all of what was paid or part of it,
//! optionally naming the lines given back. The workflow decides (paid, in its
//! currency, never more than is left); the money goes back by the method that took it
//! ([`send_back`], the one place that knows how); storage writes the refund, the
//! order's new sum and status, the revoked keys and what follows in one transaction.

use kassa_domain::Invalid;
use kassa_domain::ids::{RefundId, TenantId};
use kassa_domain::money::{Currency, Money};
use kassa_domain::order::{PaymentMethod, RefundStatus};
use kassa_domain::workflow::{self, RefundRequest, Refused};
use kassa_payments::TestCardGateway;
use kassa_store::{NewRefund, OrderRecord, RefundRecord, Store};

use crate::error::OrdersError;

/// A refund as the merchant asks for it (the API's body, the dashboard's form).
#[derive(Debug, Clone, Default)]
pub struct RefundInput {
    /// Minor units; `None` for the rest (or the named lines' totals).
    pub amount: Option<i64>,
    /// When given, it must be the order's.
    pub currency: Option<String>,
    pub reason: Option<String>,
    /// The lines given back: their licenses are revoked.
    pub lines: Vec<i64>,
}

/// How the money went back.
struct SentBack {
    status: RefundStatus,
    reference: Option<String>,
}

/// Gives `amount` back by the method the order was paid with: the one place that
/// knows how.
///
/// - `test_card`: the sandbox refunds at once (no money moved in the first place).
/// - `bank_transfer`: Kassa moves no money; the merchant records that they sent it
///   back, and the refund is that record.
/// - A provider's payment (Stripe, wired by issue 12 part A, whose payments carry a
///   `charge_reference`) goes back through
///   `kassa_payments::provider::PaymentProvider::refund`, called with the refund's id
///   as idempotency key before the transaction that records it, and checked again
///   inside it. Until that arm is written such an order is refused with
///   `Refused::RefundsNotAvailable` ("refunds of stripe payments are not available
///   yet", a 422).
fn send_back(method: PaymentMethod, amount: Money) -> Result<SentBack, OrdersError> {
    match method {
        PaymentMethod::TestCard => Ok(SentBack {
            status: RefundStatus::Succeeded,
            reference: Some(TestCardGateway.refund(amount).reference),
        }),
        PaymentMethod::BankTransfer => Ok(SentBack {
            status: RefundStatus::Succeeded,
            reference: None,
        }),
    }
}

/// Refunds an order, once the workflow accepts it, and returns the order as it is now
/// with the new refund.
pub async fn refund(
    store: &Store,
    tenant: &TenantId,
    order_id: &str,
    input: RefundInput,
) -> Result<(OrderRecord, RefundRecord), OrdersError> {
    let request = RefundRequest {
        id: RefundId::generate(),
        amount: input.amount,
        currency: input.currency,
        lines: input.lines,
    };
    let mut work = store.work(tenant).await?;
    // On PostgreSQL the order's row is held until the commit: two refunds of one
    // order run one after the other, the second seeing what the first took.
    let order = work.order(order_id).await?;
    let decided = order.refund(&request).map_err(|r| match r {
        // Named again in a refund: told next to `lines` (a delivery refused for it is
        // a refusal like any other).
        Refused::LineRefunded(_) => OrdersError::from(Invalid::field("lines", r.to_string())),
        other => other.into(),
    })?;
    let currency = Currency::parse("currency", &order.currency)?;
    let sent = send_back(
        order.payment_method,
        Money {
            amount: decided.amount,
            currency,
        },
    )?;
    let refund = NewRefund {
        id: request.id.clone(),
        method: order.payment_method,
        status: sent.status,
        reason: input.reason,
        reference: sent.reference,
    };
    let returned_to = work.insert_refund(&order, &refund, &decided).await?;
    // Keys back in a pool: the lines waiting for its stock are due now.
    for pool in &returned_to {
        work.lock_pool(pool, true).await?;
        let waiting = work.lines_waiting_for(pool).await?;
        for (other, line) in waiting {
            work.follow(Some(&other), &workflow::restocked(&[line]))
                .await?;
        }
    }
    work.follow(Some(order_id), &decided.followups).await?;
    let order = work.view_after_follow(order_id).await?;
    work.commit().await?;
    metrics::counter!("kassa_refunds_total", "method" => refund.method.as_str()).increment(1);
    tracing::info!(order = %order.id, refund = %refund.id, amount = decided.amount, full = decided.order_refunded, "refund");
    let recorded = order
        .refunds
        .iter()
        .find(|r| r.id == refund.id.as_str())
        .cloned()
        .ok_or(OrdersError::NotFound)?;
    Ok((order, recorded))
}
