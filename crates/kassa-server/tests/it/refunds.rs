//! Refunds, tried as a merchant and as an attacker would, on both databases: a sandbox
//! order refunded in full (its key revoked, back in the pool when the pool says so,
//! `refund.succeeded` and `order.refunded` at a real receiver, "Your refund" in a real
//! SMTP sink), a partial refund then the rest of a bank transfer, and every way to
//! take back more than was paid or what is not yours.

use std::time::Duration;

use kassa_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::dashboard::{error, merchant, offer_bank_transfer, pool_and_product_with};
use crate::emails::Sink;
use crate::fulfillment::{paid_order, wait_delivered};
use crate::harness::TestApp;
use crate::modes::order_once;
use crate::pages::Browser;
use crate::webhooks::endpoint_with_receiver;

on_both_backends!(
    a_sandbox_order_refunded_in_full_revokes_its_key,
    a_bank_transfer_is_refunded_in_parts_then_in_full_by_record,
    no_refund_takes_more_than_was_paid,
    concurrent_refunds_never_add_up_to_more_than_was_paid,
    no_refund_of_what_is_not_paid_or_not_yours,
    an_owner_refunds_from_the_order_page,
    a_refunded_line_waiting_for_stock_ends_and_a_restock_serves_the_others,
);

/// A pool of `keys` made with `key` (so of its mode) and a product of 10.00 USD
/// delivered from it, one key per unit.
async fn stocked_product(
    app: &TestApp,
    key: &str,
    keys: &[&str],
    give_back: bool,
) -> (String, String) {
    let pool = app
        .post_as(
            key,
            "/api/v1/license-pools",
            json!({"name": "Keys", "return_refunded_keys": give_back}),
        )
        .await;
    assert_eq!(pool.ok()["return_refunded_keys"], give_back);
    let pool = pool.body["id"].as_str().unwrap().to_owned();
    app.post_as(
        key,
        &format!("/api/v1/license-pools/{pool}/keys"),
        json!({ "keys": keys }),
    )
    .await
    .ok();
    let product = app
        .post_as(
            key,
            "/api/v1/products",
            json!({"name": "Pro", "prices": [{"currency": "USD", "amount": 1000}],
                   "delivery": {"method": "license_pool", "pool_id": pool}}),
        )
        .await;
    (product.ok()["id"].as_str().unwrap().to_owned(), pool)
}

async fn order(app: &TestApp, key: &str, id: &str) -> Value {
    app.get_as(key, &format!("/api/v1/orders/{id}"))
        .await
        .ok()
        .clone()
}

async fn pool(app: &TestApp, key: &str, id: &str) -> Value {
    app.get_as(key, &format!("/api/v1/license-pools/{id}"))
        .await
        .ok()
        .clone()
}

fn refunds_path(id: &str) -> String {
    format!("/api/v1/orders/{id}/refunds")
}

