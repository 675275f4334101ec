//! Rate limits: a flood of orders, card tries or emails to one address is refused with
//! 429 and `Retry-After` (a page in the customer's language, problem+json in the API),
//! while other visitors, addresses and stores go on. Low limits set for the test.

use kassa_limits::LimitsConfig;
use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::{Options, TestApp};
use crate::pages::{Browser, Page, details, product};

on_both_backends!(
    floods_are_refused_and_others_go_on,
    a_trusted_proxy_names_the_client,
    requests_over_the_in_flight_limit_are_shed
);

/// Opens the buy link of `prd` in `store` and places an order for `email`.
async fn place(b: &Browser, store: &str, prd: &str, email: &str, locale: &str) -> Page {
    let checkout = b
        .open(&format!("/{store}/test/buy/{prd}?locale={locale}"))
        .await;
    assert_eq!(checkout.status, 200, "{}", checkout.html);
    let csrf = checkout.csrf();
    let mut form = details(&csrf, "test_card");
    for (field, value) in &mut form {
        if *field == "email" {
            *value = email;
        }
    }
    b.submit(&checkout, &format!("/{store}/test/checkout"), &form)
        .await
}

#[track_caller]
fn refused(page: &Page, text: &str) {
    assert_eq!(page.status, 429, "{}", page.html);
    let wait: u64 = page.retry_after.as_deref().unwrap().parse().unwrap();
    assert!(wait > 0);
    assert!(page.html.contains(text), "{}", page.html);
}

async fn api_order(app: &TestApp, key: &str, prd: &str) -> crate::harness::Answer {
    app.post_as(
        key,
        "/api/v1/orders",
        json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
               "customer": {"email": "api@example.com", "name": "Api"}, "payment_method": "bank_transfer",
               "consents": {"terms": true, "personal_data": true}}),
    )
    .await
}

async fn floods_are_refused_and_others_go_on(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            limits: LimitsConfig {
                orders_per_ip: "2/1h".into(),
                orders_per_store: "8/1h".into(),
                emails_per_address: "3/1h".into(),
                card_tries_per_order: "2/1h".into(),
                ..LimitsConfig::off()
            },
            ..Options::default()
        },
    )
    .await;
    let prd = product(&app, 1999).await;
    let from = |ip: &str| Browser::from_address(&app, ip);

    // One visitor: two orders, then a page that says to wait.
    let one = from("127.0.0.1");
    for email in ["a1@example.com", "a2@example.com"] {
        assert_eq!(place(&one, "acme", &prd, email, "en").await.status, 303);
    }
    refused(
        &place(&one, "acme", &prd, "a3@example.com", "en").await,
        "Too many attempts",
    );

    // Another visitor orders and tries a card: two tries on one order, then a page in
    // the order's language.
    let two = from("127.0.0.2");
    let placed = place(&two, "acme", &prd, "a4@example.com", "ru").await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let pay_path = placed.location.unwrap();
    let pay = two.get(&pay_path).await;
    let card = [
        ("csrf", pay.csrf()),
        ("card_number", "4000 0000 0000 0002".to_owned()),
        ("expiry", "12/34".to_owned()),
        ("cvc", "123".to_owned()),
    ];
    let card: Vec<(&str, &str)> = card.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        assert_eq!(two.post(&pay_path, &card).await.status, 402);
    }
    refused(&two.post(&pay_path, &card).await, "Слишком много попыток");

    // Visitors from three addresses make Kassa email one address three times; the
    // fourth is refused, another address is not.
    for ip in ["127.0.0.3", "127.0.0.4", "127.0.0.4"] {
        let placed = place(&from(ip), "acme", &prd, "same@example.com", "en").await;
        assert_eq!(placed.status, 303, "{}", placed.html);
    }
    let five = from("127.0.0.5");
    refused(
        &place(&five, "acme", &prd, "same@example.com", "en").await,
        "Too many attempts",
    );
    assert_eq!(
        place(&five, "acme", &prd, "else@example.com", "en")
            .await
            .status,
        303
    );

    // The store has had its eight orders: the API gets 429 problem+json too; another
    // store goes on.
    let full = api_order(&app, &app.key, &prd).await;
    assert_eq!(full.problem(429)["type"], "rate_limited");
    let wait: u64 = full.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0);
    let other_key = app.new_tenant("other").await;
    let pool = app
        .post_as(&other_key, "/api/v1/license-pools", json!({"name": "Main"}))
        .await;
    let theirs = app
        .post_as(
            &other_key,
            "/api/v1/products",
            json!({"name": "Theirs", "prices": [{"currency": "USD", "amount": 500}],
                   "delivery": {"method": "license_pool", "pool_id": pool.ok()["id"]}}),
        )
        .await;
    let theirs = theirs.ok()["id"].as_str().unwrap().to_owned();
    api_order(&app, &other_key, &theirs).await.ok();
    assert_eq!(
        place(&from("127.0.0.6"), "other", &theirs, "a6@example.com", "en")
            .await
            .status,
        303
    );
}

