//! Unpaid orders get their reminder and are deleted with the personal data erased, on
//! schedule (seconds here), never twice. Both databases.

use std::time::Duration;

use kassa_orders::UnpaidPolicy;
use kassa_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::harness::{Options, TestApp};
use crate::pages::{Browser, details, product};

on_both_backends!(
    an_unpaid_order_is_reminded_then_deleted,
    stores_set_their_own_policy,
    two_workers_never_remind_twice,
    erasure_leaves_no_trace_in_any_table,
);

async fn order(app: &TestApp, prd: &str) -> String {
    let o = app
        .post(
            "/api/v1/orders",
            json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
                   "customer": {"email": "late@example.com", "name": "Late Payer"}, "payment_method": "bank_transfer",
                   "consents": {"terms": true, "personal_data": true}, "custom": {"crm": "42"}}),
        )
        .await;
    o.ok()["id"].as_str().unwrap().to_owned()
}

async fn wait_until(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = app.get(path).await.ok().clone();
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

async fn an_unpaid_order_is_reminded_then_deleted(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            remind_after: Some(Duration::from_secs(1)),
            delete_after: Duration::from_secs(4),
            ..Options::default()
        },
    )
    .await;
    app.patch_as(
        &app.live_key,
        "/api/v1/settings",
        json!({"bank": {"account_holder": "Acme Ltd", "bank_name": "", "iban": "GB33BUKB20201555555555", "bic": ""}}),
    )
    .await
    .ok();
    let prd = product(&app, 1999).await;
    let id = order(&app, &prd).await;
    let emails = wait_until(&app, "/api/v1/emails", |e| {
        e["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "unpaid_reminder" && m["status"] == "kept")
    })
    .await;
    let reminder = emails["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "unpaid_reminder")
        .unwrap()
        .clone();
    assert_eq!(reminder["to"], "late@example.com");
    assert!(
        reminder["subject"]
            .as_str()
            .unwrap()
            .contains("waiting for payment")
    );
    assert!(reminder["text_body"].as_str().unwrap().contains("/pay"));

    let deleted = wait_until(&app, &format!("/api/v1/orders/{id}"), |o| {
        o["status"] == "deleted"
    })
    .await;
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(
        deleted["customer"]["email"],
        Value::Null,
        "personal data erased"
    );
    assert_eq!(deleted["customer"]["name"], Value::Null);
    assert_eq!(deleted["custom"], json!({}));
    assert!(
        deleted["consents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ip"].is_null())
    );
    let events = app.get(&format!("/api/v1/orders/{id}/events")).await;
    let kinds: Vec<_> = events.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["order.created", "order.deleted"]);
    let erased = app.get("/api/v1/emails").await;
    assert!(
        !erased.text.contains("late@example.com"),
        "no trace of the address: {}",
        erased.text
    );
    // Nor does its page or invoice tell anyone where to send money (found by a
    // tester: the invoice still showed the bank account and the payment reference).
    let page = reqwest::get(deleted["order_url"].as_str().unwrap())
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("has been deleted"), "{page}");
    assert!(!page.contains("/invoice"), "{page}");
    let invoice = format!("{}/invoice", deleted["order_url"].as_str().unwrap());
    let invoice = reqwest::get(invoice).await.unwrap().text().await.unwrap();
    assert!(invoice.contains("has been deleted"), "{invoice}");
    assert!(!invoice.contains("GB33BUKB20201555555555"), "{invoice}");
    // A deleted order cannot be paid.
    app.post(
        &format!("/api/v1/orders/{id}/payments"),
        json!({"method": "bank_transfer", "amount": 1999, "currency": "USD"}),
    )
    .await
    .problem(409);
}

async fn stores_set_their_own_policy(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            remind_after: Some(Duration::from_secs(1)),
            delete_after: Duration::from_secs(3600),
            ..Options::default()
        },
    )
    .await;
    let set = app
        .send(
            app.request(reqwest::Method::PATCH, &app.live_key, "/api/v1/settings")
                .json(&json!({"unpaid_reminder_after": "off", "unpaid_delete_after": "2s"})),
        )
        .await;
    assert_eq!(set.ok()["unpaid_reminder_after"], "off");
    let bad = app
        .send(
            app.request(reqwest::Method::PATCH, &app.live_key, "/api/v1/settings")
                .json(&json!({"unpaid_delete_after": "soon"})),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["unpaid_delete_after"]);
    let prd = product(&app, 1999).await;
    let id = order(&app, &prd).await;
    let deleted = wait_until(&app, &format!("/api/v1/orders/{id}"), |o| {
        o["status"] == "deleted"
    })
    .await;
    assert_eq!(
        deleted["status"], "deleted",
        "the store's shorter deletion applies"
    );
    let emails = app.get("/api/v1/emails").await;
    assert!(
        !emails.ok()["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "unpaid_reminder"),
        "the store turned reminders off"
    );
}

