//! Products, coupons and checkout links.

use std::collections::HashSet;
use std::time::Duration;

use kassa_domain::catalog::{Delivery, KeysPer};
use kassa_domain::ids::{CheckoutLinkId, CouponId, LicensePoolId, PluginId, ProductId, TenantId};
use kassa_domain::mode::Mode;
use kassa_store::{
    CheckoutLinkFields, CouponFields, PageRequest, Price, ProductFields, ProductRecord, Timestamp,
};
use kassa_testkit::Backend;

use crate::{Arg, Fixture, assert_conflict, assert_not_found, first_page, place_and_claim_line};

const LIVE: Mode = Mode::Live;

kassa_testkit::on_both_backends!(
    products_read_back_as_written_and_update,
    product_pages_hold_every_product_once_newest_first,
    products_of_another_tenant_are_not_found,
    coupon_codes_are_unique_per_tenant,
    coupons_read_back_and_update,
    checkout_links_are_created_listed_and_deleted,
    checkout_links_of_another_tenant_are_not_found,
    each_mode_has_a_catalog_of_its_own,
    a_line_takes_the_delivery_of_its_orders_mode,
);

fn license_product(name: &str) -> ProductFields {
    ProductFields {
        name: name.to_owned(),
        description: Some("A year of updates".into()),
        prices: vec![
            Price {
                currency: "EUR".into(),
                amount: 1999,
            },
            Price {
                currency: "USD".into(),
                amount: 2199,
            },
        ],
        delivery: Delivery::LicensePool {
            pool_id: LicensePoolId::generate(),
            keys_per: KeysPer::Unit,
        },
        active: true,
    }
}

#[track_caller]
fn assert_fields(record: &ProductRecord, expected: &ProductFields) {
    assert_eq!(record.fields.name, expected.name);
    assert_eq!(record.fields.description, expected.description);
    assert_eq!(record.fields.prices, expected.prices);
    assert_eq!(record.fields.delivery, expected.delivery);
    assert_eq!(record.fields.active, expected.active);
}

async fn products_read_back_as_written_and_update(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;

    let fields = license_product("Pro licence");
    let created = fx
        .store
        .create_product(tenant, LIVE, &fields)
        .await
        .expect("creating a product");
    assert_fields(&created, &fields);

    let read = fx
        .store
        .product(tenant, LIVE, &created.id)
        .await
        .expect("reading the product");
    assert_eq!(read.id, created.id);
    assert_fields(&read, &fields);
    assert_eq!(read.created_at, created.created_at);
    assert_eq!(read.updated_at, created.updated_at);

    let changed = ProductFields {
        name: "Pro licence (web)".into(),
        description: None,
        prices: vec![Price {
            currency: "JPY".into(),
            amount: 3000,
        }],
        delivery: Delivery::WebService {
            url: "https://licences.acme.test/issue".into(),
            keys_per: KeysPer::Unit,
        },
        active: false,
    };
    let updated = fx
        .store
        .update_product(tenant, LIVE, &created.id, &changed)
        .await
        .expect("updating the product");
    assert_eq!(updated.id, created.id);
    assert_fields(&updated, &changed);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);

    let reread = fx
        .store
        .product(tenant, LIVE, &created.id)
        .await
        .expect("reading the product again");
    assert_fields(&reread, &changed);

    let plugin = ProductFields {
        delivery: Delivery::Plugin {
            plugin_id: PluginId::generate(),
            keys_per: KeysPer::Line,
        },
        ..changed
    };
    let updated = fx
        .store
        .update_product(tenant, LIVE, &created.id, &plugin)
        .await
        .expect("switching to plugin delivery");
    assert_fields(&updated, &plugin);

    assert_not_found(fx.store.product(tenant, LIVE, &ProductId::generate()).await);
    assert_not_found(
        fx.store
            .update_product(tenant, LIVE, &ProductId::generate(), &plugin)
            .await,
    );
}

