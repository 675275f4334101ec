//! Jobs on apalis: each job wakes a worker up for one row of Kassa's own tables (a
//! webhook delivery, an email, an order line), which keeps the state, the attempt log
//! and what the API shows. A job is written by the transaction of the change that
//! causes it: a raw INSERT into apalis's table (`Jobs` on SQLite, `apalis.jobs` on
//! PostgreSQL) on the same connection, so it commits or rolls back with the change (the
//! row is what apalis's own push writes). A contract test checks that apalis
//! runs what these INSERTs write. apalis's schema is created by `Store::migrate`, with
//! its own migration history (`_apalis_migrations`).

use std::time::Duration;

use kassa_domain::ids::{DeliveryId, EmailId, TenantId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{Backend, Tx, db_run};
use crate::error::StoreError;
use crate::store::Store;

/// A kind of job: its arguments and its apalis queue.
pub trait Job: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static {
    const QUEUE: &'static str;
}

/// Sends a webhook delivery's next attempt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliverWebhook {
    pub tenant_id: TenantId,
    pub delivery_id: DeliveryId,
}

impl Job for DeliverWebhook {
    const QUEUE: &'static str = "kassa::deliver_webhook";
}

/// Renders and sends (or keeps) an email of the outbox.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SendEmail {
    pub tenant_id: TenantId,
    pub email_id: EmailId,
}

impl Job for SendEmail {
    const QUEUE: &'static str = "kassa::send_email";
}

/// Delivers a paid order line's licenses.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliverLine {
    pub tenant_id: TenantId,
    pub order_id: String,
    pub line_no: i64,
}

impl Job for DeliverLine {
    const QUEUE: &'static str = "kassa::deliver_line";
}

/// A job may run up to this much before its row's time (the clocks of two machines);
/// handlers take a row as due within it.
pub(crate) const EARLY_MILLIS: i64 = 1_000;

/// How often apalis runs a job whose handler failed (a database error): the handlers
/// record every other failure on Kassa's own row and schedule the retry themselves.
const MAX_ATTEMPTS: i32 = 5;

/// Writes a job that runs at `run_at` (Unix milliseconds), in `tx`.
pub(crate) async fn enqueue<J: Job>(tx: &mut Tx, job: &J, run_at: i64) -> Result<(), StoreError> {
    let args = serde_json::to_vec(job).map_err(crate::error::corrupt)?;
    let id = ulid::Ulid::new().to_string();
    let now = crate::time::Timestamp::now().millis();
    let (sql, run_at) = match tx.backend() {
        // apalis keeps whole seconds on SQLite: a later job is rounded up, so it never
        // runs before its row is due.
        Backend::Sqlite => (
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata)
             VALUES ($1, $2, $3, 'Pending', 0, $4, $5, 0, '{}')",
            if run_at <= now {
                run_at.div_euclid(1000)
            } else {
                run_at.div_euclid(1000) + i64::from(run_at.rem_euclid(1000) != 0)
            },
        ),
        // A job due now runs at the transaction's `now()`: apalis's insert trigger
        // NOTIFYs workers only of jobs due by then.
        Backend::Postgres => (
            "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority)
             VALUES ($1, $2, $3, 'Pending', 0, $4, CASE WHEN $5 > 0 THEN to_timestamp($5 / 1000.0) ELSE now() END, 0)",
            if run_at <= now { 0 } else { run_at },
        ),
    };
    db_run!(tx, c => sqlx::query(sql)
        .bind(&args)
        .bind(&id)
        .bind(J::QUEUE)
        .bind(MAX_ATTEMPTS)
        .bind(run_at)
        .execute(c)
        .await?
        .rows_affected());
    Ok(())
}

/// The store's own pool, for apalis's workers: jobs and Kassa's rows share it.
#[derive(Debug, Clone)]
pub enum JobPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Store {
    /// The store's pool, for apalis's storages (a clone: the same connections).
    pub fn job_pool(&self) -> JobPool {
        self.state
            .shared_with_workers
            .store(true, std::sync::atomic::Ordering::Release);
        match &self.pool {
            crate::db::Pool::Sqlite(p) => JobPool::Sqlite(p.clone()),
            crate::db::Pool::Postgres(p) => JobPool::Postgres(p.clone()),
        }
    }

    /// Jobs written and not finished yet, by queue: for tests and operators.
    pub async fn pending_jobs(&self, queue: &str) -> Result<i64, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM Jobs WHERE job_type = $1 AND status NOT IN ('Done', 'Killed')
                 AND NOT (status = 'Failed' AND attempts >= max_attempts)"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 AND status NOT IN ('Done', 'Killed')
                 AND NOT (status = 'Failed' AND attempts >= max_attempts)"
            }
        };
        Ok(db_run!(self, c => sqlx::query_scalar(sql)
            .bind(queue)
            .fetch_one(c)
            .await?))
    }
}

impl Store {
    /// Starts again the jobs whose every attempt failed (a handler fails only on a
    /// database error: the database was down, say) and that have been dead for `after`.
    /// A handler reads its row's state first, so a job revived for work done meanwhile
    /// does nothing. Returns how many were revived.
    pub async fn revive_dead_jobs(&self, after: Duration) -> Result<u64, StoreError> {
        let secs = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
        let sql = match self.backend {
            // apalis keeps whole seconds on SQLite.
            Backend::Sqlite => {
                "UPDATE Jobs SET status = 'Pending', attempts = 0, run_at = strftime('%s', 'now'),
                 lock_by = NULL, lock_at = NULL, done_at = NULL
                 WHERE job_type LIKE 'kassa::%' AND (status = 'Killed'
                 OR (status = 'Failed' AND attempts >= max_attempts))
                 AND done_at <= strftime('%s', 'now') - $1"
            }
            Backend::Postgres => {
                "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(),
                 lock_by = NULL, lock_at = NULL, done_at = NULL
                 WHERE job_type LIKE 'kassa::%' AND (status = 'Killed'
                 OR (status = 'Failed' AND attempts >= max_attempts))
                 AND done_at <= now() - $1 * interval '1 second'"
            }
        };
        Ok(db_run!(self, c => sqlx::query(sql).bind(secs).execute(c).await?.rows_affected()))
    }
}
