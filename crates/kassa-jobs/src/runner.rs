//! Runs the jobs on apalis: each queue's backend (apalis-sqlite polled, or
//! apalis-postgres woken by NOTIFY), the cron schedules, and the workers registered
//! on one monitor that restarts them.

use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::CronScheduler;
use kassa_store::{Job, JobPool, SendAccountEmail};

use crate::workers::{Error, Workers};
use crate::{
    clean_up, deliver_line, deliver_webhooks, revive_jobs, send_account_email, send_email,
    sweep_unpaid,
};

/// The queues' workers on a monitor; `$backend::<Job>(pool, heartbeat)` makes
/// a factory of the queue's backend (a restarted worker gets a new one). A macro,
/// because each backend's worker has its own type.
macro_rules! queue_workers {
    ($workers:expr, $node:expr, $backend:ident, $pool:expr) => {{
        let monitor = Monitor::new();
        queue_workers!(@one monitor, $workers, $node, $backend, $pool,
            SendAccountEmail, "account-emails", 2, send_account_email::run)
    }};
    (@one $monitor:expr, $workers:expr, $node:expr, $backend:ident, $pool:expr,
        $job:ty, $queue:literal, $concurrency:literal, $run:path) => {{
        let make = $backend::<$job>(&$pool, $workers.heartbeat);
        let (me, name) = ($workers.clone(), $node.clone());
        $monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-{}-{restarts}", $queue))
                .backend(make())
                .data(me.clone())
                .concurrency($concurrency)
                .catch_panic()
                .build($run)
        })
    }};
}

/// When a worker looks for jobs: at once when `woken` yields (apalis's NOTIFY of an
/// insert on PostgreSQL, a job written by this process on SQLite), and otherwise on a
/// timer for the jobs whose time has come (retries) or that were taken over: every
/// `POLL` while the worker finds work, doubling while it finds none, up to
/// `IDLE_POLL_MAX`, so an idle node does not poll its database twice a second per
/// queue. The timer is always armed when this returns Pending (apalis's own
/// `IntervalStrategy` re-arms its timer without polling it, so an idle worker slept
/// until its next heartbeat).
struct Wake<S> {
    /// `None` once the stream ended (the pool closed): the timer goes on alone.
    woken: Option<S>,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    every: Duration,
}

fn wake<S>(woken: S) -> Wake<S> {
    Wake {
        woken: Some(woken),
        timer: Box::pin(tokio::time::sleep(POLL)),
        every: POLL,
    }
}

impl<S: futures_core::Stream + Unpin> PollStrategy for Wake<S> {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        use std::task::Poll;
        let mut fired = false;
        // Take every wake-up so far, so the stream is armed for the next one.
        while let Some(woken) = self.woken.as_mut() {
            match std::pin::Pin::new(woken).poll_next(cx) {
                Poll::Ready(Some(_)) => {
                    fired = true;
                    self.every = POLL;
                }
                Poll::Ready(None) => self.woken = None,
                Poll::Pending => break,
            }
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            fired = true;
            self.every = (self.every * 2).min(IDLE_POLL_MAX);
        }
        if !fired {
            return Poll::Pending;
        }
        self.timer
            .as_mut()
            .reset(tokio::time::Instant::now() + self.every);
        // Registers the waker with the new deadline.
        let _ = self.timer.as_mut().poll(cx);
        Poll::Ready(Some(()))
    }

    fn on_poll(&mut self, snapshot: &PollSnapshot) {
        // Found a job: look again soon after this one, not after the idle wait.
        if snapshot.consecutive_ready > 0 && self.every != POLL {
            self.every = POLL;
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + POLL);
        }
    }
}

/// Yields when this process wrote a job (SQLite: apalis-sqlite only polls).
struct JobsWritten {
    next: std::pin::Pin<Box<dyn std::future::Future<Output = Changed> + Send + Sync>>,
}

/// The receiver back, and whether its sender is still there.
type Changed = (tokio::sync::watch::Receiver<u64>, bool);

impl JobsWritten {
    fn new() -> Self {
        Self {
            next: Self::wait(kassa_store::jobs_written_here()),
        }
    }

