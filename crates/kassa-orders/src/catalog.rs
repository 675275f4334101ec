//! The catalog's rules that need the store: a product's delivery names a pool or a
//! plugin of the same store, the pool of the product's own mode; a coupon's products
//! are the store's own, of the coupon's mode; a checkout link's product, currency and
//! coupon are the store's, of the link's mode, and its offer signs. What a key or the
//! dashboard makes is of its mode: the other world's objects are not found.

use chrono::{DateTime, Utc};
use kassa_domain::Invalid;
use kassa_domain::catalog::{
    CouponCode, Delivery, Discount, KeysPer, parse_coupon_limits, parse_outgoing_url,
    parse_product_scope, parse_quantity,
};
use kassa_domain::ids::{LicensePoolId, PluginId, ProductId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::money::Currency;
use kassa_domain::offer::{Offer, OfferTerms};
use kassa_domain::signed_link;
use kassa_store::{
    CheckoutLinkFields, CheckoutLinkRecord, CouponFields, CouponRecord, Store, StoreError,
    Timestamp,
};

use crate::OrdersError;

/// A delivery method as chosen on a form or in a request, not yet checked.
#[derive(Debug, Clone, Copy)]
pub enum DeliveryChoice<'a> {
    LicensePool {
        pool_id: &'a str,
        keys_per: KeysPer,
    },
    WebService {
        url: &'a str,
        keys_per: KeysPer,
    },
    Plugin {
        plugin_id: &'a str,
        keys_per: KeysPer,
    },
}

/// The delivery of a product of `mode`'s world, when what it names exists in this
/// store (a pool: of that mode, since a pool serves only its own mode's orders);
/// field errors name `delivery.pool_id`, `delivery.url` or `delivery.plugin_id`.
pub async fn delivery(
    store: &Store,
    tenant: &TenantId,
    mode: Mode,
    choice: DeliveryChoice<'_>,
) -> Result<Result<Delivery, Invalid>, StoreError> {
    Ok(match choice {
        DeliveryChoice::LicensePool { pool_id, keys_per } => {
            let no_pool = || Invalid::field("delivery.pool_id", "no such license pool");
            match LicensePoolId::parse(pool_id) {
                Err(_) => Err(no_pool()),
                Ok(pool_id) => match store.license_pool(tenant, &pool_id).await {
                    Ok(pool) if pool.livemode != mode.is_live() => Err(Invalid::field(
                        "delivery.pool_id",
                        format!(
                            "a {mode} mode product is delivered from a {mode} mode license pool; \
                             this pool is a {} mode one",
                            Mode::from_livemode(pool.livemode)
                        ),
                    )),
                    Ok(_) => Ok(Delivery::LicensePool { pool_id, keys_per }),
                    Err(StoreError::NotFound) => Err(no_pool()),
                    Err(e) => return Err(e),
                },
            }
        }
        DeliveryChoice::WebService { url, keys_per } => parse_outgoing_url("delivery.url", url)
            .map(|url| Delivery::WebService { url, keys_per }),
        DeliveryChoice::Plugin {
            plugin_id,
            keys_per,
        } => {
            let no_plugin = || Invalid::field("delivery.plugin_id", "no such plugin");
            match PluginId::parse(plugin_id) {
                Err(_) => Err(no_plugin()),
                Ok(plugin_id) => match store.plugin(tenant, &plugin_id).await {
                    Ok(_) => Ok(Delivery::Plugin {
                        plugin_id,
                        keys_per,
                    }),
                    Err(StoreError::NotFound) => Err(no_plugin()),
                    Err(e) => return Err(e),
                },
            }
        }
    })
}

/// A new coupon as a merchant sent it.
#[derive(Debug, Clone, Default)]
pub struct CouponInput<'a> {
    pub code: &'a str,
    pub percent_off: Option<i64>,
    pub amount_off: Option<i64>,
    pub currency: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i64>,
    pub product_ids: &'a [String],
    pub active: bool,
}

