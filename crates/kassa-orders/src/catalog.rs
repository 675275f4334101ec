//! The catalog's rules that need the store: a product's delivery names a pool or a
//! plugin of the same store; a coupon's products are the store's own.

use chrono::{DateTime, Utc};
use kassa_domain::Invalid;
use kassa_domain::catalog::{
    CouponCode, Delivery, Discount, KeysPer, parse_coupon_limits, parse_outgoing_url,
    parse_product_scope,
};
use kassa_domain::ids::{LicensePoolId, PluginId, TenantId};
use kassa_store::{CouponFields, CouponRecord, Store, StoreError, Timestamp};

use crate::OrdersError;

/// A delivery method as chosen on a form or in a request, not yet checked.
#[derive(Debug, Clone, Copy)]
pub enum DeliveryChoice<'a> {
    LicensePool { pool_id: &'a str, keys_per: KeysPer },
    WebService { url: &'a str },
    Plugin { plugin_id: &'a str },
}

/// The delivery, when what it names exists in this store; field errors name
/// `delivery.pool_id`, `delivery.url` or `delivery.plugin_id`.
pub async fn delivery(
    store: &Store,
    tenant: &TenantId,
    choice: DeliveryChoice<'_>,
) -> Result<Result<Delivery, Invalid>, StoreError> {
    Ok(match choice {
        DeliveryChoice::LicensePool { pool_id, keys_per } => {
            let no_pool = || Invalid::field("delivery.pool_id", "no such license pool");
            match LicensePoolId::parse(pool_id) {
                Err(_) => Err(no_pool()),
                Ok(pool_id) => match store.license_pool(tenant, &pool_id).await {
                    Ok(_) => Ok(Delivery::LicensePool { pool_id, keys_per }),
                    Err(StoreError::NotFound) => Err(no_pool()),
                    Err(e) => return Err(e),
                },
            }
        }
        DeliveryChoice::WebService { url } => {
            parse_outgoing_url("delivery.url", url).map(|url| Delivery::WebService { url })
        }
        DeliveryChoice::Plugin { plugin_id } => {
            let no_plugin = || Invalid::field("delivery.plugin_id", "no such plugin");
            match PluginId::parse(plugin_id) {
                Err(_) => Err(no_plugin()),
                Ok(plugin_id) => match store.plugin(tenant, &plugin_id).await {
                    Ok(_) => Ok(Delivery::Plugin { plugin_id }),
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

/// Creates a coupon: checked field by field (the products must be the store's), and
/// its code unique in the store (`Conflict` otherwise).
pub async fn create_coupon(
    store: &Store,
    tenant: &TenantId,
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
        match store.product(tenant, product).await {
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
    Ok(store.create_coupon(tenant, &fields).await?)
}
