//! `/webhook-endpoints`: where a store receives events, signed with its `whsec_` secret.
//! An endpoint belongs to the mode of the key that made it and receives only that
//! mode's events; a key sees, changes and redelivers only its own mode's endpoints and
//! events (another mode's are a 404, like another store's).

use kassa_domain::access::ApiAction;
use kassa_domain::ids::WebhookEndpointId;
use kassa_domain::webhook::generate_secret;
use kassa_orders::{EndpointInput, endpoint_fields};
use kassa_store::WebhookEndpointRecord;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::{ApiContext, Deleted};
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct WebhookEndpointsApi(pub ApiContext);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct WebhookEndpointIn {
    pub url: String,
    pub description: Option<String>,
    /// Event types to send; every type when absent or empty.
    pub event_types: Option<Vec<String>>,
    /// Default false.
    pub disabled: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct WebhookEndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Object)]
pub struct WebhookEndpointOut {
    /// `ep_…`
    pub id: String,
    /// A live endpoint (made with a live key), else a test one: it receives only
    /// events of its mode.
    pub livemode: bool,
    pub url: String,
    pub description: Option<String>,
    /// Empty means every event type.
    pub event_types: Vec<String>,
    pub disabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An endpoint with its signing secret, shown only when created or rotated.
// Not `Debug`: it holds the secret.
#[derive(Object)]
pub struct WebhookEndpointWithSecret {
    #[oai(flatten)]
    pub endpoint: WebhookEndpointOut,
    /// `whsec_…`: verify signatures with it; it is not shown again.
    pub secret: String,
}

list_type!(WebhookEndpointList, WebhookEndpointOut);

/// One try at sending an event to the endpoint.
#[derive(Debug, Object)]
pub struct AttemptOut {
    /// 1 for the first try.
    pub attempt: i64,
    pub url: String,
    /// The receiver's HTTP status; absent when no response came.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The start of the response body (1 KiB), or why there was no response.
    pub response: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An event's way to the endpoint.
#[derive(Debug, Object)]
pub struct DeliveryOut {
    /// `whd_…`
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending` (more attempts to come), `succeeded` or `failed`.
    pub status: String,
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    pub attempts: Vec<AttemptOut>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

list_type!(DeliveryList, DeliveryOut);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RedeliverIn {
    /// The event to send again.
    pub event_id: String,
}

/// Accepted: the event is queued for the endpoint.
#[derive(Debug, Object)]
pub struct RedeliverOut {
    pub event_id: String,
    pub endpoint_id: String,
    pub status: String,
}

fn delivery_out(d: kassa_store::DeliveryRecord) -> DeliveryOut {
    DeliveryOut {
        id: d.id,
        event_id: d.event_id,
        event_type: d.event_type,
        status: d.status,
        next_attempt_at: d.next_attempt_at.map(|t| t.0),
        attempts: d
            .attempts
            .into_iter()
            .map(|a| AttemptOut {
                attempt: a.attempt,
                url: a.url,
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                response: a.response,
                created_at: a.created_at.0,
            })
            .collect(),
        created_at: d.created_at.0,
    }
}

fn out(e: WebhookEndpointRecord) -> WebhookEndpointOut {
    WebhookEndpointOut {
        id: e.id.to_string(),
        livemode: e.livemode,
        url: e.fields.url,
        description: e.fields.description,
        event_types: e.fields.event_types,
        disabled: e.fields.disabled,
        created_at: e.created_at.0,
    }
}

fn with_secret(e: WebhookEndpointRecord) -> WebhookEndpointWithSecret {
    let secret = e.secret.expose_secret().to_owned();
    WebhookEndpointWithSecret {
        endpoint: out(e),
        secret,
    }
}

fn endpoint_id(raw: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(raw).map_err(|_| ApiError::not_found("webhook endpoint"))
}

#[OpenApi(
    prefix_path = "/webhook-endpoints",
    tag = "crate::context::Tag::WebhookEndpoints"
)]
impl WebhookEndpointsApi {
    /// Add a webhook endpoint
    ///
    /// The answer carries the signing secret, which is not shown again.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<WebhookEndpointIn>,
    ) -> Result<Json<WebhookEndpointWithSecret>, ApiError> {
        let fields = endpoint_fields(
            EndpointInput {
                url: &body.url,
                description: body.description.as_deref(),
                event_types: body.event_types.as_deref().unwrap_or_default(),
                disabled: body.disabled.unwrap_or(false),
            },
            self.0.network,
        )?;
        let record = self
            .0
            .store
            .create_webhook_endpoint(
                &auth.allowed(ApiAction::ManageWebhooks)?.id,
                auth.mode(),
                &fields,
                &generate_secret(),
            )
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        Ok(Json(with_secret(record)))
    }

    /// List webhook endpoints, newest first
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<WebhookEndpointList>, ApiError> {
        let page = self
            .0
            .store
            .list_webhook_endpoints(
                &auth.allowed(ApiAction::Read)?.id,
                auth.mode(),
                &page_request(limit.0, cursor.0)?,
            )
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        Ok(Json(WebhookEndpointList::from_page(page, out)))
    }

    /// Get a webhook endpoint
    #[oai(path = "/:id", method = "get")]
    async fn get(
        &self,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<Json<WebhookEndpointOut>, ApiError> {
        let record = self
            .0
            .store
            .webhook_endpoint_in(
                &auth.allowed(ApiAction::Read)?.id,
                auth.mode(),
                &endpoint_id(&id)?,
            )
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        Ok(Json(out(record)))
    }

    /// Change a webhook endpoint's URL, filter or state
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<WebhookEndpointPatch>,
    ) -> Result<Json<WebhookEndpointOut>, ApiError> {
        let tenant = &auth.allowed(ApiAction::ManageWebhooks)?.id;
        let id = endpoint_id(&id)?;
        let current = self
            .0
            .store
            .webhook_endpoint_in(tenant, auth.mode(), &id)
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        let body = body.0;
        let fields = endpoint_fields(
            EndpointInput {
                url: body.url.as_deref().unwrap_or(&current.fields.url),
                description: body
                    .description
                    .as_deref()
                    .or(current.fields.description.as_deref()),
                event_types: body
                    .event_types
                    .as_deref()
                    .unwrap_or(&current.fields.event_types),
                disabled: body.disabled.unwrap_or(current.fields.disabled),
            },
            self.0.network,
        )?;
        let record = self
            .0
            .store
            .update_webhook_endpoint(tenant, auth.mode(), &id, &fields)
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        Ok(Json(out(record)))
    }

    /// Rotate the signing secret
    ///
    /// Events are signed with both the new and the old secret for 24 hours, so
    /// receivers can switch without missing one.
    #[oai(path = "/:id/rotate-secret", method = "post")]
    async fn rotate_secret(
        &self,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<Json<WebhookEndpointWithSecret>, ApiError> {
        let record = self
            .0
            .store
            .rotate_webhook_secret(
                &auth.allowed(ApiAction::ManageWebhooks)?.id,
                auth.mode(),
                &endpoint_id(&id)?,
                &generate_secret(),
            )
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        Ok(Json(with_secret(record)))
    }

    /// List the endpoint's deliveries with every attempt, newest first
    #[oai(path = "/:id/deliveries", method = "get")]
    async fn deliveries(
        &self,
        auth: ApiKey,
        id: Path<String>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<DeliveryList>, ApiError> {
        let tenant = &auth.allowed(ApiAction::Read)?.id;
        let id = endpoint_id(&id)?;
        self.0
            .store
            .webhook_endpoint_in(tenant, auth.mode(), &id)
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        let page = self
            .0
            .store
            .list_deliveries(tenant, &id, &page_request(limit.0, cursor.0)?)
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        Ok(Json(DeliveryList::from_page(page, delivery_out)))
    }

    /// Send an event to the endpoint again
    ///
    /// The event is queued now with the same `webhook-id`, whatever happened to it
    /// before; the retry schedule starts over.
    #[oai(path = "/:id/redeliver", method = "post")]
    async fn redeliver(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<RedeliverIn>,
    ) -> Result<Json<RedeliverOut>, ApiError> {
        let id = endpoint_id(&id)?;
        self.0
            .store
            .redeliver(
                &auth.allowed(ApiAction::ManageWebhooks)?.id,
                auth.mode(),
                &id,
                &body.event_id,
            )
            .await
            .map_err(ApiError::from_store("webhook endpoint or event"))?;
        Ok(Json(RedeliverOut {
            event_id: body.0.event_id,
            endpoint_id: id.to_string(),
            status: "pending".into(),
        }))
    }

    /// Delete a webhook endpoint
    #[oai(path = "/:id", method = "delete")]
    async fn delete(&self, auth: ApiKey, id: Path<String>) -> Result<Deleted, ApiError> {
        self.0
            .store
            .delete_webhook_endpoint(
                &auth.allowed(ApiAction::ManageWebhooks)?.id,
                auth.mode(),
                &endpoint_id(&id)?,
            )
            .await
            .map_err(ApiError::from_store("webhook endpoint"))?;
        Ok(Deleted::Deleted)
    }
}
