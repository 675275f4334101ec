//! Fulfillment plugins: their versions (the component bytes), config, secrets and
//! allowed hosts.

use std::collections::BTreeMap;

use kassa_domain::Secret;
use kassa_domain::ids::{PluginId, TenantId};
use kassa_domain::plugin::PluginLimits;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::catalog::{HasId, list_page};
use crate::db::{Backend, Tx, db_run};
use crate::error::StoreError;
use crate::error::corrupt;
use crate::page::{Page, PageRequest};
use crate::store::Store;
use crate::time::Timestamp;

/// A plugin as the merchant sees it (secret values are never read back).
#[derive(Debug, Clone)]
pub struct PluginRecord {
    pub id: PluginId,
    pub name: String,
    pub version: i64,
    pub sha256: String,
    pub size: i64,
    pub config: BTreeMap<String, String>,
    pub secret_names: Vec<String>,
    pub allowed_hosts: Vec<String>,
    /// The plugin's own limits; absent ones are the operator's defaults.
    pub limits: PluginLimits,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl HasId for PluginRecord {
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
}

#[derive(sqlx::FromRow)]
struct PluginRow {
    id: String,
    name: String,
    current_version: i64,
    sha256: String,
    size: i64,
    config: Json<BTreeMap<String, String>>,
    secrets: Json<BTreeMap<String, String>>,
    allowed_hosts: Json<Vec<String>>,
    limits: Json<PluginLimits>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<PluginRow> for PluginRecord {
    type Error = StoreError;
    fn try_from(r: PluginRow) -> Result<Self, StoreError> {
        let secrets: BTreeMap<String, String> = r.secrets.0;
        Ok(Self {
            id: PluginId::parse(&r.id).map_err(corrupt)?,
            name: r.name,
            version: r.current_version,
            sha256: r.sha256,
            size: r.size,
            config: r.config.0,
            secret_names: secrets.into_keys().collect(),
            allowed_hosts: r.allowed_hosts.0,
            limits: r.limits.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const PLUGIN_COLUMNS: &str = "plugins.id AS id, plugins.name AS name, plugins.current_version AS current_version, \
    v.sha256 AS sha256, v.size AS size, plugins.config AS config, plugins.secrets AS secrets, \
    plugins.allowed_hosts AS allowed_hosts, plugins.limits AS limits, plugins.created_at AS created_at, plugins.updated_at AS updated_at";
const PLUGIN_FROM: &str = "plugins JOIN plugin_versions v ON v.tenant_id = plugins.tenant_id \
    AND v.plugin_id = plugins.id AND v.version = plugins.current_version";

/// One stored version of a plugin, without its bytes.
#[derive(Debug, Clone)]
pub struct PluginVersionRecord {
    pub version: i64,
    pub sha256: String,
    pub size: i64,
    /// The version that runs.
    pub live: bool,
    pub created_at: Timestamp,
}

/// What a delivery needs to run a plugin: its component is found by content hash in
/// the plugin host's compiled cache (read with [`Store::plugin_version_wasm`] only when
/// this node has not compiled it yet).
#[derive(Debug, Clone)]
pub struct RunnablePlugin {
    pub id: PluginId,
    pub version: i64,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    pub allowed_hosts: Vec<String>,
    pub limits: PluginLimits,
}

/// A plugin's live version, across stores (for preparing them at start).
#[derive(Debug, Clone)]
pub struct LivePluginVersion {
    pub tenant: TenantId,
    pub id: PluginId,
    pub version: i64,
    pub sha256: String,
}

/// Changes to a plugin; `None` keeps what is there. A secret set to `None` is removed.
#[derive(Debug, Clone, Default)]
pub struct PluginChanges {
    pub name: Option<String>,
    pub config: Option<BTreeMap<String, String>>,
    pub secrets: Option<BTreeMap<String, Option<Secret>>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub limits: Option<PluginLimits>,
}

impl Store {
    pub async fn create_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        wasm: Vec<u8>,
        sha256: &str,
    ) -> Result<PluginRecord, StoreError> {
        let id = PluginId::generate();
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        db_run!(&mut tx, c => sqlx::query(
            "INSERT INTO plugins (tenant_id, id, name, current_version, config, secrets, allowed_hosts, created_at, updated_at)
             VALUES ($1, $2, $3, 1, '{}', '{}', '[]', $4, $4)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(name)
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        insert_version(&mut tx, tenant, &id, 1, wasm, sha256, now).await?;
        tx.commit().await?;
        self.plugin(tenant, &id).await
    }

    /// Adds a version; it becomes the one that runs.
    pub async fn add_plugin_version(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        wasm: Vec<u8>,
        sha256: &str,
    ) -> Result<PluginRecord, StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let next = live_version(&mut tx, self.backend, tenant, id).await? + 1;
        insert_version(&mut tx, tenant, id, next, wasm, sha256, now).await?;
        db_run!(&mut tx, c => sqlx::query("UPDATE plugins SET current_version = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(next)
            .bind(Timestamp::from(now))
            .execute(c).await?.rows_affected());
        tx.commit().await?;
        self.plugin(tenant, id).await
    }

    /// Deletes a version's component. The live version stays: deleting it is a
    /// `Conflict` (the plugin would have nothing to run); an unknown one is `NotFound`.
    pub async fn delete_plugin_version(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        version: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let live = live_version(&mut tx, self.backend, tenant, id).await?;
        if version == live {
            return Err(StoreError::Conflict(format!(
                "version {version} is the plugin's live version; make another version live \
                 (upload a new one) before deleting it"
            )));
        }
        let deleted = db_run!(&mut tx, c => sqlx::query(
            "DELETE FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2 AND version = $3",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version)
        .execute(c).await?.rows_affected());
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// A plugin's stored versions, newest first, without their bytes; the cursor is a
    /// version number.
    pub async fn list_plugin_versions(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Page<PluginVersionRecord>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            version: i64,
            sha256: String,
            size: i64,
            live: bool,
            created_at: Timestamp,
        }
        let rows: Vec<Row> = db_run!(self, c => sqlx::query_as(
            "SELECT v.version, v.sha256, v.size, v.version = p.current_version AS live, v.created_at
             FROM plugin_versions v JOIN plugins p ON p.tenant_id = v.tenant_id AND p.id = v.plugin_id
             WHERE v.tenant_id = $1 AND v.plugin_id = $2 AND ($3 IS NULL OR v.version < $3)
             ORDER BY v.version DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(c).await?);
        let records = rows
            .into_iter()
            .map(|r| PluginVersionRecord {
                version: r.version,
                sha256: r.sha256,
                size: r.size,
                live: r.live,
                created_at: r.created_at,
            })
            .collect();
        Ok(Page::from_rows(records, limit, |v| v.version.to_string()))
    }

    pub async fn plugin(
        &self,
        tenant: &TenantId,
        id: &PluginId,
    ) -> Result<PluginRecord, StoreError> {
        let row: Option<PluginRow> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {PLUGIN_COLUMNS} FROM {PLUGIN_FROM} WHERE plugins.tenant_id = $1 AND plugins.id = $2"
        )))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(c).await?);
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    pub async fn list_plugins(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<PluginRecord>, StoreError> {
        let page =
            list_page::<PluginIdRow, PluginIdRecord>(self, "id", "plugins", tenant, page).await?;
        let mut data = Vec::with_capacity(page.data.len());
        for p in page.data {
            data.push(self.plugin(tenant, &p.0).await?);
        }
        Ok(Page {
            data,
            next_cursor: page.next_cursor,
        })
    }

    pub async fn update_plugin(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        changes: &PluginChanges,
    ) -> Result<PluginRecord, StoreError> {
        let current = self.runnable_plugin(tenant, id).await?;
        let name = match &changes.name {
            Some(n) => n.clone(),
            None => self.plugin(tenant, id).await?.name,
        };
        let config = changes.config.clone().unwrap_or(current.config);
        let mut secrets = current.secrets;
        if let Some(patch) = &changes.secrets {
            for (k, v) in patch {
                match v {
                    Some(v) => secrets.insert(k.clone(), v.clone()),
                    None => secrets.remove(k),
                };
            }
        }
        let hosts = changes
            .allowed_hosts
            .clone()
            .unwrap_or(current.allowed_hosts);
        let limits = changes.limits.unwrap_or(current.limits);
        db_run!(self.writer(), c => sqlx::query(
            "UPDATE plugins SET name = $3, config = $4, secrets = $5, allowed_hosts = $6, updated_at = $7, limits = $8
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(name)
        .bind(Json(&config))
        .bind(Json(
            secrets
                .iter()
                .map(|(k, v)| (k, v.expose_secret()))
                .collect::<BTreeMap<_, _>>()
        ))
        .bind(Json(&hosts))
        .bind(Timestamp::now())
        .bind(Json(&limits))
        .execute(c).await?.rows_affected());
        self.plugin(tenant, id).await
    }

    /// The running version with everything a call needs, secrets included.
    pub async fn runnable_plugin(
        &self,
        tenant: &TenantId,
        id: &PluginId,
    ) -> Result<RunnablePlugin, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            current_version: i64,
            sha256: String,
            config: Json<BTreeMap<String, String>>,
            secrets: Json<BTreeMap<String, String>>,
            allowed_hosts: Json<Vec<String>>,
            limits: Json<PluginLimits>,
        }
        let row: Option<Row> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT plugins.current_version AS current_version, v.sha256 AS sha256, plugins.config AS config,
             plugins.secrets AS secrets, plugins.allowed_hosts AS allowed_hosts, plugins.limits AS limits
             FROM {PLUGIN_FROM} WHERE plugins.tenant_id = $1 AND plugins.id = $2"
        )))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(c).await?);
        let row = row.ok_or(StoreError::NotFound)?;
        Ok(RunnablePlugin {
            id: id.clone(),
            version: row.current_version,
            sha256: row.sha256,
            config: row.config.0,
            secrets: (row.secrets.0.into_iter())
                .map(|(k, v)| (k, Secret::from(v)))
                .collect(),
            allowed_hosts: row.allowed_hosts.0,
            limits: row.limits.0,
        })
    }

