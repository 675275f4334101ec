//! The committed `docs/openapi.json` is the document the server serves, and the
//! server keeps to it.

use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let current = kassa_api::openapi_json();
    if std::env::var_os("KASSA_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{current}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim_end() == current.trim_end(),
        "docs/openapi.json is out of date: run `KASSA_UPDATE_OPENAPI=1 cargo test -p kassa --test it openapi` and commit it"
    );
}

on_both_backends!(the_api_keeps_its_published_contract);

/// schemathesis (`tests/schemathesis`, every check on) reads the published document and throws
/// thousands of requests at a store that holds one of everything, with a key that may
/// do everything but revoke itself: no 5xx, every answer as documented (status,
/// content type, body), unknown fields and wrong types refused, 405 with `Allow`.
async fn the_api_keeps_its_published_contract(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&["C-1", "C-2", "C-3"]).await;
    let product = app.product(&pool).await;
    let prd = product["id"].as_str().unwrap();
    app.post("/api/v1/coupons", json!({"code": "TEN", "percent_off": 10}))
        .await
        .ok();
    app.post(
        "/api/v1/checkout-links",
        json!({"product_id": prd, "quantity": 2}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/webhook-endpoints",
        json!({"url": "https://hooks.example.com/kassa"}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/orders",
        json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
               "customer": {"email": "buyer@example.com"}, "payment_method": "bank_transfer",
               "consents": {"terms": true, "personal_data": true}}),
    )
    .await
    .ok();

    let cli = std::env::var("KASSA_SCHEMATHESIS").expect(
        "KASSA_SCHEMATHESIS is not set: run the suite with `bash tests/run.sh`, which installs schemathesis",
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/schemathesis");
    let mut run = std::process::Command::new(cli);
    run.current_dir(&dir)
        .env("PYTHONPATH", &dir)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("NO_COLOR", "1")
        .args(["--config-file", "schemathesis.toml", "run"])
        .arg(app.url("/api/openapi.json"))
        .args(["--url", &app.url("/api/v1")])
        .args(["--header", &format!("Authorization: Bearer {}", app.key)])
        // The key would revoke itself and leave nothing to test.
        .args(["--exclude-name", "DELETE /api-keys/{id}"])
        .args(["--max-examples", "25", "--seed", "1", "--workers", "2"]);
    let out = tokio::task::spawn_blocking(move || run.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
