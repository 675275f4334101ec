//! `/checkout-links`: a product's buy link with preset quantity, currency or coupon,
//! and, signed with the store's link-signing secret, an offer the customer cannot
//! change (a price, a fixed discount, quantity bounds, an expiry). The rules are
//! `kassa_orders::create_checkout_link`'s (the dashboard's too), the signing
//! `kassa_domain::signed_link`'s, the same a merchant's own signed links follow.
//! A link is of the mode of the key that made it, for a product of that mode; only its
//! mode's keys see it, and its `url` opens its mode's checkout.

use kassa_domain::access::ApiAction;
use kassa_domain::ids::CheckoutLinkId;
use kassa_domain::mode::Mode;
use kassa_store::{CheckoutLinkRecord, TenantRecord};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::{ApiContext, Deleted};
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct CheckoutLinksApi(pub ApiContext);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CheckoutLinkIn {
    pub product_id: String,
    /// Default 1.
    pub quantity: Option<i64>,
    /// One of the product's price currencies; the customer's choice when absent.
    pub currency: Option<String>,
    /// A coupon code applied when the page opens.
    pub coupon: Option<String>,
    /// A unit price in minor units of `currency` that the customer cannot change.
    /// Any of `price`, `discount`, `min_quantity`, `max_quantity` and `expires_at`
    /// makes a signed link: then `quantity` is fixed unless bounds are given, and a
    /// price or discount needs `currency`.
    pub price: Option<i64>,
    /// A fixed amount off the line, in minor units of `currency`.
    pub discount: Option<i64>,
    /// The fewest units the customer may buy on the signed offer.
    pub min_quantity: Option<i64>,
    /// The most units the customer may buy on the signed offer.
    pub max_quantity: Option<i64>,
    /// When the signed offer stops holding: the link, a cart holding it and an
    /// order placed with it cannot be used (or paid online) after.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Object)]
pub struct CheckoutLinkOut {
    /// `lnk_…`
    pub id: String,
    pub product_id: String,
    pub quantity: i64,
    pub currency: Option<String>,
    pub coupon: Option<String>,
    /// Whether `url` carries a signed offer.
    pub signed: bool,
    pub price: Option<i64>,
    pub discount: Option<i64>,
    pub min_quantity: Option<i64>,
    pub max_quantity: Option<i64>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The link to hand to customers.
    pub url: String,
    /// A live link (else a test one), fixed when it is made: the key's mode.
    pub livemode: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

list_type!(CheckoutLinkList, CheckoutLinkOut);

impl CheckoutLinksApi {
    /// The store's link-signing secret, which signed links' URLs are made with.
    async fn secret(&self, tenant: &TenantRecord) -> Result<kassa_domain::Secret, ApiError> {
        self.0
            .store
            .link_secret(&tenant.id)
            .await
            .map_err(ApiError::store_failed)
    }

    /// The link opens the checkout of its mode.
    fn out(&self, tenant: &TenantRecord, secret: &str, l: CheckoutLinkRecord) -> CheckoutLinkOut {
        let f = &l.fields;
        let mode = Mode::from_livemode(l.livemode);
        let url =
            kassa_orders::checkout_link_url(&self.0.public_url, &tenant.slug, mode, secret, f);
        let offer = f.offer.as_ref();
        let bounded = offer.is_some_and(|o| o.min_quantity != o.max_quantity);
        CheckoutLinkOut {
            id: l.id.to_string(),
            product_id: f.product_id.to_string(),
            quantity: f.quantity,
            currency: f.currency.clone(),
            coupon: f.coupon_code.clone(),
            signed: offer.is_some(),
            price: offer.and_then(|o| o.unit_amount),
            discount: offer.and_then(|o| o.discount),
            min_quantity: offer.filter(|_| bounded).map(|o| o.min_quantity),
            max_quantity: offer.filter(|_| bounded).map(|o| o.max_quantity),
            expires_at: offer.and_then(|o| o.expires_at()),
            url,
            livemode: l.livemode,
            created_at: l.created_at.0,
        }
    }
}

fn link_id(raw: &str) -> Result<CheckoutLinkId, ApiError> {
    CheckoutLinkId::parse(raw).map_err(|_| ApiError::not_found("checkout link"))
}

#[OpenApi(
    prefix_path = "/checkout-links",
    tag = "crate::context::Tag::CheckoutLinks"
)]
impl CheckoutLinksApi {
    /// Create a checkout link
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<CheckoutLinkIn>,
    ) -> Result<Json<CheckoutLinkOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::EditCatalog)?;
        let body = body.0;
        let input = kassa_orders::CheckoutLinkInput {
            product_id: &body.product_id,
            quantity: body.quantity,
            currency: body.currency.as_deref(),
            coupon: body.coupon.as_deref(),
            price: body.price,
            discount: body.discount,
            min_quantity: body.min_quantity,
            max_quantity: body.max_quantity,
            expires_at: body.expires_at,
        };
        let record =
            kassa_orders::create_checkout_link(&self.0.store, &tenant.id, auth.mode(), &input)
                .await
                .map_err(ApiError::from_orders("checkout link"))?;
        let secret = self.secret(tenant).await?;
        Ok(Json(self.out(tenant, secret.expose_secret(), record)))
    }

    /// List checkout links, newest first
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<CheckoutLinkList>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let page = self
            .0
            .store
            .list_checkout_links(&tenant.id, auth.mode(), &page_request(limit.0, cursor.0)?)
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        let secret = self.secret(tenant).await?;
        Ok(Json(CheckoutLinkList::from_page(page, |l| {
            self.out(tenant, secret.expose_secret(), l)
        })))
    }

    /// Get a checkout link
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<CheckoutLinkOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let record = self
            .0
            .store
            .checkout_link(&tenant.id, auth.mode(), &link_id(&id)?)
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        let secret = self.secret(tenant).await?;
        Ok(Json(self.out(tenant, secret.expose_secret(), record)))
    }

    /// Delete a checkout link
    ///
    /// The product's own buy link keeps working.
    #[oai(path = "/:id", method = "delete")]
    async fn delete(&self, auth: ApiKey, id: Path<String>) -> Result<Deleted, ApiError> {
        self.0
            .store
            .delete_checkout_link(
                &auth.allowed(ApiAction::EditCatalog)?.id,
                auth.mode(),
                &link_id(&id)?,
            )
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        Ok(Deleted::Deleted)
    }
}
