//! Fulfillment plugins through the API: upload, configure, test-run, deliver, and a
//! hostile plugin failing only its own delivery. Both databases; real components
//! built from plugins/ for wasm32-wasip2.

use std::time::Duration;

use kassa_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestApp;

on_both_backends!(
    a_key_generator_plugin_delivers_signed_keys,
    a_hostile_plugin_fails_only_its_own_delivery,
    a_plugin_written_against_the_wit_alone_calls_its_license_service,
    versions_no_longer_live_can_be_deleted,
    a_python_plugin_signs_keys_and_delivers_a_paid_order,
    a_go_plugin_signs_keys_and_delivers_a_paid_order,
    a_javascript_plugin_calls_its_license_service_and_delivers_a_paid_order,
    uploads_that_are_not_plugins_say_why_and_the_live_version_keeps_serving,
    kassa_serves_the_wit_plugins_are_built_against,
    a_plugins_own_limits_stay_under_the_operators_cap_and_are_reported,
    a_version_that_breaks_before_it_delivers_is_taken_off_and_the_one_before_delivers,
    a_test_key_never_changes_the_code_that_delivers_live_orders,
    a_test_order_never_takes_keys_from_a_live_pool_through_a_plugin,
    licenses_of_another_count_than_the_product_takes_are_not_delivered,
);

pub(crate) fn component(name: &str) -> Vec<u8> {
    // The Rust plugins are built by cargo, the Python, JavaScript and Go examples by
    // their own tools (tests/run.sh builds them all).
    let (var, default) = if ["python_", "js_", "go_"]
        .iter()
        .any(|l| name.starts_with(l))
    {
        ("KASSA_LANG_PLUGINS_DIR", "target/plugin-langs")
    } else {
        ("KASSA_PLUGINS_DIR", "plugins/target/wasm32-wasip2/release")
    };
    let dir = std::env::var(var)
        .unwrap_or_else(|_| format!("{}/../../{default}", env!("CARGO_MANIFEST_DIR")));
    std::fs::read(format!("{dir}/{name}.wasm"))
        .expect("the plugins are built (bash tests/run.sh builds them)")
}

async fn upload(app: &TestApp, key: &str, name: &str, bytes: Vec<u8>) -> crate::harness::Answer {
    app.send(
        app.request(Method::POST, key, &format!("/api/v1/plugins?name={name}"))
            .header("content-type", "application/wasm")
            .body(bytes),
    )
    .await
}

async fn upload_version(
    app: &TestApp,
    key: &str,
    id: &str,
    bytes: Vec<u8>,
) -> crate::harness::Answer {
    app.send(
        app.request(Method::POST, key, &format!("/api/v1/plugins/{id}/versions"))
            .header("content-type", "application/wasm")
            .body(bytes),
    )
    .await
}

async fn plugin_product(app: &TestApp, key: &str, plugin: &str) -> String {
    let p = app
        .post_as(
            key,
            "/api/v1/products",
            json!({"name": "Plugged", "prices": [{"currency": "USD", "amount": 500}],
                   "delivery": {"method": "plugin", "plugin_id": plugin}}),
        )
        .await;
    p.ok()["id"].as_str().unwrap().to_owned()
}

