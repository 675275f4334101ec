//! Fulfillment: a paid line gets its licenses (from a pool here, or from the
//! merchant's service or plugin by the job that calls them), a delivery that did not
//! work is retried or given up, a restocked pool wakes its waiting lines, and a
//! customer gets their licenses again.

use chrono::Utc;
use kassa_domain::Invalid;
use kassa_domain::catalog::Delivery;
use kassa_domain::ids::{LicensePoolId, TenantId};
use kassa_domain::order::LineStatus;
use kassa_domain::workflow::{self, Refused};
use kassa_store::{DueLine, KeysAdded, Store, StoreError, Timestamp};

use crate::error::OrdersError;

/// What a pool delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolDelivery {
    Delivered {
        licenses: Vec<String>,
    },
    /// Not enough keys: the line waits and is woken when keys are uploaded.
    WaitingStock,
    /// Delivered before (a retried job): nothing done.
    AlreadyDelivered,
}

/// Delivers a `license_pool` line: all its keys or none, in one transaction with what
/// follows. A pool with too few keys parks the line until keys arrive.
pub async fn deliver_from_pool(store: &Store, line: &DueLine) -> Result<PoolDelivery, OrdersError> {
    let Delivery::LicensePool { pool_id, keys_per } = &line.delivery else {
        return Err(StoreError::Corrupt("not a license pool line".into()).into());
    };
    let mut work = store.work(&line.tenant_id).await?;
    let order = work.order(&line.order_id).await?;
    let stock = work.lock_pool(pool_id, false).await?;
    let delivered = match order.deliver_from_pool(line.line_no, stock.mode) {
        Err(Refused::AlreadyDelivered) => return Ok(PoolDelivery::AlreadyDelivered),
        decided => decided?,
    };
    let needed = keys_per.count(line.quantity);
    let claimed = work
        .claim_keys(pool_id, (&line.order_id, line.line_no), needed)
        .await?;
    let Some(licenses) = claimed else {
        let followups = order.wait_for_stock(line.line_no)?;
        let why = format!("the pool {} has fewer than {needed} keys left", stock.name);
        work.mark_undelivered(&line.order_id, line.line_no, LineStatus::WaitingStock, &why)
            .await?;
        work.follow(Some(&line.order_id), &followups).await?;
        work.commit().await?;
        return Ok(PoolDelivery::WaitingStock);
    };
    work.mark_delivered(
        &line.order_id,
        line.line_no,
        &licenses,
        delivered.order_delivered,
    )
    .await?;
    work.follow(Some(&line.order_id), &delivered.followups)
        .await?;
    let available = work.available_keys(pool_id).await?;
    let low = workflow::low_stock(pool_id, stock.threshold, available, needed, work.now().0);
    work.follow(Some(&line.order_id), &low).await?;
    work.commit().await?;
    Ok(PoolDelivery::Delivered { licenses })
}

/// Delivers a line with licenses got elsewhere (the merchant's web service or
/// plugin). False when the line was delivered before (a retried job). Licenses of
/// another count than the product's `keys_per` asks are no delivery: a paid unit never
/// goes without its license.
pub async fn deliver_with(
    store: &Store,
    line: &DueLine,
    licenses: &[String],
) -> Result<bool, OrdersError> {
    (line.delivery.keys_per())
        .check_answer(line.quantity, licenses.len())
        .map_err(|why| Invalid::field("licenses", why))?;
    let mut work = store.work(&line.tenant_id).await?;
    let order = work.order(&line.order_id).await?;
    let delivered = match order.deliver(line.line_no) {
        Err(Refused::AlreadyDelivered) => return Ok(false),
        decided => decided?,
    };
    work.mark_delivered(
        &line.order_id,
        line.line_no,
        licenses,
        delivered.order_delivered,
    )
    .await?;
    work.follow(Some(&line.order_id), &delivered.followups)
        .await?;
    work.commit().await?;
    Ok(true)
}

/// Records a delivery that did not work: tried again at `retry_at`, or failed for good
/// with the owners told. Nothing is recorded on a line delivered meanwhile. A line the
/// workflow will not deliver now (refunded, or its order no longer paid, since it was
/// claimed) is let go: no longer due, its claim cleared, until what makes it
/// deliverable again (a payment, a refund taken back) makes it due; so it is not
/// claimed again and refused at every lease.
pub async fn delivery_failed(
    store: &Store,
    line: &DueLine,
    error: &str,
    retry_at: Option<Timestamp>,
) -> Result<(), OrdersError> {
    let mut work = store.work(&line.tenant_id).await?;
    let order = work.order(&line.order_id).await?;
    let failure = match order.delivery_failed(line.line_no, retry_at.map(|t| t.0)) {
        Err(Refused::AlreadyDelivered) => return Ok(()),
        Err(why) => {
            work.let_go_of_line(&line.order_id, line.line_no).await?;
            work.commit().await?;
            tracing::info!(tenant = %line.tenant_id, order = %line.order_id, line = line.line_no,
                why = %why, "a line that cannot be delivered now is no longer due");
            return Ok(());
        }
        Ok(decided) => decided,
    };
    work.mark_undelivered(&line.order_id, line.line_no, failure.status, error)
        .await?;
    work.follow(Some(&line.order_id), &failure.followups)
        .await?;
    work.commit().await?;
    Ok(())
}

/// Sends the customer their licenses again.
/// Tries a failed line again, at once, with a fresh round of retries.
pub async fn retry_delivery(
    store: &Store,
    tenant: &TenantId,
    order_id: &str,
    line_no: i64,
) -> Result<(), OrdersError> {
    let mut work = store.work(tenant).await?;
    let followups = work.order(order_id).await?.retry_delivery(line_no)?;
    work.reset_delivery(order_id, line_no).await?;
    work.follow(Some(order_id), &followups).await?;
    work.commit().await?;
    Ok(())
}

pub async fn resend_licenses(
    store: &Store,
    tenant: &TenantId,
    order_id: &str,
) -> Result<(), OrdersError> {
    let mut work = store.work(tenant).await?;
    let order = work.order(order_id).await?;
    let followups = order.resend_licenses(Utc::now())?;
    work.follow(Some(order_id), &followups).await?;
    work.commit().await?;
    Ok(())
}

/// Adds keys to a pool; the lines waiting for its stock are due again.
pub async fn add_keys(
    store: &Store,
    tenant: &TenantId,
    pool: &LicensePoolId,
    keys: &[String],
) -> Result<KeysAdded, OrdersError> {
    let mut work = store.work(tenant).await?;
    work.lock_pool(pool, true).await?;
    let added = work.insert_keys(pool, keys).await?;
    if added.added > 0 {
        let waiting = work.lines_waiting_for(pool).await?;
        for (order, lines) in by_order(&waiting) {
            work.follow(Some(order), &workflow::restocked(&lines))
                .await?;
        }
    }
    work.commit().await?;
    Ok(added)
}

/// `(order, line)` pairs sorted by order, grouped.
fn by_order(pairs: &[(String, i64)]) -> Vec<(&str, Vec<i64>)> {
    let mut groups: Vec<(&str, Vec<i64>)> = Vec::new();
    for (order, line) in pairs {
        match groups.last_mut() {
            Some((last, lines)) if *last == order.as_str() => lines.push(*line),
            _ => groups.push((order, vec![*line])),
        }
    }
    groups
}
