//! Queues whose rows are their jobs: webhook deliveries, paid lines waiting for their
//! licenses, and outbox emails. A row says itself when it is due; a node claims due rows
//! in batches (one UPDATE, `FOR UPDATE SKIP LOCKED` on PostgreSQL so two nodes skip each
//! other's rows, SQLite's one writer otherwise), naming the batch (`claimed_by`) until
//! `claimed_until`, which it extends while the batch is in its hands. A claim that runs
//! out (the node died) gives its rows back. What a row's outcome writes clears its
//! claim. The same claim, extension, wake-up and gauges serve every such queue.

use std::sync::OnceLock;
use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::db::{Backend, Pool, Tx, db_run, placeholders};
use crate::error::StoreError;
use crate::jobs::{EARLY_MILLIS, QueueUse};
use crate::store::Store;
use crate::time::Timestamp;

/// A queue whose rows are its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// `webhook_deliveries`: pending deliveries, a paid order's first.
    Webhooks,
    /// `order_lines`: paid lines waiting for their licenses.
    Lines,
    /// `emails`: queued outbox emails, a paid order's first.
    Emails,
}

/// How a queue's rows are found in its table.
struct Shape {
    table: &'static str,
    /// The columns naming a row (PostgreSQL claims by them).
    key: &'static str,
    /// A row waiting for its time (or a worker), whatever its time.
    pending: &'static str,
    /// The column holding when a row is due.
    due_at: &'static str,
    /// Which due rows are claimed first.
    order: &'static str,
    /// The column naming the group a node may hold back (a webhook endpoint at its
    /// in-flight cap on that node), if the queue has such groups.
    group: Option<&'static str>,
    /// Where a claim's extension looks for its rows (` AND …`, or nothing): a claimed
    /// row is pending until its outcome clears its claim. On PostgreSQL `emails` and
    /// `webhook_deliveries` have no index on `claimed_by` (migrations 0039, 0040), so
    /// the extension reads the pending rows through the queue's partial index instead
    /// of the whole table.
    within: &'static str,
}

impl Queue {
    const ALL: [Queue; 3] = [Queue::Webhooks, Queue::Lines, Queue::Emails];

    /// The queue's name in `/metrics` (as when each row had an apalis job).
    pub fn name(self) -> &'static str {
        match self {
            Queue::Webhooks => "kassa::deliver_webhook",
            Queue::Lines => "kassa::deliver_line",
            Queue::Emails => "kassa::send_email",
        }
    }

    /// The PostgreSQL channel every node listens on for the queue's new due rows.
    pub fn channel(self) -> &'static str {
        match self {
            Queue::Webhooks => "kassa_webhook_deliveries",
            Queue::Lines => "kassa_lines_due",
            Queue::Emails => "kassa_emails_due",
        }
    }

    fn shape(self) -> Shape {
        match self {
            // A disabled endpoint's deliveries are held (not sent, not due) until it is
            // enabled again, as on Svix.
            Queue::Webhooks => Shape {
                table: "webhook_deliveries",
                key: "tenant_id, id",
                pending: "status = 'pending' AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e \
                          WHERE e.tenant_id = webhook_deliveries.tenant_id \
                          AND e.id = webhook_deliveries.endpoint_id AND e.disabled_at IS NOT NULL)",
                due_at: "next_attempt_at",
                order: "priority DESC, next_attempt_at",
                group: Some("endpoint_id"),
                within: " AND status = 'pending'",
            },
            Queue::Lines => Shape {
                table: "order_lines",
                key: "tenant_id, order_id, line_no",
                pending: "delivery_status IN ('pending', 'waiting_stock') AND refunded_at IS NULL \
                          AND next_delivery_at IS NOT NULL",
                due_at: "next_delivery_at",
                order: "next_delivery_at",
                group: None,
                within: "",
            },
            Queue::Emails => Shape {
                table: "emails",
                key: "tenant_id, id",
                pending: "status = 'queued'",
                due_at: "next_attempt_at",
                order: "priority DESC, next_attempt_at",
                group: None,
                within: " AND status = 'queued'",
            },
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Shape {
    /// ` AND <group> NOT IN ($from, …)` for `count` groups to skip (nothing when there
    /// are none, or the queue has no groups).
    fn skipping(&self, from: usize, count: usize) -> String {
        match self.group {
            Some(group) if count > 0 => {
                format!(" AND {group} NOT IN ({})", placeholders(from, count))
            }
            _ => String::new(),
        }
    }
}

/// Per queue, counts the due rows this process wrote, so its dispatcher looks at once.
static WRITTEN: [OnceLock<tokio::sync::watch::Sender<u64>>; 3] =
    [OnceLock::new(), OnceLock::new(), OnceLock::new()];

fn written(queue: Queue) -> &'static tokio::sync::watch::Sender<u64> {
    WRITTEN[queue.index()].get_or_init(|| tokio::sync::watch::channel(0).0)
}

/// Changes each time this process writes a due row of `queue`. On SQLite it may change
/// before the row's transaction commits: a dispatcher claims through the store's one
/// writer connection, which it gets only once that transaction has ended. On PostgreSQL
/// a NOTIFY on [`Queue::channel`] (at the commit) wakes every node.
pub fn written_here(queue: Queue) -> tokio::sync::watch::Receiver<u64> {
    written(queue).subscribe()
}

/// Says that this process wrote due rows of `queue` (see [`written_here`]).
pub(crate) fn wrote(queue: Queue) {
    written(queue).send_modify(|n| *n = n.wrapping_add(1));
}

/// Wakes every node's dispatcher of `queue` at the commit of `tx` (PostgreSQL), and
/// this process's at once.
pub(crate) async fn notify_due(tx: &mut Tx, queue: Queue) -> Result<(), StoreError> {
    if let Tx::Postgres(pg) = tx {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(queue.channel())
            .execute(&mut **pg)
            .await?;
    }
    wrote(queue);
    Ok(())
}

/// The claim of due rows of `queue` (parameters bound by [`bind_claim!`], then the
/// `skip` groups left out from `$6`).
fn claim_sql(backend: Backend, queue: Queue, skip: usize) -> String {
    let shape = queue.shape();
    let skipping = shape.skipping(6, skip);
    let Shape {
        table,
        key,
        pending,
        due_at,
        order,
        ..
    } = shape;
    let due = format!(
        "{pending} AND {due_at} <= $3 AND (claimed_until IS NULL OR claimed_until <= $4){skipping} \
         ORDER BY {order} LIMIT $5"
    );
    match backend {
        Backend::Sqlite => format!(
            "UPDATE {table} SET claimed_by = $1, claimed_until = $2
             WHERE rowid IN (SELECT rowid FROM {table} WHERE {due})"
        ),
        Backend::Postgres => format!(
            "UPDATE {table} SET claimed_by = $1, claimed_until = $2
             WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {due} FOR UPDATE SKIP LOCKED)"
        ),
    }
}

