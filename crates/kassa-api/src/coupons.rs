//! `/coupons`: percent or fixed-amount discounts customers enter by code. A coupon is
//! of the mode of the key that made it: only its mode's orders take it, and only its
//! mode's keys see it; its code is unique in its store's world.

use chrono::{DateTime, Utc};
use kassa_domain::access::ApiAction;
use kassa_domain::catalog::{coupon_unusable_reason, parse_coupon_limits};
use kassa_domain::ids::CouponId;
use kassa_orders::CouponInput;
use kassa_store::{CouponRecord, Timestamp};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct CouponsApi(pub ApiContext);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CouponIn {
    /// What customers type; letters, digits, `-` and `_`, matched without regard to case.
    pub code: String,
    /// Whole percent off, 1 to 100. Give this or `amount_off`.
    pub percent_off: Option<i64>,
    /// Minor units off, in `currency`. Give this or `percent_off`.
    pub amount_off: Option<i64>,
    /// Required with `amount_off`; the coupon applies only to orders in it.
    pub currency: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// How many orders may use it in all.
    pub max_redemptions: Option<i64>,
    /// The products it applies to; all when empty.
    pub product_ids: Option<Vec<String>>,
    /// Default true.
    pub active: Option<bool>,
}

/// What can change on a coupon; the code and the discount cannot.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CouponPatch {
    pub active: Option<bool>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i64>,
}

#[derive(Debug, Object)]
pub struct CouponOut {
    /// `cpn_…`
    pub id: String,
    pub code: String,
    pub percent_off: Option<i64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i64>,
    /// How many paid orders used it. Unpaid orders hold a use for the store's
    /// `coupon_hold` (a day by default) without counting here; while they hold it,
    /// no other order can take it.
    pub times_redeemed: i64,
    pub product_ids: Vec<String>,
    pub active: bool,
    /// A live coupon (else a test one), fixed when it is made: the key's mode.
    pub livemode: bool,
    /// Whether a customer could use it now (active, not expired, not used up by paid
    /// orders; unpaid orders holding its last uses are not counted here).
    pub valid: bool,
    pub created_at: DateTime<Utc>,
}

list_type!(CouponList, CouponOut);

fn out(c: CouponRecord) -> CouponOut {
    let valid = coupon_unusable_reason(
        c.fields.active,
        c.fields.expires_at.map(|t| t.0),
        c.fields.max_redemptions,
        c.times_redeemed,
        Utc::now(),
    )
    .is_none();
    CouponOut {
        id: c.id.to_string(),
        code: c.fields.code,
        percent_off: c.fields.percent_off,
        amount_off: c.fields.amount_off,
        currency: c.fields.currency,
        expires_at: c.fields.expires_at.map(|t| t.0),
        max_redemptions: c.fields.max_redemptions,
        times_redeemed: c.times_redeemed,
        product_ids: c
            .fields
            .product_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        active: c.fields.active,
        livemode: c.livemode,
        valid,
        created_at: c.created_at.0,
    }
}

fn coupon_id(raw: &str) -> Result<CouponId, ApiError> {
    CouponId::parse(raw).map_err(|_| ApiError::not_found("coupon"))
}

#[OpenApi(prefix_path = "/coupons", tag = "crate::context::Tag::Coupons")]
impl CouponsApi {
    /// Create a coupon
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<CouponIn>,
    ) -> Result<Json<CouponOut>, ApiError> {
        let tenant = &auth.allowed(ApiAction::EditCatalog)?.id;
        let body = body.0;
        let product_ids = body.product_ids.unwrap_or_default();
        let input = CouponInput {
            code: &body.code,
            percent_off: body.percent_off,
            amount_off: body.amount_off,
            currency: body.currency.as_deref(),
            expires_at: body.expires_at,
            max_redemptions: body.max_redemptions,
            product_ids: &product_ids,
            active: body.active.unwrap_or(true),
        };
        let record = kassa_orders::create_coupon(&self.0.store, tenant, auth.mode(), &input)
            .await
            .map_err(ApiError::from_orders("coupon"))?;
        Ok(Json(out(record)))
    }

    /// List coupons, newest first
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<CouponList>, ApiError> {
        let page = self
            .0
            .store
            .list_coupons(
                &auth.allowed(ApiAction::Read)?.id,
                auth.mode(),
                &page_request(limit.0, cursor.0)?,
            )
            .await
            .map_err(ApiError::from_store("coupon"))?;
        Ok(Json(CouponList::from_page(page, out)))
    }

    /// Get a coupon
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<CouponOut>, ApiError> {
        let record = self
            .0
            .store
            .coupon(
                &auth.allowed(ApiAction::Read)?.id,
                auth.mode(),
                &coupon_id(&id)?,
            )
            .await
            .map_err(ApiError::from_store("coupon"))?;
        Ok(Json(out(record)))
    }

    /// Turn a coupon on or off, or change its expiry or usage limit
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<CouponPatch>,
    ) -> Result<Json<CouponOut>, ApiError> {
        let tenant = &auth.allowed(ApiAction::EditCatalog)?.id;
        let id = coupon_id(&id)?;
        let current = self
            .0
            .store
            .coupon(tenant, auth.mode(), &id)
            .await
            .map_err(ApiError::from_store("coupon"))?;
        parse_coupon_limits(body.expires_at, body.max_redemptions, Utc::now())?;
        let record = self
            .0
            .store
            .update_coupon(
                tenant,
                auth.mode(),
                &id,
                body.active.unwrap_or(current.fields.active),
                body.expires_at
                    .map(Timestamp::from)
                    .or(current.fields.expires_at),
                body.max_redemptions.or(current.fields.max_redemptions),
            )
            .await
            .map_err(ApiError::from_store("coupon"))?;
        Ok(Json(out(record)))
    }
}
