//! Fulfillment's rows: the paid lines due for delivery, and what a delivery wrote on
//! its line. A line is due once its order is paid (`next_delivery_at`, written by the
//! payment's transaction); the lines are their own queue (`queues.rs`), claimed in
//! batches. What follows a delivery is the workflow's to say.

use std::time::Duration;

use crate::db::db_run;
use crate::error::{StoreError, corrupt};
use crate::queues::Queue;
use crate::request_id::RequestId;
use crate::store::Store;
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
    /// The request that made the line due (its payment, say), logged with its delivery.
    pub request_id: Option<RequestId>,
}

/// A claimed line as read: store, order, line, product, quantity, delivery method,
/// attempts and request id.
type DueLineRow = (
    String,
    String,
    i64,
    String,
    i64,
    Json<Delivery>,
    i64,
    Option<String>,
);

impl Store {
    /// Claims up to `limit` due lines for `claim` (a name for this batch, unique) until
    /// `lease` from now, and returns them, the earliest due first. On PostgreSQL two
    /// nodes claiming at once skip each other's rows; SQLite claims through its one
    /// writer. A line's delivery, retry or wait for stock clears its claim.
    pub async fn claim_lines(
        &self,
        claim: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueLine>, StoreError> {
        if self.claim_rows(Queue::Lines, claim, limit, lease).await? == 0 {
            return Ok(Vec::new());
        }
        // The claim committed: a reader sees it.
        let rows: Vec<DueLineRow> = db_run!(self, c => sqlx::query_as(
            "SELECT tenant_id, order_id, line_no, product_id, quantity, delivery,
             delivery_attempts, request_id FROM order_lines
             WHERE claimed_by = $1 AND delivery_status IN ('pending', 'waiting_stock')
             AND refunded_at IS NULL ORDER BY next_delivery_at",
        )
        .bind(claim)
        .fetch_all(c).await?);
        rows.into_iter()
            .map(
                |(tenant, order_id, line_no, product_id, quantity, delivery, attempts, request)| {
                    Ok(DueLine {
                        tenant_id: TenantId::parse(&tenant).map_err(corrupt)?,
                        order_id,
                        line_no,
                        product_id,
                        quantity,
                        delivery: delivery.0,
                        attempts,
                        request_id: request.map(RequestId::from_stored),
                    })
                },
            )
            .collect()
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
             delivery_attempts = delivery_attempts + 1, claimed_by = NULL, claimed_until = NULL
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

    /// A line no longer due (the workflow will not deliver it now): its time and its
    /// claim cleared, its state kept.
    pub async fn let_go_of_line(&mut self, order: &str, line_no: i64) -> Result<(), StoreError> {
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE order_lines SET next_delivery_at = NULL, claimed_by = NULL, claimed_until = NULL
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
             delivery_attempts = delivery_attempts + $5, delivery_error = $6,
             claimed_by = NULL, claimed_until = NULL
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
