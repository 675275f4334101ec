//! Bad input gets a clear 4xx problem+json, never a 5xx, and nothing is stored.

use kassa_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::json;

use crate::harness::TestApp;

on_both_backends!(
    bad_product_bodies_are_refused_and_nothing_is_stored,
    huge_and_broken_bodies_are_refused,
    chunked_bodies_over_the_limit_are_refused_whole,
    a_refusal_before_the_body_reaches_a_client_still_sending,
    requests_without_a_valid_key_get_401,
    unknown_paths_and_ids_are_404_problems,
    health_and_readiness,
);

async fn bad_product_bodies_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&[]).await;
    let delivery = json!({"method": "license_pool", "pool_id": pool});
    let usd = json!([{"currency": "USD", "amount": 100}]);
    // (body, expected status, the invalid fields for a 422)
    let cases: Vec<(serde_json::Value, u16, Vec<&str>)> = vec![
        (
            json!({"name": "", "prices": usd, "delivery": delivery}),
            422,
            vec!["name"],
        ),
        (
            json!({"name": "   ", "prices": usd, "delivery": delivery}),
            422,
            vec!["name"],
        ),
        (
            json!({"name": "x".repeat(201), "prices": usd, "delivery": delivery}),
            422,
            vec!["name"],
        ),
        (
            json!({"name": "A", "prices": [], "delivery": delivery}),
            422,
            vec!["prices"],
        ),
        (
            json!({"name": "A", "prices": [{"currency": "USD", "amount": -1}], "delivery": delivery}),
            422,
            vec!["prices[0].amount"],
        ),
        (
            json!({"name": "A", "prices": [{"currency": "USD", "amount": 1_000_000_000_000_001_i64}], "delivery": delivery}),
            422,
            vec!["prices[0].amount"],
        ),
        (
            json!({"name": "A", "prices": [{"currency": "ZZZ", "amount": 1}], "delivery": delivery}),
            422,
            vec!["prices[0].currency"],
        ),
        (
            json!({"name": "A", "prices": [{"currency": "USD", "amount": 1}, {"currency": "usd", "amount": 2}], "delivery": delivery}),
            422,
            vec!["prices[1].currency"],
        ),
        (
            json!({"name": "A", "prices": usd, "delivery": {"method": "license_pool", "pool_id": "lpl_01jz0000000000000000000000"}}),
            422,
            vec!["delivery.pool_id"],
        ),
        (
            json!({"name": "A", "prices": usd, "delivery": {"method": "web_service", "url": "not a url"}}),
            422,
            vec!["delivery.url"],
        ),
        (
            json!({"name": "A", "prices": usd, "delivery": {"method": "plugin", "plugin_id": "plg_01jz0000000000000000000000"}}),
            422,
            vec!["delivery.plugin_id"],
        ),
        // Malformed: wrong types, overflow, unknown fields, unknown method.
        (
            json!({"name": {"text": "A"}, "prices": usd, "delivery": delivery}),
            400,
            vec![],
        ),
        (
            json!({"name": "A", "prices": "USD 1", "delivery": delivery}),
            400,
            vec![],
        ),
        (
            json!({"name": "A", "prices": [{"currency": "USD", "amount": 1e30}], "delivery": delivery}),
            400,
            vec![],
        ),
        (
            json!({"name": "A", "prices": [{"currency": "USD", "amount": 1.5}], "delivery": delivery}),
            400,
            vec![],
        ),
        (
            json!({"name": "A", "prices": usd, "delivery": delivery, "price": 5}),
            400,
            vec![],
        ),
        (
            json!({"name": "A", "prices": usd, "delivery": {"method": "carrier_pigeon"}}),
            400,
            vec![],
        ),
        (json!({"prices": usd, "delivery": delivery}), 400, vec![]),
        (json!([1, 2, 3]), 400, vec![]),
        (
            json!({"name": ["A"], "prices": usd, "delivery": delivery}),
            400,
            vec![],
        ),
        (
            json!({"name": "A", "prices": usd, "delivery": delivery, "active": "yes"}),
            400,
            vec![],
        ),
    ];
    for (body, status, fields) in cases {
        let answer = app.post("/api/v1/products", body.clone()).await;
        answer.problem(status);
        if status == 422 {
            assert_eq!(answer.invalid_fields(), fields, "{body}");
        }
    }
    let malformed = app
        .send(
            app.request(Method::POST, &app.key, "/api/v1/products")
                .header("content-type", "application/json")
                .body("{\"name\": \"A\", "),
        )
        .await;
    malformed.problem(400);
    let listed = app.get("/api/v1/products").await;
    assert_eq!(listed.ok()["data"], json!([]), "nothing was stored");
}

