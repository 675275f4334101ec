//! `/orders`: orders placed on the checkout pages or by the merchant's own checkout
//! through this API (same rules, through `kassa-orders`), their payments and events.

use kassa_domain::access::ApiAction;
use std::collections::BTreeMap;

use kassa_domain::Invalid;
use kassa_domain::error::parse_text;
use kassa_domain::ids::{OrderId, ProductId};
use kassa_domain::mode::Mode;
use kassa_domain::order::{DeliveryStatus, OrderStatus};
use kassa_orders::{OrderInput, OrdersError, RefundInput};
use kassa_store::{CartLine, OrderFilter, OrderRecord, RefundRecord, TenantRecord, Timestamp};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct OrdersApi(pub ApiContext);

/// The most lines one order may have.
const MAX_LINES: usize = 100;
/// The most `custom` keys one order may carry.
const MAX_CUSTOM_KEYS: usize = 20;
const MAX_CUSTOM_KEY_CHARS: usize = 40;
const MAX_CUSTOM_VALUE_CHARS: usize = 500;
/// The languages of the customer's pages and emails.
const LOCALES: [&str; 2] = ["en", "ru"];

/// What an order placed through the API records as the consent texts accepted: the
/// merchant's checkout showed its own texts.
const TERMS_TEXT: &str = "API: terms of sale accepted by the merchant's checkout";
const PERSONAL_DATA_TEXT: &str =
    "API: processing of personal data accepted by the merchant's checkout";

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct OrderLineIn {
    /// `prd_…`, an active product of this store priced in the order's currency.
    pub product_id: String,
    /// 1 or more.
    pub quantity: i64,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CustomerIn {
    pub email: String,
    pub name: Option<String>,
}

/// The consents the customer gave on the merchant's checkout; both are required.
#[derive(Debug, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct ConsentsIn {
    /// The customer accepted the terms of sale.
    #[oai(default)]
    pub terms: bool,
    /// The customer agreed to the processing of their personal data.
    #[oai(default)]
    pub personal_data: bool,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct OrderIn {
    /// At least one line.
    pub lines: Vec<OrderLineIn>,
    /// ISO 4217 code, e.g. `USD`; every product must have a price in it.
    pub currency: String,
    pub customer: CustomerIn,
    #[oai(default)]
    pub consents: ConsentsIn,
    /// `test_card` or `bank_transfer`, one of the store's enabled methods.
    pub payment_method: String,
    /// A coupon code.
    pub coupon: Option<String>,
    /// The language of the customer's pages and emails: `en` (default) or `ru`.
    pub locale: Option<String>,
    /// The merchant's own data, kept with the order and sent in webhooks; at most 20
    /// keys.
    pub custom: Option<BTreeMap<String, String>>,
}

/// Money received outside Kassa for the whole order.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PaymentIn {
    /// `bank_transfer`.
    pub method: String,
    /// The order total, in minor units.
    pub amount: i64,
    /// The order's currency.
    pub currency: String,
    /// The bank's reference of the transfer, for your records.
    pub reference: Option<String>,
}

/// Money to give back to the customer.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RefundIn {
    /// Minor units, more than 0 and at most what was paid less what was refunded
    /// before. Absent: all that is left, or, with `lines`, those lines' totals.
    pub amount: Option<i64>,
    /// The order's currency; refused if it is another.
    pub currency: Option<String>,
    /// Why, for your records and the customer's email; at most 500 characters.
    pub reason: Option<String>,
    /// The `line_no`s the customer gives back: those lines are refunded in full and
    /// their licenses revoked, whatever the amount. When the whole order is refunded
    /// every line is.
    pub lines: Option<Vec<i64>>,
}

