//! Stripe's own wire types (what its REST API and webhooks send) and their
//! conversions to and from the provider interface's. Only the fields Kassa reads are
//! declared; Stripe adds fields freely.

use kassa_domain::Secret;
use serde::Deserialize;

use crate::provider::{
    CreatedPayment, CreatedRefund, Outcome, PaymentEvent, PaymentRequest, ProviderError,
    ProviderEvent, RefundEvent, RefundOutcome, WebhookError,
};

/// The form fields of `POST /v1/payment_intents` for one order: the order's total
/// (Kassa has priced the order; Stripe only takes the money), paid by card (the card
/// Element on Kassa's pay page), the order and store in `metadata`, read back from the
/// webhook (and the order's number, for the merchant reading Stripe's dashboard).
pub fn payment_intent_form(r: &PaymentRequest) -> Vec<(String, String)> {
    [
        ("amount", r.amount.amount.to_string()),
        ("currency", r.amount.currency.code().to_ascii_lowercase()),
        ("payment_method_types[]", "card".to_owned()),
        ("metadata[order_id]", r.order_id.clone()),
        ("metadata[tenant_id]", r.tenant_id.clone()),
        ("metadata[order_number]", r.order_number.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A PaymentIntent as Stripe returns it and as its webhooks carry it.
#[derive(Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    /// Only in answers to the secret key, never in events Kassa reads it from.
    pub client_secret: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub amount: Option<i64>,
    /// What was received: Stripe's events carry it; localstripe's do not (then the
    /// `amount` of a succeeded PaymentIntent is what was received).
    pub amount_received: Option<i64>,
    pub currency: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Why the last confirmation failed (a declined card).
    pub last_payment_error: Option<ErrorDetail>,
}

impl std::fmt::Debug for PaymentIntent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentIntent")
            .field("id", &self.id)
            .field("livemode", &self.livemode)
            .finish_non_exhaustive()
    }
}

impl PaymentIntent {
    pub fn created(self) -> Result<CreatedPayment, ProviderError> {
        let secret = self.client_secret.ok_or_else(|| {
            ProviderError::Unavailable("the PaymentIntent has no client secret".into())
        })?;
        Ok(CreatedPayment {
            reference: self.id,
            client_secret: Secret::from(secret),
            livemode: self.livemode,
        })
    }
}

