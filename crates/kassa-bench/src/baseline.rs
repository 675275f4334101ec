//! Baselines measured in the same run: a bare poem handler (what HTTP alone costs on
//! this machine) and an order's inserts run directly on the database (what the database
//! allows), so Kassa's figures read as ratios.

use std::str::FromStr;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Route, handler, post};
use sqlx::ConnectOptions;

use crate::load::{self, Run};

#[handler]
fn bare(body: String) -> (poem::http::StatusCode, String) {
    // Parse and answer JSON, as an API handler would, with no storage.
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    (
        poem::http::StatusCode::CREATED,
        serde_json::json!({"id": "ord_bare", "lines": v["lines"]}).to_string(),
    )
}

/// Starts a bare poem server on its own 2-thread runtime (as `kassa serve` would
/// have); returns its URL.
pub fn start_bare_server() -> anyhow::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let acceptor = TcpListener::bind("127.0.0.1:0")
                .into_acceptor()
                .await
                .expect("bind");
            let addr = acceptor
                .local_addr()
                .first()
                .and_then(|a| a.as_socket_addr().copied())
                .expect("address");
            tx.send(addr).expect("send");
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run(Route::new().at("/orders", post(bare)))
                .await;
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(5))?;
    Ok(format!("http://{addr}/orders"))
}

const SCHEMA: [&str; 4] = [
    "CREATE TABLE b_orders (tenant_id TEXT NOT NULL, id TEXT NOT NULL, number BIGINT NOT NULL, status TEXT NOT NULL,
       email TEXT, total BIGINT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, id))",
    "CREATE TABLE b_lines (tenant_id TEXT NOT NULL, order_id TEXT NOT NULL, line_no BIGINT NOT NULL,
       product_id TEXT NOT NULL, quantity BIGINT NOT NULL, unit_amount BIGINT NOT NULL, PRIMARY KEY (tenant_id, order_id, line_no))",
    "CREATE TABLE b_events (tenant_id TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, order_id TEXT,
       data TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, id))",
    "CREATE TABLE b_jobs (id TEXT PRIMARY KEY, job_type TEXT NOT NULL, job BYTEA NOT NULL, status TEXT NOT NULL, run_at BIGINT NOT NULL)",
];

const INSERTS: [&str; 4] = [
    "INSERT INTO b_orders VALUES ($1, $2, $3, 'not_paid', 'buyer@bench.test', 1999, $3)",
    "INSERT INTO b_lines VALUES ($1, $2, 1, 'prd_bench', 1, 1999)",
    "INSERT INTO b_events VALUES ($1, $2, 'order.created', $2, '{\"order\":{\"id\":\"x\",\"total\":1999}}', $3)",
    "INSERT INTO b_jobs VALUES ($2, 'kassa::deliver_webhook', '{\"tenant_id\":\"t\"}', 'Pending', $3)",
];

/// An order's four inserts in one transaction, from `clients` connections at once, on
/// a fresh SQLite file with Kassa's settings (WAL, `synchronous = NORMAL`, writers
/// `BEGIN IMMEDIATE`).
pub async fn sqlite_inserts(
    dir: &std::path::Path,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    let path = dir.join("baseline.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&format!(
        "sqlite://{}?mode=rwc",
        path.display()
    ))?
    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
    .busy_timeout(Duration::from_secs(10))
    .disable_statement_logging();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(clients as u32)
        .connect_with(opts)
        .await?;
    for s in SCHEMA {
        sqlx::query(sqlx::AssertSqlSafe(s.replace("BYTEA", "BLOB")))
            .execute(&pool)
            .await?;
    }
    Ok(drive(Db::Sqlite(pool), clients, duration).await)
}

/// The same on PostgreSQL, in a fresh database on the server at `admin_url`.
pub async fn postgres_inserts(
    db_url: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    let opts = sqlx::postgres::PgConnectOptions::from_str(db_url)?.disable_statement_logging();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(clients as u32)
        .connect_with(opts)
        .await?;
    for s in SCHEMA {
        sqlx::query(s).execute(&pool).await?;
    }
    Ok(drive(Db::Postgres(pool), clients, duration).await)
}

enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// One order's inserts in one transaction (on SQLite a writer's `BEGIN IMMEDIATE`).
async fn one_order(db: &Db, n: u64) -> Result<(), sqlx::Error> {
    let id = format!("ord_{n}");
    macro_rules! insert_all {
        ($tx:ident) => {
            for s in INSERTS {
                sqlx::query(s)
                    .bind("ten_bench")
                    .bind(&id)
                    .bind(n as i64)
                    .execute(&mut *$tx)
                    .await?;
            }
        };
    }
    match db {
        Db::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            insert_all!(tx);
            tx.commit().await
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            insert_all!(tx);
            tx.commit().await
        }
    }
}

/// `clients` connections placing orders' inserts for `duration`.
async fn drive(db: Db, clients: usize, duration: Duration) -> Run {
    let db = std::sync::Arc::new(db);
    load::closed_loop(clients, duration, move |n| {
        let db = db.clone();
        async move { one_order(&db, n).await.map_err(|e| e.to_string()) }
    })
    .await
}
