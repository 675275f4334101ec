//! What happened to one order besides its own rows, for the dashboard's timeline: the
//! emails sent about it and every webhook attempt of its events.

use kassa_domain::ids::TenantId;

use crate::db::db_run;
use crate::error::StoreError;
use crate::store::Store;
use crate::time::Timestamp;

/// One email about an order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderEmail {
    pub kind: String,
    pub to_address: String,
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// One attempt to deliver one of the order's events to an endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderWebhookAttempt {
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub url: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub created_at: Timestamp,
}

impl Store {
    /// The emails about an order, oldest first.
    pub async fn order_emails(
        &self,
        tenant: &TenantId,
        order: &str,
    ) -> Result<Vec<OrderEmail>, StoreError> {
        Ok(db_run!(self, c => sqlx::query_as(
            "SELECT kind, to_address, status, last_error, created_at, sent_at FROM emails
             WHERE tenant_id = $1 AND order_id = $2 ORDER BY created_at, id",
        )
        .bind(tenant.as_str())
        .bind(order)
        .fetch_all(c).await?))
    }

    /// Every webhook attempt for the order's events, oldest first (at most 500).
    pub async fn order_webhook_attempts(
        &self,
        tenant: &TenantId,
        order: &str,
    ) -> Result<Vec<OrderWebhookAttempt>, StoreError> {
        Ok(db_run!(self, c => sqlx::query_as(
            "SELECT a.event_id, e.type AS event_type, a.endpoint_id, a.url, CAST(a.attempt AS BIGINT) AS attempt,
             CAST(a.status_code AS BIGINT) AS status_code, CAST(a.latency_ms AS BIGINT) AS latency_ms, a.created_at
             FROM events e JOIN webhook_attempts a ON a.tenant_id = e.tenant_id AND a.event_id = e.id
             WHERE e.tenant_id = $1 AND e.order_id = $2 ORDER BY a.created_at, a.id LIMIT 500",
        )
        .bind(tenant.as_str())
        .bind(order)
        .fetch_all(c).await?))
    }
}
