//! `TestApp`: a running Kassa with its own database and one store (`acme`) with a key.

use kassa::Server;
use kassa_api::ApiContext;
use kassa_domain::mode::Mode;
use kassa_domain::tenant::{EmailAddress, NewApiKey, TenantSlug};
use kassa_store::Store;
use kassa_testkit::{Backend, TestDatabase};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    /// The test mode API key of the store `acme` (most tests sell in test mode).
    pub key: String,
    /// Its live mode API key.
    pub live_key: String,
    pub store: Store,
    _db: TestDatabase,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    _stop_workers: oneshot::Sender<()>,
}

/// How a test's Kassa is set up.
pub struct Options {
    pub smtp_url: Option<String>,
    pub remind_after: Option<std::time::Duration>,
    pub delete_after: std::time::Duration,
    pub limits: kassa_limits::LimitsConfig,
    /// Outgoing requests may reach loopback (the tests' receivers live there).
    pub allow_private_network: bool,
    /// Proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The largest plugin component taken (64 MiB, as in production).
    pub max_component_bytes: usize,
    /// Where Stripe is reached (a stand-in in the Stripe tests; by default a closed
    /// port, so nothing leaves the machine).
    pub providers: kassa_orders::Providers,
    /// The most requests served at once (`http_max_in_flight`; production's default).
    pub max_in_flight: usize,
}

impl Default for Options {
    /// No SMTP; reminders after a day, deletion after 90 days and the rate limits, as
    /// in production; private addresses allowed, so the tests' receivers on loopback
    /// can be reached.
    fn default() -> Self {
        Self {
            smtp_url: None,
            remind_after: Some(std::time::Duration::from_secs(86_400)),
            delete_after: std::time::Duration::from_secs(90 * 86_400),
            limits: kassa_limits::LimitsConfig::default(),
            allow_private_network: true,
            trusted_proxies: Vec::new(),
            max_component_bytes: kassa_plugins::HostPolicy::default().max_component_bytes,
            max_in_flight: kassa::DEFAULT_MAX_IN_FLIGHT,
            providers: kassa_orders::Providers {
                stripe_api_base: "http://127.0.0.1:9".into(),
                stripe_js_url: "http://127.0.0.1:9/js.stripe.com/v3/".into(),
                timeout: std::time::Duration::from_secs(5),
            },
        }
    }
}

/// The operator's token for `/metrics` in tests.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// Webhook retries in tests: the first attempt at once, then after 1 s and 1 s.
pub const WEBHOOK_SCHEDULE: &str = "0s,1s,1s";

