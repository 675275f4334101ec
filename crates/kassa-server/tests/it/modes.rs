//! Test and live modes, tried as an attacker and as a merchant would: no sandbox
//! payment of any kind pays a live order, whatever is posted to which URL; a test
//! order never takes a key from a live pool; a test key never sees, reads or changes
//! live orders, pools or events, nor a live key test ones; and the catalog (products,
//! coupons, checkout links) is each world's own: a test key never reads or changes the
//! live catalog, and each checkout sells only its own world's products and coupons.

use std::time::Duration;

use kassa_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::pages::{Browser, details, offer_methods};
use crate::webhooks::Receiver;

on_both_backends!(
    no_sandbox_payment_pays_a_live_order,
    a_test_order_never_takes_a_key_from_a_live_pool,
    each_key_sees_only_its_own_world,
    a_store_sells_in_test_mode_from_its_first_minute,
    a_test_endpoint_never_receives_live_events,
    a_test_key_never_touches_the_live_catalog,
    each_checkout_sells_only_its_own_worlds_catalog,
    a_test_links_offer_never_holds_in_the_live_checkout,
    a_test_key_never_reads_or_changes_the_stores_settings,
    a_test_key_never_sees_or_revokes_a_live_key,
    a_cart_is_used_only_in_the_world_it_was_filled_in,
    a_buy_links_continue_never_takes_the_other_worlds_cart,
    a_test_twin_waits_for_test_stock_and_never_takes_a_live_key,
    the_sandbox_refused_on_a_live_order_is_told_in_the_pages_language,
);

/// A product delivered from a pool of three keys made with `key` (so of its mode).
pub(crate) async fn product_as(app: &TestApp, key: &str) -> (String, String) {
    let pool = app
        .post_as(key, "/api/v1/license-pools", json!({"name": "Keys"}))
        .await;
    let pool = pool.ok()["id"].as_str().unwrap().to_owned();
    app.post_as(
        key,
        &format!("/api/v1/license-pools/{pool}/keys"),
        json!({"keys": ["LIVE-1", "LIVE-2", "LIVE-3"]}),
    )
    .await
    .ok();
    let p = app
        .post_as(
            key,
            "/api/v1/products",
            json!({"name": "Pro", "prices": [{"currency": "USD", "amount": 1999}],
                   "delivery": {"method": "license_pool", "pool_id": pool}}),
        )
        .await;
    (p.ok()["id"].as_str().unwrap().to_owned(), pool)
}

/// Asserts `answer` is the 403 a test key gets for what only a live key may do.
pub(crate) fn live_key_required(answer: &crate::harness::Answer) {
    let problem = answer.problem(403);
    assert_eq!(
        problem["type"]
            .as_str()
            .map(|t| t.ends_with("live_key_required")),
        Some(true),
        "{problem}"
    );
}

/// Gives the live product `prd` a test twin with the same id and fields, as migration
/// 0033 gives every product that existed before it (no key can make one).
async fn test_twin(app: &TestApp, prd: &str) {
    let twin = sqlx::AssertSqlSafe(format!(
        "INSERT INTO products (tenant_id, livemode, id, name, description, prices, delivery,
         active, created_at, updated_at)
         SELECT tenant_id, NOT livemode, id, name, description, prices, delivery, active,
         created_at, updated_at FROM products WHERE id = '{prd}'"
    ));
    match (app.store.sqlite_pool(), app.store.pg_pool()) {
        (Some(pool), _) => sqlx::query(twin).execute(pool).await.map(|_| ()),
        (_, Some(pool)) => sqlx::query(twin).execute(pool).await.map(|_| ()),
        _ => unreachable!("a store has a pool"),
    }
    .expect("a test twin, as 0033 makes them");
}

async fn available(app: &TestApp, key: &str, pool: &str) -> Value {
    app.get_as(key, &format!("/api/v1/license-pools/{pool}"))
        .await
        .ok()["available"]
        .clone()
}

/// The order `id` as `key` sees it, once `done` holds (or after 30 s).
pub(crate) async fn order_once(
    app: &TestApp,
    key: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut order = Value::Null;
    for _ in 0..300 {
        order = app
            .get_as(key, &format!("/api/v1/orders/{id}"))
            .await
            .ok()
            .clone();
        if done(&order) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    order
}

/// The newest order `key` sees.
async fn newest_order(app: &TestApp, key: &str) -> String {
    let listed = app.get_as(key, "/api/v1/orders").await;
    listed.ok()["data"][0]["id"].as_str().unwrap().to_owned()
}

/// The workflow's refusals are told next to the field in the page's language: the
/// sandbox posted to a Russian live checkout, and to its order's pay form, is refused
/// in Russian (it was in English on every locale).
async fn the_sandbox_refused_on_a_live_order_is_told_in_the_pages_language(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, _) = product_as(&app, &app.live_key).await;
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/buy/{prd}?locale=ru")).await;
    assert!(page.html.contains("Способ оплаты"), "{}", page.html);
    let refused = b
        .submit(&page, "/acme/checkout", &details(&page.csrf(), "test_card"))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.html);
    assert_eq!(
        refused.error("payment_method").as_deref(),
        Some("Карта — способ тестового режима, им нельзя оплатить настоящий заказ"),
        "{}",
        refused.html
    );
    let placed = b
        .submit(
            &refused,
            "/acme/checkout",
            &details(&refused.csrf(), "bank_transfer"),
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let pay_path = placed.location.unwrap();
    let attack = b.pay_by_card(&pay_path, "4242 4242 4242 4242").await;
    assert_eq!(attack.status, 422, "{}", attack.html);
    assert_eq!(
        attack.error("payment_method").as_deref(),
        Some("Карта — способ тестового режима, им нельзя оплатить настоящий заказ"),
        "{}",
        attack.html
    );
    let pay = b.get(&pay_path).await;
    let nonsense = b
        .post(
            &pay_path.replace("/pay", "/method"),
            &[("csrf", &pay.csrf()), ("payment_method", "cash")],
        )
        .await;
    assert_eq!(
        nonsense.error("payment_method").as_deref(),
        Some("выберите один из способов оплаты"),
        "{}",
        nonsense.html
    );
    // The API keeps its English problem+json.
    let placed = app
        .post_as(
            &app.live_key,
            "/api/v1/orders",
            json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "x@example.com"}, "payment_method": "test_card",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let problem = placed.problem(422);
    assert!(
        problem
            .to_string()
            .contains("test_card is a test mode method and cannot pay a live order"),
        "{problem}"
    );
}