async fn huge_and_broken_bodies_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&[]).await;
    let huge = "K\n".repeat(5 * 1024 * 1024);
    let answer = app
        .send(
            app.request(
                Method::POST,
                &app.key,
                &format!("/api/v1/license-pools/{pool}/keys"),
            )
            .header("content-type", "text/plain")
            .body(huge),
        )
        .await;
    answer.problem(413);

    let mut invalid_utf8 = b"{\"name\": \"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    invalid_utf8.extend_from_slice(b"\"}");
    let answer = app
        .send(
            app.request(Method::POST, &app.key, "/api/v1/license-pools")
                .header("content-type", "application/json")
                .body(invalid_utf8),
        )
        .await;
    answer.problem(400);

    let wrong_type = app
        .send(
            app.request(Method::POST, &app.key, "/api/v1/license-pools")
                .header("content-type", "application/xml")
                .body("<pool/>"),
        )
        .await;
    assert!(
        (400..500).contains(&wrong_type.status),
        "{} {}",
        wrong_type.status,
        wrong_type.text
    );
    assert_eq!(wrong_type.content_type, "application/problem+json");

    let blank = app
        .post(
            &format!("/api/v1/license-pools/{pool}/keys"),
            json!({"keys": ["", " "]}),
        )
        .await;
    assert_eq!(blank.invalid_fields(), ["keys"]);
    let pools = app.get("/api/v1/license-pools").await;
    let data = pools.ok()["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["available"], 0, "nothing was stored");
}