/// Money given back to the customer.
#[derive(Debug, Object)]
pub struct RefundOut {
    /// `rfd_…`
    pub id: String,
    pub order_id: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// How it went back: the order's payment method (`test_card`: the sandbox;
    /// `bank_transfer`: recorded as sent back by the merchant).
    pub method: String,
    /// `succeeded`, `pending` while a provider works on it (`refund.pending` was sent;
    /// `refund.succeeded` follows when it succeeds), or `failed` when the provider
    /// could not give the money back, while pending or even after it succeeded (then
    /// it no longer counts: the amount is refundable again, the keys it revoked are
    /// reinstated, and `refund.failed` was sent).
    pub status: String,
    pub reason: Option<String>,
    /// The provider's id for it (`test_re_…` in the sandbox).
    pub reference: Option<String>,
    /// The lines it refunded in full; their licenses are revoked once it succeeded.
    pub lines: Vec<i64>,
    /// Why the provider could not give the money back (Stripe's `failure_reason`, or
    /// `canceled`), once `failed`.
    pub failure_reason: Option<String>,
    pub livemode: bool,
    /// RFC 3339.
    pub created_at: String,
}

impl From<RefundRecord> for RefundOut {
    fn from(r: RefundRecord) -> Self {
        Self {
            id: r.id,
            order_id: r.order_id,
            amount: r.amount,
            currency: r.currency,
            method: r.method.to_string(),
            status: r.status.to_string(),
            reason: r.reason,
            reference: r.reference,
            lines: r.lines,
            failure_reason: r.failure_reason,
            livemode: r.livemode,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct RefundList {
    /// Oldest first.
    pub data: Vec<RefundOut>,
}

#[derive(Debug, Object)]
pub struct CustomerOut {
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Object)]
pub struct OrderLineOut {
    /// 1, 2, … in the order.
    pub line_no: i64,
    pub product_id: String,
    /// The product's name when the order was placed.
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    /// quantity × unit_amount.
    pub subtotal: i64,
    pub discount: i64,
    /// subtotal − discount.
    pub total: i64,
    /// `pending`, `waiting_stock` (the pool is out of keys), `delivered`, `failed`, or
    /// `cancelled` (refunded before it was delivered: never delivered).
    pub delivery_status: String,
    /// The license keys or texts delivered for this line.
    pub licenses: Vec<String>,
    /// Why the last delivery attempt did not work (`waiting_stock`, retries, `failed`);
    /// on a delivered line, a key it lost (see `revoked_licenses`).
    pub delivery_error: Option<String>,
    /// Refunded in full (named in a refund, or the whole order refunded): never
    /// delivered after that.
    pub refunded: bool,
    /// The licenses revoked by a refund: every license of a line refunded in full,
    /// once the refund succeeded (a refund pending at the provider revokes nothing yet).
    /// A refund that fails at the provider after it succeeded gives them back, but for
    /// a key it returned to its pool that went to another order since: that one stays
    /// revoked here.
    pub revoked_licenses: Vec<String>,
}

#[derive(Debug, Object)]
pub struct PaymentOut {
    /// `pay_…`
    pub id: String,
    /// `test_card`, `bank_transfer` or `stripe`.
    pub method: String,
    /// `succeeded` or `failed`; `pending` while the customer is on a provider's page
    /// (a Stripe page that expires unpaid ends it as `failed`, code `expired`).
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub reference: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A consent the customer gave, with the evidence kept of it.
#[derive(Debug, Object)]
pub struct ConsentOut {
    /// `terms` or `personal_data`.
    pub kind: String,
    /// Which text was accepted.
    pub text_version: String,
    /// RFC 3339.
    pub accepted_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An order as merchants see it here and in webhook payloads.
#[derive(Debug, Object)]
pub struct OrderOut {
    /// `ord_…`
    pub id: String,
    /// 1, 2, … within the store.
    pub number: i64,
    /// `not_paid`, `paid`, …
    pub status: String,
    /// `not_delivered`, `delivered`, …
    pub delivery_status: String,
    pub currency: String,
    /// Minor units before discounts.
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    /// Minor units to pay.
    pub total: i64,
    /// Minor units given back so far; `status` is `refunded` once it is the total.
    pub amount_refunded: i64,
    pub customer: CustomerOut,
    pub lines: Vec<OrderLineOut>,
    pub payments: Vec<PaymentOut>,
    /// Oldest first.
    pub refunds: Vec<RefundOut>,
    pub consents: Vec<ConsentOut>,
    /// The method chosen (or used, once paid).
    pub payment_method: String,
    /// The reference a customer paying by bank transfer quotes.
    pub payment_reference: String,
    pub coupon_code: Option<String>,
    /// The merchant's own data.
    pub custom: BTreeMap<String, serde_json::Value>,
    /// A test mode order (the opposite of `livemode`).
    pub test_mode: bool,
    /// A live order: real money, live stock. Test keys see only test orders, live keys
    /// only live ones.
    pub livemode: bool,
    pub locale: String,
    pub return_url: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339; absent until paid.
    pub paid_at: Option<String>,
    /// The customer's payment page; hand it to the customer.
    pub pay_url: String,
    /// The customer's order page (status, licenses).
    pub order_url: String,
}

list_type!(OrderList, OrderOut);

/// One event of an order, as sent to webhook endpoints.
#[derive(Debug, Object)]
pub struct OrderEventOut {
    /// `evt_…`
    pub id: String,
    /// e.g. `order.created`, `payment.succeeded`.
    #[oai(rename = "type")]
    pub kind: String,
    /// The webhook payload: `{"id", "type", "timestamp", "data"}`.
    pub payload: serde_json::Value,
}

#[derive(Debug, Object)]
pub struct OrderEventList {
    /// Oldest first.
    pub data: Vec<OrderEventOut>,
}

fn rfc3339(ms: i64) -> String {
    Timestamp::from(ms)
        .0
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl OrdersApi {
    fn out(&self, slug: &str, o: OrderRecord) -> OrderOut {
        let order_url = format!("{}/{}/orders/{}", self.0.public_url, slug, o.token);
        OrderOut {
            pay_url: format!("{order_url}/pay"),
            order_url,
            id: o.id,
            number: o.number,
            status: o.status.to_string(),
            delivery_status: o.delivery_status.to_string(),
            currency: o.currency,
            subtotal: o.subtotal,
            discount: o.discount,
            tax: o.tax,
            total: o.total,
            amount_refunded: o.amount_refunded,
            customer: CustomerOut {
                email: o.customer.email,
                name: o.customer.name,
            },
            lines: o
                .lines
                .into_iter()
                .map(|l| OrderLineOut {
                    line_no: l.line_no,
                    product_id: l.product_id,
                    name: l.name,
                    quantity: l.quantity,
                    unit_amount: l.unit_amount,
                    subtotal: l.subtotal,
                    discount: l.discount,
                    total: l.total,
                    delivery_status: l.delivery_status.to_string(),
                    licenses: l.licenses,
                    delivery_error: l.delivery_error,
                    refunded: l.refunded,
                    revoked_licenses: l.revoked_licenses,
                })
                .collect(),
            payments: o
                .payments
                .into_iter()
                .map(|p| PaymentOut {
                    id: p.id,
                    method: p.method.to_string(),
                    status: p.status.to_string(),
                    amount: p.amount,
                    currency: p.currency,
                    failure_code: p.failure_code,
                    failure_message: p.failure_message,
                    card_brand: p.card_brand,
                    card_last4: p.card_last4,
                    reference: p.reference,
                    created_at: p.created_at,
                })
                .collect(),
            refunds: o.refunds.into_iter().map(RefundOut::from).collect(),
            consents: o
                .consents
                .into_iter()
                .map(|c| ConsentOut {
                    kind: c.kind,
                    text_version: c.text_version,
                    accepted_at: rfc3339(c.accepted_at),
                    ip: c.ip,
                    user_agent: c.user_agent,
                })
                .collect(),
            payment_method: o.payment_method.to_string(),
            payment_reference: o.payment_reference,
            coupon_code: o.coupon_code,
            custom: match o.custom {
                serde_json::Value::Object(map) => map.into_iter().collect(),
                _ => BTreeMap::new(),
            },
            test_mode: o.test_mode,
            livemode: o.livemode,
            locale: o.locale,
            return_url: o.return_url,
            created_at: o.created_at,
            updated_at: o.updated_at,
            paid_at: o.paid_at,
        }
    }
}

impl OrdersApi {
    /// The order, when it is of the key's world: a test key never reads or changes a
    /// live order, nor a live key a test one (a 404, as for another store's).
    async fn order_in_mode(
        &self,
        auth: &ApiKey,
        tenant: &TenantRecord,
        id: &OrderId,
    ) -> Result<OrderRecord, ApiError> {
        match self.0.store.order(&tenant.id, id.as_str()).await {
            Ok(order) if Mode::from_livemode(order.livemode) == auth.mode() => Ok(order),
            Ok(_) => Err(ApiError::not_found("order")),
            Err(e) => Err(ApiError::from_store("order")(e)),
        }
    }
}

/// An order id from the path; a malformed id is simply not found.
fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|_| ApiError::not_found("order"))
}

/// The checkout service names the customer's fields as its pages do; the request
/// nests them under `customer`.
fn request_field(field: String) -> String {
    match field.as_str() {
        "email" => "customer.email".to_owned(),
        "name" => "customer.name".to_owned(),
        _ => field,
    }
}

/// Checks `custom`: at most 20 keys, short keys and values.
fn parse_custom(
    raw: Option<BTreeMap<String, String>>,
) -> Result<serde_json::Map<String, serde_json::Value>, Invalid> {
    let raw = raw.unwrap_or_default();
    let mut invalid = Invalid::default();
    if raw.len() > MAX_CUSTOM_KEYS {
        invalid.push(
            "custom",
            format!("must have at most {MAX_CUSTOM_KEYS} keys"),
        );
    }
    for (key, value) in &raw {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_CUSTOM_KEY_CHARS || key.chars().any(char::is_control) {
            invalid.push(
                "custom",
                format!("keys must be 1 to {MAX_CUSTOM_KEY_CHARS} characters"),
            );
        } else if value.chars().count() > MAX_CUSTOM_VALUE_CHARS {
            invalid.push(
                format!("custom.{key}"),
                format!("must be at most {MAX_CUSTOM_VALUE_CHARS} characters"),
            );
        }
    }
    invalid.into_result()?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect())
}

#[OpenApi(prefix_path = "/orders", tag = "crate::context::Tag::Orders")]
impl OrdersApi {
    /// Place an order
    ///
    /// For merchants with their own checkout UI; the same rules as Kassa's checkout
    /// page apply. The order starts `not_paid`: send the customer to its `pay_url`, or
    /// record a bank transfer with `POST /orders/{id}/payments`.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        req: &poem::Request,
        body: Json<OrderIn>,
    ) -> Result<Json<OrderOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::PlaceOrder)?;
        let body = body.0;
        let mut invalid = Invalid::default();
        if body.lines.len() > MAX_LINES {
            invalid.push("lines", format!("must have at most {MAX_LINES} lines"));
        }
        let locale = match body.locale.as_deref().map(str::trim) {
            None | Some("") => "en".to_owned(),
            Some(l) if LOCALES.contains(&l) => l.to_owned(),
            Some(_) => {
                invalid.push("locale", "must be one of en, ru");
                String::new()
            }
        };
        let custom = invalid.check(parse_custom(body.custom)).unwrap_or_default();
        invalid.into_result()?;
        let lines = body
            .lines
            .iter()
            .map(|l| CartLine {
                // A malformed id is a product that does not exist: the checkout service
                // reports it at its index like any other.
                product_id: ProductId::parse(&l.product_id)
                    .unwrap_or_else(|_| ProductId::generate()),
                quantity: l.quantity,
                offer: None,
            })
            .collect();
        let mut consents = Vec::new();
        if body.consents.terms {
            consents.push("terms".to_owned());
        }
        if body.consents.personal_data {
            consents.push("personal_data".to_owned());
        }
        self.0.limits.check(kassa_limits::Action::PlaceOrder {
            ip: None,
            store: tenant.id.as_str(),
            email: None,
        })?;
        let user_agent = req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let input = OrderInput {
            currency: body.currency,
            lines,
            coupon: body.coupon,
            email: body.customer.email,
            name: body.customer.name,
            payment_method: body.payment_method,
            consents,
            consent_texts: vec![
                ("terms".to_owned(), TERMS_TEXT.to_owned()),
                ("personal_data".to_owned(), PERSONAL_DATA_TEXT.to_owned()),
            ],
            locale,
            custom,
            return_url: None,
            ip: None,
            user_agent,
            cart: None,
            products: Vec::new(),
            mode: auth.mode(),
        };
        let order = kassa_orders::place_order(&self.0.store, tenant, &input)
            .await
            .map_err(|e| match e {
                OrdersError::Invalid(mut invalid) => {
                    for error in &mut invalid.errors {
                        error.field = request_field(std::mem::take(&mut error.field));
                    }
                    ApiError::from(invalid)
                }
                other => ApiError::from_orders("order")(other),
            })?;
        Ok(Json(self.out(&tenant.slug, order)))
    }

    /// List orders, newest first
    ///
    /// Narrowed by any of `status`, `delivery_status`, `email` (part of the customer's
    /// address, any case), `created_after` (at or after) and `created_before` (RFC 3339
    /// times, e.g. `2026-12-31T00:00:00Z`); a value that is none of these is a 422
    /// naming the parameter.
    #[oai(path = "/", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
        status: Query<Option<String>>,
        delivery_status: Query<Option<String>>,
        email: Query<Option<String>>,
        created_after: Query<Option<String>>,
        created_before: Query<Option<String>>,
    ) -> Result<Json<OrderList>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let request = page_request(limit.0, cursor.0)?;
        let mut invalid = Invalid::default();
        let one_of = |field: &str, names: Vec<&str>| {
            Invalid::field(field, format!("must be one of {}", names.join(", ")))
        };
        let status = match status.0.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => invalid.check(OrderStatus::from_name(raw).ok_or_else(|| {
                one_of(
                    "status",
                    OrderStatus::ALL.iter().map(|s| s.as_str()).collect(),
                )
            })),
        };
        let delivery_status = match delivery_status.0.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => invalid.check(DeliveryStatus::from_name(raw).ok_or_else(|| {
                one_of(
                    "delivery_status",
                    DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect(),
                )
            })),
        };
        let time = |field: &str, raw: Option<String>, invalid: &mut Invalid| match raw {
            None => None,
            Some(raw) => invalid.check(
                chrono::DateTime::parse_from_rfc3339(raw.trim())
                    .map(|t| Timestamp::from(t.with_timezone(&chrono::Utc)))
                    .map_err(|_| {
                        Invalid::field(field, "must be an RFC 3339 time like 2026-12-31T00:00:00Z")
                    }),
            ),
        };
        let from = time("created_after", created_after.0, &mut invalid);
        let until = time("created_before", created_before.0, &mut invalid);
        invalid.into_result()?;
        let filter = OrderFilter {
            status,
            delivery_status,
            email: email
                .0
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty()),
            from,
            until,
            mode: Some(auth.mode()),
        };
        let page = self
            .0
            .store
            .search_orders(&tenant.id, &filter, &request)
            .await
            .map_err(ApiError::from_store("order"))?;
        Ok(Json(OrderList::from_page(page, |o| {
            self.out(&tenant.slug, o)
        })))
    }

    /// Get an order
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<OrderOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let record = self.order_in_mode(&auth, tenant, &order_id(&id)?).await?;
        Ok(Json(self.out(&tenant.slug, record)))
    }

    /// Record a payment received outside Kassa
    ///
    /// A bank transfer of the whole order total, in the order's currency. The order
    /// becomes `paid` and `payment.succeeded` is sent; an order that is not waiting for
    /// payment is a 409.
    #[oai(path = "/:id/payments", method = "post")]
    async fn record_payment(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<PaymentIn>,
    ) -> Result<Json<OrderOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::RecordPayment)?;
        let id = order_id(&id)?;
        self.order_in_mode(&auth, tenant, &id).await?;
        let body = body.0;
        let reference = match body.reference.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => Some(parse_text("reference", r, 200)?),
        };
        let order = kassa_orders::record_offline_payment(
            &self.0.store,
            tenant,
            id.as_str(),
            &body.method,
            body.amount,
            &body.currency,
            reference,
        )
        .await
        .map_err(ApiError::from_orders("order"))?;
        Ok(Json(self.out(&tenant.slug, order)))
    }

    /// Refund an order, in full or in part
    ///
    /// Gives money back by the method the order was paid with (the sandbox card at
    /// once; a bank transfer is recorded as sent back by you; a Stripe payment at
    /// Stripe). Sends `refund.succeeded` (`refund.pending` while Stripe works on it,
    /// then `refund.succeeded` when it succeeds), and `order.refunded` when everything
    /// paid went back (the order becomes `refunded`); emails the customer. The
    /// licenses of the lines refunded in full are revoked once the money went back
    /// (and returned to their pool when it says so). An
    /// order that is not paid is a 409; an amount above what is left, another
    /// currency or an unknown line a 422.
    #[oai(path = "/:id/refunds", method = "post")]
    async fn create_refund(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<RefundIn>,
    ) -> Result<Json<RefundOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::Refund)?;
        let id = order_id(&id)?;
        self.order_in_mode(&auth, tenant, &id).await?;
        let body = body.0;
        let mut invalid = Invalid::default();
        let reason = match body.reason.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => invalid.check(parse_text("reason", r, 500)),
        };
        let lines = body.lines.unwrap_or_default();
        if lines.len() > MAX_LINES {
            invalid.push("lines", format!("must have at most {MAX_LINES} lines"));
        }
        invalid.into_result()?;
        let input = RefundInput {
            amount: body.amount,
            currency: body.currency,
            reason,
            lines,
        };
        let (_, refund) = kassa_orders::refund(
            &self.0.store,
            &self.0.providers,
            &tenant.id,
            id.as_str(),
            input,
        )
        .await
        .map_err(ApiError::from_orders("order"))?;
        Ok(Json(refund.into()))
    }

    /// List an order's refunds, oldest first
    #[oai(path = "/:id/refunds", method = "get")]
    async fn refunds(&self, auth: ApiKey, id: Path<String>) -> Result<Json<RefundList>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let id = order_id(&id)?;
        self.order_in_mode(&auth, tenant, &id).await?;
        let refunds = self
            .0
            .store
            .refunds(&tenant.id, &id)
            .await
            .map_err(ApiError::from_store("order"))?;
        Ok(Json(RefundList {
            data: refunds.into_iter().map(RefundOut::from).collect(),
        }))
    }

    /// List an order's events, oldest first
    ///
    /// Each payload is exactly what webhook endpoints receive.
    #[oai(path = "/:id/events", method = "get")]
    async fn events(
        &self,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<Json<OrderEventList>, ApiError> {
        let store = auth.allowed(ApiAction::Read)?;
        let tenant = &store.id;
        let id = order_id(&id)?;
        // An order with no events is still another store's order or none: check first.
        self.order_in_mode(&auth, store, &id).await?;
        let events = self
            .0
            .store
            .order_events(tenant, id.as_str())
            .await
            .map_err(ApiError::from_store("order"))?;
        Ok(Json(OrderEventList {
            data: events
                .into_iter()
                .map(|e| OrderEventOut {
                    id: e.id,
                    kind: e.kind,
                    payload: e.payload,
                })
                .collect(),
        }))
    }

    /// Email the customer their licenses again
    ///
    /// Queues a new email with every license delivered so far; 409 while none is.
    #[oai(path = "/:id/resend-licenses", method = "post")]
    async fn resend_licenses(
        &self,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<Json<ResendOut>, ApiError> {
        let id = order_id(&id)?;
        let tenant = auth.allowed(ApiAction::ResendEmails)?;
        self.order_in_mode(&auth, tenant, &id).await?;
        kassa_orders::resend_licenses(&self.0.store, &tenant.id, id.as_str())
            .await
            .map_err(ApiError::from_orders("order"))?;
        Ok(Json(ResendOut {
            order_id: id.to_string(),
            status: "queued".into(),
        }))
    }
}

/// The licenses email is on its way.
#[derive(Debug, poem_openapi::Object)]
pub struct ResendOut {
    pub order_id: String,
    pub status: String,
}
