//! Jobs on apalis: each job wakes a worker up for one row of Kassa's own tables (an
//! account email), which keeps the state, the attempt log and what the API shows.
//! (Webhook deliveries, line deliveries and outbox emails are not jobs: their rows are
//! their queues, see `queues.rs`.) A job is written by the transaction of the change that
//! causes it: a raw INSERT into apalis's table (`Jobs` on SQLite, `apalis.jobs` on
//! PostgreSQL) on the same connection, so it commits or rolls back with the change (the
//! row is what apalis's own push writes). A contract test checks that apalis
//! runs what these INSERTs write. apalis's schema is created by `Store::migrate`, with
//! its own migration history (`_apalis_migrations`).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{Backend, Tx, db_run};
use crate::error::StoreError;
use crate::store::Store;

/// A kind of job: its arguments and its apalis queue.
pub trait Job: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static {
    const QUEUE: &'static str;

    /// The request that caused the job (directly, or through the job that wrote it).
    fn request_id(&self) -> Option<&crate::RequestId>;
}

/// Implements [`Job`] for job arguments with a `request_id` field.
macro_rules! job {
    ($job:ty, $queue:literal) => {
        impl $crate::jobs::Job for $job {
            const QUEUE: &'static str = $queue;

            fn request_id(&self) -> Option<&$crate::RequestId> {
                self.request_id.as_ref()
            }
        }
    };
}
pub(crate) use job;

/// A job may run up to this much before its row's time (the clocks of two machines);
/// handlers take a row as due within it.
pub(crate) const EARLY_MILLIS: i64 = 1_000;

/// How often apalis runs a job whose handler failed (a database error): the handlers
/// record every other failure on Kassa's own row and schedule the retry themselves.
const MAX_ATTEMPTS: i32 = 5;

/// Counts the jobs this process wrote on SQLite, so its idle workers look for them at
/// once instead of at their next poll (apalis-sqlite has no notification of its own;
/// on PostgreSQL apalis's insert trigger NOTIFYs).
static JOBS_WRITTEN: std::sync::OnceLock<tokio::sync::watch::Sender<u64>> =
    std::sync::OnceLock::new();

fn jobs_written() -> &'static tokio::sync::watch::Sender<u64> {
    JOBS_WRITTEN.get_or_init(|| tokio::sync::watch::channel(0).0)
}

/// Changes each time this process writes a job on SQLite. It changes before the
/// job's transaction commits; a worker woken by it looks for jobs through the store's
/// one writer connection, which it gets only once that transaction has ended.
pub fn jobs_written_here() -> tokio::sync::watch::Receiver<u64> {
    jobs_written().subscribe()
}

/// Which of a queue's due jobs a worker takes first: apalis fetches by priority, then
/// by run time. A paid order's progress (its line deliveries' webhooks, its receipt
/// and licenses emails) goes before a backlog of other work, such as a burst of
/// `order.created` webhooks, so a delivery is not queued behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    Normal = 0,
    PaidOrder = 1,
}

impl Priority {
    /// `PaidOrder` when `paid_order` holds.
    pub(crate) fn paid_order_if(paid_order: bool) -> Self {
        if paid_order {
            Priority::PaidOrder
        } else {
            Priority::Normal
        }
    }
}

/// Writes a job that runs at `run_at` (Unix milliseconds), in `tx`.
pub(crate) async fn enqueue<J: Job>(tx: &mut Tx, job: &J, run_at: i64) -> Result<(), StoreError> {
    enqueue_with(tx, job, run_at, Priority::Normal).await
}

/// [`enqueue`], taken before the queue's `Normal` jobs when `priority` says so.
pub(crate) async fn enqueue_with<J: Job>(
    tx: &mut Tx,
    job: &J,
    run_at: i64,
    priority: Priority,
) -> Result<(), StoreError> {
    let args = serde_json::to_vec(job).map_err(crate::error::corrupt)?;
    let id = ulid::Ulid::new().to_string();
    let now = crate::time::Timestamp::now().millis();
    let (sql, run_at) = match tx.backend() {
        // apalis keeps whole seconds on SQLite: a later job is rounded up, so it never
        // runs before its row is due.
        Backend::Sqlite => (
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata)
             VALUES ($1, $2, $3, 'Pending', 0, $4, $5, $6, '{}')",
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
             VALUES ($1, $2, $3, 'Pending', 0, $4, CASE WHEN $5 > 0 THEN to_timestamp($5 / 1000.0) ELSE now() END, $6)",
            if run_at <= now { 0 } else { run_at },
        ),
    };
    db_run!(tx, c => sqlx::query(sql)
        .bind(&args)
        .bind(&id)
        .bind(J::QUEUE)
        .bind(MAX_ATTEMPTS)
        .bind(run_at)
        .bind(priority as i32)
        .execute(c)
        .await?
        .rows_affected());
    if tx.backend() == Backend::Sqlite {
        jobs_written().send_modify(|n| *n = n.wrapping_add(1));
    }
    Ok(())
}

