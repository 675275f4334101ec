//! Paid orders get their licenses from the store's pools: exactly one line per key
//! under any concurrency, waiting for stock when it runs out. Both databases.

use std::time::Duration;

use kassa_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::harness::TestApp;

on_both_backends!(
    a_paid_order_is_delivered_from_the_pool,
    forty_orders_on_twenty_keys_wait_for_a_restock,
    two_hundred_buyers_on_fifty_keys_wait_for_a_restock,
    restocks_racing_deliveries_leave_no_line_waiting,
    one_key_per_line_when_the_product_says_so,
    a_license_web_service_delivers_after_a_retry,
    a_failing_license_web_service_fails_the_line_visibly,
    a_due_line_the_workflow_will_not_deliver_is_let_go,
);

async fn pool(app: &TestApp, keys: &[String], threshold: Option<i64>) -> String {
    let p = app
        .post(
            "/api/v1/license-pools",
            json!({"name": "Pro keys", "low_stock_threshold": threshold}),
        )
        .await;
    let id = p.ok()["id"].as_str().unwrap().to_owned();
    if !keys.is_empty() {
        app.post(
            &format!("/api/v1/license-pools/{id}/keys"),
            json!({"keys": keys}),
        )
        .await
        .ok();
    }
    id
}

async fn product(app: &TestApp, pool: &str, keys_per: &str) -> String {
    let p = app
        .post(
            "/api/v1/products",
            json!({"name": "Pro", "prices": [{"currency": "USD", "amount": 1000}],
                   "delivery": {"method": "license_pool", "pool_id": pool, "keys_per": keys_per}}),
        )
        .await;
    p.ok()["id"].as_str().unwrap().to_owned()
}

