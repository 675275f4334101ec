//! A merchant sets up a catalog: pools and keys, products, coupons, links, endpoints.

use kassa_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::json;

use crate::harness::TestApp;
use crate::pages::Browser;

on_both_backends!(
    pool_keys_and_a_product_priced_in_two_currencies,
    key_uploads_as_text_and_csv_dedupe,
    products_can_be_changed_and_listed_page_by_page,
    coupons_percent_and_amount,
    checkout_links_carry_their_presets,
    signed_checkout_links_sign_the_whole_offer,
    webhook_endpoints_show_their_secret_once_and_rotate,
);

async fn pool_keys_and_a_product_priced_in_two_currencies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app
        .post(
            "/api/v1/license-pools",
            json!({"name": "Pro keys", "low_stock_threshold": 5}),
        )
        .await;
    let pool_id = pool.ok()["id"].as_str().unwrap().to_owned();
    assert!(pool_id.starts_with("lpl_"));
    assert_eq!(pool.body["available"], 0);

    let added = app
        .post(
            &format!("/api/v1/license-pools/{pool_id}/keys"),
            json!({"keys": ["AAAA-1111", "BBBB-2222", "CCCC-3333"]}),
        )
        .await;
    assert_eq!(added.ok()["added"], 3);
    assert_eq!(added.body["duplicates"], 0);
    assert_eq!(added.body["pool"]["available"], 3);

    let product = app
        .post(
            "/api/v1/products",
            json!({
                "name": "Pro License",
                "description": "One year of updates",
                "prices": [{"currency": "USD", "amount": 1999}, {"currency": "eur", "amount": 1799}],
                "delivery": {"method": "license_pool", "pool_id": pool_id},
            }),
        )
        .await;
    let p = product.ok();
    let id = p["id"].as_str().unwrap();
    assert!(id.starts_with("prd_"));
    assert_eq!(
        p["prices"],
        json!([{"currency": "USD", "amount": 1999}, {"currency": "EUR", "amount": 1799}])
    );
    assert_eq!(
        p["delivery"],
        json!({"method": "license_pool", "pool_id": pool_id, "keys_per": "unit"})
    );
    assert_eq!(p["active"], true);
    assert_eq!(p["buy_url"], format!("{}/acme/test/buy/{id}", app.base));

    let fetched = app.get(&format!("/api/v1/products/{id}")).await;
    assert_eq!(fetched.ok(), p);
    let pool = app.get(&format!("/api/v1/license-pools/{pool_id}")).await;
    assert_eq!(pool.ok()["available"], 3);
    assert_eq!(pool.body["low_stock_threshold"], 5);

    let web = app
        .post(
            "/api/v1/products",
            json!({
                "name": "Hosted",
                "prices": [{"currency": "JPY", "amount": 1500}],
                "delivery": {"method": "web_service", "url": "https://licenses.example.com/issue"},
            }),
        )
        .await;
    assert_eq!(
        web.ok()["delivery"],
        json!({"method": "web_service", "url": "https://licenses.example.com/issue", "keys_per": "unit"})
    );
}

async fn key_uploads_as_text_and_csv_dedupe(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&["K-1"]).await;
    let path = format!("/api/v1/license-pools/{pool}/keys");
    let text = app
        .send(
            app.request(Method::POST, &app.key, &path)
                .header("content-type", "text/plain")
                .body("K-1\n K-2 \n\nK-3\nK-3\n"),
        )
        .await;
    assert_eq!(text.ok()["added"], 2);
    assert_eq!(text.body["duplicates"], 2);
    let mut refused: Vec<_> = text.body["duplicate_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    refused.sort();
    assert_eq!(refused, ["K-1", "K-3"]);

    let csv = app
        .send(
            app.request(Method::POST, &app.key, &path)
                .header("content-type", "text/csv")
                .body("key,note\nK-4,first\n\"K-5\",second\nK-2,again\n"),
        )
        .await;
    assert_eq!(csv.ok()["added"], 2);
    assert_eq!(csv.body["duplicate_keys"], json!(["K-2"]));
    assert_eq!(csv.body["pool"]["available"], 5);
}