/// A test mode order of one unit, paid with the sandbox card on its payment page as
/// the customer would, and delivered.
pub(crate) async fn card_order(app: &TestApp, product: &str) -> Value {
    let placed = app
        .post(
            "/api/v1/orders",
            json!({"lines": [{"product_id": product, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "buyer@example.com", "name": "Ada"},
                   "payment_method": "test_card", "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let placed = placed.ok().clone();
    let pay_path = placed["pay_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap()
        .to_owned();
    let paid = Browser::new(app)
        .pay_by_card(&pay_path, "4242 4242 4242 4242")
        .await;
    assert_eq!(paid.status, 303, "{}", paid.html);
    wait_delivered(app, placed["id"].as_str().unwrap()).await
}

async fn a_sandbox_order_refunded_in_full_revokes_its_key(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let (_, receiver) =
        endpoint_with_receiver(&app, "", json!(["refund.succeeded", "order.refunded"])).await;
    let (prd, pool_id) = stocked_product(&app, &app.key, &["KEY-1", "KEY-2"], true).await;
    let paid = card_order(&app, &prd).await;
    let id = paid["id"].as_str().unwrap().to_owned();
    assert_eq!(paid["delivery_status"], "delivered", "{paid}");
    let key = paid["lines"][0]["licenses"][0].as_str().unwrap().to_owned();
    assert_eq!(pool(&app, &app.key, &pool_id).await["available"], 1);

    let refund = app
        .post(
            &refunds_path(&id),
            json!({"reason": "The customer changed their mind"}),
        )
        .await;
    let refund = refund.ok().clone();
    assert!(refund["id"].as_str().unwrap().starts_with("rfd_"));
    assert_eq!(refund["amount"], 1000, "no amount: all that was paid");
    assert_eq!(refund["currency"], "USD");
    assert_eq!(refund["method"], "test_card");
    assert_eq!(refund["status"], "succeeded");
    assert!(
        refund["reference"]
            .as_str()
            .unwrap()
            .starts_with("test_re_"),
        "the sandbox refunded it: {refund}"
    );
    assert_eq!(refund["lines"], json!([1]));
    assert_eq!(refund["livemode"], false);

    let o = order(&app, &app.key, &id).await;
    assert_eq!(o["status"], "refunded");
    assert_eq!(o["amount_refunded"], 1000);
    assert_eq!(o["refunds"][0]["id"], refund["id"]);
    assert_eq!(o["lines"][0]["refunded"], true);
    assert_eq!(o["lines"][0]["revoked_licenses"], json!([key]));
    // The pool takes refunded keys back: available again, for the next buyer.
    let p = pool(&app, &app.key, &pool_id).await;
    assert_eq!(
        (p["available"].as_i64(), p["assigned"].as_i64()),
        (Some(2), Some(0))
    );
    let listed = app.get(&refunds_path(&id)).await;
    assert_eq!(listed.ok()["data"].as_array().unwrap().len(), 1);
    // A refunded order is not refunded again.
    app.post(&refunds_path(&id), json!({})).await.problem(409);

    // The receiver got both events, each with a signature that verifies.
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|r| r["verified"] == true), "{got:?}");
    let succeeded = got
        .iter()
        .find(|r| r["type"] == "refund.succeeded")
        .expect("refund.succeeded");
    assert_eq!(succeeded["event"]["data"]["refund"]["id"], refund["id"]);
    assert_eq!(succeeded["event"]["data"]["refund"]["amount"], 1000);
    assert_eq!(succeeded["event"]["data"]["order"]["id"], id.as_str());
    assert_eq!(succeeded["event"]["livemode"], false);
    let refunded = got
        .iter()
        .find(|r| r["type"] == "order.refunded")
        .expect("order.refunded");
    assert_eq!(refunded["event"]["data"]["order"]["status"], "refunded");
    assert_eq!(
        refunded["event"]["data"]["order"]["lines"][0]["revoked_licenses"],
        json!([key])
    );

    // "Your refund", to the customer, with the amount and the key it revoked.
    let mut mail = None;
    for _ in 0..100 {
        mail = sink
            .wait_for(1)
            .await
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap_or_default().contains("refund"));
        if mail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = mail.expect("the refund email");
    assert_eq!(mail["rcpt_tos"], json!(["buyer@example.com"]));
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .contains("your refund for order #1"),
        "{mail}"
    );
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("10.00 USD"), "{text}");
    assert!(text.contains("The customer changed their mind"), "{text}");
    assert!(text.contains(&format!("Pro: {key}")), "{text}");
    assert!(mail["html"].as_str().unwrap().contains("10.00 USD"));

    // The customer's order page shows the key as revoked.
    let page = reqwest::get(o["order_url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&key), "{page}");
    assert!(page.contains("data-testid=\"license-revoked\""), "{page}");
    assert!(page.contains("10.00 USD"));

    // The key back in the pool goes to the next buyer, once.
    let next = card_order(&app, &prd).await;
    let next_key = next["lines"][0]["licenses"][0].as_str().unwrap();
    assert!(next_key.starts_with("KEY-"), "{next}");
    assert_eq!(pool(&app, &app.key, &pool_id).await["available"], 1);
}

async fn a_bank_transfer_is_refunded_in_parts_then_in_full_by_record(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, pool_id) = stocked_product(&app, &app.key, &["A-1", "A-2", "A-3"], false).await;
    // Two units (20.00 USD), paid by bank transfer and recorded.
    let id = paid_order(&app, &prd, 2).await;
    let paid = wait_delivered(&app, &id).await;
    assert_eq!(paid["delivery_status"], "delivered", "{paid}");

    let part = app
        .post(
            &refunds_path(&id),
            json!({"amount": 500, "currency": "usd"}),
        )
        .await;
    assert_eq!(part.ok()["amount"], 500);
    assert_eq!(part.body["method"], "bank_transfer");
    assert_eq!(part.body["reference"], Value::Null, "a record: no provider");
    assert_eq!(part.body["lines"], json!([]));
    let o = order(&app, &app.key, &id).await;
    assert_eq!(o["status"], "paid", "a partial refund keeps the order paid");
    assert_eq!(o["amount_refunded"], 500);
    assert_eq!(o["lines"][0]["refunded"], false);
    assert_eq!(o["lines"][0]["revoked_licenses"], json!([]));

    // The line given back for 1.00: its keys are revoked, the order stays paid.
    let line = app
        .post(&refunds_path(&id), json!({"amount": 100, "lines": [1]}))
        .await;
    assert_eq!(line.ok()["lines"], json!([1]));
    let o = order(&app, &app.key, &id).await;
    assert_eq!(
        (o["status"].as_str(), o["amount_refunded"].as_i64()),
        (Some("paid"), Some(600))
    );
    assert_eq!(o["lines"][0]["refunded"], true);
    assert_eq!(
        o["lines"][0]["revoked_licenses"], o["lines"][0]["licenses"],
        "both keys revoked"
    );
    let again = app.post(&refunds_path(&id), json!({"lines": [1]})).await;
    assert_eq!(again.invalid_fields(), ["lines"]);

    let rest = app.post(&refunds_path(&id), json!({})).await;
    assert_eq!(rest.ok()["amount"], 1400, "the rest");
    assert_eq!(rest.body["lines"], json!([]), "no line left to refund");
    let o = order(&app, &app.key, &id).await;
    assert_eq!(o["status"], "refunded");
    assert_eq!(o["amount_refunded"], 2000);
    // The pool keeps refunded keys out (its default): still given out, not available.
    let p = pool(&app, &app.key, &pool_id).await;
    assert_eq!(
        (p["available"].as_i64(), p["assigned"].as_i64()),
        (Some(1), Some(2))
    );
    let events = app.get(&format!("/api/v1/orders/{id}/events")).await;
    let kinds: Vec<&str> = events.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "refund.succeeded",
            "refund.succeeded",
            "refund.succeeded",
            "order.refunded"
        ]
    );
    let emails = app.get("/api/v1/emails").await;
    let refund_mails = emails.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "refund")
        .count();
    assert_eq!(refund_mails, 3, "one email per refund");
}

