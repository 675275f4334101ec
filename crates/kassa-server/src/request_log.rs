//! What a served request leaves in the log, decided here and nowhere else.
//!
//! A line per request: the method, the route's pattern (`/:tenant/orders/:token`),
//! the status and the time taken. Never the request's path or query: paths carry
//! capability tokens (an order token opens its license page) and buy links carry
//! signatures, emails and custom data. A request that matched no route is logged as
//! such, without its path.
//!
//! Each request gets an id (`req_<ulid>`), logged on its line, sent back in
//! `X-Request-Id`, and carried into the jobs the request writes
//! (`kassa_store::RequestId`), whose workers log it with each webhook attempt, email
//! and delivery.

use std::time::Instant;

use kassa_store::RequestId;
use poem::{Endpoint, IntoResponse, PathPattern, Request, Response};
use tracing::Instrument;

/// Logged in place of the pattern when no route matched.
const NO_ROUTE: &str = "(no route)";

/// Logs one line per request, at INFO (WARN for a server error).
pub(crate) async fn log_request<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let method = req.method().clone();
    let started = Instant::now();
    let id = RequestId::generate();
    let span = tracing::info_span!("request", request_id = %id);
    let mut result = id
        .clone()
        .scope(next.call(req).instrument(span))
        .await
        .map(IntoResponse::into_response);
    if let Ok(resp) = &mut result
        && let Ok(value) = poem::http::HeaderValue::from_str(id.as_str())
    {
        resp.headers_mut().insert("x-request-id", value);
    }
    let (status, pattern) = match &result {
        Ok(resp) => (resp.status(), resp.data::<PathPattern>()),
        Err(err) => (err.status(), err.data::<PathPattern>()),
    };
    let route = pattern.map_or(NO_ROUTE, |p| &p.0);
    let took = started.elapsed();
    metrics::counter!("kassa_http_requests_total", "route" => route.to_owned(), "status" => status.as_str().to_owned())
        .increment(1);
    metrics::histogram!("kassa_http_request_seconds", "route" => route.to_owned())
        .record(took.as_secs_f64());
    let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    if status.is_server_error() {
        tracing::warn!(request_id = %id, %method, route, status = status.as_u16(), duration_ms, "request");
    } else {
        tracing::info!(request_id = %id, %method, route, status = status.as_u16(), duration_ms, "request");
    }
    result
}
