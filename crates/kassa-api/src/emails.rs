//! `/emails`: the store's email outbox: what was sent to customers, and what is kept
//! because no SMTP server is configured. A key sees its own mode's orders' emails
//! (and the merchant's emails about no order), never another mode's.

use kassa_domain::access::ApiAction;
use kassa_store::EmailRecord;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct EmailsApi(pub ApiContext);

#[derive(Debug, Object)]
pub struct EmailOut {
    /// `eml_…`
    pub id: String,
    /// `payment_instructions`, `payment_succeeded` or `payment_failed`.
    pub kind: String,
    pub order_id: Option<String>,
    pub to: String,
    /// `queued` (to be sent), `sent`, `kept` (no SMTP configured; sent once it is) or
    /// `failed` (refused for good, or the order's personal data was erased).
    pub status: String,
    /// Rendered when the email is sent or kept.
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

list_type!(EmailList, EmailOut);

fn out(e: EmailRecord) -> EmailOut {
    EmailOut {
        id: e.id,
        kind: e.kind,
        order_id: e.order_id,
        to: e.to_address,
        status: e.status,
        subject: e.subject,
        text_body: e.text_body,
        html_body: e.html_body,
        attempts: e.attempts,
        last_error: e.last_error,
        sent_at: e.sent_at.map(|at| at.0),
        created_at: e.created_at.0,
    }
}

#[OpenApi(prefix_path = "/emails", tag = "crate::context::Tag::Emails")]
impl EmailsApi {
    /// List emails, newest first
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<EmailList>, ApiError> {
        let page = self
            .0
            .store
            .list_emails(
                &auth.allowed(ApiAction::Read)?.id,
                auth.mode(),
                &page_request(limit.0, cursor.0)?,
            )
            .await
            .map_err(ApiError::from_store("email"))?;
        Ok(Json(EmailList::from_page(page, out)))
    }
}
