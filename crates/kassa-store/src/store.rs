//! The store: connecting to SQLite or PostgreSQL, migrating, and the transactions every
//! query module runs in.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::{Backend, On, Pool, Tx, TypedRef, db_run};
use crate::error::StoreError;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Where reads go, and every write on PostgreSQL.
    pub(crate) pool: Pool,
    /// Where writes go: on SQLite one connection of its own, so writers (Kassa's and
    /// apalis's) wait their turn in the pool's queue, first come first served, instead
    /// of in SQLite's busy handler, which sleeps up to 100 ms between tries and lets a
    /// newcomer overtake a writer that has waited for a second. On PostgreSQL the same
    /// pool as `pool`.
    pub(crate) writer: Pool,
    pub(crate) backend: Backend,
    /// Set by `close`; and whether apalis's workers were given the pool.
    pub(crate) state: std::sync::Arc<StoreState>,
}

#[derive(Debug, Default)]
pub(crate) struct StoreState {
    closed: std::sync::atomic::AtomicBool,
    pub(crate) shared_with_workers: std::sync::atomic::AtomicBool,
    /// API keys and stores read moments ago (`recent.rs`).
    pub(crate) recent: crate::recent::Recent,
    /// The operator's secrets key, set once by `use_secrets_key` (`sealed.rs`).
    pub(crate) keyring: std::sync::OnceLock<crate::sealed::Keyring>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// How long `close` waits for connections in use to come back.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which backend a URL names.
fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(StoreError::Config(
            "database URL must start with sqlite:// or postgres://".into(),
        ))
    }
}

/// SQLite's settings: WAL lets readers go on while one writer writes; foreign keys on;
/// `synchronous = NORMAL`, which in WAL mode syncs at checkpoints instead of at every
/// commit: a commit survives the process being killed (`kill -9`), and only a power
/// loss or an operating system crash can take back the last commits; writers queue
/// on the busy timeout (in-process they queue on the writer pool first).
fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
}

fn postgres_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
}

