//! The storage contract: what every caller of `kassa-store` may rely on, checked with
//! the same assertions on SQLite and on PostgreSQL. Each test gets a fresh, migrated
//! database; raw SQL appears only where the store's API cannot show what was stored.

mod catalog;
mod idempotency;
mod jobs;
mod pools;
mod retention;
mod tenants;
mod webhooks;

use std::fmt::Debug;

use kassa_domain::tenant::{EmailAddress, NewApiKey, TenantSlug};
use kassa_store::{CreatedTenant, PageRequest, Store, StoreError};
use kassa_testkit::{Backend, TestDatabase};

/// A migrated store on its own database. The database lives as long as this value.
pub struct Fixture {
    pub store: Store,
    pub db: TestDatabase,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Self {
        let db = TestDatabase::create(backend).await;
        let store = Store::connect(&db.url, 5)
            .await
            .expect("connecting to the test database");
        store.migrate().await.expect("migrating the test database");
        Self { store, db }
    }

    /// A tenant with a fresh key, owned by `owner@<slug>.test`.
    pub async fn tenant(&self, slug: &str) -> (CreatedTenant, NewApiKey) {
        let key = NewApiKey::generate();
        let created = self
            .store
            .create_tenant(
                &parse_slug(slug),
                &format!("{slug} Ltd"),
                &email(&format!("owner@{slug}.test")),
                &key,
            )
            .await
            .expect("creating a tenant");
        (created, key)
    }

    /// A second pool on the same database, for reading rows the API does not expose.
    pub async fn raw(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.db.url)
            .await
            .expect("opening a raw connection to the test database")
    }

    /// `SELECT COUNT(*) …` with one text parameter.
    pub async fn count(&self, sql: &'static str, arg: &str) -> i64 {
        let raw = self.raw().await;
        let n = sqlx::query_scalar(sql)
            .bind(arg)
            .fetch_one(&raw)
            .await
            .expect("counting rows");
        raw.close().await;
        n
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
