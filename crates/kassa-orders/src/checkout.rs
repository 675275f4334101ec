//! The checkout: a cart priced, and an order placed from it, with the same rules
//! whether the customer uses Kassa's pages or the merchant's own UI through the API.

use chrono::Utc;
use kassa_domain::Invalid;
use kassa_domain::catalog::{CouponCode, Delivery, Discount, coupon_unusable_reason};
use kassa_domain::error::parse_text;
use kassa_domain::ids::{OrderId, ProductId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::money::Currency;
use kassa_domain::offer;
use kassa_domain::order::{CouponInput, LineInput, PaymentMethod, Quote, quote};
use kassa_domain::tenant::{EmailAddress, TenantSettings};
use kassa_domain::workflow::{self, Refused};
use kassa_store::{
    CartLine, Consent, FromCart, NewOrder, OrderRecord, Placement, ProductRecord, Store,
    StoreError, TenantRecord,
};

use crate::error::OrdersError;

/// The consents a customer must give, and the text they accept.
pub const CONSENTS: [&str; 2] = ["terms", "personal_data"];

/// Prices `lines` in `currency` in `mode`'s world (its products, its coupon), with the
/// coupon `coupon_code` if given. A line from a signed link is priced by its offer,
/// which must hold now for the line's quantity and this currency. Errors name
/// `lines[i].product_id`, `lines[i].quantity`, `lines[i].offer`, `currency` and
/// `coupon`.
pub async fn price(
    store: &Store,
    tenant: &TenantId,
    mode: Mode,
    currency: &str,
    lines: &[CartLine],
    coupon_code: Option<&str>,
) -> Result<Quote, OrdersError> {
    Ok(
        price_with_deliveries(store, tenant, mode, currency, lines, coupon_code, &[])
            .await?
            .0,
    )
}

/// [`price`], with the delivery method of each product priced, as read for its price.
/// The products in `read` (of `mode`, read moments ago by the same request) are not
/// read again.
async fn price_with_deliveries(
    store: &Store,
    tenant: &TenantId,
    mode: Mode,
    currency: &str,
    lines: &[CartLine],
    coupon_code: Option<&str>,
    read: &[ProductRecord],
) -> Result<(Quote, Vec<(ProductId, Delivery)>), OrdersError> {
    let mut deliveries: Vec<(ProductId, Delivery)> = Vec::with_capacity(lines.len());
    let mut invalid = Invalid::default();
    let currency = invalid.check(Currency::parse("currency", currency));
    let mut inputs = Vec::with_capacity(lines.len());
    let now = Utc::now();
    for (i, line) in lines.iter().enumerate() {
        let product = match read
            .iter()
            .find(|p| p.id == line.product_id && p.livemode == mode.is_live())
        {
            Some(p) => Ok(p.clone()),
            None => store.product(tenant, mode, &line.product_id).await,
        };
        let product = match product {
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
        let Some((unit_amount, fixed_discount)) = invalid.check(offer::line_amounts(
            i,
            line.offer.as_ref(),
            line.quantity,
            currency,
            price.amount,
            now,
        )) else {
            continue;
        };
        if !deliveries.iter().any(|(id, _)| *id == product.id) {
            deliveries.push((product.id.clone(), product.fields.delivery));
        }
        inputs.push(LineInput {
            product_id: product.id,
            name: product.fields.name,
            quantity: line.quantity,
            unit_amount,
            fixed_discount,
        });
    }
    let coupon = match coupon_code.map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(code) => invalid.check(load_coupon(store, tenant, mode, code).await?),
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
    Ok((priced, deliveries))
}

async fn load_coupon(
    store: &Store,
    tenant: &TenantId,
    mode: Mode,
    raw: &str,
) -> Result<Result<CouponInput, Invalid>, OrdersError> {
    let Ok(code) = CouponCode::parse("coupon", raw) else {
        return Ok(Err(Invalid::field("coupon", "this coupon does not exist")));
    };
    let coupon = match store.coupon_by_code(tenant, mode, code.as_str()).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            return Ok(Err(Invalid::field("coupon", "this coupon does not exist")));
        }
        Err(e) => return Err(e.into()),
    };
    let f = &coupon.fields;
    // A limited coupon's uses: those counted for paid orders and those unpaid orders hold.
    let used = match f.max_redemptions {
        Some(_) => coupon.times_redeemed + store.coupon_holds(tenant, mode, &f.code).await?,
        None => coupon.times_redeemed,
    };
    if let Some(reason) = coupon_unusable_reason(
        f.active,
        f.expires_at.map(|t| t.0),
        f.max_redemptions,
        used,
        Utc::now(),
    ) {
        return Ok(Err(Invalid::field("coupon", reason)));
    }
    let discount = Discount::parse(f.percent_off, f.amount_off, f.currency.as_deref())
        .map_err(|e| OrdersError::Store(StoreError::Corrupt(e.to_string())))?;
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
    pub cart: Option<FromCart>,
    /// Products of `mode` this request read moments ago (a buy link's), priced as read
    /// instead of being read again.
    pub products: Vec<ProductRecord>,
    /// The world the order is placed in, for good: the checkout's (`/{store}/test/…`
    /// is test) or the API key's.
    pub mode: Mode,
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
) -> Result<OrderRecord, OrdersError> {
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
    if let Some(m) = method {
        let offered = settings.offered_methods(input.mode, tenant.stripe_ready(input.mode));
        match workflow::may_place(input.mode, m, &offered) {
            Ok(()) => {}
            // Said in the customer's language on the page (`Refused::code`).
            Err(refused @ Refused::SandboxInLiveMode(_)) => {
                invalid.errors.extend(refused.at("payment_method").errors)
            }
            Err(refused) => invalid.errors.extend(
                Invalid::with_reason(
                    "payment_method",
                    "this payment method is not available",
                    refused.reason(),
                )
                .errors,
            ),
        }
    }
    for kind in CONSENTS {
        if !input.consents.iter().any(|c| c == kind) {
            invalid.push(format!("consents.{kind}"), "is required to continue");
        }
    }
    let quote = match price_with_deliveries(
        store,
        &tenant.id,
        input.mode,
        &input.currency,
        &input.lines,
        input.coupon.as_deref(),
        &input.products,
    )
    .await
    {
        Ok(q) => Some(q),
        Err(OrdersError::Invalid(e)) => {
            invalid.errors.extend(e.errors);
            None
        }
        Err(e) => return Err(e),
    };
    invalid.into_result()?;
    let (Some(email), Some(method), Some((quote, deliveries))) = (email, method, quote) else {
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
    let new = NewOrder {
        id: OrderId::generate(),
        quote,
        email: email.as_str().to_owned(),
        name,
        locale: input.locale.clone(),
        payment_method: method,
        custom: input.custom.clone(),
        return_url: input.return_url.clone(),
        consents,
        cart: input.cart.clone(),
        coupon_code,
        coupon_hold: settings.coupon_hold(),
        test_mode: !input.mode.is_live(),
        // Priced above while every offer held; paying online is checked against this.
        offer_expires_at: input
            .lines
            .iter()
            .filter_map(|l| l.offer.as_ref().and_then(|o| o.expires_at()))
            .min(),
        deliveries,
    };
    let mut work = store.work(&tenant.id).await?;
    let id = match work
        .insert_order(&new, &workflow::placed(&new.id, method))
        .await
    {
        Ok(Placement::New(id)) => id,
        Ok(Placement::Existing(id)) => {
            drop(work);
            return Ok(store.order(&tenant.id, &id).await?);
        }
        Err(StoreError::Conflict(m)) => return Err(Invalid::field("coupon", m).into()),
        Err(e) => return Err(e.into()),
    };
    let order = work.view_after_follow(id.as_str()).await?;
    work.commit().await?;
    metrics::counter!("kassa_orders_placed_total", "method" => method.as_str()).increment(1);
    Ok(order)
}
