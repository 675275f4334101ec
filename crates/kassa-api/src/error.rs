//! The API's one error type and its `application/problem+json` form (RFC 9457).
//!
//! Policy: a client mistake is a 4xx that says what to fix (with the list of invalid
//! fields for validation); a server fault is logged with its cause and returned as an
//! opaque 500, so no internals or secrets leak into responses. A database that cannot
//! be reached (restarting, down, or no connection free within the pool's acquire
//! timeout) is a 503 `unavailable` with `Retry-After`: the client may send the same
//! request again, and nothing was done.

use kassa_domain::Invalid;
use kassa_domain::access::KeyScope;
use kassa_orders::OrdersError;
use kassa_store::StoreError;
use poem::Response;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field.
#[derive(Debug, Clone, Object)]
pub struct FieldProblem {
    /// Path of the field in the request, e.g. `prices[0].currency`.
    pub field: String,
    pub message: String,
}

/// An error, as RFC 9457 problem details.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A stable identifier of the kind of problem, e.g. `validation_error`.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// The invalid fields, for `validation_error`; empty for other problems. Always
    /// present, so every problem has one shape.
    pub errors: Vec<FieldProblem>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: Option<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            errors: Vec::new(),
        }
    }

    /// The problem as a response with the right status and content type.
    pub fn into_http(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // The same serialization as the typed responses, so the document holds.
        let body = poem_openapi::types::ToJSON::to_json_string(&self);
        Response::builder()
            .status(status)
            .content_type(PROBLEM_JSON)
            .body(body)
    }
}

/// Every error an endpoint returns.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// The request could not be read: malformed JSON, wrong types, unknown fields.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No valid API key.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The API key's scope does not allow this; `detail` names the scope needed.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such object in this store.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the current state (a code already in use, an
    /// idempotency key reused with another body).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request was read but some fields are invalid; see `errors`.
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    /// Too many requests of this kind (the store's orders); try again after
    /// `Retry-After` seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// Kassa failed; the cause is in the server log.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// The database cannot be reached right now; nothing was done. Send the same
    /// request again after `Retry-After` seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] u64),
}

/// What a 503 asks the client to wait, in seconds.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 2;

/// The problem of a 503: the database cannot be reached, try again.
pub(crate) fn unavailable_problem() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        Some(format!(
            "Kassa cannot reach its database right now; nothing was done. \
             Retry after {RETRY_AFTER_UNAVAILABLE_SECS} seconds."
        )),
    )
}

fn bad_request(err: poem::Error) -> ApiError {
    ApiError::BadRequest(Json(Problem::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        Some(err.to_string()),
    )))
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(Json(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            Some(format!("no such {what}")),
        )))
    }

    /// A key of scope `has` asked for what needs `needs`.
    pub fn forbidden(has: KeyScope, needs: KeyScope) -> Self {
        ApiError::Forbidden(Json(Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some(format!(
                "this API key's scope is `{has}`; this request needs a `{needs}` key"
            )),
        )))
    }

    /// A test key asked to change what both modes share (the store's settings, secrets
    /// and plugins) or to read the settings.
    pub fn live_key_required() -> Self {
        ApiError::Forbidden(Json(Problem::new(
            StatusCode::FORBIDDEN,
            "live_key_required",
            Some(
                "the store's settings, signing secrets and plugins serve test and live mode \
                 alike, so they are changed with a live key (or in the dashboard), never a test \
                 key; a test key does not read the settings either"
                    .to_owned(),
            ),
        )))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::Conflict(Json(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            Some(detail.into()),
        )))
    }

    /// Maps a storage error, naming the object a 404 is about.
    pub fn from_store(what: &'static str) -> impl FnOnce(StoreError) -> ApiError {
        move |e| match e {
            StoreError::NotFound => ApiError::not_found(what),
            StoreError::Conflict(detail) => ApiError::conflict(detail),
            other => ApiError::store_failed(other),
        }
    }

    /// A storage failure: 503 when the database cannot be reached now, else 500.
    #[track_caller]
    pub fn store_failed(err: StoreError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            ApiError::Unavailable(Json(unavailable_problem()), RETRY_AFTER_UNAVAILABLE_SECS)
        } else {
            ApiError::internal(err)
        }
    }

    /// Maps what a use case of `kassa-orders` refused, `what` naming the object.
    pub fn from_orders(what: &'static str) -> impl FnOnce(OrdersError) -> ApiError {
        move |e| match e {
            OrdersError::Invalid(invalid) => invalid.into(),
            OrdersError::NotFound => ApiError::not_found(what),
            OrdersError::Refused(refused) => ApiError::conflict(refused.to_string()),
            OrdersError::Conflict(detail) => ApiError::conflict(detail),
            OrdersError::Store(e) => ApiError::store_failed(e),
        }
    }

    #[track_caller]
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let at = std::panic::Location::caller();
        tracing::error!(error = %err, location = %at, "internal error");
        ApiError::Internal(Json(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            Some("Kassa failed to handle this request; it has been logged.".into()),
        )))
    }
}

impl From<kassa_limits::TooMany> for ApiError {
    fn from(refused: kassa_limits::TooMany) -> Self {
        let secs = refused.retry_after_secs();
        ApiError::TooManyRequests(
            Json(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Some(format!(
                    "too many requests of this kind; retry after {secs} seconds"
                )),
            )),
            secs,
        )
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            Some("Some fields are invalid.".into()),
        );
        problem.errors = invalid
            .errors
            .into_iter()
            .map(|e| FieldProblem {
                field: e.field,
                message: e.message,
            })
            .collect();
        ApiError::Invalid(Json(problem))
    }
}

/// Turns any error response that is not already problem+json (an unknown path, a
/// missing key, a body too large) into one, so clients parse one error shape.
pub async fn to_problem(err: poem::Error) -> Response {
    let response = err.into_response();
    let is_problem = response
        .content_type()
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON));
    if is_problem {
        return response;
    }
    let status = response.status();
    let detail = response
        .into_body()
        .into_string()
        .await
        .ok()
        .filter(|s| !s.is_empty());
    let kind = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => {
            // The API key or idempotency lookup could not reach the database.
            let mut resp = unavailable_problem().into_http();
            resp.headers_mut().insert(
                poem::http::header::RETRY_AFTER,
                RETRY_AFTER_UNAVAILABLE_SECS.into(),
            );
            return resp;
        }
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let detail =
        if status == StatusCode::UNAUTHORIZED && detail.as_deref() == Some("authorization error") {
            Some("send an API key as `Authorization: Bearer <api key>`".to_owned())
        } else if status.is_server_error() {
            tracing::error!(detail = ?detail, "internal error");
            Some("Kassa failed to handle this request; it has been logged.".to_owned())
        } else {
            detail
        };
    Problem::new(status, kind, detail).into_http()
}