async fn paid_order(app: &TestApp, key: &str, product: &str, quantity: i64) -> String {
    let order = app
        .post_as(
            key,
            "/api/v1/orders",
            json!({"lines": [{"product_id": product, "quantity": quantity}], "currency": "USD",
                   "customer": {"email": "buyer@example.com"}, "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let order = order.ok().clone();
    let id = order["id"].as_str().unwrap().to_owned();
    app.post_as(
        key,
        &format!("/api/v1/orders/{id}/payments"),
        json!({"method": "bank_transfer", "amount": order["total"], "currency": "USD"}),
    )
    .await
    .ok();
    id
}

/// A paid order of `quantity` units of `product` in the store `acme`, once its line
/// is delivered: its id and the line.
async fn delivered(app: &TestApp, product: &str, quantity: i64) -> (String, Value) {
    let order = paid_order(app, &app.live_key, product, quantity).await;
    let line = line_when(app, &app.live_key, &order, |l| {
        l["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(line["delivery_status"], "delivered", "{line}");
    (order, line)
}

/// The two licenses the tests' license service hands out for an order's first line.
fn service_licenses(order: &str) -> Value {
    let key = format!("ful_{order}_1");
    json!([format!("SVC-{key}-1"), format!("SVC-{key}-2")])
}

async fn line_when(app: &TestApp, key: &str, order: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut line = Value::Null;
    for _ in 0..150 {
        line = app
            .get_as(key, &format!("/api/v1/orders/{order}"))
            .await
            .ok()["lines"][0]
            .clone();
        if done(&line) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    line
}

async fn a_key_generator_plugin_delivers_signed_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Uploaded with an Idempotency-Key (the layer reads the body whole to fingerprint
    // it; the upload then takes those bytes without copying them): a retry replays.
    let idempotent = || {
        app.request(Method::POST, &app.live_key, "/api/v1/plugins?name=Keygen")
            .header("content-type", "application/wasm")
            .header("idempotency-key", "upload-keygen-1")
            .body(component("kassa_keygen"))
    };
    let created = app.send(idempotent()).await;
    let plugin = created.ok().clone();
    let id = plugin["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("plg_"));
    let again = app.send(idempotent()).await;
    assert_eq!(again.ok()["id"], plugin["id"], "{}", again.text);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(plugin["version"], 1);
    assert_eq!(plugin["sha256"].as_str().unwrap().len(), 64);

    let refused = upload(&app, &app.live_key, "Broken", b"\0asm not really".to_vec()).await;
    assert_eq!(refused.invalid_fields(), ["body"]);

    let configured = app
        .patch_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}"),
            json!({"config": {"prefix": "ACME"}, "secrets": {"signing-key": "s3cret"}}),
        )
        .await;
    assert_eq!(configured.ok()["secrets"], json!(["signing-key"]));
    assert!(
        !configured.text.contains("s3cret"),
        "secret values are never shown"
    );

    let run = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}/test-run"),
            json!({"quantity": 2}),
        )
        .await;
    let licenses = run.ok()["licenses"].as_array().unwrap().clone();
    assert_eq!(licenses.len(), 2);
    assert!(
        licenses
            .iter()
            .all(|k| k.as_str().unwrap().starts_with("ACME-"))
    );
    assert_eq!(run.body["logs"].as_array().unwrap().len(), 1);

    let product = plugin_product(&app, &app.live_key, &id).await;
    let (_, line) = delivered(&app, &product, 2).await;
    let keys = line["licenses"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.as_str().unwrap().starts_with("ACME-"))
    );
    assert_ne!(keys[0], keys[1]);

    let v2 = upload_version(&app, &app.live_key, &id, component("kassa_keygen")).await;
    assert_eq!(v2.ok()["version"], 2);
    assert_eq!(
        v2.body["config"],
        json!({"prefix": "ACME"}),
        "config carries over"
    );

    let other = app.new_tenant_keys("other").await.1;
    app.get_as(&other, &format!("/api/v1/plugins/{id}"))
        .await
        .problem(404);
    let borrowed = app
        .post_as(
            &other,
            "/api/v1/products",
            json!({"name": "X", "prices": [{"currency": "USD", "amount": 1}],
                   "delivery": {"method": "plugin", "plugin_id": id}}),
        )
        .await;
    assert_eq!(borrowed.invalid_fields(), ["delivery.plugin_id"]);
}

async fn a_hostile_plugin_fails_only_its_own_delivery(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hostile = upload(&app, &app.live_key, "Hostile", component("kassa_hostile")).await;
    let hostile_id = hostile.ok()["id"].as_str().unwrap().to_owned();
    app.patch_as(
        &app.live_key,
        &format!("/api/v1/plugins/{hostile_id}"),
        json!({"config": {"mode": "loop"}}),
    )
    .await
    .ok();
    let looping = plugin_product(&app, &app.live_key, &hostile_id).await;

    // Another store delivers through its own plugin meanwhile.
    let other = app.new_tenant_keys("other").await.1;
    let fine = upload(&app, &other, "Fine", component("kassa_hostile")).await;
    let fine_id = fine.ok()["id"].as_str().unwrap().to_owned();
    let fine_product = plugin_product(&app, &other, &fine_id).await;

    let bad_order = paid_order(&app, &app.live_key, &looping, 1).await;
    let good_order = paid_order(&app, &other, &fine_product, 1).await;
    let good = line_when(&app, &other, &good_order, |l| {
        l["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(good["delivery_status"], "delivered", "{good}");
    let bad = line_when(&app, &app.live_key, &bad_order, |l| {
        l["delivery_status"] == "failed"
    })
    .await;
    assert_eq!(bad["delivery_status"], "failed", "{bad}");
    let reason = bad["delivery_error"].as_str().unwrap();
    assert!(
        reason.contains("fuel") || reason.contains("deadline"),
        "{reason}"
    );
    // The server goes on serving.
    app.get_as(&app.live_key, "/api/v1/products").await.ok();
}

async fn a_plugin_written_against_the_wit_alone_calls_its_license_service(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let service =
        crate::webhooks::Receiver::start_with("unused", "500", 0.0, &["--licenses", "--no-verify"]);
    let plugin = upload(
        &app,
        &app.live_key,
        "LicenseClient",
        component("kassa_license_client"),
    )
    .await;
    let id = plugin.ok()["id"].as_str().unwrap().to_owned();
    app.patch_as(
        &app.live_key,
        &format!("/api/v1/plugins/{id}"),
        json!({"config": {"url": service.url}, "secrets": {"api-token": "tok_plugin_sealed_123"}, "allowed_hosts": ["127.0.0.1"]}),
    )
    .await
    .ok();
    let product = plugin_product(&app, &app.live_key, &id).await;
    let (order, line) = delivered(&app, &product, 2).await;
    assert_eq!(line["licenses"], service_licenses(&order));
    let asked = service.received();
    assert_eq!(asked.len(), 2, "a 500 first (retryable), then the keys");
    assert_eq!(
        asked[1]["authorization"], "Bearer tok_plugin_sealed_123",
        "the plugin's secret"
    );
    app.assert_stored_sealed(&["tok_plugin_sealed_123"]).await;
    assert_eq!(asked[1]["event"]["email"], "buyer@example.com");

    // Off the allow-list, the same plugin is refused by the host.
    app.patch_as(
        &app.live_key,
        &format!("/api/v1/plugins/{id}"),
        json!({"allowed_hosts": ["licenses.example.com"]}),
    )
    .await
    .ok();
    let run = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}/test-run"),
            json!({}),
        )
        .await;
    assert!(
        run.ok()["error"]
            .as_str()
            .unwrap()
            .contains("allowed hosts"),
        "{}",
        run.text
    );
}

async fn versions_no_longer_live_can_be_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = upload(&app, &app.live_key, "Keygen", component("kassa_keygen")).await;
    let id = created.ok()["id"].as_str().unwrap().to_owned();
    let v2 = upload_version(&app, &app.live_key, &id, component("kassa_keygen")).await;
    assert_eq!(v2.ok()["version"], 2);
    let versions = format!("/api/v1/plugins/{id}/versions");
    let listed = app.get_as(&app.live_key, &versions).await;
    let data = listed.ok()["data"].clone();
    assert_eq!(data[0]["version"], 2, "{data}");
    assert_eq!(data[0]["live"], true, "{data}");
    assert_eq!(data[1]["version"], 1, "{data}");
    assert_eq!(data[1]["live"], false, "{data}");

    // Another store sees neither the plugin nor its versions.
    let other = app.new_tenant_keys("other").await.1;
    app.delete_as(&other, &format!("{versions}/1"))
        .await
        .problem(404);
    app.get_as(&other, &versions).await.problem(404);

    let live = app.delete_as(&app.live_key, &format!("{versions}/2")).await;
    let why = live.problem(409)["detail"].as_str().unwrap().to_owned();
    assert!(why.contains("live"), "{why}");

    let deleted = app.delete_as(&app.live_key, &format!("{versions}/1")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let listed = app.get_as(&app.live_key, &versions).await;
    let data = listed.ok()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(data[0]["version"], 2);

    for gone in ["1", "7", "latest"] {
        app.delete_as(&app.live_key, &format!("{versions}/{gone}"))
            .await
            .problem(404);
    }
    app.delete_as(&app.live_key, "/api/v1/plugins/plg_nope/versions/1")
        .await
        .problem(404);
    app.get_as(&app.live_key, &format!("{versions}?cursor=abc"))
        .await
        .problem(422);

    // The live version still runs (and says what it lacks).
    let run = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}/test-run"),
            json!({}),
        )
        .await;
    assert!(
        run.ok()["error"].as_str().unwrap().contains("signing-key"),
        "{}",
        run.text
    );
}

async fn a_python_plugin_signs_keys_and_delivers_a_paid_order(backend: Backend) {
    // A real CPython component is megabytes.
    keygen_in_another_language(backend, "python_keygen", "PY", 2 * 1024 * 1024).await;
}

async fn a_go_plugin_signs_keys_and_delivers_a_paid_order(backend: Backend) {
    // The Go runtime is in the component too.
    keygen_in_another_language(backend, "go_keygen", "GO", 1024 * 1024).await;
}

/// The key generator built from another language's example (`component`): uploaded,
/// configured with `prefix`, test-run, and delivering a paid order.
async fn keygen_in_another_language(
    backend: Backend,
    component_name: &str,
    prefix: &str,
    larger_than: i64,
) {
    let app = TestApp::spawn(backend).await;
    let created = upload(&app, &app.live_key, "Keygen", component(component_name)).await;
    let plugin = created.ok().clone();
    let id = plugin["id"].as_str().unwrap().to_owned();
    assert!(plugin["size"].as_i64().unwrap() > larger_than, "{plugin}");
    app.patch_as(
        &app.live_key,
        &format!("/api/v1/plugins/{id}"),
        json!({"config": {"prefix": prefix}, "secrets": {"signing-key": "s3cret"}}),
    )
    .await
    .ok();
    let run = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}/test-run"),
            json!({"quantity": 2}),
        )
        .await;
    let run = run.ok().clone();
    let licenses = run["licenses"]
        .as_array()
        .unwrap_or_else(|| panic!("{run}"))
        .clone();
    assert_eq!(licenses.len(), 2, "{run}");
    let ours = |k: &Value| k.as_str().unwrap().starts_with(&format!("{prefix}-"));
    assert!(licenses.iter().all(ours), "{run}");
    assert_eq!(
        run["logs"][0], "generating 2 key(s) for ord_test line 1",
        "{run}"
    );
    assert!(run["limit"].is_null(), "{run}");

    let product = plugin_product(&app, &app.live_key, &id).await;
    let (_, line) = delivered(&app, &product, 2).await;
    let keys = line["licenses"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(ours), "{line}");
    assert_ne!(keys[0], keys[1]);
}

