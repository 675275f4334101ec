//! Webhook endpoints: where events go, which ones, and the signing secrets (sealed at
//! rest, `sealed.rs`). An endpoint belongs to one mode (as on Stripe) and receives
//! only that mode's events; every function a key or the dashboard reaches takes the
//! mode, and another mode's endpoint is `NotFound`, like another store's.

use kassa_domain::Secret;
use kassa_domain::ids::{TenantId, WebhookEndpointId};
use kassa_domain::mode::Mode;
use sqlx::AssertSqlSafe;

use crate::catalog::{HasId, fetch_one, list_page};

use crate::db::db_run;
use crate::error::StoreError;
use crate::error::corrupt;
use crate::page::{Page, PageRequest};
use crate::queues::Queue;
use crate::sealed::Place;
use crate::store::Store;
use crate::time::Timestamp;
use sqlx::types::Json;

/// How long a rotated-out secret keeps signing, so receivers can switch over.
pub const SECRET_OVERLAP_MILLIS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct WebhookEndpointFields {
    pub url: String,
    pub description: Option<String>,
    /// Empty means every event type.
    pub event_types: Vec<String>,
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct WebhookEndpointRecord {
    pub id: WebhookEndpointId,
    /// A live endpoint (else a test one): it receives only its mode's events.
    pub livemode: bool,
    pub fields: WebhookEndpointFields,
    pub secret: Secret,
    pub previous_secret: Option<Secret>,
    pub previous_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    livemode: bool,
    url: String,
    description: Option<String>,
    event_types: Json<Vec<String>>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<Timestamp>,
    disabled_at: Option<Timestamp>,
    created_at: Timestamp,
}

impl TryFrom<EndpointRow> for WebhookEndpointRecord {
    type Error = StoreError;
    fn try_from(row: EndpointRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: WebhookEndpointId::parse(&row.id).map_err(corrupt)?,
            livemode: row.livemode,
            fields: WebhookEndpointFields {
                url: row.url,
                description: row.description,
                event_types: row.event_types.0,
                disabled: row.disabled_at.is_some(),
            },
            // Still sealed: `Store::opened` opens them, knowing the store.
            secret: Secret::from(row.secret),
            previous_secret: row.previous_secret.map(Secret::from),
            previous_secret_expires_at: row.previous_secret_expires_at,
            created_at: row.created_at,
        })
    }
}

impl HasId for WebhookEndpointRecord {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

const ENDPOINT_COLUMNS: &str = "id, livemode, url, description, event_types, secret, previous_secret, \
    previous_secret_expires_at, disabled_at, created_at";

impl Store {
    /// A new endpoint of `mode`'s world.
    pub async fn create_webhook_endpoint(
        &self,
        tenant: &TenantId,
        mode: Mode,
        fields: &WebhookEndpointFields,
        secret: &Secret,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let id = WebhookEndpointId::generate();
        let now = Timestamp::now();
        db_run!(self.writer(), c => sqlx::query(
            "INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, secret, disabled_at, created_at, livemode)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(&fields.url)
        .bind(fields.description.as_deref())
        .bind(Json(&fields.event_types))
        .bind(self.seal(&Place::endpoint(tenant.as_str(), id.as_str()), secret.expose_secret())?)
        .bind(fields.disabled.then_some(now))
        .bind(now)
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        self.webhook_endpoint_in(tenant, mode, &id).await
    }

    /// An endpoint of either mode, for Kassa's own work (an email about the endpoint);
    /// what a key or the dashboard reads goes through [`Store::webhook_endpoint_in`].
    pub async fn webhook_endpoint(
        &self,
        tenant: &TenantId,
        id: &WebhookEndpointId,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let sealed = fetch_one::<EndpointRow, _>(
            self,
            ENDPOINT_COLUMNS,
            "webhook_endpoints",
            "id",
            tenant,
            None,
            id.as_str(),
        )
        .await?;
        self.opened(tenant, sealed)
    }

    /// `endpoint` as read, with its secrets opened.
    fn opened(
        &self,
        tenant: &TenantId,
        mut endpoint: WebhookEndpointRecord,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let place = Place::endpoint(tenant.as_str(), endpoint.id.as_str());
        endpoint.secret = self.open(&place, endpoint.secret.expose_secret())?;
        endpoint.previous_secret = (endpoint.previous_secret.as_ref())
            .map(|s| self.open(&place, s.expose_secret()))
            .transpose()?;
        Ok(endpoint)
    }

    /// An endpoint of `mode`'s world (another mode's is `NotFound`).
    pub async fn webhook_endpoint_in(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &WebhookEndpointId,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
             WHERE tenant_id = $1 AND id = $2 AND livemode = $3"
        );
        let row: Option<EndpointRow> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(mode.is_live())
            .fetch_optional(c).await?);
        self.opened(tenant, row.ok_or(StoreError::NotFound)?.try_into()?)
    }

    /// The endpoints of `mode`'s world, newest first.
    pub async fn list_webhook_endpoints(
        &self,
        tenant: &TenantId,
        mode: Mode,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpointRecord>, StoreError> {
        let page = list_page::<EndpointRow, _>(
            self,
            ENDPOINT_COLUMNS,
            "webhook_endpoints",
            tenant,
            Some(mode),
            page,
        )
        .await?;
        Ok(Page {
            data: (page.data.into_iter())
                .map(|e| self.opened(tenant, e))
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }

    pub async fn update_webhook_endpoint(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &WebhookEndpointId,
        fields: &WebhookEndpointFields,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5,
             disabled_at = CASE WHEN $6 = 0 THEN NULL ELSE COALESCE(disabled_at, $7) END
             WHERE tenant_id = $1 AND id = $2 AND livemode = $8",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(&fields.url)
        .bind(fields.description.as_deref())
        .bind(Json(&fields.event_types))
        .bind(i64::from(fields.disabled))
        .bind(Timestamp::now())
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        if !fields.disabled {
            // Enabled (again, maybe): its held deliveries are due; every node looks.
            self.wake_queue(Queue::Webhooks).await?;
        }
        self.webhook_endpoint_in(tenant, mode, id).await
    }

    /// Puts a new secret in place; the old one keeps signing for a day.
    pub async fn rotate_webhook_secret(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &WebhookEndpointId,
        new_secret: &Secret,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
             previous_secret_expires_at = $4 WHERE tenant_id = $1 AND id = $2 AND livemode = $5",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        // The replaced secret moves to `previous_secret` sealed as it is (one place).
        .bind(self.seal(&Place::endpoint(tenant.as_str(), id.as_str()), new_secret.expose_secret())?)
        .bind(Timestamp::from(Timestamp::now().millis() + SECRET_OVERLAP_MILLIS))
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.webhook_endpoint_in(tenant, mode, id).await
    }

    pub async fn delete_webhook_endpoint(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &WebhookEndpointId,
    ) -> Result<(), StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 AND livemode = $3",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
