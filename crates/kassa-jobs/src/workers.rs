//! What every job is given: the store, the webhook sender and its retry schedule, the
//! mailer, the plugin host and the operator's unpaid-order policy; and the scope of
//! the request a job was caused by, which every handler runs in.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::BoxDynError;
use kassa_mail::Mailer;
use kassa_store::Store;
use kassa_webhooks::{RetrySchedule, Sender};

/// What the workers need.
#[derive(Clone)]
pub struct Workers {
    pub(crate) store: Store,
    pub(crate) sender: Sender,
    pub(crate) schedule: Arc<RetrySchedule>,
    pub(crate) mailer: Option<Mailer>,
    pub(crate) public_url: Arc<str>,
    pub(crate) unpaid: UnpaidDefaults,
    pub(crate) plugins: Option<Arc<kassa_plugins::PluginHost>>,
    pub(crate) heartbeat: Duration,
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
}

/// Runs a job's handler as part of the request that caused it, if one did: its log
/// lines (each webhook attempt, say) carry the request's id, and the jobs it writes
/// carry it on.
pub(crate) async fn caused_by<J: kassa_store::Job, F: std::future::Future>(
    job: &J,
    work: F,
) -> F::Output {
    in_scope_of(job.request_id().cloned(), work).await
}

/// Runs `work` as part of the request `id`, if there is one (see [`caused_by`]).
pub(crate) async fn in_scope_of<F: std::future::Future>(
    id: Option<kassa_store::RequestId>,
    work: F,
) -> F::Output {
    use tracing::Instrument;
    match id {
        Some(id) => {
            let span = tracing::info_span!("job", request_id = %id);
            id.scope(work.instrument(span)).await
        }
        None => work.await,
    }
}