async fn a_javascript_plugin_calls_its_license_service_and_delivers_a_paid_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let service =
        crate::webhooks::Receiver::start_with("unused", "", 0.0, &["--licenses", "--no-verify"]);
    let created = upload(
        &app,
        &app.live_key,
        "JS client",
        component("js_license_client"),
    )
    .await;
    let id = created.ok()["id"].as_str().unwrap().to_owned();
    app.patch_as(
        &app.live_key,
        &format!("/api/v1/plugins/{id}"),
        json!({"config": {"url": service.url}, "secrets": {"api-token": "tok_js"},
               "allowed_hosts": ["127.0.0.1"]}),
    )
    .await
    .ok();
    let run = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}/test-run"),
            json!({}),
        )
        .await;
    let run = run.ok().clone();
    let licenses = run["licenses"]
        .as_array()
        .unwrap_or_else(|| panic!("{run}"));
    assert_eq!(licenses.len(), 1, "{run}");
    assert!(
        licenses[0].as_str().unwrap().starts_with("SVC-test-run-"),
        "{run}"
    );
    assert_eq!(
        run["logs"],
        json!(["license service answered 200"]),
        "{run}"
    );

    let product = plugin_product(&app, &app.live_key, &id).await;
    let (order, line) = delivered(&app, &product, 2).await;
    assert_eq!(line["licenses"], service_licenses(&order));
    let asked = service.received();
    let last = asked.last().unwrap();
    assert_eq!(
        last["authorization"], "Bearer tok_js",
        "the plugin's secret"
    );
    assert_eq!(last["event"]["email"], "buyer@example.com");
}

