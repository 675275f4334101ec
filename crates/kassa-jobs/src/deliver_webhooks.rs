//! Sends the webhook deliveries. The dispatcher claims due deliveries in batches
//! (`Store::claim_webhook_deliveries`: a paid order's first, then the earliest), sends
//! each at once with bounded concurrency (overall and per endpoint, on one HTTP client
//! that keeps its connections), and a recorder writes the outcomes of many attempts in
//! one transaction. An attempt is done, tried again on the retry schedule (honouring
//! `Retry-After`), or disables the endpoint after `410 Gone` or five days of failures.
//! The `webhook-id` is the event's id on every try.
//!
//! A batch's claim lasts three heartbeats and is extended every heartbeat while the
//! batch is in this node's hands; a node that dies stops extending, and its deliveries
//! go back to the queue (at least once). The dispatcher looks for work when a delivery
//! is written (this process's writes; on PostgreSQL every node's, by NOTIFY), when an
//! attempt was recorded, and otherwise when the next pending delivery is due, at least
//! every [`IDLE_MAX`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_domain::Secret;
use kassa_domain::ids::WebhookEndpointId;
use kassa_domain::workflow;
use kassa_store::{AttemptMade, DeliveryOutcome, DueDelivery, Store, Timestamp};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};

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
/// The longest an idle dispatcher waits before it looks again.
const IDLE_MAX: Duration = Duration::from_secs(5);
/// The shortest wait when a look found nothing, so a race never spins.
const IDLE_MIN: Duration = Duration::from_millis(20);
/// Heartbeats a claim outlives.
const CLAIM_HEARTBEATS: u32 = 3;

/// Claims in this node's hands: each batch's name and its attempts not yet recorded.
type Claims = Arc<Mutex<HashMap<Arc<str>, usize>>>;

/// An attempt made, on its way to the recorder; its slot frees once it is recorded.
struct Sent {
    made: AttemptMade,
    claim: Arc<str>,
    _slot: OwnedSemaphorePermit,
}

/// Sends webhook deliveries until `stop` says so (or its sender goes), then finishes
/// the attempts in flight.
pub(crate) async fn run(workers: Workers, mut stop: watch::Receiver<bool>) {
    let store = workers.store.clone();
    let lease = workers.heartbeat * CLAIM_HEARTBEATS;
    let wake = Arc::new(Notify::new());
    let claims: Claims = Arc::default();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut endpoints: HashMap<WebhookEndpointId, Arc<Semaphore>> = HashMap::new();
    let (done, recorded) = mpsc::unbounded_channel();
    let helpers = [
        tokio::spawn(woken_by_writes(wake.clone())),
        tokio::spawn(woken_by_notify(store.clone(), wake.clone())),
        tokio::spawn(extend_claims(
            store.clone(),
            claims.clone(),
            workers.heartbeat,
            lease,
        )),
    ];
    let recorder = tokio::spawn(record(
        store.clone(),
        recorded,
        claims.clone(),
        wake.clone(),
    ));
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the slots are never closed"),
            _ = stop.changed() => break,
        };
        let limit = (slots.available_permits() + 1).min(BATCH);
        let claim: Arc<str> = Arc::from(format!("clm_{}", ulid::Ulid::new()));
        let due = match store.claim_webhook_deliveries(&claim, limit, lease).await {
            Ok(due) => {
                failures = 0;
                due
            }
            Err(e) => {
                drop(slot);
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "claiming webhook deliveries");
                let wait = IDLE_MIN * 2u32.saturating_pow(failures.min(8));
                tokio::select! {
                    () = tokio::time::sleep(wait.min(IDLE_MAX)) => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
        };
        if due.is_empty() {
            drop(slot);
            let wait = idle_wait(&store).await;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake.notified() => {}
                _ = stop.changed() => break,
            }
            continue;
        }
        claims
            .lock()
            .expect("claims lock")
            .insert(claim.clone(), due.len());
        if endpoints.len() > 64 {
            endpoints.retain(|_, s| Arc::strong_count(s) > 1);
        }
        let mut slot = Some(slot);
        for d in due {
            let slot = match slot.take() {
                Some(s) => s,
                // Free: the claim took no more than the free slots, and only this loop
                // takes them.
                None => slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the slots are never closed"),
            };
            let turn = endpoints
                .entry(d.endpoint_id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_ENDPOINT)))
                .clone();
            let (workers, claim, done) = (workers.clone(), claim.clone(), done.clone());
            tokio::spawn(async move {
                let Ok(_turn) = turn.acquire_owned().await else {
                    return;
                };
                let made =
                    crate::workers::in_scope_of(d.request_id.clone(), attempt(&workers, d)).await;
                let _ = done.send(Sent {
                    made,
                    claim,
                    _slot: slot,
                });
            });
        }
    }
    // No more claims; the recorder ends once every attempt in flight is recorded.
    drop(done);
    if tokio::time::timeout(Duration::from_secs(30), recorder)
        .await
        .is_err()
    {
        tracing::warn!("webhook attempts still in flight at shutdown are sent again later");
    }
    for helper in helpers {
        helper.abort();
    }
}

