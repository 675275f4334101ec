//! The store's side of sealed secrets (`sealed.rs`): sealing and opening with the
//! store's keyring, checking the operator's key against the one the database records
//! (`secrets_key`, migration 0028), sealing what older versions stored in clear, and
//! resealing everything under a new key after a rotation.

use kassa_domain::Secret;
use sqlx::AssertSqlSafe;

use crate::db::db_run;
use crate::error::StoreError;
use crate::sealed::{Keyring, PREFIX, Place};
use crate::store::Store;

/// The store's secrets on `tenants`: each column, and the secret its values are sealed
/// for (a `previous_…` column's is its current one's).
const STORE_SECRETS: &[(&str, &str)] = &[
    ("link_secret", "link_secret"),
    ("previous_link_secret", "link_secret"),
    ("service_secret", "service_secret"),
    ("previous_service_secret", "service_secret"),
    ("stripe_test_secret_key", "stripe_test_secret_key"),
    ("stripe_test_webhook_secret", "stripe_test_webhook_secret"),
    ("stripe_live_secret_key", "stripe_live_secret_key"),
    ("stripe_live_webhook_secret", "stripe_live_webhook_secret"),
];

/// Webhook endpoints' secret columns, both sealed for their endpoint.
const ENDPOINT_SECRETS: &[&str] = &["secret", "previous_secret"];

/// Where a secret column's values are sealed for.
#[derive(Clone, Copy)]
enum Belongs {
    /// The store's secret of this name.
    Store(&'static str),
    /// The row's webhook endpoint.
    Endpoint,
}

/// Every text column holding a secret: its table, the column naming the store (`id`
/// on `tenants`), the column, and where its values belong. Plugins' secrets are in a
/// JSON object (`seal_plugin_secrets`).
fn secret_columns() -> impl Iterator<Item = (&'static str, &'static str, &'static str, Belongs)> {
    (STORE_SECRETS.iter())
        .map(|&(column, secret)| ("tenants", "id", column, Belongs::Store(secret)))
        .chain(
            (ENDPOINT_SECRETS.iter())
                .map(|&column| ("webhook_endpoints", "tenant_id", column, Belongs::Endpoint)),
        )
}

/// Rows read and written at a time when sealing or resealing.
const BATCH: i64 = 500;

/// Which stored secrets a pass seals.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Those still in clear (written before secrets were sealed).
    Clear,
    /// Every one not sealed under the current key (after a rotation).
    NotCurrent,
}

impl Store {
    /// The keyring this store seals and opens secrets with.
    pub(crate) fn keyring(&self) -> Result<&Keyring, StoreError> {
        self.state.keyring.get().ok_or_else(|| {
            StoreError::SecretsKey("the store was opened without a secrets key".into())
        })
    }

    /// `clear` sealed for `place`.
    pub(crate) fn seal(&self, place: &Place, clear: &str) -> Result<String, StoreError> {
        Ok(self.keyring()?.seal(place, clear))
    }

    /// The secret sealed in `stored` for `place`.
    pub(crate) fn open(&self, place: &Place, stored: &str) -> Result<Secret, StoreError> {
        self.keyring()?.open(place, stored)
    }

    /// Seals and opens this store's secrets with `keyring` from now on. First checks
    /// that the database's secrets are sealed under one of its keys (a database new to
    /// sealing takes its key), so a node started with another key than its peers
    /// refuses to start; then seals the secrets still stored in clear (a database from
    /// before sealing), in batches. Returns how many it sealed. Safe to run again and
    /// on several nodes at once.
    pub async fn use_secrets_key(&self, keyring: Keyring) -> Result<u64, StoreError> {
        self.check_secrets_key(&keyring).await?;
        self.state
            .keyring
            .set(keyring)
            .map_err(|_| StoreError::SecretsKey("the store's secrets key is already set".into()))?;
        let sealed = self.seal_all(Pass::Clear).await?;
        if sealed > 0 {
            tracing::info!(sealed, "sealed secrets stored in clear before");
        }
        Ok(sealed)
    }

    /// Seals every secret under the current key (after a rotation, with the previous
    /// key still in the keyring), then records the current key as the database's:
    /// nodes that lack it refuse to start from then on, and the previous key may be
    /// dropped. Returns how many values it resealed.
    pub async fn reseal_secrets(&self) -> Result<u64, StoreError> {
        let resealed = self.seal_all(Pass::NotCurrent).await?;
        let id = self.keyring()?.key_id().to_owned();
        db_run!(self.writer(), c => sqlx::query("UPDATE secrets_key SET key_id = $1 WHERE id = 1")
            .bind(&id)
            .execute(c).await?.rows_affected());
        Ok(resealed)
    }

    /// The id of the key the database's secrets are sealed under, if it has one yet.
    pub async fn secrets_key_id(&self) -> Result<Option<String>, StoreError> {
        Ok(
            db_run!(self, c => sqlx::query_scalar("SELECT key_id FROM secrets_key WHERE id = 1")
            .fetch_optional(c).await?),
        )
    }

