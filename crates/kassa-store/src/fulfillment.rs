//! Fulfillment's rows: the paid lines due for delivery, and what a delivery wrote on
//! its line. A line is due once its order is paid, and the payment's transaction
//! writes its job (`DeliverLine`); what follows a delivery is the workflow's to say.

use crate::db::db_run;
use crate::error::StoreError;
use crate::jobs::{DeliverLine, EARLY_MILLIS};
use crate::store::Store;
use crate::time::Timestamp;
use crate::work::Work;
use kassa_domain::catalog::Delivery;
use kassa_domain::ids::TenantId;
use kassa_domain::order::LineStatus;
use sqlx::types::Json;

/// A paid line waiting for its licenses.
#[derive(Debug, Clone)]
pub struct DueLine {
    pub tenant_id: TenantId,
    pub order_id: String,
    pub line_no: i64,
    pub product_id: String,
    pub quantity: i64,
    pub delivery: Delivery,
    pub attempts: i64,
}

impl Store {
    /// The line a job is for, when it still waits for its licenses and is due.
    pub async fn due_line(&self, job: &DeliverLine) -> Result<Option<DueLine>, StoreError> {
        let row: Option<(String, i64, Json<Delivery>, i64)> = db_run!(self, c => sqlx::query_as(
            "SELECT product_id, quantity, delivery, delivery_attempts FROM order_lines
             WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3
             AND delivery_status IN ('pending', 'waiting_stock') AND refunded_at IS NULL
             AND next_delivery_at <= $4",
        )
        .bind(job.tenant_id.as_str())
        .bind(&job.order_id)
        .bind(job.line_no)
        .bind(Timestamp::from(Timestamp::now().millis() + EARLY_MILLIS))
        .fetch_optional(c).await?);
        let Some((product_id, quantity, delivery, attempts)) = row else {
            return Ok(None);
        };
        Ok(Some(DueLine {
            tenant_id: job.tenant_id.clone(),
            order_id: job.order_id.clone(),
            line_no: job.line_no,
            product_id,
            quantity,
            delivery: delivery.0,
            attempts,
        }))
    }
}

impl Work {
    /// Writes a line's licenses; when it was the order's last line, the order is
    /// delivered too.
    pub async fn mark_delivered(
        &mut self,
        order: &str,
        line_no: i64,
        licenses: &[String],
        order_delivered: bool,
    ) -> Result<(), StoreError> {
        let now = self.now;
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE order_lines SET delivery_status = 'delivered', licenses = $4, delivered_at = $5,
             next_delivery_at = NULL, delivery_error = NULL,
             delivery_attempts = delivery_attempts + 1
             WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(line_no)
        .bind(Json(licenses))
        .bind(now)
        .execute(c).await?.rows_affected());
        if order_delivered {
            db_run!(&mut self.tx, c => sqlx::query(
                "UPDATE orders SET delivery_status = 'delivered', updated_at = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(self.tenant.as_str())
            .bind(order)
            .bind(now)
            .execute(c).await?.rows_affected());
        }
        Ok(())
    }

    /// Makes a failed line pending again with its attempts counted from zero (the
    /// merchant asked to try again).
    pub async fn reset_delivery(&mut self, order: &str, line_no: i64) -> Result<(), StoreError> {
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE order_lines SET delivery_status = 'pending', delivery_attempts = 0
             WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(line_no)
        .execute(c).await?.rows_affected());
        Ok(())
    }

    /// Records a delivery that did not happen: the line's new status (`waiting_stock`,
    /// `pending` for a retry, `failed`) and why. An attempt is counted unless the line
    /// only waits for stock.
    pub async fn mark_undelivered(
        &mut self,
        order: &str,
        line_no: i64,
        status: LineStatus,
        error: &str,
    ) -> Result<(), StoreError> {
        let attempted = i64::from(status != LineStatus::WaitingStock);
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE order_lines SET delivery_status = $4, next_delivery_at = NULL,
             delivery_attempts = delivery_attempts + $5, delivery_error = $6
             WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(line_no)
        .bind(status.as_str())
        .bind(attempted)
        .bind(error)
        .execute(c).await?.rows_affected());
        Ok(())
    }
}
