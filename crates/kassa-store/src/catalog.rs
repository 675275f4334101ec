//! Products, coupons and checkout links, each of one mode's world. An existing
//! product, coupon or link has a twin with the same id in the other world (migration
//! 0033), so every query here names the mode along with the store.

use kassa_domain::catalog::Delivery;
use kassa_domain::ids::{CheckoutLinkId, CouponId, ProductId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::offer::Offer;

use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::db::db_run;
use crate::error::StoreError;
use crate::error::corrupt;
use crate::page::{Page, PageRequest};
use crate::store::Store;
use crate::time::Timestamp;

/// A price as stored: integer minor units in an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Price {
    pub currency: String,
    pub amount: i64,
}

/// The writable fields of a product, already validated.
#[derive(Debug, Clone)]
pub struct ProductFields {
    pub name: String,
    pub description: Option<String>,
    pub prices: Vec<Price>,
    pub delivery: Delivery,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct ProductRecord {
    pub id: ProductId,
    /// A live product (else a test one): sold only by its mode's checkout and keys.
    pub livemode: bool,
    pub fields: ProductFields,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: String,
    livemode: bool,
    name: String,
    description: Option<String>,
    prices: Json<Vec<Price>>,
    delivery: Json<Delivery>,
    active: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<ProductRow> for ProductRecord {
    type Error = StoreError;
    fn try_from(row: ProductRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: ProductId::parse(&row.id).map_err(corrupt)?,
            livemode: row.livemode,
            fields: ProductFields {
                name: row.name,
                description: row.description,
                prices: row.prices.0,
                delivery: row.delivery.0,
                active: row.active,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const PRODUCT_COLUMNS: &str =
    "id, livemode, name, description, prices, delivery, active, created_at, updated_at";

/// The writable fields of a coupon, already validated.
#[derive(Debug, Clone)]
pub struct CouponFields {
    pub code: String,
    pub percent_off: Option<i64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub max_redemptions: Option<i64>,
    pub product_ids: Vec<ProductId>,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct CouponRecord {
    pub id: CouponId,
    /// A live coupon (else a test one): taken only by its mode's orders.
    pub livemode: bool,
    pub fields: CouponFields,
    pub times_redeemed: i64,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct CouponRow {
    id: String,
    livemode: bool,
    code: String,
    percent_off: Option<i64>,
    amount_off: Option<i64>,
    currency: Option<String>,
    expires_at: Option<Timestamp>,
    max_redemptions: Option<i64>,
    times_redeemed: i64,
    product_ids: Json<Vec<ProductId>>,
    active: bool,
    created_at: Timestamp,
}

impl TryFrom<CouponRow> for CouponRecord {
    type Error = StoreError;
    fn try_from(row: CouponRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: CouponId::parse(&row.id).map_err(corrupt)?,
            livemode: row.livemode,
            fields: CouponFields {
                code: row.code,
                percent_off: row.percent_off,
                amount_off: row.amount_off,
                currency: row.currency,
                expires_at: row.expires_at,
                max_redemptions: row.max_redemptions,
                product_ids: row.product_ids.0,
                active: row.active,
            },
            times_redeemed: row.times_redeemed,
            created_at: row.created_at,
        })
    }
}

const COUPON_COLUMNS: &str = "id, livemode, code, percent_off, amount_off, currency, expires_at, \
    max_redemptions, times_redeemed, product_ids, active, created_at";

/// The fields of a checkout link, already validated.
#[derive(Debug, Clone)]
pub struct CheckoutLinkFields {
    pub product_id: ProductId,
    pub quantity: i64,
    pub currency: Option<String>,
    pub coupon_code: Option<String>,
    /// The terms the link is signed for, if it is signed.
    pub offer: Option<Offer>,
}

#[derive(Debug, Clone)]
pub struct CheckoutLinkRecord {
    pub id: CheckoutLinkId,
    /// A live link (else a test one), for a product of its own mode.
    pub livemode: bool,
    pub fields: CheckoutLinkFields,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct CheckoutLinkRow {
    id: String,
    livemode: bool,
    product_id: String,
    quantity: i64,
    currency: Option<String>,
    coupon_code: Option<String>,
    offer: Option<Json<Offer>>,
    created_at: Timestamp,
}

impl TryFrom<CheckoutLinkRow> for CheckoutLinkRecord {
    type Error = StoreError;
    fn try_from(row: CheckoutLinkRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: CheckoutLinkId::parse(&row.id).map_err(corrupt)?,
            livemode: row.livemode,
            fields: CheckoutLinkFields {
                product_id: ProductId::parse(&row.product_id).map_err(corrupt)?,
                quantity: row.quantity,
                currency: row.currency,
                coupon_code: row.coupon_code,
                offer: row.offer.map(|o| o.0),
            },
            created_at: row.created_at,
        })
    }
}

const LINK_COLUMNS: &str =
    "id, livemode, product_id, quantity, currency, coupon_code, offer, created_at";

/// One page, newest first, of a tenant's rows in `table`; with `mode`, only that
/// mode's world (a table with a `livemode` column: license pools, webhook endpoints,
/// products, coupons, checkout links).
pub(crate) async fn list_page<Row, Rec>(
    store: &Store,
    columns: &str,
    table: &str,
    tenant: &TenantId,
    mode: Option<Mode>,
    page: &PageRequest,
) -> Result<Page<Rec>, StoreError>
where
    Row: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
    Rec: TryFrom<Row, Error = StoreError> + HasId,
{
    let of_mode = if mode.is_some() {
        " AND livemode = $4"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {columns} FROM {table} WHERE tenant_id = $1{of_mode}
         AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    );
    let rows: Vec<Row> = db_run!(store, c => {
        let mut query = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(page.after.as_deref())
            .bind(page.limit + 1);
        if let Some(mode) = mode {
            query = query.bind(mode.is_live());
        }
        query.fetch_all(c).await?
    });
    let records = rows
        .into_iter()
        .map(Rec::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(records, page.limit, |r| {
        r.id_str().to_owned()
    }))
}

/// Fetches one tenant-owned row `WHERE tenant_id = $1 AND <key> = $2`, with `mode`
/// only of that mode's world, or `NotFound`.
pub(crate) async fn fetch_one<Row, Rec>(
    store: &Store,
    columns: &str,
    table: &str,
    key: &str,
    tenant: &TenantId,
    mode: Option<Mode>,
    value: &str,
) -> Result<Rec, StoreError>
where
    Row: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
    Rec: TryFrom<Row, Error = StoreError>,
{
    let of_mode = if mode.is_some() {
        " AND livemode = $3"
    } else {
        ""
    };
    let sql = format!("SELECT {columns} FROM {table} WHERE tenant_id = $1 AND {key} = $2{of_mode}");
    let row: Option<Row> = db_run!(store, c => {
        let mut query = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(value);
        if let Some(mode) = mode {
            query = query.bind(mode.is_live());
        }
        query.fetch_optional(c).await?
    });
    row.ok_or(StoreError::NotFound)?.try_into()
}

/// Deletes one tenant-owned row of `mode`'s world by id, or says `NotFound`.
pub(crate) async fn delete_one(
    store: &Store,
    table: &str,
    tenant: &TenantId,
    mode: Mode,
    id: &str,
) -> Result<(), StoreError> {
    let sql = format!("DELETE FROM {table} WHERE tenant_id = $1 AND livemode = $2 AND id = $3");
    let done = db_run!(store.writer(), c => sqlx::query(AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .bind(mode.is_live())
        .bind(id)
        .execute(c).await?.rows_affected());
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A record whose id is its pagination cursor.
pub(crate) trait HasId {
    fn id_str(&self) -> &str;
}

impl HasId for ProductRecord {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}
impl HasId for CouponRecord {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}
impl HasId for CheckoutLinkRecord {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

impl Store {
    /// A new product of `mode`'s world.
    pub async fn create_product(
        &self,
        tenant: &TenantId,
        mode: Mode,
        fields: &ProductFields,
    ) -> Result<ProductRecord, StoreError> {
        let id = ProductId::generate();
        let now = Timestamp::now();
        db_run!(self.writer(), c => sqlx::query(
            "INSERT INTO products (tenant_id, livemode, id, name, description, prices, delivery, active,
             created_at, updated_at)
             VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(&fields.name)
        .bind(fields.description.as_deref())
        .bind(Json(&fields.prices))
        .bind(Json(&fields.delivery))
        .bind(fields.active)
        .bind(now)
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        Ok(ProductRecord {
            id,
            livemode: mode.is_live(),
            fields: fields.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    /// The product `id` of `mode`'s world (the other world's twin is not found).
    pub async fn product(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &ProductId,
    ) -> Result<ProductRecord, StoreError> {
        fetch_one::<ProductRow, _>(
            self,
            PRODUCT_COLUMNS,
            "products",
            "id",
            tenant,
            Some(mode),
            id.as_str(),
        )
        .await
    }

    /// The products of `mode`'s world, newest first.
    pub async fn list_products(
        &self,
        tenant: &TenantId,
        mode: Mode,
        page: &PageRequest,
    ) -> Result<Page<ProductRecord>, StoreError> {
        list_page::<ProductRow, _>(self, PRODUCT_COLUMNS, "products", tenant, Some(mode), page)
            .await
    }

    /// Replaces the writable fields of the product `id` of `mode`'s world.
    pub async fn update_product(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &ProductId,
        fields: &ProductFields,
    ) -> Result<ProductRecord, StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE products SET name = $3, description = $4, prices = $5, delivery = $6,
             active = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2 AND livemode = $9",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(&fields.name)
        .bind(fields.description.as_deref())
        .bind(Json(&fields.prices))
        .bind(Json(&fields.delivery))
        .bind(fields.active)
        .bind(Timestamp::now())
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.product(tenant, mode, id).await
    }

    /// A new coupon of `mode`'s world; its code is unique in that world.
    pub async fn create_coupon(
        &self,
        tenant: &TenantId,
        mode: Mode,
        fields: &CouponFields,
    ) -> Result<CouponRecord, StoreError> {
        let id = CouponId::generate();
        let now = Timestamp::now();
        db_run!(self.writer(), c => sqlx::query(
            "INSERT INTO coupons (tenant_id, livemode, id, code, percent_off, amount_off, currency,
             expires_at, max_redemptions, times_redeemed, product_ids, active, created_at)
             VALUES ($1, $12, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(&fields.code)
        .bind(fields.percent_off)
        .bind(fields.amount_off)
        .bind(fields.currency.as_deref())
        .bind(fields.expires_at)
        .bind(fields.max_redemptions)
        .bind(Json(&fields.product_ids))
        .bind(fields.active)
        .bind(now)
        .bind(mode.is_live())
        .execute(c).await
        .map_err(StoreError::on_unique("a coupon with this code already exists"))?.rows_affected());
        Ok(CouponRecord {
            id,
            livemode: mode.is_live(),
            fields: fields.clone(),
            times_redeemed: 0,
            created_at: now,
        })
    }

    /// The coupon `id` of `mode`'s world.
    pub async fn coupon(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &CouponId,
    ) -> Result<CouponRecord, StoreError> {
        fetch_one::<CouponRow, _>(
            self,
            COUPON_COLUMNS,
            "coupons",
            "id",
            tenant,
            Some(mode),
            id.as_str(),
        )
        .await
    }

    /// A coupon of `mode`'s world by the code a customer typed (already upper-cased).
    pub async fn coupon_by_code(
        &self,
        tenant: &TenantId,
        mode: Mode,
        code: &str,
    ) -> Result<CouponRecord, StoreError> {
        fetch_one::<CouponRow, _>(
            self,
            COUPON_COLUMNS,
            "coupons",
            "code",
            tenant,
            Some(mode),
            code,
        )
        .await
    }

    /// The coupons of `mode`'s world, newest first.
    pub async fn list_coupons(
        &self,
        tenant: &TenantId,
        mode: Mode,
        page: &PageRequest,
    ) -> Result<Page<CouponRecord>, StoreError> {
        list_page::<CouponRow, _>(self, COUPON_COLUMNS, "coupons", tenant, Some(mode), page).await
    }

    /// Changes what may change on a coupon of `mode`'s world: whether it works, until
    /// when, how often.
    pub async fn update_coupon(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &CouponId,
        active: bool,
        expires_at: Option<Timestamp>,
        max_redemptions: Option<i64>,
    ) -> Result<CouponRecord, StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE coupons SET active = $3, expires_at = $4, max_redemptions = $5
             WHERE tenant_id = $1 AND id = $2 AND livemode = $6",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(active)
        .bind(expires_at)
        .bind(max_redemptions)
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.coupon(tenant, mode, id).await
    }

    /// A new checkout link of `mode`'s world, for a product of that world.
    pub async fn create_checkout_link(
        &self,
        tenant: &TenantId,
        mode: Mode,
        fields: &CheckoutLinkFields,
    ) -> Result<CheckoutLinkRecord, StoreError> {
        let id = CheckoutLinkId::generate();
        let now = Timestamp::now();
        db_run!(self.writer(), c => sqlx::query(
            "INSERT INTO checkout_links (tenant_id, livemode, id, product_id, quantity, currency,
             coupon_code, offer, created_at)
             VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(fields.product_id.as_str())
        .bind(fields.quantity)
        .bind(fields.currency.as_deref())
        .bind(fields.coupon_code.as_deref())
        .bind(fields.offer.as_ref().map(Json))
        .bind(now)
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        Ok(CheckoutLinkRecord {
            id,
            livemode: mode.is_live(),
            fields: fields.clone(),
            created_at: now,
        })
    }

    /// The checkout link `id` of `mode`'s world.
    pub async fn checkout_link(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &CheckoutLinkId,
    ) -> Result<CheckoutLinkRecord, StoreError> {
        fetch_one::<CheckoutLinkRow, _>(
            self,
            LINK_COLUMNS,
            "checkout_links",
            "id",
            tenant,
            Some(mode),
            id.as_str(),
        )
        .await
    }

    /// The checkout links of `mode`'s world, newest first.
    pub async fn list_checkout_links(
        &self,
        tenant: &TenantId,
        mode: Mode,
        page: &PageRequest,
    ) -> Result<Page<CheckoutLinkRecord>, StoreError> {
        list_page::<CheckoutLinkRow, _>(
            self,
            LINK_COLUMNS,
            "checkout_links",
            tenant,
            Some(mode),
            page,
        )
        .await
    }

    /// Deletes the checkout link `id` of `mode`'s world.
    pub async fn delete_checkout_link(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &CheckoutLinkId,
    ) -> Result<(), StoreError> {
        delete_one(self, "checkout_links", tenant, mode, id.as_str()).await
    }
}