/// Binds a claim named `claim` lasting until `until` (ms), made at `now` (ms), of at
/// most `limit` rows, in [`claim_sql`]'s order.
macro_rules! bind_claim {
    ($query:expr, $claim:expr, $until:expr, $now:expr, $limit:expr) => {
        $query
            .bind($claim)
            .bind(Timestamp::from($until))
            .bind(Timestamp::from($now + EARLY_MILLIS))
            .bind(Timestamp::from($now))
            .bind(i64::try_from($limit).unwrap_or(i64::MAX))
    };
}

impl Store {
    /// Wakes every node's dispatcher of `queue` (rows became due outside a [`Tx`]).
    pub(crate) async fn wake_queue(&self, queue: Queue) -> Result<(), StoreError> {
        if let Some(pool) = self.pg_pool() {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(queue.channel())
                .execute(pool)
                .await?;
        }
        wrote(queue);
        Ok(())
    }

    /// Claims up to `limit` due rows of `queue` for `claim` (a name for this batch,
    /// unique) until `lease` from now; returns how many. Read them by `claimed_by`.
    pub(crate) async fn claim_rows(
        &self,
        queue: Queue,
        claim: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        self.claim_rows_skipping(queue, claim, limit, lease, &[])
            .await
    }

    /// [`Store::claim_rows`], leaving the rows of the groups `skip` (webhook endpoints
    /// this node holds back) to later claims.
    pub(crate) async fn claim_rows_skipping(
        &self,
        queue: Queue,
        claim: &str,
        limit: usize,
        lease: Duration,
        skip: &[String],
    ) -> Result<u64, StoreError> {
        self.check_open()?;
        let sql = claim_sql(self.backend, queue, skip.len());
        let now = Timestamp::now().millis();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        Ok(db_run!(self.writer(), c => {
            let mut query = bind_claim!(sqlx::query(AssertSqlSafe(sql.clone())), claim, until, now, limit);
            for group in skip {
                query = query.bind(group.as_str());
            }
            query.execute(c).await?.rows_affected()
        }))
    }