/// A webhook event. `data.object` is read as a PaymentIntent or a Refund, by type.
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
    /// What it reports: a payment (`payment_intent.*`, see [`Event::payment_event`]) or
    /// a refund. Refunds come as `refund.created`, `refund.updated` and `refund.failed`, which Stripe
    /// sends for every refund from API version 2024-10-28 (older versions send them for
    /// card refunds as `charge.refund.updated`, also read); each carries the Refund
    /// with its id, amount, currency, status and PaymentIntent. `charge.refunded`
    /// carries the Charge, whose refunds list is not expanded in recent versions, so
    /// it is not read. Anything else is not Kassa's to act on.
    pub fn provider_event(self) -> Result<ProviderEvent, WebhookError> {
        match self.kind.as_str() {
            "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
                self.refund_event().map(ProviderEvent::Refund)
            }
            _ => self.payment_event().map(ProviderEvent::Payment),
        }
    }

    fn refund_event(self) -> Result<RefundEvent, WebhookError> {
        let refund: Refund = serde_json::from_value(self.data.object)
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let currency = refund
            .currency
            .ok_or_else(|| WebhookError::Malformed("the Refund has no currency".into()))?;
        Ok(RefundEvent {
            event_id: self.id,
            outcome: match refund.status.as_str() {
                "succeeded" => RefundOutcome::Succeeded,
                "failed" | "canceled" => RefundOutcome::Failed,
                _ => RefundOutcome::Pending,
            },
            failure_reason: match refund.status.as_str() {
                "failed" => refund.failure_reason.or(Some("unknown".into())),
                "canceled" => Some("canceled".into()),
                _ => None,
            },
            reference: refund.id,
            payment_reference: refund.payment_intent,
            amount: refund.amount,
            currency: currency.to_ascii_uppercase(),
            livemode: self.livemode,
        })
    }

    /// The payment event it reports: `payment_intent.succeeded` pays,
    /// `payment_intent.payment_failed` fails with Stripe's reason,
    /// `payment_intent.canceled` ends its attempt; anything else is not Kassa's to act
    /// on.
    pub fn payment_event(self) -> Result<PaymentEvent, WebhookError> {
        let kind = match self.kind.as_str() {
            "payment_intent.succeeded"
            | "payment_intent.payment_failed"
            | "payment_intent.canceled" => self.kind.clone(),
            other => return Err(WebhookError::Ignored(other.to_owned())),
        };
        let intent: PaymentIntent = serde_json::from_value(self.data.object)
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let outcome = match kind.as_str() {
            "payment_intent.succeeded" => Outcome::Succeeded,
            "payment_intent.payment_failed" => {
                let error = intent.last_payment_error.clone();
                Outcome::Failed {
                    code: error
                        .as_ref()
                        .and_then(|e| e.decline_code.clone().or(e.code.clone()))
                        .unwrap_or_else(|| "payment_failed".into()),
                    message: error
                        .and_then(|e| e.message)
                        .unwrap_or_else(|| "The payment did not go through.".into()),
                }
            }
            _ => Outcome::Canceled,
        };
        let amount = match outcome {
            Outcome::Succeeded => intent.amount_received.or(intent.amount),
            _ => intent.amount,
        };
        let (Some(amount), Some(currency)) = (amount, intent.currency.clone()) else {
            return Err(WebhookError::Malformed(
                "the PaymentIntent has no amount or currency".into(),
            ));
        };
        Ok(PaymentEvent {
            event_id: self.id,
            charge_reference: Some(intent.id.clone()),
            order_id: intent.metadata.get("order_id").cloned(),
            tenant_id: intent.metadata.get("tenant_id").cloned(),
            reference: intent.id,
            amount,
            currency: currency.to_ascii_uppercase(),
            livemode: self.livemode,
            outcome,
        })
    }
}

/// A Refund as Stripe returns it, and as its refund events carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub currency: Option<String>,
    /// The PaymentIntent refunded (a refund of a bare Charge has none).
    pub payment_intent: Option<String>,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub status: String,
    /// Why it failed (`lost_or_stolen_card`, `expired_or_canceled_card`, …).
    #[serde(default)]
    pub failure_reason: Option<String>,
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
    /// A declined card's reason (`insufficient_funds`, `lost_card`, …).
    pub decline_code: Option<String>,
    pub message: Option<String>,
}

