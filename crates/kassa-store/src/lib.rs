//! Kassa's storage: every SQL statement lives here, in small named functions.
//!
//! One set of queries serves SQLite (the embedded default) and PostgreSQL through
//! sqlx's `Any` driver: the schema keeps to types both share (TEXT, BIGINT/INTEGER),
//! and placeholders are `$n`, which both accept. Migrations are per backend under
//! `migrations/`. Every tenant-owned query is scoped by `tenant_id`; an object of
//! another tenant is simply not found. This crate must not know about HTTP.

mod catalog;
mod emails;
mod error;
mod events;
mod fulfillment;
mod idempotency;
mod jobs;
mod orders;
mod plugins;
mod pools;
mod retention;
mod tenants;
mod time;
mod unpaid;
mod view;
mod webhooks;
mod work;

pub use catalog::*;
pub use emails::*;
pub use error::StoreError;
pub use events::*;
pub use fulfillment::*;
pub use idempotency::*;
pub use jobs::{DeliverLine, DeliverWebhook, Job, JobPool, SendEmail};
pub use orders::*;
pub use plugins::*;
pub use pools::*;
pub use retention::*;
pub use tenants::*;
pub use time::Timestamp;
pub use view::*;
pub use webhooks::*;
pub use work::Work;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

/// A write transaction.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    pub(crate) backend: Backend,
    /// Where the database is, for apalis's typed pool (see `Store::job_pool`).
    url: std::sync::Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. A SQLite file and its directory
    /// are created when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(
                "database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers go on while one writer writes.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            backend,
            url: url.into(),
        })
    }

    /// A store that connects on first use: enough for code that only needs a handle,
    /// such as printing the API document.
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = AnyPoolOptions::new().connect_lazy(url)?;
        Ok(Self {
            pool,
            backend,
            url: url.into(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the backend's pending migrations: apalis's job tables (Kassa's
    /// migrations write jobs), then Kassa's.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        jobs::apalis_migrations(self.backend)
            .run(&self.pool)
            .await?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction. On SQLite it takes the write lock up front, so two writers
    /// queue on the busy timeout instead of failing on a lock upgrade.
    async fn begin_write(&self) -> Result<Tx, StoreError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }
}

/// Makes sure a file database can be created: `mode=rwc` and its directory exists.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let dir = std::path::Path::new(path).parent();
    if let Some(dir) = dir.filter(|d| path != ":memory:" && !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// A page of a list, newest first, and the cursor for the next page.
#[derive(Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row says there is more.
    fn from_rows(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }
}

/// Where a list starts and how long it is.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The id after which to continue (exclusive), from a previous page.
    pub after: Option<String>,
    pub limit: i64,
}
