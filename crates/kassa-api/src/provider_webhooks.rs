//! Stripe's webhook for one store and mode: `POST /{store}/webhooks/stripe` (live
//! mode) and `POST /{store}/test/webhooks/stripe` (test mode), the URLs a merchant
//! pastes into Stripe's dashboard. Not part of the merchant API (Stripe calls it, with
//! its own signature instead of a key), so not in the published document; its errors
//! are problem+json all the same.
//!
//! The signature is checked with the mode's signing secret before anything else of
//! the store is read (`kassa_orders::stripe_event`). Answers: 200 once acted on, for a
//! replayed event and for event types Kassa does not act on (so Stripe stops sending
//! them); 400 for a signature that does not verify or is stale and a body that is not
//! an event (nothing read); 404 for an unknown store or one without Stripe keys in
//! that mode; 422 for a genuine event the workflow refuses (another store's or an
//! unknown order, the other mode, another amount or currency), which Stripe retries
//! and shows the merchant as failing, while nothing is paid; 503 with `Retry-After`
//! when the database fails (Stripe retries). The 400s and 404s count against the
//! sender IP's `bad_provider_webhooks_per_ip` limit; past it they are a 429 with
//! `Retry-After`. Deliveries that verify are never counted nor limited.

use std::sync::Arc;

use kassa_domain::mode::Mode;
use kassa_limits::{Action, ClientAddr};
use kassa_orders::{OrdersError, ProviderEventError, ProviderEventOutcome};
use kassa_payments::provider::WebhookError;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, IntoResponse, Request, Response, handler};
use poem_openapi::payload::Json;

use crate::context::ApiContext;
use crate::error::{ApiError, Problem, RETRY_AFTER_UNAVAILABLE_SECS, unavailable_problem};

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
        &slug,
        *mode,
        signature,
        &body,
        now,
    )
    .await;
    let refused = match outcome {
        Ok(ProviderEventOutcome::Recorded(order)) => {
            return received(serde_json::json!({
                "received": true,
                "order": order.id,
                "status": order.status.as_str(),
            }));
        }
        Ok(ProviderEventOutcome::Replayed) => {
            return received(serde_json::json!({"received": true, "replayed": true}));
        }
        Ok(ProviderEventOutcome::Ignored(kind)) => {
            return received(serde_json::json!({"received": true, "ignored": kind}));
        }
        Err(ProviderEventError::UnknownStore) => {
            problem(StatusCode::NOT_FOUND, "not_found", "no such store")
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
            tracing::warn!(store = %slug, %mode, error = %e, "a Stripe webhook was refused");
            problem(StatusCode::BAD_REQUEST, kind, e.to_string())
        }
        Err(ProviderEventError::Refused(refused)) => {
            tracing::warn!(store = %slug, %mode, reason = %refused, "a Stripe event was refused");
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payment_refused",
                refused.to_string(),
            );
        }
        Err(ProviderEventError::Orders(OrdersError::Store(e))) => {
            // Stripe retries: the event is acted on once the database answers again.
            tracing::error!(error = %e, "a Stripe webhook could not be handled: the database failed");
            return ApiError::Unavailable(
                Json(unavailable_problem()),
                RETRY_AFTER_UNAVAILABLE_SECS,
            )
            .into_response();
        }
        Err(ProviderEventError::ProviderUnavailable(detail)) => {
            // Stripe retries: the money goes back once Stripe answers again.
            tracing::error!(store = %slug, %mode, error = %detail, "a Stripe webhook could not be handled: Stripe did not answer");
            return ApiError::Unavailable(
                Json(unavailable_problem()),
                RETRY_AFTER_UNAVAILABLE_SECS,
            )
            .into_response();
        }
        Err(ProviderEventError::Orders(OrdersError::Conflict(detail))) => {
            return problem(StatusCode::CONFLICT, "conflict", detail);
        }
        Err(ProviderEventError::Orders(e)) => return internal(e),
    };
    // Not verified, or for a store or mode that takes no Stripe webhook: counted
    // against the sender's address, and past the limit refused as such.
    let ip = req
        .extensions()
        .get::<ClientAddr>()
        .map(|ClientAddr(ip)| *ip)
        .or_else(|| req.remote_addr().as_socket_addr().map(|a| a.ip()));
    match ctx.limits.check(Action::BadProviderWebhook { ip }) {
        Ok(()) => refused,
        Err(too_many) => ApiError::from(too_many).into_response(),
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
