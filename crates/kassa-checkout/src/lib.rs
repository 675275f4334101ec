//! The checkout service: turns a cart into prices, an order and a payment, with the
//! same rules whether the customer uses Kassa's pages or the merchant's own UI through
//! the API. It holds no SQL (that is `kassa-store`) and no HTTP (pages and API are
//! the callers).

use chrono::Utc;
use kassa_domain::Invalid;
use kassa_domain::catalog::{CouponCode, Discount, coupon_unusable_reason};
use kassa_domain::error::parse_text;
use kassa_domain::ids::{CartId, TenantId};
use kassa_domain::money::Currency;
use kassa_domain::order::{CouponInput, LineInput, PaymentMethod, Quote, quote};
use kassa_domain::tenant::{EmailAddress, TenantSettings};
use kassa_payments::{Card, CardInput, CardProvider, TestCardGateway};
use kassa_store::{
    CartLine, Consent, NewOrder, OrderRecord, PaymentAttempt, PaymentRecord, Store, StoreError,
    TenantRecord,
};

/// Why a checkout step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Input to fix, field by field.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("not found")]
    NotFound,
    /// The order is not in a state that allows this (already paid, deleted).
    #[error("{0}")]
    Conflict(String),
    #[error("storage: {0}")]
    Store(StoreError),
}

impl From<StoreError> for CheckoutError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => CheckoutError::NotFound,
            StoreError::Conflict(m) => CheckoutError::Conflict(m),
            other => CheckoutError::Store(other),
        }
    }
}

/// The consents a customer must give, and the text they accept.
pub const CONSENTS: [&str; 2] = ["terms", "personal_data"];

/// Prices `lines` in `currency`, with the coupon `coupon_code` if given. Errors name
/// `lines[i].product_id`, `lines[i].quantity`, `currency` and `coupon`.
pub async fn price(
    store: &Store,
    tenant: &TenantId,
    currency: &str,
    lines: &[CartLine],
    coupon_code: Option<&str>,
) -> Result<Quote, CheckoutError> {
    let mut invalid = Invalid::default();
    let currency = invalid.check(Currency::parse("currency", currency));
    let mut inputs = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let product = match store.product(tenant, &line.product_id).await {
            Ok(p) if p.fields.active => p,
            Ok(_) | Err(StoreError::NotFound) => {
                invalid.push(
                    format!("lines[{i}].product_id"),
                    "this product is not for sale",
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(currency) = currency else { continue };
        let Some(price) = product
            .fields
            .prices
            .iter()
            .find(|p| p.currency == currency.code())
        else {
            invalid.push(
                format!("lines[{i}].product_id"),
                format!("{} is not sold in {currency}", product.fields.name),
            );
            continue;
        };
        inputs.push(LineInput {
            product_id: product.id,
            name: product.fields.name,
            quantity: line.quantity,
            unit_amount: line.unit_amount.unwrap_or(price.amount),
            fixed_discount: line.discount.unwrap_or(0),
        });
    }
    let coupon = match coupon_code.map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(code) => invalid.check(load_coupon(store, tenant, code).await?),
    };
    invalid.into_result()?;
    let currency = currency.ok_or_else(|| Invalid::field("currency", "is required"))?;
    let mut priced = quote(currency, &inputs, coupon.as_ref())?;
    // `quote` names its own fields `lines[i].quantity`; keep them.
    if coupon.is_some() && priced.coupon_code.is_none() {
        // The coupon applies to none of these products or currencies.
        return Err(Invalid::field("coupon", "this coupon does not apply to your order").into());
    }
    priced.coupon_code = coupon.map(|c| c.code);
    Ok(priced)
}

async fn load_coupon(
    store: &Store,
    tenant: &TenantId,
    raw: &str,
) -> Result<Result<CouponInput, Invalid>, CheckoutError> {
    let Ok(code) = CouponCode::parse("coupon", raw) else {
        return Ok(Err(Invalid::field("coupon", "this coupon does not exist")));
    };
    let coupon = match store.coupon_by_code(tenant, code.as_str()).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            return Ok(Err(Invalid::field("coupon", "this coupon does not exist")));
        }
        Err(e) => return Err(e.into()),
    };
    let f = &coupon.fields;
    if let Some(reason) = coupon_unusable_reason(
        f.active,
        f.expires_at.map(|t| t.0),
        f.max_redemptions,
        coupon.times_redeemed,
        Utc::now(),
    ) {
        return Ok(Err(Invalid::field("coupon", reason)));
    }
    let discount = Discount::parse(f.percent_off, f.amount_off, f.currency.as_deref())
        .map_err(|e| CheckoutError::Store(StoreError::Corrupt(e.to_string())))?;
    Ok(Ok(CouponInput {
        code: f.code.clone(),
        discount,
        product_ids: f.product_ids.clone(),
    }))
}

/// Everything a customer gives to place an order.
#[derive(Debug, Clone, Default)]
pub struct OrderInput {
    pub currency: String,
    pub lines: Vec<CartLine>,
    pub coupon: Option<String>,
    pub email: String,
    pub name: Option<String>,
    pub payment_method: String,
    /// Which of [`CONSENTS`] were given.
    pub consents: Vec<String>,
    /// The consent texts shown, by kind, so the version accepted can be kept.
    pub consent_texts: Vec<(String, String)>,
    pub locale: String,
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub return_url: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub cart_id: Option<CartId>,
}

/// A short, stable identifier of a consent text, stored as what was accepted.
pub fn consent_version(locale: &str, text: &str) -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    format!("{locale}-{}", &hash[..16])
}

