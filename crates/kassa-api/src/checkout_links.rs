//! `/checkout-links`: a product's buy link with preset quantity, currency or coupon,
//! and, signed with the store's link-signing secret, an offer the customer cannot
//! change (a price, a fixed discount, quantity bounds, an expiry). The signing is
//! `kassa_domain::signed_link`'s and the offer's rules `kassa_domain::offer`'s, the
//! same a merchant's own signed links follow.

use kassa_domain::Invalid;
use kassa_domain::access::ApiAction;
use kassa_domain::catalog::{CouponCode, parse_quantity};
use kassa_domain::ids::{CheckoutLinkId, ProductId};
use kassa_domain::mode::Mode;
use kassa_domain::money::Currency;
use kassa_domain::offer::{Offer, OfferTerms};
use kassa_domain::signed_link;
use kassa_store::{CheckoutLinkFields, CheckoutLinkRecord, StoreError, TenantRecord};
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
            .map_err(ApiError::internal)
    }

    /// The link opens the checkout of the key's mode (`mode`).
    fn out(
        &self,
        tenant: &TenantRecord,
        mode: Mode,
        secret: &str,
        l: CheckoutLinkRecord,
    ) -> CheckoutLinkOut {
        let f = &l.fields;
        let store_path = mode.store_path(&tenant.slug);
        let base = format!("{}{store_path}/buy/{}", self.0.public_url, f.product_id);
        let url = match &f.offer {
            None => {
                let mut url = format!("{base}?quantity={}", f.quantity);
                if let Some(c) = &f.currency {
                    url.push_str(&format!("&currency={c}"));
                }
                if let Some(c) = &f.coupon_code {
                    url.push_str(&format!("&coupon={c}"));
                }
                url
            }
            // `link_params` names each known key once, which always signs.
            Some(offer) => match signed_link::signed_query(
                secret,
                &tenant.slug,
                f.product_id.as_str(),
                &link_params(&l.fields, offer),
            ) {
                Ok(query) => format!("{base}?{query}"),
                Err(problem) => {
                    tracing::error!(?problem, link = %l.id, "a checkout link does not sign");
                    base
                }
            },
        };
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
            created_at: l.created_at.0,
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

/// The offer a link's body asks for, by the rules of signed links, with errors named
/// by the body's fields. `None` when the link is not to be signed.
fn offer_of(
    body: &CheckoutLinkIn,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Offer>, Invalid> {
    let signed = body.price.is_some()
        || body.discount.is_some()
        || body.min_quantity.is_some()
        || body.max_quantity.is_some()
        || body.expires_at.is_some();
    if !signed {
        return Ok(None);
    }
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(Invalid::field("expires_at", "must be in the future"));
    }
    let text = |v: Option<i64>| v.map(|v| v.to_string());
    let (price, discount, quantity) = (text(body.price), text(body.discount), text(body.quantity));
    let (min, max) = (text(body.min_quantity), text(body.max_quantity));
    let expires = body.expires_at.map(|at| at.timestamp().to_string());
    Offer::parse(&OfferTerms {
        price: price.as_deref(),
        discount: discount.as_deref(),
        currency: body.currency.as_deref(),
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
        let mut invalid = Invalid::default();
        let quantity = invalid.check(parse_quantity("quantity", body.quantity.unwrap_or(1)));
        let product = match ProductId::parse(&body.product_id) {
            Err(_) => None,
            Ok(id) => match self.0.store.product(&tenant.id, &id).await {
                Ok(p) => Some(p),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(ApiError::internal(e)),
            },
        };
        if product.is_none() {
            invalid.push("product_id", "no such product");
        }
        let currency = body
            .currency
            .as_deref()
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
        let coupon = body
            .coupon
            .as_deref()
            .and_then(|c| invalid.check(CouponCode::parse("coupon", c)));
        if let Some(code) = &coupon {
            match self.0.store.coupon_by_code(&tenant.id, code.as_str()).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => invalid.push("coupon", "no such coupon"),
                Err(e) => return Err(ApiError::internal(e)),
            }
        }
        let offer = if invalid.errors.is_empty() {
            invalid.check(offer_of(&body, chrono::Utc::now())).flatten()
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
        let record = self
            .0
            .store
            .create_checkout_link(&tenant.id, &fields)
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        let secret = self.secret(tenant).await?;
        Ok(Json(self.out(
            tenant,
            auth.mode(),
            secret.expose_secret(),
            record,
        )))
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
            .list_checkout_links(&tenant.id, &page_request(limit.0, cursor.0)?)
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        let secret = self.secret(tenant).await?;
        Ok(Json(CheckoutLinkList::from_page(page, |l| {
            self.out(tenant, auth.mode(), secret.expose_secret(), l)
        })))
    }

    /// Get a checkout link
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<CheckoutLinkOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let record = self
            .0
            .store
            .checkout_link(&tenant.id, &link_id(&id)?)
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        let secret = self.secret(tenant).await?;
        Ok(Json(self.out(
            tenant,
            auth.mode(),
            secret.expose_secret(),
            record,
        )))
    }

    /// Delete a checkout link
    ///
    /// The product's own buy link keeps working.
    #[oai(path = "/:id", method = "delete")]
    async fn delete(&self, auth: ApiKey, id: Path<String>) -> Result<Deleted, ApiError> {
        self.0
            .store
            .delete_checkout_link(&auth.allowed(ApiAction::EditCatalog)?.id, &link_id(&id)?)
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        Ok(Deleted::Deleted)
    }
}