/// The store's writer pool, for apalis's workers: jobs and Kassa's rows share it (on
/// SQLite its one connection, so apalis's fetches and acks queue with Kassa's writes).
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
        match &self.writer {
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
        Ok(
            db_run!(self.writer(), c => sqlx::query(sql).bind(secs).execute(c).await?.rows_affected()),
        )
    }
}

/// One queue's jobs, for operators (`/metrics`).
#[derive(Debug, Clone)]
pub struct QueueUse {
    /// apalis's `job_type`, e.g. `kassa::deliver_webhook`.
    pub queue: String,
    /// Waiting for a worker now.
    pub due: i64,
    /// Waiting for their time (retries, later deliveries).
    pub scheduled: i64,
    /// Taken by a worker.
    pub running: i64,
    /// How long the oldest due job has waited, in seconds (0 when none waits).
    pub oldest_due_seconds: f64,
}

/// A pool's connections, for operators (`/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    /// `main` on PostgreSQL; `readers` and `writer` on SQLite.
    pub name: &'static str,
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl Store {
    /// Every queue's jobs not finished yet: due, scheduled, running, and how late the
    /// oldest due one is.
    pub async fn job_queues(&self) -> Result<Vec<QueueUse>, StoreError> {
        let sql = match self.backend {
            // apalis keeps whole seconds on SQLite.
            Backend::Sqlite => {
                "SELECT job_type,
                   SUM(CASE WHEN status IN ('Pending', 'Failed') AND run_at <= CAST(strftime('%s', 'now') AS INTEGER) THEN 1 ELSE 0 END),
                   SUM(CASE WHEN status IN ('Pending', 'Failed') AND run_at > CAST(strftime('%s', 'now') AS INTEGER) THEN 1 ELSE 0 END),
                   SUM(CASE WHEN status IN ('Queued', 'Running') THEN 1 ELSE 0 END),
                   CAST(COALESCE(MAX(CASE WHEN status IN ('Pending', 'Failed') AND run_at <= CAST(strftime('%s', 'now') AS INTEGER)
                     THEN CAST(strftime('%s', 'now') AS INTEGER) - run_at END), 0) AS REAL)
                 FROM Jobs WHERE status IN ('Pending', 'Queued', 'Running', 'Failed')
                   AND NOT (status = 'Failed' AND attempts >= max_attempts)
                 GROUP BY job_type ORDER BY job_type"
            }
            Backend::Postgres => {
                "SELECT job_type,
                   COUNT(*) FILTER (WHERE status IN ('Pending', 'Failed') AND run_at <= now()),
                   COUNT(*) FILTER (WHERE status IN ('Pending', 'Failed') AND run_at > now()),
                   COUNT(*) FILTER (WHERE status IN ('Queued', 'Running')),
                   COALESCE(EXTRACT(EPOCH FROM now() - MIN(run_at) FILTER (WHERE status IN ('Pending', 'Failed')
                     AND run_at <= now())), 0)::float8
                 FROM apalis.jobs WHERE status IN ('Pending', 'Queued', 'Running', 'Failed')
                   AND NOT (status = 'Failed' AND attempts >= max_attempts)
                 GROUP BY job_type ORDER BY job_type"
            }
        };
        let rows: Vec<(String, i64, i64, i64, f64)> =
            db_run!(self, c => sqlx::query_as(sql).fetch_all(c).await?);
        let mut queues: Vec<QueueUse> = rows
            .into_iter()
            .map(
                |(queue, due, scheduled, running, oldest_due_seconds)| QueueUse {
                    queue,
                    due,
                    scheduled,
                    running,
                    oldest_due_seconds,
                },
            )
            .collect();
        // Webhook deliveries, line deliveries and emails are not apalis jobs: their
        // rows are their queues.
        queues.extend(self.row_queues().await?);
        queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(queues)
    }

    /// The pools' connections in use and idle.
    pub fn pool_use(&self) -> Vec<PoolUse> {
        fn of<DB: sqlx::Database>(name: &'static str, p: &sqlx::Pool<DB>) -> PoolUse {
            PoolUse {
                name,
                size: p.size(),
                idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
                max: p.options().get_max_connections(),
            }
        }
        match (&self.pool, &self.writer) {
            (crate::db::Pool::Sqlite(r), crate::db::Pool::Sqlite(w)) => {
                vec![of("readers", r), of("writer", w)]
            }
            (crate::db::Pool::Postgres(p), _) => vec![of("main", p)],
            (crate::db::Pool::Sqlite(r), _) => vec![of("readers", r)],
        }
    }
}
