//! The storage contract: what every caller of `kassa-store` may rely on, checked with
//! the same assertions on SQLite and on PostgreSQL. Each test gets a fresh, migrated
//! database; raw SQL appears only where the store's API cannot show what was stored.

mod catalog;
mod deliveries;
mod idempotency;
mod jobs;
mod numbers;
mod placement;
mod pools;
mod queues;
mod refunds;
mod retention;
mod sealed;
mod secrets;
mod tenants;
mod upgrade;
mod webhooks;

use std::fmt::Debug;

use kassa_domain::catalog::{Delivery, KeysPer};
use kassa_domain::ids::{LicensePoolId, ProductId, TenantId};
use kassa_domain::money::Currency;
use kassa_domain::order::{LineInput, PaymentMethod, quote};
use kassa_domain::tenant::{EmailAddress, NewApiKey, TenantSlug};
use kassa_store::{
    CreatedTenant, NewOrder, PageRequest, Price, ProductFields, Store, StoreError, Timestamp,
};
use kassa_testkit::{Backend, TestDatabase};

/// A migrated store on its own database. The database lives as long as this value.
pub struct Fixture {
    pub store: Store,
    pub db: TestDatabase,
    /// The secrets key `store` seals with.
    pub key: kassa_domain::Secret,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Self {
        let db = TestDatabase::create(backend).await;
        let store = Store::connect(&db.url, 5)
            .await
            .expect("connecting to the test database");
        store.migrate().await.expect("migrating the test database");
        let key = kassa_store::Keyring::generate_key();
        store
            .use_secrets_key(kassa_store::Keyring::new(key.expose_secret(), &[]).unwrap())
            .await
            .expect("a secrets key");
        Self { store, db, key }
    }

    /// A tenant with a fresh key, owned by `owner@<slug>.test`.
    pub async fn tenant(&self, slug: &str) -> (CreatedTenant, NewApiKey) {
        let key = NewApiKey::generate(kassa_domain::mode::Mode::Live);
        let created = self
            .store
            .create_tenant(
                &parse_slug(slug),
                &format!("{slug} Ltd"),
                &email(&format!("owner@{slug}.test")),
                &key,
                &NewApiKey::generate(kassa_domain::mode::Mode::Test),
            )
            .await
            .expect("creating a tenant");
        (created, key)
    }

    /// A second pool on the same database, for reading rows the API does not expose.
    pub async fn raw(&self) -> Raw {
        Raw::connect(&self.db.url).await
    }

    /// `SELECT COUNT(*) …` with one text parameter.
    pub async fn count(&self, sql: &'static str, arg: &str) -> i64 {
        let raw = self.raw().await;
        let n = raw.count(sql, &[Arg::Text(arg)]).await;
        raw.close().await;
        n
    }
}

/// A value for a raw statement.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    Time(Timestamp),
}

/// A raw pool typed for the test database's backend.
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Binds `Arg`s in order to a query of either backend.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match *arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Time(v) => query.bind(v),
            };
        }
        query
    }};
}

impl Raw {
    pub async fn connect(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Raw::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("opening a raw connection to the test database"),
            )
        } else {
            Raw::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("opening a raw connection to the test database"),
            )
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Sqlite(p) => bind_args!(sqlx::query(sql), args)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Raw::Postgres(p) => bind_args!(sqlx::query(sql), args)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap_or_else(|e| panic!("raw statement failed: {e}"))
    }

    /// A statement's one integer.
    pub async fn count(&self, sql: &str, args: &[Arg<'_>]) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Sqlite(p) => bind_args!(sqlx::query_scalar(sql), args).fetch_one(p).await,
            Raw::Postgres(p) => bind_args!(sqlx::query_scalar(sql), args).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("raw query failed: {e}"))
    }

    pub async fn close(self) {
        match self {
            Raw::Sqlite(p) => p.close().await,
            Raw::Postgres(p) => p.close().await,
        }
    }
}

pub fn parse_slug(raw: &str) -> TenantSlug {
    TenantSlug::parse(raw).expect("a valid slug")
}

pub fn email(raw: &str) -> EmailAddress {
    EmailAddress::parse("email", raw).expect("a valid email address")
}

pub fn first_page(limit: i64) -> PageRequest {
    PageRequest { after: None, limit }
}

#[track_caller]
pub fn assert_not_found<T: Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::NotFound)),
        "expected NotFound, got {result:?}"
    );
}

#[track_caller]
pub fn assert_conflict<T: Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "expected Conflict, got {result:?}"
    );
}

/// A test mode product "Pro" of `tenant`'s at 10 USD, one key from `pool` per unit
/// (the mode of [`new_order`]'s orders).
pub async fn pool_product(store: &Store, tenant: &TenantId, pool: &LicensePoolId) -> ProductId {
    store
        .create_product(
            tenant,
            kassa_domain::mode::Mode::Test,
            &ProductFields {
                name: "Pro".into(),
                description: None,
                prices: vec![Price {
                    currency: "USD".into(),
                    amount: 1000,
                }],
                delivery: Delivery::LicensePool {
                    pool_id: pool.clone(),
                    keys_per: KeysPer::Unit,
                },
                active: true,
            },
        )
        .await
        .expect("a product")
        .id
}

/// Places `new` in `work` with what the workflow has follow a placement.
pub async fn place_new(work: &mut kassa_store::Work, new: &NewOrder) -> kassa_store::Placement {
    let followups = kassa_domain::workflow::placed(&new.id, new.payment_method);
    work.insert_order(new, &followups).await.expect("an order")
}

/// A test order of `quantity` of `product` at 10 USD each, to be paid by `method`, as
/// the checkout asks the store to write it.
pub fn new_order(product: &ProductId, quantity: i64, method: PaymentMethod) -> NewOrder {
    let lines = [LineInput {
        product_id: product.clone(),
        name: "Pro".into(),
        quantity,
        unit_amount: 1000,
        fixed_discount: 0,
    }];
    NewOrder {
        id: kassa_domain::ids::OrderId::generate(),
        quote: quote(Currency::parse("currency", "USD").unwrap(), &lines, None).unwrap(),
        email: "buyer@example.com".into(),
        name: None,
        locale: "en".into(),
        payment_method: method,
        custom: serde_json::Map::new(),
        return_url: None,
        consents: Vec::new(),
        cart: None,
        coupon_code: None,
        coupon_hold: chrono::TimeDelta::days(1),
        test_mode: true,
        offer_expires_at: None,
        deliveries: Vec::new(),
    }
}

/// Places a bank transfer order of one `product` in `tenant`, in live mode or test
/// mode, makes its line due as a payment would, and claims it: the line as the line
/// dispatcher gets it (with the delivery the placement wrote on it).
pub async fn place_and_claim_line(
    store: &Store,
    tenant: &TenantId,
    product: &ProductId,
    mode: kassa_domain::mode::Mode,
) -> kassa_store::DueLine {
    let mut order = new_order(product, 1, PaymentMethod::BankTransfer);
    order.test_mode = !mode.is_live();
    let mut work = store.work(tenant).await.unwrap();
    let kassa_store::Placement::New(placed) = place_new(&mut work, &order).await else {
        panic!("a new order");
    };
    let due = kassa_domain::workflow::Followups {
        deliver: vec![kassa_domain::workflow::Wake {
            line_no: 1,
            at: None,
        }],
        ..Default::default()
    };
    work.follow(Some(placed.as_str()), &due).await.unwrap();
    work.commit().await.unwrap();
    let claim = format!("clm_{}", placed.as_str());
    let mut lines = store
        .claim_lines(&claim, 10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lines.len(), 1, "one line due");
    lines.remove(0)
}