/// The attack and its variants, on the live checkout of a store that offers
/// every method (the default) and of one that offers only bank transfer.
async fn no_sandbox_payment_pays_a_live_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, pool) = product_as(&app, &app.live_key).await;
    // A store that offers only the sandbox takes no live payment, and its live
    // checkout says so instead of showing an empty choice.
    offer_methods(&app, &["test_card".to_owned()]).await;
    let page = Browser::new(&app).open(&format!("/acme/buy/{prd}")).await;
    assert!(
        page.html.contains("data-testid=\"no-methods\""),
        "{}",
        page.html
    );
    assert!(!page.html.contains("name=\"payment_method\""));
    for offered in [vec![], vec!["bank_transfer".to_owned()]] {
        offer_methods(&app, &offered).await;
        let b = Browser::new(&app);
        let page = b.open(&format!("/acme/buy/{prd}")).await;
        assert_eq!(page.status, 200);
        assert!(
            !page.html.contains("value=\"test_card\""),
            "the live checkout offers no sandbox card ({offered:?})"
        );
        // The sandbox posted to the live checkout: refused next to the method.
        let refused = b
            .submit(&page, "/acme/checkout", &details(&page.csrf(), "test_card"))
            .await;
        assert_eq!(refused.status, 422, "{}", refused.html);
        assert!(
            refused
                .error("payment_method")
                .is_some_and(|e| !e.is_empty()),
            "{}",
            refused.html
        );
        let placed = b
            .submit(
                &refused,
                "/acme/checkout",
                &details(&refused.csrf(), "bank_transfer"),
            )
            .await;
        assert_eq!(placed.status, 303, "{}", placed.html);
        let pay_path = placed.location.unwrap();
        let pay = b.get(&pay_path).await;
        assert!(!pay.html.contains("value=\"test_card\""));
        // The test card posted to the live order's pay form.
        let attack = b.pay_by_card(&pay_path, "4242 4242 4242 4242").await;
        assert_eq!(attack.status, 422, "{}", attack.html);
        assert!(
            attack
                .error("payment_method")
                .is_some_and(|e| e.contains("test mode")),
            "{}",
            attack.html
        );
        // Switching the live order to the sandbox, then paying.
        let switch = b
            .post(
                &pay_path.replace("/pay", "/method"),
                &[("csrf", &pay.csrf()), ("payment_method", "test_card")],
            )
            .await;
        assert_eq!(switch.status, 422, "{}", switch.html);
        assert!(switch.error("payment_method").is_some(), "{}", switch.html);
        b.pay_by_card(&pay_path, "4242424242424242").await;
        // The same order through its test mode twin URL: there is none; the order
        // pages are the order's, whatever path the form is posted to.
        let twin = pay_path.replacen("/acme/", "/acme/test/", 1);
        let csrf = b.get(&pay_path).await.csrf();
        let card = [
            ("csrf", csrf.as_str()),
            ("card_number", "4242 4242 4242 4242"),
            ("expiry", "12/34"),
            ("cvc", "123"),
        ];
        let forged = b.post(&twin, &card).await;
        assert_eq!(forged.status, 404);

        let order = b.open(pay_path.trim_end_matches("/pay")).await;
        assert!(
            order
                .html
                .contains("data-testid=\"order-status\">Not paid<"),
            "{offered:?}"
        );
        let listed = app.get_as(&app.live_key, "/api/v1/orders").await;
        let o = &listed.ok()["data"][0];
        assert_eq!(o["livemode"], true);
        assert_eq!(o["status"], "not_paid");
        assert_eq!(o["payments"], json!([]), "no attempt recorded");
    }
    // The API, with the live key: no order placed for the sandbox, no sandbox payment
    // recorded.
    let placed = app
        .post_as(
            &app.live_key,
            "/api/v1/orders",
            json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "x@example.com"}, "payment_method": "test_card",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    placed.problem(422);
    assert_eq!(placed.invalid_fields(), ["payment_method"]);
    let id = newest_order(&app, &app.live_key).await;
    let recorded = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/orders/{id}/payments"),
            json!({"method": "test_card", "amount": 3998, "currency": "USD"}),
        )
        .await;
    recorded.problem(422);
    assert_eq!(recorded.invalid_fields(), ["method"]);
    // A test key cannot record anything for it either: it does not see it.
    let from_test = app
        .post(
            &format!("/api/v1/orders/{id}/payments"),
            json!({"method": "bank_transfer", "amount": 3998, "currency": "USD"}),
        )
        .await;
    from_test.problem(404);
    assert_eq!(
        available(&app, &app.live_key, &pool).await,
        3,
        "no key left the pool"
    );
    // Money received by transfer still pays the live order.
    let paid = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/orders/{id}/payments"),
            json!({"method": "bank_transfer", "amount": 3998, "currency": "USD"}),
        )
        .await;
    assert_eq!(paid.ok()["status"], "paid");
    assert_eq!(paid.ok()["livemode"], true);
}

/// A test product whose pool is live (a test twin migration 0033 made of a product
/// delivered from a live pool; no key can make one), bought through the test link and
/// paid with the sandbox: the order is a paid test order, its line fails with the
/// reason, and the live pool keeps every key.
async fn a_test_order_never_takes_a_key_from_a_live_pool(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, pool) = product_as(&app, &app.live_key).await;
    test_twin(&app, &prd).await;
    let b = Browser::new(&app);
    let link = format!("/acme/test/buy/{prd}");
    let pay_path = b.place(&link, "/acme/test/checkout", "test_card").await;
    let paid = b.pay_by_card(&pay_path, "4242 4242 4242 4242").await;
    assert_eq!(paid.status, 303, "{}", paid.html);
    let id = newest_order(&app, &app.key).await;
    let order = order_once(&app, &app.key, &id, |o| {
        o["lines"][0]["delivery_status"] == "failed"
    })
    .await;
    assert_eq!(order["livemode"], false);
    assert_eq!(order["status"], "paid");
    assert_eq!(order["lines"][0]["delivery_status"], "failed", "{order}");
    assert_eq!(order["lines"][0]["licenses"], json!([]));
    assert_eq!(available(&app, &app.live_key, &pool).await, 3);
}

