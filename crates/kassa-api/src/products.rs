//! `/products`: what a store sells, its prices per currency and how it is delivered.
//! A product is of the mode of the key that made it: a key sees and changes only its
//! own world's products (the other's are a 404, as another store's are).

use kassa_domain::Invalid;
use kassa_domain::access::ApiAction;
use kassa_domain::catalog::{
    Delivery, KeysPer, parse_description, parse_prices, parse_product_name,
};
use kassa_domain::ids::ProductId;
use kassa_orders::DeliveryChoice;
use kassa_store::{Price, ProductFields, ProductRecord};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Union};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct ProductsApi(pub ApiContext);

/// A price in integer minor units (1999 is 19.99 USD).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PriceIo {
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// Minor units, 0 or more.
    pub amount: i64,
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum KeysPerIo {
    /// One key for each unit bought.
    Unit,
    /// One key for the whole order line.
    Line,
}

/// Keys from one of the store's license pools.
#[derive(Debug, Clone, Object)]
pub struct LicensePoolDelivery {
    pub pool_id: String,
    /// Default `unit`.
    pub keys_per: Option<KeysPerIo>,
}

/// A signed POST to the merchant's own license service.
#[derive(Debug, Clone, Object)]
pub struct WebServiceDelivery {
    pub url: String,
    /// Default `unit`: the service must answer one license per unit bought (`line`:
    /// exactly one for the line). Any other count is not a delivery: the line is tried
    /// again, and fails with the reason.
    pub keys_per: Option<KeysPerIo>,
}

/// A WebAssembly fulfillment plugin uploaded to the store.
#[derive(Debug, Clone, Object)]
pub struct PluginDelivery {
    pub plugin_id: String,
    /// Default `unit`: the plugin must return one license per unit bought (`line`:
    /// exactly one for the line), as for `web_service`.
    pub keys_per: Option<KeysPerIo>,
}

/// How the product's license information is obtained.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "method", one_of)]
pub enum DeliveryIo {
    #[oai(mapping = "license_pool")]
    LicensePool(LicensePoolDelivery),
    #[oai(mapping = "web_service")]
    WebService(WebServiceDelivery),
    #[oai(mapping = "plugin")]
    Plugin(PluginDelivery),
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ProductIn {
    pub name: String,
    pub description: Option<String>,
    /// One price per currency, at least one.
    pub prices: Vec<PriceIo>,
    pub delivery: DeliveryIo,
    /// Whether the product can be bought; default true.
    pub active: Option<bool>,
}

/// Changes to a product; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub prices: Option<Vec<PriceIo>>,
    pub delivery: Option<DeliveryIo>,
    pub active: Option<bool>,
}

#[derive(Debug, Object)]
pub struct ProductOut {
    /// `prd_…`
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub prices: Vec<PriceIo>,
    pub delivery: DeliveryIo,
    pub active: bool,
    /// A live product (else a test one), fixed when it is made: the key's mode. Only
    /// its mode's checkout sells it, and only keys of its mode see it.
    pub livemode: bool,
    /// The product's checkout page; add `quantity`, `currency`, `coupon`, … as needed.
    pub buy_url: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

list_type!(ProductList, ProductOut);

impl ProductsApi {
    /// `store_path` is the store's path in the key's mode (`/{slug}` or
    /// `/{slug}/test`): a test key's buy links open the test checkout.
    fn out(&self, store_path: &str, p: ProductRecord) -> ProductOut {
        ProductOut {
            buy_url: format!("{}{}/buy/{}", self.0.public_url, store_path, p.id),
            id: p.id.to_string(),
            name: p.fields.name,
            description: p.fields.description,
            prices: p
                .fields
                .prices
                .into_iter()
                .map(|p| PriceIo {
                    currency: p.currency,
                    amount: p.amount,
                })
                .collect(),
            delivery: delivery_out(p.fields.delivery),
            active: p.fields.active,
            livemode: p.livemode,
            created_at: p.created_at.0,
            updated_at: p.updated_at.0,
        }
    }

    /// Parses a delivery method, checking that what it refers to is the store's own
    /// (a pool: of the key's mode).
    async fn parse_delivery(
        &self,
        auth: &ApiKey,
        raw: DeliveryIo,
    ) -> Result<Result<Delivery, Invalid>, ApiError> {
        let tenant = auth.allowed(ApiAction::EditCatalog)?.id.clone();
        let choice = match &raw {
            DeliveryIo::LicensePool(d) => DeliveryChoice::LicensePool {
                pool_id: &d.pool_id,
                keys_per: keys_per_in(d.keys_per),
            },
            DeliveryIo::WebService(d) => DeliveryChoice::WebService {
                url: &d.url,
                keys_per: keys_per_in(d.keys_per),
            },
            DeliveryIo::Plugin(d) => DeliveryChoice::Plugin {
                plugin_id: &d.plugin_id,
                keys_per: keys_per_in(d.keys_per),
            },
        };
        kassa_orders::delivery(&self.0.store, &tenant, auth.mode(), choice)
            .await
            .map_err(ApiError::store_failed)
    }

