//! Background work on apalis: delivering webhooks, sending emails, delivering
//! licenses, reminding and deleting unpaid orders, and cleaning up.
//!
//! Each job (see `kassa_store::jobs`) is written by the transaction of the change that
//! causes it and wakes a worker for one row of Kassa's tables; the handler loads the
//! row, does the work, and records the outcome, scheduling the next try as a new job
//! with its run time when one is due (webhooks and license services follow the retry
//! schedule, SMTP backs off). Handlers are idempotent: a job that finds its row
//! finished or rescheduled does nothing, a delivered line is never delivered again,
//! and a webhook keeps its `webhook-id` across tries. apalis runs the jobs
//! (apalis-sqlite or apalis-postgres, with the store's database) and apalis-cron the
//! schedules; a worker that dies stops sending heartbeats, and after three missed
//! heartbeats its jobs are taken over by another worker or the restarted one.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use kassa_domain::catalog::Delivery;
use kassa_mail::{MailError, Mailer, Outgoing};
use kassa_store::{
    DeliverLine, DeliverWebhook, DeliveryOutcome, DueDelivery, DueLine, EmailOutcome, EmailRecord,
    Job, JobPool, SendEmail, Store, StoreError, Timestamp,
};
use kassa_webhooks::{RetrySchedule, Sender};

/// The three queues' workers on a monitor; `$backend::<Job>(pool, heartbeat)` makes
/// a factory of the queue's backend (a restarted worker gets a new one). A macro,
/// because each backend's worker has its own type.
macro_rules! queue_workers {
    ($workers:expr, $node:expr, $backend:ident, $pool:expr) => {{
        let monitor = Monitor::new();
        let beat = $workers.heartbeat;
        let make = $backend::<DeliverWebhook>(&$pool, beat);
        let (me, name) = ($workers.clone(), $node.clone());
        let monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-webhooks-{restarts}"))
                .backend(make())
                .data(me.clone())
                .concurrency(32)
                .catch_panic()
                .build(deliver_webhook)
        });
        let make = $backend::<SendEmail>(&$pool, beat);
        let (me, name) = ($workers.clone(), $node.clone());
        let monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-emails-{restarts}"))
                .backend(make())
                .data(me.clone())
                .concurrency(8)
                .catch_panic()
                .build(send_email)
        });
        let make = $backend::<DeliverLine>(&$pool, beat);
        let (me, name) = ($workers.clone(), $node.clone());
        monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-lines-{restarts}"))
                .backend(make())
                .data(me.clone())
                .concurrency(16)
                .catch_panic()
                .build(deliver_line)
        })
    }};
}

/// Wakes a worker every `POLL`, and is always armed when it returns: apalis polls a
/// strategy once per look for jobs, and its own `IntervalStrategy` re-arms its timer
/// without polling it, so an idle worker slept until its next heartbeat.
struct Ticks(tokio_stream::wrappers::IntervalStream);

fn ticks() -> Ticks {
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    Ticks(tokio_stream::wrappers::IntervalStream::new(every))
}