/// The attack: more than was paid, in one refund or as the sum of several; nothing,
/// less than nothing, another currency, a line that is not there; and a retried
/// request with the same `Idempotency-Key`, which refunds once.
async fn no_refund_takes_more_than_was_paid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, _) = stocked_product(&app, &app.key, &["B-1", "B-2"], false).await;
    let id = paid_order(&app, &prd, 2).await;
    let path = refunds_path(&id);

    let above = app.post(&path, json!({"amount": 2001})).await;
    assert_eq!(above.invalid_fields(), ["amount"]);
    assert!(above.text.contains("at most 2000"), "{}", above.text);
    for nothing in [0, -1] {
        let refused = app.post(&path, json!({"amount": nothing})).await;
        assert_eq!(refused.invalid_fields(), ["amount"]);
    }
    let euros = app
        .post(&path, json!({"amount": 100, "currency": "EUR"}))
        .await;
    assert_eq!(euros.invalid_fields(), ["currency"]);
    let no_line = app.post(&path, json!({"lines": [9]})).await;
    assert_eq!(no_line.invalid_fields(), ["lines"]);

    // The same request twice with one Idempotency-Key: one refund.
    let twice = |amount: i64| {
        app.request(reqwest::Method::POST, &app.key, &path)
            .header("Idempotency-Key", "refund-once")
            .json(&json!({ "amount": amount }))
    };
    let first = app.send(twice(1500)).await;
    let again = app.send(twice(1500)).await;
    assert_eq!(first.ok()["id"], again.ok()["id"]);
    assert_eq!(order(&app, &app.key, &id).await["amount_refunded"], 1500);

    // Partial refunds add up to at most what was paid.
    let over = app.post(&path, json!({"amount": 501})).await;
    assert_eq!(over.invalid_fields(), ["amount"]);
    assert!(over.text.contains("at most 500"), "{}", over.text);
    app.post(&path, json!({"amount": 500})).await.ok();
    let o = order(&app, &app.key, &id).await;
    assert_eq!(
        (o["status"].as_str(), o["amount_refunded"].as_i64()),
        (Some("refunded"), Some(2000))
    );
    app.post(&path, json!({"amount": 1})).await.problem(409);
    let listed = app.get(&path).await;
    let amounts: Vec<i64> = listed.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [1500, 500]);
}