    async fn check_secrets_key(&self, keyring: &Keyring) -> Result<(), StoreError> {
        if self.secrets_key_id().await?.is_none() {
            db_run!(self.writer(), c => sqlx::query(
                "INSERT INTO secrets_key (id, key_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            )
            .bind(keyring.key_id())
            .execute(c).await?.rows_affected());
        }
        // Read again: another node may have written its key first.
        let found = self.secrets_key_id().await?.unwrap_or_default();
        if keyring.knows(&found) {
            return Ok(());
        }
        let previous = keyring.previous_ids();
        let previous = if previous.is_empty() {
            String::new()
        } else {
            format!(" (previous keys {})", previous.join(", "))
        };
        Err(StoreError::SecretsKey(format!(
            "this database's secrets are sealed under the key {found}, but this node's key \
             is {}{previous}. Every node on one database must use the same secrets key: \
             start this node with the key the others use (secrets_key or \
             KASSA_SECRETS_KEY, or the same secrets_key_file). To move to a new key, set it \
             as secrets_key with the old one in secrets_previous_keys, then run \
             `kassa secrets reseal` (docs/security.md)",
            keyring.key_id()
        )))
    }

    /// Seals the secrets `pass` names under the current key, in batches; each value is
    /// written only if it is still the one read, so a concurrent change wins.
    async fn seal_all(&self, pass: Pass) -> Result<u64, StoreError> {
        let keyring = self.keyring()?;
        // What the values a pass leaves alone look like.
        let kept = match pass {
            Pass::Clear => "sealed:%".to_owned(),
            Pass::NotCurrent => format!("{PREFIX}{}:%", keyring.key_id()),
        };
        let mut done = 0;
        for (table, tenant, column, belongs) in secret_columns() {
            let mut after = (String::new(), String::new());
            loop {
                let rows: Vec<(String, String, String)> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT id, {tenant}, {column} FROM {table}
                     WHERE {column} IS NOT NULL AND {column} <> '' AND {column} NOT LIKE $3
                       AND (id > $1 OR (id = $1 AND {tenant} > $2))
                     ORDER BY id, {tenant} LIMIT {BATCH}"
                )))
                .bind(&after.0)
                .bind(&after.1)
                .bind(&kept)
                .fetch_all(c).await?);
                let Some(last) = rows.last() else { break };
                after = (last.0.clone(), last.1.clone());
                for (id, tenant_id, stored) in rows {
                    let place = match belongs {
                        Belongs::Store(secret) => Place::tenant(&tenant_id, secret),
                        Belongs::Endpoint => Place::endpoint(&tenant_id, &id),
                    };
                    let clear = match pass {
                        Pass::Clear => Secret::from(stored.clone()),
                        Pass::NotCurrent if stored.starts_with(PREFIX) => {
                            keyring.open(&place, &stored)?
                        }
                        Pass::NotCurrent => Secret::from(stored.clone()),
                    };
                    let sealed = keyring.seal(&place, clear.expose_secret());
                    done += db_run!(self.writer(), c => sqlx::query(AssertSqlSafe(format!(
                        "UPDATE {table} SET {column} = $1
                         WHERE id = $2 AND {tenant} = $3 AND {column} = $4"
                    )))
                    .bind(&sealed)
                    .bind(&id)
                    .bind(&tenant_id)
                    .bind(&stored)
                    .execute(c).await?.rows_affected());
                }
            }
        }
        done += self.seal_plugin_secrets(pass).await?;
        self.state.recent.forget();
        Ok(done)
    }

    /// [`Self::seal_all`] for plugins' secrets: a JSON object of names (not secret) to
    /// values, each sealed for its plugin and name.
    async fn seal_plugin_secrets(&self, pass: Pass) -> Result<u64, StoreError> {
        use std::collections::BTreeMap;
        let keyring = self.keyring()?;
        let mut done = 0;
        let mut after = (String::new(), String::new());
        loop {
            let rows: Vec<(String, String, String)> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
                "SELECT id, tenant_id, CAST(secrets AS TEXT) FROM plugins
                 WHERE id > $1 OR (id = $1 AND tenant_id > $2)
                 ORDER BY id, tenant_id LIMIT {BATCH}"
            )))
            .bind(&after.0)
            .bind(&after.1)
            .fetch_all(c).await?);
            let Some(last) = rows.last() else { break };
            after = (last.0.clone(), last.1.clone());
            for (id, tenant_id, stored) in rows {
                let secrets: BTreeMap<String, String> =
                    serde_json::from_str(&stored).map_err(crate::error::corrupt)?;
                let stale = |v: &String| match pass {
                    Pass::Clear => !v.starts_with(PREFIX),
                    Pass::NotCurrent => !keyring.is_current(v),
                };
                if !secrets.values().any(stale) {
                    continue;
                }
                let mut sealed = BTreeMap::new();
                for (name, value) in secrets {
                    let place = Place::plugin(&tenant_id, &id, &name);
                    let value = if !stale(&value) {
                        value
                    } else if value.starts_with(PREFIX) {
                        keyring.seal(&place, keyring.open(&place, &value)?.expose_secret())
                    } else {
                        keyring.seal(&place, &value)
                    };
                    sealed.insert(name, value);
                }
                done += db_run!(self.writer(), c => sqlx::query(
                    "UPDATE plugins SET secrets = $1
                     WHERE id = $2 AND tenant_id = $3 AND CAST(secrets AS TEXT) = $4",
                )
                .bind(sqlx::types::Json(&sealed))
                .bind(&id)
                .bind(&tenant_id)
                .bind(&stored)
                .execute(c).await?.rows_affected());
            }
        }
        Ok(done)
    }
}