/// Creates a coupon of `mode`'s world: checked field by field (the products must be
/// the store's, of that mode), and its code unique in the store's world (`Conflict`
/// otherwise).
pub async fn create_coupon(
    store: &Store,
    tenant: &TenantId,
    mode: Mode,
    input: &CouponInput<'_>,
) -> Result<CouponRecord, OrdersError> {
    let mut invalid = Invalid::default();
    let code = invalid.check(CouponCode::parse("code", input.code));
    let discount = invalid.check(Discount::parse(
        input.percent_off,
        input.amount_off,
        input.currency,
    ));
    invalid.check(parse_coupon_limits(
        input.expires_at,
        input.max_redemptions,
        Utc::now(),
    ));
    let scope = invalid
        .check(parse_product_scope(input.product_ids))
        .unwrap_or_default();
    for (i, product) in scope.iter().enumerate() {
        match store.product(tenant, mode, product).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                invalid.push(format!("product_ids[{i}]"), "no such product")
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (Some(code), Some(discount), true) = (code, discount, invalid.errors.is_empty()) else {
        return Err(invalid.into());
    };
    let (percent_off, amount_off, currency) = match discount {
        Discount::Percent(p) => (Some(p), None, None),
        Discount::Amount(m) => (None, Some(m.amount), Some(m.currency.code().to_owned())),
    };
    let fields = CouponFields {
        code: code.as_str().to_owned(),
        percent_off,
        amount_off,
        currency,
        expires_at: input.expires_at.map(Timestamp::from),
        max_redemptions: input.max_redemptions,
        product_ids: scope,
        active: input.active,
    };
    Ok(store.create_coupon(tenant, mode, &fields).await?)
}

/// A checkout link as the merchant asks for it (an API body, a dashboard form). Any of
/// `price`, `discount`, `min_quantity`, `max_quantity` and `expires_at` makes it a
/// signed offer (`kassa_domain::offer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckoutLinkInput<'a> {
    pub product_id: &'a str,
    /// Default 1.
    pub quantity: Option<i64>,
    pub currency: Option<&'a str>,
    pub coupon: Option<&'a str>,
    /// A unit price in minor units of `currency`.
    pub price: Option<i64>,
    /// A fixed amount off the line, in minor units of `currency`.
    pub discount: Option<i64>,
    pub min_quantity: Option<i64>,
    pub max_quantity: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Checks a checkout link of `mode`'s world against the store (its product, the
/// product's currencies, its coupon, all of that mode) and the rules of signed offers,
/// and stores it. Errors name the input's fields.
pub async fn create_checkout_link(
    store: &Store,
    tenant: &TenantId,
    mode: Mode,
    input: &CheckoutLinkInput<'_>,
) -> Result<CheckoutLinkRecord, OrdersError> {
    let mut invalid = Invalid::default();
    let quantity = invalid.check(parse_quantity("quantity", input.quantity.unwrap_or(1)));
    let product = match ProductId::parse(input.product_id) {
        Err(_) => None,
        Ok(id) => match store.product(tenant, mode, &id).await {
            Ok(p) => Some(p),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
    };
    if product.is_none() {
        invalid.push("product_id", "no such product");
    }
    let currency = input
        .currency
        .and_then(|c| invalid.check(Currency::parse("currency", c)));
    if let (Some(p), Some(c)) = (&product, currency)
        && !p
            .fields
            .prices
            .iter()
            .any(|price| price.currency == c.code())
    {
        invalid.push("currency", format!("the product has no {c} price"));
    }
    let coupon = input
        .coupon
        .and_then(|c| invalid.check(CouponCode::parse("coupon", c)));
    if let Some(code) = &coupon {
        match store.coupon_by_code(tenant, mode, code.as_str()).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => invalid.push("coupon", "no such coupon"),
            Err(e) => return Err(e.into()),
        }
    }
    let offer = if invalid.errors.is_empty() {
        invalid.check(offer_of(input, Utc::now())).flatten()
    } else {
        None
    };
    let (Some(product), Some(quantity), true) = (product, quantity, invalid.errors.is_empty())
    else {
        return Err(invalid.into());
    };
    let fields = CheckoutLinkFields {
        product_id: product.id,
        quantity: offer
            .as_ref()
            .map_or(quantity, |o| quantity.max(o.min_quantity)),
        currency: currency.map(|c| c.code().to_owned()),
        coupon_code: coupon.map(|c| c.as_str().to_owned()),
        offer,
    };
    Ok(store.create_checkout_link(tenant, mode, &fields).await?)
}

/// The offer `input` asks for, by the rules of signed links; `None` when the link is
/// not to be signed.
fn offer_of(input: &CheckoutLinkInput<'_>, now: DateTime<Utc>) -> Result<Option<Offer>, Invalid> {
    let signed = input.price.is_some()
        || input.discount.is_some()
        || input.min_quantity.is_some()
        || input.max_quantity.is_some()
        || input.expires_at.is_some();
    if !signed {
        return Ok(None);
    }
    if input.expires_at.is_some_and(|at| at <= now) {
        return Err(Invalid::field("expires_at", "must be in the future"));
    }
    let text = |v: Option<i64>| v.map(|v| v.to_string());
    let (price, discount) = (text(input.price), text(input.discount));
    let quantity = text(input.quantity);
    let (min, max) = (text(input.min_quantity), text(input.max_quantity));
    let expires = input.expires_at.map(|at| at.timestamp().to_string());
    Offer::parse(&OfferTerms {
        price: price.as_deref(),
        discount: discount.as_deref(),
        currency: input.currency,
        quantity: quantity.as_deref(),
        min_quantity: min.as_deref(),
        max_quantity: max.as_deref(),
        expires: expires.as_deref(),
    })
    .map(|(offer, _)| Some(offer))
    .map_err(|mut invalid| {
        for e in &mut invalid.errors {
            if e.field == "expires" {
                e.field = "expires_at".into();
            }
        }
        invalid
    })
}

/// The address customers open for a checkout link of the store `slug`: the product's
/// buy link in the checkout of `mode` with the presets, signed with the store's
/// link-signing `secret` when it holds an offer (under the store's name in `mode`,
/// `signed_link::signing_name`: a test link's offer does not hold in live mode).
pub fn checkout_link_url(
    public_url: &str,
    slug: &str,
    mode: Mode,
    secret: &str,
    link: &CheckoutLinkFields,
) -> String {
    let store_path = mode.store_path(slug);
    let base = format!("{public_url}{store_path}/buy/{}", link.product_id);
    let Some(offer) = &link.offer else {
        let mut url = format!("{base}?quantity={}", link.quantity);
        if let Some(c) = &link.currency {
            url.push_str(&format!("&currency={c}"));
        }
        if let Some(c) = &link.coupon_code {
            url.push_str(&format!("&coupon={c}"));
        }
        return url;
    };
    // `link_params` names each known key once, which always signs.
    match signed_link::signed_query(
        secret,
        &signed_link::signing_name(slug, mode),
        link.product_id.as_str(),
        &link_params(link, offer),
    ) {
        Ok(query) => format!("{base}?{query}"),
        Err(problem) => {
            tracing::error!(?problem, product = %link.product_id, "a checkout link does not sign");
            base
        }
    }
}

/// The parameters of a signed link, as `signed_link` signs them.
fn link_params(f: &CheckoutLinkFields, offer: &Offer) -> Vec<(String, String)> {
    let mut params = vec![("quantity".to_owned(), f.quantity.to_string())];
    let mut add = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            params.push((key.to_owned(), value));
        }
    };
    add("currency", f.currency.clone());
    add("coupon", f.coupon_code.clone());
    add("price", offer.unit_amount.map(|v| v.to_string()));
    add("discount", offer.discount.map(|v| v.to_string()));
    if offer.min_quantity != offer.max_quantity {
        add("min_quantity", Some(offer.min_quantity.to_string()));
        add("max_quantity", Some(offer.max_quantity.to_string()));
    }
    add("expires", offer.expires.map(|v| v.to_string()));
    params
}