    fn wait(
        mut rx: tokio::sync::watch::Receiver<u64>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Changed> + Send + Sync>> {
        Box::pin(async move {
            let open = rx.changed().await.is_ok();
            (rx, open)
        })
    }
}

impl futures_core::Stream for JobsWritten {
    type Item = ();

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<()>> {
        use std::task::Poll;
        // Take every change so far, so the next wait is armed when this returns.
        let mut fired = false;
        loop {
            match self.next.as_mut().poll(cx) {
                Poll::Ready((mut rx, true)) => {
                    rx.mark_unchanged();
                    self.next = Self::wait(rx);
                    fired = true;
                }
                Poll::Ready((_, false)) => return Poll::Ready(None),
                Poll::Pending if fired => return Poll::Ready(Some(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// apalis's insert notifications, until the pool closes. The workers share the store's
/// pool, and apalis's `Pubsub` loops without end on a closed pool (its listener then
/// only yields errors, which it skips), so the stream ends when the pool closes.
struct UntilClosed {
    inserts: apalis_postgres::Pubsub,
    pool: sqlx::PgPool,
}

impl futures_core::Stream for UntilClosed {
    type Item = <apalis_postgres::Pubsub as futures_core::Stream>::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.pool.is_closed() {
            return std::task::Poll::Ready(None);
        }
        std::pin::Pin::new(&mut self.inserts).poll_next(cx)
    }
}

/// A queue's backend on SQLite: polled, and woken when this process writes a job.
fn sqlite_backend<J: Job>(
    pool: &sqlx::SqlitePool,
    heartbeat: Duration,
) -> impl Fn() -> PollWith<apalis_sqlite::SqliteStorage<J>, Wake<JobsWritten>> + Send + Sync + 'static
{
    let config = apalis_sqlite::Config::default()
        .queue(J::QUEUE)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(MISSED_HEARTBEATS);
    let pool = pool.clone();
    move || {
        apalis_sqlite::SqliteStorage::new(&pool)
            .with_config(config.clone())
            .poll_with_strategy(wake(JobsWritten::new()))
    }
}

/// A queue's backend on PostgreSQL: NOTIFY wakes the worker for a new job, polling
/// for one whose time has come.
fn postgres_backend<J: Job>(
    pool: &sqlx::PgPool,
    heartbeat: Duration,
) -> impl Fn() -> PollWith<apalis_postgres::PostgresStorage<J>, Wake<UntilClosed>> + Send + Sync + 'static
{
    let config = apalis_postgres::Config::default()
        .queue(J::QUEUE)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(MISSED_HEARTBEATS);
    let pool = pool.clone();
    move || {
        let inserts = UntilClosed {
            inserts: apalis_postgres::Pubsub::new(pool.clone(), J::QUEUE.to_owned()),
            pool: pool.clone(),
        };
        apalis_postgres::PostgresStorage::new(&pool)
            .with_config(config.clone())
            .poll_with_strategy(wake(inserts))
    }
}

/// How often a busy worker looks for due jobs (new jobs also wake it at once: NOTIFY
/// on PostgreSQL, this process's writes on SQLite).
const POLL: Duration = Duration::from_millis(500);
/// The longest an idle worker waits between two looks for jobs whose time has come.
const IDLE_POLL_MAX: Duration = Duration::from_secs(5);
/// Heartbeats a worker may miss before its jobs go to another worker.
const MISSED_HEARTBEATS: usize = 3;

/// When finished work is cleaned up (see `kassa_store::retention`): every 10 minutes.
const CLEAN_UP_SCHEDULE: &str = "0 */10 * * * *";

/// When unpaid orders are looked at: every second.
const UNPAID_SWEEP_SCHEDULE: &str = "* * * * * *";

/// Dead jobs are looked for every minute.
const REVIVE_SCHEDULE: &str = "30 * * * * *";

impl Workers {
    /// Runs until `shutdown` resolves; jobs in flight are finished first.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        if self.mailer.is_some() {
            let kept = self.store.queue_kept_emails().await?;
            if kept > 0 {
                tracing::info!(
                    emails = kept,
                    "sending the emails kept while there was no SMTP"
                );
            }
        }
        if let Some(host) = &self.plugins {
            tokio::spawn(crate::prepare_plugins::run(
                self.store.clone(),
                host.clone(),
            ));
        }
        let pool = self.store.job_pool();
        // Unique per start: apalis refuses a name whose heartbeat is still fresh.
        let node = format!("kassa-{}-{}", std::process::id(), ulid::Ulid::new());
        let monitor = match pool {
            JobPool::Sqlite(pool) => queue_workers!(self, node, sqlite_backend, pool),
            JobPool::Postgres(pool) => queue_workers!(self, node, postgres_backend, pool),
        };
        let every = |schedule: &str| {
            let schedule: cron::Schedule = schedule.parse().expect("a valid schedule");
            move || CronScheduler::new(schedule.clone())
        };
        let (sweep, clean) = (every(UNPAID_SWEEP_SCHEDULE), every(CLEAN_UP_SCHEDULE));
        let (me, name) = (self.clone(), node.clone());
        let monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-unpaid-sweep-{restarts}"))
                .backend(sweep())
                .data(me.clone())
                .build(sweep_unpaid::run)
        });
        let (me, name) = (self.clone(), node.clone());
        let monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-clean-up-{restarts}"))
                .backend(clean())
                .data(me.clone())
                .build(clean_up::run)
        });
        let revive = every(REVIVE_SCHEDULE);
        let (me, name) = (self.clone(), node.clone());
        let monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-revive-jobs-{restarts}"))
                .backend(revive())
                .data(me.clone())
                .build(revive_jobs::run)
        });
        // Webhooks, line deliveries and emails are not apalis jobs: their dispatchers
        // claim the due rows.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let dispatchers = [
            tokio::spawn(deliver_webhooks::run(self.clone(), stopped.clone())),
            tokio::spawn(deliver_line::run(self.clone(), stopped.clone())),
            tokio::spawn(send_email::run(self.clone(), stopped)),
        ];
        tracing::info!(node = %node, "workers started");
        monitor
            // A worker whose database went away starts again under a new name, and its
            // jobs are taken over once its heartbeats are missed.
            .should_restart(|_, _| true)
            .shutdown_timeout(Duration::from_secs(30))
            .run_with_signal(async move {
                shutdown.await;
                let _ = stop.send(true);
                Ok(())
            })
            .await?;
        for dispatcher in dispatchers {
            let _ = dispatcher.await;
        }
        tracing::info!("workers stopped");
        Ok(())
    }
}