async fn uploads_that_are_not_plugins_say_why_and_the_live_version_keeps_serving(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let keygen = component("kassa_keygen");
    let created = upload(&app, &app.live_key, "Keygen", keygen.clone()).await;
    let id = created.ok()["id"].as_str().unwrap().to_owned();
    app.patch_as(
        &app.live_key,
        &format!("/api/v1/plugins/{id}"),
        json!({"secrets": {"signing-key": "s3cret"}}),
    )
    .await
    .ok();
    // An empty component: valid WebAssembly of another world (it exports nothing).
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    for (bytes, expected) in [
        (b"just text".to_vec(), "not a WebAssembly file"),
        (b"\0as".to_vec(), "truncated"),
        (
            keygen[..keygen.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            b"\0asm\x01\0\0\0".to_vec(),
            "a core WebAssembly module, not a component",
        ),
        (
            empty_component,
            "does not export the world kassa:plugin/fulfillment",
        ),
    ] {
        let refused = upload_version(&app, &app.live_key, &id, bytes).await;
        assert_eq!(refused.invalid_fields(), ["body"], "{}", refused.text);
        let why = refused.body["errors"][0]["message"].as_str().unwrap();
        assert!(why.contains(expected), "{expected}: {why}");
    }
    let plugin = app
        .get_as(&app.live_key, &format!("/api/v1/plugins/{id}"))
        .await;
    assert_eq!(
        plugin.ok()["version"],
        1,
        "nothing refused became a version"
    );
    let run = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}/test-run"),
            json!({}),
        )
        .await;
    assert_eq!(
        run.ok()["licenses"].as_array().map(Vec::len),
        Some(1),
        "{}",
        run.text
    );
}

