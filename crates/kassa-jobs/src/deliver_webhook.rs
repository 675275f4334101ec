//! Sends one event to one endpoint and records the attempt: done, tried again on the
//! retry schedule (honouring `Retry-After`), or the endpoint disabled after `410 Gone`
//! or five days of failures. The `webhook-id` is the event's id on every try.

use std::time::Duration;

use apalis::prelude::Data;
use kassa_domain::Secret;
use kassa_domain::workflow;
use kassa_store::{DeliverWebhook, DeliveryOutcome, DueDelivery, StoreError, Timestamp};

use crate::workers::{Error, Workers};

/// An endpoint failing for this long is disabled.
const DISABLE_AFTER_FAILING_MILLIS: i64 = 5 * 24 * 60 * 60 * 1000;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

pub(crate) async fn run(job: DeliverWebhook, workers: Data<Workers>) -> Result<(), Error> {
    crate::workers::caused_by(&job, async {
        if let Some(delivery) = workers.store.due_delivery(&job).await? {
            deliver(&workers, delivery).await?;
        }
        Ok::<(), Error>(())
    })
    .await
}

async fn deliver(workers: &Workers, d: DueDelivery) -> Result<(), StoreError> {
    let now = Timestamp::now();
    let attempt = workers
        .sender
        .send(
            &d.url,
            &d.event_id,
            now.0.timestamp(),
            d.payload.as_bytes(),
            &d.secrets
                .iter()
                .map(Secret::expose_secret)
                .collect::<Vec<_>>(),
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
        match workers.schedule.delay_before(next) {
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
    let counted = match outcome {
        DeliveryOutcome::Succeeded => "succeeded",
        DeliveryOutcome::RetryAt(_) => "retrying",
        DeliveryOutcome::Failed => "failed",
        DeliveryOutcome::EndpointDisabled => "endpoint_disabled",
    };
    metrics::counter!("kassa_webhook_attempts_total", "outcome" => counted).increment(1);
    metrics::histogram!("kassa_webhook_attempt_seconds").record(attempt.latency_ms as f64 / 1000.0);
    tracing::info!(
        tenant = %d.tenant_id, event = %d.event_id, endpoint = %d.endpoint_id,
        status = ?attempt.status, latency_ms = attempt.latency_ms, outcome = ?outcome,
        "webhook attempt"
    );
    let followups = if outcome == DeliveryOutcome::EndpointDisabled {
        tracing::warn!(tenant = %d.tenant_id, endpoint = %d.endpoint_id, "webhook endpoint disabled");
        workflow::endpoint_disabled(&d.endpoint_id, now.0)
    } else {
        workflow::Followups::default()
    };
    // Not recorded: the job fails and apalis runs it again (at least once).
    workers
        .store
        .record_delivery_attempt(
            &d,
            attempt.status,
            attempt.latency_ms,
            &attempt.response,
            outcome,
            &followups,
        )
        .await
}
