//! Fulfillment: delivering each paid order line's license information.
//!
//! A line is due once its order is paid, and the payment's transaction writes its
//! job (`DeliverLine`); for a
//! `license_pool` line, keys are taken and the line marked delivered in one
//! transaction, with `product.delivered` (and `order.delivered` when it was the last
//! line), the licenses email and, when stock runs low, `license_pool.low_stock` and an
//! email to the store's owners. On
//! PostgreSQL keys are claimed with `FOR UPDATE SKIP LOCKED`; on SQLite the write
//! transaction holds the database's one write lock. Either way a key goes to exactly
//! one line, and a line is never delivered twice.

use crate::emails::{email_owners, queue_email};
use crate::error::corrupt;
use crate::events::insert_event;
use crate::jobs::{DeliverLine, EARLY_MILLIS, enqueue};
use crate::orders::load_order;
use crate::pools::claim_keys;
use crate::{Store, StoreError, Timestamp, Tx, db_run};
use kassa_domain::catalog::{Delivery, KeysPer};
use kassa_domain::ids::TenantId;
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

/// A line's delivery status, `None` when there is no such line.
async fn line_status(tx: &mut Tx, line: &DueLine) -> Result<Option<String>, StoreError> {
    Ok(db_run!(tx, c => sqlx::query_scalar(
        "SELECT delivery_status FROM order_lines WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
    )
    .bind(line.tenant_id.as_str())
    .bind(&line.order_id)
    .bind(line.line_no)
    .fetch_optional(c).await?))
}

