//! `Idempotency-Key` on POST: the first response for a key is kept for 24 hours and
//! replayed for a retry with the same request; the same key with another request is
//! a 409. A 5xx is not kept, so a request Kassa failed can be retried.

use kassa_store::{IdempotencyStart, Store};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use sha2::{Digest, Sha256};

use crate::auth::authenticate;
use crate::error::{Problem, to_problem};

pub struct Idempotency {
    store: Store,
}

impl Idempotency {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl<E: Endpoint> Middleware<E> for Idempotency {
    type Output = IdempotencyEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        IdempotencyEndpoint {
            inner,
            store: self.store.clone(),
        }
    }
}

pub struct IdempotencyEndpoint<E> {
    inner: E,
    store: Store,
}

fn problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    Problem::new(status, kind, Some(detail.to_owned())).into_http()
}

impl<E: Endpoint> Endpoint for IdempotencyEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let key = req
            .headers()
            .get("idempotency-key")
            .map(|v| v.to_str().map(str::to_owned));
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let (Some(key), Some(token), true) = (key, token, req.method() == Method::POST) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let key = match key {
            Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => k,
            _ => {
                return Ok(problem(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                ));
            }
        };
        let tenant = authenticate(&self.store, &token).await?;
        req.extensions_mut().insert(tenant.clone());
        let body = req.take_body().into_bytes().await?;
        let mut hash = Sha256::new();
        hash.update(req.method().as_str());
        hash.update([0]);
        hash.update(req.uri().to_string());
        hash.update([0]);
        hash.update(req.content_type().unwrap_or_default());
        hash.update([0]);
        hash.update(&body);
        let fingerprint = hex::encode(hash.finalize());
        let tenant_id = tenant.0.id.clone();
        let start = self
            .store
            .start_idempotency(&tenant_id, &key, &fingerprint)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "idempotency lookup failed");
                poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)
            })?;
        match start {
            IdempotencyStart::Replay {
                status,
                content_type,
                body,
            } => {
                let mut resp = Response::builder()
                    .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                    .header("idempotent-replayed", "true");
                if let Some(ct) = content_type {
                    resp = resp.content_type(ct);
                }
                Ok(resp.body(body))
            }
            IdempotencyStart::Mismatch => Ok(problem(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            )),
            IdempotencyStart::InProgress => Ok(problem(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )),
            IdempotencyStart::Proceed => {
                req.set_body(body);
                let resp = match self.inner.call(req).await {
                    Ok(r) => r.into_response(),
                    Err(e) => to_problem(e).await,
                };
                let status = resp.status();
                let content_type = resp.content_type().map(str::to_owned);
                let (parts, body) = resp.into_parts();
                let bytes = body.into_bytes().await?;
                let stored = if status.is_server_error() {
                    self.store.abandon_idempotency(&tenant_id, &key).await
                } else {
                    self.store
                        .finish_idempotency(
                            &tenant_id,
                            &key,
                            status.as_u16(),
                            content_type.as_deref(),
                            &String::from_utf8_lossy(&bytes),
                        )
                        .await
                };
                if let Err(e) = stored {
                    tracing::error!(error = %e, "storing an idempotent response failed");
                }
                Ok(Response::from_parts(parts, bytes.into()))
            }
        }
    }
}
