//! License pools and the keys merchants upload to them.

use kassa_domain::ids::{LicenseKeyId, LicensePoolId, TenantId};
use kassa_domain::mode::Mode;

use crate::catalog::{HasId, fetch_one, list_page};
use sqlx::AssertSqlSafe;

use crate::db::{Backend, Tx, db_run};
use crate::error::StoreError;
use crate::error::corrupt;
use crate::page::{Page, PageRequest};
use crate::store::Store;
use crate::time::Timestamp;
use crate::work::Work;

#[derive(Debug, Clone)]
pub struct LicensePoolRecord {
    pub id: LicensePoolId,
    pub name: String,
    pub low_stock_threshold: Option<i64>,
    /// A live pool (else a test one): only orders of its mode take its keys.
    pub livemode: bool,
    /// The keys of a line refunded in full come back to the pool (else they stay
    /// the line's, revoked).
    pub return_refunded_keys: bool,
    /// Keys not yet given to an order line.
    pub available: i64,
    /// Keys given to order lines.
    pub assigned: i64,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct PoolRow {
    id: String,
    name: String,
    low_stock_threshold: Option<i64>,
    livemode: bool,
    return_refunded_keys: bool,
    available: i64,
    assigned: i64,
    created_at: Timestamp,
}

impl TryFrom<PoolRow> for LicensePoolRecord {
    type Error = StoreError;
    fn try_from(row: PoolRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: LicensePoolId::parse(&row.id).map_err(corrupt)?,
            name: row.name,
            low_stock_threshold: row.low_stock_threshold,
            livemode: row.livemode,
            return_refunded_keys: row.return_refunded_keys,
            available: row.available,
            assigned: row.assigned,
            created_at: row.created_at,
        })
    }
}

