//! Sends the webhook deliveries. The dispatcher claims due deliveries in batches
//! (`Store::claim_webhook_deliveries`: a paid order's first, then the earliest), sends
//! each at once with bounded concurrency (overall and per endpoint, on one HTTP client
//! that keeps its connections), and a recorder writes the outcomes of many attempts in
//! one transaction. An attempt is done, tried again on the retry schedule (honouring
//! `Retry-After`), or disables the endpoint after `410 Gone` or five days of failures.
//! The `webhook-id` is the event's id on every try.
//!
//! Claims, their leases and the wake-ups are the dispatch shared with lines and emails
//! (`dispatch.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kassa_domain::Secret;
use kassa_domain::ids::WebhookEndpointId;
use kassa_domain::workflow;
use kassa_store::{AttemptMade, DeliveryOutcome, DueDelivery, Queue, Store, Timestamp};
use tokio::sync::{Semaphore, watch};

use crate::dispatch::{Dispatch, Recorder, Taken};
use crate::workers::Workers;

/// An endpoint failing for this long is disabled.
const DISABLE_AFTER_FAILING_MILLIS: i64 = 5 * 24 * 60 * 60 * 1000;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Deliveries claimed at once, at most.
const BATCH: usize = 128;
/// Attempts in flight on one node, over every endpoint.
const IN_FLIGHT: usize = 256;
/// Attempts in flight to one endpoint, so one receiver is not flooded.
const PER_ENDPOINT: usize = 32;
/// Attempts recorded in one transaction, at most.
const RECORD_BATCH: usize = 256;

/// An attempt made, on its way to the recorder; its row is let go once it is recorded.
struct Sent {
    made: AttemptMade,
    _taken: Taken,
}

/// Sends webhook deliveries until `stop` says so (or its sender goes), then finishes
/// the attempts in flight.
pub(crate) async fn run(workers: Workers, stop: watch::Receiver<bool>) {
    let store = workers.store.clone();
    let dispatch = Dispatch::new(Queue::Webhooks, BATCH, IN_FLIGHT);
    let writer = store.clone();
    let recorder = Recorder::spawn(RECORD_BATCH, dispatch.wake.clone(), move |sent| {
        let store = writer.clone();
        async move {
            let made: Vec<AttemptMade> = sent.iter().map(|s: &Sent| s.made.clone()).collect();
            write(&store, &made).await;
            // A retry may be due before the dispatcher's idle wait ends.
            true
        }
    });
    let done = recorder.outcomes.clone();
    let mut endpoints: HashMap<WebhookEndpointId, Arc<Semaphore>> = HashMap::new();
    // An endpoint with all its turns taken is held back: its other deliveries are not
    // claimed (they would wait for a turn on the node's slots, and one slow receiver
    // would hold up every other endpoint's deliveries) until a turn comes free.
    let (held_back, wake) = (dispatch.held_back.clone(), dispatch.wake.clone());
    let skip = held_back.clone();
    dispatch
        .run(
            store,
            workers.heartbeat,
            stop,
            move |store, claim, limit, lease| {
                let skip: Vec<String> = skip
                    .lock()
                    .expect("held back lock")
                    .iter()
                    .cloned()
                    .collect();
                async move {
                    store
                        .claim_webhook_deliveries(&claim, limit, lease, &skip)
                        .await
                }
            },
            |d: DueDelivery, taken| {
                if endpoints.len() > 64 {
                    endpoints.retain(|_, s| Arc::strong_count(s) > 1);
                }
                let turn = endpoints
                    .entry(d.endpoint_id.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(PER_ENDPOINT)))
                    .clone();
                let endpoint = d.endpoint_id.to_string();
                // Its turn taken now (not when the task runs), so the next claim
                // already leaves a full endpoint out.
                let ready = turn.clone().try_acquire_owned().ok();
                if turn.available_permits() == 0 {
                    held_back
                        .lock()
                        .expect("held back lock")
                        .insert(endpoint.clone());
                }
                let (workers, done) = (workers.clone(), done.clone());
                let (held_back, wake) = (held_back.clone(), wake.clone());
                tokio::spawn(async move {
                    let permit = match ready {
                        Some(permit) => permit,
                        None => match turn.clone().acquire_owned().await {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    };
                    let made =
                        crate::workers::in_scope_of(d.request_id.clone(), attempt(&workers, d))
                            .await;
                    drop(permit);
                    // Claimed again once half its turns are free, not at each one: each
                    // claim may bring more of its deliveries than it has turns for.
                    if turn.available_permits() >= PER_ENDPOINT / 2
                        && held_back.lock().expect("held back lock").remove(&endpoint)
                    {
                        wake.notify_one();
                    }
                    let _ = done.send(Sent {
                        made,
                        _taken: taken,
                    });
                });
            },
        )
        .await;
    drop(done);
    recorder.finish(Queue::Webhooks).await;
}

/// Sends one delivery and decides what becomes of it (metrics and the log line too).
async fn attempt(workers: &Workers, d: DueDelivery) -> AttemptMade {
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
        workflow::endpoint_disabled(&d.endpoint_id, d.mode, now.0)
    } else {
        workflow::Followups::default()
    };
    AttemptMade {
        delivery: d,
        status_code: attempt.status,
        latency_ms: attempt.latency_ms,
        response: attempt.response,
        outcome,
        followups,
    }
}

/// Writes a batch of attempts; when the database keeps failing it, one at a time, so
/// one bad row does not hold back the others. An attempt not recorded is sent again
/// once its claim runs out (at least once).
async fn write(store: &Store, made: &[AttemptMade]) {
    for wait in [200, 1_000, 2_000] {
        match store.record_webhook_attempts(made).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, attempts = made.len(), "recording webhook attempts");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
    for a in made {
        if let Err(e) = store.record_webhook_attempts(std::slice::from_ref(a)).await {
            tracing::warn!(
                error = %e, tenant = %a.delivery.tenant_id, event = %a.delivery.event_id,
                "a webhook attempt was not recorded; it is sent again once its claim runs out"
            );
        }
    }
}
