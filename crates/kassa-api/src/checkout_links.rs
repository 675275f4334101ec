//! `/checkout-links`: a product's buy link with preset quantity, currency or coupon.

use kassa_domain::Invalid;
use kassa_domain::access::ApiAction;
use kassa_domain::catalog::{CouponCode, parse_quantity};
use kassa_domain::ids::{CheckoutLinkId, ProductId};
use kassa_domain::money::Currency;
use kassa_store::{CheckoutLinkFields, CheckoutLinkRecord, StoreError};
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
}

#[derive(Debug, Object)]
pub struct CheckoutLinkOut {
    /// `lnk_…`
    pub id: String,
    pub product_id: String,
    pub quantity: i64,
    pub currency: Option<String>,
    pub coupon: Option<String>,
    /// The link to hand to customers.
    pub url: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

list_type!(CheckoutLinkList, CheckoutLinkOut);

impl CheckoutLinksApi {
    fn out(&self, slug: &str, l: CheckoutLinkRecord) -> CheckoutLinkOut {
        let mut url = format!(
            "{}/{}/buy/{}?quantity={}",
            self.0.public_url, slug, l.fields.product_id, l.fields.quantity
        );
        if let Some(c) = &l.fields.currency {
            url.push_str(&format!("&currency={c}"));
        }
        if let Some(c) = &l.fields.coupon_code {
            url.push_str(&format!("&coupon={c}"));
        }
        CheckoutLinkOut {
            id: l.id.to_string(),
            product_id: l.fields.product_id.to_string(),
            quantity: l.fields.quantity,
            currency: l.fields.currency,
            coupon: l.fields.coupon_code,
            url,
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
        let (Some(product), Some(quantity), true) = (product, quantity, invalid.errors.is_empty())
        else {
            return Err(invalid.into());
        };
        let fields = CheckoutLinkFields {
            product_id: product.id,
            quantity,
            currency: currency.map(|c| c.code().to_owned()),
            coupon_code: coupon.map(|c| c.as_str().to_owned()),
        };
        let record = self
            .0
            .store
            .create_checkout_link(&tenant.id, &fields)
            .await
            .map_err(ApiError::from_store("checkout link"))?;
        Ok(Json(self.out(&tenant.slug, record)))
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
        Ok(Json(CheckoutLinkList::from_page(page, |l| {
            self.out(&tenant.slug, l)
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
        Ok(Json(self.out(&tenant.slug, record)))
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
