//! Background work. Today: delivering webhooks. Deliveries are queued in the database
//! in the transaction of the event that causes them (see `kassa-store`'s events); a
//! worker leases due deliveries, sends them, and records each attempt with the next
//! one scheduled by the retry schedule. A worker that dies loses its leases after a
//! minute and another worker (or the restarted one) takes the deliveries over, so
//! every event is delivered at least once; receivers dedupe by `webhook-id`.

use std::sync::Arc;
use std::time::Duration;

use kassa_store::{DeliveryOutcome, DueDelivery, Store, Timestamp};
use kassa_webhooks::{RetrySchedule, Sender};
use tokio::task::JoinSet;

/// An endpoint failing for this long is disabled.
pub const DISABLE_AFTER_FAILING_MILLIS: i64 = 5 * 24 * 60 * 60 * 1000;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// How many deliveries one worker sends at once.
const BATCH: i64 = 32;
/// How often an idle worker looks for due work.
const POLL: Duration = Duration::from_millis(500);

/// What the workers need.
#[derive(Clone)]
pub struct Workers {
    store: Store,
    sender: Sender,
    schedule: Arc<RetrySchedule>,
}

impl Workers {
    pub fn new(store: Store, sender: Sender, schedule: RetrySchedule) -> Self {
        Self {
            store,
            sender,
            schedule: Arc::new(schedule),
        }
    }

    /// Runs until `shutdown` resolves; deliveries in flight are finished first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        tracing::info!("workers started");
        loop {
            let leased = match self.store.lease_due_deliveries(BATCH).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for due webhook deliveries");
                    Vec::new()
                }
            };
            let busy = !leased.is_empty();
            let mut running = JoinSet::new();
            for delivery in leased {
                let me = self.clone();
                running.spawn(async move { me.deliver(delivery).await });
            }
            while running.join_next().await.is_some() {}
            if busy {
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        tracing::info!("workers stopped");
    }

    async fn deliver(&self, d: DueDelivery) {
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
        if let Err(e) = self
            .store
            .record_delivery_attempt(
                &d,
                attempt.status,
                attempt.latency_ms,
                &attempt.response,
                outcome,
            )
            .await
        {
            // The lease runs out and the delivery is tried again: at least once.
            tracing::error!(error = %e, delivery = %d.id, "could not record a webhook attempt");
        }
    }
}
