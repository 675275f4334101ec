//! `Idempotency-Key`: a retried POST gets the first answer; a reused key with another
//! body is a conflict.

use kassa_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::json;

use crate::harness::TestApp;

on_both_backends!(a_retried_post_is_answered_once);

async fn a_retried_post_is_answered_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&[]).await;
    let body = json!({"name": "Once", "prices": [{"currency": "USD", "amount": 500}],
                      "delivery": {"method": "license_pool", "pool_id": pool}});
    let post = |key: &'static str, body: serde_json::Value| {
        app.request(Method::POST, &app.key, "/api/v1/products")
            .header("idempotency-key", key)
            .json(&body)
    };
    let first = app.send(post("order-42", body.clone())).await;
    let first_body = first.ok().clone();
    let second = app.send(post("order-42", body.clone())).await;
    assert_eq!(second.ok(), &first_body, "the same product, not a new one");
    assert_eq!(second.headers["idempotent-replayed"], "true");

    let other = app
        .send(post(
            "order-42",
            json!({"name": "Other", "prices": [{"currency": "USD", "amount": 1}],
                                     "delivery": {"method": "license_pool", "pool_id": pool}}),
        ))
        .await;
    assert_eq!(other.problem(409)["type"], "idempotency_key_reused");

    // A refused request is kept too: the retry gets the same refusal.
    let invalid =
        json!({"name": "", "prices": [], "delivery": {"method": "license_pool", "pool_id": pool}});
    app.send(post("bad-1", invalid.clone())).await.problem(422);
    let again = app.send(post("bad-1", invalid)).await;
    again.problem(422);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let products = app.get("/api/v1/products").await;
    assert_eq!(products.ok()["data"].as_array().unwrap().len(), 1);

    // Keys belong to one store: another store may use the same key.
    let other_store = app.new_tenant("other").await;
    let theirs = app
        .send(
            app.request(Method::POST, &other_store, "/api/v1/license-pools")
                .header("idempotency-key", "order-42")
                .json(&json!({"name": "Theirs"})),
        )
        .await;
    assert_eq!(theirs.ok()["name"], "Theirs");

    let bad_key = app.send(post("", body.clone())).await;
    bad_key.problem(400);
}
