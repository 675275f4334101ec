//! `Idempotency-Key` on POST: the first response for a key is kept for 24 hours and
//! replayed for a retry with the same request; the same key with another request is
//! a 409. A 5xx is not kept, so a request Kassa failed can be retried.
//!
//! Some answers carry a secret shown once (a new API key, a `whsec_` secret) or a
//! customer's personal data, so the kept answer is sealed (ChaCha20-Poly1305) under a key
//! derived from the caller's API key and the idempotency key. Kassa keeps API keys only
//! hashed: whoever reads the database cannot open it, while the same caller's retry gets
//! the whole first answer, secret included, as Stripe's and Svix's clients expect. A key
//! is one caller's: another API key of the store reusing it gets a 409.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kassa_domain::ids::TenantId;
use kassa_store::{IdempotencyStart, Store};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
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

/// The key one kept answer is sealed with: HMAC-SHA256 of the tenant and the
/// idempotency key under the caller's API key.
struct Seal(LessSafeKey);

impl Seal {
    fn new(api_key: &str, tenant: &TenantId, idempotency_key: &str) -> Self {
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, api_key.as_bytes()),
            format!("kassa idempotency v1\0{tenant}\0{idempotency_key}").as_bytes(),
        );
        let key = UnboundKey::new(&CHACHA20_POLY1305, mac.as_ref())
            .expect("an HMAC-SHA256 tag is a ChaCha20 key's length");
        Self(LessSafeKey::new(key))
    }

    /// `body` sealed, bound to the request's fingerprint, as base64 of nonce and
    /// ciphertext.
    fn seal(&self, fingerprint: &str, body: &[u8]) -> Result<String, ring::error::Unspecified> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce)?;
        let mut sealed = body.to_vec();
        self.0.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(fingerprint.as_bytes()),
            &mut sealed,
        )?;
        Ok(BASE64.encode([nonce.as_slice(), &sealed].concat()))
    }

    fn open(&self, fingerprint: &str, kept: &str) -> Option<Vec<u8>> {
        let kept = BASE64.decode(kept).ok()?;
        let (nonce, sealed) = kept.split_at_checked(NONCE_LEN)?;
        let mut sealed = sealed.to_vec();
        let body = self
            .0
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(fingerprint.as_bytes()),
                &mut sealed,
            )
            .ok()?;
        Some(body.to_vec())
    }
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
        let authed = authenticate(&self.store, &token).await?;
        let tenant_id = authed.tenant.id.clone();
        let caller = authed.key.id.clone();
        req.extensions_mut().insert(authed);
        let body = req.take_body().into_bytes().await?;
        let mut hash = Sha256::new();
        // One caller's key: another API key's retry could not open the kept answer.
        hash.update(caller.as_str());
        hash.update([0]);
        hash.update(req.method().as_str());
        hash.update([0]);
        hash.update(req.uri().to_string());
        hash.update([0]);
        hash.update(req.content_type().unwrap_or_default());
        hash.update([0]);
        hash.update(&body);
        let fingerprint = hex::encode(hash.finalize());
        let seal = Seal::new(&token, &tenant_id, &key);
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
                let Some(body) = seal.open(&fingerprint, &body) else {
                    tracing::error!("a kept idempotent answer does not open");
                    return Ok(problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "Kassa failed to handle this request; it has been logged.",
                    ));
                };
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
                let sealed = seal.seal(&fingerprint, &bytes);
                let stored = match sealed {
                    Ok(sealed) if !status.is_server_error() => {
                        self.store
                            .finish_idempotency(
                                &tenant_id,
                                &key,
                                status.as_u16(),
                                content_type.as_deref(),
                                &sealed,
                            )
                            .await
                    }
                    _ => self.store.abandon_idempotency(&tenant_id, &key).await,
                };
                if let Err(e) = stored {
                    tracing::error!(error = %e, "storing an idempotent response failed");
                }
                Ok(Response::from_parts(parts, bytes.into()))
            }
        }
    }
}
