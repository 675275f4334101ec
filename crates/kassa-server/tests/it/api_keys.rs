//! API keys: created and shown once, listed without their secret, revoked at once.

use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::TestApp;

on_both_backends!(a_new_key_works_until_revoked);

async fn a_new_key_works_until_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.post("/api/v1/api-keys", json!({"name": "CI"})).await;
    let secret = created.ok()["api_key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("kassa_sk_"));
    assert!(secret.starts_with(created.body["prefix"].as_str().unwrap()));

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
