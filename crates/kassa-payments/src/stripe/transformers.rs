//! Stripe's own wire types (what its REST API and webhooks send) and their
//! conversions to and from the provider interface's. Only the fields Kassa reads are
//! declared; Stripe adds fields freely.

use serde::Deserialize;

use crate::provider::{
    CreatedPayment, CreatedRefund, Outcome, PaymentEvent, PaymentRequest, ProviderError,
    WebhookError,
};

/// The form fields of `POST /v1/checkout/sessions` for one order: one line of the
/// order's total (Kassa has priced the order; Stripe only takes the money), the
/// order and store in `client_reference_id` and `metadata`, on the session and on
/// its PaymentIntent.
pub fn checkout_session_form(r: &PaymentRequest) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = [
        ("mode", "payment".to_owned()),
        ("success_url", r.success_url.clone()),
        ("cancel_url", r.cancel_url.clone()),
        ("client_reference_id", r.order_id.clone()),
        ("line_items[0][quantity]", "1".to_owned()),
        (
            "line_items[0][price_data][currency]",
            r.amount.currency.code().to_ascii_lowercase(),
        ),
        (
            "line_items[0][price_data][unit_amount]",
            r.amount.amount.to_string(),
        ),
        (
            "line_items[0][price_data][product_data][name]",
            r.description.clone(),
        ),
        ("metadata[order_id]", r.order_id.clone()),
        ("metadata[tenant_id]", r.tenant_id.clone()),
        (
            "payment_intent_data[metadata][order_id]",
            r.order_id.clone(),
        ),
        (
            "payment_intent_data[metadata][tenant_id]",
            r.tenant_id.clone(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(email) = &r.customer_email {
        form.push(("customer_email".into(), email.clone()));
    }
    form
}

/// A Checkout Session as Stripe returns it and as webhooks carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// `paid`, `unpaid` (an asynchronous method still on its way) or
    /// `no_payment_required`.
    pub payment_status: Option<String>,
    /// The PaymentIntent's id (or the object when expanded).
    pub payment_intent: Option<serde_json::Value>,
}

impl CheckoutSession {
    pub fn created(self) -> Result<CreatedPayment, ProviderError> {
        let url = self
            .url
            .ok_or_else(|| ProviderError::Unavailable("the session has no url".into()))?;
        Ok(CreatedPayment {
            reference: self.id,
            redirect_url: url,
            livemode: self.livemode,
        })
    }

    fn payment_intent_id(&self) -> Option<String> {
        match &self.payment_intent {
            Some(serde_json::Value::String(id)) => Some(id.clone()),
            Some(serde_json::Value::Object(o)) => o.get("id")?.as_str().map(str::to_owned),
            _ => None,
        }
    }
}

/// A webhook event. `data.object` is read as a Checkout Session for the types Kassa
/// acts on.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub livemode: bool,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

impl Event {
    /// The payment event it reports: a completed (and paid) session or an
    /// asynchronous payment that succeeded pays; an asynchronous payment that failed
    /// fails; an expired session ends its attempt; anything else is not Kassa's to act
    /// on.
    pub fn payment_event(self) -> Result<PaymentEvent, WebhookError> {
        let outcome = match self.kind.as_str() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                Outcome::Succeeded
            }
            "checkout.session.async_payment_failed" => Outcome::Failed {
                code: "payment_failed".into(),
                message: "The payment did not go through.".into(),
            },
            "checkout.session.expired" => Outcome::Expired,
            other => return Err(WebhookError::Ignored(other.to_owned())),
        };
        let session: CheckoutSession = serde_json::from_value(self.data.object)
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        // A completed session whose money is still on its way (a bank debit) pays
        // nothing yet: `async_payment_succeeded` follows.
        if outcome == Outcome::Succeeded && session.payment_status.as_deref() != Some("paid") {
            return Err(WebhookError::Ignored(format!(
                "{} ({})",
                self.kind,
                session
                    .payment_status
                    .as_deref()
                    .unwrap_or("no payment status")
            )));
        }
        let (Some(amount), Some(currency)) = (session.amount_total, session.currency.clone())
        else {
            return Err(WebhookError::Malformed(
                "the session has no amount or currency".into(),
            ));
        };
        Ok(PaymentEvent {
            event_id: self.id,
            charge_reference: session.payment_intent_id(),
            order_id: session
                .metadata
                .get("order_id")
                .cloned()
                .or(session.client_reference_id.clone()),
            tenant_id: session.metadata.get("tenant_id").cloned(),
            reference: session.id,
            amount,
            currency: currency.to_ascii_uppercase(),
            livemode: self.livemode,
            outcome,
        })
    }
}