/// Places and pays an order; returns its id.
pub(crate) async fn paid_order(app: &TestApp, product: &str, quantity: i64) -> String {
    let order = app
        .post(
            "/api/v1/orders",
            json!({"lines": [{"product_id": product, "quantity": quantity}], "currency": "USD",
                   "customer": {"email": "buyer@example.com", "name": "Ada"}, "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let order = order.ok().clone();
    let id = order["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/orders/{id}/payments"),
        json!({"method": "bank_transfer", "amount": order["total"], "currency": "USD"}),
    )
    .await
    .ok();
    id
}

async fn order(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/orders/{id}")).await.ok().clone()
}

pub(crate) async fn wait_delivered(app: &TestApp, id: &str) -> Value {
    let mut o = Value::Null;
    for _ in 0..150 {
        o = order(app, id).await;
        if o["delivery_status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    o
}

fn keys(n: usize, tag: &str) -> Vec<String> {
    (1..=n).map(|i| format!("{tag}-{i:04}")).collect()
}

async fn a_paid_order_is_delivered_from_the_pool(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool_id = pool(&app, &keys(3, "KEY"), Some(1)).await;
    let prd = product(&app, &pool_id, "unit").await;
    let unpaid = app
        .post(
            "/api/v1/orders",
            json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "x@example.com"}, "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let unpaid_id = unpaid.ok()["id"].as_str().unwrap().to_owned();
    let id = paid_order(&app, &prd, 2).await;
    let o = wait_delivered(&app, &id).await;
    assert_eq!(o["delivery_status"], "delivered", "{o}");
    let licenses: Vec<String> = serde_json::from_value(o["lines"][0]["licenses"].clone()).unwrap();
    assert_eq!(licenses.len(), 2);
    assert_ne!(licenses[0], licenses[1]);
    assert!(licenses.iter().all(|k| k.starts_with("KEY-")));
    assert_eq!(o["lines"][0]["delivery_status"], "delivered");
    assert_eq!(
        order(&app, &unpaid_id).await["delivery_status"],
        "not_delivered",
        "unpaid orders wait"
    );

    let pool = app.get(&format!("/api/v1/license-pools/{pool_id}")).await;
    assert_eq!(
        (
            pool.ok()["available"].as_i64(),
            pool.body["assigned"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let events = app.get(&format!("/api/v1/orders/{id}/events")).await;
    let kinds: Vec<_> = events.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "order.created",
            "payment.succeeded",
            "product.delivered",
            "order.delivered"
        ]
    );
    let delivered = &events.body["data"][2]["payload"]["data"];
    assert_eq!(
        delivered["line"]["licenses"],
        json!(licenses),
        "the licenses travel in product.delivered"
    );
    let low = app.get("/api/v1/events?type=license_pool.low_stock").await;
    assert_eq!(
        low.ok()["data"][0]["payload"]["data"]["license_pool"]["available"],
        1
    );

    // The customer sees them on the order page and in an email.
    let token_url = o["order_url"].as_str().unwrap();
    let page = reqwest::get(token_url).await.unwrap().text().await.unwrap();
    assert!(
        licenses.iter().all(|k| page.contains(k.as_str())),
        "licenses on the order page"
    );
    assert!(page.contains("data-testid=\"delivery-status\">Delivered<"));
    let mut mail = Value::Null;
    for _ in 0..50 {
        let emails = app.get("/api/v1/emails").await.ok().clone();
        if let Some(m) = emails["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == "licenses" && m["status"] == "kept")
        {
            mail = m.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        licenses.iter().all(|k| mail["text_body"]
            .as_str()
            .unwrap_or_default()
            .contains(k.as_str())),
        "{mail}"
    );
    let mut low_text = String::new();
    for _ in 0..50 {
        let emails = app.get("/api/v1/emails").await.ok().clone();
        if let Some(m) = emails["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == "pool_low")
        {
            assert_eq!(
                m["to"], "owner@acme.test",
                "the owners are told the pool runs low"
            );
            low_text = m["text_body"].as_str().unwrap_or_default().to_owned();
            if !low_text.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(low_text.contains("has 1 key(s) left"), "{low_text}");
    assert!(
        low_text.contains("The test mode license pool"),
        "the pool's mode: {low_text}"
    );
    app.post(&format!("/api/v1/orders/{id}/resend-licenses"), json!({}))
        .await
        .ok();
    let emails = app.get("/api/v1/emails").await;
    let count = emails.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "licenses")
        .count();
    assert_eq!(count, 2, "resent");
    app.post(
        &format!("/api/v1/orders/{unpaid_id}/resend-licenses"),
        json!({}),
    )
    .await
    .problem(409);
}

async fn forty_orders_on_twenty_keys_wait_for_a_restock(backend: Backend) {
    buyers_wait_for_a_restock(backend, 40, 20).await;
}

/// 200 buyers (50 at a time) on a pool of 50 keys: exactly 50 delivered, 150
/// waiting, and every one delivered after the restock, no key twice.
async fn two_hundred_buyers_on_fifty_keys_wait_for_a_restock(backend: Backend) {
    buyers_wait_for_a_restock(backend, 200, 50).await;
}

/// `buyers` orders paid at once on a pool of `stock` keys.
async fn buyers_wait_for_a_restock(backend: Backend, buyers: usize, stock: usize) {
    let app = TestApp::spawn(backend).await;
    let pool_id = pool(&app, &keys(stock, "A"), None).await;
    let prd = product(&app, &pool_id, "unit").await;
    // Fifty buyers at a time: the test's server has a pool of 5 connections, and 200
    // payments at once wait longer than its 10 s acquire timeout on a loaded machine.
    let ids: Vec<String> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
        futures::stream::iter((0..buyers).map(|_| paid_order(&app, &prd, 1))),
        50,
    ))
    .await;
    // Wait until every line was tried: `stock` delivered, the others waiting.
    let mut states = Vec::new();
    for _ in 0..200 {
        states = Vec::new();
        for id in &ids {
            states.push(
                order(&app, id).await["lines"][0]["delivery_status"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let done = states
            .iter()
            .filter(|s| *s == "delivered" || *s == "waiting_stock")
            .count();
        if done == buyers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        states.iter().filter(|s| *s == "delivered").count(),
        stock,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| *s == "waiting_stock").count(),
        buyers - stock
    );
    // The merchant is told, among every email the orders made.
    let mut told = false;
    let mut page = "/api/v1/emails?limit=100".to_owned();
    loop {
        let emails = app.get(&page).await;
        let body = emails.ok();
        told |= body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "pool_empty");
        match body["next_cursor"].as_str() {
            Some(cursor) if !told => page = format!("/api/v1/emails?limit=100&cursor={cursor}"),
            _ => break,
        }
    }
    assert!(told, "the merchant is told");

    app.post(
        &format!("/api/v1/license-pools/{pool_id}/keys"),
        json!({"keys": keys(buyers - stock, "B")}),
    )
    .await
    .ok();
    let mut all = Vec::new();
    for id in &ids {
        let o = wait_delivered(&app, id).await;
        assert_eq!(o["delivery_status"], "delivered", "{o}");
        all.extend(
            serde_json::from_value::<Vec<String>>(o["lines"][0]["licenses"].clone()).unwrap(),
        );
    }
    assert_eq!(all.len(), buyers);
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), buyers, "no key went to two lines");
    let pool = app.get(&format!("/api/v1/license-pools/{pool_id}")).await;
    assert_eq!(pool.ok()["available"], 0);
    assert_eq!(pool.body["assigned"], buyers);
}

/// Keys uploaded one by one while paid lines are being delivered from the same empty
/// pool: a delivery that finds too few keys and a restock that wakes waiting lines
/// never interleave, so every line ends delivered, none waits while keys are free.
async fn restocks_racing_deliveries_leave_no_line_waiting(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool_id = pool(&app, &[], None).await;
    let prd = product(&app, &pool_id, "unit").await;
    let orders = futures::future::join_all((0..30).map(|_| paid_order(&app, &prd, 1)));
    let restocks = futures::future::join_all(keys(30, "R").into_iter().map(|key| {
        let app = &app;
        let pool_id = &pool_id;
        async move {
            app.post(
                &format!("/api/v1/license-pools/{pool_id}/keys"),
                json!({"keys": [key]}),
            )
            .await
            .ok();
        }
    }));
    let (ids, _) = futures::join!(orders, restocks);
    for id in &ids {
        let o = wait_delivered(&app, id).await;
        assert_eq!(o["delivery_status"], "delivered", "{o}");
    }
    let pool = app.get(&format!("/api/v1/license-pools/{pool_id}")).await;
    assert_eq!(pool.ok()["available"], 0);
    assert_eq!(pool.body["assigned"], 30);
}

async fn one_key_per_line_when_the_product_says_so(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool_id = pool(&app, &keys(2, "SITE"), None).await;
    let prd = product(&app, &pool_id, "line").await;
    let id = paid_order(&app, &prd, 3).await;
    let o = wait_delivered(&app, &id).await;
    assert_eq!(o["lines"][0]["licenses"].as_array().unwrap().len(), 1);
}

pub(crate) async fn service_product(
    app: &TestApp,
    plan: &str,
) -> (String, crate::webhooks::Receiver) {
    let settings = app.get_as(&app.live_key, "/api/v1/settings").await;
    let secret = settings.ok()["web_service_signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let service = crate::webhooks::Receiver::start_with(&secret, plan, 0.0, &["--licenses"]);
    let p = app
        .post(
            "/api/v1/products",
            json!({"name": "Hosted", "prices": [{"currency": "USD", "amount": 1000}],
                   "delivery": {"method": "web_service", "url": service.url}}),
        )
        .await;
    (p.ok()["id"].as_str().unwrap().to_owned(), service)
}

async fn a_license_web_service_delivers_after_a_retry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, service) = service_product(&app, "500").await;
    let id = paid_order(&app, &prd, 2).await;
    let o = wait_delivered(&app, &id).await;
    assert_eq!(o["delivery_status"], "delivered", "{o}");
    let key = format!("ful_{id}_1");
    assert_eq!(
        o["lines"][0]["licenses"],
        json!([format!("SVC-{key}-1"), format!("SVC-{key}-2")])
    );
    let asked = service.received();
    assert_eq!(asked.len(), 2, "one failure, one success");
    assert!(
        asked.iter().all(|r| r["verified"] == true),
        "signed like webhooks"
    );
    assert!(
        asked.iter().all(|r| r["webhook_id"] == key.as_str()),
        "one idempotency key"
    );
    let request = &asked[1]["event"];
    assert_eq!(request["quantity"], 2);
    assert_eq!(request["customer"]["email"], "buyer@example.com");
    assert_eq!(request["order"]["id"], id.as_str());
}

async fn a_failing_license_web_service_fails_the_line_visibly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, service) = service_product(&app, "500,500,500,500,500").await;
    let id = paid_order(&app, &prd, 1).await;
    let mut o = Value::Null;
    for _ in 0..100 {
        o = order(&app, &id).await;
        if o["lines"][0]["delivery_status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(o["lines"][0]["delivery_status"], "failed", "{o}");
    assert!(
        o["lines"][0]["delivery_error"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
    assert_eq!(service.received().len(), 3, "every attempt of the schedule");
    let mut told = false;
    for _ in 0..50 {
        let emails = app.get("/api/v1/emails").await.ok().clone();
        told = emails["data"].as_array().unwrap().iter().any(|m| {
            m["kind"] == "delivery_failed"
                && m["status"] == "kept"
                && m["text_body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("HTTP 500")
        });
        if told {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(told, "the merchant is told why");
}

/// A line that is due although the workflow will not deliver it (here an unpaid
/// order's, made due by hand: no command writes such a row today, a refund clears the
/// line's due time and claim, but a row left by an older version or by hand can be so)
/// is let go once refused: no longer due nor claimed, so the dispatcher
/// does not take it again and again, every claim's lease, warning each time (the
/// `kassa_jobs_*{queue="kassa::deliver_line"}` gauges read these columns). Its order
/// paid afterwards, it is delivered as any.
async fn a_due_line_the_workflow_will_not_deliver_is_let_go(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&["LET-GO-1"]).await;
    let product = app.product(&pool).await["id"].as_str().unwrap().to_owned();
    let placed = app
        .post(
            "/api/v1/orders",
            json!({"lines": [{"product_id": product, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "buyer@example.com"}, "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let id = placed.ok()["id"].as_str().unwrap().to_owned();
    let due = sqlx::AssertSqlSafe(match backend {
        Backend::Sqlite => {
            format!("UPDATE order_lines SET next_delivery_at = 0 WHERE order_id = '{id}'")
        }
        Backend::Postgres => format!(
            "UPDATE order_lines SET next_delivery_at = now() - interval '1 second' WHERE order_id = '{id}'"
        ),
    });
    match (app.store.sqlite_pool(), app.store.pg_pool()) {
        (Some(pool), _) => sqlx::query(due).execute(pool).await.map(|_| ()),
        (_, Some(pool)) => sqlx::query(due).execute(pool).await.map(|_| ()),
        _ => unreachable!("a store has a pool"),
    }
    .unwrap();
    let held = "order_lines WHERE next_delivery_at IS NOT NULL OR claimed_by IS NOT NULL";
    assert_eq!(app.count_rows(held).await, 1);
    let mut left = 1;
    for _ in 0..150 {
        left = app.count_rows(held).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the refused line is no longer due nor claimed");
    let o = order(&app, &id).await;
    assert_eq!(o["status"], "not_paid");
    assert_eq!(o["lines"][0]["delivery_status"], "pending");
    assert_eq!(o["lines"][0]["licenses"], json!([]));

    app.post(
        &format!("/api/v1/orders/{id}/payments"),
        json!({"method": "bank_transfer", "amount": o["total"], "currency": "USD"}),
    )
    .await
    .ok();
    let delivered = wait_delivered(&app, &id).await;
    assert_eq!(delivered["lines"][0]["licenses"], json!(["LET-GO-1"]));
}
