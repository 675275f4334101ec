//! What Kassa keeps, and for how long: finished work is removed so tables do not grow
//! without end. Orders, payments and events are kept (orders are deleted only by the
//! unpaid-order rules).

use crate::{Store, StoreError, Timestamp};

const DAY: i64 = 24 * 60 * 60 * 1000;

/// Finished webhook deliveries and their attempt logs are kept this long.
pub const WEBHOOK_LOG_DAYS: i64 = 30;
/// Sent or failed emails are kept this long.
pub const EMAIL_DAYS: i64 = 90;
/// Carts that never became an order are kept this long after their last change.
pub const CART_DAYS: i64 = 30;

/// How many rows one clean-up removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanUp {
    pub webhook_attempts: u64,
    pub webhook_deliveries: u64,
    pub emails: u64,
    pub carts: u64,
    pub idempotency_keys: u64,
}

impl Store {
    /// Removes finished work older than its retention.
    pub async fn clean_up(&self) -> Result<CleanUp, StoreError> {
        let now = Timestamp::now().millis();
        let webhooks_before = now - WEBHOOK_LOG_DAYS * DAY;
        let mut done = CleanUp::default();
        let run = |sql: &'static str, before: i64| async move {
            Ok::<u64, StoreError>(
                sqlx::query(sql)
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected(),
            )
        };
        done.webhook_attempts = run(
            "DELETE FROM webhook_attempts WHERE created_at < $1 AND delivery_id IN
             (SELECT id FROM webhook_deliveries WHERE status IN ('succeeded', 'failed') AND updated_at < $1)",
            webhooks_before,
        )
        .await?;
        done.webhook_deliveries = run(
            "DELETE FROM webhook_deliveries WHERE status IN ('succeeded', 'failed') AND updated_at < $1",
            webhooks_before,
        )
        .await?;
        done.emails = run(
            "DELETE FROM emails WHERE status IN ('sent', 'failed') AND created_at < $1",
            now - EMAIL_DAYS * DAY,
        )
        .await?;
        done.carts = run(
            "DELETE FROM carts WHERE order_id IS NULL AND updated_at < $1",
            now - CART_DAYS * DAY,
        )
        .await?;
        done.idempotency_keys = run(
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            now - crate::IDEMPOTENCY_TTL_MILLIS,
        )
        .await?;
        Ok(done)
    }
}