/// How long to wait when nothing was due: until the next pending delivery's time (or a
/// claim's end), within [`IDLE_MIN`]..[`IDLE_MAX`].
async fn idle_wait(store: &Store) -> Duration {
    match store.next_webhook_delivery_at().await {
        Ok(Some(at)) => {
            let ms = u64::try_from(at.millis() - Timestamp::now().millis()).unwrap_or(0);
            Duration::from_millis(ms).clamp(IDLE_MIN, IDLE_MAX)
        }
        Ok(None) => IDLE_MAX,
        Err(e) => {
            tracing::warn!(error = %e, "reading when the next webhook is due");
            IDLE_MAX
        }
    }
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
        workflow::endpoint_disabled(&d.endpoint_id, now.0)
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

/// Records the attempts as they come, many in one transaction, until every sender is
/// gone; then the claims they were part of are let go.
async fn record(
    store: Store,
    mut recorded: mpsc::UnboundedReceiver<Sent>,
    claims: Claims,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while recorded.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let made: Vec<AttemptMade> = batch.iter().map(|s| s.made.clone()).collect();
        write(&store, &made).await;
        {
            let mut claims = claims.lock().expect("claims lock");
            for sent in &batch {
                if let Some(left) = claims.get_mut(&sent.claim) {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        claims.remove(&sent.claim);
                    }
                }
            }
        }
        // Frees the slots; the dispatcher looks again (a retry may be due sooner).
        batch.clear();
        wake.notify_one();
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

/// Extends the claims in this node's hands every heartbeat.
async fn extend_claims(store: Store, claims: Claims, every: Duration, lease: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let names: Vec<String> = claims
            .lock()
            .expect("claims lock")
            .keys()
            .map(|c| c.to_string())
            .collect();
        if let Err(e) = store.extend_webhook_claims(&names, lease).await {
            tracing::warn!(error = %e, "extending webhook claims");
        }
    }
}

/// Wakes the dispatcher when this process writes a delivery.
async fn woken_by_writes(wake: Arc<Notify>) {
    let mut written = kassa_store::deliveries_written_here();
    while written.changed().await.is_ok() {
        wake.notify_one();
    }
}

/// On PostgreSQL, wakes the dispatcher when any node writes a delivery (the trigger's
/// NOTIFY, at the commit), listening again after the connection is lost.
async fn woken_by_notify(store: Store, wake: Arc<Notify>) {
    let Some(pool) = store.pg_pool().cloned() else {
        return;
    };
    while !pool.is_closed() {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener
                    .listen(kassa_store::DELIVERIES_CHANNEL)
                    .await
                    .is_ok()
                {
                    // Deliveries written while nobody listened.
                    wake.notify_one();
                    while listener.recv().await.is_ok() {
                        wake.notify_one();
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "listening for webhook deliveries"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