/// A Kassa whose unpaid orders are reminded and deleted only by sweeps a test runs.
async fn swept_by_hand(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            remind_after: None,
            ..Options::default()
        },
    )
    .await
}

async fn two_workers_never_remind_twice(backend: Backend) {
    // No background reminders here: the test drives two sweeps at once itself.
    let app = swept_by_hand(backend).await;
    let prd = product(&app, 1999).await;
    let id = order(&app, &prd).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let policy = UnpaidPolicy {
        remind_after: Some(1),
        delete_after: i64::MAX / 4,
    };
    let (a, b) = tokio::join!(
        kassa_orders::sweep_unpaid(&app.store, &tenant.id, policy),
        kassa_orders::sweep_unpaid(&app.store, &tenant.id, policy)
    );
    assert_eq!(
        a.unwrap().reminded + b.unwrap().reminded,
        1,
        "exactly one reminder"
    );
    let again = kassa_orders::sweep_unpaid(&app.store, &tenant.id, policy)
        .await
        .unwrap();
    assert_eq!(again.reminded, 0);
    let emails = app.get("/api/v1/emails").await;
    let reminders = emails.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "unpaid_reminder")
        .count();
    assert_eq!(reminders, 1);
    assert_eq!(
        app.get(&format!("/api/v1/orders/{id}")).await.ok()["status"],
        "not_paid"
    );
}

/// A customer who bought through the pages, failed a card payment and never paid: once
/// the order is deleted, no row of any table holds their email, name, address, user
/// agent, custom data or return URL: not the order, its events (which webhooks replay),
/// its emails, consents, cart, or the idempotency table.
async fn erasure_leaves_no_trace_in_any_table(backend: Backend) {
    let app = swept_by_hand(backend).await;
    app.post(
        "/api/v1/webhook-endpoints",
        json!({"url": "http://localhost:9/kassa-hooks"}),
    )
    .await
    .ok();
    let prd = product(&app, 1999).await;
    let agent = "ErasureTestBrowser/1.0 (gone-agent)";
    let b = Browser::with_user_agent(&app, agent);
    let checkout = b
        .open(&format!(
            "/acme/test/buy/{prd}?email=gone@example.com&custom[crm]=gone-crm-id\
             &return_url=https://acme.example/back?who%3Dgone-return"
        ))
        .await;
    assert_eq!(checkout.status, 200, "{}", checkout.html);
    let csrf = checkout.csrf();
    let mut form = details(&csrf, "test_card");
    for (field, value) in &mut form {
        match *field {
            "email" => *value = "gone@example.com",
            "name" => *value = "Gone Customer",
            _ => {}
        }
    }
    let placed = b.submit(&checkout, "/acme/test/checkout", &form).await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let pay_path = placed.location.unwrap();
    let pay = b.get(&pay_path).await;
    let declined = b
        .post(
            &pay_path,
            &[
                ("csrf", pay.csrf().as_str()),
                ("card_number", "4000 0000 0000 0002"),
                ("expiry", "12/34"),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(declined.status, 402);
    // The API's own order, with an idempotency key, holds the same kind of data.
    let by_api = app
        .send(
            app.request(reqwest::Method::POST, &app.key, "/api/v1/orders")
                .header("idempotency-key", "erasure-1")
                .json(
                    &json!({"lines": [{"product_id": prd, "quantity": 1}], "currency": "USD",
                    "customer": {"email": "gone@example.com", "name": "Gone Customer"},
                    "payment_method": "bank_transfer", "custom": {"crm": "gone-crm-id"},
                    "consents": {"terms": true, "personal_data": true}}),
                ),
        )
        .await;
    by_api.ok();

    let traces = [
        "gone@example.com",
        "Gone Customer",
        "gone-agent",
        "gone-crm-id",
        "gone-return",
    ];
    let before = app.rows_holding("gone@example.com").await;
    assert!(
        before.iter().any(|(table, _)| table.ends_with("events")),
        "the test reaches the events: {before:?}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let policy = UnpaidPolicy {
        remind_after: Some(1),
        delete_after: 1,
    };
    let swept = kassa_orders::sweep_unpaid(&app.store, &tenant.id, policy)
        .await
        .unwrap();
    assert_eq!(swept.deleted, 2);
    // Let the queued webhook deliveries and emails run on the erased rows.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for trace in traces {
        let found = app.rows_holding(trace).await;
        assert!(found.is_empty(), "{trace} outlives the erasure: {found:#?}");
    }
    let ip = app.rows_holding("127.0.0.1").await;
    assert!(
        !ip.iter()
            .any(|(table, _)| table.contains("consents") || table.ends_with("events")),
        "the customer's address outlives the erasure: {ip:#?}"
    );
}
