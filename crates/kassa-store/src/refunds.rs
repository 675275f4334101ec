//! Refunds: each one a row, and what it does to its order written in the same
//! transaction (the sum refunded, the status, the lines refunded in full and their
//! keys). What a refund does is `workflow::Order::refund`'s to say; this writes it.

use kassa_domain::ids::{LicensePoolId, OrderId, RefundId, TenantId};
use kassa_domain::order::{PaymentMethod, RefundStatus};
use kassa_domain::workflow;
use sqlx::types::Json;

use crate::db::{Tx, db_run};
use crate::error::StoreError;
use crate::error::{corrupt, named};
use crate::store::Store;
use crate::time::Timestamp;
use crate::view::{REFUND_SELECT, RefundRecord, RefundRow};
use crate::work::Work;

/// A refund to record, as the workflow decided it.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub id: RefundId,
    pub method: PaymentMethod,
    pub status: RefundStatus,
    pub reason: Option<String>,
    /// The provider's id for it (the sandbox's `test_re_…`); none for a bank transfer.
    pub reference: Option<String>,
}

impl Store {
    /// An order's refunds, oldest first.
    pub async fn refunds(
        &self,
        tenant: &TenantId,
        order: &OrderId,
    ) -> Result<Vec<RefundRecord>, StoreError> {
        let rows: Vec<RefundRow> = db_run!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{REFUND_SELECT} WHERE tenant_id = $1 AND order_id = $2 ORDER BY id"
        )))
        .bind(tenant.as_str())
        .bind(order.as_str())
        .fetch_all(c).await?);
        rows.into_iter().map(RefundRecord::try_from).collect()
    }
}

impl Work {
    /// The order's refund whose provider id is `reference` (a Stripe `re_…`), if it
    /// is recorded: made through Kassa, or reported by the provider before.
    pub async fn refund_by_reference(
        &mut self,
        order: &str,
        reference: &str,
    ) -> Result<Option<workflow::RecordedRefund>, StoreError> {
        let row: Option<(String, i64, String, Json<Vec<i64>>)> = db_run!(&mut self.tx, c => sqlx::query_as(
            "SELECT id, amount, status, lines FROM refunds
             WHERE tenant_id = $1 AND order_id = $2 AND reference = $3",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(reference)
        .fetch_optional(c).await?);
        row.map(|(id, amount, status, lines)| {
            Ok(workflow::RecordedRefund {
                id: RefundId::parse(&id).map_err(corrupt)?,
                amount,
                status: named(&status)?,
                lines: lines.0,
            })
        })
        .transpose()
    }

    /// Marks the order's refund `refund`, `pending` at the provider until now,
    /// `succeeded`, and revokes the keys of the lines it refunded in full (they kept
    /// them while it was pending). Returns the pools keys went back to, or `None` when
    /// it was not pending.
    pub async fn refund_succeeded(
        &mut self,
        order: &str,
        refund: &workflow::RecordedRefund,
    ) -> Result<Option<Vec<LicensePoolId>>, StoreError> {
        let done = db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE refunds SET status = 'succeeded'
             WHERE tenant_id = $1 AND order_id = $2 AND id = $3 AND status = 'pending'",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(refund.id.as_str())
        .execute(c).await?.rows_affected());
        if done != 1 {
            return Ok(None);
        }
        let tenant = self.tenant.clone();
        let mut returned_to = Vec::new();
        for &line_no in &refund.lines {
            let pools = revoke_keys(
                &mut self.tx,
                &tenant,
                (order, line_no),
                &refund.id,
                self.now,
            )
            .await?;
            add_pools(&mut returned_to, pools);
        }
        Ok(Some(returned_to))
    }

