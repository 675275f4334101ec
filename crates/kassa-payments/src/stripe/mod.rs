//! Stripe, through PaymentIntents confirmed on Kassa's own pay page: Kassa creates a
//! PaymentIntent for the order's total, the pay page's card Element (Stripe.js)
//! confirms it with the card (and 3-D Secure) without the card touching Kassa, and the
//! order is paid when Stripe's signed `payment_intent.succeeded` webhook arrives,
//! never because the page said so. Plain reqwest against the documented REST API
//! (`https://api.stripe.com/v1`, form-encoded, `Authorization: Bearer <key>`,
//! `Idempotency-Key` on every POST); the wire types are in `transformers`.

mod signature;
mod transformers;

use std::time::Duration;

use kassa_domain::Secret;

use crate::provider::{
    CreatedPayment, CreatedRefund, PaymentProvider, PaymentRequest, ProviderError, ProviderEvent,
    WebhookError,
};
pub use signature::{TOLERANCE_SECS, sign, verify};
use transformers::{ErrorBody, Event, PaymentIntent, Refund};

/// Stripe's API.
pub const API_BASE: &str = "https://api.stripe.com";

/// Stripe.js, which the pay page loads to confirm a PaymentIntent with the card.
pub const JS_URL: &str = "https://js.stripe.com/v3/";

/// A store's Stripe account in one mode: its (restricted) secret key and the signing
/// secret of its webhook endpoint. Neither prints.
#[derive(Debug, Clone)]
pub struct Stripe {
    api_base: String,
    secret_key: Secret,
    webhook_secret: Secret,
    http: reqwest::Client,
}

impl Stripe {
    /// `api_base` is Stripe's (`API_BASE`) or a stand-in's; `timeout` bounds every
    /// call, so a slow Stripe is an `Unavailable` the caller may retry.
    pub fn new(
        api_base: &str,
        secret_key: Secret,
        webhook_secret: Secret,
        timeout: Duration,
    ) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok(Self {
            api_base: api_base.trim_end_matches('/').to_owned(),
            secret_key,
            webhook_secret,
            http,
        })
    }

    /// Whether a key is Stripe's test mode key (`sk_test_…`, `rk_test_…`), which
    /// must go with a Kassa test mode order, or a live one.
    pub fn is_test_key(key: &str) -> bool {
        kassa_domain::tenant::is_stripe_test_key(key)
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<T, ProviderError> {
        let request = self
            .http
            .post(format!("{}{path}", self.api_base))
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        self.send(request).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ProviderError> {
        self.send(self.http.get(format!("{}{path}", self.api_base)))
            .await
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let resp = request
            .bearer_auth(self.secret_key.expose_secret())
            .header("Stripe-Version", "2024-06-20")
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(without_url(&e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(without_url(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ProviderError::Unavailable(format!("unreadable answer: {e}")));
        }
        // Stripe's 429 and 5xx are worth retrying (with the same idempotency key).
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(ProviderError::Unavailable(format!(
                "Stripe answered {status}"
            )));
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => Err(e.error.refused()),
            Err(_) => Err(ProviderError::Refused {
                code: format!("http_{}", status.as_u16()),
                message: "Stripe refused the request.".into(),
            }),
        }
    }
}

/// A reqwest error's text without its URL (which names nothing secret today, but a
/// stand-in's may carry a key in its query).
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "Stripe did not answer in time".into()
    } else if e.is_connect() {
        "Stripe could not be reached".into()
    } else {
        "the request to Stripe failed".into()
    }
}

/// Reads a webhook to an endpoint whose signing secret is `webhook_secret`: the
/// signature is checked (at `now`, Unix seconds) before a byte of the body is read.
/// Needs nothing but the signing secret, so the webhook route checks it before it
/// reads anything else of the store.
pub fn read_event(
    webhook_secret: &Secret,
    signature_header: &str,
    body: &[u8],
    now: i64,
) -> Result<ProviderEvent, WebhookError> {
    verify(webhook_secret.expose_secret(), signature_header, body, now)?;
    let event: Event =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    event.provider_event()
}