impl futures_core::Stream for Ticks {
    type Item = ();

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<()>> {
        use std::task::Poll;
        let mut fired = false;
        // Take every tick that is due, so the timer is armed for the next one.
        while let Poll::Ready(Some(_)) = std::pin::Pin::new(&mut self.0).poll_next(cx) {
            fired = true;
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
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

/// A queue's backend on SQLite, polled.
fn sqlite_backend<J: Job>(
    pool: &sqlx::SqlitePool,
    heartbeat: Duration,
) -> impl Fn() -> PollWith<apalis_sqlite::SqliteStorage<J>, Strategy> + Send + Sync + 'static {
    let config = apalis_sqlite::Config::default()
        .queue(J::QUEUE)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(MISSED_HEARTBEATS);
    let pool = pool.clone();
    move || {
        apalis_sqlite::SqliteStorage::new(&pool)
            .with_config(config.clone())
            .poll_with_strategy(Strategy::new().stream(ticks()))
    }
}

/// A queue's backend on PostgreSQL: NOTIFY wakes the worker for a new job, polling
/// for one whose time has come.
fn postgres_backend<J: Job>(
    pool: &sqlx::PgPool,
    heartbeat: Duration,
) -> impl Fn() -> PollWith<apalis_postgres::PostgresStorage<J>, Strategy> + Send + Sync + 'static {
    let config = apalis_postgres::Config::default()
        .queue(J::QUEUE)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(MISSED_HEARTBEATS);
    let pool = pool.clone();
    move || {
        let wake = Strategy::new()
            .stream(UntilClosed {
                inserts: apalis_postgres::Pubsub::new(pool.clone(), J::QUEUE.to_owned()),
                pool: pool.clone(),
            })
            .stream(ticks());
        apalis_postgres::PostgresStorage::new(&pool)
            .with_config(config.clone())
            .poll_with_strategy(wake)
    }
}

async fn deliver_webhook(job: DeliverWebhook, workers: Data<Workers>) -> Result<(), Error> {
    if let Some(delivery) = workers.store.due_delivery(&job).await? {
        workers.deliver(delivery).await?;
    }
    Ok(())
}

async fn send_email(job: SendEmail, workers: Data<Workers>) -> Result<(), Error> {
    if let Some(email) = workers.store.due_email(&job).await? {
        workers.send_email(email).await?;
    }
    Ok(())
}

async fn deliver_line(job: DeliverLine, workers: Data<Workers>) -> Result<(), Error> {
    if let Some(line) = workers.store.due_line(&job).await? {
        workers.deliver_line(line).await?;
    }
    Ok(())
}

async fn sweep_unpaid(_: Tick, workers: Data<Workers>) -> Result<(), Error> {
    workers.sweep_unpaid().await;
    Ok(())
}

async fn clean_up(_: Tick, workers: Data<Workers>) -> Result<(), Error> {
    let done = workers.store.clean_up().await?;
    tracing::debug!(?done, "cleaned up finished work");
    Ok(())
}

/// An endpoint failing for this long is disabled.
pub const DISABLE_AFTER_FAILING_MILLIS: i64 = 5 * 24 * 60 * 60 * 1000;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// How often an idle worker looks for due jobs (on PostgreSQL, new jobs also wake it
/// at once by NOTIFY).
const POLL: Duration = Duration::from_millis(500);
/// Heartbeats a worker may miss before its jobs go to another worker.
const MISSED_HEARTBEATS: usize = 3;

/// What the workers need.
#[derive(Clone)]
pub struct Workers {
    store: Store,
    sender: Sender,
    schedule: Arc<RetrySchedule>,
    mailer: Option<Mailer>,
    public_url: Arc<str>,
    unpaid: UnpaidDefaults,
    plugins: Option<Arc<kassa_plugins::PluginHost>>,
    heartbeat: Duration,
}

/// Why the workers could not run.
pub type Error = BoxDynError;

/// The operator's unpaid-order policy; each store may change it within limits.
#[derive(Debug, Clone, Copy)]
pub struct UnpaidDefaults {
    /// When to remind; `None` turns reminders off unless a store turns them on.
    pub remind_after: Option<Duration>,
    /// When to delete; a store may only shorten it.
    pub delete_after: Duration,
}

/// The most of a license service's answer Kassa reads.
const MAX_SERVICE_RESPONSE: usize = 256 * 1024;

/// Reads `{"licenses": ["…"]}`: 1 to 1000 non-empty strings of at most 10 000
/// characters each.
fn parse_licenses(body: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        licenses: Vec<String>,
    }
    let answer: Answer = serde_json::from_str(body)
        .map_err(|e| format!("the license service's answer is not {{\"licenses\": [...]}}: {e}"))?;
    let licenses: Vec<String> = answer
        .licenses
        .into_iter()
        .map(|l| l.trim().to_owned())
        .collect();
    if licenses.is_empty() || licenses.len() > 1000 {
        return Err("the license service must answer 1 to 1000 licenses".into());
    }
    if licenses
        .iter()
        .any(|l| l.is_empty() || l.chars().count() > 10_000)
    {
        return Err("the license service answered an empty or oversized license".into());
    }
    Ok(licenses)
}

/// When finished work is cleaned up (see `kassa_store::retention`): every 10 minutes.
const CLEAN_UP_SCHEDULE: &str = "0 */10 * * * *";

/// When unpaid orders are looked at: every second.
const UNPAID_SWEEP_SCHEDULE: &str = "* * * * * *";

/// The longest wait between two tries of an email.
const MAX_EMAIL_BACKOFF: Duration = Duration::from_secs(600);