/// What a client sees of one response.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// Asserts a problem+json error with this status, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status, "{}", self.text);
        assert!(self.body["type"].is_string(), "{}", self.text);
        // One shape, as the published `Problem` schema says: `errors` always there.
        assert!(self.body["errors"].is_array(), "{}", self.text);
        &self.body
    }

    /// The fields a validation problem names.
    #[track_caller]
    pub fn invalid_fields(&self) -> Vec<String> {
        self.problem(422)["errors"]
            .as_array()
            .expect("a validation problem lists errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(
            (200..300).contains(&self.status),
            "{} {}",
            self.status,
            self.text
        );
        &self.body
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with_smtp(backend, None).await
    }

    /// A Kassa sending its emails to `smtp_url` (none: kept in the outbox).
    pub async fn spawn_with_smtp(backend: Backend, smtp_url: Option<&str>) -> Self {
        Self::spawn_with(
            backend,
            Options {
                smtp_url: smtp_url.map(str::to_owned),
                ..Options::default()
            },
        )
        .await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Self {
        let smtp_url = options.smtp_url.as_deref();
        let db = TestDatabase::create(backend).await;
        let store = Store::connect(&db.url, 5).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
            .use_secrets_key(kassa_store::Keyring::generate())
            .await
            .expect("a secrets key");
        let server = Server::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind")
            .trust_proxies(options.trusted_proxies.clone())
            .with_metrics_token(Some(METRICS_TOKEN.into()))
            .max_in_flight(options.max_in_flight);
        let base = format!("http://{}", server.local_addr);
        let plugins = std::sync::Arc::new(
            kassa_plugins::PluginHost::new(kassa_plugins::HostPolicy {
                allow_private_network: options.allow_private_network,
                allow_plain_http: true,
                max_component_bytes: options.max_component_bytes,
                // Compiled components are shared by every test (and kept between
                // runs): each is compiled once, whatever the number of tests using it.
                cache_dir: Some(format!("{}/plugin-cache", env!("CARGO_TARGET_TMPDIR")).into()),
                ..kassa_plugins::HostPolicy::default()
            })
            .expect("a plugin host"),
        );
        let ctx = ApiContext {
            store: store.clone(),
            public_url: base.clone(),
            plugins: Some(plugins.clone()),
            limits: std::sync::Arc::new(
                kassa_limits::Limits::new(&options.limits).expect("rate limits"),
            ),
            network: kassa_webhooks::NetworkPolicy {
                allow_private: options.allow_private_network,
            },
            providers: options.providers.clone(),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let (stop_workers, workers_stopped) = oneshot::channel::<()>();
        let workers = kassa_jobs::Workers::new(
            store.clone(),
            kassa_webhooks::Sender::new(kassa_webhooks::NetworkPolicy {
                allow_private: options.allow_private_network,
            })
            .expect("an HTTP client"),
            kassa_webhooks::RetrySchedule::parse(WEBHOOK_SCHEDULE).expect("a schedule"),
            smtp_url.map(|url| kassa_mail::Mailer::new(url, "shop@kassa.test").expect("a mailer")),
            &base,
            kassa_jobs::UnpaidDefaults {
                remind_after: options.remind_after,
                delete_after: options.delete_after,
            },
        )
        .with_plugins(plugins);
        tokio::spawn(async move {
            workers
                .run(async {
                    workers_stopped.await.ok();
                })
                .await
                .expect("the workers run");
        });
        let served = tokio::spawn(async move {
            server
                .run(ctx, async {
                    rx.await.ok();
                })
                .await
                .expect("server runs");
        });
        let mut app = Self {
            base,
            key: String::new(),
            live_key: String::new(),
            store,
            _db: db,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            served: Some(served),
            _stop_workers: stop_workers,
        };
        (app.key, app.live_key) = app.new_tenant_keys("acme").await;
        app
    }

    /// Creates another store and returns its test mode API key.
    pub async fn new_tenant(&self, slug: &str) -> String {
        self.new_tenant_keys(slug).await.0
    }

    /// Creates another store and returns its test and live API keys.
    pub async fn new_tenant_keys(&self, slug: &str) -> (String, String) {
        let live = NewApiKey::generate(Mode::Live);
        let test = NewApiKey::generate(Mode::Test);
        self.store
            .create_tenant(
                &TenantSlug::parse(slug).expect("slug"),
                "Test store",
                &EmailAddress::parse("e", &format!("owner@{slug}.test")).expect("email"),
                &live,
                &test,
            )
            .await
            .expect("tenant");
        (
            test.secret.expose_secret().to_owned(),
            live.secret.expose_secret().to_owned(),
        )
    }

    /// How many rows `table` holds, whatever they are (for tests that check that
    /// something was not written).
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match (self.store.sqlite_pool(), self.store.pg_pool()) {
            (Some(pool), _) => sqlx::query_scalar(sql).fetch_one(pool).await,
            (_, Some(pool)) => sqlx::query_scalar(sql).fetch_one(pool).await,
            _ => unreachable!("a store has a pool"),
        }
        .expect("counting rows")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            headers,
            body,
            text,
        }
    }

    pub fn request(&self, method: Method, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.get_as(&self.key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Answer {
        self.send(self.request(Method::GET, key, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_as(&self.key, path, body).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::POST, key, path).json(&body))
            .await
    }

    pub async fn patch_as(&self, key: &str, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::PATCH, key, path).json(&body))
            .await
    }

    pub async fn delete_as(&self, key: &str, path: &str) -> Answer {
        self.send(self.request(Method::DELETE, key, path)).await
    }

    /// Asks the server to stop, as SIGTERM does, and waits until it has: requests in
    /// flight finish, for at most the server's grace period.
    pub async fn stop_serving(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
        if let Some(served) = self.served.take() {
            served.await.expect("the server stopped");
        }
    }

    /// An order of one `product`, placed with `key` to be paid by bank transfer; its id.
    pub async fn transfer_order_as(&self, key: &str, product: &str) -> String {
        let order = self
            .post_as(
                key,
                "/api/v1/orders",
                json!({"lines": [{"product_id": product, "quantity": 1}], "currency": "USD",
                       "customer": {"email": "c@example.com"}, "payment_method": "bank_transfer",
                       "consents": {"terms": true, "personal_data": true}}),
            )
            .await;
        order.ok()["id"].as_str().unwrap().to_owned()
    }

    /// A pool holding `keys`; returns its id.
    pub async fn pool_with_keys(&self, keys: &[&str]) -> String {
        let pool = self
            .post("/api/v1/license-pools", serde_json::json!({"name": "Main"}))
            .await;
        let id = pool.ok()["id"].as_str().expect("pool id").to_owned();
        if !keys.is_empty() {
            self.post(
                &format!("/api/v1/license-pools/{id}/keys"),
                serde_json::json!({ "keys": keys }),
            )
            .await
            .ok();
        }
        id
    }

    /// A product priced 19.99 USD and 17.99 EUR, delivered from `pool`.
    pub async fn product(&self, pool: &str) -> Value {
        self.post(
            "/api/v1/products",
            serde_json::json!({
                "name": "Pro License",
                "prices": [{"currency": "USD", "amount": 1999}, {"currency": "EUR", "amount": 1799}],
                "delivery": {"method": "license_pool", "pool_id": pool},
            }),
        )
        .await
        .ok()
        .clone()
    }
}