/// The attack: many refunds of one order at once, each alone within what was paid,
/// together more. On PostgreSQL the order's row is locked; on SQLite writers take
/// turns. Either way they never add up to more than was paid.
async fn concurrent_refunds_never_add_up_to_more_than_was_paid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, _) = stocked_product(&app, &app.key, &["C-1", "C-2"], false).await;
    let id = paid_order(&app, &prd, 2).await;
    let path = refunds_path(&id);
    let asks = (0..8).map(|_| app.post(&path, json!({"amount": 700})));
    let answers = futures::future::join_all(asks).await;
    let taken = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(taken, 2, "700 + 700 of 2000; a third would be 2100");
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(refused.invalid_fields(), ["amount"]);
    }
    let o = order(&app, &app.key, &id).await;
    assert_eq!(o["amount_refunded"], 1400);
    assert_eq!(o["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(o["status"], "paid");
}

/// The attack: refunding an order that was never paid, one deleted unpaid, another
/// store's order, and a live order with a test key (each a 404, as if it did not
/// exist).
async fn no_refund_of_what_is_not_paid_or_not_yours(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (prd, _) = stocked_product(&app, &app.key, &["D-1"], false).await;
    let unpaid = app
        .post(
            "/api/v1/orders",
            json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "x@example.com"}, "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let unpaid = unpaid.ok()["id"].as_str().unwrap().to_owned();
    let refused = app.post(&refunds_path(&unpaid), json!({})).await;
    assert!(
        refused.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("only a paid order can be refunded"),
        "{}",
        refused.text
    );

    // Deleted as unpaid (its personal data erased): never refunded either.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let acme = app.store.tenant_by_slug("acme").await.unwrap();
    let policy = kassa_orders::UnpaidPolicy {
        remind_after: None,
        delete_after: 1,
    };
    let swept = kassa_orders::sweep_unpaid(&app.store, &acme.id, policy)
        .await
        .unwrap();
    assert_eq!(swept.deleted, 1);
    let deleted = app.post(&refunds_path(&unpaid), json!({"amount": 1})).await;
    assert!(
        deleted.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("the order is deleted"),
        "{}",
        deleted.text
    );

    let paid = paid_order(&app, &prd, 1).await;
    let (other_test, _) = app.new_tenant_keys("other").await;
    app.post_as(&other_test, &refunds_path(&paid), json!({}))
        .await
        .problem(404);
    app.get_as(&other_test, &refunds_path(&paid))
        .await
        .problem(404);

    // A live order, paid by a recorded transfer: the test key cannot see or refund it.
    let (live_prd, _) = stocked_product(&app, &app.live_key, &["L-1"], false).await;
    let live = app
        .post_as(
            &app.live_key,
            "/api/v1/orders",
            json!({"lines": [{"product_id": live_prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "x@example.com"}, "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}}),
        )
        .await;
    let live = live.ok()["id"].as_str().unwrap().to_owned();
    app.post_as(
        &app.live_key,
        &format!("/api/v1/orders/{live}/payments"),
        json!({"method": "bank_transfer", "amount": 1000, "currency": "USD"}),
    )
    .await
    .ok();
    app.post(&refunds_path(&live), json!({})).await.problem(404);
    assert_eq!(
        order(&app, &app.live_key, &live).await["amount_refunded"],
        0
    );
    assert_eq!(app.count_rows("refunds").await, 0, "nothing refunded");
    // Its own live key may.
    let refund = app
        .post_as(&app.live_key, &refunds_path(&live), json!({}))
        .await;
    assert_eq!(refund.ok()["livemode"], true);
}

/// The dashboard: a pool made to take refunded keys back (its form's checkbox), an
/// order paid by a recorded transfer, then the order page's "Refund" form: a forged
/// post, an amount above what was paid and a malformed one are refused next to the
/// field; an empty amount refunds the rest and the page shows the refund and the key
/// revoked.
async fn an_owner_refunds_from_the_order_page(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    offer_bank_transfer(&ada).await;
    let (pool_path, product) =
        pool_and_product_with(&ada, "ADA-1\nADA-2\n", ("return_refunded_keys", "true")).await;
    let pool_page = ada.get(&pool_path).await;
    assert!(
        pool_page.html.contains("come back to this pool"),
        "{}",
        pool_page.html
    );
    let start = product.html.find("<code>prd_").unwrap() + 6;
    let product_id = product.html[start..].split('<').next().unwrap().to_owned();
    let customer = Browser::new(&app);
    let placed = customer
        .place(
            &format!("/ada/test/buy/{product_id}"),
            "/ada/test/checkout",
            "bank_transfer",
        )
        .await;
    assert!(placed.contains("/pay"), "{placed}");
    let orders = ada.get("/dashboard/orders").await;
    let start = orders.html.find("href=\"/dashboard/orders/ord_").unwrap() + 6;
    let order_path = orders.html[start..].split('"').next().unwrap().to_owned();
    let order = ada.get(&order_path).await;
    assert!(!order.html.contains(">Refund<"), "nothing to refund unpaid");
    assert!(
        order
            .html
            .contains("transfer reference <code data-testid=\"transfer-reference\">KS-"),
        "the reference customers quote on their transfer: {}",
        order.html
    );
    let paid = ada
        .post(
            &format!("{order_path}/payments"),
            &[("csrf", &order.csrf()), ("amount", "39.98")],
        )
        .await;
    assert_eq!(paid.status, 303, "{}", paid.html);
    let mut order = ada.get(&order_path).await;
    for _ in 0..100 {
        if order.html.contains("ADA-1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        order = ada.get(&order_path).await;
    }
    assert!(order.html.contains("Up to 39.98 USD"), "{}", order.html);
    let home = ada.get("/dashboard").await;
    assert!(
        home.html
            .contains("<span class=\"figure\">39.98 USD</span> kept"),
        "today's sale: {}",
        home.html
    );

    let refunds = format!("{order_path}/refunds");
    let forged = ada.post(&refunds, &[("amount", "1.00")]).await;
    assert_ne!(forged.status, 303, "no CSRF token, no refund");
    let above = ada
        .post(&refunds, &[("csrf", &order.csrf()), ("amount", "40.00")])
        .await;
    assert_eq!(above.status, 422);
    assert_eq!(
        error(&above, "amount").as_deref(),
        Some("must be more than 0 and at most 39.98 USD")
    );
    let garbled = ada
        .post(&refunds, &[("csrf", &order.csrf()), ("amount", "1.999")])
        .await;
    assert_eq!(garbled.status, 422);
    assert!(error(&garbled, "amount").is_some(), "{}", garbled.html);

    // Refund asks first, saying what it gives back and revokes (one click once
    // refunded everything, found by a tester); nothing is refunded until confirmed.
    let asked = ada
        .post(
            &refunds,
            &[
                ("csrf", &order.csrf()),
                ("amount", ""),
                ("reason", "Bought twice"),
            ],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.html);
    assert!(
        asked.html.contains("Refund 39.98 USD of order #"),
        "{}",
        asked.html
    );
    assert!(asked.html.contains("<code>ADA-1</code>"), "{}", asked.html);
    let unchanged = ada.get(&order_path).await;
    assert!(
        unchanged.html.contains("Up to 39.98 USD"),
        "nothing refunded yet"
    );
    let done = ada
        .post(
            &refunds,
            &[
                ("csrf", &asked.csrf()),
                ("amount", ""),
                ("reason", "Bought twice"),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.html);
    let order = ada.get(&order_path).await;
    assert!(
        order
            .html
            .contains("data-testid=\"amount-refunded\">39.98 USD"),
        "{}",
        order.html
    );
    assert!(order.html.contains("Bought twice"));
    assert!(
        order
            .html
            .contains("<del><code>ADA-1</code></del> <span class=\"badge\">revoked</span>"),
        "{}",
        order.html
    );
    assert!(
        !order.html.contains(">Refund</button>"),
        "nothing left to refund"
    );
    // Today's sales are the money kept: nothing, and the figure says why.
    let home = ada.get("/dashboard").await;
    assert!(
        home.html
            .contains("<span class=\"figure\">0.00 USD</span> kept"),
        "a refunded sale is no money kept: {}",
        home.html
    );
    assert!(
        home.html
            .contains("1 paid order: 39.98 USD paid, 39.98 USD refunded"),
        "{}",
        home.html
    );
    // The pool took the key back.
    let pool_page = ada.get(&pool_path).await;
    assert!(
        pool_page
            .html
            .contains("<span class=\"figure\">2</span><br><span class=\"muted\">keys left"),
        "{}",
        pool_page.html
    );
}

/// A paid line waiting for keys, refunded, ends: `cancelled`, with the reason, no longer
/// counted as waiting; keys uploaded afterwards go to the other lines waiting, never
/// to it.
async fn a_refunded_line_waiting_for_stock_ends_and_a_restock_serves_the_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (product, pool_id) = stocked_product(&app, &app.key, &["ONLY-1"], false).await;
    let first = paid_order(&app, &product, 1).await;
    wait_delivered(&app, &first).await;
    let waiting = |o: &Value| o["lines"][0]["delivery_status"] == "waiting_stock";
    let refunded = paid_order(&app, &product, 1).await;
    let other = paid_order(&app, &product, 1).await;
    for id in [&refunded, &other] {
        let o = order_once(&app, &app.key, id, waiting).await;
        assert!(waiting(&o), "{o}");
    }

    let answer = app
        .post(&refunds_path(&refunded), json!({"reason": "no keys left"}))
        .await;
    assert_eq!(answer.ok()["status"], "succeeded", "{}", answer.text);
    let o = order(&app, &app.key, &refunded).await;
    assert_eq!(o["status"], "refunded");
    let line = &o["lines"][0];
    assert_eq!(line["delivery_status"], "cancelled", "{o}");
    assert!(
        line["delivery_error"]
            .as_str()
            .unwrap_or_default()
            .contains("refunded"),
        "the reason is on the line: {o}"
    );
    let waiting_lines = app
        .get("/api/v1/orders?delivery_status=not_delivered")
        .await;
    let still_waiting: Vec<&Value> = waiting_lines.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["lines"][0]["delivery_status"] == "waiting_stock")
        .collect();
    assert_eq!(still_waiting.len(), 1, "only the other line waits");
    assert_eq!(still_waiting[0]["id"], other.as_str());

    // One key arrives: the other line gets it; then another: it stays in the pool.
    for key in ["LATE-1", "LATE-2"] {
        app.post(
            &format!("/api/v1/license-pools/{pool_id}/keys"),
            json!({ "keys": [key] }),
        )
        .await
        .ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let delivered = wait_delivered(&app, &other).await;
    assert_eq!(delivered["lines"][0]["licenses"], json!(["LATE-1"]));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let o = order(&app, &app.key, &refunded).await;
    assert_eq!(o["lines"][0]["delivery_status"], "cancelled", "{o}");
    assert_eq!(o["lines"][0]["licenses"], json!([]));
    assert_eq!(pool(&app, &app.key, &pool_id).await["available"], 1);
}