    /// Takes back the order's refund `refund`, pending at the provider until now or
    /// reported succeeded, which failed there (`reason`: the provider's): it is
    /// `failed`, its amount no longer counts, an order it refunded is `paid` again,
    /// and the lines it refunded are refunded no more (those it cancelled `pending`
    /// again). A key it revoked that is still the line's is the line's again; when
    /// `taken.reinstate_keys`, so is each key it returned to its pool that is still
    /// available there. One given to another line since stays that line's: it is
    /// kept in the line's `lost_licenses` (shown as revoked) and its `delivery_error`
    /// says why. What follows (`refund.failed`, the lines due again) is `taken`'s,
    /// written with [`Work::follow`].
    pub async fn take_back_refund(
        &mut self,
        order: &str,
        refund: &workflow::RecordedRefund,
        taken: &workflow::RefundTakenBack,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let tenant = self.tenant.clone();
        let now = self.now;
        let done = db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE refunds SET status = 'failed', failure_reason = $4
             WHERE tenant_id = $1 AND order_id = $2 AND id = $3 AND status = $5",
        )
        .bind(tenant.as_str())
        .bind(order)
        .bind(refund.id.as_str())
        .bind(reason)
        .bind(refund.status.as_str())
        .execute(c).await?.rows_affected());
        let updated = db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE orders SET amount_refunded = amount_refunded - $3, status = 'paid', updated_at = $4
             WHERE tenant_id = $1 AND id = $2 AND status IN ('paid', 'refunded')
             AND amount_refunded >= $3",
        )
        .bind(tenant.as_str())
        .bind(order)
        .bind(taken.amount)
        .bind(now)
        .execute(c).await?.rows_affected());
        if done != 1 || updated != 1 {
            return Err(StoreError::Conflict(
                "the refund or its order changed while it was being taken back; try again".into(),
            ));
        }
        for &line_no in &taken.restored_lines {
            db_run!(&mut self.tx, c => sqlx::query(
                "UPDATE order_lines SET refunded_at = NULL, revoked_at = NULL,
                 delivery_status = CASE WHEN delivery_status = 'cancelled' THEN 'pending'
                     ELSE delivery_status END,
                 delivery_error = CASE WHEN delivery_status = 'cancelled' THEN NULL
                     ELSE delivery_error END
                 WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
            )
            .bind(tenant.as_str())
            .bind(order)
            .bind(line_no)
            .execute(c).await?.rows_affected());
            move_line_keys(
                &mut self.tx,
                &tenant,
                (order, line_no),
                "revoked",
                "assigned",
            )
            .await?;
            if !taken.reinstate_keys {
                continue;
            }
            let lost =
                reinstate_returned_keys(&mut self.tx, &tenant, (order, line_no), &refund.id, now)
                    .await?;
            if lost.is_empty() {
                continue;
            }
            let error = format!(
                "{} went back to {} pool when refund {} succeeded and {} given to another order before the refund failed: not reinstated",
                lost.join(", "),
                if lost.len() == 1 { "its" } else { "their" },
                refund.id,
                if lost.len() == 1 { "was" } else { "were" },
            );
            db_run!(&mut self.tx, c => sqlx::query(
                "UPDATE order_lines SET lost_licenses = $4, delivery_error = $5
                 WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
            )
            .bind(tenant.as_str())
            .bind(order)
            .bind(line_no)
            .bind(Json(&lost))
            .bind(error)
            .execute(c).await?.rows_affected());
        }
        Ok(())
    }

    /// Records `refund` of the order `order` (read with [`Work::order`], so its row is
    /// held) and what `decided` says it does: the order's sum refunded grows by the
    /// amount, the order becomes `refunded` when all of it went back, and each line
    /// refunded in full is marked so, its keys revoked. A key of a pool that takes
    /// refunded keys back becomes `available` again in this same transaction, after
    /// the line that had it is marked refunded, so it is never on two live lines;
    /// the pools keys went back to are returned, for their waiting lines. A refund still
    /// pending at the provider revokes no key yet ([`workflow::revokes_keys`]): its
    /// lines' keys are revoked by [`Work::refund_succeeded`]. A line it refunds that
    /// was not delivered ends, `cancelled` with the reason.
    pub async fn insert_refund(
        &mut self,
        order: &workflow::Order,
        refund: &NewRefund,
        decided: &workflow::Refund,
    ) -> Result<Vec<LicensePoolId>, StoreError> {
        let tenant = self.tenant.clone();
        let now = self.now;
        let id = order.id.as_str();
        db_run!(&mut self.tx, c => sqlx::query(
            "INSERT INTO refunds (tenant_id, id, order_id, amount, currency, method, status, reason,
             reference, lines, livemode, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(tenant.as_str())
        .bind(refund.id.as_str())
        .bind(id)
        .bind(decided.amount)
        .bind(&order.currency)
        .bind(refund.method.as_str())
        .bind(refund.status.as_str())
        .bind(refund.reason.as_deref())
        .bind(refund.reference.as_deref())
        .bind(Json(&decided.refunded_lines))
        .bind(order.mode.is_live())
        .bind(now)
        .execute(c).await?.rows_affected());
        let status = if decided.order_refunded {
            "refunded"
        } else {
            "paid"
        };
        let updated = db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE orders SET amount_refunded = amount_refunded + $3, status = $4, updated_at = $5
             WHERE tenant_id = $1 AND id = $2 AND status = 'paid' AND amount_refunded + $3 <= total",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(decided.amount)
        .bind(status)
        .bind(now)
        .execute(c).await?.rows_affected());
        if updated != 1 {
            // The order changed under the lock: never refund more than was paid.
            return Err(StoreError::Conflict(
                "the order changed while it was being refunded; try again".into(),
            ));
        }
        let revoke = workflow::revokes_keys(refund.status);
        let mut returned_to = Vec::new();
        for &line_no in &decided.refunded_lines {
            let cancelled = decided.cancelled_lines.contains(&line_no);
            db_run!(&mut self.tx, c => sqlx::query(
                "UPDATE order_lines SET refunded_at = $4, next_delivery_at = NULL,
                 claimed_by = NULL, claimed_until = NULL,
                 delivery_status = CASE WHEN $5 THEN 'cancelled' ELSE delivery_status END,
                 delivery_error = CASE WHEN $5 THEN 'refunded before it was delivered'
                     ELSE delivery_error END
                 WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
            )
            .bind(tenant.as_str())
            .bind(id)
            .bind(line_no)
            .bind(now)
            .bind(cancelled)
            .execute(c).await?.rows_affected());
            if revoke {
                let pools =
                    revoke_keys(&mut self.tx, &tenant, (id, line_no), &refund.id, now).await?;
                add_pools(&mut returned_to, pools);
            }
        }
        Ok(returned_to)
    }
}

