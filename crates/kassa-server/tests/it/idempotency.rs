//! `Idempotency-Key`: a retried POST gets the first answer; a reused key with another
//! body is a conflict.

use kassa_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::json;

use crate::harness::TestApp;

on_both_backends!(
    a_retried_post_is_answered_once,
    secrets_answered_to_an_idempotent_post_are_not_kept_in_clear,
);

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

/// A new API key and a new `whsec_` secret are answered again to a retry, yet whoever
/// reads the database (a backup, a replica) finds neither: the kept answer is sealed
/// with a key derived from the caller's own API key, which Kassa keeps only hashed.
async fn secrets_answered_to_an_idempotent_post_are_not_kept_in_clear(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A new API key made with the idempotency key `key-1` by the API key `by`.
    let new_key = |by: &str| {
        app.request(Method::POST, by, "/api/v1/api-keys")
            .header("idempotency-key", "key-1")
            .json(&json!({"name": "CI"}))
    };
    let new_endpoint = || {
        app.request(Method::POST, &app.key, "/api/v1/webhook-endpoints")
            .header("idempotency-key", "hook-1")
            .json(&json!({"url": "https://hooks.acme.test/kassa"}))
    };
    let made = app.send(new_key(&app.key)).await;
    let api_key = made.ok()["api_key"].as_str().unwrap().to_owned();
    let endpoint = app.send(new_endpoint()).await;
    let whsec = endpoint.ok()["secret"].as_str().unwrap().to_owned();
    assert!(whsec.starts_with("whsec_"));

    // API keys are kept only hashed; a `whsec_` secret only where Kassa signs with it.
    for secret in [&api_key, &whsec] {
        let body = secret.split('_').next_back().unwrap();
        let found: Vec<_> = app
            .rows_holding(body)
            .await
            .into_iter()
            .filter(|(table, _)| !table.ends_with("webhook_endpoints"))
            .collect();
        assert!(found.is_empty(), "{secret} is kept in clear: {found:?}");
    }
    let kept = app.rows_holding("key-1").await;
    assert_eq!(kept.len(), 1, "the key itself is remembered: {kept:?}");

    // The retry still gets the whole first answer, secret included.
    let again = app.send(new_key(&app.key)).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.ok(), made.ok());
    let again = app.send(new_endpoint()).await;
    assert_eq!(again.ok()["secret"], whsec.as_str());

    // Another key of the same store cannot open the first key's answer.
    let theirs = app.send(new_key(&api_key)).await;
    assert_eq!(theirs.problem(409)["type"], "idempotency_key_reused");
    // The store's first test key and the one made once (a key lists its mode's keys).
    let keys = app.get("/api/v1/api-keys").await;
    assert_eq!(keys.ok()["data"].as_array().unwrap().len(), 2);
}