/// Creates products with ids a millisecond apart, so creation order is id order.
async fn create_products(fx: &Fixture, tenant: &TenantId, n: usize) -> Vec<ProductId> {
    let mut ids = Vec::new();
    for i in 0..n {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let product = fx
            .store
            .create_product(tenant, LIVE, &license_product(&format!("Product {i}")))
            .await
            .expect("creating a product");
        ids.push(product.id);
    }
    ids
}

async fn product_pages_hold_every_product_once_newest_first(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let created = create_products(&fx, tenant, 5).await;

    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut request = first_page(2);
    loop {
        let page = fx
            .store
            .list_products(tenant, LIVE, &request)
            .await
            .expect("listing products");
        page_sizes.push(page.data.len());
        seen.extend(page.data.iter().map(|p| p.id.clone()));
        match page.next_cursor {
            Some(cursor) => {
                assert_eq!(
                    Some(cursor.as_str()),
                    page.data.last().map(|p| p.id.as_str()),
                    "the cursor is the last id on the page"
                );
                request = PageRequest {
                    after: Some(cursor),
                    limit: 2,
                };
            }
            None => break,
        }
        assert!(page_sizes.len() < 10, "pagination does not end");
    }
    assert_eq!(page_sizes, [2, 2, 1]);
    let newest_first: Vec<ProductId> = created.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    // A page that ends exactly at the last product says there is no more.
    let all = fx
        .store
        .list_products(tenant, LIVE, &first_page(5))
        .await
        .expect("listing all products");
    assert_eq!(all.data.len(), 5);
    assert_eq!(all.next_cursor, None);
    let after_last = fx
        .store
        .list_products(
            tenant,
            LIVE,
            &PageRequest {
                after: Some(created[0].to_string()),
                limit: 2,
            },
        )
        .await
        .expect("listing after the oldest product");
    assert!(after_last.data.is_empty());
    assert_eq!(after_last.next_cursor, None);
}

async fn products_of_another_tenant_are_not_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let acme_products = create_products(&fx, &acme.tenant.id, 2).await;
    let globex_products = create_products(&fx, &globex.tenant.id, 1).await;

    let intruder = &globex.tenant.id;
    assert_not_found(fx.store.product(intruder, LIVE, &acme_products[0]).await);
    let mut hijack = license_product("Hijacked");
    hijack.active = false;
    assert_not_found(
        fx.store
            .update_product(intruder, LIVE, &acme_products[0], &hijack)
            .await,
    );
    let untouched = fx
        .store
        .product(&acme.tenant.id, LIVE, &acme_products[0])
        .await
        .expect("acme still reads its product");
    assert_eq!(untouched.fields.name, "Product 0");
    assert!(untouched.fields.active);

    let globex_list: Vec<ProductId> = fx
        .store
        .list_products(intruder, LIVE, &first_page(50))
        .await
        .expect("listing globex's products")
        .data
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(globex_list, globex_products);

    let acme_list: HashSet<ProductId> = fx
        .store
        .list_products(&acme.tenant.id, LIVE, &first_page(50))
        .await
        .expect("listing acme's products")
        .data
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(acme_list, acme_products.into_iter().collect());
}

fn coupon(code: &str) -> CouponFields {
    CouponFields {
        code: code.to_owned(),
        percent_off: Some(10),
        amount_off: None,
        currency: None,
        expires_at: None,
        max_redemptions: None,
        product_ids: Vec::new(),
        active: true,
    }
}