/// Adds `pools` to `into`, each once.
fn add_pools(into: &mut Vec<LicensePoolId>, pools: Vec<LicensePoolId>) {
    for pool in pools {
        if !into.contains(&pool) {
            into.push(pool);
        }
    }
}

/// Revokes the keys of a line refunded in full, once its refund's money went back:
/// those of a pool that takes refunded keys back go back to it (recorded as the
/// refund's, should it fail later: [`Work::take_back_refund`]), the others stay the
/// line's, `revoked`. Returns the pool of each key returned.
async fn revoke_keys(
    tx: &mut Tx,
    tenant: &TenantId,
    (order, line_no): (&str, i64),
    refund: &RefundId,
    now: Timestamp,
) -> Result<Vec<LicensePoolId>, StoreError> {
    db_run!(tx, c => sqlx::query(
        "UPDATE order_lines SET revoked_at = $4
         WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .bind(now)
    .execute(c).await?.rows_affected());
    // Which keys go back, and from where, before they leave the line: the record a
    // refund that fails later reinstates them from.
    db_run!(tx, c => sqlx::query(
        "INSERT INTO refund_returned_keys (tenant_id, refund_id, key_id, order_id, line_no, value)
         SELECT k.tenant_id, $4, k.id, k.order_id, k.line_no, k.value FROM license_keys k
         WHERE k.tenant_id = $1 AND k.order_id = $2 AND k.line_no = $3 AND k.status = 'assigned'
         AND k.pool_id IN (SELECT id FROM license_pools p WHERE p.tenant_id = $1
             AND p.return_refunded_keys = TRUE)",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .bind(refund.as_str())
    .execute(c).await?.rows_affected());
    let returned: Vec<String> = db_run!(tx, c => sqlx::query_scalar(
        "UPDATE license_keys SET status = 'available', order_id = NULL, line_no = NULL,
         assigned_at = NULL
         WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3 AND status = 'assigned'
         AND pool_id IN (SELECT id FROM license_pools p WHERE p.tenant_id = $1
             AND p.return_refunded_keys = TRUE)
         RETURNING pool_id",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .fetch_all(c).await?);
    move_line_keys(tx, tenant, (order, line_no), "assigned", "revoked").await?;
    returned
        .iter()
        .map(|p| LicensePoolId::parse(p).map_err(corrupt))
        .collect()
}

/// Gives the line `(order, line_no)` back the keys `refund` returned to their pools
/// from it, each one still `available` there; returns the values of those given to
/// another line since (or gone with their pool), which stay where they are.
async fn reinstate_returned_keys(
    tx: &mut Tx,
    tenant: &TenantId,
    (order, line_no): (&str, i64),
    refund: &RefundId,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    db_run!(tx, c => sqlx::query(
        "UPDATE license_keys SET status = 'assigned', order_id = $2, line_no = $3,
         assigned_at = $5
         WHERE tenant_id = $1 AND status = 'available' AND id IN (
             SELECT key_id FROM refund_returned_keys r
             WHERE r.tenant_id = $1 AND r.refund_id = $4 AND r.order_id = $2
             AND r.line_no = $3)",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .bind(refund.as_str())
    .bind(now)
    .execute(c).await?.rows_affected());
    let lost: Vec<String> = db_run!(tx, c => sqlx::query_scalar(
        "SELECT r.value FROM refund_returned_keys r
         LEFT JOIN license_keys k ON k.tenant_id = r.tenant_id AND k.id = r.key_id
         WHERE r.tenant_id = $1 AND r.refund_id = $4 AND r.order_id = $2 AND r.line_no = $3
         AND (k.id IS NULL OR k.order_id IS NULL OR k.order_id <> $2 OR k.line_no <> $3
             OR k.status <> 'assigned')
         ORDER BY r.value",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .bind(refund.as_str())
    .fetch_all(c).await?);
    Ok(lost)
}

/// Moves the keys of a line that are `from` to `to` (`assigned`, `revoked`).
async fn move_line_keys(
    tx: &mut Tx,
    tenant: &TenantId,
    (order, line_no): (&str, i64),
    from: &str,
    to: &str,
) -> Result<u64, StoreError> {
    Ok(db_run!(tx, c => sqlx::query(
        "UPDATE license_keys SET status = $5
         WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3 AND status = $4",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .bind(from)
    .bind(to)
    .execute(c).await?.rows_affected()))
}
