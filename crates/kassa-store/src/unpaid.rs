//! Unpaid orders' rows: finding those due for the reminder or the deletion, and
//! erasing a deleted order's personal data from every table that holds it.

use kassa_domain::ids::TenantId;

use crate::db::db_run;
use crate::error::{StoreError, corrupt};
use crate::store::Store;
use crate::time::Timestamp;
use crate::view::OrderRecord;
use crate::work::Work;
use sqlx::types::Json;

impl Store {
    /// Every store with its settings, for sweeps that apply per-store policies.
    pub async fn tenant_settings(&self) -> Result<Vec<(TenantId, String)>, StoreError> {
        let rows: Vec<(String, String)> = db_run!(self, c => sqlx::query_as("SELECT id, CAST(settings AS TEXT) FROM tenants ORDER BY id")
                .fetch_all(c).await?);
        rows.into_iter()
            .map(|(id, s)| Ok((TenantId::parse(&id).map_err(crate::error::corrupt)?, s)))
            .collect()
    }

    /// Whether this store has an unpaid order to remind (created before
    /// `remind_before`, not reminded yet) or to delete (created before
    /// `delete_before`): most sweeps find none, and look without the write lock.
    pub async fn has_unpaid_due(
        &self,
        tenant: &TenantId,
        remind_before: Option<Timestamp>,
        delete_before: Timestamp,
    ) -> Result<bool, StoreError> {
        let due: Option<i32> = db_run!(self, c => sqlx::query_scalar(
            "SELECT 1 FROM orders WHERE tenant_id = $1 AND status = 'not_paid'
             AND ((reminded_at IS NULL AND $2 IS NOT NULL AND created_at <= $2) OR created_at <= $3) LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(remind_before)
        .bind(delete_before)
        .fetch_optional(c).await?);
        Ok(due.is_some())
    }
}

impl Work {
    /// Marks the unpaid orders created before `before` and not reminded yet as
    /// reminded, and returns them. One UPDATE: several workers never claim one twice.
    pub async fn claim_reminders(&mut self, before: Timestamp) -> Result<Vec<String>, StoreError> {
        Ok(db_run!(&mut self.tx, c => sqlx::query_scalar(
            "UPDATE orders SET reminded_at = $3
             WHERE tenant_id = $1 AND status = 'not_paid' AND reminded_at IS NULL AND created_at <= $2
             RETURNING id",
        )
        .bind(self.tenant.as_str())
        .bind(before)
        .bind(self.now)
        .fetch_all(c).await?))
    }

    /// The unpaid orders created before `before`.
    pub async fn unpaid_before(&mut self, before: Timestamp) -> Result<Vec<String>, StoreError> {
        Ok(db_run!(&mut self.tx, c => sqlx::query_scalar(
            "SELECT id FROM orders WHERE tenant_id = $1 AND status = 'not_paid' AND created_at <= $2
             ORDER BY id",
        )
        .bind(self.tenant.as_str())
        .bind(before)
        .fetch_all(c).await?))
    }

    /// Marks an order deleted and erases its customer's personal data wherever it was
    /// written: the order, its consents (IP and user agent), its cart, its emails (those
    /// not sent yet are dropped), its events (the `data.order` webhooks send and replay)
    /// and what webhook receivers answered to them (a receiver may echo the payload).
    pub async fn erase_order(&mut self, order: &str) -> Result<(), StoreError> {
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE orders SET status = 'deleted', email = NULL, name = NULL, custom = '{}',
             return_url = NULL, updated_at = $3 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(self.now)
        .execute(c).await?.rows_affected());
        for erase in [
            "UPDATE order_consents SET ip = NULL, user_agent = NULL WHERE tenant_id = $1 AND order_id = $2",
            "UPDATE emails SET to_address = '', subject = NULL, text_body = NULL, html_body = NULL,
             status = CASE WHEN status = 'sent' THEN 'sent' ELSE 'failed' END,
             last_error = CASE WHEN status = 'sent' THEN NULL ELSE 'the order was deleted' END
             WHERE tenant_id = $1 AND order_id = $2",
            "UPDATE carts SET email = NULL, name = NULL, custom = '{}', return_url = NULL
             WHERE tenant_id = $1 AND order_id = $2",
            "UPDATE webhook_attempts SET response = '' WHERE tenant_id = $1 AND event_id IN
             (SELECT id FROM events WHERE tenant_id = $1 AND order_id = $2)",
        ] {
            db_run!(&mut self.tx, c => sqlx::query(erase)
                .bind(self.tenant.as_str())
                .bind(order)
                .execute(c).await?.rows_affected());
        }
        self.erase_from_events(order).await
    }

    /// Rewrites the order's events with the erased order's personal fields, keeping
    /// everything else as it was when the event happened.
    async fn erase_from_events(&mut self, order: &str) -> Result<(), StoreError> {
        let erased = serde_json::to_value(self.view(order).await?).map_err(corrupt)?;
        let events: Vec<(String, Json<serde_json::Value>)> = db_run!(&mut self.tx, c => sqlx::query_as(
            "SELECT id, payload FROM events WHERE tenant_id = $1 AND order_id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .fetch_all(c).await?);
        for (id, Json(mut payload)) in events {
            let Some(shown) = payload
                .pointer_mut("/data/order")
                .and_then(serde_json::Value::as_object_mut)
            else {
                continue;
            };
            for field in OrderRecord::PERSONAL_FIELDS {
                shown.insert(field.to_owned(), erased[field].clone());
            }
            db_run!(&mut self.tx, c => sqlx::query(
                "UPDATE events SET payload = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(self.tenant.as_str())
            .bind(&id)
            .bind(Json(&payload))
            .execute(c).await?.rows_affected());
        }
        Ok(())
    }
}