async fn each_key_sees_only_its_own_world(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert!(app.key.starts_with("kassa_sk_test_"));
    assert!(app.live_key.starts_with("kassa_sk_live_"));
    let (prd, test_pool) = product_as(&app, &app.key).await;
    let (live_prd, _) = product_as(&app, &app.live_key).await;
    let order = |prd: &str, method: &str| {
        json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
               "customer": {"email": "x@example.com"}, "payment_method": method,
               "consents": {"terms": true, "personal_data": true}})
    };
    let test = app.post("/api/v1/orders", order(&prd, "test_card")).await;
    let test = test.ok().clone();
    assert_eq!(
        (test["livemode"].clone(), test["test_mode"].clone()),
        (json!(false), json!(true))
    );
    let live = app
        .post_as(
            &app.live_key,
            "/api/v1/orders",
            order(&live_prd, "bank_transfer"),
        )
        .await;
    let live = live.ok().clone();
    assert_eq!(live["livemode"], true);
    let (test_id, live_id) = (test["id"].as_str().unwrap(), live["id"].as_str().unwrap());

    for (key, mine, other) in [
        (&app.key, test_id, live_id),
        (&app.live_key, live_id, test_id),
    ] {
        let listed = app.get_as(key, "/api/v1/orders").await;
        let ids: Vec<&str> = listed.ok()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [mine]);
        app.get_as(key, &format!("/api/v1/orders/{other}"))
            .await
            .problem(404);
        app.get_as(key, &format!("/api/v1/orders/{other}/events"))
            .await
            .problem(404);
        app.post_as(
            key,
            &format!("/api/v1/orders/{other}/resend-licenses"),
            json!({}),
        )
        .await
        .problem(404);
        // Payments and refunds of the other world's order: not found, nothing done.
        app.post_as(
            key,
            &format!("/api/v1/orders/{other}/payments"),
            json!({"method": "bank_transfer", "amount": 1999, "currency": "USD"}),
        )
        .await
        .problem(404);
        app.post_as(key, &format!("/api/v1/orders/{other}/refunds"), json!({}))
            .await
            .problem(404);
        app.get_as(key, &format!("/api/v1/orders/{other}/refunds"))
            .await
            .problem(404);
        let events = app.get_as(key, "/api/v1/events").await;
        let events = events.ok()["data"].as_array().unwrap().clone();
        assert!(!events.is_empty());
        for e in &events {
            assert_eq!(e["payload"]["livemode"], json!(key == &app.live_key), "{e}");
            assert_eq!(e["payload"]["data"]["order"]["id"], mine, "{e}");
        }
        let other_event = app
            .get_as(
                if key == &app.key {
                    &app.live_key
                } else {
                    &app.key
                },
                "/api/v1/events",
            )
            .await;
        let other_event = other_event.ok()["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.get_as(key, &format!("/api/v1/events/{other_event}"))
            .await
            .problem(404);
    }
    // Pools: a test key's pool is a test pool, unseen by the live key.
    let pools = app.get_as(&app.live_key, "/api/v1/license-pools").await;
    let pools = pools.ok()["data"].as_array().unwrap().clone();
    assert_eq!(pools.len(), 1, "the live key's own");
    assert!(pools.iter().all(|p| p["id"] != test_pool.as_str()));
    app.get_as(&app.live_key, &format!("/api/v1/license-pools/{test_pool}"))
        .await
        .problem(404);
    let pool = app.get(&format!("/api/v1/license-pools/{test_pool}")).await;
    assert_eq!(pool.ok()["livemode"], false);
    // Keys a key makes are of its own world.
    let made = app
        .post_as(&app.live_key, "/api/v1/api-keys", json!({"name": "CI"}))
        .await;
    assert!(
        made.ok()["api_key"]
            .as_str()
            .unwrap()
            .starts_with("kassa_sk_live_")
    );
    assert_eq!(made.ok()["livemode"], true);
    // A test key's buy links open the test checkout, a live key's the live one; and
    // each key's products are its own.
    let product = app.get(&format!("/api/v1/products/{prd}")).await;
    assert!(
        product.ok()["buy_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/acme/test/buy/{prd}"))
    );
    assert_eq!(product.ok()["livemode"], false);
    let product = app
        .get_as(&app.live_key, &format!("/api/v1/products/{live_prd}"))
        .await;
    assert!(
        product.ok()["buy_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/acme/buy/{live_prd}"))
    );
    app.get_as(&app.live_key, &format!("/api/v1/products/{prd}"))
        .await
        .problem(404);
}

