//! The webhook delivery queue: the `webhook_deliveries` rows themselves. A dispatcher
//! (`kassa-jobs`) claims due rows in batches, highest priority first, then the earliest;
//! sends them; and records the outcomes of many attempts in one transaction, with what
//! the workflow says follows (the owners told of a disabled endpoint). A claim names its
//! batch and lasts until `claimed_until`, which the claiming node extends while the batch
//! is in its hands; a claim that runs out (the node died) returns its rows to the queue.

use std::collections::HashMap;
use std::time::Duration;

use kassa_domain::Secret;
use kassa_domain::ids::{AttemptId, DeliveryId, TenantId, WebhookEndpointId};
use kassa_domain::mode::Mode;
use kassa_domain::workflow::Followups;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::db::{db_run, placeholders};
use crate::error::{StoreError, corrupt};
use crate::queues::Queue;
use crate::request_id::RequestId;
use crate::sealed::Place;
use crate::store::Store;
use crate::time::Timestamp;
use crate::work::Work;

/// A delivery that is due, with what is needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub tenant_id: TenantId,
    pub id: DeliveryId,
    pub endpoint_id: WebhookEndpointId,
    /// The endpoint's world (and its event's).
    pub mode: Mode,
    pub event_id: String,
    pub attempts: i64,
    pub url: String,
    pub secrets: Vec<Secret>,
    pub payload: String,
    pub event_created_at: Timestamp,
    pub failing_since: Option<Timestamp>,
    /// The request that caused the delivery (or its redelivery), logged with each attempt.
    pub request_id: Option<RequestId>,
}

/// What became of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Succeeded,
    /// Try again at this time (Unix milliseconds).
    RetryAt(i64),
    /// No more attempts: the schedule is used up.
    Failed,
    /// The receiver answered 410 Gone, or failed for too long: the endpoint is disabled.
    EndpointDisabled,
}

/// One attempt made, to record.
#[derive(Debug, Clone)]
pub struct AttemptMade {
    pub delivery: DueDelivery,
    /// The HTTP status, when a response came.
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// The start of the answer, or why there was none.
    pub response: String,
    pub outcome: DeliveryOutcome,
    /// What the workflow says follows (`workflow::endpoint_disabled`), written with it.
    pub followups: Followups,
}

impl AttemptMade {
    /// The delivery's state after the attempt, and its next attempt's time.
    fn next(&self) -> (&'static str, Option<i64>) {
        match self.outcome {
            DeliveryOutcome::Succeeded => ("succeeded", None),
            DeliveryOutcome::RetryAt(at) => ("pending", Some(at)),
            DeliveryOutcome::Failed | DeliveryOutcome::EndpointDisabled => ("failed", None),
        }
    }
}

/// A delivery's store, state, next attempt's time and last HTTP status after an attempt.
type NewState<'a> = (&'a TenantId, &'static str, Option<i64>, Option<u16>);

/// The columns of one logged attempt.
const ATTEMPT_COLUMNS: usize = 11;
/// Attempts logged per INSERT (under both databases' limits on bound values).
const ATTEMPTS_PER_INSERT: usize = 200;