    async fn parse_fields(
        &self,
        auth: &ApiKey,
        name: &str,
        description: Option<&str>,
        prices: &[PriceIo],
        delivery: DeliveryIo,
        active: bool,
    ) -> Result<ProductFields, ApiError> {
        let mut invalid = Invalid::default();
        let name = invalid.check(parse_product_name(name));
        let description = invalid.check(parse_description(description));
        let raw_prices: Vec<(String, i64)> = prices
            .iter()
            .map(|p| (p.currency.clone(), p.amount))
            .collect();
        let prices = invalid.check(parse_prices(&raw_prices));
        let delivery = invalid.check(self.parse_delivery(auth, delivery).await?);
        match (name, description, prices, delivery) {
            (Some(name), Some(description), Some(prices), Some(delivery)) => Ok(ProductFields {
                name,
                description,
                prices: prices
                    .into_iter()
                    .map(|m| Price {
                        currency: m.currency.code().to_owned(),
                        amount: m.amount,
                    })
                    .collect(),
                delivery,
                active,
            }),
            _ => Err(invalid.into()),
        }
    }
}

fn keys_per_in(raw: Option<KeysPerIo>) -> KeysPer {
    match raw.unwrap_or(KeysPerIo::Unit) {
        KeysPerIo::Unit => KeysPer::Unit,
        KeysPerIo::Line => KeysPer::Line,
    }
}

fn delivery_out(d: Delivery) -> DeliveryIo {
    let keys_per = Some(match d.keys_per() {
        KeysPer::Unit => KeysPerIo::Unit,
        KeysPer::Line => KeysPerIo::Line,
    });
    match d {
        Delivery::LicensePool { pool_id, .. } => DeliveryIo::LicensePool(LicensePoolDelivery {
            pool_id: pool_id.to_string(),
            keys_per,
        }),
        Delivery::WebService { url, .. } => {
            DeliveryIo::WebService(WebServiceDelivery { url, keys_per })
        }
        Delivery::Plugin { plugin_id, .. } => DeliveryIo::Plugin(PluginDelivery {
            plugin_id: plugin_id.to_string(),
            keys_per,
        }),
    }
}

/// A product id from the path; a malformed id is simply not found.
fn product_id(raw: &str) -> Result<ProductId, ApiError> {
    ProductId::parse(raw).map_err(|_| ApiError::not_found("product"))
}

#[OpenApi(prefix_path = "/products", tag = "crate::context::Tag::Products")]
impl ProductsApi {
    /// Create a product
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<ProductIn>,
    ) -> Result<Json<ProductOut>, ApiError> {
        let body = body.0;
        let fields = self
            .parse_fields(
                &auth,
                &body.name,
                body.description.as_deref(),
                &body.prices,
                body.delivery,
                body.active.unwrap_or(true),
            )
            .await?;
        let tenant = auth.allowed(ApiAction::EditCatalog)?;
        let record = self
            .0
            .store
            .create_product(&tenant.id, auth.mode(), &fields)
            .await
            .map_err(ApiError::from_store("product"))?;
        Ok(Json(
            self.out(&auth.mode().store_path(&tenant.slug), record),
        ))
    }

    /// List products, newest first
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<ProductList>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let page = self
            .0
            .store
            .list_products(&tenant.id, auth.mode(), &page_request(limit.0, cursor.0)?)
            .await
            .map_err(ApiError::from_store("product"))?;
        Ok(Json(ProductList::from_page(page, |p| {
            self.out(&auth.mode().store_path(&tenant.slug), p)
        })))
    }

    /// Get a product
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<ProductOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::Read)?;
        let record = self
            .0
            .store
            .product(&tenant.id, auth.mode(), &product_id(&id)?)
            .await
            .map_err(ApiError::from_store("product"))?;
        Ok(Json(
            self.out(&auth.mode().store_path(&tenant.slug), record),
        ))
    }

    /// Update a product
    ///
    /// Orders already placed keep the prices they were placed at.
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<ProductPatch>,
    ) -> Result<Json<ProductOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::EditCatalog)?;
        let id = product_id(&id)?;
        let current = self
            .0
            .store
            .product(&tenant.id, auth.mode(), &id)
            .await
            .map_err(ApiError::from_store("product"))?;
        let patch = body.0;
        let prices = patch.prices.unwrap_or_else(|| {
            current
                .fields
                .prices
                .iter()
                .map(|p| PriceIo {
                    currency: p.currency.clone(),
                    amount: p.amount,
                })
                .collect()
        });
        let fields = self
            .parse_fields(
                &auth,
                patch.name.as_deref().unwrap_or(&current.fields.name),
                patch
                    .description
                    .as_deref()
                    .or(current.fields.description.as_deref()),
                &prices,
                patch
                    .delivery
                    .unwrap_or_else(|| delivery_out(current.fields.delivery.clone())),
                patch.active.unwrap_or(current.fields.active),
            )
            .await?;
        let record = self
            .0
            .store
            .update_product(&tenant.id, auth.mode(), &id, &fields)
            .await
            .map_err(ApiError::from_store("product"))?;
        Ok(Json(
            self.out(&auth.mode().store_path(&tenant.slug), record),
        ))
    }
}