/// Behind a trusted proxy the client is the address the proxy relays, for the per-IP
/// limits and the consent record; a header from anyone else is not believed.
async fn a_trusted_proxy_names_the_client(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            limits: LimitsConfig {
                orders_per_ip: "1/1h".into(),
                ..LimitsConfig::off()
            },
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            ..Options::default()
        },
    )
    .await;
    let prd = product(&app, 1999).await;

    // Through the proxy, two visitors are two: each orders once, then is refused.
    let first = Browser::forwarding(&app, "127.0.0.1", "203.0.113.7");
    assert_eq!(
        place(&first, "acme", &prd, "p1@example.com", "en")
            .await
            .status,
        303
    );
    refused(
        &place(&first, "acme", &prd, "p2@example.com", "en").await,
        "Too many attempts",
    );
    // A client's own claim left of what the proxy appended does not make it another.
    let forged = Browser::forwarding(&app, "127.0.0.1", "198.51.100.9, 203.0.113.7");
    refused(
        &place(&forged, "acme", &prd, "p3@example.com", "en").await,
        "Too many attempts",
    );
    let second = Browser::forwarding(&app, "127.0.0.1", "203.0.113.8");
    assert_eq!(
        place(&second, "acme", &prd, "p4@example.com", "en")
            .await
            .status,
        303
    );

    // The order records the relayed address as the one that consented.
    let orders = app.get("/api/v1/orders").await;
    let ips: Vec<&str> = orders.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["consents"].as_array().unwrap())
        .map(|c| c["ip"].as_str().unwrap())
        .collect();
    assert!(
        ips.contains(&"203.0.113.7") && ips.contains(&"203.0.113.8"),
        "{ips:?}"
    );

    // Not through the proxy, the header is anyone's to write: the peer is the client,
    // whatever it claims.
    let direct = Browser::forwarding(&app, "127.0.0.2", "203.0.113.20");
    assert_eq!(
        place(&direct, "acme", &prd, "p5@example.com", "en")
            .await
            .status,
        303
    );
    let direct = Browser::forwarding(&app, "127.0.0.2", "203.0.113.21");
    refused(
        &place(&direct, "acme", &prd, "p6@example.com", "en").await,
        "Too many attempts",
    );
}

/// A node serving as many requests as it takes at once answers the next one at once
/// with a 503 problem and `Retry-After` (nothing done), keeps answering its health
/// check, and takes requests again once one in flight ends.
async fn requests_over_the_in_flight_limit_are_shed(backend: Backend) {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(
        backend,
        Options {
            max_in_flight: 1,
            ..Options::default()
        },
    )
    .await;
    // An order whose body never finishes arriving: the one request in flight. (Sent
    // again if it was itself shed, while something else of the app was in flight.) A
    // shed request is answered at once; the wait is long enough for a loaded machine
    // not to take a slow 503 for a held request.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"lines\": [",
        app.key
    );
    let mut held = None;
    for _ in 0..50 {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        conn.write_all(head.as_bytes()).await.expect("send");
        let mut answer = [0u8; 64];
        let answered = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut answer)).await;
        if answered.is_err() {
            held = Some(conn);
            break;
        }
    }
    let held = held.expect("an order held in flight");
    let mut shed = None;
    for _ in 0..200 {
        let answer = app.get("/api/v1/products").await;
        if answer.status == 503 {
            shed = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let shed = shed.expect("a request over the limit is shed");
    assert_eq!(shed.problem(503)["type"], "busy", "{}", shed.text);
    assert_eq!(
        shed.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let order = api_order(&app, &app.key, "prd_00000000000000000000000000").await;
    order.problem(503);
    let health = reqwest::get(format!("{}/healthz", app.base))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    drop(held);
    let mut served = false;
    for _ in 0..200 {
        if app.get("/api/v1/products").await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        served,
        "requests are taken again once the one in flight ends"
    );
    let orders = app.get("/api/v1/orders").await;
    assert_eq!(
        orders.ok()["data"],
        json!([]),
        "the shed order was not placed"
    );
}
