//! Refunds: each one a row, and what it does to its order written in the same
//! transaction (the sum refunded, the status, the lines refunded in full and their
//! keys). What a refund does is `workflow::Order::refund`'s to say; this writes it.

use kassa_domain::ids::{LicensePoolId, OrderId, RefundId, TenantId};
use kassa_domain::order::{PaymentMethod, RefundStatus};
use kassa_domain::workflow;
use sqlx::types::Json;

use crate::db::{Tx, db_run};
use crate::error::StoreError;
use crate::error::corrupt;
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
    /// The id of the order's refund whose provider id is `reference` (a Stripe
    /// `re_…`), if it is recorded: made through Kassa, or reported by the provider
    /// before.
    pub async fn refund_by_reference(
        &mut self,
        order: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(db_run!(&mut self.tx, c => sqlx::query_scalar(
            "SELECT id FROM refunds WHERE tenant_id = $1 AND order_id = $2 AND reference = $3",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(reference)
        .fetch_optional(c).await?))
    }

    /// Marks the order's refund `refund`, `pending` at the provider until now,
    /// `succeeded`; false when it was not pending.
    pub async fn refund_succeeded(
        &mut self,
        order: &str,
        refund: &str,
    ) -> Result<bool, StoreError> {
        let done = db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE refunds SET status = 'succeeded'
             WHERE tenant_id = $1 AND order_id = $2 AND id = $3 AND status = 'pending'",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(refund)
        .execute(c).await?.rows_affected());
        Ok(done == 1)
    }

    /// Records `refund` of the order `order` (read with [`Work::order`], so its row is
    /// held) and what `decided` says it does: the order's sum refunded grows by the
    /// amount, the order becomes `refunded` when all of it went back, and each line
    /// refunded in full is marked so, its keys revoked. A key of a pool that takes
    /// refunded keys back becomes `available` again in this same transaction, after
    /// the line that had it is marked refunded, so it is never on two live lines;
    /// the pools keys went back to are returned, for their waiting lines.
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
        let mut returned_to = Vec::new();
        for &line_no in &decided.refunded_lines {
            for pool in revoke_line(&mut self.tx, &tenant, id, line_no, now).await? {
                if !returned_to.contains(&pool) {
                    returned_to.push(pool);
                }
            }
        }
        Ok(returned_to)
    }
}

/// Marks a line refunded in full (never delivered after this) and revokes its keys:
/// those of a pool that takes refunded keys back go back to it, the others stay the
/// line's, `revoked`. Returns the pool of each key returned.
async fn revoke_line(
    tx: &mut Tx,
    tenant: &TenantId,
    order: &str,
    line_no: i64,
    now: Timestamp,
) -> Result<Vec<LicensePoolId>, StoreError> {
    db_run!(tx, c => sqlx::query(
        "UPDATE order_lines SET refunded_at = $4, next_delivery_at = NULL
         WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .bind(now)
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
    db_run!(tx, c => sqlx::query(
        "UPDATE license_keys SET status = 'revoked'
         WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3 AND status = 'assigned'",
    )
    .bind(tenant.as_str())
    .bind(order)
    .bind(line_no)
    .execute(c).await?.rows_affected());
    returned
        .iter()
        .map(|p| LicensePoolId::parse(p).map_err(corrupt))
        .collect()
}
