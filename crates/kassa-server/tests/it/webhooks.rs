//! Webhooks reach a real receiver that verifies each one with the official Standard
//! Webhooks library (tests/webhooks/receiver.py), on both databases.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kassa_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::pages::{Browser, details, product};

on_both_backends!(
    a_purchase_with_a_declined_card_sends_every_event,
    a_failing_receiver_gets_the_event_on_the_third_attempt,
    gone_disables_the_endpoint,
    a_test_key_never_reads_the_email_about_a_live_endpoint,
    a_disabled_endpoint_gets_nothing_until_it_is_enabled_again,
    a_rotated_secret_keeps_signing_for_the_overlap,
    filters_events_and_redelivery,
);

/// The Python receiver, killed when dropped.
pub(crate) struct Receiver {
    child: Child,
    pub(crate) url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Receiver {
    pub(crate) fn start(secret: &str, plan: &str, hold_first: f64) -> Self {
        Self::start_with(secret, plan, hold_first, &[])
    }

    pub(crate) fn start_with(secret: &str, plan: &str, hold_first: f64, extra: &[&str]) -> Self {
        let script = std::env::var("KASSA_WEBHOOK_RECEIVER").expect(
            "KASSA_WEBHOOK_RECEIVER is not set: run the suite with `bash tests/run.sh`, which \
             installs the standardwebhooks library",
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deliveries.jsonl");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--secret", secret, "--plan", plan, "--log"])
            .arg(&log)
            .args(["--hold-first", &hold_first.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .expect("the receiver's port");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/hooks/kassa"),
            log,
            _dir: dir,
        }
    }

    pub(crate) fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `n` requests arrived (or 30 s passed) and returns them.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.received()
    }
}

async fn endpoint(app: &TestApp, key: &str, body: Value) -> (String, String) {
    let created = app.post_as(key, "/api/v1/webhook-endpoints", body).await;
    let e = created.ok();
    (
        e["id"].as_str().unwrap().to_owned(),
        e["secret"].as_str().unwrap().to_owned(),
    )
}

/// Creates an order through the API and returns its id.
async fn api_order(app: &TestApp, product: &str) -> String {
    app.transfer_order_as(&app.key, product).await
}

/// Starts a receiver whose secret is only known once the endpoint exists.
pub(crate) async fn endpoint_with_receiver(
    app: &TestApp,
    plan: &str,
    filter: Value,
) -> (String, Receiver) {
    endpoint_with_receiver_as(app, &app.key, plan, filter).await
}

/// [`endpoint_with_receiver`], of the mode of `key`.
async fn endpoint_with_receiver_as(
    app: &TestApp,
    key: &str,
    plan: &str,
    filter: Value,
) -> (String, Receiver) {
    // The endpoint needs the URL and the receiver needs the secret: create the
    // endpoint disabled, start the receiver, point the endpoint at it and enable it.
    let (id, secret) = endpoint(
        app,
        key,
        json!({"url": "https://placeholder.example/hook", "disabled": true, "event_types": filter}),
    )
    .await;
    let receiver = Receiver::start(&secret, plan, 0.0);
    app.patch_as(
        key,
        &format!("/api/v1/webhook-endpoints/{id}"),
        json!({"url": receiver.url, "disabled": false}),
    )
    .await
    .ok();
    (id, receiver)
}