/// A new store, nothing configured: its test key's pool, product and buy link sell
/// with the sandbox card and deliver a key at once.
async fn a_store_sells_in_test_mode_from_its_first_minute(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (test_key, _) = app.new_tenant_keys("fresh").await;
    let (prd, _) = product_as(&app, &test_key).await;
    let product = app
        .get_as(&test_key, &format!("/api/v1/products/{prd}"))
        .await;
    let buy_url = product.ok()["buy_url"].as_str().unwrap().to_owned();
    let path = buy_url.strip_prefix(&app.base).unwrap().to_owned();
    let b = Browser::new(&app);
    // Every page of the test checkout says it is test mode.
    let banner = "data-testid=\"test-mode\"";
    let checkout = b.open(&path).await;
    assert!(checkout.html.contains(banner), "{}", checkout.html);
    let pay_path = b.place(&path, "/fresh/test/checkout", "test_card").await;
    assert!(b.get(&pay_path).await.html.contains(banner));
    let paid = b.pay_by_card(&pay_path, "4242 4242 4242 4242").await;
    assert_eq!(paid.status, 303);
    let order_page = b.get(paid.location.as_deref().unwrap()).await;
    assert!(order_page.html.contains(banner), "{}", order_page.html);
    let live_key = app.new_tenant_keys("other").await.1;
    let (live_prd, _) = product_as(&app, &live_key).await;
    let live = b.open(&format!("/other/buy/{live_prd}")).await;
    assert_eq!(live.status, 200, "{}", live.html);
    assert!(
        !live.html.contains(banner),
        "the live checkout says nothing of it"
    );
    let id = newest_order(&app, &test_key).await;
    let order = order_once(&app, &test_key, &id, |o| {
        o["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(order["delivery_status"], "delivered", "{order}");
    assert_eq!(order["livemode"], false);
    assert_eq!(
        order["lines"][0]["licenses"].as_array().unwrap().len(),
        2,
        "quantity 2"
    );
}

/// A webhook endpoint made with `key` (so of its mode), with a receiver checking its
/// signatures.
async fn endpoint_as(app: &TestApp, key: &str) -> (String, Receiver) {
    let made = app
        .post_as(
            key,
            "/api/v1/webhook-endpoints",
            json!({"url": "https://placeholder.example/hook", "disabled": true}),
        )
        .await;
    let made = made.ok().clone();
    let receiver = Receiver::start(made["secret"].as_str().unwrap(), "", 0.0);
    let id = made["id"].as_str().unwrap().to_owned();
    app.patch_as(
        key,
        &format!("/api/v1/webhook-endpoints/{id}"),
        json!({"url": receiver.url, "disabled": false}),
    )
    .await
    .ok();
    (id, receiver)
}

/// The attack of issue 12: an endpoint made with a test key (a developer's laptop,
/// a staging server) must not receive live orders, with their customers and license
/// keys. Each endpoint gets only its own mode's events, and a key reaches only its
/// own mode's endpoints, deliveries and emails.
async fn a_test_endpoint_never_receives_live_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (test_ep, test_hook) = endpoint_as(&app, &app.key).await;
    let (live_ep, live_hook) = endpoint_as(&app, &app.live_key).await;

    // A live order, paid and delivered from a live pool.
    let (live_prd, _) = product_as(&app, &app.live_key).await;
    let placed = app
        .post_as(
            &app.live_key,
            "/api/v1/orders",
            json!({"lines": [{"product_id": live_prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "live-buyer@example.com", "name": "Live Buyer"},
                   "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let live_order = placed.ok()["id"].as_str().unwrap().to_owned();
    app.post_as(
        &app.live_key,
        &format!("/api/v1/orders/{live_order}/payments"),
        json!({"method": "bank_transfer", "amount": 1999, "currency": "USD"}),
    )
    .await
    .ok();
    // order.created, payment.succeeded, product.delivered, order.delivered.
    let live_got = live_hook.wait_for(4).await;
    assert_eq!(live_got.len(), 4, "{live_got:?}");
    assert!(live_got.iter().all(|r| r["verified"] == true
        && r["event"]["livemode"] == true
        && r["event"]["data"]["order"]["id"] == live_order.as_str()));

    // A test order afterwards: the test endpoint gets it, and nothing else.
    let (test_prd, _) = product_as(&app, &app.key).await;
    let placed = app
        .post(
            "/api/v1/orders",
            json!({"lines": [{"product_id": test_prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "test-buyer@example.com"},
                   "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let test_order = placed.ok()["id"].as_str().unwrap().to_owned();
    test_hook.wait_for(1).await;
    // Room for anything sent wrongly to arrive (it would have been queued with the
    // live endpoint's deliveries, which all arrived).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let test_got = test_hook.received();
    let seen: Vec<(&Value, &Value)> = test_got
        .iter()
        .map(|r| (&r["type"], &r["event"]["data"]["order"]["id"]))
        .collect();
    assert_eq!(
        seen,
        [(&json!("order.created"), &json!(test_order))],
        "the test endpoint receives only the test order's event"
    );
    assert!(
        !test_hook
            .received()
            .iter()
            .any(|r| r.to_string().contains("live-buyer@")),
        "no live customer reaches the test endpoint"
    );
    assert_eq!(
        live_hook.received().len(),
        4,
        "nor does the test order go live"
    );
    let endpoint = app
        .get(&format!("/api/v1/webhook-endpoints/{test_ep}"))
        .await;
    assert_eq!(endpoint.ok()["livemode"], false);

    // Each key sees only its own mode's endpoints; the other's is a 404 everywhere.
    for (key, mine, other) in [
        (&app.key, &test_ep, &live_ep),
        (&app.live_key, &live_ep, &test_ep),
    ] {
        let listed = app.get_as(key, "/api/v1/webhook-endpoints").await;
        let ids: Vec<&str> = listed.ok()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [mine.as_str()]);
        let path = format!("/api/v1/webhook-endpoints/{other}");
        app.get_as(key, &path).await.problem(404);
        app.patch_as(key, &path, json!({"url": "https://attacker.example/hook"}))
            .await
            .problem(404);
        app.post_as(key, &format!("{path}/rotate-secret"), json!({}))
            .await
            .problem(404);
        app.get_as(key, &format!("{path}/deliveries"))
            .await
            .problem(404);
        app.delete_as(key, &path).await.problem(404);
    }
    // The test endpoint's log holds only test events, and a live event cannot be
    // sent to it (nor a test event to the live endpoint).
    let log = app
        .get(&format!("/api/v1/webhook-endpoints/{test_ep}/deliveries"))
        .await;
    let log = log.ok()["data"].as_array().unwrap().clone();
    assert_eq!(log.len(), 1, "{log:?}");
    let live_events = app.get_as(&app.live_key, "/api/v1/events").await;
    let live_event = live_events.ok()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let test_events = app.get("/api/v1/events").await;
    let test_event = test_events.ok()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/v1/webhook-endpoints/{test_ep}/redeliver"),
        json!({"event_id": live_event}),
    )
    .await
    .problem(404);
    app.post_as(
        &app.live_key,
        &format!("/api/v1/webhook-endpoints/{live_ep}/redeliver"),
        json!({"event_id": test_event}),
    )
    .await
    .problem(404);
    app.post(
        &format!("/api/v1/webhook-endpoints/{test_ep}/redeliver"),
        json!({"event_id": test_event}),
    )
    .await
    .ok();
    // The live endpoint is untouched by all of the above.
    let live = app
        .get_as(
            &app.live_key,
            &format!("/api/v1/webhook-endpoints/{live_ep}"),
        )
        .await;
    assert_eq!(live.ok()["url"], live_hook.url.as_str());

    // Emails: the live customer's (payment instructions, receipt, licenses) are not
    // the test key's to read.
    let emails = app.get("/api/v1/emails").await;
    let emails = emails.ok()["data"].as_array().unwrap().clone();
    assert!(
        emails.iter().all(|e| e["order_id"] != live_order.as_str()),
        "{emails:?}"
    );
    assert!(emails.iter().any(|e| e["order_id"] == test_order.as_str()));
    let emails = app.get_as(&app.live_key, "/api/v1/emails").await;
    let emails = emails.ok()["data"].as_array().unwrap().clone();
    assert!(emails.iter().any(|e| e["order_id"] == live_order.as_str()));
    assert!(emails.iter().all(|e| e["order_id"] != test_order.as_str()));
}

/// The attack: a test key (given to a contractor, say) used to read and change the
/// live catalog, prices included. Every way in is now a 404, as another store's
/// objects are, the live world is untouched, and the live checkout shows the live
/// price and takes no coupon made with the test key.
async fn a_test_key_never_touches_the_live_catalog(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let live = &app.live_key;
    let (prd, _) = product_as(&app, live).await;
    let coupon = app
        .post_as(
            live,
            "/api/v1/coupons",
            json!({"code": "LIVE10", "percent_off": 10}),
        )
        .await;
    let coupon = coupon.ok()["id"].as_str().unwrap().to_owned();
    let link = app
        .post_as(
            live,
            "/api/v1/checkout-links",
            json!({"product_id": prd, "quantity": 2}),
        )
        .await;
    assert_eq!(link.ok()["livemode"], true);
    let link = link.ok()["id"].as_str().unwrap().to_owned();

    // Reading the live catalog with the test key.
    for path in [
        "/api/v1/products",
        "/api/v1/coupons",
        "/api/v1/checkout-links",
    ] {
        assert_eq!(app.get(path).await.ok()["data"], json!([]), "{path}");
    }
    let product_path = format!("/api/v1/products/{prd}");
    let coupon_path = format!("/api/v1/coupons/{coupon}");
    let link_path = format!("/api/v1/checkout-links/{link}");
    for path in [&product_path, &coupon_path, &link_path] {
        app.get(path).await.problem(404);
    }
    // Changing it: the price, deactivating, the coupon, deleting the link.
    app.patch_as(
        &app.key,
        &product_path,
        json!({"prices": [{"currency": "USD", "amount": 1}]}),
    )
    .await
    .problem(404);
    app.patch_as(&app.key, &product_path, json!({"active": false}))
        .await
        .problem(404);
    app.patch_as(&app.key, &coupon_path, json!({"active": false}))
        .await
        .problem(404);
    app.delete_as(&app.key, &link_path).await.problem(404);
    // Making what the live checkout would honour: a coupon for the live product, a
    // checkout link to it with a price of its own.
    let scoped = app
        .post(
            "/api/v1/coupons",
            json!({"code": "ALLFREE", "percent_off": 100, "product_ids": [prd]}),
        )
        .await;
    assert_eq!(scoped.invalid_fields(), ["product_ids[0]"]);
    let linked = app
        .post(
            "/api/v1/checkout-links",
            json!({"product_id": prd, "price": 1, "currency": "USD"}),
        )
        .await;
    assert_eq!(linked.invalid_fields(), ["product_id"]);
    let free = app
        .post(
            "/api/v1/coupons",
            json!({"code": "ALLFREE", "percent_off": 100}),
        )
        .await;
    assert_eq!(free.ok()["livemode"], false);
    // A code is unique per world: the live one's code is free in test mode.
    let same = app
        .post(
            "/api/v1/coupons",
            json!({"code": "LIVE10", "percent_off": 50}),
        )
        .await;
    assert_eq!(same.ok()["livemode"], false);

    // The live world is as the live key left it.
    let product = app.get_as(live, &product_path).await;
    let product = product.ok();
    assert_eq!(
        product["prices"],
        json!([{"currency": "USD", "amount": 1999}])
    );
    assert_eq!(
        (&product["active"], &product["livemode"]),
        (&json!(true), &json!(true))
    );
    let live_coupon = app.get_as(live, &coupon_path).await;
    assert_eq!(live_coupon.ok()["active"], true);
    assert_eq!(live_coupon.ok()["percent_off"], 10);
    app.get_as(live, &link_path).await.ok();
    let coupons = app.get_as(live, "/api/v1/coupons").await;
    assert_eq!(coupons.ok()["data"].as_array().unwrap().len(), 1);

    // The live checkout: the live price, the test key's coupon unknown, its own one
    // taken.
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/buy/{prd}?coupon=ALLFREE")).await;
    assert!(page.html.contains("19.99 USD"), "{}", page.html);
    assert!(
        page.error("coupon")
            .is_some_and(|e| e.contains("does not exist")),
        "{}",
        page.html
    );
    let page = Browser::new(&app)
        .open(&format!("/acme/buy/{prd}?coupon=LIVE10"))
        .await;
    assert!(page.error("coupon").is_none(), "{}", page.html);
    assert!(page.html.contains("17.99 USD"), "10 % off: {}", page.html);
}

/// The test checkout sells only test products with test coupons, the live checkout
/// only live ones; an order placed through the API takes only its key's products; and
/// a product is delivered only from a pool of its own mode.
async fn each_checkout_sells_only_its_own_worlds_catalog(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (live_prd, live_pool) = product_as(&app, &app.live_key).await;
    let (test_prd, test_pool) = product_as(&app, &app.key).await;
    for (path, prd) in [
        (format!("/acme/test/buy/{live_prd}"), &live_prd),
        (format!("/acme/buy/{test_prd}"), &test_prd),
    ] {
        let page = Browser::new(&app).get(&path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.html.contains("not available"), "{prd}");
    }
    for (path, prd) in [
        (format!("/acme/test/buy/{test_prd}"), &test_prd),
        (format!("/acme/buy/{live_prd}"), &live_prd),
    ] {
        let page = Browser::new(&app).open(&path).await;
        assert_eq!(page.status, 200, "{path} {prd}");
        assert!(page.html.contains("19.99 USD"));
    }
    // A test coupon is no coupon in the live checkout, nor a live one in the test one.
    app.post(
        "/api/v1/coupons",
        json!({"code": "TESTONLY", "percent_off": 50}),
    )
    .await
    .ok();
    app.post_as(
        &app.live_key,
        "/api/v1/coupons",
        json!({"code": "LIVEONLY", "percent_off": 50}),
    )
    .await
    .ok();
    for (path, code) in [
        (format!("/acme/buy/{live_prd}"), "TESTONLY"),
        (format!("/acme/test/buy/{test_prd}"), "LIVEONLY"),
    ] {
        let page = Browser::new(&app)
            .open(&format!("{path}?coupon={code}"))
            .await;
        assert!(
            page.error("coupon")
                .is_some_and(|e| e.contains("does not exist")),
            "{path} {code}: {}",
            page.html
        );
    }
    // The API places an order only of its key's products and coupons.
    let order = |prd: &str, coupon: Option<&str>| {
        json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
               "coupon": coupon, "customer": {"email": "x@example.com"},
               "payment_method": "bank_transfer",
               "consents": {"terms": true, "personal_data": true}})
    };
    let placed = app.post("/api/v1/orders", order(&live_prd, None)).await;
    assert_eq!(placed.invalid_fields(), ["lines[0].product_id"]);
    let placed = app
        .post_as(&app.live_key, "/api/v1/orders", order(&test_prd, None))
        .await;
    assert_eq!(placed.invalid_fields(), ["lines[0].product_id"]);
    let placed = app
        .post_as(
            &app.live_key,
            "/api/v1/orders",
            order(&live_prd, Some("TESTONLY")),
        )
        .await;
    assert_eq!(placed.invalid_fields(), ["coupon"]);
    let placed = app
        .post_as(
            &app.live_key,
            "/api/v1/orders",
            order(&live_prd, Some("LIVEONLY")),
        )
        .await;
    assert_eq!(placed.ok()["total"], 999, "half of 19.99 off");
    // A product of one mode is delivered only from a pool of that mode.
    for (key, pool, mode) in [
        (&app.key, &live_pool, "live"),
        (&app.live_key, &test_pool, "test"),
    ] {
        let made = app
            .post_as(
                key,
                "/api/v1/products",
                json!({"name": "Mixed", "prices": [{"currency": "USD", "amount": 100}],
                       "delivery": {"method": "license_pool", "pool_id": pool}}),
            )
            .await;
        assert_eq!(made.invalid_fields(), ["delivery.pool_id"]);
        let message = made.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{mode} mode")), "{message}");
    }
    let moved = app
        .patch_as(
            &app.key,
            &format!("/api/v1/products/{test_prd}"),
            json!({"delivery": {"method": "license_pool", "pool_id": live_pool}}),
        )
        .await;
    assert_eq!(moved.invalid_fields(), ["delivery.pool_id"]);
}

/// A live product with a test twin (as 0033 makes them), and the path of a checkout
/// link the test key signs for the twin with a price of 0.01 USD.
async fn twin_with_a_test_link(app: &TestApp) -> (String, String) {
    let (prd, _) = product_as(app, &app.live_key).await;
    test_twin(app, &prd).await;
    let link = app
        .post(
            "/api/v1/checkout-links",
            json!({"product_id": prd, "price": 1, "currency": "USD"}),
        )
        .await;
    let url = link.ok()["url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(&app.base).unwrap().to_owned();
    (prd, path)
}

/// A product made before 0033 has a test twin with its id. A checkout link the test
/// key signs for the twin (a price of 0.01) opens the test checkout; rewritten to the
/// live checkout's path, where the live product has the same id, it is refused.
async fn a_test_links_offer_never_holds_in_the_live_checkout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, path) = twin_with_a_test_link(&app).await;
    assert!(path.starts_with("/acme/test/buy/"), "{path}");
    let page = Browser::new(&app).open(&path).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("0.01 USD"), "{}", page.html);
    let live = path.replacen("/acme/test/", "/acme/", 1);
    let page = Browser::new(&app).open(&live).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(!page.html.contains("0.01 USD"));
    // The live product's own buy link still sells at its price.
    let page = Browser::new(&app).open(&format!("/acme/buy/{prd}")).await;
    assert!(page.html.contains("19.99 USD"));
}

/// The store's settings and signing secrets serve both modes: a test key (one given to
/// a contractor) that could change them would reach live mode: the live Stripe account
/// live card payments go to, the bank account live customers are told to pay, the
/// secret live links are signed with. Every `/settings` request with a test key is a
/// 403 and changes nothing; the live key does them all.
async fn a_test_key_never_reads_or_changes_the_stores_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let test = &app.key;
    let live = &app.live_key;
    let before = app.get_as(live, "/api/v1/settings").await.ok().clone();
    let secret = before["link_signing_secret"].as_str().unwrap().to_owned();

    let refused = |answer: crate::harness::Answer| {
        live_key_required(&answer);
        assert!(
            !answer.body.to_string().contains(&secret),
            "no secret in the answer"
        );
    };
    refused(app.get_as(test, "/api/v1/settings").await);
    refused(
        app.patch_as(
            test,
            "/api/v1/settings",
            json!({"payment_methods": ["bank_transfer"],
                   "bank": {"account_holder": "Mallory", "bank_name": "Other Bank",
                            "iban": "GB33BUKB20201555555555", "bic": "BUKBGB22"}}),
        )
        .await,
    );
    let stripe_live = json!({"secret_key": "sk_live_mallory000000000000", "publishable_key": "pk_live_mallory000000000000", "webhook_secret": "whsec_mallory"});
    refused(
        app.send(
            app.request(reqwest::Method::PUT, test, "/api/v1/settings/stripe/live")
                .json(&stripe_live),
        )
        .await,
    );
    refused(app.delete_as(test, "/api/v1/settings/stripe/test").await);
    refused(
        app.post_as(
            test,
            "/api/v1/settings/link-signing-secret/rotate",
            json!({}),
        )
        .await,
    );
    refused(
        app.post_as(
            test,
            "/api/v1/settings/web-service-signing-secret/rotate",
            json!({}),
        )
        .await,
    );
    let after = app.get_as(live, "/api/v1/settings").await.ok().clone();
    assert_eq!(after, before, "nothing changed");

    // The live key does what the test key could not.
    let bank = app
        .patch_as(
            live,
            "/api/v1/settings",
            json!({"bank": {"account_holder": "Acme Ltd", "bank_name": "First Bank",
                            "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}}),
        )
        .await;
    assert_eq!(bank.ok()["bank"]["account_holder"], "Acme Ltd");
    let rotated = app
        .post_as(
            live,
            "/api/v1/settings/link-signing-secret/rotate",
            json!({}),
        )
        .await;
    assert_ne!(rotated.ok()["link_signing_secret"], secret.as_str());
}

/// The attack: a test key listed every key of the store and revoked any, so a
/// contractor's test key could cut the live shop off the API by revoking its live
/// key. Keys are each world's own, like the rest: a test key lists and revokes only
/// test keys, and a live key's id is a 404 to it.
async fn a_test_key_never_sees_or_revokes_a_live_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (test, live) = (&app.key, &app.live_key);
    let listed = app.get_as(live, "/api/v1/api-keys").await;
    let live_keys = listed.ok()["data"].as_array().unwrap().clone();
    assert_eq!(live_keys.len(), 1, "{}", listed.text);
    assert_eq!(live_keys[0]["livemode"], true);
    let live_id = live_keys[0]["id"].as_str().unwrap().to_owned();

    let seen = app.get_as(test, "/api/v1/api-keys").await;
    let seen = seen.ok()["data"].as_array().unwrap().clone();
    assert_eq!(seen.len(), 1, "only the test key itself: {seen:?}");
    assert_eq!(seen[0]["livemode"], false);
    app.delete_as(test, &format!("/api/v1/api-keys/{live_id}"))
        .await
        .problem(404);
    app.get_as(live, "/api/v1/products").await.ok();

    // Each key revokes its own world's keys.
    let made = app
        .post_as(test, "/api/v1/api-keys", json!({"name": "CI"}))
        .await;
    let made_id = made.ok()["id"].as_str().unwrap().to_owned();
    app.delete_as(live, &format!("/api/v1/api-keys/{made_id}"))
        .await
        .problem(404);
    app.delete_as(test, &format!("/api/v1/api-keys/{made_id}"))
        .await
        .ok();
}

/// The cookie `name` the browser whose cookies are `jar` sends to `app`'s `path`.
fn cookie(app: &TestApp, jar: &reqwest::cookie::Jar, path: &str, name: &str) -> String {
    use reqwest::cookie::CookieStore;
    let url = format!("{}{path}", app.base).parse().unwrap();
    let header = jar.cookies(&url).expect("cookies");
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// A cart belongs to the world it was filled in. The attack: a customer fills a cart
/// on the test checkout with a signed test link's price (0.01 for a product whose live
/// twin costs 19.99), then gives their live cart cookie that cart's token and submits
/// the live checkout; and the reverse, a live cart on the test checkout. The cart of
/// the other world is no cart there: the page shows an empty cart, Continue places
/// nothing, and the cart still serves its own world.
async fn a_cart_is_used_only_in_the_world_it_was_filled_in(backend: Backend) {
    use std::sync::Arc;
    let app = TestApp::spawn(backend).await;
    let (prd, test_link) = twin_with_a_test_link(&app).await;
    let live_link = format!("/acme/buy/{prd}");
    let orders = |key: String| {
        let app = &app;
        async move {
            let listed = app.get_as(&key, "/api/v1/orders").await;
            listed.ok()["data"].as_array().unwrap().len()
        }
    };

    for (fill, fill_checkout, fill_cookie, price, other_checkout, other_cookie, other_key) in [
        (
            &test_link,
            "/acme/test/checkout",
            "kassa_cart_test",
            "0.01 USD",
            "/acme/checkout",
            "kassa_cart",
            app.live_key.clone(),
        ),
        (
            &live_link,
            "/acme/checkout",
            "kassa_cart",
            "19.99 USD",
            "/acme/test/checkout",
            "kassa_cart_test",
            app.key.clone(),
        ),
    ] {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let b = Browser::with_jar(&app, jar.clone());
        let page = b.open(fill).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains(price), "{}", page.html);
        // The customer acts: the cart is made from the link.
        let csrf = page.csrf();
        let made = b
            .submit(
                &page,
                fill_checkout,
                &[("csrf", &csrf), ("quantity_0", "1"), ("action", "update")],
            )
            .await;
        assert_eq!(made.status, 200, "{}", made.html);
        assert!(made.html.contains(price), "{}", made.html);
        let token = cookie(&app, &jar, fill_checkout, fill_cookie);
        // The same token in the other world's cart cookie.
        let base: reqwest::Url = app.base.parse().unwrap();
        jar.add_cookie_str(&format!("{other_cookie}={token}; Path=/acme"), &base);
        let other = b.open(other_checkout).await;
        assert_eq!(other.status, 200, "{}", other.html);
        assert!(other.html.contains("Your cart is empty."), "{}", other.html);
        assert!(!other.html.contains(price), "{}", other.html);
        // Continue with one unit, as the test link's offer allows (before, this placed
        // a live order of the live product at the test link's 0.01), with the form's
        // CSRF token of the page before (an empty cart has no form).
        let mut fields = details(&csrf, "bank_transfer");
        fields[1] = ("quantity_0", "1");
        let placed = b.post(other_checkout, &fields).await;
        assert_ne!(placed.status, 303, "{}", placed.html);
        assert!(
            placed.html.contains("Your cart is empty."),
            "{}",
            placed.html
        );
        assert_eq!(
            orders(other_key).await,
            0,
            "nothing placed in the other world"
        );
        // The cart still serves the world it was filled in.
        let own = b.open(fill_checkout).await;
        assert!(own.html.contains(price), "{}", own.html);
    }
}

/// The Continue of a buy link's page writes its cart in the placing transaction, with
/// the token the page's cookie gave it. The attack: that token is the customer's cart
/// of the other world (put in this world's cookie). The placement takes no cart that is
/// not its world's: the order is placed from a cart of its own, under a token of its
/// own, and the other world's cart is left as it was.
async fn a_buy_links_continue_never_takes_the_other_worlds_cart(backend: Backend) {
    use std::sync::Arc;
    let app = TestApp::spawn(backend).await;
    let (prd, _) = twin_with_a_test_link(&app).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let b = Browser::with_jar(&app, jar.clone());
    // A live cart, made by the customer's first action on the live link's page.
    let page = b.open(&format!("/acme/buy/{prd}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let made = b
        .submit(
            &page,
            "/acme/checkout",
            &[
                ("csrf", &page.csrf()),
                ("quantity_0", "3"),
                ("action", "update"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.html);
    let live_token = cookie(&app, &jar, "/acme/checkout", "kassa_cart");
    // Its token in the test cart cookie, then the test link's page and Continue.
    let base: reqwest::Url = app.base.parse().unwrap();
    jar.add_cookie_str(&format!("kassa_cart_test={live_token}; Path=/acme"), &base);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let placed = b
        .submit(
            &page,
            "/acme/test/checkout",
            &details(&page.csrf(), "bank_transfer"),
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let test_orders = app.get("/api/v1/orders").await;
    let test_orders = test_orders.ok()["data"].as_array().unwrap().clone();
    assert_eq!(test_orders.len(), 1, "{test_orders:?}");
    assert_eq!(test_orders[0]["lines"][0]["quantity"], 2);
    let test_token = cookie(&app, &jar, "/acme/test/checkout", "kassa_cart_test");
    assert_ne!(test_token, live_token, "a token of its own");
    assert_eq!(
        b.get("/acme/test/checkout").await.location,
        placed.location,
        "the test cart became the order"
    );
    // The live cart is untouched: still three units, and no live order.
    let live = b.open("/acme/checkout").await;
    assert_eq!(live.status, 200, "{}", live.html);
    assert!(live.html.contains("59.97 USD"), "{}", live.html);
    let live_orders = app.get_as(&app.live_key, "/api/v1/orders").await;
    assert_eq!(live_orders.ok()["data"].as_array().unwrap().len(), 0);
}

/// Runs migration 0038 (test pools for the test twins of pool-delivered products) on
/// `app`'s database again, as it ran on a database whose products 0033 twinned.
async fn give_twins_test_pools(app: &TestApp) {
    match (app.store.sqlite_pool(), app.store.pg_pool()) {
        (Some(pool), _) => sqlx::raw_sql(include_str!(
            "../../../../migrations/sqlite/0038_test_pools_for_test_twins.sql"
        ))
        .execute(pool)
        .await
        .map(|_| ()),
        (_, Some(pool)) => sqlx::raw_sql(include_str!(
            "../../../../migrations/postgres/0038_test_pools_for_test_twins.sql"
        ))
        .execute(pool)
        .await
        .map(|_| ()),
        _ => unreachable!("a store has a pool"),
    }
    .expect("migration 0038");
}

/// The test twin migration 0033 made of a product delivered from a live pool gets an
/// empty test pool of its own from migration 0038: a test order of it waits for test
/// stock (never taking a live key) and is delivered once the merchant adds test keys;
/// the live product keeps its live pool, and running 0038 again changes nothing.
async fn a_test_twin_waits_for_test_stock_and_never_takes_a_live_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, live_pool) = product_as(&app, &app.live_key).await;
    test_twin(&app, &prd).await;
    give_twins_test_pools(&app).await;
    let product_path = format!("/api/v1/products/{prd}");
    let twin = app.get_as(&app.key, &product_path).await.ok().clone();
    let test_pool = twin["delivery"]["pool_id"].as_str().unwrap().to_owned();
    assert_ne!(test_pool, live_pool, "{twin}");
    let pool = app
        .get_as(&app.key, &format!("/api/v1/license-pools/{test_pool}"))
        .await
        .ok()
        .clone();
    assert_eq!(
        (pool["livemode"].clone(), pool["available"].clone()),
        (json!(false), json!(0)),
        "{pool}"
    );
    assert_eq!(pool["name"], "Keys");
    let live = app.get_as(&app.live_key, &product_path).await;
    assert_eq!(live.ok()["delivery"]["pool_id"], live_pool.as_str());
    // Again: nothing more (one test pool, the same).
    give_twins_test_pools(&app).await;
    let pools = app.get_as(&app.key, "/api/v1/license-pools").await;
    assert_eq!(pools.ok()["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get_as(&app.key, &product_path).await.ok()["delivery"]["pool_id"],
        test_pool.as_str()
    );

    // A test order of two waits for test stock; the live pool keeps every key.
    let b = Browser::new(&app);
    let pay_path = b
        .place(
            &format!("/acme/test/buy/{prd}"),
            "/acme/test/checkout",
            "test_card",
        )
        .await;
    let paid = b.pay_by_card(&pay_path, "4242 4242 4242 4242").await;
    assert_eq!(paid.status, 303, "{}", paid.html);
    let id = newest_order(&app, &app.key).await;
    let order = order_once(&app, &app.key, &id, |o| {
        o["lines"][0]["delivery_status"] == "waiting_stock"
    })
    .await;
    assert_eq!(order["livemode"], false);
    assert_eq!(
        order["lines"][0]["delivery_status"], "waiting_stock",
        "{order}"
    );
    assert_eq!(available(&app, &app.live_key, &live_pool).await, 3);
    // Test keys arrive: the order is delivered with them, and with no live key.
    app.post_as(
        &app.key,
        &format!("/api/v1/license-pools/{test_pool}/keys"),
        json!({"keys": ["TEST-1", "TEST-2"]}),
    )
    .await
    .ok();
    let order = order_once(&app, &app.key, &id, |o| o["delivery_status"] == "delivered").await;
    assert_eq!(order["delivery_status"], "delivered", "{order}");
    let mut keys: Vec<&str> = order["lines"][0]["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["TEST-1", "TEST-2"]);
    assert_eq!(available(&app, &app.live_key, &live_pool).await, 3);
    assert_eq!(available(&app, &app.key, &test_pool).await, 0);
}
