//! Unpaid orders: the reminder and, later, the deletion with the customer's personal
//! data erased. Each claim is one UPDATE that only matches orders not yet handled, so
//! several workers on one database never remind or delete an order twice.

use kassa_domain::ids::TenantId;

use crate::emails::queue_email;
use crate::events::insert_event;
use crate::{Store, StoreError, Timestamp, db_run};

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

impl Store {
    /// Every store with its settings, for sweeps that apply per-store policies.
    pub async fn tenant_settings(&self) -> Result<Vec<(TenantId, String)>, StoreError> {
        let rows: Vec<(String, String)> = db_run!(self, c => sqlx::query_as("SELECT id, CAST(settings AS TEXT) FROM tenants ORDER BY id")
                .fetch_all(c).await?);
        rows.into_iter()
            .map(|(id, s)| Ok((TenantId::parse(&id).map_err(crate::error::corrupt)?, s)))
            .collect()
    }

    /// Reminds and deletes this store's unpaid orders that are due.
    pub async fn sweep_unpaid(
        &self,
        tenant: &TenantId,
        policy: UnpaidPolicy,
    ) -> Result<UnpaidSweep, StoreError> {
        let now = Timestamp::now().millis();
        let mut sweep = UnpaidSweep::default();
        // Most sweeps find nothing: look first, without taking the write lock.
        let remind_before = policy.remind_after.map_or(i64::MIN, |after| now - after);
        let due: Option<i32> = db_run!(self, c => sqlx::query_scalar(
            "SELECT 1 FROM orders WHERE tenant_id = $1 AND status = 'not_paid'
             AND ((reminded_at IS NULL AND created_at <= $2) OR created_at <= $3) LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(Timestamp::from(remind_before))
        .bind(Timestamp::from(now - policy.delete_after))
        .fetch_optional(c).await?);
        if due.is_none() {
            return Ok(sweep);
        }
        let mut tx = self.begin_write().await?;
        if let Some(after) = policy.remind_after {
            let due: Vec<(String, Option<String>, String)> = db_run!(&mut tx, c => sqlx::query_as(
                "UPDATE orders SET reminded_at = $3
                 WHERE tenant_id = $1 AND status = 'not_paid' AND reminded_at IS NULL AND created_at <= $2
                 RETURNING id, email, locale",
            )
            .bind(tenant.as_str())
            .bind(Timestamp::from(now - after))
            .bind(Timestamp::from(now))
            .fetch_all(c).await?);
            for (order, email, locale) in due {
                if let Some(to) = email {
                    let key = format!("reminder:{order}");
                    queue_email(
                        &mut tx,
                        tenant,
                        "unpaid_reminder",
                        Some(&order),
                        &key,
                        &to,
                        &locale,
                    )
                    .await?;
                    sweep.reminded += 1;
                }
            }
        }
        let deleted: Vec<(String,)> = db_run!(&mut tx, c => sqlx::query_as(
            "UPDATE orders SET status = 'deleted', email = NULL, name = NULL, custom = '{}',
             return_url = NULL, updated_at = $3
             WHERE tenant_id = $1 AND status = 'not_paid' AND created_at <= $2 RETURNING id",
        )
        .bind(tenant.as_str())
        .bind(Timestamp::from(now - policy.delete_after))
        .bind(Timestamp::from(now))
        .fetch_all(c).await?);
        for (order,) in deleted {
            for erase in [
                "UPDATE order_consents SET ip = NULL, user_agent = NULL WHERE tenant_id = $1 AND order_id = $2",
                "UPDATE emails SET to_address = '', subject = NULL, text_body = NULL, html_body = NULL,
                 status = CASE WHEN status = 'sent' THEN 'sent' ELSE 'failed' END,
                 last_error = CASE WHEN status = 'sent' THEN last_error ELSE 'the order was deleted' END
                 WHERE tenant_id = $1 AND order_id = $2",
                "UPDATE carts SET email = NULL, name = NULL, custom = '{}' WHERE tenant_id = $1 AND order_id = $2",
            ] {
                db_run!(&mut tx, c => sqlx::query(erase)
                    .bind(tenant.as_str())
                    .bind(&order)
                    .execute(c).await?.rows_affected());
            }
            let record = crate::orders::load_order(&mut tx, tenant, &order).await?;
            insert_event(
                &mut tx,
                tenant,
                "order.deleted",
                Some(&order),
                serde_json::json!({ "order": record }),
            )
            .await?;
            sweep.deleted += 1;
        }
        tx.commit().await?;
        Ok(sweep)
    }
}
