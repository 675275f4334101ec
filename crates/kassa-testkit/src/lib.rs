//! Test support: a fresh, empty database per test, on SQLite or PostgreSQL.
//!
//! PostgreSQL tests need `KASSA_TEST_POSTGRES_URL` (a server where the user may
//! create databases); `bash tests/run.sh` starts one and sets it. A missing server is a
//! failure, never a skip: every test runs on both backends.

use sqlx::Connection;

/// The two databases every test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test. SQLite files go with the value; PostgreSQL
/// databases are named `kassa_test_<ulid>` and left for the throwaway server.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}/kassa.db", dir.path().display());
                Self {
                    url,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("KASSA_TEST_POSTGRES_URL").expect(
                    "KASSA_TEST_POSTGRES_URL is not set: run the suite with `bash tests/run.sh`, \
                     which starts PostgreSQL",
                );
                let name = format!(
                    "kassa_test_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connecting to the test PostgreSQL server");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("creating a test database");
                conn.close().await.ok();
                let base = admin
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .unwrap_or(&admin);
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                }
            }
        }
    }
}

/// Declares `mod <name> { sqlite, postgres }` running `async fn <name>(Backend)` on
/// each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )*
    };
}