async fn coupon_codes_are_unique_per_tenant(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;

    let first = fx
        .store
        .create_coupon(&acme.tenant.id, LIVE, &coupon("SAVE10"))
        .await
        .expect("creating a coupon");
    let mut same_code = coupon("SAVE10");
    same_code.percent_off = Some(50);
    assert_conflict(
        fx.store
            .create_coupon(&acme.tenant.id, LIVE, &same_code)
            .await,
    );

    let acme_coupons = fx
        .store
        .list_coupons(&acme.tenant.id, LIVE, &first_page(50))
        .await
        .expect("listing coupons");
    assert_eq!(acme_coupons.data.len(), 1);
    assert_eq!(acme_coupons.data[0].id, first.id);
    assert_eq!(acme_coupons.data[0].fields.percent_off, Some(10));

    let elsewhere = fx
        .store
        .create_coupon(&globex.tenant.id, LIVE, &same_code)
        .await
        .expect("another tenant may use the same code");
    assert_ne!(elsewhere.id, first.id);

    let acme_save10 = fx
        .store
        .coupon_by_code(&acme.tenant.id, LIVE, "SAVE10")
        .await
        .expect("acme's coupon by code");
    assert_eq!(acme_save10.id, first.id);
    assert_eq!(acme_save10.fields.percent_off, Some(10));
    let globex_save10 = fx
        .store
        .coupon_by_code(&globex.tenant.id, LIVE, "SAVE10")
        .await
        .expect("globex's coupon by code");
    assert_eq!(globex_save10.id, elsewhere.id);
    assert_eq!(globex_save10.fields.percent_off, Some(50));
    assert_not_found(
        fx.store
            .coupon_by_code(&acme.tenant.id, LIVE, "SAVE20")
            .await,
    );

    assert_not_found(fx.store.coupon(&globex.tenant.id, LIVE, &first.id).await);
    assert_not_found(
        fx.store
            .update_coupon(&globex.tenant.id, LIVE, &first.id, false, None, None)
            .await,
    );
    assert!(
        fx.store
            .coupon(&acme.tenant.id, LIVE, &first.id)
            .await
            .expect("acme's coupon")
            .fields
            .active
    );
}

async fn coupons_read_back_and_update(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let scope = vec![ProductId::generate(), ProductId::generate()];
    let expires = Timestamp::from(Timestamp::now().millis() + 7 * 24 * 60 * 60 * 1000);
    let fields = CouponFields {
        code: "WELCOME5".into(),
        percent_off: None,
        amount_off: Some(500),
        currency: Some("EUR".into()),
        expires_at: Some(expires),
        max_redemptions: Some(100),
        product_ids: scope.clone(),
        active: true,
    };
    let created = fx
        .store
        .create_coupon(tenant, LIVE, &fields)
        .await
        .expect("creating a coupon");
    let read = fx
        .store
        .coupon(tenant, LIVE, &created.id)
        .await
        .expect("reading the coupon");
    assert_eq!(read.fields.code, "WELCOME5");
    assert_eq!(read.fields.percent_off, None);
    assert_eq!(read.fields.amount_off, Some(500));
    assert_eq!(read.fields.currency.as_deref(), Some("EUR"));
    assert_eq!(read.fields.expires_at, Some(expires));
    assert_eq!(read.fields.max_redemptions, Some(100));
    assert_eq!(read.fields.product_ids, scope);
    assert!(read.fields.active);
    assert_eq!(read.times_redeemed, 0);
    assert_eq!(read.created_at, created.created_at);

    let later = Timestamp::from(expires.millis() + 1000);
    let updated = fx
        .store
        .update_coupon(tenant, LIVE, &created.id, false, Some(later), Some(5))
        .await
        .expect("updating the coupon");
    assert!(!updated.fields.active);
    assert_eq!(updated.fields.expires_at, Some(later));
    assert_eq!(updated.fields.max_redemptions, Some(5));
    assert_eq!(updated.fields.code, "WELCOME5");
    assert_eq!(updated.fields.amount_off, Some(500));
    assert_eq!(updated.fields.product_ids, scope);

    let cleared = fx
        .store
        .update_coupon(tenant, LIVE, &created.id, true, None, None)
        .await
        .expect("clearing the limits");
    assert!(cleared.fields.active);
    assert_eq!(cleared.fields.expires_at, None);
    assert_eq!(cleared.fields.max_redemptions, None);
    let by_code = fx
        .store
        .coupon_by_code(tenant, LIVE, "WELCOME5")
        .await
        .expect("by code");
    assert_eq!(by_code.id, created.id);
    assert!(by_code.fields.active);
    assert_eq!(by_code.fields.max_redemptions, None);

    assert_not_found(
        fx.store
            .update_coupon(tenant, LIVE, &CouponId::generate(), true, None, None)
            .await,
    );
}