impl Workers {
    /// `mailer` is `None` without SMTP: emails are then kept in the outbox.
    pub fn new(
        store: Store,
        sender: Sender,
        schedule: RetrySchedule,
        mailer: Option<Mailer>,
        public_url: &str,
        unpaid: UnpaidDefaults,
    ) -> Self {
        Self {
            store,
            sender,
            schedule: Arc::new(schedule),
            mailer,
            public_url: Arc::from(public_url),
            unpaid,
            plugins: None,
            heartbeat: Duration::from_secs(10),
        }
    }

    /// How often a worker tells it is alive; its jobs go to another worker after
    /// three missed heartbeats.
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_secs(1));
        self
    }

    /// Runs plugin deliveries on `host`; without one, plugin lines fail with a reason.
    pub fn with_plugins(mut self, host: Arc<kassa_plugins::PluginHost>) -> Self {
        self.plugins = Some(host);
        self
    }

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
                .build(sweep_unpaid)
        });
        let (me, name) = (self.clone(), node.clone());
        let monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{name}-clean-up-{restarts}"))
                .backend(clean())
                .data(me.clone())
                .build(clean_up)
        });
        tracing::info!(node = %node, "workers started");
        monitor
            // A worker whose database went away starts again under a new name, and its
            // jobs are taken over once its heartbeats are missed.
            .should_restart(|_, _| true)
            .shutdown_timeout(Duration::from_secs(30))
            .run_with_signal(async move {
                shutdown.await;
                Ok(())
            })
            .await?;
        tracing::info!("workers stopped");
        Ok(())
    }

    async fn deliver(&self, d: DueDelivery) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let attempt = self
            .sender
            .send(
                &d.url,
                &d.event_id,
                now.0.timestamp(),
                d.payload.as_bytes(),
                &d.secrets.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await;
        let failing_too_long = d
            .failing_since
            .is_some_and(|since| now.millis() - since.millis() >= DISABLE_AFTER_FAILING_MILLIS);
        let outcome = if attempt.succeeded() {
            DeliveryOutcome::Succeeded
        } else if attempt.gone() || failing_too_long {
            DeliveryOutcome::EndpointDisabled
        } else {
            let next = usize::try_from(d.attempts + 1).unwrap_or(usize::MAX);
            match self.schedule.delay_before(next) {
                None => DeliveryOutcome::Failed,
                Some(delay) => {
                    let wait = attempt
                        .retry_after
                        .map(|r| r.min(MAX_RETRY_AFTER).max(delay))
                        .unwrap_or(delay);
                    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                    DeliveryOutcome::RetryAt(now.millis().saturating_add(wait_ms))
                }
            }
        };
        tracing::info!(
            tenant = %d.tenant_id, event = %d.event_id, endpoint = %d.endpoint_id,
            status = ?attempt.status, latency_ms = attempt.latency_ms, outcome = ?outcome,
            "webhook attempt"
        );
        if outcome == DeliveryOutcome::EndpointDisabled {
            tracing::warn!(tenant = %d.tenant_id, endpoint = %d.endpoint_id, "webhook endpoint disabled");
        }
        // Not recorded: the job fails and apalis runs it again (at least once).
        self.store
            .record_delivery_attempt(
                &d,
                attempt.status,
                attempt.latency_ms,
                &attempt.response,
                outcome,
            )
            .await
    }
}

impl Workers {
    /// Gets a paid line's license information by its product's delivery method.
    async fn deliver_line(&self, line: DueLine) -> Result<(), StoreError> {
        let retry_in = |ms: i64| Some(Timestamp::now().millis() + ms);
        let result = match &line.delivery {
            Delivery::LicensePool { .. } => match self.store.deliver_from_pool(&line).await {
                Ok(outcome) => {
                    tracing::info!(tenant = %line.tenant_id, order = %line.order_id, line = line.line_no, outcome = ?outcome, "pool delivery");
                    Ok(())
                }
                Err(StoreError::Conflict(why)) => Err((why, retry_in(200))),
                Err(e) => Err((e.to_string(), retry_in(5_000))),
            },
            Delivery::WebService { url } => self.deliver_from_service(&line, url).await,
            Delivery::Plugin { plugin_id } => self.deliver_from_plugin(&line, plugin_id).await,
        };
        if let Err((error, retry_at)) = result {
            tracing::warn!(tenant = %line.tenant_id, order = %line.order_id, line = line.line_no, error = %error, "delivery did not happen");
            self.store
                .line_delivery_failed(&line, &error, retry_at)
                .await?;
        }
        Ok(())
    }