/// A body sent in chunks, without `Content-Length`, as a client streaming it would.
fn chunked(body: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

/// A handler may refuse a request before reading its body (a test key uploading a
/// plugin, a file that is not a component, no key at all). The client is still
/// sending then: the answer must reach it, not a connection reset over the unread
/// rest (a test failed so under load, with `IncompleteMessage`).
async fn a_refusal_before_the_body_reaches_a_client_still_sending(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let component = [b"\0asm\x0d\0\x01\0".as_slice(), &[0; 6 * 1024 * 1024]].concat();
    let not_a_component = vec![b'x'; 6 * 1024 * 1024];
    for round in 0..3 {
        // Declared length, then chunks.
        let body = |bytes: &Vec<u8>| match round % 2 {
            0 => reqwest::Body::from(bytes.clone()),
            _ => chunked(bytes.clone()),
        };
        let test_key = app
            .send(
                app.request(Method::POST, &app.key, "/api/v1/plugins?name=Mine")
                    .header("content-type", "application/wasm")
                    .body(body(&component)),
            )
            .await;
        assert_eq!(
            test_key.problem(403)["type"],
            "live_key_required",
            "{round}"
        );
        let invalid = app
            .send(
                app.request(Method::POST, &app.live_key, "/api/v1/plugins?name=Mine")
                    .header("content-type", "application/wasm")
                    .body(body(&not_a_component)),
            )
            .await;
        assert_eq!(invalid.invalid_fields(), ["body"], "{}", invalid.text);
        let why = invalid.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(why.contains("not a WebAssembly file"), "{why}");
        let no_key = app
            .send(
                reqwest::Client::new()
                    .post(app.url("/api/v1/plugins?name=Mine"))
                    .header("content-type", "application/wasm")
                    .body(body(&component)),
            )
            .await;
        no_key.problem(401);
    }
    let plugins = app.get_as(&app.live_key, "/api/v1/plugins").await;
    assert_eq!(plugins.ok()["data"], json!([]), "nothing was stored");
}

/// The attack: a chunked upload over the limit used to be cut at 2 MiB and stored,
/// its last key truncated, with 200 OK. Every body follows one rule: over the limit
/// it is refused whole (problem+json in the API, a page for the pages); under it,
/// it is read whole.
async fn chunked_bodies_over_the_limit_are_refused_whole(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        crate::harness::Options {
            max_component_bytes: 2 * 1024 * 1024,
            ..crate::harness::Options::default()
        },
    )
    .await;
    let pool = app.pool_with_keys(&[]).await;
    let keys_path = format!("/api/v1/license-pools/{pool}/keys");
    // 5,000 keys of 500 characters: within the per-upload key rules, over 2 MiB.
    let over: String = (0..5_000)
        .map(|i| format!("KEY-{i:08}-{}\n", "A".repeat(487)))
        .collect();
    assert!(over.len() > 2 * 1024 * 1024);
    for content_type in ["text/plain", "text/csv"] {
        let answer = app
            .send(
                app.request(Method::POST, &app.key, &keys_path)
                    .header("content-type", content_type)
                    .body(chunked(over.clone().into_bytes())),
            )
            .await;
        assert_eq!(answer.problem(413)["type"], "payload_too_large");
    }
    let json_over = serde_json::to_vec(&json!({"keys": over.lines().collect::<Vec<_>>()})).unwrap();
    let answer = app
        .send(
            app.request(Method::POST, &app.key, &keys_path)
                .header("content-type", "application/json")
                .body(chunked(json_over)),
        )
        .await;
    answer.problem(413);
    let plugin = app
        .send(
            app.request(Method::POST, &app.live_key, "/api/v1/plugins")
                .header("content-type", "application/wasm")
                .body(chunked(
                    [b"\0asm\x0d\0\x01\0".as_slice(), &[0; 3 * 1024 * 1024]].concat(),
                )),
        )
        .await;
    plugin.problem(413);
    let stock = app.get(&format!("/api/v1/license-pools/{pool}")).await;
    assert_eq!(stock.ok()["available"], 0, "nothing was stored");

    // Under the limit, a chunked upload is read to its last byte.
    let under: String = (0..1000)
        .map(|i| format!("KEY-{i:08}-ABCDEFGH\n"))
        .collect();
    let answer = app
        .send(
            app.request(Method::POST, &app.key, &keys_path)
                .header("content-type", "text/plain")
                .body(chunked(under.into_bytes())),
        )
        .await;
    assert_eq!(answer.ok()["added"], 1000);
    let last = app
        .post(&keys_path, json!({"keys": ["KEY-00000999-ABCDEFGH"]}))
        .await;
    assert_eq!(last.ok()["duplicates"], 1, "the last key was stored whole");

    // A page form: a page that says so, not a CSRF error or a cut form.
    let form = format!("csrf=x&email={}", "a".repeat(3 * 1024 * 1024));
    let page = reqwest::Client::new()
        .post(app.url("/acme/test/checkout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(chunked(form.into_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 413);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("too large"));
}

async fn requests_without_a_valid_key_get_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let no_key = app
        .send(reqwest::Client::new().get(app.url("/api/v1/products")))
        .await;
    no_key.problem(401);
    for key in ["", "kassa_sk_unknown", "Basic abc", &"x".repeat(10_000)] {
        app.get_as(key, "/api/v1/products").await.problem(401);
        app.post_as(key, "/api/v1/license-pools", json!({"name": "X"}))
            .await
            .problem(401);
    }
    let basic = app
        .send(
            reqwest::Client::new()
                .get(app.url("/api/v1/products"))
                .basic_auth("user", Some(&app.key)),
        )
        .await;
    basic.problem(401);
    assert_eq!(
        app.get("/api/v1/license-pools").await.ok()["data"],
        json!([])
    );
}

async fn unknown_paths_and_ids_are_404_problems(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.get("/api/v1/nothing-here").await.problem(404);
    // Outside the API, a wrong address is a page saying so.
    for path in ["/acme/test/orders/nothing-here", "/no-such-store/buy/x/y"] {
        let page = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(page.status(), 404, "{path}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("This page does not exist")
        );
    }
    let icon = reqwest::get(app.url("/favicon.ico")).await.unwrap();
    assert_eq!(icon.status(), 204);
    for path in [
        "/api/v1/products/prd_01jz0000000000000000000000",
        "/api/v1/products/not-an-id",
        "/api/v1/products/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/license-pools/lpl_01jz0000000000000000000000",
        "/api/v1/coupons/cpn_01jz0000000000000000000000",
        "/api/v1/checkout-links/lnk_01jz0000000000000000000000",
        "/api/v1/webhook-endpoints/ep_01jz0000000000000000000000",
    ] {
        app.get(path).await.problem(404);
    }
    let bad_limit = app.get("/api/v1/products?limit=0").await;
    assert_eq!(bad_limit.invalid_fields(), ["limit"]);
    app.get("/api/v1/products?limit=abc").await.problem(400);
    let bad_cursor = app.get("/api/v1/products?cursor=' OR 1=1 --").await;
    assert_eq!(bad_cursor.invalid_fields(), ["cursor"]);
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.store.close().await;
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "a closed database is not ready");
}
