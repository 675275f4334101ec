//! Unpaid orders: the reminder and, later, the deletion with the customer's personal
//! data erased, each store by its own policy.

use kassa_domain::ids::TenantId;
use kassa_store::{Store, Timestamp};

use crate::error::OrdersError;

/// A store's unpaid-order policy, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct UnpaidPolicy {
    pub remind_after: Option<i64>,
    pub delete_after: i64,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpaidSweep {
    pub reminded: usize,
    pub deleted: usize,
}

/// Reminds and deletes this store's unpaid orders that are due.
/// Reminders are claimed by one UPDATE and deletions re-checked on the locked order, so
/// several workers on one database never remind or delete an order twice.
pub async fn sweep_unpaid(
    store: &Store,
    tenant: &TenantId,
    policy: UnpaidPolicy,
) -> Result<UnpaidSweep, OrdersError> {
    let now = Timestamp::now().millis();
    let remind_before = policy
        .remind_after
        .map(|after| Timestamp::from(now - after));
    let delete_before = Timestamp::from(now - policy.delete_after);
    let mut sweep = UnpaidSweep::default();
    if !store
        .has_unpaid_due(tenant, remind_before, delete_before)
        .await?
    {
        return Ok(sweep);
    }
    // Reminders and deletions in two transactions: a node holding reminded orders never
    // waits for another node's while it holds orders of its own.
    if let Some(before) = remind_before {
        let mut work = store.work(tenant).await?;
        for id in work.claim_reminders(before).await? {
            let order = work.order(&id).await?;
            let Ok(followups) = order.remind() else {
                continue;
            };
            work.follow(Some(&id), &followups).await?;
            if order.has_customer_email {
                sweep.reminded += 1;
            }
        }
        work.commit().await?;
    }
    let mut work = store.work(tenant).await?;
    for id in work.unpaid_before(delete_before).await? {
        let order = work.order(&id).await?;
        // Paid or deleted by another worker meanwhile.
        let Ok(followups) = order.delete() else {
            continue;
        };
        work.erase_order(&id).await?;
        work.follow(Some(&id), &followups).await?;
        sweep.deleted += 1;
    }
    work.commit().await?;
    Ok(sweep)
}
