//! Fulfillment plugins: their versions (the component bytes), config, secrets and
//! allowed hosts.

use std::collections::BTreeMap;

use kassa_domain::Secret;
use kassa_domain::ids::{PluginId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::plugin::{Live, PluginLimits};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use crate::catalog::{HasId, list_page};
use crate::db::{Backend, Tx, db_run};
use crate::error::StoreError;
use crate::error::corrupt;
use crate::page::{Page, PageRequest};
use crate::sealed::Place;
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
    /// The live version, whether it has delivered and what it falls back to.
    pub live: Live,
    /// The newest version uploaded (live or not).
    pub latest_version: i64,
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
    fallback_version: Option<i64>,
    last_version: i64,
    proven: bool,
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
            live: Live {
                version: r.current_version,
                proven: r.proven,
                fallback: r.fallback_version,
            },
            latest_version: r.last_version,
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
    plugins.fallback_version AS fallback_version, plugins.last_version AS last_version, v.proven_at IS NOT NULL AS proven, v.sha256 AS sha256, v.size AS size, plugins.config AS config, plugins.secrets AS secrets, \
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
    /// It has delivered a line for a real order.
    pub proven: bool,
    /// Why Kassa took it off (it failed a delivery in the sandbox while on trial).
    pub withdrawn: Option<String>,
    pub withdrawn_at: Option<Timestamp>,
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
    /// This version has delivered a line for a real order (it is not on trial).
    pub proven: bool,
}