/// A Refund as Stripe returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub status: String,
}

impl Refund {
    pub fn created(self) -> Result<CreatedRefund, ProviderError> {
        match self.status.as_str() {
            "failed" | "canceled" => Err(ProviderError::Refused {
                code: format!("refund_{}", self.status),
                message: "Stripe did not make the refund.".into(),
            }),
            status => Ok(CreatedRefund {
                succeeded: status == "succeeded",
                reference: self.id,
                amount: self.amount,
            }),
        }
    }
}

/// Stripe's error body: `{"error": {"type", "code", "message"}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorDetail {
    pub fn refused(self) -> ProviderError {
        ProviderError::Refused {
            code: self
                .code
                .or(self.kind)
                .unwrap_or_else(|| "stripe_error".into()),
            message: self
                .message
                .unwrap_or_else(|| "Stripe refused the request.".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completed(payment_status: &str) -> Event {
        serde_json::from_value(json!({
            "id": "evt_1", "object": "event", "type": "checkout.session.completed",
            "livemode": false,
            "data": {"object": {
                "id": "cs_test_1", "object": "checkout.session", "amount_total": 3998,
                "currency": "usd", "client_reference_id": "ord_1",
                "metadata": {"order_id": "ord_1", "tenant_id": "ten_1"},
                "payment_status": payment_status, "payment_intent": "pi_1"
            }}
        }))
        .unwrap()
    }

    #[test]
    fn a_paid_session_is_a_payment_of_its_amount_for_its_order() {
        let e = completed("paid").payment_event().unwrap();
        assert_eq!(
            e,
            PaymentEvent {
                event_id: "evt_1".into(),
                reference: "cs_test_1".into(),
                charge_reference: Some("pi_1".into()),
                tenant_id: Some("ten_1".into()),
                order_id: Some("ord_1".into()),
                amount: 3998,
                currency: "USD".into(),
                livemode: false,
                outcome: Outcome::Succeeded,
            }
        );
    }

    #[test]
    fn a_session_is_one_line_of_the_order_total_naming_the_order() {
        use kassa_domain::money::{Currency, Money};
        let form = checkout_session_form(&PaymentRequest {
            tenant_id: "ten_1".into(),
            order_id: "ord_1".into(),
            amount: Money {
                amount: 3998,
                currency: Currency::parse("currency", "USD").unwrap(),
            },
            description: "Order #7 at Acme".into(),
            customer_email: Some("buyer@example.com".into()),
            success_url: "https://kassa.test/acme/orders/t".into(),
            cancel_url: "https://kassa.test/acme/orders/t/pay".into(),
            idempotency_key: "ord_1:1".into(),
        });
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("mode"), Some("payment"));
        assert_eq!(get("line_items[0][price_data][unit_amount]"), Some("3998"));
        assert_eq!(get("line_items[0][price_data][currency]"), Some("usd"));
        assert_eq!(get("line_items[0][quantity]"), Some("1"));
        assert_eq!(get("client_reference_id"), Some("ord_1"));
        assert_eq!(get("metadata[tenant_id]"), Some("ten_1"));
        assert_eq!(
            get("payment_intent_data[metadata][order_id]"),
            Some("ord_1")
        );
        assert_eq!(get("customer_email"), Some("buyer@example.com"));
    }

    #[test]
    fn unpaid_sessions_and_other_events_pay_nothing() {
        assert!(matches!(
            completed("unpaid").payment_event(),
            Err(WebhookError::Ignored(_))
        ));
        let mut other = completed("paid");
        other.kind = "customer.created".into();
        assert_eq!(
            other.payment_event(),
            Err(WebhookError::Ignored("customer.created".into()))
        );
        let mut failed = completed("unpaid");
        failed.kind = "checkout.session.async_payment_failed".into();
        assert!(matches!(
            failed.payment_event().unwrap().outcome,
            Outcome::Failed { .. }
        ));
    }
}