async fn products_can_be_changed_and_listed_page_by_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&[]).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.product(&pool).await["id"].as_str().unwrap().to_owned());
    }
    let changed = app
        .patch_as(
            &app.key,
            &format!("/api/v1/products/{}", ids[0]),
            json!({"name": "Renamed", "active": false, "prices": [{"currency": "GBP", "amount": 999}]}),
        )
        .await;
    assert_eq!(changed.ok()["name"], "Renamed");
    assert_eq!(changed.body["active"], false);
    assert_eq!(
        changed.body["prices"],
        json!([{"currency": "GBP", "amount": 999}])
    );
    assert_eq!(changed.body["delivery"]["pool_id"], pool.as_str());

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/products?limit=2&cursor={c}"),
            None => "/api/v1/products?limit=2".to_owned(),
        };
        let page = app.get(&path).await;
        let data = page.ok()["data"].as_array().unwrap().clone();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    ids.reverse();
    assert_eq!(seen, ids, "every product once, newest first");
}

async fn coupons_percent_and_amount(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&[]).await;
    let product = app.product(&pool).await;
    let percent = app
        .post(
            "/api/v1/coupons",
            json!({"code": "launch-20", "percent_off": 20, "max_redemptions": 100,
                   "expires_at": "2099-01-01T00:00:00Z", "product_ids": [product["id"]]}),
        )
        .await;
    let c = percent.ok();
    assert!(c["id"].as_str().unwrap().starts_with("cpn_"));
    assert_eq!(c["code"], "LAUNCH-20");
    assert_eq!(c["percent_off"], 20);
    assert_eq!(c["valid"], true);
    assert_eq!(c["product_ids"], json!([product["id"]]));

    let amount = app
        .post(
            "/api/v1/coupons",
            json!({"code": "FIVE", "amount_off": 500, "currency": "usd"}),
        )
        .await;
    assert_eq!(amount.ok()["currency"], "USD");
    assert_eq!(amount.body["amount_off"], 500);

    let again = app
        .post(
            "/api/v1/coupons",
            json!({"code": "Launch-20", "percent_off": 5}),
        )
        .await;
    again.problem(409);

    let off = app
        .patch_as(
            &app.key,
            &format!("/api/v1/coupons/{}", c["id"].as_str().unwrap()),
            json!({"active": false}),
        )
        .await;
    assert_eq!(off.ok()["active"], false);
    assert_eq!(off.body["valid"], false);

    let bad = app
        .post(
            "/api/v1/coupons",
            json!({"code": "bad code!", "percent_off": 150, "expires_at": "2001-01-01T00:00:00Z",
                   "max_redemptions": 0, "product_ids": ["prd_01jz0000000000000000000000"]}),
        )
        .await;
    let mut fields = bad.invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "code",
            "expires_at",
            "max_redemptions",
            "percent_off",
            "product_ids[0]"
        ]
    );
    let both = app
        .post(
            "/api/v1/coupons",
            json!({"code": "X", "percent_off": 5, "amount_off": 5, "currency": "USD"}),
        )
        .await;
    assert_eq!(both.invalid_fields(), ["percent_off"]);
    let listed = app.get("/api/v1/coupons").await;
    assert_eq!(listed.ok()["data"].as_array().unwrap().len(), 2);
}

async fn checkout_links_carry_their_presets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&[]).await;
    let product = app.product(&pool).await;
    let pid = product["id"].as_str().unwrap();
    app.post("/api/v1/coupons", json!({"code": "TEN", "percent_off": 10}))
        .await
        .ok();
    let link = app
        .post(
            "/api/v1/checkout-links",
            json!({"product_id": pid, "quantity": 3, "currency": "eur", "coupon": "ten"}),
        )
        .await;
    let l = link.ok();
    assert!(l["id"].as_str().unwrap().starts_with("lnk_"));
    assert_eq!(
        l["url"],
        format!(
            "{}/acme/test/buy/{pid}?quantity=3&currency=EUR&coupon=TEN",
            app.base
        )
    );
    let id = l["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/checkout-links/{id}")).await.ok(),
        l
    );

    let bad = app
        .post(
            "/api/v1/checkout-links",
            json!({"product_id": pid, "quantity": 0, "currency": "GBP", "coupon": "NOPE"}),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["quantity", "currency", "coupon"]);
    let missing = app
        .post("/api/v1/checkout-links", json!({"product_id": "prd_nope"}))
        .await;
    assert_eq!(missing.invalid_fields(), ["product_id"]);

    app.delete_as(&app.key, &format!("/api/v1/checkout-links/{id}"))
        .await
        .ok();
    app.get(&format!("/api/v1/checkout-links/{id}"))
        .await
        .problem(404);
}

