//! Tenants, merchant users, memberships and API keys.

use kassa_domain::access::KeyScope;
use kassa_domain::account::Role;
use kassa_domain::ids::{ApiKeyId, TenantId, UserId};
use kassa_domain::mode::Mode;
use kassa_domain::tenant::{EmailAddress, NewApiKey, TenantSlug};

use sqlx::AssertSqlSafe;

use crate::db::{Tx, db_run};
use crate::error::StoreError;
use crate::error::corrupt;
use crate::store::Store;
use crate::time::Timestamp;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRecord {
    #[sqlx(try_from = "String")]
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    /// The settings document as JSON text.
    pub settings: String,
    pub created_at: Timestamp,
    /// Whether the store's Stripe keys (secret and publishable) are set, in test and in
    /// live mode.
    pub stripe_test_ready: bool,
    pub stripe_live_ready: bool,
}

impl TenantRecord {
    /// Whether the store's Stripe keys for `mode` are set.
    pub fn stripe_ready(&self, mode: kassa_domain::mode::Mode) -> bool {
        match mode {
            kassa_domain::mode::Mode::Test => self.stripe_test_ready,
            kassa_domain::mode::Mode::Live => self.stripe_live_ready,
        }
    }
}

/// The columns of a [`TenantRecord`].
const TENANT_COLUMNS: &str = "id, slug, name, CAST(settings AS TEXT) AS settings, created_at,
    (stripe_test_secret_key IS NOT NULL AND stripe_test_publishable_key IS NOT NULL) AS stripe_test_ready,
    (stripe_live_secret_key IS NOT NULL AND stripe_live_publishable_key IS NOT NULL) AS stripe_live_ready";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRecord {
    #[sqlx(try_from = "String")]
    pub id: ApiKeyId,
    #[sqlx(try_from = "String")]
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    /// What the key may do.
    #[sqlx(try_from = "String")]
    pub scope: KeyScope,
    /// The world the key makes and sees: live (true) or test.
    pub livemode: bool,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// An API key with its store, as [`Store::authenticate_api_key`] reads them.
#[derive(sqlx::FromRow)]
struct KeyAndTenantRow {
    #[sqlx(flatten)]
    tenant: TenantRecord,
    key_id: String,
    key_name: String,
    key_prefix: String,
    key_scope: String,
    key_livemode: bool,
    key_created_at: Timestamp,
}

/// What `create_tenant` made.
#[derive(Debug)]
pub struct CreatedTenant {
    pub tenant: TenantRecord,
    pub owner_id: UserId,
    pub api_key_id: ApiKeyId,
    pub test_api_key_id: ApiKeyId,
}

/// The PostgreSQL sequence a store's order numbers come from (migration 0031). A
/// tenant id is `ten_` and lowercase letters and digits, so the name needs no quoting.
pub(crate) fn order_numbers(tenant: &TenantId) -> String {
    format!("order_numbers_{}", tenant.as_str())
}

