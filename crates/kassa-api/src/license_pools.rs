//! `/license-pools`: stocks of license keys that products deliver from.

use kassa_domain::Invalid;
use kassa_domain::access::ApiAction;
use kassa_domain::catalog::{parse_license_keys, parse_low_stock_threshold, parse_pool_name};
use kassa_domain::ids::{LicensePoolId, TenantId};
use kassa_store::LicensePoolRecord;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiRequest, Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::pagination::{list_type, page_request};

pub struct LicensePoolsApi(pub ApiContext);

/// The most refused keys listed back in one upload's answer.
const MAX_LISTED_DUPLICATES: usize = 100;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LicensePoolIn {
    pub name: String,
    /// When available keys fall to this number, `license_pool.low_stock` is sent.
    pub low_stock_threshold: Option<i64>,
    /// The keys of a line refunded in full come back to the pool, available to the
    /// next buyer (default false: they stay the line's, revoked).
    pub return_refunded_keys: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LicensePoolPatch {
    pub name: Option<String>,
    pub low_stock_threshold: Option<i64>,
    pub return_refunded_keys: Option<bool>,
}

#[derive(Debug, Object)]
pub struct LicensePoolOut {
    /// `lpl_…`
    pub id: String,
    pub name: String,
    pub low_stock_threshold: Option<i64>,
    /// A live pool (else a test one): only orders of its mode take its keys, and only
    /// keys of its mode see it.
    pub livemode: bool,
    /// Keys ready to be delivered.
    pub available: i64,
    /// Keys already delivered to order lines (revoked ones included).
    pub assigned: i64,
    /// The keys of refunded lines come back to the pool.
    pub return_refunded_keys: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

list_type!(LicensePoolList, LicensePoolOut);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct KeysIn {
    pub keys: Vec<String>,
}

/// Keys to add: JSON, plain text with one key per line, or CSV whose first column is
/// the key (a first row reading `key` is taken as a header).
#[derive(Debug, ApiRequest)]
pub enum KeysUpload {
    Json(Json<KeysIn>),
    Text(PlainText<String>),
    #[oai(content_type = "text/csv")]
    Csv(PlainText<String>),
}

#[derive(Debug, Object)]
pub struct KeysAddedOut {
    /// Keys stored by this upload.
    pub added: i64,
    /// Keys refused because the pool already had them or they repeated in the upload.
    pub duplicates: i64,
    /// The refused keys (at most 100 listed).
    pub duplicate_keys: Vec<String>,
    /// The pool after the upload.
    pub pool: LicensePoolOut,
}

fn out(p: LicensePoolRecord) -> LicensePoolOut {
    LicensePoolOut {
        id: p.id.to_string(),
        name: p.name,
        low_stock_threshold: p.low_stock_threshold,
        livemode: p.livemode,
        available: p.available,
        assigned: p.assigned,
        return_refunded_keys: p.return_refunded_keys,
        created_at: p.created_at.0,
    }
}

impl LicensePoolsApi {
    /// The pool, when it is of the key's world (another mode's pool is not found).
    async fn pool_in_mode(
        &self,
        auth: &ApiKey,
        tenant: &TenantId,
        id: &LicensePoolId,
    ) -> Result<LicensePoolRecord, ApiError> {
        match self.0.store.license_pool(tenant, id).await {
            Ok(pool) if pool.livemode == auth.mode().is_live() => Ok(pool),
            Ok(_) => Err(ApiError::not_found("license pool")),
            Err(e) => Err(ApiError::from_store("license pool")(e)),
        }
    }
}

fn pool_id(raw: &str) -> Result<LicensePoolId, ApiError> {
    LicensePoolId::parse(raw).map_err(|_| ApiError::not_found("license pool"))
}

#[OpenApi(
    prefix_path = "/license-pools",
    tag = "crate::context::Tag::LicensePools"
)]
impl LicensePoolsApi {
    /// Create a license pool
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<LicensePoolIn>,
    ) -> Result<Json<LicensePoolOut>, ApiError> {
        let mut invalid = Invalid::default();
        let name = invalid.check(parse_pool_name(&body.name));
        let threshold = invalid.check(parse_low_stock_threshold(body.low_stock_threshold));
        let (Some(name), Some(threshold)) = (name, threshold) else {
            return Err(invalid.into());
        };
        let tenant = &auth.allowed(ApiAction::EditCatalog)?.id;
        let mut record = self
            .0
            .store
            .create_license_pool(tenant, auth.mode(), &name, threshold)
            .await
            .map_err(ApiError::from_store("license pool"))?;
        if body.return_refunded_keys == Some(true) {
            record = self
                .0
                .store
                .set_return_refunded_keys(tenant, &record.id, true)
                .await
                .map_err(ApiError::from_store("license pool"))?;
        }
        Ok(Json(out(record)))
    }

    /// List license pools with their stock
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<LicensePoolList>, ApiError> {
        let page = self
            .0
            .store
            .list_license_pools_of(
                &auth.allowed(ApiAction::Read)?.id,
                auth.mode(),
                &page_request(limit.0, cursor.0)?,
            )
            .await
            .map_err(ApiError::from_store("license pool"))?;
        Ok(Json(LicensePoolList::from_page(page, out)))
    }

    /// Get a license pool and its stock
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<LicensePoolOut>, ApiError> {
        let tenant = &auth.allowed(ApiAction::Read)?.id;
        Ok(Json(out(self
            .pool_in_mode(&auth, tenant, &pool_id(&id)?)
            .await?)))
    }

    /// Rename a pool or change its low-stock threshold
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<LicensePoolPatch>,
    ) -> Result<Json<LicensePoolOut>, ApiError> {
        let tenant = &auth.allowed(ApiAction::EditCatalog)?.id;
        let id = pool_id(&id)?;
        let current = self.pool_in_mode(&auth, tenant, &id).await?;
        let mut invalid = Invalid::default();
        let name = invalid.check(parse_pool_name(
            body.name.as_deref().unwrap_or(&current.name),
        ));
        let threshold = invalid.check(parse_low_stock_threshold(
            body.low_stock_threshold.or(current.low_stock_threshold),
        ));
        let (Some(name), Some(threshold)) = (name, threshold) else {
            return Err(invalid.into());
        };
        let mut record = self
            .0
            .store
            .update_license_pool(tenant, &id, &name, threshold)
            .await
            .map_err(ApiError::from_store("license pool"))?;
        if let Some(back) = body.return_refunded_keys {
            record = self
                .0
                .store
                .set_return_refunded_keys(tenant, &id, back)
                .await
                .map_err(ApiError::from_store("license pool"))?;
        }
        Ok(Json(out(record)))
    }

    /// Upload keys
    ///
    /// Blank lines are skipped and keys are trimmed. Keys the pool already holds, or
    /// that repeat within the upload, are refused and counted in `duplicates`.
    #[oai(path = "/:id/keys", method = "post")]
    async fn add_keys(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: KeysUpload,
    ) -> Result<Json<KeysAddedOut>, ApiError> {
        let tenant = &auth.allowed(ApiAction::EditCatalog)?.id;
        let id = pool_id(&id)?;
        let raw: Vec<String> = match body {
            KeysUpload::Json(Json(k)) => k.keys,
            KeysUpload::Text(PlainText(text)) => text.lines().map(str::to_owned).collect(),
            KeysUpload::Csv(PlainText(text)) => kassa_domain::catalog::csv_keys("body", &text)?,
        };
        self.pool_in_mode(&auth, tenant, &id).await?;
        let upload = parse_license_keys(raw.iter().map(String::as_str))?;
        let added = kassa_orders::add_keys(&self.0.store, tenant, &id, &upload.keys)
            .await
            .map_err(ApiError::from_orders("license pool"))?;
        let mut refused = upload.repeated;
        refused.extend(added.duplicates);
        let pool = self
            .0
            .store
            .license_pool(tenant, &id)
            .await
            .map_err(ApiError::from_store("license pool"))?;
        Ok(Json(KeysAddedOut {
            added: added.added,
            duplicates: i64::try_from(refused.len()).unwrap_or(i64::MAX),
            duplicate_keys: refused.into_iter().take(MAX_LISTED_DUPLICATES).collect(),
            pool: out(pool),
        }))
    }
}