impl Store {
    /// The line a job is for, when it still waits for its licenses and is due.
    pub async fn due_line(&self, job: &DeliverLine) -> Result<Option<DueLine>, StoreError> {
        let row: Option<(String, i64, Json<Delivery>, i64)> = db_run!(self, c => sqlx::query_as(
            "SELECT product_id, quantity, delivery, delivery_attempts FROM order_lines
             WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3
             AND delivery_status IN ('pending', 'waiting_stock') AND next_delivery_at <= $4",
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

    /// Delivers a `license_pool` line: all its keys or none.
    pub async fn deliver_from_pool(&self, line: &DueLine) -> Result<PoolDelivery, StoreError> {
        let Delivery::LicensePool { pool_id, keys_per } = &line.delivery else {
            return Err(StoreError::Corrupt("not a license pool line".into()));
        };
        let tenant = &line.tenant_id;
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let status = line_status(&mut tx, line).await?;
        if status.as_deref() == Some("delivered") {
            return Ok(PoolDelivery::AlreadyDelivered);
        }
        let needed = match keys_per {
            KeysPer::Unit => line.quantity,
            KeysPer::Line => 1,
        };
        let (pool_name, threshold): (String, Option<i64>) = db_run!(&mut tx, c => sqlx::query_as(
            "SELECT name, low_stock_threshold FROM license_pools WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(pool_id.as_str())
        .fetch_one(c).await?);
        let claimed = claim_keys(
            &mut tx,
            self.backend,
            tenant,
            pool_id.as_str(),
            (&line.order_id, line.line_no),
            needed,
            now,
        )
        .await?;
        let Some(licenses) = claimed else {
            let first_wait = status.as_deref() != Some("waiting_stock");
            db_run!(&mut tx, c => sqlx::query(
                "UPDATE order_lines SET delivery_status = 'waiting_stock', next_delivery_at = NULL,
                 delivery_error = $4 WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
            )
            .bind(tenant.as_str())
            .bind(&line.order_id)
            .bind(line.line_no)
            .bind(format!(
                "the pool {pool_name} has fewer than {needed} keys left"
            ))
            .execute(c).await?.rows_affected());
            if first_wait {
                let about = format!("pool_empty:{}:{}", line.order_id, line.line_no);
                email_owners(&mut tx, tenant, "pool_empty", Some(&line.order_id), &about).await?;
            }
            tx.commit().await?;
            return Ok(PoolDelivery::WaitingStock);
        };
        mark_delivered(&mut tx, line, &licenses, now).await?;
        let available: i64 = db_run!(&mut tx, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM license_keys WHERE tenant_id = $1 AND pool_id = $2 AND status = 'available'",
        )
        .bind(tenant.as_str())
        .bind(pool_id.as_str())
        .fetch_one(c).await?);
        if let Some(threshold) = threshold
            && available <= threshold
            && available + needed > threshold
        {
            let pool = serde_json::json!({
                "id": pool_id, "name": pool_name, "available": available, "low_stock_threshold": threshold,
            });
            insert_event(
                &mut tx,
                tenant,
                "license_pool.low_stock",
                None,
                serde_json::json!({ "license_pool": pool }),
            )
            .await?;
            let about = format!("pool_low:{pool_id}:{now}");
            email_owners(&mut tx, tenant, "pool_low", Some(&line.order_id), &about).await?;
        }
        tx.commit().await?;
        Ok(PoolDelivery::Delivered { licenses })
    }

    /// Delivers a line with licenses obtained elsewhere (the merchant's web service).
    /// Returns false when the line was delivered before (a retried job).
    pub async fn deliver_with(
        &self,
        line: &DueLine,
        licenses: &[String],
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        if line_status(&mut tx, line).await?.as_deref() == Some("delivered") {
            return Ok(false);
        }
        mark_delivered(&mut tx, line, licenses, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a delivery that did not work: retried at `retry_at`, or failed for good.
    pub async fn line_delivery_failed(
        &self,
        line: &DueLine,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let recorded = db_run!(&mut tx, c => sqlx::query(
            "UPDATE order_lines SET delivery_status = $4, next_delivery_at = $5,
             delivery_attempts = delivery_attempts + 1, delivery_error = $6
             WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3 AND delivery_status <> 'delivered'",
        )
        .bind(line.tenant_id.as_str())
        .bind(&line.order_id)
        .bind(line.line_no)
        .bind(if retry_at.is_some() { "pending" } else { "failed" })
        .bind(retry_at.map(Timestamp::from))
        .bind(error)
        .execute(c).await?.rows_affected());
        if recorded == 0 {
            return Ok(());
        }
        if let Some(at) = retry_at {
            let job = DeliverLine {
                tenant_id: line.tenant_id.clone(),
                order_id: line.order_id.clone(),
                line_no: line.line_no,
            };
            enqueue(&mut tx, &job, at).await?;
        } else {
            let about = format!("delivery_failed:{}:{}", line.order_id, line.line_no);
            let order = Some(line.order_id.as_str());
            email_owners(&mut tx, &line.tenant_id, "delivery_failed", order, &about).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sends the customer their licenses again.
    pub async fn resend_licenses(&self, tenant: &TenantId, order: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let record = load_order(&mut tx, tenant, order).await?;
        if !record
            .lines
            .iter()
            .any(|l| l.delivery_status == "delivered")
        {
            return Err(StoreError::Conflict(
                "no license has been delivered yet".into(),
            ));
        }
        let to =
            record.customer.email.clone().ok_or_else(|| {
                StoreError::Conflict("the order's customer data was erased".into())
            })?;
        let key = format!("licenses:{order}:resend:{}", Timestamp::now().millis());
        queue_email(
            &mut tx,
            tenant,
            "licenses",
            Some(order),
            &key,
            &to,
            &record.locale,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Marks a line delivered with its licenses, emits `product.delivered`, queues the
/// licenses email, and when every line is delivered marks the order delivered and
/// emits `order.delivered`.
pub(crate) async fn mark_delivered(
    tx: &mut Tx,
    line: &DueLine,
    licenses: &[String],
    now: i64,
) -> Result<(), StoreError> {
    let tenant = &line.tenant_id;
    db_run!(tx, c => sqlx::query(
        "UPDATE order_lines SET delivery_status = 'delivered', licenses = $4, delivered_at = $5,
         next_delivery_at = NULL, delivery_error = NULL,
         delivery_attempts = delivery_attempts + 1
         WHERE tenant_id = $1 AND order_id = $2 AND line_no = $3",
    )
    .bind(tenant.as_str())
    .bind(&line.order_id)
    .bind(line.line_no)
    .bind(Json(licenses))
    .bind(Timestamp::from(now))
    .execute(c).await?.rows_affected());
    let left: i64 = db_run!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_lines WHERE tenant_id = $1 AND order_id = $2 AND delivery_status <> 'delivered'",
    )
    .bind(tenant.as_str())
    .bind(&line.order_id)
    .fetch_one(c).await?);
    if left == 0 {
        db_run!(tx, c => sqlx::query(
            "UPDATE orders SET delivery_status = 'delivered', updated_at = $3 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(&line.order_id)
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
    }
    let order = load_order(tx, tenant, &line.order_id).await?;
    let delivered_line = order
        .lines
        .iter()
        .find(|l| l.line_no == line.line_no)
        .cloned();
    insert_event(
        tx,
        tenant,
        "product.delivered",
        Some(&line.order_id),
        serde_json::json!({ "order": order, "line": delivered_line }),
    )
    .await?;
    if let Some(to) = &order.customer.email {
        let key = format!("licenses:{}:{}", line.order_id, line.line_no);
        queue_email(
            tx,
            tenant,
            "licenses",
            Some(&line.order_id),
            &key,
            to,
            &order.locale,
        )
        .await?;
    }
    if left == 0 {
        insert_event(
            tx,
            tenant,
            "order.delivered",
            Some(&line.order_id),
            serde_json::json!({ "order": order }),
        )
        .await?;
    }
    Ok(())
}

/// Makes the lines returned by an `UPDATE … RETURNING tenant_id, order_id, line_no`
/// due now: one job each.
pub(crate) async fn wake_lines(
    tx: &mut Tx,
    lines: Vec<(String, String, i64)>,
    now: i64,
) -> Result<(), StoreError> {
    for (tenant, order_id, line_no) in lines {
        let job = DeliverLine {
            tenant_id: TenantId::parse(&tenant).map_err(corrupt)?,
            order_id,
            line_no,
        };
        enqueue(tx, &job, now).await?;
    }
    Ok(())
}
