//! Events and their webhook deliveries. An event is written in the transaction of
//! the change it reports, together with one delivery per enabled endpoint whose filter
//! takes it, due at once (the delivery rows are the dispatcher's queue, see
//! `deliveries.rs`), so no event is ever lost or sent for a change that did not happen.

use std::collections::HashMap;

use kassa_domain::ids::{DeliveryId, EventId, TenantId, WebhookEndpointId};
use kassa_domain::mode::Mode;

use crate::db::{Backend, Tx, db_run, placeholders};
use crate::error::StoreError;
use crate::jobs::Priority;
use crate::page::{Page, PageRequest};
use crate::store::Store;
use crate::time::Timestamp;
use crate::time::rfc3339;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

fn delivery_written() {
    crate::queues::wrote(crate::queues::Queue::Webhooks);
}

/// An event to write, with what its deliveries carry.
pub(crate) struct NewEvent {
    pub id: EventId,
    pub kind: String,
    pub order_id: Option<String>,
    pub mode: Mode,
    pub payload: serde_json::Value,
    pub at: Timestamp,
    pub priority: Priority,
    pub request_id: Option<String>,
}

impl NewEvent {
    /// An event of `kind` of the `mode` world (said in its payload's `livemode`), made at `at`.
    pub(crate) fn new(
        kind: &str,
        order_id: Option<&str>,
        mode: Mode,
        data: serde_json::Value,
        at: Timestamp,
    ) -> Self {
        let id = EventId::generate();
        let payload = serde_json::json!({
            "id": id,
            "type": kind,
            "timestamp": rfc3339(at.millis()),
            "livemode": mode.is_live(),
            "data": data,
        });
        Self {
            id,
            kind: kind.to_owned(),
            order_id: order_id.map(str::to_owned),
            mode,
            payload,
            at,
            // A paid order's news goes before a backlog of other deliveries.
            priority: Priority::paid_order_if(
                kind.parse::<kassa_domain::event::EventKind>()
                    .is_ok_and(kassa_domain::event::EventKind::reports_paid_order),
            ),
            request_id: crate::RequestId::current().map(|r| r.as_str().to_owned()),
        }
    }
}

/// How many parameters [`event_sql`] takes, bound by [`bind_event!`].
pub(crate) const EVENT_ARGS: usize = 9;

/// Binds a [`NewEvent`] of `tenant` in [`event_sql`]'s order.
macro_rules! bind_event {
    ($query:expr, $tenant:expr, $event:expr) => {
        $query
            .bind($tenant.as_str())
            .bind($event.id.as_str())
            .bind($event.kind.as_str())
            .bind($event.order_id.as_deref())
            .bind($event.mode.is_live())
            .bind(sqlx::types::Json(&$event.payload))
            .bind($event.at)
            .bind($event.priority as i32)
            .bind($event.request_id.as_deref())
    };
}
pub(crate) use bind_event;

/// The two statements writing an event (parameters `$from`…, see [`bind_event!`]) and
/// its deliveries: one, pending and due at once, to each enabled endpoint of its mode
/// whose filter takes its type, read and written by the database in the same
/// statement. `payload` makes the payload's SQL from its parameter (the placement
/// writes the order's number into it). A delivery's id is made there too: `whd_`, the
/// event id's time part and 16 random hexadecimal digits, so it sorts with its event.
pub(crate) fn event_sql(
    backend: Backend,
    from: usize,
    payload: impl Fn(&str) -> String,
) -> (String, String) {
    let [tenant, id, kind, order, live, body, at, priority, request] =
        std::array::from_fn(|i| format!("${}", from + i));
    let body = payload(&body);
    let event = format!(
        "INSERT INTO events (tenant_id, id, type, order_id, livemode, payload, created_at)
         VALUES ({tenant}, {id}, {kind}, {order}, {live}, {body}, {at})"
    );
    let (random, takes_all, takes_type) = match backend {
        Backend::Sqlite => (
            "lower(hex(randomblob(8)))",
            "json_array_length(w.event_types) = 0",
            format!("EXISTS (SELECT 1 FROM json_each(w.event_types) AS t WHERE t.value = {kind})"),
        ),
        Backend::Postgres => (
            "substr(md5(random()::text || w.id), 1, 16)",
            "jsonb_array_length(w.event_types) = 0",
            format!("w.event_types @> jsonb_build_array({kind}::text)"),
        ),
    };
    let deliveries = format!(
        "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, status, attempts,
         next_attempt_at, created_at, updated_at, priority, request_id)
         SELECT w.tenant_id, 'whd_' || substr({id}, 5, 10) || {random}, w.id, {id}, 'pending', 0,
             {at}, {at}, {at}, {priority}, {request}
         FROM webhook_endpoints w
         WHERE w.tenant_id = {tenant} AND w.livemode = {live} AND w.disabled_at IS NULL
             AND ({takes_all} OR {takes_type})"
    );
    (event, deliveries)
}