/// Validates everything and creates the order (`not_paid`, `not_delivered`) with its
/// `order.created` event. Placing the same cart twice returns the first order.
pub async fn place_order(
    store: &Store,
    tenant: &TenantRecord,
    input: &OrderInput,
) -> Result<OrderRecord, CheckoutError> {
    let settings = TenantSettings::from_json(&tenant.settings);
    let mut invalid = Invalid::default();
    let email = invalid.check(EmailAddress::parse("email", &input.email));
    let name = match input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        None => None,
        Some(n) => invalid.check(parse_text("name", n, 200)),
    };
    let method = invalid.check(PaymentMethod::parse(
        "payment_method",
        &input.payment_method,
    ));
    if let Some(m) = method
        && !settings.enabled_methods().contains(&m)
    {
        invalid.push("payment_method", "this payment method is not available");
    }
    for kind in CONSENTS {
        if !input.consents.iter().any(|c| c == kind) {
            invalid.push(format!("consents.{kind}"), "is required to continue");
        }
    }
    let quote = match price(
        store,
        &tenant.id,
        &input.currency,
        &input.lines,
        input.coupon.as_deref(),
    )
    .await
    {
        Ok(q) => Some(q),
        Err(CheckoutError::Invalid(e)) => {
            invalid.errors.extend(e.errors);
            None
        }
        Err(e) => return Err(e),
    };
    invalid.into_result()?;
    let (Some(email), Some(method), Some(quote)) = (email, method, quote) else {
        return Err(Invalid::field("email", "is required").into());
    };
    let now = Utc::now().timestamp_millis();
    let consents = CONSENTS
        .iter()
        .map(|kind| {
            let text = input
                .consent_texts
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, t)| t.as_str())
                .unwrap_or(kind);
            Consent {
                kind: (*kind).to_owned(),
                text_version: consent_version(&input.locale, text),
                accepted_at: now,
                ip: input.ip.clone(),
                user_agent: input
                    .user_agent
                    .as_ref()
                    .map(|u| u.chars().take(500).collect()),
            }
        })
        .collect();
    let coupon_code = quote.coupon_code.clone();
    let order = store
        .create_order(
            &tenant.id,
            &NewOrder {
                quote,
                email: email.as_str().to_owned(),
                name,
                locale: input.locale.clone(),
                payment_method: method,
                custom: input.custom.clone(),
                return_url: input.return_url.clone(),
                consents,
                cart_id: input.cart_id.clone(),
                coupon_code,
            },
            method == PaymentMethod::TestCard,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => Invalid::field("coupon", m).into(),
            other => CheckoutError::from(other),
        })?;
    Ok(order)
}

/// The result of a card payment.
#[derive(Debug)]
pub enum CardOutcome {
    Paid(Box<OrderRecord>),
    /// Declined: the attempt is recorded and `payment.failed` sent; the customer may
    /// retry or switch method.
    Declined {
        order: Box<OrderRecord>,
        payment: Box<PaymentRecord>,
    },
}

/// Charges the order's total to a card through the sandbox gateway.
pub async fn pay_with_card(
    store: &Store,
    tenant: &TenantId,
    order: &OrderRecord,
    input: &CardInput<'_>,
) -> Result<CardOutcome, CheckoutError> {
    if order.status != "not_paid" {
        return Err(CheckoutError::Conflict(
            "this order is not waiting for payment".into(),
        ));
    }
    let card = Card::parse(input, Utc::now().date_naive())?;
    let currency = Currency::parse("currency", &order.currency)?;
    let amount = kassa_domain::money::Money {
        amount: order.total,
        currency,
    };
    let result = TestCardGateway.charge(&card, amount);
    let attempt = PaymentAttempt {
        method: PaymentMethod::TestCard,
        succeeded: result.is_ok(),
        amount: order.total,
        currency: order.currency.clone(),
        failure_code: result.as_ref().err().map(|d| d.code.to_owned()),
        failure_message: result.as_ref().err().map(|d| d.message.to_owned()),
        card_brand: Some(card.brand.to_owned()),
        card_last4: Some(card.last4.clone()),
        reference: result.as_ref().ok().map(|c| c.reference.clone()),
        test_mode: true,
    };
    let (order, payment) = store.record_payment(tenant, &order.id, &attempt).await?;
    tracing::info!(order = %order.id, status = %payment.status, brand = card.brand, last4 = %card.last4, "card payment");
    Ok(if attempt.succeeded {
        CardOutcome::Paid(Box::new(order))
    } else {
        CardOutcome::Declined {
            order: Box::new(order),
            payment: Box::new(payment),
        }
    })
}

/// Records money received offline (a bank transfer) for the whole order.
pub async fn record_offline_payment(
    store: &Store,
    tenant: &TenantId,
    order_id: &str,
    method: &str,
    amount: i64,
    currency: &str,
    reference: Option<String>,
) -> Result<OrderRecord, CheckoutError> {
    let order = store.order(tenant, order_id).await?;
    let mut invalid = Invalid::default();
    let method = invalid.check(PaymentMethod::parse("method", method));
    if method == Some(PaymentMethod::TestCard) {
        invalid.push("method", "card payments are taken on the payment page");
    }
    if !currency.eq_ignore_ascii_case(&order.currency) {
        invalid.push("currency", format!("the order is in {}", order.currency));
    }
    if amount != order.total {
        invalid.push(
            "amount",
            format!("must be the order total, {}", order.total),
        );
    }
    invalid.into_result()?;
    let (order, _) = store
        .record_payment(
            tenant,
            &order.id,
            &PaymentAttempt {
                method: PaymentMethod::BankTransfer,
                succeeded: true,
                amount,
                currency: order.currency.clone(),
                failure_code: None,
                failure_message: None,
                card_brand: None,
                card_last4: None,
                reference,
                test_mode: false,
            },
        )
        .await?;
    Ok(order)
}