fn link_to(product: &ProductId, quantity: i64) -> CheckoutLinkFields {
    CheckoutLinkFields {
        product_id: product.clone(),
        quantity,
        currency: Some("EUR".into()),
        coupon_code: Some("SAVE10".into()),
        offer: Some(kassa_domain::offer::Offer {
            unit_amount: Some(900),
            discount: None,
            currency: Some("EUR".into()),
            min_quantity: quantity,
            max_quantity: quantity,
            expires: Some(2_000_000_000),
        }),
    }
}

async fn checkout_links_are_created_listed_and_deleted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let product = create_products(&fx, tenant, 1).await.remove(0);

    let first = fx
        .store
        .create_checkout_link(tenant, LIVE, &link_to(&product, 3))
        .await
        .expect("creating a link");
    let read = fx
        .store
        .checkout_link(tenant, LIVE, &first.id)
        .await
        .expect("reading the link");
    assert_eq!(read.fields.product_id, product);
    assert_eq!(read.fields.quantity, 3);
    assert_eq!(read.fields.currency.as_deref(), Some("EUR"));
    assert_eq!(read.fields.coupon_code.as_deref(), Some("SAVE10"));
    assert_eq!(
        read.fields.offer,
        link_to(&product, 3).offer,
        "the signed offer"
    );
    assert_eq!(read.created_at, first.created_at);

    tokio::time::sleep(Duration::from_millis(2)).await;
    let plain = CheckoutLinkFields {
        product_id: product.clone(),
        quantity: 1,
        currency: None,
        coupon_code: None,
        offer: None,
    };
    let second = fx
        .store
        .create_checkout_link(tenant, LIVE, &plain)
        .await
        .expect("creating a second link");
    let read = fx
        .store
        .checkout_link(tenant, LIVE, &second.id)
        .await
        .expect("reading the second link");
    assert_eq!(read.fields.currency, None);
    assert_eq!(read.fields.coupon_code, None);
    assert_eq!(read.fields.offer, None);

    let listed: Vec<CheckoutLinkId> = fx
        .store
        .list_checkout_links(tenant, LIVE, &first_page(50))
        .await
        .expect("listing links")
        .data
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(listed, [second.id.clone(), first.id.clone()]);

    fx.store
        .delete_checkout_link(tenant, LIVE, &first.id)
        .await
        .expect("deleting a link");
    assert_not_found(fx.store.checkout_link(tenant, LIVE, &first.id).await);
    assert_not_found(fx.store.delete_checkout_link(tenant, LIVE, &first.id).await);
    let listed: Vec<CheckoutLinkId> = fx
        .store
        .list_checkout_links(tenant, LIVE, &first_page(50))
        .await
        .expect("listing links")
        .data
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(listed, [second.id]);
}

async fn checkout_links_of_another_tenant_are_not_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let product = create_products(&fx, &acme.tenant.id, 1).await.remove(0);
    let link = fx
        .store
        .create_checkout_link(&acme.tenant.id, LIVE, &link_to(&product, 1))
        .await
        .expect("creating a link");

    let intruder = &globex.tenant.id;
    assert_not_found(fx.store.checkout_link(intruder, LIVE, &link.id).await);
    assert_not_found(
        fx.store
            .delete_checkout_link(intruder, LIVE, &link.id)
            .await,
    );
    assert!(
        fx.store
            .list_checkout_links(intruder, LIVE, &first_page(50))
            .await
            .expect("listing globex's links")
            .data
            .is_empty()
    );
    // A link may only point at the linking tenant's own products.
    assert!(
        fx.store
            .create_checkout_link(intruder, LIVE, &link_to(&product, 1))
            .await
            .is_err(),
        "globex linked to acme's product"
    );
    assert!(
        fx.store
            .list_checkout_links(intruder, LIVE, &first_page(50))
            .await
            .expect("listing globex's links")
            .data
            .is_empty()
    );

    let still = fx
        .store
        .checkout_link(&acme.tenant.id, LIVE, &link.id)
        .await
        .expect("acme's link survives");
    assert_eq!(still.fields.product_id, product);
}