    /// The component of one version of a plugin.
    pub async fn plugin_version_wasm(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        version: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let wasm: Option<Vec<u8>> = db_run!(self, c => sqlx::query_scalar(
            "SELECT wasm FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2 AND version = $3",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version)
        .fetch_optional(c).await?);
        wasm.ok_or(StoreError::NotFound)
    }

    /// The live version of every plugin of every store, one per distinct component:
    /// what a node prepares (compiles, or reads back compiled) when it starts.
    pub async fn live_plugin_versions(&self) -> Result<Vec<LivePluginVersion>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            tenant_id: String,
            id: String,
            current_version: i64,
            sha256: String,
        }
        let rows: Vec<Row> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT plugins.tenant_id AS tenant_id, plugins.id AS id, \
             plugins.current_version AS current_version, v.sha256 AS sha256 \
             FROM {PLUGIN_FROM} ORDER BY plugins.updated_at DESC"
        )))
        .fetch_all(c).await?);
        let mut seen = std::collections::HashSet::new();
        rows.into_iter()
            .filter(|r| seen.insert(r.sha256.clone()))
            .map(|r| {
                Ok(LivePluginVersion {
                    tenant: TenantId::parse(&r.tenant_id).map_err(corrupt)?,
                    id: PluginId::parse(&r.id).map_err(corrupt)?,
                    version: r.current_version,
                    sha256: r.sha256,
                })
            })
            .collect()
    }

    /// Takes `count` keys from a pool for an order line; asking again for the same line
    /// and pool returns the keys it already has (a retried plugin call).
    pub async fn take_keys_for_line(
        &self,
        tenant: &TenantId,
        order: &str,
        line_no: i64,
        pool: &str,
        count: i64,
    ) -> Result<Vec<String>, StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let held: Vec<String> = db_run!(&mut tx, c => sqlx::query_scalar(
            "SELECT value FROM license_keys WHERE tenant_id = $1 AND pool_id = $2 AND order_id = $3 AND line_no = $4 ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(pool)
        .bind(order)
        .bind(line_no)
        .fetch_all(c).await?);
        if !held.is_empty() {
            return Ok(held);
        }
        let claimed = crate::pools::claim_keys(
            &mut tx,
            self.backend,
            tenant,
            pool,
            (order, line_no),
            count,
            now,
        )
        .await?;
        let Some(keys) = claimed else {
            return Err(StoreError::Conflict(format!(
                "the pool has fewer than {count} keys left"
            )));
        };
        tx.commit().await?;
        Ok(keys)
    }
}

