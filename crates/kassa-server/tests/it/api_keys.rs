//! API keys: created and shown once, listed without their secret, revoked at once.

use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::TestApp;

on_both_backends!(
    a_new_key_works_until_revoked,
    keys_do_only_what_their_scope_allows
);

async fn a_new_key_works_until_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.post("/api/v1/api-keys", json!({"name": "CI"})).await;
    let secret = created.ok()["api_key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("kassa_sk_test_"),
        "a test key makes test keys"
    );
    assert!(secret.starts_with(created.body["prefix"].as_str().unwrap()));

    // The store's first test key and this one: a key lists its own mode's keys.
    let listed = app.get_as(&secret, "/api/v1/api-keys").await;
    assert_eq!(listed.ok()["data"].as_array().unwrap().len(), 2);
    assert!(!listed.text.contains(&secret), "secrets are never listed");

    app.delete_as(&app.key, &format!("/api/v1/api-keys/{id}"))
        .await
        .ok();
    app.get_as(&secret, "/api/v1/products").await.problem(401);
    app.get("/api/v1/products").await.ok();
    let listed = app.get("/api/v1/api-keys").await;
    let revoked: Vec<_> = listed.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked"] == true)
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(revoked, [id]);
    app.post("/api/v1/api-keys", json!({"name": ""}))
        .await
        .problem(422);
}

/// Makes a key of `scope` and returns it.
async fn key_of(app: &TestApp, scope: &str) -> String {
    let made = app
        .post("/api/v1/api-keys", json!({"name": scope, "scope": scope}))
        .await;
    assert_eq!(made.ok()["scope"], scope);
    made.body["api_key"].as_str().unwrap().to_owned()
}

/// A leaked read-only or orders key cannot mint a wider key, read or rotate secrets,
/// or change webhooks, plugins, the catalog or settings: 403 naming the scope needed.
async fn keys_do_only_what_their_scope_allows(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let read = key_of(&app, "read_only").await;
    let orders = key_of(&app, "orders").await;
    let default = app.post("/api/v1/api-keys", json!({"name": "Old"})).await;
    assert_eq!(default.ok()["scope"], "full", "full unless said otherwise");
    let bad = app
        .post("/api/v1/api-keys", json!({"name": "X", "scope": "admin"}))
        .await;
    assert_eq!(bad.invalid_fields(), ["scope"]);
    let pool = app.pool_with_keys(&["K-1"]).await;
    let product = app.product(&pool).await;
    let prd = product["id"].as_str().unwrap();
    let endpoint = app
        .post(
            "/api/v1/webhook-endpoints",
            json!({"url": "https://hooks.acme.test/kassa"}),
        )
        .await;
    let ep = endpoint.ok()["id"].as_str().unwrap().to_owned();
    let new_order = json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
        "customer": {"email": "c@example.com", "name": "C"}, "payment_method": "bank_transfer",
        "consents": {"terms": true, "personal_data": true}});

    let refused = |answer: crate::harness::Answer, needs: &str| {
        let problem = answer.problem(403);
        assert_eq!(problem["type"], "insufficient_scope");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("`{needs}`")), "{detail}");
    };
    // Reading works for every key, secrets aside.
    for key in [&read, &orders] {
        for path in [
            "/api/v1/products",
            "/api/v1/orders",
            "/api/v1/events",
            "/api/v1/api-keys",
        ] {
            app.get_as(key, path).await.ok();
        }
        app.get_as(key, &format!("/api/v1/webhook-endpoints/{ep}"))
            .await
            .ok();
        refused(app.get_as(key, "/api/v1/settings").await, "full");
        refused(
            app.post_as(
                key,
                "/api/v1/api-keys",
                json!({"name": "Mine", "scope": "full"}),
            )
            .await,
            "full",
        );
        refused(
            app.post_as(
                key,
                &format!("/api/v1/webhook-endpoints/{ep}/rotate-secret"),
                json!({}),
            )
            .await,
            "full",
        );
        refused(
            app.post_as(key, "/api/v1/license-pools", json!({"name": "Theirs"}))
                .await,
            "full",
        );
        refused(
            app.patch_as(
                key,
                "/api/v1/settings",
                json!({"logo_url": "https://x.test/l.png"}),
            )
            .await,
            "full",
        );
        refused(
            app.delete_as(key, &format!("/api/v1/webhook-endpoints/{ep}"))
                .await,
            "full",
        );
    }
    refused(
        app.post_as(&read, "/api/v1/orders", new_order.clone())
            .await,
        "orders",
    );

    // An orders key places orders and records payments.
    let order = app.post_as(&orders, "/api/v1/orders", new_order).await;
    let id = order.ok()["id"].as_str().unwrap().to_owned();
    let payment = json!({"method": "bank_transfer", "amount": 1999, "currency": "USD"});
    refused(
        app.post_as(
            &read,
            &format!("/api/v1/orders/{id}/payments"),
            payment.clone(),
        )
        .await,
        "orders",
    );
    let paid = app
        .post_as(&orders, &format!("/api/v1/orders/{id}/payments"), payment)
        .await;
    assert_eq!(paid.ok()["status"], "paid");

    // Nothing was made by the refused requests; the store's full key does it all.
    // The test keys: the store's first and the three made here.
    let keys = app.get("/api/v1/api-keys").await;
    assert_eq!(keys.ok()["data"].as_array().unwrap().len(), 4);
    let key_id = keys.body["data"][0]["id"].as_str().unwrap().to_owned();
    refused(
        app.delete_as(&orders, &format!("/api/v1/api-keys/{key_id}"))
            .await,
        "full",
    );
    app.get_as(&app.live_key, "/api/v1/settings").await.ok();
    app.delete_as(&app.key, &format!("/api/v1/webhook-endpoints/{ep}"))
        .await
        .ok();
}