    /// On PostgreSQL, claims up to `limit` due rows of `queue` as
    /// [`Store::claim_rows_skipping`] does and returns them in the same statement:
    /// `select` reads the claimed rows as the table `claimed` (`SELECT … FROM claimed …
    /// ORDER BY …`). The batch is not read again by `claimed_by`, which then needs no
    /// index, so a claim changes no indexed column and is a HOT update (migrations 0039
    /// and 0040). `None` on SQLite: claim, then read the batch by its name.
    pub(crate) async fn claim_rows_returning<T>(
        &self,
        queue: Queue,
        select: &str,
        claim: &str,
        limit: usize,
        lease: Duration,
        skip: &[String],
    ) -> Result<Option<Vec<T>>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        self.check_open()?;
        let Pool::Postgres(pool) = self.writer() else {
            return Ok(None);
        };
        let sql = format!(
            "WITH claimed AS ({} RETURNING *) {select}",
            claim_sql(Backend::Postgres, queue, skip.len()),
        );
        let now = Timestamp::now().millis();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut query = bind_claim!(sqlx::query_as(AssertSqlSafe(sql)), claim, until, now, limit);
        for group in skip {
            query = query.bind(group.as_str());
        }
        Ok(Some(query.fetch_all(pool).await?))
    }

    /// Extends the claims `claims` of `queue` (batches still in this node's hands) to
    /// `lease` from now, so another node does not take them over while they are worked.
    pub async fn extend_claims(
        &self,
        queue: Queue,
        claims: &[String],
        lease: Duration,
    ) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        self.check_open()?;
        let until = Timestamp::now()
            .millis()
            .saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let names = placeholders(2, claims.len());
        let Shape { table, within, .. } = queue.shape();
        Ok(db_run!(self.writer(), c => {
            let mut query = sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET claimed_until = $1 WHERE claimed_by IN ({names}){within}"
            )))
            .bind(Timestamp::from(until));
            for claim in claims {
                query = query.bind(claim.as_str());
            }
            query.execute(c).await?.rows_affected()
        }))
    }

    /// When a dispatcher of `queue` should look again: the earliest pending row's time,
    /// or for a claimed one the end of its claim; `None` when nothing is pending.
    pub async fn next_due_at(&self, queue: Queue) -> Result<Option<Timestamp>, StoreError> {
        self.next_due_at_skipping(queue, &[]).await
    }

    /// [`Store::next_due_at`] of the rows not in the groups `skip` (webhook endpoints
    /// this node holds back: it looks again when one of them has room).
    pub async fn next_due_at_skipping(
        &self,
        queue: Queue,
        skip: &[String],
    ) -> Result<Option<Timestamp>, StoreError> {
        let shape = queue.shape();
        let skipping = shape.skipping(1, skip.len());
        let Shape {
            table,
            pending,
            due_at,
            ..
        } = shape;
        let sql = format!(
            "SELECT MIN(CASE WHEN claimed_by IS NULL THEN {due_at} ELSE claimed_until END)
             FROM {table} WHERE {pending}{skipping}"
        );
        let at: Option<Timestamp> = db_run!(self, c => {
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql.clone()));
            for group in skip {
                query = query.bind(group.as_str());
            }
            query.fetch_one(c).await?
        });
        Ok(at)
    }

    /// The queues whose rows are their jobs, for operators (`/metrics`).
    pub(crate) async fn row_queues(&self) -> Result<Vec<QueueUse>, StoreError> {
        let mut queues = Vec::with_capacity(Queue::ALL.len());
        for queue in Queue::ALL {
            queues.push(self.queue_use(queue).await?);
        }
        Ok(queues)
    }

    /// One queue: due, waiting for their time, claimed, and how long the oldest due row
    /// has waited.
    async fn queue_use(&self, queue: Queue) -> Result<QueueUse, StoreError> {
        let Shape {
            table,
            pending,
            due_at,
            ..
        } = queue.shape();
        let now = Timestamp::now();
        let (due, scheduled, running, oldest): (i64, i64, i64, Option<Timestamp>) = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT
               COALESCE(SUM(CASE WHEN {due_at} <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN {due_at} > $1 AND (claimed_until IS NULL OR claimed_until <= $1) THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN claimed_until > $1 THEN 1 ELSE 0 END), 0),
               MIN(CASE WHEN {due_at} <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) THEN {due_at} END)
             FROM {table} WHERE {pending}"
        )))
        .bind(now)
        .fetch_one(c).await?);
        Ok(QueueUse {
            queue: queue.name().to_owned(),
            due,
            scheduled,
            running,
            oldest_due_seconds: oldest.map_or(0.0, |at| {
                (now.millis() - at.millis()).max(0) as f64 / 1000.0
            }),
        })
    }
}