/// Every row of the database, as text: `(table, row)`. Attack tests read the database
/// the way someone with a copy of it would, on either backend.
impl TestApp {
    pub async fn every_row(&self) -> Vec<(String, String)> {
        use sqlx::Row;
        let mut rows = Vec::new();
        if let Some(pool) = self.store.sqlite_pool() {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(pool)
            .await
            .expect("tables");
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&table)
                        .fetch_all(pool)
                        .await
                        .expect("columns");
                let row = columns
                    .iter()
                    .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                // Bytes, not text: binary columns (plugins, job arguments) are not UTF-8.
                let found = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST({row} AS BLOB) FROM \"{table}\""
                )))
                .fetch_all(pool)
                .await
                .expect("rows");
                for r in found {
                    let bytes = r.get::<Vec<u8>, _>(0);
                    rows.push((table.clone(), String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        } else if let Some(pool) = self.store.pg_pool() {
            let tables: Vec<(String, String)> = sqlx::query_as(
                "SELECT table_schema::text, table_name::text FROM information_schema.tables
                 WHERE table_type = 'BASE TABLE'
                 AND table_schema NOT IN ('pg_catalog', 'information_schema')",
            )
            .fetch_all(pool)
            .await
            .expect("tables");
            for (schema, table) in tables {
                let found: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST(t AS TEXT) FROM \"{schema}\".\"{table}\" t"
                )))
                .fetch_all(pool)
                .await
                .expect("rows");
                rows.extend(found.into_iter().map(|r| (format!("{schema}.{table}"), r)));
            }
        }
        rows
    }

    /// Asserts that no row of the database holds any of `secrets` (sealed at rest
    /// under the operator's key, they are in no dump or backup).
    pub async fn assert_stored_sealed(&self, secrets: &[&str]) {
        for secret in secrets {
            let found = self.rows_holding(secret).await;
            assert!(found.is_empty(), "a secret is stored in clear: {found:?}");
        }
    }

    /// The rows anywhere in the database that hold `needle`, as text or as the hex of
    /// its bytes (binary columns).
    pub async fn rows_holding(&self, needle: &str) -> Vec<(String, String)> {
        let hex = hex::encode(needle.as_bytes());
        self.every_row()
            .await
            .into_iter()
            .filter(|(_, row)| row.contains(needle) || row.to_lowercase().contains(&hex))
            .collect()
    }
}
