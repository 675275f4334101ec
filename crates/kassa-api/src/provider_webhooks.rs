//! Stripe's webhook for one store and mode: `POST /{store}/webhooks/stripe` (live
//! mode) and `POST /{store}/test/webhooks/stripe` (test mode), the URLs a merchant
//! pastes into Stripe's dashboard. Not part of the merchant API (Stripe calls it, with
//! its own signature instead of a key), so not in the published document; its errors
//! are problem+json all the same.
//!
//! Answers: 200 once acted on, for a replayed event and for event types Kassa does not
//! act on (so Stripe stops sending them); 400 for a signature that does not verify or
//! is stale and a body that is not an event (nothing read); 404 for a store without
//! Stripe keys in that mode; 422 for a genuine event the workflow refuses (another
//! store's or an unknown order, the other mode, another amount or currency), which
//! Stripe retries and shows the merchant as failing, while nothing is paid.

use std::sync::Arc;

use kassa_domain::mode::Mode;
use kassa_orders::{ProviderEventError, ProviderEventOutcome};
use kassa_payments::provider::WebhookError;
use kassa_store::StoreError;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use crate::context::ApiContext;
use crate::error::Problem;

fn problem(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response {
    Problem::new(status, kind, Some(detail.into())).into_http()
}

fn received(body: serde_json::Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
pub async fn stripe(
    req: &Request,
    body: Body,
    Path(slug): Path<String>,
    Data(ctx): Data<&Arc<ApiContext>>,
    Data(mode): Data<&Mode>,
) -> Response {
    let tenant = match ctx.store.tenant_by_slug(&slug).await {
        Ok(tenant) => tenant,
        Err(StoreError::NotFound) => {
            return problem(StatusCode::NOT_FOUND, "not_found", "no such store");
        }
        Err(e) => return internal(e),
    };
    let Ok(body) = body.into_vec().await else {
        return problem(
            StatusCode::BAD_REQUEST,
            "malformed_event",
            "the body could not be read",
        );
    };
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let outcome = kassa_orders::stripe_event(
        &ctx.store,
        &ctx.providers,
        &tenant,
        *mode,
        signature,
        &body,
        now,
    )
    .await;
    match outcome {
        Ok(ProviderEventOutcome::Recorded(order)) => received(serde_json::json!({
            "received": true,
            "order": order.id,
            "status": order.status.as_str(),
        })),
        Ok(ProviderEventOutcome::Replayed) => {
            received(serde_json::json!({"received": true, "replayed": true}))
        }
        Ok(ProviderEventOutcome::Ignored(kind)) => {
            received(serde_json::json!({"received": true, "ignored": kind}))
        }
        Err(e @ ProviderEventError::NotSetUp(_)) => problem(
            StatusCode::NOT_FOUND,
            "stripe_not_configured",
            e.to_string(),
        ),
        Err(ProviderEventError::Unverified(e)) => {
            let kind = match e {
                WebhookError::BadSignature => "invalid_signature",
                WebhookError::Stale => "stale_signature",
                _ => "malformed_event",
            };
            tracing::warn!(store = %tenant.id, %mode, error = %e, "a Stripe webhook was refused");
            problem(StatusCode::BAD_REQUEST, kind, e.to_string())
        }
        Err(ProviderEventError::Refused(refused)) => {
            tracing::warn!(store = %tenant.id, %mode, reason = %refused, "a Stripe payment was refused");
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payment_refused",
                refused.to_string(),
            )
        }
        Err(ProviderEventError::Orders(e)) => internal(e),
    }
}

/// A server fault: logged with its cause, answered as an opaque 500 (Stripe retries).
fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "a Stripe webhook failed");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "something went wrong; it has been logged",
    )
}