impl ErrorDetail {
    pub fn refused(self) -> ProviderError {
        ProviderError::Refused {
            code: self
                .decline_code
                .or(self.code)
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

    fn event(kind: &str, intent: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "id": "evt_1", "object": "event", "type": kind, "livemode": false,
            "data": {"object": intent}
        }))
        .unwrap()
    }

    fn intent() -> serde_json::Value {
        json!({
            "id": "pi_1", "object": "payment_intent", "amount": 3998, "amount_received": 3998,
            "currency": "usd", "status": "succeeded",
            "metadata": {"order_id": "ord_1", "tenant_id": "ten_1"}
        })
    }

    #[test]
    fn a_succeeded_payment_intent_is_a_payment_of_what_was_received_for_its_order() {
        let e = event("payment_intent.succeeded", intent())
            .payment_event()
            .unwrap();
        assert_eq!(
            e,
            PaymentEvent {
                event_id: "evt_1".into(),
                reference: "pi_1".into(),
                charge_reference: Some("pi_1".into()),
                tenant_id: Some("ten_1".into()),
                order_id: Some("ord_1".into()),
                amount: 3998,
                currency: "USD".into(),
                livemode: false,
                outcome: Outcome::Succeeded,
            }
        );
        // Less received than asked: what was received is what the order is checked
        // against.
        let mut short = intent();
        short["amount_received"] = json!(1);
        let e = event("payment_intent.succeeded", short)
            .payment_event()
            .unwrap();
        assert_eq!(e.amount, 1);
    }

    #[test]
    fn a_payment_intent_is_the_order_total_by_card_naming_the_order() {
        use kassa_domain::money::{Currency, Money};
        let form = payment_intent_form(&PaymentRequest {
            tenant_id: "ten_1".into(),
            order_id: "ord_1".into(),
            amount: Money {
                amount: 3998,
                currency: Currency::parse("currency", "USD").unwrap(),
            },
            order_number: "K-7".into(),
            idempotency_key: "ord_1:1".into(),
        });
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("amount"), Some("3998"));
        assert_eq!(get("currency"), Some("usd"));
        assert_eq!(get("payment_method_types[]"), Some("card"));
        assert_eq!(get("metadata[order_id]"), Some("ord_1"));
        assert_eq!(get("metadata[tenant_id]"), Some("ten_1"));
        assert_eq!(get("metadata[order_number]"), Some("K-7"));
    }

    #[test]
    fn failures_carry_the_reason_cancels_end_and_other_events_pay_nothing() {
        let mut declined = intent();
        declined["last_payment_error"] = json!({"type": "card_error", "code": "card_declined",
            "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."});
        let e = event("payment_intent.payment_failed", declined)
            .payment_event()
            .unwrap();
        assert_eq!(
            e.outcome,
            Outcome::Failed {
                code: "insufficient_funds".into(),
                message: "Your card has insufficient funds.".into()
            }
        );
        let e = event("payment_intent.canceled", intent())
            .payment_event()
            .unwrap();
        assert_eq!(e.outcome, Outcome::Canceled);
        assert_eq!(
            event("customer.created", intent()).payment_event(),
            Err(WebhookError::Ignored("customer.created".into()))
        );
    }

    #[test]
    fn refund_events_say_which_payment_how_much_and_where_it_stands() {
        let refund = json!({"id": "re_1", "object": "refund", "amount": 500, "currency": "usd",
            "payment_intent": "pi_1", "charge": "ch_1", "status": "succeeded", "metadata": {}});
        for kind in ["refund.created", "refund.updated", "charge.refund.updated"] {
            let e = event(kind, refund.clone()).provider_event().unwrap();
            assert_eq!(
                e,
                ProviderEvent::Refund(RefundEvent {
                    event_id: "evt_1".into(),
                    reference: "re_1".into(),
                    payment_reference: Some("pi_1".into()),
                    amount: 500,
                    currency: "USD".into(),
                    livemode: false,
                    outcome: RefundOutcome::Succeeded,
                    failure_reason: None,
                })
            );
        }
        let mut pending = refund.clone();
        pending["status"] = json!("pending");
        let Ok(ProviderEvent::Refund(e)) = event("refund.created", pending).provider_event() else {
            panic!("a refund")
        };
        assert_eq!(e.outcome, RefundOutcome::Pending);
        let mut failed = refund.clone();
        failed["status"] = json!("failed");
        failed["failure_reason"] = json!("lost_or_stolen_card");
        for kind in ["refund.updated", "refund.failed"] {
            let Ok(ProviderEvent::Refund(e)) = event(kind, failed.clone()).provider_event() else {
                panic!("a refund")
            };
            assert_eq!(e.outcome, RefundOutcome::Failed);
            assert_eq!(e.failure_reason.as_deref(), Some("lost_or_stolen_card"));
        }
        // The Charge of `charge.refunded` is not read.
        assert_eq!(
            event("charge.refunded", json!({"id": "ch_1"})).provider_event(),
            Err(WebhookError::Ignored("charge.refunded".into()))
        );
    }

    #[test]
    fn the_client_secret_never_prints() {
        let mut answer = intent();
        answer["client_secret"] = json!("pi_1_secret_abc");
        let pi: PaymentIntent = serde_json::from_value(answer).unwrap();
        assert!(!format!("{pi:?}").contains("secret_abc"));
        let created = pi.created().unwrap();
        assert!(!format!("{created:?}").contains("secret_abc"));
        assert_eq!(created.client_secret.expose_secret(), "pi_1_secret_abc");
    }
}
