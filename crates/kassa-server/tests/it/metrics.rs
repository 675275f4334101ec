//! `/metrics`: closed to scrapes without the operator's token, and counting what
//! happened (an order placed, paid and delivered) in the Prometheus text format.
//! Counters are the whole process's and tests run side by side, so a test compares
//! the figures before and after what it did.

use kassa_testkit::{Backend, on_both_backends};

use crate::fulfillment::{paid_order, wait_delivered};
use crate::harness::{METRICS_TOKEN, TestApp};

on_both_backends!(
    metrics_need_the_operators_token,
    an_order_placed_paid_and_delivered_is_counted,
);

async fn scrape(app: &TestApp) -> String {
    let r = reqwest::Client::new()
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("scraping /metrics");
    assert_eq!(r.status(), 200);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    r.text().await.unwrap()
}

/// The value of the sample `name{labels}` (labels as Prometheus prints them), 0 when
/// it is not there yet.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

async fn metrics_need_the_operators_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let http = reqwest::Client::new();
    let none = http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = http
        .get(app.url("/metrics"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // A merchant's API key is not the operator's token either.
    let key = http
        .get(app.url("/metrics"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 401);
}

async fn an_order_placed_paid_and_delivered_is_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool = app.pool_with_keys(&["MET-1", "MET-2"]).await;
    let product = app.product(&pool).await;
    let product = product["id"].as_str().unwrap();
    let placed = r#"kassa_orders_placed_total{method="bank_transfer"}"#;
    let paid = r#"kassa_orders_paid_total{method="bank_transfer"}"#;
    let delivered = r#"kassa_deliveries_total{method="license_pool",outcome="delivered"}"#;
    let requests = r#"kassa_http_requests_total{route="/api/v1/orders",status="200"}"#;
    let before = scrape(&app).await;

    let id = paid_order(&app, product, 1).await;
    let order = wait_delivered(&app, &id).await;
    assert_eq!(order["delivery_status"], "delivered", "{order}");

    let after = scrape(&app).await;
    for series in [placed, paid, delivered, requests] {
        assert!(
            sample(&after, series) >= sample(&before, series) + 1.0,
            "{series} did not count the order:\n{after}"
        );
    }
    // What the store's pool and queues look like, as gauges.
    assert!(
        after.contains("kassa_db_pool_max_connections{pool="),
        "{after}"
    );
    // Nothing in the figures names a store or an order.
    assert!(!after.contains(&id), "{after}");
    assert!(!after.contains("acme"), "{after}");
}