async fn a_purchase_with_a_declined_card_sends_every_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, receiver) = endpoint_with_receiver(&app, "", json!([])).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let checkout = b.open(&format!("/acme/test/buy/{prd}?quantity=2")).await;
    let placed = b
        .submit(
            &checkout,
            "/acme/test/checkout",
            &details(&checkout.csrf(), "test_card"),
        )
        .await;
    let pay_path = placed.location.unwrap();
    let pay = b.get(&pay_path).await;
    for card in ["4000 0000 0000 0002", "4242 4242 4242 4242"] {
        b.post(
            &pay_path,
            &[
                ("csrf", &pay.csrf()),
                ("card_number", card),
                ("expiry", "12/34"),
                ("cvc", "123"),
            ],
        )
        .await;
    }
    let got = receiver.wait_for(5).await;
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(
        got.iter().all(|r| r["verified"] == true),
        "every signature verifies: {got:?}"
    );
    let mut types: Vec<_> = got
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "order.created",
            "order.delivered",
            "payment.failed",
            "payment.succeeded",
            "product.delivered"
        ]
    );
    let delivered = got
        .iter()
        .find(|r| r["type"] == "product.delivered")
        .unwrap();
    assert_eq!(
        delivered["event"]["data"]["line"]["licenses"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let done = got.iter().find(|r| r["type"] == "order.delivered").unwrap();
    assert_eq!(
        done["event"]["data"]["order"]["delivery_status"],
        "delivered"
    );
    let paid = got
        .iter()
        .find(|r| r["type"] == "payment.succeeded")
        .unwrap();
    let order = &paid["event"]["data"]["order"];
    assert_eq!(
        order["status"], "paid",
        "the full order travels with the event"
    );
    assert_eq!(order["total"], 3998);
    assert_eq!(order["customer"]["email"], "buyer@example.com");
    assert_eq!(paid["event"]["data"]["payment"]["card_last4"], "4242");
    assert!(paid["webhook_id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(paid["webhook_id"], paid["event"]["id"]);
    let failed = got.iter().find(|r| r["type"] == "payment.failed").unwrap();
    assert_eq!(
        failed["event"]["data"]["payment"]["failure_code"],
        "card_declined"
    );
}

async fn a_failing_receiver_gets_the_event_on_the_third_attempt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, receiver) =
        endpoint_with_receiver(&app, "500,500,200", json!(["order.created"])).await;
    let prd = product(&app, 1999).await;
    api_order(&app, &prd).await;
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got.iter().map(|r| r["webhook_id"].clone()).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id for every attempt"
    );
    assert_eq!(
        got.iter()
            .map(|r| r["answered"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [500, 500, 200]
    );
    // The attempt log shows all three.
    let mut deliveries = Value::Null;
    for _ in 0..50 {
        deliveries = app
            .get(&format!("/api/v1/webhook-endpoints/{id}/deliveries"))
            .await
            .ok()
            .clone();
        if deliveries["data"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = &deliveries["data"][0];
    assert_eq!(d["status"], "succeeded", "{deliveries}");
    assert_eq!(d["event_type"], "order.created");
    let attempts: Vec<_> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [500, 500, 200]);
    assert!(
        d["attempts"][0]["response"]
            .as_str()
            .unwrap()
            .contains("answer 500")
    );
}

async fn gone_disables_the_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, receiver) = endpoint_with_receiver(&app, "410", json!([])).await;
    let prd = product(&app, 1999).await;
    api_order(&app, &prd).await;
    receiver.wait_for(1).await;
    let mut disabled = false;
    for _ in 0..50 {
        let e = app.get(&format!("/api/v1/webhook-endpoints/{id}")).await;
        if e.ok()["disabled"] == true {
            disabled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(disabled, "410 Gone disables the endpoint");
    let notice = disabled_notice(&app, &app.key).await;
    assert_eq!(
        notice["to"], "owner@acme.test",
        "the merchant is told: {notice}"
    );
    assert!(notice["subject"].as_str().unwrap().contains("was disabled"));
    assert!(
        notice["subject"]
            .as_str()
            .unwrap()
            .contains("a test mode webhook endpoint"),
        "the endpoint's mode: {notice}"
    );
    assert!(
        notice["text_body"]
            .as_str()
            .unwrap()
            .contains(&receiver.url)
    );
    api_order(&app, &prd).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "a disabled endpoint gets nothing more"
    );
}

/// The owners' email about a disabled endpoint, once kept, as `key` lists it (null
/// if it never is).
async fn disabled_notice(app: &TestApp, key: &str) -> Value {
    for _ in 0..50 {
        let emails = app.get_as(key, "/api/v1/emails").await;
        if let Some(m) = emails.ok()["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == "endpoint_disabled" && m["status"] == "kept")
        {
            return m.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Value::Null
}

/// The owners' email about a disabled live endpoint names its URL: it belongs to live
/// mode, and a test key never reads it (nor a live key a test endpoint's).
async fn a_test_key_never_reads_the_email_about_a_live_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, receiver) = endpoint_with_receiver_as(&app, &app.live_key, "410", json!([])).await;
    let (prd, _) = crate::modes::product_as(&app, &app.live_key).await;
    app.transfer_order_as(&app.live_key, &prd).await;
    receiver.wait_for(1).await;
    let notice = disabled_notice(&app, &app.live_key).await;
    assert!(
        notice["text_body"]
            .as_str()
            .unwrap_or_default()
            .contains(&receiver.url),
        "the live key reads the live endpoint's email: {notice}"
    );
    let test = app.get_as(&app.key, "/api/v1/emails").await;
    let listed = test.ok()["data"].as_array().unwrap().clone();
    assert!(
        listed.iter().all(|m| m["kind"] != "endpoint_disabled"
            && !m["text_body"]
                .as_str()
                .unwrap_or_default()
                .contains(&receiver.url)),
        "a test key reads no live endpoint's URL: {listed:?}"
    );
}

/// The deliveries of an endpoint disabled while they wait for their next attempt are
/// held, not sent; enabled again, it gets them. An event recorded while it was disabled
/// is not queued for it; the merchant sends it again from the events list.
async fn a_disabled_endpoint_gets_nothing_until_it_is_enabled_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The receiver keeps the first attempt 2 s, then answers 500: a retry is due 1 s
    // later (the tests' schedule), by which time the endpoint is disabled.
    let (id, secret) = endpoint(
        &app,
        &app.key,
        json!({"url": "https://placeholder.example/hook", "disabled": true,
               "event_types": ["order.created"]}),
    )
    .await;
    let receiver = Receiver::start(&secret, "500", 2.0);
    let endpoint_path = format!("/api/v1/webhook-endpoints/{id}");
    let enabled = |on: bool| json!({"url": receiver.url, "disabled": !on});
    app.patch_as(&app.key, &endpoint_path, enabled(true))
        .await
        .ok();
    let prd = product(&app, 1999).await;
    let first = api_order(&app, &prd).await;
    app.patch_as(&app.key, &endpoint_path, enabled(false))
        .await
        .ok();
    // Long past the first attempt's answer and its retry's time.
    tokio::time::sleep(Duration::from_millis(5000)).await;
    let held = receiver.received();
    assert!(
        held.len() <= 1,
        "nothing after the endpoint was disabled: {held:?}"
    );
    let deliveries = app.get(&format!("{endpoint_path}/deliveries")).await;
    assert_eq!(
        deliveries.ok()["data"][0]["status"],
        "pending",
        "held, not given up: {}",
        deliveries.text
    );
    // An order placed while it is disabled: its event is not queued for it.
    let second = api_order(&app, &prd).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), held.len());

    // Enabled again: the held delivery goes out (and succeeds), the missed event does not.
    app.patch_as(&app.key, &endpoint_path, enabled(true))
        .await
        .ok();
    let got = receiver.wait_for(held.len() + 1).await;
    let last = got.last().unwrap();
    assert_eq!(last["answered"], 200, "{got:?}");
    assert_eq!(last["event"]["data"]["order"]["id"], first.as_str());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.received().len(),
        held.len() + 1,
        "the missed event is not sent by itself"
    );
    // The merchant finds the missed event and sends it again.
    let events = app.get("/api/v1/events?type=order.created").await;
    let missed = events.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["payload"]["data"]["order"]["id"] == second.as_str())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .expect("the missed event is listed");
    app.post(
        &format!("{endpoint_path}/redeliver"),
        json!({"event_id": missed}),
    )
    .await
    .ok();
    let got = receiver.wait_for(held.len() + 2).await;
    assert_eq!(
        got.last().unwrap()["event"]["data"]["order"]["id"],
        second.as_str()
    );
    assert!(got.iter().all(|r| r["verified"] == true));
}

