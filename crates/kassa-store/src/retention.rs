//! What Kassa keeps, and for how long: finished work is removed so tables do not grow
//! without end. Orders, payments and events are kept (orders are deleted only by the
//! unpaid-order rules).

use crate::db::{Backend, db_run};
use crate::error::StoreError;
use crate::store::Store;
use crate::time::Timestamp;

const DAY: i64 = 24 * 60 * 60 * 1000;

/// Finished webhook deliveries and their attempt logs are kept this long.
pub const WEBHOOK_LOG_DAYS: i64 = 30;
/// Sent or failed emails are kept this long.
pub const EMAIL_DAYS: i64 = 90;
/// Carts that never became an order are kept this long after their last change.
pub const CART_DAYS: i64 = 30;
/// Finished apalis jobs, and workers not seen since, are kept this long.
pub const JOB_DAYS: i64 = 1;

/// How many rows one clean-up removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanUp {
    pub webhook_attempts: u64,
    pub webhook_deliveries: u64,
    pub emails: u64,
    pub carts: u64,
    pub idempotency_keys: u64,
    pub jobs: u64,
    pub job_workers: u64,
}

impl Store {
    /// Removes finished work older than its retention.
    pub async fn clean_up(&self) -> Result<CleanUp, StoreError> {
        let now = Timestamp::now().millis();
        let webhooks_before = now - WEBHOOK_LOG_DAYS * DAY;
        let mut done = CleanUp::default();
        let run = |sql: &'static str, before: i64| async move {
            Ok::<u64, StoreError>(db_run!(self.writer(), c => sqlx::query(sql)
                    .bind(Timestamp::from(before))
                    .execute(c).await?.rows_affected()))
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
        // apalis keeps whole seconds (SQLite) or timestamps (PostgreSQL).
        let jobs_before = now - JOB_DAYS * DAY;
        let (jobs, workers) = match self.backend {
            Backend::Sqlite => (
                "DELETE FROM Jobs WHERE done_at < $1 / 1000 AND (status IN ('Done', 'Killed')
                 OR (status = 'Failed' AND attempts >= max_attempts))",
                "DELETE FROM Workers WHERE last_seen < $1 / 1000
                 AND id NOT IN (SELECT lock_by FROM Jobs WHERE lock_by IS NOT NULL)",
            ),
            Backend::Postgres => (
                "DELETE FROM apalis.jobs WHERE done_at < $1 AND (status IN ('Done', 'Killed')
                 OR (status = 'Failed' AND attempts >= max_attempts))",
                "DELETE FROM apalis.workers WHERE last_seen < $1
                 AND id NOT IN (SELECT lock_by FROM apalis.jobs WHERE lock_by IS NOT NULL)",
            ),
        };
        done.jobs = run(jobs, jobs_before).await?;
        done.job_workers = run(workers, jobs_before).await?;
        Ok(done)
    }
}