/// Writes an event and queues its deliveries, in one round trip.
pub(crate) async fn insert_event(
    tx: &mut Tx,
    tenant: &TenantId,
    event: &NewEvent,
) -> Result<(), StoreError> {
    let (insert, deliveries) = event_sql(tx.backend(), 1, str::to_owned);
    let sql = match tx.backend() {
        Backend::Sqlite => format!("{insert};\n{deliveries};\nSELECT changes()"),
        Backend::Postgres => {
            format!("WITH e AS ({insert}), d AS ({deliveries} RETURNING 1) SELECT count(*) FROM d")
        }
    };
    let written: i64 = db_run!(tx, c => bind_event!(sqlx::query_scalar(AssertSqlSafe(sql.as_str())), tenant, event)
        .fetch_one(c).await?);
    if written > 0 {
        delivery_written();
    }
    Ok(())
}

async fn queue_delivery(
    tx: &mut Tx,
    tenant: &TenantId,
    endpoint: &str,
    event: &str,
    now: i64,
    priority: Priority,
) -> Result<(), StoreError> {
    let id = DeliveryId::generate();
    db_run!(tx, c => sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, status, attempts,
         next_attempt_at, created_at, updated_at, priority, request_id)
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5, $6, $7)",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(endpoint)
    .bind(event)
    .bind(Timestamp::from(now))
    .bind(priority as i32)
    .bind(crate::RequestId::current().as_ref().map(crate::RequestId::as_str))
    .execute(c).await?.rows_affected());
    delivery_written();
    Ok(())
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: String,
    pub kind: String,
    /// A live event (else a test one).
    pub livemode: bool,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    livemode: bool,
    payload: Json<serde_json::Value>,
    created_at: Timestamp,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            kind: r.kind,
            livemode: r.livemode,
            payload: r.payload.0,
            created_at: r.created_at,
        })
    }
}

/// One logged attempt.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub id: String,
    pub attempt: i64,
    pub url: String,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response: String,
    pub created_at: Timestamp,
}

/// A delivery with its attempts, for the merchant.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: Vec<AttemptRecord>,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl crate::catalog::HasId for DeliveryRecord {
    fn id_str(&self) -> &str {
        &self.id
    }
}

