//! `/events`: every event of the store, newest first, for replay and reconciliation.
//! Each carries the same payload its webhooks carried.

use kassa_domain::access::ApiAction;
use kassa_domain::event::EventKind;
use kassa_store::EventRecord;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct EventsApi(pub ApiContext);

#[derive(Debug, Object)]
pub struct EventOut {
    /// `evt_…`; also the `webhook-id` of its webhooks.
    pub id: String,
    /// e.g. `order.created`.
    #[oai(rename = "type")]
    pub kind: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The envelope sent as the webhook body: `{"id", "type", "timestamp", "data"}`.
    pub payload: serde_json::Value,
}

list_type!(EventList, EventOut);

pub(crate) fn out(e: EventRecord) -> EventOut {
    EventOut {
        id: e.id,
        kind: e.kind,
        created_at: e.created_at.0,
        payload: e.payload,
    }
}

#[OpenApi(prefix_path = "/events", tag = "crate::context::Tag::Events")]
impl EventsApi {
    /// List events, newest first
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
        /// Only events of this type.
        #[oai(name = "type")]
        kind: Query<Option<String>>,
    ) -> Result<Json<EventList>, ApiError> {
        if let Some(k) = &kind.0
            && EventKind::from_name(k).is_none()
        {
            return Err(kassa_domain::Invalid::field(
                "type",
                format!("is not an event type; known: {}", EventKind::names()),
            )
            .into());
        }
        let page = self
            .0
            .store
            .list_events(
                &auth.allowed(ApiAction::Read)?.id,
                auth.mode(),
                kind.0.as_deref(),
                &page_request(limit.0, cursor.0)?,
            )
            .await
            .map_err(ApiError::from_store("event"))?;
        Ok(Json(EventList::from_page(page, out)))
    }

    /// Get an event
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<EventOut>, ApiError> {
        let record = self
            .0
            .store
            .event(&auth.allowed(ApiAction::Read)?.id, &id)
            .await
            .map_err(ApiError::from_store("event"))?;
        // The other mode's events are not this key's to see.
        if record.livemode != auth.mode().is_live() {
            return Err(ApiError::not_found("event"));
        }
        Ok(Json(out(record)))
    }
}