/// Writes a new store, its owner's membership and, on PostgreSQL, the sequence of its
/// order numbers.
pub(crate) async fn insert_tenant(
    tx: &mut Tx,
    slug: &TenantSlug,
    name: &str,
    owner: &UserId,
    settings: serde_json::Value,
) -> Result<TenantRecord, StoreError> {
    let now = Timestamp::now();
    let id = TenantId::generate();
    db_run!(tx, c => sqlx::query(
        "INSERT INTO tenants (id, slug, name, settings, created_at) VALUES ($1, $2, $3, $5, $4)",
    )
    .bind(id.as_str())
    .bind(slug.as_str())
    .bind(name)
    .bind(now)
    .bind(sqlx::types::Json(&settings))
    .execute(c).await
    .map_err(StoreError::on_unique("a store with this URL name already exists"))?.rows_affected());
    db_run!(tx, c => sqlx::query(
        "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_str())
    .bind(owner.as_str())
    .bind(Role::Owner.as_str())
    .bind(now)
    .execute(c).await?.rows_affected());
    if let Tx::Postgres(tx) = tx {
        let sequence = order_numbers(&id);
        sqlx::query(AssertSqlSafe(format!("CREATE SEQUENCE {sequence}")))
            .execute(&mut **tx)
            .await?;
    }
    Ok(TenantRecord {
        id,
        slug: slug.as_str().to_owned(),
        name: name.to_owned(),
        settings: settings.to_string(),
        created_at: now,
        stripe_test_ready: false,
        stripe_live_ready: false,
    })
}

impl Store {
    /// Creates a tenant, its owner (a new user, or the existing one with that email),
    /// the owner's membership and a first live and test API key, in one transaction.
    pub async fn create_tenant(
        &self,
        slug: &TenantSlug,
        name: &str,
        owner_email: &EmailAddress,
        api_key: &NewApiKey,
        test_api_key: &NewApiKey,
    ) -> Result<CreatedTenant, StoreError> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let existing: Option<String> = db_run!(&mut tx, c => sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(owner_email.as_str())
            .fetch_optional(c).await?);
        let owner_id = match existing {
            Some(raw) => UserId::parse(&raw).map_err(corrupt)?,
            None => {
                let user = UserId::generate();
                db_run!(&mut tx, c => sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
                    .bind(user.as_str())
                    .bind(owner_email.as_str())
                    .bind(now)
                    .execute(c).await?.rows_affected());
                user
            }
        };
        // No settings: the defaults (`TenantSettings`), every method but Stripe.
        let no_settings = serde_json::json!({});
        let tenant = insert_tenant(&mut tx, slug, name, &owner_id, no_settings).await?;
        let api_key_id =
            insert_api_key(&mut tx, &tenant.id, "Default", api_key, KeyScope::Full, now).await?;
        let test_api_key_id = insert_api_key(
            &mut tx,
            &tenant.id,
            "Default (test)",
            test_api_key,
            KeyScope::Full,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedTenant {
            tenant,
            owner_id,
            api_key_id,
            test_api_key_id,
        })
    }

    pub async fn tenant(&self, id: &TenantId) -> Result<TenantRecord, StoreError> {
        db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(c).await?)
            .ok_or(StoreError::NotFound)
    }

    /// The store with this URL name (kept a moment: `recent.rs`).
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<TenantRecord, StoreError> {
        let name = format!("store:{slug}");
        if let Some(tenant) = self.state.recent.get(&name) {
            return Ok(tenant);
        }
        let since = self.state.recent.generation();
        let tenant: TenantRecord = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1")))
            .bind(slug)
            .fetch_optional(c).await?)
            .ok_or(StoreError::NotFound)?;
        self.state.recent.keep(since, name, tenant.clone());
        Ok(tenant)
    }

    /// The tenant an unrevoked key belongs to, and the key.
    pub async fn authenticate_api_key(
        &self,
        key_hash: &str,
    ) -> Result<(TenantRecord, ApiKeyRecord), StoreError> {
        let name = format!("key:{key_hash}");
        if let Some(found) = self.state.recent.get(&name) {
            return Ok(found);
        }
        let since = self.state.recent.generation();
        // The key and its store in one query: every API request starts here.
        let row: Option<KeyAndTenantRow> = db_run!(self, c => sqlx::query_as(
            "SELECT t.id, t.slug, t.name, CAST(t.settings AS TEXT) AS settings, t.created_at,
                 (t.stripe_test_secret_key IS NOT NULL) AS stripe_test_ready,
                 (t.stripe_live_secret_key IS NOT NULL) AS stripe_live_ready,
                 k.id AS key_id, k.name AS key_name, k.prefix AS key_prefix, k.scope AS key_scope,
                 k.livemode AS key_livemode, k.created_at AS key_created_at
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(c).await?);
        let row = row.ok_or(StoreError::NotFound)?;
        let key = ApiKeyRecord {
            id: ApiKeyId::try_from(row.key_id).map_err(corrupt)?,
            tenant_id: row.tenant.id.clone(),
            name: row.key_name,
            prefix: row.key_prefix,
            scope: crate::error::named(&row.key_scope)?,
            livemode: row.key_livemode,
            created_at: row.key_created_at,
            revoked_at: None,
        };
        let found = (row.tenant, key);
        self.state.recent.keep(since, name, found.clone());
        Ok(found)
    }

    /// A new key of `tenant` that may do what `scope` allows.
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        name: &str,
        key: &NewApiKey,
        scope: KeyScope,
    ) -> Result<ApiKeyRecord, StoreError> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let id = insert_api_key(&mut tx, tenant, name, key, scope, now).await?;
        tx.commit().await?;
        Ok(ApiKeyRecord {
            id,
            tenant_id: tenant.clone(),
            name: name.to_owned(),
            prefix: key.prefix.clone(),
            scope,
            livemode: key.mode.is_live(),
            created_at: now,
            revoked_at: None,
        })
    }

    /// The store's keys of one mode: each world lists and revokes only its own.
    pub async fn list_api_keys(
        &self,
        tenant: &TenantId,
        mode: Mode,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(db_run!(self, c => sqlx::query_as(
            "SELECT id, tenant_id, name, prefix, scope, livemode, created_at, revoked_at FROM api_keys
             WHERE tenant_id = $1 AND livemode = $2 ORDER BY id DESC",
        )
        .bind(tenant.as_str())
        .bind(mode.is_live())
        .fetch_all(c).await?))
    }

    /// Revokes a key of `mode`; it stops working at once. Revoking twice is fine.
    pub async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &ApiKeyId,
    ) -> Result<(), StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3)
             WHERE tenant_id = $1 AND id = $2 AND livemode = $4",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(Timestamp::now())
        .bind(mode.is_live())
        .execute(c).await?.rows_affected());
        self.state.recent.forget();
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

impl Store {
    /// Sets a merchant user's password hash; the user is found by email.
    pub async fn set_user_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query("UPDATE users SET password_hash = $2 WHERE email = $1")
            .bind(email)
            .bind(password_hash)
            .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A merchant user's stored password hash, if a password was set.
    pub async fn user_password_hash(&self, email: &str) -> Result<Option<String>, StoreError> {
        let row: Option<Option<String>> = db_run!(self, c => sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(c).await?);
        row.ok_or(StoreError::NotFound)
    }
}

async fn insert_api_key(
    tx: &mut Tx,
    tenant: &TenantId,
    name: &str,
    key: &NewApiKey,
    scope: KeyScope,
    now: Timestamp,
) -> Result<ApiKeyId, StoreError> {
    let id = ApiKeyId::generate();
    db_run!(tx, c => sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, name, prefix, key_hash, scope, livemode, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(name)
    .bind(&key.prefix)
    .bind(&key.hash)
    .bind(scope.as_str())
    .bind(key.mode.is_live())
    .bind(now)
    .execute(c).await?.rows_affected());
    Ok(id)
}