async fn kassa_serves_the_wit_plugins_are_built_against(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let committed = std::fs::read_to_string(format!(
        "{}/../../plugins/wit/kassa-plugin.wit",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for path in [
        "/api/wit/kassa-plugin.wit",
        "/api/wit/kassa-plugin@0.1.0.wit",
    ] {
        let served = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
        assert_eq!(served.status(), 200, "{path}");
        let text = served.text().await.unwrap();
        assert_eq!(text, committed, "{path}");
        assert!(text.contains("package kassa:plugin@0.1.0;"));
        assert!(text.contains("world fulfillment"));
    }
}

async fn a_plugins_own_limits_stay_under_the_operators_cap_and_are_reported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = upload(&app, &app.live_key, "Hostile", component("kassa_hostile")).await;
    let plugin = created.ok().clone();
    assert_eq!(
        plugin["limits"],
        json!({"memory_mib": 256, "fuel": 5_000_000_000u64, "timeout_ms": 5000}),
        "the operator's defaults"
    );
    let id = plugin["id"].as_str().unwrap().to_owned();
    let over = app
        .patch_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}"),
            json!({"limits": {"memory_mib": 4096, "timeout_ms": 0}}),
        )
        .await;
    assert_eq!(
        over.invalid_fields(),
        ["limits.memory_mib", "limits.timeout_ms"]
    );
    let set = app
        .patch_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}"),
            json!({"limits": {"memory_mib": 64}, "config": {"mode": "memory"}}),
        )
        .await;
    assert_eq!(set.ok()["limits"]["memory_mib"], 64);
    assert_eq!(set.body["limits"]["timeout_ms"], 5000);
    let run = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/plugins/{id}/test-run"),
            json!({}),
        )
        .await;
    let run = run.ok().clone();
    assert_eq!(run["limit"], "memory (64 MiB)", "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("(limit: memory (64 MiB))"),
        "{run}"
    );
}