    /// When a line's delivery from a service or plugin is tried next, on the webhook
    /// retry schedule; `None` once the schedule is used up.
    fn next_try(&self, line: &DueLine) -> Option<i64> {
        let next = usize::try_from(line.attempts + 1).unwrap_or(usize::MAX);
        self.schedule.delay_before(next).map(|d| {
            Timestamp::now()
                .millis()
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
    }

    /// Asks the merchant's license service for the line's licenses: a POST signed like
    /// webhooks (with the store's `web_service_signing_secret`), answered with
    /// `{"licenses": ["…"]}`. Retried on the webhook schedule, then failed.
    async fn deliver_from_service(
        &self,
        line: &DueLine,
        url: &str,
    ) -> Result<(), (String, Option<i64>)> {
        let next_try = || self.next_try(line);
        let order = self
            .store
            .order(&line.tenant_id, &line.order_id)
            .await
            .map_err(|e| (e.to_string(), next_try()))?;
        let secret = self
            .store
            .service_secret(&line.tenant_id)
            .await
            .map_err(|e| (e.to_string(), next_try()))?;
        let key = format!("ful_{}_{}", line.order_id, line.line_no);
        let body = serde_json::json!({
            "type": "license.request",
            "idempotency_key": key,
            "quantity": line.quantity,
            "product_id": line.product_id,
            "line": order.lines.iter().find(|l| l.line_no == line.line_no),
            "customer": order.customer,
            "test_mode": order.test_mode,
            "order": order,
        });
        let attempt = self
            .sender
            .send_reading(
                url,
                &key,
                Timestamp::now().0.timestamp(),
                body.to_string().as_bytes(),
                &[secret.as_str()],
                MAX_SERVICE_RESPONSE,
            )
            .await;
        if !attempt.succeeded() {
            let status = attempt
                .status
                .map_or("no response".to_owned(), |s| format!("HTTP {s}"));
            let said: String = attempt.response.chars().take(300).collect();
            return Err((
                format!("the license service answered {status}: {said}"),
                next_try(),
            ));
        }
        let licenses = parse_licenses(&attempt.response).map_err(|e| (e, next_try()))?;
        match self.store.deliver_with(line, &licenses).await {
            Ok(_) => {
                tracing::info!(tenant = %line.tenant_id, order = %line.order_id, line = line.line_no, "web service delivery");
                Ok(())
            }
            Err(e) => Err((e.to_string(), next_try())),
        }
    }

    /// Runs the product's plugin for the line, in the sandbox.
    async fn deliver_from_plugin(
        &self,
        line: &DueLine,
        plugin_id: &kassa_domain::ids::PluginId,
    ) -> Result<(), (String, Option<i64>)> {
        let next_try = || self.next_try(line);
        let Some(host) = &self.plugins else {
            return Err(("this worker runs no plugins".to_owned(), next_try()));
        };
        let plugin = self
            .store
            .runnable_plugin(&line.tenant_id, plugin_id)
            .await
            .map_err(|e| (format!("the plugin cannot be loaded: {e}"), None))?;
        let compiled = host
            .compiled(&format!("{}:{}", plugin.id, plugin.version), &plugin.wasm)
            .map_err(|e| (e.to_string(), None))?;
        let order = self
            .store
            .order(&line.tenant_id, &line.order_id)
            .await
            .map_err(|e| (e.to_string(), next_try()))?;
        let name = order
            .lines
            .iter()
            .find(|l| l.line_no == line.line_no)
            .map(|l| l.name.clone())
            .unwrap_or_default();
        let request = kassa_plugins::Request {
            order_id: line.order_id.clone(),
            line_no: u32::try_from(line.line_no).unwrap_or(0),
            product_id: line.product_id.clone(),
            product_name: name,
            quantity: u32::try_from(line.quantity).unwrap_or(0),
            customer: kassa_plugins::Customer {
                email: order.customer.email.clone().unwrap_or_default(),
                name: order.customer.name.clone(),
            },
            test_mode: order.test_mode,
            config: plugin.config.into_iter().collect(),
            idempotency_key: format!("ful_{}_{}", line.order_id, line.line_no),
        };
        let (store, tenant, order_id, line_no) = (
            self.store.clone(),
            line.tenant_id.clone(),
            line.order_id.clone(),
            line.line_no,
        );
        let context = kassa_plugins::CallContext {
            secrets: plugin.secrets.into_iter().collect(),
            allowed_hosts: plugin.allowed_hosts,
            pool_keys: Arc::new(move |pool, count| {
                let (store, tenant, order_id) = (store.clone(), tenant.clone(), order_id.clone());
                Box::pin(async move {
                    store
                        .take_keys_for_line(&tenant, &order_id, line_no, &pool, i64::from(count))
                        .await
                        .map_err(|e| e.to_string())
                })
            }),
        };
        let outcome = host.call(&compiled, &request, context).await;
        for log in &outcome.logs {
            tracing::info!(tenant = %line.tenant_id, order = %line.order_id, plugin = %plugin_id, "plugin log: {log}");
        }
        match outcome.result {
            Ok(licenses) => self
                .store
                .deliver_with(line, &licenses)
                .await
                .map(|_| ())
                .map_err(|e| (e.to_string(), next_try())),
            Err(kassa_plugins::PluginError::Failed { message, retryable }) => {
                Err((message, if retryable { next_try() } else { None }))
            }
            Err(kassa_plugins::PluginError::Invalid(message)) => Err((message, None)),
        }
    }

    /// Reminds and deletes unpaid orders, store by store, each by its own policy.
    async fn sweep_unpaid(&self) {
        let tenants = match self.store.tenant_settings().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "could not list stores for the unpaid sweep");
                return;
            }
        };
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        for (tenant, raw) in tenants {
            let settings = kassa_domain::tenant::TenantSettings::from_json(&raw);
            let policy = kassa_store::UnpaidPolicy {
                remind_after: settings
                    .reminder_after(self.unpaid.remind_after)
                    .map(millis),
                delete_after: millis(settings.delete_after(self.unpaid.delete_after)),
            };
            match self.store.sweep_unpaid(&tenant, policy).await {
                Ok(s) if s.reminded + s.deleted > 0 => {
                    tracing::info!(tenant = %tenant, reminded = s.reminded, deleted = s.deleted, "unpaid orders")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, tenant = %tenant, "unpaid sweep failed"),
            }
        }
    }

    async fn send_email(&self, email: EmailRecord) -> Result<(), StoreError> {
        let rendered = match kassa_web::emails::render(&self.store, &self.public_url, &email).await
        {
            Ok(r) => r,
            Err(kassa_web::emails::RenderError::Gone(reason)) => {
                return self
                    .finish(&email, None, EmailOutcome::Dropped { reason })
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %e, email = %email.id, "could not render an email");
                let outcome = self.retry(&email, e.to_string());
                return self.finish(&email, None, outcome).await;
            }
        };
        let content = Some((
            rendered.subject.as_str(),
            rendered.text.as_str(),
            rendered.html.as_str(),
        ));
        let Some(mailer) = &self.mailer else {
            return self.finish(&email, content, EmailOutcome::Kept).await;
        };
        let outgoing = Outgoing {
            to: &email.to_address,
            from_name: &rendered.from_name,
            reply_to: rendered.reply_to.as_deref(),
            subject: &rendered.subject,
            text: &rendered.text,
            html: &rendered.html,
        };
        let outcome = match mailer.send(&outgoing).await {
            Ok(()) => EmailOutcome::Sent,
            Err(MailError::Permanent(reason)) => EmailOutcome::Dropped { reason },
            Err(MailError::Transient(reason)) => self.retry(&email, reason),
        };
        tracing::info!(tenant = %email.tenant_id, email = %email.id, kind = %email.kind, outcome = ?outcome, "email");
        self.finish(&email, content, outcome).await
    }

    /// Backoff: 1 s, 2 s, 4 s, … up to 10 minutes, until sent.
    fn retry(&self, email: &EmailRecord, error: String) -> EmailOutcome {
        let exp = u32::try_from(email.attempts.clamp(0, 20)).unwrap_or(20);
        let wait = Duration::from_secs(1u64 << exp).min(MAX_EMAIL_BACKOFF);
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        EmailOutcome::RetryAt {
            at: Timestamp::now().millis() + wait_ms,
            error,
        }
    }

    async fn finish(
        &self,
        email: &EmailRecord,
        content: Option<(&str, &str, &str)>,
        outcome: EmailOutcome,
    ) -> Result<(), StoreError> {
        self.store.finish_email(email, content, &outcome).await
    }
}
