//! A key of one store never reaches another store's objects.

use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::TestApp;

on_both_backends!(another_stores_objects_are_not_found_on_every_endpoint);

async fn another_stores_objects_are_not_found_on_every_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let b = app.new_tenant("bravo").await;
    // Store B's objects, one of each.
    let pool = app
        .post_as(&b, "/api/v1/license-pools", json!({"name": "B pool"}))
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(
        &b,
        &format!("/api/v1/license-pools/{pool}/keys"),
        json!({"keys": ["B-1"]}),
    )
    .await
    .ok();
    let product = app
        .post_as(
            &b,
            "/api/v1/products",
            json!({"name": "B product", "prices": [{"currency": "USD", "amount": 100}],
                   "delivery": {"method": "license_pool", "pool_id": pool}}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let coupon = app
        .post_as(
            &b,
            "/api/v1/coupons",
            json!({"code": "BONLY", "percent_off": 10}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = app
        .post_as(&b, "/api/v1/checkout-links", json!({"product_id": product}))
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint = app
        .post_as(
            &b,
            "/api/v1/webhook-endpoints",
            json!({"url": "https://b.example.com/hook"}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_key_id = app.get_as(&b, "/api/v1/api-keys").await.ok()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Store A's key, on every endpoint that names an object.
    let a = &app.key;
    let patch = json!({"name": "stolen"});
    for answer in [
        app.get_as(a, &format!("/api/v1/products/{product}")).await,
        app.patch_as(a, &format!("/api/v1/products/{product}"), patch.clone())
            .await,
        app.get_as(a, &format!("/api/v1/license-pools/{pool}"))
            .await,
        app.patch_as(a, &format!("/api/v1/license-pools/{pool}"), patch.clone())
            .await,
        app.post_as(
            a,
            &format!("/api/v1/license-pools/{pool}/keys"),
            json!({"keys": ["A-1"]}),
        )
        .await,
        app.get_as(a, &format!("/api/v1/coupons/{coupon}")).await,
        app.patch_as(
            a,
            &format!("/api/v1/coupons/{coupon}"),
            json!({"active": false}),
        )
        .await,
        app.get_as(a, &format!("/api/v1/checkout-links/{link}"))
            .await,
        app.delete_as(a, &format!("/api/v1/checkout-links/{link}"))
            .await,
        app.get_as(a, &format!("/api/v1/webhook-endpoints/{endpoint}"))
            .await,
        app.patch_as(
            a,
            &format!("/api/v1/webhook-endpoints/{endpoint}"),
            json!({"disabled": true}),
        )
        .await,
        app.post_as(
            a,
            &format!("/api/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            json!({}),
        )
        .await,
        app.delete_as(a, &format!("/api/v1/webhook-endpoints/{endpoint}"))
            .await,
        app.delete_as(a, &format!("/api/v1/api-keys/{b_key_id}"))
            .await,
    ] {
        answer.problem(404);
    }

    // References to B's objects in A's requests are invalid, not borrowed.
    let uses_b_pool = app
        .post(
            "/api/v1/products",
            json!({"name": "A", "prices": [{"currency": "USD", "amount": 1}],
                   "delivery": {"method": "license_pool", "pool_id": pool}}),
        )
        .await;
    assert_eq!(uses_b_pool.invalid_fields(), ["delivery.pool_id"]);
    let uses_b_product = app
        .post(
            "/api/v1/coupons",
            json!({"code": "A", "percent_off": 1, "product_ids": [product]}),
        )
        .await;
    assert_eq!(uses_b_product.invalid_fields(), ["product_ids[0]"]);
    let link_to_b = app
        .post("/api/v1/checkout-links", json!({"product_id": product}))
        .await;
    assert_eq!(link_to_b.invalid_fields(), ["product_id"]);
    let b_coupon_code = app
        .post(
            "/api/v1/checkout-links",
            json!({"product_id": "prd_x", "coupon": "BONLY"}),
        )
        .await;
    assert!(
        b_coupon_code
            .invalid_fields()
            .contains(&"coupon".to_owned())
    );

    // A's lists are empty of B's objects; B's objects are untouched.
    for list in [
        "/api/v1/products",
        "/api/v1/license-pools",
        "/api/v1/coupons",
        "/api/v1/checkout-links",
        "/api/v1/webhook-endpoints",
    ] {
        assert_eq!(app.get(list).await.ok()["data"], json!([]), "{list}");
    }
    assert_eq!(
        app.get("/api/v1/api-keys").await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "A's own test key (a key lists its own mode's keys)"
    );
    assert_eq!(
        app.get_as(&b, &format!("/api/v1/products/{product}"))
            .await
            .ok()["name"],
        "B product"
    );
    let b_pool = app
        .get_as(&b, &format!("/api/v1/license-pools/{pool}"))
        .await;
    assert_eq!(b_pool.ok()["name"], "B pool");
    assert_eq!(b_pool.body["available"], 1);
    assert_eq!(
        app.get_as(&b, &format!("/api/v1/coupons/{coupon}"))
            .await
            .ok()["active"],
        true
    );
    app.get_as(&b, &format!("/api/v1/checkout-links/{link}"))
        .await
        .ok();
    let b_endpoint = app
        .get_as(&b, &format!("/api/v1/webhook-endpoints/{endpoint}"))
        .await;
    assert_eq!(b_endpoint.ok()["disabled"], false);
    app.get_as(&b, "/api/v1/products").await.ok();
}