/// A PostgreSQL connection idle for longer than this is pinged before it is handed out
/// (`docs/storage.md`, "PostgreSQL: a ping only after a second idle").
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// How long a query waits for a connection by default.
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. A SQLite file and its directory
    /// are created when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_with(url, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`Store::connect`], waiting at most `acquire_timeout` for a connection before a
    /// query fails with [`StoreError::Unavailable`] (while the database restarts, or
    /// every connection is busy).
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let backend = backend_of(url)?;
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let options = sqlite_options(&prepare_sqlite_url(url)?)?;
                // The writer connects first: it switches the file to WAL.
                // No ping before a connection is handed out: a SQLite connection is a
                // file this process holds, not a server that may have hung up, and the
                // ping is a round trip to the connection's thread, two thread switches
                // on every acquire (the writer's turn included). A connection whose
                // thread died fails its query, and sqlx's ping when it goes back drops it.
                let writer = SqlitePoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(1)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options.clone())
                    .await?;
                let readers = if url.contains(":memory:") {
                    // Each connection would have its own database.
                    writer.clone()
                } else {
                    SqlitePoolOptions::new()
                        .test_before_acquire(false)
                        .max_connections(max_connections)
                        .acquire_timeout(acquire_timeout)
                        .connect_with(options)
                        .await?
                };
                (Pool::Sqlite(readers), Pool::Sqlite(writer))
            }
            Backend::Postgres => {
                let pool = Pool::Postgres(
                    PgPoolOptions::new()
                        // sqlx's default pings every connection before handing it out,
                        // a network round trip on every acquire. Only a connection left
                        // idle a while is pinged: one a restarted server closed is found
                        // and replaced before a request's query fails on it, while a
                        // busy pool's connections (back moments ago) go straight to work.
                        // The ping sqlx makes when a connection goes back stays.
                        .test_before_acquire(false)
                        .before_acquire(|conn, meta| {
                            Box::pin(async move {
                                if meta.idle_for > PING_WHEN_IDLE_FOR {
                                    sqlx::Connection::ping(conn).await?;
                                }
                                Ok(true)
                            })
                        })
                        .max_connections(max_connections)
                        .acquire_timeout(acquire_timeout)
                        .connect_with(postgres_options(url)?)
                        .await?,
                );
                (pool.clone(), pool)
            }
        };
        Ok(Self::new(pool, writer, backend))
    }

    fn new(pool: Pool, writer: Pool, backend: Backend) -> Self {
        Self {
            pool,
            writer,
            backend,
            state: Default::default(),
        }
    }

    /// Where a write outside a [`Tx`] goes (`db_run!(self.writer(), …)`).
    pub(crate) fn writer(&self) -> &Pool {
        &self.writer
    }

    /// A store that connects on first use: enough for code that only needs a handle,
    /// such as printing the API document.
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = match backend {
            Backend::Sqlite => {
                Pool::Sqlite(SqlitePoolOptions::new().connect_lazy_with(sqlite_options(url)?))
            }
            Backend::Postgres => {
                Pool::Postgres(PgPoolOptions::new().connect_lazy_with(postgres_options(url)?))
            }
        };
        Ok(Self::new(pool.clone(), pool, backend))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The store's writer pool when it runs on SQLite (for tests that write directly).
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.writer {
            Pool::Sqlite(p) => Some(p),
            Pool::Postgres(_) => None,
        }
    }

    /// The store's own pool when it runs on PostgreSQL (for apalis's storages).
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// Applies the backend's pending migrations: apalis's job tables (Kassa's
    /// migrations write jobs), then Kassa's.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        self.migrate_with(migrator).await
    }

    /// Applies apalis's migrations, then `migrator`'s: for tests that build a
    /// database as an older version left it.
    #[doc(hidden)]
    pub async fn migrate_with(&self, migrator: &sqlx::migrate::Migrator) -> Result<(), StoreError> {
        let apalis = apalis_migrations(self.backend);
        match &self.writer {
            Pool::Sqlite(p) => {
                apalis.run(p).await?;
                migrator.run(p).await?;
            }
            Pool::Postgres(p) => {
                apalis.run(p).await?;
                migrator.run(p).await?;
            }
        }
        Ok(())
    }

    /// Kassa's embedded migrations for this store's backend.
    #[doc(hidden)]
    pub fn migrations(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// True when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.check_open()?;
        db_run!(self, c => sqlx::query("SELECT 1").execute(c).await?.rows_affected());
        Ok(())
    }

    /// Closes the store: it refuses new work at once. The pool itself is closed unless
    /// apalis's workers were given it (`job_pool`): their listeners and restarts loop
    /// without end on a closed pool, so theirs closes when the process ends.
    pub async fn close(&self) {
        use std::sync::atomic::Ordering;
        self.state.closed.store(true, Ordering::Release);
        if self.state.shared_with_workers.load(Ordering::Acquire) {
            return;
        }
        let closing = async {
            for pool in [&self.pool, &self.writer] {
                match pool {
                    Pool::Sqlite(p) => p.close().await,
                    Pool::Postgres(p) => p.close().await,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
    }

    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        if self.state.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        Ok(())
    }

    /// A write transaction. On SQLite it takes the write lock up front, so two writers
    /// queue on the busy timeout instead of failing on a lock upgrade.
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        self.check_open()?;
        Ok(match &self.writer {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// A read transaction: one consistent view for reads of several statements.
    pub(crate) async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
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

impl TypedRef for Store {
    fn typed(&self) -> On<&sqlx::SqlitePool, &sqlx::PgPool> {
        self.pool.typed()
    }
}

/// apalis's migrations for the backend, tracked apart from Kassa's.
pub(crate) fn apalis_migrations(backend: Backend) -> sqlx::migrate::Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => apalis_sqlite::SqliteStorage::<()>::migrations(),
        Backend::Postgres => apalis_postgres::PostgresStorage::<()>::migrations(),
    };
    migrator.dangerous_set_table_name("_apalis_migrations");
    migrator
}