#[derive(sqlx::FromRow)]
struct PluginIdRow {
    id: String,
}

struct PluginIdRecord(PluginId);

impl TryFrom<PluginIdRow> for PluginIdRecord {
    type Error = StoreError;
    fn try_from(r: PluginIdRow) -> Result<Self, StoreError> {
        Ok(Self(PluginId::parse(&r.id).map_err(corrupt)?))
    }
}

impl HasId for PluginIdRecord {
    fn id_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The version that runs, the plugin's row held until the commit (on SQLite the write
/// transaction already holds the database).
async fn live_version(
    tx: &mut Tx,
    backend: Backend,
    tenant: &TenantId,
    id: &PluginId,
) -> Result<i64, StoreError> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let live: Option<i64> = db_run!(tx, c => sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT current_version FROM plugins WHERE tenant_id = $1 AND id = $2{lock}"
    )))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .fetch_optional(c).await?);
    live.ok_or(StoreError::NotFound)
}

async fn insert_version(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &PluginId,
    version: i64,
    wasm: Vec<u8>,
    sha256: &str,
    now: i64,
) -> Result<(), StoreError> {
    let size = i64::try_from(wasm.len()).unwrap_or(i64::MAX);
    db_run!(tx, c => sqlx::query(
        "INSERT INTO plugin_versions (tenant_id, plugin_id, version, wasm, sha256, size, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(version)
    .bind(wasm)
    .bind(sha256)
    .bind(size)
    .bind(Timestamp::from(now))
    .execute(c).await?.rows_affected());
    Ok(())
}