/// A checkout link with a price, discount, quantity bounds or expiry is signed: its
/// URL carries the whole offer in the canonical form and its signature, the page
/// sells on its terms, and a changed URL is refused.
async fn signed_checkout_links_sign_the_whole_offer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&[]).await;
    let product = app.product(&pool).await;
    let pid = product["id"].as_str().unwrap();
    let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let link = app
        .post(
            "/api/v1/checkout-links",
            json!({"product_id": pid, "currency": "usd", "price": 900, "discount": 100,
                   "min_quantity": 1, "max_quantity": 5, "expires_at": expires_at}),
        )
        .await;
    let l = link.ok().clone();
    assert_eq!(l["signed"], true);
    assert_eq!(
        (l["price"].as_i64(), l["discount"].as_i64()),
        (Some(900), Some(100))
    );
    assert_eq!(
        (l["min_quantity"].as_i64(), l["max_quantity"].as_i64()),
        (Some(1), Some(5))
    );
    let expires = chrono::DateTime::parse_from_rfc3339(l["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.timestamp(), expires_at.timestamp(), "to the second");
    let url = l["url"].as_str().unwrap();
    let path = url.strip_prefix(&app.base).unwrap();
    assert!(
        path.starts_with(&format!(
            "/acme/test/buy/{pid}?currency=USD&discount=100&expires={}&max_quantity=5&min_quantity=1&price=900&quantity=1&sig=",
            expires_at.timestamp()
        )),
        "the canonical query, then sig: {path}"
    );
    let id = l["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/checkout-links/{id}")).await.ok(),
        &l
    );
    assert_eq!(app.get("/api/v1/checkout-links").await.ok()["data"][0], l);

    let b = Browser::new(&app);
    let page = b.open(path).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("8.00 USD"), "9.00 − 1.00: {}", page.html);
    let changed = b.get(&path.replace("price=900", "price=1")).await;
    assert_eq!(changed.status, 400);

    for (body, fields) in [
        (json!({"product_id": pid, "price": 100}), vec!["currency"]),
        (
            json!({"product_id": pid, "price": 100, "currency": "USD", "expires_at": "2001-01-01T00:00:00Z"}),
            vec!["expires_at"],
        ),
        (
            json!({"product_id": pid, "min_quantity": 5, "max_quantity": 2}),
            vec!["min_quantity"],
        ),
        (
            json!({"product_id": pid, "quantity": 9, "max_quantity": 2}),
            vec!["quantity"],
        ),
        (
            json!({"product_id": pid, "price": -1, "currency": "USD"}),
            vec!["price"],
        ),
    ] {
        assert_eq!(
            app.post("/api/v1/checkout-links", body)
                .await
                .invalid_fields(),
            fields
        );
    }
}

async fn webhook_endpoints_show_their_secret_once_and_rotate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post(
            "/api/v1/webhook-endpoints",
            json!({"url": "https://hooks.example.com/kassa", "event_types": ["order.created", "payment.succeeded"]}),
        )
        .await;
    let e = created.ok();
    let id = e["id"].as_str().unwrap();
    assert!(id.starts_with("ep_"));
    let secret = e["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        e["event_types"],
        json!(["order.created", "payment.succeeded"])
    );

    let fetched = app.get(&format!("/api/v1/webhook-endpoints/{id}")).await;
    assert!(fetched.ok().get("secret").is_none(), "{}", fetched.text);
    assert!(!fetched.text.contains(&secret));

    let rotated = app
        .post(
            &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
            json!({}),
        )
        .await;
    let new_secret = rotated.ok()["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_"));
    assert_ne!(new_secret, secret);

    let disabled = app
        .patch_as(
            &app.key,
            &format!("/api/v1/webhook-endpoints/{id}"),
            json!({"disabled": true, "event_types": []}),
        )
        .await;
    assert_eq!(disabled.ok()["disabled"], true);
    assert_eq!(disabled.body["event_types"], json!([]));

    let bad = app
        .post(
            "/api/v1/webhook-endpoints",
            json!({"url": "ftp://example.com", "event_types": ["order.paid"]}),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["url", "event_types[0]"]);

    app.delete_as(&app.key, &format!("/api/v1/webhook-endpoints/{id}"))
        .await
        .ok();
    app.get(&format!("/api/v1/webhook-endpoints/{id}"))
        .await
        .problem(404);
}