/// What a failed delivery did to a plugin's live version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// The version was on trial: it is taken off and `back_to` is live again.
    TookOff { back_to: i64 },
    /// Another version is live by now (taken off by a concurrent delivery, or chosen
    /// by the merchant).
    Replaced { live: i64 },
    /// The version stays live: it has delivered before, or has nothing to fall back to.
    Stays,
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
            "INSERT INTO plugins (tenant_id, id, name, current_version, last_version, config, secrets, allowed_hosts, created_at, updated_at)
             VALUES ($1, $2, $3, 1, 1, '{}', '{}', '[]', $4, $4)",
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

    /// Adds a version, numbered after every version the plugin ever had; `make_live`:
    /// it becomes the one that runs, on trial (see [`Live::make_live`]). Returns the
    /// plugin and the new version's number.
    pub async fn add_plugin_version(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        wasm: Vec<u8>,
        sha256: &str,
        make_live: bool,
    ) -> Result<(PluginRecord, i64), StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let (live, last) = live_state(&mut tx, self.backend, tenant, id).await?;
        let next = last + 1;
        insert_version(&mut tx, tenant, id, next, wasm, sha256, now).await?;
        db_run!(&mut tx, c => sqlx::query("UPDATE plugins SET last_version = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(next)
            .bind(Timestamp::from(now))
            .execute(c).await?.rows_affected());
        if make_live {
            set_live(&mut tx, tenant, id, live.make_live(next, false)).await?;
        }
        tx.commit().await?;
        Ok((self.plugin(tenant, id).await?, next))
    }

    /// Makes a stored version the one that runs (a rollback, or a version uploaded
    /// without going live): on trial unless it has delivered before. A withdrawn
    /// version made live again is no longer marked withdrawn. An unknown version is
    /// `NotFound`.
    pub async fn make_plugin_version_live(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        version: i64,
    ) -> Result<PluginRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let (live, _) = live_state(&mut tx, self.backend, tenant, id).await?;
        let proven: Option<bool> = db_run!(&mut tx, c => sqlx::query_scalar(
            "UPDATE plugin_versions SET withdrawn = NULL, withdrawn_at = NULL
             WHERE tenant_id = $1 AND plugin_id = $2 AND version = $3
             RETURNING proven_at IS NOT NULL",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version)
        .fetch_optional(c).await?);
        let proven = proven.ok_or(StoreError::NotFound)?;
        set_live(&mut tx, tenant, id, live.make_live(version, proven)).await?;
        tx.commit().await?;
        self.plugin(tenant, id).await
    }

    /// Marks `version` as having delivered a line: it is no longer on trial.
    pub async fn plugin_version_delivered(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        version: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        db_run!(&mut tx, c => sqlx::query(
            "UPDATE plugin_versions SET proven_at = $4
             WHERE tenant_id = $1 AND plugin_id = $2 AND version = $3 AND proven_at IS NULL",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version)
        .bind(Timestamp::now())
        .execute(c).await?.rows_affected());
        db_run!(&mut tx, c => sqlx::query(
            "UPDATE plugins SET fallback_version = NULL
             WHERE tenant_id = $1 AND id = $2 AND current_version = $3",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version)
        .execute(c).await?.rows_affected());
        tx.commit().await?;
        Ok(())
    }

    /// After `version` failed a delivery in the sandbox: takes it off if it is the
    /// live version on trial, saying `why`, and makes its fallback live again.
    pub async fn withdraw_plugin_version(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        version: i64,
        why: &str,
    ) -> Result<Withdrawal, StoreError> {
        let mut tx = self.begin_write().await?;
        let (live, _) = live_state(&mut tx, self.backend, tenant, id).await?;
        let Some(next) = live.after_crash(version) else {
            return Ok(if live.version == version {
                Withdrawal::Stays
            } else {
                Withdrawal::Replaced { live: live.version }
            });
        };
        db_run!(&mut tx, c => sqlx::query(
            "UPDATE plugin_versions SET withdrawn = $4, withdrawn_at = $5
             WHERE tenant_id = $1 AND plugin_id = $2 AND version = $3",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version)
        .bind(why)
        .bind(Timestamp::now())
        .execute(c).await?.rows_affected());
        set_live(&mut tx, tenant, id, next).await?;
        tx.commit().await?;
        Ok(Withdrawal::TookOff {
            back_to: next.version,
        })
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
        let (live, _) = live_state(&mut tx, self.backend, tenant, id).await?;
        if version == live.version {
            return Err(StoreError::Conflict(format!(
                "version {version} is the plugin's live version; make another version live \
                 (`live_version`) before deleting it"
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
        set_live(&mut tx, tenant, id, live.without(version)).await?;
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
            proven: bool,
            withdrawn: Option<String>,
            withdrawn_at: Option<Timestamp>,
            created_at: Timestamp,
        }
        let rows: Vec<Row> = db_run!(self, c => sqlx::query_as(
            "SELECT v.version, v.sha256, v.size, v.version = p.current_version AS live,
                    v.proven_at IS NOT NULL AS proven, v.withdrawn, v.withdrawn_at, v.created_at
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
                proven: r.proven,
                withdrawn: r.withdrawn,
                withdrawn_at: r.withdrawn_at,
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
            list_page::<PluginIdRow, PluginIdRecord>(self, "id", "plugins", tenant, None, page)
                .await?;
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
                .map(|(k, v)| Ok((k, self.seal(&Place::plugin(tenant.as_str(), id.as_str(), k), v.expose_secret())?)))
                .collect::<Result<BTreeMap<_, _>, StoreError>>()?
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
        self.runnable_plugin_version(tenant, id, None).await
    }

    /// [`Self::runnable_plugin`] for a stored `version` (`None`: the live one).
    pub async fn runnable_plugin_version(
        &self,
        tenant: &TenantId,
        id: &PluginId,
        version: Option<i64>,
    ) -> Result<RunnablePlugin, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            version: i64,
            proven: bool,
            sha256: String,
            config: Json<BTreeMap<String, String>>,
            secrets: Json<BTreeMap<String, String>>,
            allowed_hosts: Json<Vec<String>>,
            limits: Json<PluginLimits>,
        }
        let row: Option<Row> = db_run!(self, c => sqlx::query_as(
            "SELECT v.version AS version, v.proven_at IS NOT NULL AS proven, v.sha256 AS sha256,
             plugins.config AS config, plugins.secrets AS secrets,
             plugins.allowed_hosts AS allowed_hosts, plugins.limits AS limits
             FROM plugins JOIN plugin_versions v ON v.tenant_id = plugins.tenant_id
                 AND v.plugin_id = plugins.id AND v.version = COALESCE($3, plugins.current_version)
             WHERE plugins.tenant_id = $1 AND plugins.id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version)
        .fetch_optional(c).await?);
        let row = row.ok_or(StoreError::NotFound)?;
        Ok(RunnablePlugin {
            id: id.clone(),
            version: row.version,
            sha256: row.sha256,
            config: row.config.0,
            secrets: (row.secrets.0.into_iter())
                .map(|(k, v)| {
                    let secret = self.open(&Place::plugin(tenant.as_str(), id.as_str(), &k), &v)?;
                    Ok((k, secret))
                })
                .collect::<Result<_, StoreError>>()?,
            allowed_hosts: row.allowed_hosts.0,
            limits: row.limits.0,
            proven: row.proven,
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
    /// and pool returns the keys it already has (a retried plugin call). The pool must be
    /// one of the store's, of the order's mode (a plugin serves both modes, its config
    /// names one pool): a test order never takes live keys, nor a live order test ones.
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
        let modes: Option<(bool, bool)> = db_run!(&mut tx, c => sqlx::query_as(
            "SELECT p.livemode, o.test_mode FROM license_pools p
             JOIN orders o ON o.tenant_id = p.tenant_id AND o.id = $3
             WHERE p.tenant_id = $1 AND p.id = $2",
        )
        .bind(tenant.as_str())
        .bind(pool)
        .bind(order)
        .fetch_optional(c).await?);
        let Some((pool_live, order_test)) = modes else {
            return Err(StoreError::Conflict(format!(
                "no license pool {pool} in this store"
            )));
        };
        kassa_domain::workflow::stock_for(
            Mode::from_livemode(!order_test),
            Mode::from_livemode(pool_live),
        )
        .map_err(|refused| StoreError::Conflict(refused.to_string()))?;
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

/// The live version and the last version number given, the plugin's row held until
/// the commit (on SQLite the write transaction already holds the database).
async fn live_state(
    tx: &mut Tx,
    backend: Backend,
    tenant: &TenantId,
    id: &PluginId,
) -> Result<(Live, i64), StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        current_version: i64,
        fallback_version: Option<i64>,
        last_version: i64,
        proven: bool,
    }
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE OF p",
        Backend::Sqlite => "",
    };
    let row: Option<Row> = db_run!(tx, c => sqlx::query_as(AssertSqlSafe(format!(
        "SELECT p.current_version, p.fallback_version, p.last_version, v.proven_at IS NOT NULL AS proven
         FROM plugins p JOIN plugin_versions v ON v.tenant_id = p.tenant_id AND v.plugin_id = p.id
             AND v.version = p.current_version
         WHERE p.tenant_id = $1 AND p.id = $2{lock}"
    )))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .fetch_optional(c).await?);
    let row = row.ok_or(StoreError::NotFound)?;
    let live = Live {
        version: row.current_version,
        proven: row.proven,
        fallback: row.fallback_version,
    };
    Ok((live, row.last_version))
}

/// Records which version runs and what it falls back to.
async fn set_live(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &PluginId,
    live: Live,
) -> Result<(), StoreError> {
    db_run!(tx, c => sqlx::query(
        "UPDATE plugins SET current_version = $3, fallback_version = $4, updated_at = $5
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(live.version)
    .bind(live.fallback)
    .bind(Timestamp::now())
    .execute(c).await?.rows_affected());
    Ok(())
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