impl PaymentProvider for Stripe {
    async fn create_payment(
        &self,
        request: &PaymentRequest,
    ) -> Result<CreatedPayment, ProviderError> {
        let form = transformers::payment_intent_form(request);
        self.post::<PaymentIntent>("/v1/payment_intents", &form, &request.idempotency_key)
            .await?
            .created()
    }

    async fn payment(&self, reference: &str) -> Result<CreatedPayment, ProviderError> {
        // An id Kassa recorded from Stripe's own answer; checked anyway, so it can
        // only name a PaymentIntent.
        if !reference.starts_with("pi_")
            || !reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ProviderError::Refused {
                code: "resource_missing".into(),
                message: "not a PaymentIntent".into(),
            });
        }
        self.get::<PaymentIntent>(&format!("/v1/payment_intents/{reference}"))
            .await?
            .created()
    }

    fn event(
        &self,
        signature_header: &str,
        body: &[u8],
        now: i64,
    ) -> Result<ProviderEvent, WebhookError> {
        read_event(&self.webhook_secret, signature_header, body, now)
    }

    async fn refund(
        &self,
        charge_reference: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<CreatedRefund, ProviderError> {
        // Stripe refunds a PaymentIntent (`pi_…`, what Kassa makes) or a Charge
        // (`ch_…`).
        let by = if charge_reference.starts_with("ch_") {
            "charge"
        } else {
            "payment_intent"
        };
        let form = vec![
            (by.to_owned(), charge_reference.to_owned()),
            ("amount".to_owned(), amount.to_string()),
        ];
        self.post::<Refund>("/v1/refunds", &form, idempotency_key)
            .await?
            .created()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Outcome;

    fn stripe() -> Stripe {
        Stripe::new(
            API_BASE,
            Secret::from("sk_test_secret_key"),
            Secret::from("whsec_endpoint"),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    const EVENT: &str = r#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","livemode":true,
        "data":{"object":{"id":"pi_1","object":"payment_intent","amount":1999,"amount_received":1999,
        "currency":"eur","metadata":{"order_id":"ord_1","tenant_id":"ten_1"},"status":"succeeded"}}}"#;

    #[test]
    fn a_signed_event_is_read_and_nothing_else_is() {
        let s = stripe();
        let header = sign("whsec_endpoint", 1_700_000_000, EVENT.as_bytes());
        let Ok(ProviderEvent::Payment(event)) = s.event(&header, EVENT.as_bytes(), 1_700_000_030)
        else {
            panic!("a payment event")
        };
        assert_eq!(
            (event.amount, event.currency.as_str(), event.livemode),
            (1999, "EUR", true)
        );
        assert_eq!(event.outcome, Outcome::Succeeded);
        assert_eq!(event.order_id.as_deref(), Some("ord_1"));
        // Signed with another endpoint's secret, or tampered with, or replayed late.
        let other = sign("whsec_other", 1_700_000_000, EVENT.as_bytes());
        assert_eq!(
            s.event(&other, EVENT.as_bytes(), 1_700_000_030),
            Err(WebhookError::BadSignature)
        );
        let tampered = EVENT.replace("1999", "1");
        assert_eq!(
            s.event(&header, tampered.as_bytes(), 1_700_000_030),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            s.event(&header, EVENT.as_bytes(), 1_700_003_600),
            Err(WebhookError::Stale)
        );
        // Genuine but not JSON of an event.
        let junk = sign("whsec_endpoint", 1_700_000_000, b"[]");
        assert!(matches!(
            s.event(&junk, b"[]", 1_700_000_000),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn keys_never_print() {
        let shown = format!("{:?}", stripe());
        assert!(!shown.contains("sk_test_secret_key"), "{shown}");
        assert!(!shown.contains("whsec_endpoint"), "{shown}");
    }

    #[test]
    fn test_keys_are_told_from_live_ones() {
        assert!(Stripe::is_test_key("sk_test_1") && Stripe::is_test_key("rk_test_1"));
        assert!(!Stripe::is_test_key("sk_live_1") && !Stripe::is_test_key("rk_live_1"));
    }
}