/// A new version is on trial until it delivers: one that traps before that is taken
/// off and the version that delivered before delivers the line; the merchant sees why,
/// can make any version live again (a rollback), and can upload a version without
/// making it live and try it first.
async fn a_version_that_breaks_before_it_delivers_is_taken_off_and_the_one_before_delivers(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let created = upload(&app, &app.live_key, "Keygen", component("kassa_keygen")).await;
    let id = created.ok()["id"].as_str().unwrap().to_owned();
    let plugin = format!("/api/v1/plugins/{id}");
    let versions = format!("{plugin}/versions");
    app.patch_as(
        &app.live_key,
        &plugin,
        json!({"config": {"prefix": "ACME"}, "secrets": {"signing-key": "s3cret"}}),
    )
    .await
    .ok();
    let product = plugin_product(&app, &app.live_key, &id).await;
    delivered(&app, &product, 1).await;
    let v1 = app.get_as(&app.live_key, &plugin).await;
    assert_eq!(
        v1.ok()["on_trial"],
        false,
        "version 1 delivered: {}",
        v1.text
    );

    // Version 2 fails at every call; it goes live on trial, falling back to 1.
    let v2 = upload_version(&app, &app.live_key, &id, component("kassa_traps_at_start")).await;
    let v2 = v2.ok().clone();
    assert_eq!(
        (&v2["version"], &v2["on_trial"], &v2["fallback_version"]),
        (&json!(2), &json!(true), &json!(1)),
        "{v2}"
    );
    let (_, line) = delivered(&app, &product, 2).await;
    let keys = line["licenses"].as_array().unwrap();
    assert!(
        keys.iter()
            .all(|k| k.as_str().unwrap().starts_with("ACME-")),
        "version 1 delivered the line: {line}"
    );
    let now = app.get_as(&app.live_key, &plugin).await;
    assert_eq!(
        (&now.ok()["version"], &now.body["on_trial"]),
        (&json!(1), &json!(false)),
        "{}",
        now.text
    );
    let listed = app.get_as(&app.live_key, &versions).await;
    let data = listed.ok()["data"].clone();
    assert_eq!(data[0]["version"], 2, "{data}");
    assert_eq!(data[0]["live"], false, "{data}");
    let why = data[0]["withdrawn"].as_str().unwrap_or_default();
    assert!(why.contains("trapped"), "the merchant is told why: {data}");
    assert_eq!(
        (&data[1]["live"], &data[1]["delivered"]),
        (&json!(true), &json!(true))
    );

    // Made live again by the merchant, it is on trial again and no longer withdrawn.
    let again = app
        .patch_as(&app.live_key, &plugin, json!({"live_version": 2}))
        .await;
    assert_eq!(
        (
            &again.ok()["version"],
            &again.body["on_trial"],
            &again.body["fallback_version"]
        ),
        (&json!(2), &json!(true), &json!(1)),
        "{}",
        again.text
    );
    let listed = app.get_as(&app.live_key, &versions).await;
    assert_eq!(listed.ok()["data"][0]["withdrawn"], Value::Null);
    for (patch, field) in [
        (json!({"live_version": 9}), "live_version"),
        (json!({"live_version": 0}), "live_version"),
    ] {
        let refused = app.patch_as(&app.live_key, &plugin, patch).await;
        assert_eq!(refused.invalid_fields(), [field], "{}", refused.text);
    }
    let other = app.new_tenant_keys("other").await.1;
    app.patch_as(&other, &plugin, json!({"live_version": 1}))
        .await
        .problem(404);

    // Version 3 uploaded without going live: tried first, then made live.
    let staged = app
        .send(
            app.request(
                Method::POST,
                &app.live_key,
                &format!("{versions}?live=false"),
            )
            .header("content-type", "application/wasm")
            .body(component("kassa_keygen")),
        )
        .await;
    assert_eq!(
        (&staged.ok()["version"], &staged.body["latest_version"]),
        (&json!(2), &json!(3)),
        "{}",
        staged.text
    );
    let tried = app
        .post_as(
            &app.live_key,
            &format!("{plugin}/test-run"),
            json!({"version": 3}),
        )
        .await;
    assert_eq!(
        tried.ok()["licenses"].as_array().map(Vec::len),
        Some(1),
        "{}",
        tried.text
    );
    let live = app
        .post_as(&app.live_key, &format!("{plugin}/test-run"), json!({}))
        .await;
    assert!(
        live.ok()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("trapped"),
        "without a version the live one runs: {}",
        live.text
    );
    let nothing = app
        .post_as(
            &app.live_key,
            &format!("{plugin}/test-run"),
            json!({"version": 8}),
        )
        .await;
    assert_eq!(nothing.invalid_fields(), ["version"]);
    let v3 = app
        .patch_as(&app.live_key, &plugin, json!({"live_version": 3}))
        .await;
    assert_eq!(
        (&v3.ok()["on_trial"], &v3.body["fallback_version"]),
        (&json!(true), &json!(1)),
        "version 2 never delivered, so 1 is still what runs if 3 fails: {}",
        v3.text
    );
    delivered(&app, &product, 1).await;
    let proven = app.get_as(&app.live_key, &plugin).await;
    assert_eq!(
        (
            &proven.ok()["version"],
            &proven.body["on_trial"],
            &proven.body["fallback_version"]
        ),
        (&json!(3), &json!(false), &Value::Null),
        "{}",
        proven.text
    );
}

