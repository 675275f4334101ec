//! Refunds: money going back to a customer, all of what was paid or part of it,
//! optionally naming the lines given back. The workflow decides (paid, in its
//! currency, never more than is left); the money goes back by the method that took it
//! ([`send_back`], the one place that knows how); storage writes the refund, the
//! order's new sum and status, the revoked keys and what follows in one transaction.
//! A refund the merchant makes in the provider's own dashboard reaches Kassa as the
//! provider's event ([`refund_at_provider`]) and is recorded the same way, once per
//! provider refund id, so a refund Kassa made itself is not counted again.

use kassa_domain::Invalid;
use kassa_domain::ids::{LicensePoolId, RefundId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::money::{Currency, Money};
use kassa_domain::order::{PaymentMethod, RefundStatus};
use kassa_domain::workflow::{self, RefundRequest, Refused};
use kassa_payments::TestCardGateway;
use kassa_payments::provider::{PaymentProvider, ProviderError, RefundEvent, RefundOutcome};
use kassa_store::{NewRefund, OrderRecord, RefundRecord, Store, StoreError, Work};

use crate::error::OrdersError;
use crate::online::Providers;
use crate::provider_events::{ProviderEventError, ProviderEventOutcome};

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
/// knows how. Called before the transaction that records the refund (a provider is
/// not called while the order's row, or SQLite's one write lock, is held).
///
/// - `test_card`: the sandbox refunds at once (no money moved in the first place).
/// - `bank_transfer`: Kassa moves no money; the merchant records that they sent it
///   back, and the refund is that record.
/// - `stripe`: the PaymentIntent that paid the order is refunded through the store's
///   Stripe account of the order's mode, with `key` as idempotency key: the same
///   refund asked again (a retry after a failure) is one refund at Stripe.
async fn send_back(
    store: &Store,
    providers: &Providers,
    tenant: &TenantId,
    order: &workflow::Order,
    amount: Money,
    key: &str,
) -> Result<SentBack, OrdersError> {
    match order.payment_method {
        PaymentMethod::TestCard => Ok(SentBack {
            status: RefundStatus::Succeeded,
            reference: Some(TestCardGateway.refund(amount).reference),
        }),
        PaymentMethod::BankTransfer => Ok(SentBack {
            status: RefundStatus::Succeeded,
            reference: None,
        }),
        PaymentMethod::Stripe => {
            let unavailable =
                || OrdersError::from(Refused::RefundsNotAvailable(PaymentMethod::Stripe));
            let charge = store
                .charge_reference(tenant, order.id.as_str())
                .await?
                .ok_or_else(unavailable)?;
            let account = store
                .stripe_account(tenant, order.mode)
                .await?
                .ok_or_else(unavailable)?;
            let created = providers
                .stripe(account)?
                .refund(&charge, amount.amount, key)
                .await
                .map_err(|e| match e {
                    ProviderError::Refused { message, .. } => OrdersError::from(Invalid::field(
                        "amount",
                        format!("Stripe refused the refund: {message}"),
                    )),
                    ProviderError::Unavailable(_) => OrdersError::from(Invalid::field(
                        "amount",
                        "Stripe could not be reached, nothing was refunded: please try again in a moment",
                    )),
                })?;
            Ok(SentBack {
                status: if created.succeeded {
                    RefundStatus::Succeeded
                } else {
                    RefundStatus::Pending
                },
                reference: Some(created.reference),
            })
        }
    }
}

/// A refund's refusals as the caller is told them: a line named again is told next
/// to `lines` (a delivery refused for it is a refusal like any other).
fn refused_here(r: Refused) -> OrdersError {
    match r {
        Refused::LineRefunded(_) => OrdersError::from(Invalid::field("lines", r.to_string())),
        other => other.into(),
    }
}

fn request(input: &RefundInput) -> RefundRequest {
    RefundRequest {
        id: RefundId::generate(),
        amount: input.amount,
        currency: input.currency.clone(),
        lines: input.lines.clone(),
    }
}

/// What a refund of `order` would do, as the workflow decides it, without doing it:
/// for a page that asks before a refund, which cannot be taken back.
pub fn plan_refund(
    order: &OrderRecord,
    input: &RefundInput,
) -> Result<workflow::Refund, OrdersError> {
    order.state()?.refund(&request(input)).map_err(refused_here)
}

/// Refunds an order, once the workflow accepts it, and returns the order as it is now
/// with the new refund.
pub async fn refund(
    store: &Store,
    providers: &Providers,
    tenant: &TenantId,
    order_id: &str,
    input: RefundInput,
) -> Result<(OrderRecord, RefundRecord), OrdersError> {
    let request = request(&input);
    // Decided once to send the money back, before any transaction: a provider is
    // slow, and nothing may wait on it.
    let before = store.order(tenant, order_id).await?.state()?;
    let planned = before.refund(&request).map_err(refused_here)?;
    let currency = Currency::parse("currency", &before.currency)?;
    // The same refund of the same order in the same state: the same key, so a retry
    // after a failure below is one refund at the provider, not two.
    let key = format!(
        "kassa_refund_{}_{}_{}",
        before.id, before.amount_refunded, planned.amount
    );
    let sent = send_back(
        store,
        providers,
        tenant,
        &before,
        Money {
            amount: planned.amount,
            currency,
        },
        &key,
    )
    .await?;
    let mut work = store.work(tenant).await?;
    // Decided again on the row locked until the commit (on PostgreSQL; SQLite has one
    // writer): two refunds of one order run one after the other, the second seeing
    // what the first took. One that no longer holds is refused; money a provider
    // already gave back for it is logged for the merchant to see at the provider.
    let order = work.order(order_id).await?;
    // The provider's event for this very refund may have come first and recorded it
    // ([`refund_at_provider`]): that is the refund asked for.
    if let Some(reference) = &sent.reference
        && let Some(recorded) = work.refund_by_reference(order_id, reference).await?
    {
        let order = work.view(order_id).await?;
        work.commit().await?;
        let refund = order
            .refunds
            .iter()
            .find(|r| r.id == recorded.id.as_str())
            .cloned()
            .ok_or(OrdersError::NotFound)?;
        return Ok((order, refund));
    }
    let decided = match order
        .refund_as_sent(&request, &before, &planned)
        .map_err(refused_here)
    {
        Ok(decided) => decided.recorded_as(sent.status),
        Err(refused) => {
            if let Some(reference) = &sent.reference
                && order.payment_method.is_provider()
            {
                tracing::error!(order = %order_id, provider_refund = %reference, "a refund given back by the provider was not recorded: the order changed meanwhile");
            }
            return Err(refused);
        }
    };
    let refund = NewRefund {
        id: request.id.clone(),
        method: order.payment_method,
        status: sent.status,
        reason: input.reason,
        reference: sent.reference,
    };
    let order = record(work, &order, &refund, &decided).await?;
    let recorded = order
        .refunds
        .iter()
        .find(|r| r.id == refund.id.as_str())
        .cloned()
        .ok_or(OrdersError::NotFound)?;
    Ok((order, recorded))
}

/// Writes a refund the workflow decided, with the keys it returns to their pools
/// (whose waiting lines are due now) and what follows, commits, and returns the order
/// as it is now.
async fn record(
    mut work: Work,
    order: &workflow::Order,
    refund: &NewRefund,
    decided: &workflow::Refund,
) -> Result<OrderRecord, OrdersError> {
    let order_id = order.id.as_str();
    let returned_to = work.insert_refund(order, refund, decided).await?;
    wake_waiting(&mut work, &returned_to).await?;
    work.follow(Some(order_id), &decided.followups).await?;
    let view = work.view_after_follow(order_id).await?;
    work.commit().await?;
    metrics::counter!("kassa_refunds_total", "method" => refund.method.as_str()).increment(1);
    tracing::info!(order = %order_id, refund = %refund.id, amount = decided.amount, full = decided.order_refunded, "refund");
    Ok(view)
}

/// Makes due the lines waiting for stock in `pools`, which refunded keys went back to.
async fn wake_waiting(work: &mut Work, pools: &[LicensePoolId]) -> Result<(), StoreError> {
    for pool in pools {
        work.lock_pool(pool, true).await?;
        let waiting = work.lines_waiting_for(pool).await?;
        for (other, line) in waiting {
            work.follow(Some(&other), &workflow::restocked(&[line]))
                .await?;
        }
    }
    Ok(())
}

/// A refund the provider reports (Stripe's `refund.created`, `refund.updated` or
/// `refund.failed`, verified by the caller) of a payment that paid one of `tenant`'s
/// orders, at the endpoint of `mode`. One Kassa made itself, or one reported before,
/// is found by the provider's refund id and nothing more is done, but for a refund
/// recorded `pending`: Stripe now says it succeeded (its status, and the keys of the
/// lines it refunded revoked) or failed (taken back: [`workflow::Order::refund_failed`]).
/// A new one (the merchant refunded in the provider's dashboard) is decided by the
/// workflow as a refund of exactly its amount in its currency, for an order of its
/// mode paid through the provider, and written with its events, email and revoked
/// keys like any refund. A refund Kassa never recorded that failed at the provider
/// gave nothing back: nothing is written.
pub(crate) async fn refund_at_provider(
    store: &Store,
    tenant: &TenantId,
    mode: Mode,
    event: RefundEvent,
) -> Result<ProviderEventOutcome, ProviderEventError> {
    let refused = ProviderEventError::Refused;
    let failed = event.outcome == RefundOutcome::Failed;
    let ignored = || Ok(ProviderEventOutcome::Ignored("a refund that failed".into()));
    let refunded_in = Mode::from_livemode(event.livemode);
    let Some(payment) = event.payment_reference.as_deref() else {
        return if failed {
            ignored()
        } else {
            Err(refused(Refused::UnknownOrder))
        };
    };
    let Some(order_id) = store.order_paid_by(tenant, payment).await? else {
        if store
            .sent_back(tenant, payment, crate::online::PAID_TWICE_CODE)
            .await?
        {
            // Kassa's own refund of money taken for an order paid another way.
            return Ok(ProviderEventOutcome::Ignored(
                "a refund of a payment sent back".into(),
            ));
        }
        return if failed {
            ignored()
        } else {
            Err(refused(Refused::UnknownOrder))
        };
    };
    let mut work = store.work(tenant).await?;
    let order = match work.order(&order_id).await {
        Ok(order) => order,
        Err(StoreError::NotFound) => return Err(refused(Refused::UnknownOrder)),
        Err(e) => return Err(e.into()),
    };
    if refunded_in != mode {
        // A test mode refund at the live endpoint (or the reverse).
        return Err(refused(Refused::RefundOfOtherMode {
            order: order.mode,
            refund: refunded_in,
        }));
    }
    if let Some(recorded) = work
        .refund_by_reference(&order_id, &event.reference)
        .await?
    {
        return settle(work, &order, &recorded, &event).await;
    }
    if failed {
        return ignored();
    }
    let id = RefundId::generate();
    let status = match event.outcome {
        RefundOutcome::Succeeded => RefundStatus::Succeeded,
        _ => RefundStatus::Pending,
    };
    let decided = order
        .refund_at_provider(id.clone(), refunded_in, event.amount, &event.currency)
        .map_err(refused)?
        .recorded_as(status);
    let refund = NewRefund {
        id,
        method: order.payment_method,
        status,
        reason: None,
        reference: Some(event.reference.clone()),
    };
    let order = record(work, &order, &refund, &decided).await?;
    tracing::info!(order = %order.id, provider_refund = %event.reference, "a refund made at the provider was recorded");
    Ok(ProviderEventOutcome::Recorded(Box::new(order)))
}

/// What the provider now says of a refund Kassa recorded: one pending until now has
/// gone through (its lines' keys revoked now, `refund.succeeded` sent now) or failed
/// (taken back, with `refund.failed` and the owners told); one that succeeded has
/// failed after all (taken back the same way, and the keys it revoked reinstated);
/// anything else was acted on before.
async fn settle(
    mut work: Work,
    order: &workflow::Order,
    recorded: &workflow::RecordedRefund,
    event: &RefundEvent,
) -> Result<ProviderEventOutcome, ProviderEventError> {
    let order_id = order.id.as_str();
    match (event.outcome, recorded.status) {
        (RefundOutcome::Succeeded, RefundStatus::Pending) => {
            let Some(returned_to) = work.refund_succeeded(order_id, recorded).await? else {
                return Ok(ProviderEventOutcome::Replayed);
            };
            wake_waiting(&mut work, &returned_to).await?;
            work.follow(Some(order_id), &workflow::refund_went_through(&recorded.id))
                .await?;
            let view = work.view_after_follow(order_id).await?;
            work.commit().await?;
            tracing::info!(order = %order_id, refund = %recorded.id, "a pending refund succeeded at the provider");
            Ok(ProviderEventOutcome::Recorded(Box::new(view)))
        }
        (RefundOutcome::Failed, RefundStatus::Pending | RefundStatus::Succeeded) => {
            let taken = order
                .refund_failed(recorded)
                .map_err(ProviderEventError::Refused)?;
            let reason = event.failure_reason.as_deref();
            work.take_back_refund(order_id, recorded, &taken, reason)
                .await?;
            work.follow(Some(order_id), &taken.followups).await?;
            let view = work.view_after_follow(order_id).await?;
            work.commit().await?;
            metrics::counter!("kassa_refunds_failed_total").increment(1);
            tracing::warn!(order = %order_id, refund = %recorded.id, was = recorded.status.as_str(), reason = reason.unwrap_or_default(), "a refund failed at the provider and was taken back");
            Ok(ProviderEventOutcome::Recorded(Box::new(view)))
        }
        _ => Ok(ProviderEventOutcome::Replayed),
    }
}