impl Store {
    /// Claims up to `limit` due deliveries for `claim` (a name for this batch, unique)
    /// until `lease` from now, and returns them ready to send. On PostgreSQL two nodes
    /// claiming at once skip each other's rows (`FOR UPDATE SKIP LOCKED`); SQLite claims
    /// through its one writer. Deliveries whose endpoint or event is gone are given up.
    /// The deliveries of the endpoints `skip` (at their in-flight cap on this node) are
    /// left for later claims, so they do not take the node's slots while they wait.
    pub async fn claim_webhook_deliveries(
        &self,
        claim: &str,
        limit: usize,
        lease: Duration,
        skip: &[String],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let now = Timestamp::now().millis();
        #[derive(sqlx::FromRow)]
        struct Row {
            tenant_id: String,
            id: String,
            endpoint_id: String,
            livemode: Option<bool>,
            event_id: String,
            attempts: i64,
            request_id: Option<String>,
            url: Option<String>,
            secret: Option<String>,
            previous_secret: Option<String>,
            previous_secret_expires_at: Option<Timestamp>,
            failing_since: Option<Timestamp>,
            payload: Option<Json<serde_json::Value>>,
            event_created_at: Option<Timestamp>,
        }
        // The batch with its endpoints and events; a row whose endpoint or event is gone
        // has none.
        let batch = |from: &str, claimed: &str| {
            format!(
                "SELECT d.tenant_id, d.id, d.endpoint_id, d.event_id, d.attempts, d.request_id,
                 e.url, e.livemode, e.secret, e.previous_secret, e.previous_secret_expires_at,
                 e.failing_since, v.payload, v.created_at AS event_created_at
                 FROM {from} d
                 LEFT JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
                 LEFT JOIN events v ON v.tenant_id = d.tenant_id AND v.id = d.event_id
                 {claimed} ORDER BY d.priority DESC, d.next_attempt_at"
            )
        };
        let returned = self
            .claim_rows_returning(
                Queue::Webhooks,
                &batch("claimed", ""),
                claim,
                limit,
                lease,
                skip,
            )
            .await?;
        let rows: Vec<Row> = match returned {
            Some(rows) => rows,
            None => {
                if self
                    .claim_rows_skipping(Queue::Webhooks, claim, limit, lease, skip)
                    .await?
                    == 0
                {
                    return Ok(Vec::new());
                }
                // The claim committed: a reader sees it.
                let sql = batch(
                    "webhook_deliveries",
                    "WHERE d.claimed_by = $1 AND d.status = 'pending'",
                );
                db_run!(self, c => sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .bind(claim)
                    .fetch_all(c).await?)
            }
        };
        let gone = |row: &Row| row.url.is_none() || row.payload.is_none();
        if rows.iter().any(gone) {
            // A row without its endpoint or event (deleted meanwhile) can never be sent.
            db_run!(self.writer(), c => sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
                 claimed_by = NULL, claimed_until = NULL
                 WHERE claimed_by = $1 AND status = 'pending' AND (
                   NOT EXISTS (SELECT 1 FROM webhook_endpoints e
                     WHERE e.tenant_id = webhook_deliveries.tenant_id AND e.id = webhook_deliveries.endpoint_id)
                   OR NOT EXISTS (SELECT 1 FROM events v
                     WHERE v.tenant_id = webhook_deliveries.tenant_id AND v.id = webhook_deliveries.event_id))",
            )
            .bind(claim)
            .execute(c).await?.rows_affected());
        }
        rows.into_iter()
            .filter_map(|row| {
                let (
                    Some(url),
                    Some(livemode),
                    Some(secret),
                    Some(payload),
                    Some(event_created_at),
                ) = (
                    row.url,
                    row.livemode,
                    row.secret,
                    row.payload,
                    row.event_created_at,
                )
                else {
                    return None;
                };
                // An endpoint whose secret does not open (altered, or sealed under a key
                // this node lacks) holds back its own deliveries only: they stay claimed
                // until the lease ends, and the rest of the batch goes out.
                let place = Place::endpoint(&row.tenant_id, &row.endpoint_id);
                let previous = (row.previous_secret.as_deref()).filter(|_| {
                    row.previous_secret_expires_at
                        .is_some_and(|t| t.millis() > now)
                });
                let secrets = std::iter::once(secret.as_str())
                    .chain(previous)
                    .map(|sealed| self.open(&place, sealed))
                    .collect::<Result<Vec<_>, _>>();
                let secrets = match secrets {
                    Ok(secrets) => secrets,
                    Err(error) => {
                        tracing::error!(delivery = %row.id, endpoint = %row.endpoint_id, %error,
                            "a webhook endpoint's secret does not open; its delivery waits");
                        return None;
                    }
                };
                let ids = (|| {
                    Ok::<_, StoreError>((
                        TenantId::parse(&row.tenant_id).map_err(corrupt)?,
                        DeliveryId::parse(&row.id).map_err(corrupt)?,
                        WebhookEndpointId::parse(&row.endpoint_id).map_err(corrupt)?,
                    ))
                })();
                let (tenant_id, id, endpoint_id) = match ids {
                    Ok(ids) => ids,
                    Err(e) => return Some(Err(e)),
                };
                Some(Ok(DueDelivery {
                    tenant_id,
                    id,
                    endpoint_id,
                    mode: Mode::from_livemode(livemode),
                    event_id: row.event_id,
                    attempts: row.attempts,
                    url,
                    secrets,
                    payload: payload.0.to_string(),
                    event_created_at,
                    failing_since: row.failing_since,
                    request_id: row.request_id.map(RequestId::from_stored),
                }))
            })
            .collect()
    }

    /// Logs the attempts and moves their deliveries and endpoints on, with what
    /// follows, all in one transaction: one UPDATE per kind of outcome, one INSERT for
    /// the log, one UPDATE per endpoint. An attempt whose delivery is gone (its endpoint
    /// was deleted meanwhile) is not logged.
    pub async fn record_webhook_attempts(&self, made: &[AttemptMade]) -> Result<(), StoreError> {
        if made.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        // Deliveries with the same new state, in one statement each.
        let mut groups: HashMap<NewState, Vec<&str>> = HashMap::new();
        for a in made {
            let (status, next) = a.next();
            groups
                .entry((&a.delivery.tenant_id, status, next, a.status_code))
                .or_default()
                .push(a.delivery.id.as_str());
        }
        let mut moved = std::collections::HashSet::new();
        for ((tenant, status, next, code), ids) in groups {
            let list = placeholders(6, ids.len());
            let found: Vec<String> = db_run!(&mut tx, c => {
                let mut query = sqlx::query_scalar(AssertSqlSafe(format!(
                    "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1,
                     next_attempt_at = $3, last_status = $4, updated_at = $5,
                     claimed_by = NULL, claimed_until = NULL
                     WHERE tenant_id = $1 AND id IN ({list}) RETURNING id"
                )))
                .bind(tenant.as_str())
                .bind(status)
                .bind(next.map(Timestamp::from))
                .bind(code.map(i64::from))
                .bind(now);
                for id in &ids {
                    query = query.bind(*id);
                }
                query.fetch_all(c).await?
            });
            moved.extend(found.into_iter().map(|id| (tenant.clone(), id)));
        }
        let logged: Vec<&AttemptMade> = made
            .iter()
            .filter(|a| moved.contains(&(a.delivery.tenant_id.clone(), a.delivery.id.to_string())))
            .collect();
        for chunk in logged.chunks(ATTEMPTS_PER_INSERT) {
            let rows = (0..chunk.len())
                .map(|i| {
                    format!(
                        "({})",
                        placeholders(1 + i * ATTEMPT_COLUMNS, ATTEMPT_COLUMNS)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            db_run!(&mut tx, c => {
                let mut query = sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO webhook_attempts (tenant_id, id, delivery_id, endpoint_id, event_id,
                     attempt, url, status_code, latency_ms, response, created_at) VALUES {rows}"
                )));
                for a in chunk {
                    let d = &a.delivery;
                    query = query
                        .bind(d.tenant_id.as_str())
                        .bind(AttemptId::generate().as_str().to_owned())
                        .bind(d.id.as_str())
                        .bind(d.endpoint_id.as_str())
                        .bind(d.event_id.as_str())
                        .bind(d.attempts + 1)
                        .bind(d.url.as_str())
                        .bind(a.status_code.map(i64::from))
                        .bind(a.latency_ms)
                        .bind(a.response.as_str())
                        .bind(now);
                }
                query.execute(c).await?.rows_affected()
            });
        }
        // Each endpoint once: disabled if an attempt said so, else as its last attempt
        // left it (failing since the first failure, or not failing).
        let mut endpoints: Vec<(&TenantId, &WebhookEndpointId, DeliveryOutcome)> = Vec::new();
        for a in &logged {
            let key = (&a.delivery.tenant_id, &a.delivery.endpoint_id);
            match endpoints.iter_mut().find(|(t, e, _)| (*t, *e) == key) {
                Some((_, _, o)) if *o == DeliveryOutcome::EndpointDisabled => {}
                Some((_, _, o)) => *o = a.outcome,
                None => endpoints.push((key.0, key.1, a.outcome)),
            }
        }
        for (tenant, endpoint, outcome) in endpoints {
            let sql = match outcome {
                DeliveryOutcome::Succeeded => {
                    "UPDATE webhook_endpoints SET failing_since = NULL
                     WHERE tenant_id = $1 AND id = $2 AND failing_since IS NOT NULL AND $3 IS NOT NULL"
                }
                DeliveryOutcome::EndpointDisabled => {
                    "UPDATE webhook_endpoints SET disabled_at = COALESCE(disabled_at, $3) WHERE tenant_id = $1 AND id = $2"
                }
                _ => {
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $3) WHERE tenant_id = $1 AND id = $2"
                }
            };
            db_run!(&mut tx, c => sqlx::query(sql)
                .bind(tenant.as_str())
                .bind(endpoint.as_str())
                .bind(now)
                .execute(c).await?.rows_affected());
        }
        for a in logged
            .iter()
            .filter(|a| a.followups != Followups::default())
        {
            let mut work = Work::around(tx, &a.delivery.tenant_id, self.backend, now);
            work.follow(None, &a.followups).await?;
            tx = work.into_tx();
        }
        tx.commit().await
    }
}
