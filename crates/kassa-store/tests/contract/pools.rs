//! License pools and the keys uploaded to them.

use kassa_domain::ids::{LicensePoolId, TenantId};
use kassa_store::{KeysAdded, Store, StoreError};
use kassa_testkit::Backend;

use crate::{Fixture, assert_not_found, first_page};

kassa_testkit::on_both_backends!(
    uploads_count_new_keys_and_report_duplicates,
    pools_of_another_tenant_are_not_found_and_get_no_keys,
    an_upload_larger_than_one_statement_is_stored_whole,
);

/// Adds keys as an upload does: the pool held, the keys inserted, committed.
async fn add_keys(
    store: &Store,
    tenant: &TenantId,
    pool: &LicensePoolId,
    keys: &[String],
) -> Result<KeysAdded, StoreError> {
    let mut work = store.work(tenant).await?;
    work.lock_pool(pool, true).await?;
    let added = work.insert_keys(pool, keys).await?;
    work.commit().await?;
    Ok(added)
}

fn keys(raw: &[&str]) -> Vec<String> {
    raw.iter().map(|k| (*k).to_owned()).collect()
}

async fn uploads_count_new_keys_and_report_duplicates(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let pool = fx
        .store
        .create_license_pool(tenant, kassa_domain::mode::Mode::Live, "Pro keys", Some(3))
        .await
        .expect("creating a pool");
    assert_eq!(pool.available, 0);
    assert_eq!(pool.low_stock_threshold, Some(3));

    let added = add_keys(
        &fx.store,
        tenant,
        &pool.id,
        &keys(&["AAAA-1", "BBBB-2", "CCCC-3"]),
    )
    .await
    .expect("a first upload");
    assert_eq!(
        added,
        KeysAdded {
            added: 3,
            duplicates: Vec::new()
        }
    );
    let stock = fx
        .store
        .license_pool(tenant, &pool.id)
        .await
        .expect("reading the pool");
    assert_eq!((stock.available, stock.assigned), (3, 0));

    let added = add_keys(
        &fx.store,
        tenant,
        &pool.id,
        &keys(&["CCCC-3", "DDDD-4", "AAAA-1"]),
    )
    .await
    .expect("an upload with keys already in the pool");
    assert_eq!(
        added,
        KeysAdded {
            added: 1,
            duplicates: keys(&["CCCC-3", "AAAA-1"])
        }
    );
    let stock = fx
        .store
        .license_pool(tenant, &pool.id)
        .await
        .expect("reading the pool");
    assert_eq!((stock.available, stock.assigned), (4, 0));
    assert_eq!(stock.name, "Pro keys");

    // Uniqueness is per pool: another pool may hold the same key. (A millisecond
    // later, so it lists first.)
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let other = fx
        .store
        .create_license_pool(tenant, kassa_domain::mode::Mode::Live, "Basic keys", None)
        .await
        .expect("creating a second pool");
    let added = add_keys(&fx.store, tenant, &other.id, &keys(&["AAAA-1"]))
        .await
        .expect("the same key in another pool");
    assert_eq!(added.added, 1);

    let listed = fx
        .store
        .list_license_pools(tenant, &first_page(50))
        .await
        .expect("listing pools");
    let stock: Vec<(LicensePoolId, i64)> = listed
        .data
        .iter()
        .map(|p| (p.id.clone(), p.available))
        .collect();
    assert_eq!(stock, [(other.id.clone(), 1), (pool.id.clone(), 4)]);

    let renamed = fx
        .store
        .update_license_pool(tenant, &pool.id, "Pro keys 2025", None)
        .await
        .expect("renaming the pool");
    assert_eq!(renamed.name, "Pro keys 2025");
    assert_eq!(renamed.low_stock_threshold, None);
    assert_eq!(renamed.available, 4);

    assert_not_found(
        add_keys(
            &fx.store,
            tenant,
            &LicensePoolId::generate(),
            &keys(&["EEEE-5"]),
        )
        .await,
    );
}

async fn pools_of_another_tenant_are_not_found_and_get_no_keys(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let pool = fx
        .store
        .create_license_pool(
            &acme.tenant.id,
            kassa_domain::mode::Mode::Live,
            "Pro keys",
            None,
        )
        .await
        .expect("creating a pool");
    add_keys(&fx.store, &acme.tenant.id, &pool.id, &keys(&["AAAA-1"]))
        .await
        .expect("acme's upload");

    let intruder = &globex.tenant.id;
    assert_not_found(
        add_keys(
            &fx.store,
            intruder,
            &pool.id,
            &keys(&["PLANTED-1", "PLANTED-2"]),
        )
        .await,
    );
    assert_not_found(fx.store.license_pool(intruder, &pool.id).await);
    assert_not_found(
        fx.store
            .update_license_pool(intruder, &pool.id, "Hijacked", Some(1))
            .await,
    );
    assert!(
        fx.store
            .list_license_pools(intruder, &first_page(50))
            .await
            .expect("listing globex's pools")
            .data
            .is_empty()
    );

    let stock = fx
        .store
        .license_pool(&acme.tenant.id, &pool.id)
        .await
        .expect("acme's pool");
    assert_eq!((stock.available, stock.assigned), (1, 0));
    assert_eq!(stock.name, "Pro keys");
    assert_eq!(
        fx.count(
            "SELECT COUNT(*) FROM license_keys WHERE value LIKE $1",
            "PLANTED-%"
        )
        .await,
        0
    );
}

async fn an_upload_larger_than_one_statement_is_stored_whole(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let pool = fx
        .store
        .create_license_pool(tenant, kassa_domain::mode::Mode::Live, "Bulk", None)
        .await
        .expect("creating a pool");

    let batch: Vec<String> = (0..1200).map(|i| format!("BULK-{i:05}")).collect();
    let added = add_keys(&fx.store, tenant, &pool.id, &batch)
        .await
        .expect("uploading 1200 keys");
    assert_eq!(
        added,
        KeysAdded {
            added: 1200,
            duplicates: Vec::new()
        }
    );
    assert_eq!(
        fx.store
            .license_pool(tenant, &pool.id)
            .await
            .expect("reading the pool")
            .available,
        1200
    );

    // The same keys again, with ten new ones spread over the chunks.
    let mut again = batch.clone();
    for i in 0..10 {
        again.insert(i * 120, format!("NEW-{i}"));
    }
    let added = add_keys(&fx.store, tenant, &pool.id, &again)
        .await
        .expect("uploading the keys again");
    assert_eq!(added.added, 10);
    assert_eq!(added.duplicates, batch);
    assert_eq!(
        fx.store
            .license_pool(tenant, &pool.id)
            .await
            .expect("reading the pool")
            .available,
        1210
    );
}