async fn a_rotated_secret_keeps_signing_for_the_overlap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, receiver) = endpoint_with_receiver(&app, "", json!(["order.created"])).await;
    let rotated = app
        .post(
            &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
            json!({}),
        )
        .await;
    let new_secret = rotated.ok()["secret"].as_str().unwrap().to_owned();
    let prd = product(&app, 1999).await;
    api_order(&app, &prd).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0]["verified"], true, "the old secret still verifies");
    assert_eq!(
        got[0]["signatures"], 2,
        "signed with the new and the old secret"
    );
    // A receiver that already switched to the new secret verifies too.
    let switched = Receiver::start(&new_secret, "", 0.0);
    app.patch_as(
        &app.key,
        &format!("/api/v1/webhook-endpoints/{id}"),
        json!({"url": switched.url}),
    )
    .await
    .ok();
    api_order(&app, &prd).await;
    let got = switched.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["verified"], true);
}

async fn filters_events_and_redelivery(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, receiver) = endpoint_with_receiver(&app, "", json!(["payment.succeeded"])).await;
    let prd = product(&app, 1999).await;
    let order = api_order(&app, &prd).await;
    app.post(
        &format!("/api/v1/orders/{order}/payments"),
        json!({"method": "bank_transfer", "amount": 1999, "currency": "USD"}),
    )
    .await
    .ok();
    let got = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got_now = receiver.received();
    assert_eq!(got_now.len(), 1, "only the filtered type: {got:?}");
    assert_eq!(got_now[0]["type"], "payment.succeeded");

    let events = app.get("/api/v1/events?type=order.created").await;
    let created = events.ok()["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(events.body["data"].as_array().unwrap().len(), 1);
    let all = app.get("/api/v1/events").await;
    let mut kinds: Vec<_> = all.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds.dedup();
    assert!(
        kinds.contains(&"order.created".to_owned())
            && kinds.contains(&"payment.succeeded".to_owned()),
        "{kinds:?}"
    );
    app.get("/api/v1/events?type=order.paid").await.problem(422);
    let one = app.get(&format!("/api/v1/events/{created}")).await;
    assert_eq!(one.ok()["payload"]["data"]["order"]["id"], order.as_str());

    app.post(
        &format!("/api/v1/webhook-endpoints/{id}/redeliver"),
        json!({"event_id": created}),
    )
    .await
    .ok();
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1]["type"], "order.created", "sent again on request");
    assert_eq!(got[1]["webhook_id"], created.as_str());
    app.post(
        &format!("/api/v1/webhook-endpoints/{id}/redeliver"),
        json!({"event_id": "evt_nope"}),
    )
    .await
    .problem(404);
    let other = app.new_tenant("other").await;
    app.get_as(&other, &format!("/api/v1/events/{created}"))
        .await
        .problem(404);
    app.post_as(
        &other,
        &format!("/api/v1/webhook-endpoints/{id}/redeliver"),
        json!({"event_id": created}),
    )
    .await
    .problem(404);
}