/// The attack: a plugin serves both modes (it is told which one an order is in), so
/// a contractor's full-scope *test* key could upload a version, which runs at once,
/// and swap the code, config and secrets that deliver live orders, or test-run it to
/// read what the live secrets give. Only the live key manages plugins; the test key
/// reads them, and its products use them.
async fn a_test_key_never_changes_the_code_that_delivers_live_orders(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (test, live) = (&app.key, &app.live_key);
    let created = upload(&app, live, "Keygen", component("kassa_keygen")).await;
    let id = created.ok()["id"].as_str().unwrap().to_owned();
    let plugin = format!("/api/v1/plugins/{id}");
    app.patch_as(
        live,
        &plugin,
        json!({"config": {"prefix": "ACME"}, "secrets": {"signing-key": "s3cret"}}),
    )
    .await
    .ok();
    let before = app.get_as(live, &plugin).await.ok().clone();

    let refused = |answer: crate::harness::Answer| crate::modes::live_key_required(&answer);
    refused(upload_version(&app, test, &id, component("kassa_hostile")).await);
    refused(upload(&app, test, "Mine", component("kassa_keygen")).await);
    for patch in [
        json!({"config": {"prefix": "MALLORY"}}),
        json!({"secrets": {"signing-key": "known"}}),
        json!({"allowed_hosts": ["attacker.example"]}),
        json!({"live_version": 1}),
    ] {
        refused(app.patch_as(test, &plugin, patch).await);
    }
    refused(
        app.post_as(test, &format!("{plugin}/test-run"), json!({}))
            .await,
    );
    refused(app.delete_as(test, &format!("{plugin}/versions/1")).await);
    let seen = app.get_as(test, &plugin).await;
    assert_eq!(seen.ok(), &before, "the test key reads it, unchanged");

    // A live order is delivered by the code, config and secrets the live key set.
    let product = plugin_product(&app, live, &id).await;
    let order = paid_order(&app, live, &product, 1).await;
    let line = line_when(&app, live, &order, |l| l["delivery_status"] == "delivered").await;
    assert!(
        line["licenses"][0]
            .as_str()
            .is_some_and(|k| k.starts_with("ACME-")),
        "{line}"
    );
    // And a test product uses the same plugin.
    let test_product = plugin_product(&app, test, &id).await;
    let test_order = paid_order(&app, test, &test_product, 1).await;
    let line = line_when(&app, test, &test_order, |l| {
        l["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(line["delivery_status"], "delivered", "{line}");
}

/// One plugin serves both modes (products of either world may name it), and its
/// config names a pool: a test order, paid with the sandbox, must never take that pool's
/// live keys (found by a tester: a test link delivered every live key for free).
async fn a_test_order_never_takes_keys_from_a_live_pool_through_a_plugin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let live_pool = app
        .post_as(
            &app.live_key,
            "/api/v1/license-pools",
            json!({"name": "Live keys"}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_as(
        &app.live_key,
        &format!("/api/v1/license-pools/{live_pool}/keys"),
        json!({"keys": ["LIVE-1", "LIVE-2", "LIVE-3"]}),
    )
    .await
    .ok();
    let plugin = upload(
        &app,
        &app.live_key,
        "Pool taker",
        component("kassa_hostile"),
    )
    .await;
    let plugin = plugin.ok()["id"].as_str().unwrap().to_owned();
    app.patch_as(
        &app.live_key,
        &format!("/api/v1/plugins/{plugin}"),
        json!({"config": {"mode": "pool", "pool": live_pool}}),
    )
    .await
    .ok();

    // A test product delivered by that plugin, bought and paid in test mode.
    let test_product = plugin_product(&app, &app.key, &plugin).await;
    let order = paid_order(&app, &app.key, &test_product, 2).await;
    let line = line_when(&app, &app.key, &order, |l| l["delivery_error"].is_string()).await;
    assert_ne!(line["delivery_status"], "delivered", "{line}");
    assert_eq!(line["licenses"], json!([]), "{line}");
    let reason = line["delivery_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("takes no keys from a live mode license pool"),
        "{line}"
    );
    let pool = app
        .get_as(&app.live_key, &format!("/api/v1/license-pools/{live_pool}"))
        .await;
    assert_eq!(pool.ok()["available"], 3, "{}", pool.body);

    // The same plugin still delivers a live order from it.
    let live_product = plugin_product(&app, &app.live_key, &plugin).await;
    let (_, line) = delivered(&app, &live_product, 2).await;
    assert_eq!(line["licenses"], json!(["LIVE-1", "LIVE-2"]), "{line}");
}

/// A paid unit never goes without its license (found by a tester: a plugin and a web
/// service answering one license for two or three units had the line delivered). The
/// product says how many it takes (`keys_per`, as for pools); another count is no
/// delivery, tried again and then failed with the reason.
async fn licenses_of_another_count_than_the_product_takes_are_not_delivered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The hostile plugin without a mode answers one license, whatever the quantity.
    let plugin = upload(&app, &app.live_key, "One key", component("kassa_hostile")).await;
    let plugin = plugin.ok()["id"].as_str().unwrap().to_owned();
    let per_unit = plugin_product(&app, &app.live_key, &plugin).await;
    let order = paid_order(&app, &app.live_key, &per_unit, 2).await;
    let line = line_when(&app, &app.live_key, &order, |l| {
        l["delivery_error"].is_string()
    })
    .await;
    assert_ne!(line["delivery_status"], "delivered", "{line}");
    assert_eq!(line["licenses"], json!([]), "{line}");
    let reason = line["delivery_error"].as_str().unwrap_or_default();
    assert!(reason.contains("1 licenses answered for 2 units"), "{line}");
    let order = app
        .get_as(&app.live_key, &format!("/api/v1/orders/{order}"))
        .await;
    assert_eq!(
        order.ok()["delivery_status"],
        "not_delivered",
        "{}",
        order.body
    );

    // A product taking one license for the line is delivered by the same answer.
    let per_line = app
        .post_as(
            &app.live_key,
            "/api/v1/products",
            json!({"name": "Site licence", "prices": [{"currency": "USD", "amount": 500}],
                   "delivery": {"method": "plugin", "plugin_id": plugin, "keys_per": "line"}}),
        )
        .await;
    assert_eq!(
        per_line.ok()["delivery"]["keys_per"],
        "line",
        "{}",
        per_line.body
    );
    let per_line = per_line.ok()["id"].as_str().unwrap().to_owned();
    let (_, line) = delivered(&app, &per_line, 2).await;
    assert_eq!(line["licenses"].as_array().map(Vec::len), Some(1), "{line}");

    // A web service answering one license per unit, for a product taking one per line.
    let (service_product, service) = crate::fulfillment::service_product(&app, "").await;
    app.patch_as(
        &app.key,
        &format!("/api/v1/products/{service_product}"),
        json!({"delivery": {"method": "web_service", "url": service.url, "keys_per": "line"}}),
    )
    .await
    .ok();
    let order = paid_order(&app, &app.key, &service_product, 3).await;
    let line = line_when(&app, &app.key, &order, |l| l["delivery_error"].is_string()).await;
    assert_ne!(line["delivery_status"], "delivered", "{line}");
    let reason = line["delivery_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("3 licenses answered; the product takes one"),
        "{line}"
    );
}