impl Store {
    /// Events of one mode, newest first, optionally of one type.
    pub async fn list_events(
        &self,
        tenant: &TenantId,
        mode: Mode,
        kind: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<EventRecord>, StoreError> {
        let rows: Vec<EventRow> = db_run!(self, c => sqlx::query_as(
            "SELECT id, type, livemode, payload, created_at FROM events WHERE tenant_id = $1 AND livemode = $5
             AND ($2 IS NULL OR id < $2) AND ($3 IS NULL OR type = $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(page.after.as_deref())
        .bind(kind)
        .bind(page.limit + 1)
        .bind(mode.is_live())
        .fetch_all(c).await?);
        let records = rows
            .into_iter()
            .map(EventRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(records, page.limit, |e| e.id.clone()))
    }

    pub async fn event(&self, tenant: &TenantId, id: &str) -> Result<EventRecord, StoreError> {
        let row: Option<EventRow> = db_run!(self, c => sqlx::query_as(
            "SELECT id, type, livemode, payload, created_at FROM events WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(c).await?);
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// An order's events, oldest first.
    pub async fn order_events(
        &self,
        tenant: &TenantId,
        order: &str,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows: Vec<EventRow> = db_run!(self, c => sqlx::query_as(
            "SELECT id, type, livemode, payload, created_at FROM events WHERE tenant_id = $1 AND order_id = $2 ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(order)
        .fetch_all(c).await?);
        rows.into_iter().map(EventRecord::try_from).collect()
    }

    /// Deliveries to one endpoint, newest first, each with its attempts: two queries,
    /// however long the page.
    pub async fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &WebhookEndpointId,
        page: &PageRequest,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct DeliveryRow {
            id: String,
            endpoint_id: String,
            event_id: String,
            event_type: String,
            status: String,
            next_attempt_at: Option<Timestamp>,
            created_at: Timestamp,
        }
        #[derive(sqlx::FromRow)]
        struct AttemptRow {
            delivery_id: String,
            id: String,
            attempt: i64,
            url: String,
            status_code: Option<i64>,
            latency_ms: i64,
            response: String,
            created_at: Timestamp,
        }
        let rows: Vec<DeliveryRow> = db_run!(self, c => sqlx::query_as(
            "SELECT d.id, d.endpoint_id, d.event_id, v.type AS event_type, d.status, d.next_attempt_at, d.created_at
             FROM webhook_deliveries d JOIN events v ON v.tenant_id = d.tenant_id AND v.id = d.event_id
             WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND ($3 IS NULL OR d.id < $3)
             ORDER BY d.id DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(endpoint.as_str())
        .bind(page.after.as_deref())
        .bind(page.limit + 1)
        .fetch_all(c).await?);
        let mut attempts: HashMap<String, Vec<AttemptRecord>> = HashMap::new();
        if !rows.is_empty() {
            let ids = placeholders(2, rows.len());
            let found: Vec<AttemptRow> = db_run!(self, c => {
                let mut query = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT delivery_id, id, attempt, url, status_code, latency_ms, response, created_at
                     FROM webhook_attempts WHERE tenant_id = $1 AND delivery_id IN ({ids})
                     ORDER BY delivery_id, attempt"
                )))
                .bind(tenant.as_str());
                for d in &rows {
                    query = query.bind(d.id.clone());
                }
                query.fetch_all(c).await?
            });
            for a in found {
                attempts
                    .entry(a.delivery_id)
                    .or_default()
                    .push(AttemptRecord {
                        id: a.id,
                        attempt: a.attempt,
                        url: a.url,
                        status_code: a.status_code,
                        latency_ms: a.latency_ms,
                        response: a.response,
                        created_at: a.created_at,
                    });
            }
        }
        let records = rows
            .into_iter()
            .map(|d| DeliveryRecord {
                attempts: attempts.remove(&d.id).unwrap_or_default(),
                id: d.id,
                endpoint_id: d.endpoint_id,
                event_id: d.event_id,
                event_type: d.event_type,
                status: d.status,
                next_attempt_at: d.next_attempt_at,
                created_at: d.created_at,
            })
            .collect();
        Ok(Page::from_rows(records, page.limit, |d| d.id.clone()))
    }

    /// Sends an event to an endpoint again, now, whatever happened before (even if
    /// the endpoint's filter would not take it today).
    /// Both must be of `mode`'s world: another mode's endpoint or event is `NotFound`.
    pub async fn redeliver(
        &self,
        tenant: &TenantId,
        mode: Mode,
        endpoint: &WebhookEndpointId,
        event: &str,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let found: Option<i32> = db_run!(&mut tx, c => sqlx::query_scalar("SELECT 1 FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 AND livemode = $3")
                .bind(tenant.as_str())
                .bind(endpoint.as_str())
                .bind(mode.is_live())
                .fetch_optional(c).await?);
        let event_found: Option<i32> = db_run!(&mut tx, c => sqlx::query_scalar("SELECT 1 FROM events WHERE tenant_id = $1 AND id = $2 AND livemode = $3")
                .bind(tenant.as_str())
                .bind(event)
                .bind(mode.is_live())
                .fetch_optional(c).await?);
        if found.is_none() || event_found.is_none() {
            return Err(StoreError::NotFound);
        }
        let reset = db_run!(&mut tx, c => sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4,
             attempts = 0, updated_at = $4, claimed_by = NULL, claimed_until = NULL, request_id = $5
             WHERE tenant_id = $1 AND endpoint_id = $2 AND event_id = $3",
        )
        .bind(tenant.as_str())
        .bind(endpoint.as_str())
        .bind(event)
        .bind(Timestamp::from(now))
        .bind(crate::RequestId::current().as_ref().map(crate::RequestId::as_str))
        .execute(c).await?.rows_affected());
        if reset == 0 {
            queue_delivery(
                &mut tx,
                tenant,
                endpoint.as_str(),
                event,
                now,
                Priority::Normal,
            )
            .await?;
        } else if let Tx::Postgres(pg) = &mut tx {
            // An insert's trigger wakes every node's dispatcher; an update says so itself.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(crate::queues::Queue::Webhooks.channel())
                .execute(&mut **pg)
                .await?;
        }
        tx.commit().await?;
        delivery_written();
        Ok(())
    }
}