/// A key of one mode never reaches the other's products, coupons or links; a coupon
/// code is unique per store and mode.
async fn each_mode_has_a_catalog_of_its_own(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let test = Mode::Test;
    let live = create_products(&fx, tenant, 1).await.remove(0);
    assert_not_found(fx.store.product(tenant, test, &live).await);
    let mut hijack = license_product("Hijacked");
    hijack.prices[0].amount = 1;
    assert_not_found(fx.store.update_product(tenant, test, &live, &hijack).await);
    let listed = fx.store.list_products(tenant, test, &first_page(50)).await;
    assert!(listed.expect("test products").data.is_empty());
    let kept = fx.store.product(tenant, LIVE, &live).await.expect("live");
    assert_eq!(kept.fields.prices[0].amount, 1999);
    assert!(kept.livemode);

    let live_coupon = fx
        .store
        .create_coupon(tenant, LIVE, &coupon("SAVE10"))
        .await
        .expect("a live coupon");
    let mut test_fields = coupon("SAVE10");
    test_fields.percent_off = Some(90);
    let test_coupon = fx
        .store
        .create_coupon(tenant, test, &test_fields)
        .await
        .expect("the same code in test mode");
    assert!(!test_coupon.livemode);
    assert_conflict(fx.store.create_coupon(tenant, test, &test_fields).await);
    let by_code = |mode| fx.store.coupon_by_code(tenant, mode, "SAVE10");
    assert_eq!(by_code(LIVE).await.unwrap().fields.percent_off, Some(10));
    assert_eq!(by_code(test).await.unwrap().fields.percent_off, Some(90));
    assert_not_found(fx.store.coupon(tenant, test, &live_coupon.id).await);
    assert_not_found(
        fx.store
            .update_coupon(tenant, test, &live_coupon.id, false, None, None)
            .await,
    );
    assert!(by_code(LIVE).await.unwrap().fields.active);

    let link = fx
        .store
        .create_checkout_link(tenant, LIVE, &link_to(&live, 1))
        .await
        .expect("a live link");
    assert_not_found(fx.store.checkout_link(tenant, test, &link.id).await);
    assert_not_found(fx.store.delete_checkout_link(tenant, test, &link.id).await);
    let links = fx
        .store
        .list_checkout_links(tenant, test, &first_page(50))
        .await;
    assert!(links.expect("test links").data.is_empty());
    assert!(
        fx.store
            .create_checkout_link(tenant, test, &link_to(&live, 1))
            .await
            .is_err(),
        "a test link named a live product"
    );
    fx.store
        .checkout_link(tenant, LIVE, &link.id)
        .await
        .expect("the live link is still there");
}

/// A product and its twin of the other mode (same id, as migration 0033 makes them)
/// with different deliveries: each order's line takes its own mode's.
async fn a_line_takes_the_delivery_of_its_orders_mode(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let id = create_products(&fx, tenant, 1).await.remove(0);
    let raw = fx.raw().await;
    raw.execute(
        "INSERT INTO products (tenant_id, livemode, id, name, description, prices, delivery,
         active, created_at, updated_at)
         SELECT tenant_id, NOT livemode, id, name, description, prices, delivery, active,
         created_at, updated_at FROM products WHERE id = $1",
        &[Arg::Text(id.as_str())],
    )
    .await;
    raw.close().await;
    let by = |url: &str| ProductFields {
        delivery: Delivery::WebService {
            url: url.to_owned(),
            keys_per: KeysPer::Unit,
        },
        ..license_product("Pro")
    };
    let (live_url, test_url) = ("https://live.acme.test/keys", "https://test.acme.test/keys");
    fx.store
        .update_product(tenant, LIVE, &id, &by(live_url))
        .await
        .expect("the live product");
    fx.store
        .update_product(tenant, Mode::Test, &id, &by(test_url))
        .await
        .expect("its test twin");

    for (mode, url) in [(LIVE, live_url), (Mode::Test, test_url)] {
        let line = place_and_claim_line(&fx.store, tenant, &id, mode).await;
        let expected = Delivery::WebService {
            url: url.to_owned(),
            keys_per: KeysPer::Unit,
        };
        assert_eq!(line.delivery, expected, "{mode}");
    }
}