impl HasId for LicensePoolRecord {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

/// Stock is counted when read; a pool's keys are indexed by status.
const POOL_COLUMNS: &str =
    "id, name, low_stock_threshold, livemode, return_refunded_keys, created_at,
    (SELECT COUNT(*) FROM license_keys k WHERE k.tenant_id = license_pools.tenant_id
        AND k.pool_id = license_pools.id AND k.status = 'available') AS available,
    (SELECT COUNT(*) FROM license_keys k WHERE k.tenant_id = license_pools.tenant_id
        AND k.pool_id = license_pools.id AND k.status <> 'available') AS assigned";

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysAdded {
    pub added: i64,
    /// Keys already in the pool, refused.
    pub duplicates: Vec<String>,
}

/// A pool as a delivery needs it.
#[derive(Debug, Clone)]
pub struct PoolStock {
    pub name: String,
    pub threshold: Option<i64>,
    /// The world its keys belong to.
    pub mode: Mode,
}

/// Rows per multi-row INSERT: well under both backends' parameter limits.
const KEYS_PER_STATEMENT: usize = 500;

/// Assigns `count` available keys of a pool to an order line (`(order, line_no)`) in
/// `tx` and returns their values; `None` when the pool has fewer. On PostgreSQL keys
/// are claimed with `FOR UPDATE SKIP LOCKED`; on SQLite the write transaction holds
/// the database's one write lock. Either way a key goes to exactly one line.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn claim_keys(
    tx: &mut Tx,
    backend: Backend,
    tenant: &TenantId,
    pool: &str,
    (order, line_no): (&str, i64),
    count: i64,
    now: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let keys: Vec<(String, String)> = db_run!(tx, c => sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, value FROM license_keys WHERE tenant_id = $1 AND pool_id = $2 AND status = 'available'
         ORDER BY id LIMIT $3{lock}"
    )))
    .bind(tenant.as_str())
    .bind(pool)
    .bind(count)
    .fetch_all(c).await?);
    if i64::try_from(keys.len()).unwrap_or(0) < count {
        return Ok(None);
    }
    for (id, _) in &keys {
        let taken = db_run!(tx, c => sqlx::query(
            "UPDATE license_keys SET status = 'assigned', order_id = $3, line_no = $4, assigned_at = $5
             WHERE tenant_id = $1 AND id = $2 AND status = 'available'",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(order)
        .bind(line_no)
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        if taken != 1 {
            // Another transaction took it; try again later with other keys.
            return Err(StoreError::Conflict("a key was taken concurrently".into()));
        }
    }
    Ok(Some(keys.into_iter().map(|(_, v)| v).collect()))
}

impl Store {
    /// A new pool of `mode`'s world.
    pub async fn create_license_pool(
        &self,
        tenant: &TenantId,
        mode: Mode,
        name: &str,
        low_stock_threshold: Option<i64>,
    ) -> Result<LicensePoolRecord, StoreError> {
        let id = LicensePoolId::generate();
        let now = Timestamp::now();
        db_run!(self.writer(), c => sqlx::query(
            "INSERT INTO license_pools (tenant_id, id, name, low_stock_threshold, livemode, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(name)
        .bind(low_stock_threshold)
        .bind(mode.is_live())
        .bind(now)
        .execute(c).await?.rows_affected());
        Ok(LicensePoolRecord {
            id,
            name: name.to_owned(),
            low_stock_threshold,
            livemode: mode.is_live(),
            return_refunded_keys: false,
            available: 0,
            assigned: 0,
            created_at: now,
        })
    }

    pub async fn license_pool(
        &self,
        tenant: &TenantId,
        id: &LicensePoolId,
    ) -> Result<LicensePoolRecord, StoreError> {
        fetch_one::<PoolRow, _>(
            self,
            POOL_COLUMNS,
            "license_pools",
            "id",
            tenant,
            None,
            id.as_str(),
        )
        .await
    }

    pub async fn list_license_pools(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<LicensePoolRecord>, StoreError> {
        list_page::<PoolRow, _>(self, POOL_COLUMNS, "license_pools", tenant, None, page).await
    }

    /// The pools of one mode, newest first.
    pub async fn list_license_pools_of(
        &self,
        tenant: &TenantId,
        mode: Mode,
        page: &PageRequest,
    ) -> Result<Page<LicensePoolRecord>, StoreError> {
        list_page::<PoolRow, _>(
            self,
            POOL_COLUMNS,
            "license_pools",
            tenant,
            Some(mode),
            page,
        )
        .await
    }

    pub async fn update_license_pool(
        &self,
        tenant: &TenantId,
        id: &LicensePoolId,
        name: &str,
        low_stock_threshold: Option<i64>,
    ) -> Result<LicensePoolRecord, StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE license_pools SET name = $3, low_stock_threshold = $4
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(name)
        .bind(low_stock_threshold)
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.license_pool(tenant, id).await
    }
}

impl Store {
    /// Whether the keys of refunded lines come back to the pool.
    pub async fn set_return_refunded_keys(
        &self,
        tenant: &TenantId,
        id: &LicensePoolId,
        return_refunded_keys: bool,
    ) -> Result<LicensePoolRecord, StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE license_pools SET return_refunded_keys = $3 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(return_refunded_keys)
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.license_pool(tenant, id).await
    }
}

impl Work {
    /// Adds keys to a pool (held with [`Work::lock_pool`]); keys the pool already
    /// holds are refused and reported, never stored twice.
    pub async fn insert_keys(
        &mut self,
        pool: &LicensePoolId,
        keys: &[String],
    ) -> Result<KeysAdded, StoreError> {
        let now = self.now.millis();
        let tenant = self.tenant.clone();
        let mut inserted = std::collections::HashSet::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            // `$n` placeholders written out, which both backends read.
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let n = i * 5;
                    format!(
                        "(${}, ${}, ${}, ${}, 'available', ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO license_keys (tenant_id, id, pool_id, value, status, created_at) VALUES {}
                 ON CONFLICT (tenant_id, pool_id, value) DO NOTHING RETURNING value",
                rows.join(", ")
            );
            let values: Vec<String> = db_run!(&mut self.tx, c => {
                let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
                for key in chunk {
                    query = query
                        .bind(tenant.as_str())
                        .bind(LicenseKeyId::generate().to_string())
                        .bind(pool.as_str())
                        .bind(key.as_str())
                        .bind(Timestamp::from(now));
                }
                query.fetch_all(c).await?
            });
            inserted.extend(values);
        }
        let duplicates: Vec<String> = keys
            .iter()
            .filter(|k| !inserted.contains(k.as_str()))
            .cloned()
            .collect();
        Ok(KeysAdded {
            added: i64::try_from(inserted.len()).unwrap_or(i64::MAX),
            duplicates,
        })
    }

    /// The lines waiting for this pool's stock, by order.
    pub async fn lines_waiting_for(
        &mut self,
        pool: &LicensePoolId,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(db_run!(&mut self.tx, c => sqlx::query_as(
            "SELECT order_id, line_no FROM order_lines WHERE tenant_id = $1 AND pool_id = $2
             AND delivery_status = 'waiting_stock' ORDER BY order_id, line_no",
        )
        .bind(self.tenant.as_str())
        .bind(pool.as_str())
        .fetch_all(c).await?))
    }

    /// Gives `count` available keys of a pool to an order line; `None` when the pool
    /// has fewer.
    pub async fn claim_keys(
        &mut self,
        pool: &LicensePoolId,
        (order, line_no): (&str, i64),
        count: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let tenant = self.tenant.clone();
        let now = self.now.millis();
        claim_keys(
            &mut self.tx,
            self.backend,
            &tenant,
            pool.as_str(),
            (order, line_no),
            count,
            now,
        )
        .await
    }

    /// Holds a pool against concurrent restocks (`exclusive`: a restock, against
    /// deliveries) until the commit, and reads its name and threshold. On PostgreSQL a
    /// delivery that finds too few keys and a restock that wakes waiting lines are
    /// thus never interleaved, so no line waits while keys are free; on SQLite the
    /// write transaction already holds the one write lock.
    pub async fn lock_pool(
        &mut self,
        pool: &LicensePoolId,
        exclusive: bool,
    ) -> Result<PoolStock, StoreError> {
        let lock = match (self.backend, exclusive) {
            (Backend::Postgres, true) => " FOR UPDATE",
            (Backend::Postgres, false) => " FOR SHARE",
            (Backend::Sqlite, _) => "",
        };
        let (name, threshold, livemode): (String, Option<i64>, bool) =
            db_run!(&mut self.tx, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT name, low_stock_threshold, livemode FROM license_pools
             WHERE tenant_id = $1 AND id = $2{lock}"
        )))
        .bind(self.tenant.as_str())
        .bind(pool.as_str())
        .fetch_optional(c).await?)
            .ok_or(StoreError::NotFound)?;
        Ok(PoolStock {
            name,
            threshold,
            mode: Mode::from_livemode(livemode),
        })
    }

    /// The keys a pool has left.
    pub async fn available_keys(&mut self, pool: &LicensePoolId) -> Result<i64, StoreError> {
        Ok(db_run!(&mut self.tx, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM license_keys WHERE tenant_id = $1 AND pool_id = $2 AND status = 'available'",
        )
        .bind(self.tenant.as_str())
        .bind(pool.as_str())
        .fetch_one(c).await?))
    }
}
