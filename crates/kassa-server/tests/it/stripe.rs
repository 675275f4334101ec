//! Stripe wired into orders: a store with Stripe keys sends its customers to a
//! Checkout Session and is paid only by Stripe's signed webhook, checked against the
//! order. Kassa talks to a stand-in of Stripe's Checkout Sessions endpoint started
//! here (`stripe-stateful-mock`, the stand-in `kassa-payments` is tested against, has
//! no Checkout Sessions), and the webhooks are signed here as Stripe signs them
//! (HMAC-SHA256 of `"{t}.{body}"` keyed with the whole `whsec_` secret), with `hmac`
//! rather than Kassa's own signing code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use kassa_testkit::{Backend, on_both_backends};
use poem::http::StatusCode;
use poem::web::{Data, Form};
use poem::{EndpointExt, Request, Response, Route, handler, post};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::dashboard::merchant;
use crate::emails::Sink;
use crate::harness::{Answer, Options, TestApp};
use crate::modes::order_once;
use crate::pages::{Browser, details, product};
use crate::webhooks::endpoint_with_receiver;

on_both_backends!(
    a_test_store_sells_through_stripe,
    a_stripe_payment_is_refunded_at_stripe,
    an_expired_stripe_page_ends_its_attempt,
    a_lapsed_coupon_hold_is_not_paid_through_stripe_past_the_limit,
    forged_replayed_and_mismatched_events_pay_nothing,
    a_stripe_test_event_never_pays_a_live_order,
    stripe_down_is_a_clear_error_and_pays_nothing,
    stripe_keys_are_never_shown_again,
    the_dashboard_sets_stripe_keys,
    a_failed_stripe_payment_is_told_and_the_customer_pays_again,
    money_paid_at_stripe_after_switching_method_still_pays_the_order,
    events_arriving_at_once_pay_once,
);

const TEST_KEY: &str = "rk_test_51KassaRestrictedKey0001";
const TEST_WHSEC: &str = "whsec_kassaTestEndpointSecret0001";
const LIVE_KEY: &str = "sk_live_51KassaLiveSecretKey0002";
const LIVE_WHSEC: &str = "whsec_kassaLiveEndpointSecret0002";

/// Checkout Sessions as Stripe answers them: a session per idempotency key, its
/// `url` on Stripe's checkout domain, the key's mode as `livemode`. Each request's
/// form is kept, for the tests to read what Kassa asked for.
#[derive(Default)]
struct Sessions {
    by_key: HashMap<String, Value>,
    made: Vec<Value>,
    /// Refunds as Stripe answers them, one per idempotency key.
    refunds: Vec<Value>,
}

struct StandIn {
    base: String,
    sessions: Arc<Mutex<Sessions>>,
    _stop: oneshot::Sender<()>,
}

#[handler]
fn create_session(
    req: &Request,
    Form(form): Form<Vec<(String, String)>>,
    Data(sessions): Data<&Arc<Mutex<Sessions>>>,
) -> Response {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let key = header("authorization")
        .strip_prefix("Bearer ")
        .unwrap_or_default()
        .to_owned();
    if !(key.starts_with("sk_") || key.starts_with("rk_")) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .content_type("application/json")
            .body(r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#);
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut sessions = sessions.lock().unwrap();
    let idempotency = header("idempotency-key");
    let session = match sessions.by_key.get(&idempotency) {
        Some(session) => session.clone(),
        None => {
            let live = key.contains("_live_");
            let id = format!(
                "cs_{}_{}",
                if live { "live" } else { "test" },
                sessions.made.len() + 1
            );
            let unit: i64 = field("line_items[0][price_data][unit_amount]")
                .parse()
                .unwrap();
            let quantity: i64 = field("line_items[0][quantity]").parse().unwrap();
            let session = json!({
                "id": id, "object": "checkout.session", "livemode": live,
                "url": format!("https://checkout.stripe.com/c/pay/{id}"),
                "amount_total": unit * quantity,
                "currency": field("line_items[0][price_data][currency]"),
                "client_reference_id": field("client_reference_id"),
                "metadata": {"order_id": field("metadata[order_id]"), "tenant_id": field("metadata[tenant_id]")},
                "customer_email": field("customer_email"),
                "success_url": field("success_url"), "cancel_url": field("cancel_url"),
                "payment_status": "unpaid", "status": "open", "payment_intent": null,
                "idempotency_key": idempotency,
            });
            sessions.by_key.insert(idempotency, session.clone());
            sessions.made.push(session.clone());
            session
        }
    };
    Response::builder()
        .content_type("application/json")
        .body(session.to_string())
}

/// Stripe's `POST /v1/refunds` of a PaymentIntent: a refund per idempotency key.
#[handler]
fn create_refund(
    req: &Request,
    Form(form): Form<Vec<(String, String)>>,
    Data(sessions): Data<&Arc<Mutex<Sessions>>>,
) -> Response {
    let idempotency = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut sessions = sessions.lock().unwrap();
    let refund = match sessions
        .refunds
        .iter()
        .find(|r| r["idempotency_key"] == idempotency.as_str())
    {
        Some(refund) => refund.clone(),
        None => {
            let refund = json!({
                "id": format!("re_{}", sessions.refunds.len() + 1), "object": "refund",
                "amount": field("amount").parse::<i64>().unwrap(),
                "payment_intent": field("payment_intent"), "status": "succeeded",
                "idempotency_key": idempotency,
            });
            sessions.refunds.push(refund.clone());
            refund
        }
    };
    Response::builder()
        .content_type("application/json")
        .body(refund.to_string())
}

impl StandIn {
    async fn start() -> Self {
        let sessions = Arc::new(Mutex::new(Sessions::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let app = Route::new()
            .at("/v1/checkout/sessions", post(create_session))
            .at("/v1/refunds", post(create_refund))
            .data(sessions.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = poem::Server::new(poem::listener::TcpListener::bind(addr.to_string()));
        tokio::spawn(async move {
            server
                .run_with_graceful_shutdown(
                    app,
                    async {
                        stopped.await.ok();
                    },
                    None,
                )
                .await
                .ok();
        });
        let base = format!("http://{addr}");
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            base,
            sessions,
            _stop: stop,
        }
    }

    fn made(&self) -> Vec<Value> {
        self.sessions.lock().unwrap().made.clone()
    }

    fn refunds(&self) -> Vec<Value> {
        self.sessions.lock().unwrap().refunds.clone()
    }
}

/// A Kassa whose Stripe is `stand_in`, sending mail to `sink` when given.
async fn spawn(backend: Backend, stand_in: &StandIn, sink: Option<&Sink>) -> TestApp {
    let mut options = Options {
        smtp_url: sink.map(Sink::url),
        ..Options::default()
    };
    options.providers.stripe_api_base = stand_in.base.clone();
    TestApp::spawn_with(backend, options).await
}

/// Sets `mode`'s Stripe keys of the store whose key is `key`, and offers Stripe.
async fn set_up_stripe(app: &TestApp, key: &str, mode: &str, secret: &str, whsec: &str) {
    let answer = app
        .send(
            app.request(Method::PUT, key, &format!("/api/v1/settings/stripe/{mode}"))
                .json(&json!({"secret_key": secret, "webhook_secret": whsec})),
        )
        .await;
    answer.ok();
    app.patch_as(
        key,
        "/api/v1/settings",
        json!({"payment_methods": ["stripe", "test_card", "bank_transfer"]}),
    )
    .await
    .ok();
}

/// The `Stripe-Signature` header Stripe sends for `body` signed at `t`.
fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Stripe's `checkout.session.completed` for `session`, paid.
fn completed(event_id: &str, session: &Value) -> Value {
    let mut paid = session.clone();
    paid["payment_status"] = json!("paid");
    paid["status"] = json!("complete");
    paid["payment_intent"] = json!(format!("pi_{event_id}"));
    json!({"id": event_id, "object": "event", "type": "checkout.session.completed",
           "livemode": session["livemode"], "api_version": "2024-06-20", "data": {"object": paid}})
}

/// Delivers `event` to `path` signed with `secret` `age` seconds ago, as Stripe does.
async fn deliver(app: &TestApp, path: &str, secret: &str, event: &Value, age: i64) -> Answer {
    let body = event.to_string();
    let t = chrono::Utc::now().timestamp() - age;
    app.send(
        reqwest::Client::new()
            .post(app.url(path))
            .header("stripe-signature", stripe_signature(secret, t, &body))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// Delivers `event` to acme's test mode endpoint, signed now with its secret.
async fn deliver_test(app: &TestApp, event: &Value) -> Answer {
    deliver(app, "/acme/test/webhooks/stripe", TEST_WHSEC, event, 0).await
}

/// How many `kind` events the store whose key is `key` recorded.
async fn events_of(app: &TestApp, key: &str, kind: &str) -> usize {
    let events = app.get_as(key, "/api/v1/events?limit=100").await;
    events.ok()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .count()
}

/// The order `order_id`, unpaid, its first attempt ended by Stripe with `code`.
async fn attempt_ended(app: &TestApp, order_id: &str, code: &str) -> Answer {
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "not_paid");
    assert_eq!(order.body["payments"][0]["status"], "failed");
    assert_eq!(order.body["payments"][0]["failure_code"], code);
    order
}

/// A customer places an order on `checkout` paying with Stripe; returns where Kassa
/// sent them and the order's id.
async fn place_with_stripe(b: &Browser, link: &str, checkout: &str) -> String {
    let page = b.open(link).await;
    assert!(page.html.contains("value=\"stripe\""), "Stripe is offered");
    let placed = b
        .submit(&page, checkout, &details(&page.csrf(), "stripe"))
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    placed.location.unwrap()
}

/// A customer buys two of a new product on acme's test checkout and pays with Stripe;
/// returns the session Kassa made and its order's id.
async fn test_order_sent_to_stripe(
    app: &TestApp,
    stand_in: &StandIn,
    b: &Browser,
) -> (Value, String) {
    let prd = product(app, 1999).await;
    place_with_stripe(b, &format!("/acme/test/buy/{prd}"), "/acme/test/checkout").await;
    let session = stand_in.made().last().unwrap().clone();
    let order_id = session["metadata"]["order_id"].as_str().unwrap().to_owned();
    (session, order_id)
}

async fn a_test_store_sells_through_stripe(backend: Backend) {
    let stand_in = StandIn::start().await;
    let sink = Sink::start(None);
    let app = spawn(backend, &stand_in, Some(&sink)).await;
    let (_, receiver) = endpoint_with_receiver(&app, "", json!(["payment.succeeded"])).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let to = place_with_stripe(&b, &format!("/acme/test/buy/{prd}"), "/acme/test/checkout").await;

    // Sent to Stripe's page for the order's total, the order and store in the session.
    let sessions = stand_in.made();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(to, session["url"].as_str().unwrap());
    assert!(
        to.starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{to}"
    );
    assert_eq!(
        (session["amount_total"].clone(), session["currency"].clone()),
        (json!(3998), json!("usd"))
    );
    let order_id = session["metadata"]["order_id"].as_str().unwrap().to_owned();
    assert_eq!(session["customer_email"], "buyer@example.com");

    // Coming back to the success URL pays nothing: the order page says the payment is
    // being confirmed.
    let success = session["success_url"].as_str().unwrap();
    let back = b.get(success.strip_prefix(&app.base).unwrap()).await;
    assert_eq!(back.status, 200);
    assert!(back.html.contains("payment-confirming"), "{}", back.html);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "not_paid");
    assert_eq!(order.body["payment_method"], "stripe");
    assert_eq!(order.body["payments"][0]["status"], "pending");
    assert_eq!(order.body["payments"][0]["reference"], session["id"]);

    // Clicking "Pay with Stripe" again while it is pending leads to the same session,
    // never to a second one that could be paid too.
    let pay_path = order.body["pay_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap()
        .to_owned();
    let pay = b.get(&pay_path).await;
    let again = b.post(&pay_path, &[("csrf", &pay.csrf())]).await;
    assert_eq!(
        again.location.as_deref(),
        Some(to.as_str()),
        "{}",
        again.html
    );
    assert_eq!(stand_in.made().len(), 1);
    assert_eq!(
        app.get(&format!("/api/v1/orders/{order_id}")).await.body["payments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Stripe's signed webhook pays it: licenses delivered, emails, payment.succeeded.
    let event = completed("evt_1", session);
    let answer = deliver_test(&app, &event).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let order = order_once(&app, &app.key, &order_id, |o| {
        o["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["delivery_status"], "delivered", "{order}");
    assert_eq!(
        order["payments"].as_array().unwrap().len(),
        1,
        "the attempt, settled"
    );
    assert_eq!(order["payments"][0]["status"], "succeeded");
    assert_eq!(order["lines"][0]["licenses"].as_array().unwrap().len(), 2);
    let hooks = receiver.wait_for(1).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["type"], "payment.succeeded");
    assert_eq!(hooks[0]["verified"], true);
    assert_eq!(hooks[0]["event"]["livemode"], false);
    let mails = sink.wait_for(2).await;
    assert!(
        mails
            .iter()
            .any(|m| m["text"].as_str().unwrap().contains("K-1")),
        "{mails:?}"
    );
    let page = b.get(success.strip_prefix(&app.base).unwrap()).await;
    assert!(!page.html.contains("payment-confirming"));

    // Stripe delivers the same event again (a retry, or a replay within the
    // tolerance): answered 200, nothing more.
    let again = deliver_test(&app, &event).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(events_of(&app, &app.key, "payment.succeeded").await, 1);
    // An event type Kassa does not act on: 200, so Stripe stops sending it.
    let other = json!({"id": "evt_2", "object": "event", "type": "customer.created", "livemode": false,
                       "data": {"object": {"id": "cus_1", "object": "customer"}}});
    let ignored = deliver_test(&app, &other).await;
    assert_eq!(ignored.status, 200, "{}", ignored.text);
    assert_eq!(ignored.body["ignored"], "customer.created");
}

async fn forged_replayed_and_mismatched_events_pay_nothing(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    // Another store, with its own Stripe account and an order sent to Stripe.
    let globex = app.new_tenant("globex").await;
    set_up_stripe(
        &app,
        &globex,
        "test",
        "sk_test_globexKey0003",
        "whsec_globexSecret0003",
    )
    .await;
    let b = Browser::new(&app);
    let (session, order_id) = test_order_sent_to_stripe(&app, &stand_in, &b).await;
    let hook = "/acme/test/webhooks/stripe";
    let genuine = completed("evt_genuine", &session);

    // Signed with another secret, tampered with, or signed long ago: 400.
    let forged = deliver(&app, hook, "whsec_attackerSecret", &genuine, 0).await;
    assert_eq!(forged.problem(400)["type"], "invalid_signature");
    let body = genuine.to_string();
    let t = chrono::Utc::now().timestamp();
    let tampered = app
        .send(
            reqwest::Client::new()
                .post(app.url(hook))
                .header("stripe-signature", stripe_signature(TEST_WHSEC, t, &body))
                .body(body.replace("3998", "1")),
        )
        .await;
    assert_eq!(tampered.problem(400)["type"], "invalid_signature");
    let unsigned = app
        .send(
            reqwest::Client::new()
                .post(app.url(hook))
                .body(body.clone()),
        )
        .await;
    assert_eq!(unsigned.problem(400)["type"], "invalid_signature");
    let stale = deliver(&app, hook, TEST_WHSEC, &genuine, 3600).await;
    assert_eq!(stale.problem(400)["type"], "stale_signature");

    // Genuine events that do not fit the order: 422 with the reason, nothing paid.
    let variant = |id: &str, change: &dyn Fn(&mut Value)| {
        let mut event = completed(id, &session);
        change(&mut event["data"]["object"]);
        event
    };
    let cases = [
        (
            variant("evt_amount", &|s| s["amount_total"] = json!(1)),
            "must be the order total",
        ),
        (
            variant("evt_currency", &|s| s["currency"] = json!("eur")),
            "the order is in USD",
        ),
        (
            variant("evt_unknown", &|s| {
                s["metadata"]["order_id"] = json!("ord_doesnotexist")
            }),
            "names no order of this store",
        ),
    ];
    for (event, reason) in &cases {
        let answer = deliver(&app, hook, TEST_WHSEC, event, 0).await;
        let problem = answer.problem(422);
        assert_eq!(problem["type"], "payment_refused");
        assert!(
            problem["detail"].as_str().unwrap().contains(reason),
            "{}",
            answer.text
        );
    }
    // Globex's order paid at acme's endpoint (acme's secret, globex's store and
    // order in the session): refused; and acme's order named with globex's store id.
    let globex_prd = {
        let pool = app
            .post_as(&globex, "/api/v1/license-pools", json!({"name": "G"}))
            .await;
        let pool = pool.ok()["id"].as_str().unwrap().to_owned();
        let p = app
            .post_as(
                &globex,
                "/api/v1/products",
                json!({"name": "G", "prices": [{"currency": "USD", "amount": 1999}],
                     "delivery": {"method": "license_pool", "pool_id": pool}}),
            )
            .await;
        p.ok()["id"].as_str().unwrap().to_owned()
    };
    let gb = Browser::new(&app);
    place_with_stripe(
        &gb,
        &format!("/globex/test/buy/{globex_prd}"),
        "/globex/test/checkout",
    )
    .await;
    let globex_session = stand_in.made()[1].clone();
    let theirs = completed("evt_theirs", &globex_session);
    let answer = deliver(&app, hook, TEST_WHSEC, &theirs, 0).await;
    assert!(
        answer.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("another store")
    );
    let mixed = variant("evt_mixed", &|s| {
        s["metadata"]["tenant_id"] = globex_session["metadata"]["tenant_id"].clone()
    });
    let answer = deliver(&app, hook, TEST_WHSEC, &mixed, 0).await;
    assert!(
        answer.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("another store")
    );
    // Globex's order at globex's endpoint signed with acme's secret: a bad signature.
    let answer = deliver(&app, "/globex/test/webhooks/stripe", TEST_WHSEC, &theirs, 0).await;
    answer.problem(400);

    // Nor does the API record a Stripe payment: only Stripe's webhook does.
    let recorded = app
        .post(
            &format!("/api/v1/orders/{order_id}/payments"),
            json!({"method": "stripe", "amount": 3998, "currency": "USD"}),
        )
        .await;
    assert_eq!(recorded.invalid_fields(), ["method"]);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "not_paid");
    assert_eq!(order.body["payments"][0]["status"], "pending");
    assert_eq!(events_of(&app, &app.key, "payment.succeeded").await, 0);
    assert_eq!(events_of(&app, &globex, "payment.succeeded").await, 0);
    assert_eq!(app.count_rows("provider_events").await, 0);

    // The genuine event still pays, once, after all that.
    let paid = deliver(&app, hook, TEST_WHSEC, &genuine, 0).await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert_eq!(paid.body["status"], "paid");
    let replayed = deliver(&app, hook, TEST_WHSEC, &genuine, 0).await;
    assert_eq!(replayed.body["replayed"], true, "{}", replayed.text);
    // A second, different "paid" event for the same order pays nothing more.
    let second = deliver(
        &app,
        hook,
        TEST_WHSEC,
        &completed("evt_second", &session),
        0,
    )
    .await;
    assert!(
        second.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("no longer waiting")
    );
    assert_eq!(events_of(&app, &app.key, "payment.succeeded").await, 1);
}

async fn a_stripe_test_event_never_pays_a_live_order(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    set_up_stripe(&app, &app.key, "live", LIVE_KEY, LIVE_WHSEC).await;
    let live_pool = app
        .post_as(
            &app.live_key,
            "/api/v1/license-pools",
            json!({"name": "Live"}),
        )
        .await;
    let live_pool = live_pool.ok()["id"].as_str().unwrap().to_owned();
    let prd = app
        .post_as(
            &app.live_key,
            "/api/v1/products",
            json!({"name": "Pro", "prices": [{"currency": "USD", "amount": 1999}],
                 "delivery": {"method": "license_pool", "pool_id": live_pool}}),
        )
        .await;
    let prd = prd.ok()["id"].as_str().unwrap().to_owned();
    let b = Browser::new(&app);
    let to = place_with_stripe(&b, &format!("/acme/buy/{prd}"), "/acme/checkout").await;
    assert!(to.contains("cs_live_"), "the live key made it: {to}");
    let session = stand_in.made()[0].clone();
    let order_id = session["metadata"]["order_id"].as_str().unwrap().to_owned();
    let mut test_event = completed("evt_test", &session);
    test_event["livemode"] = json!(false);
    // At the live endpoint, signed with the live secret; at the test endpoint, signed
    // with the test secret: a test mode payment either way, refused.
    for (hook, secret) in [
        ("/acme/webhooks/stripe", LIVE_WHSEC),
        ("/acme/test/webhooks/stripe", TEST_WHSEC),
    ] {
        let answer = deliver(&app, hook, secret, &test_event, 0).await;
        let detail = answer.problem(422)["detail"].as_str().unwrap().to_owned();
        assert!(
            detail.contains("a test mode payment cannot pay a live mode order"),
            "{detail}"
        );
    }
    let order = app
        .get_as(&app.live_key, &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(order.ok()["status"], "not_paid");
    // The live event at the live endpoint pays it.
    let live_event = completed("evt_live", &session);
    let answer = deliver(&app, "/acme/webhooks/stripe", LIVE_WHSEC, &live_event, 0).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let order = app
        .get_as(&app.live_key, &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(order.ok()["status"], "paid");
    assert_eq!(order.body["livemode"], true);
}

async fn stripe_down_is_a_clear_error_and_pays_nothing(backend: Backend) {
    // Kassa's Stripe is a port nothing listens on.
    let app = TestApp::spawn(backend).await;
    stripe_out_of_reach_is_told(&app).await;
    // Or it takes the connection and never answers: Kassa gives up at its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut options = Options::default();
    options.providers.stripe_api_base = format!("http://{addr}");
    options.providers.timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(backend, options).await;
    stripe_out_of_reach_is_told(&app).await;
}

/// A customer choosing Stripe while `app`'s Stripe cannot be reached is told so next
/// to the method, at checkout and again from the payment page; nothing is recorded.
async fn stripe_out_of_reach_is_told(app: &TestApp) {
    set_up_stripe(app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    let prd = product(app, 1999).await;
    let b = Browser::new(app);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    let placed = b
        .submit(
            &page,
            "/acme/test/checkout",
            &details(&page.csrf(), "stripe"),
        )
        .await;
    assert_eq!(placed.status, 422, "{}", placed.html);
    let said = placed
        .error("payment_method")
        .expect("a message next to the method");
    assert!(said.contains("Stripe could not be reached"), "{said}");
    assert!(said.contains("nothing was charged"), "{said}");
    // The customer tries again from the payment page: the same message, still unpaid.
    let orders = app.get("/api/v1/orders").await;
    let order = orders.ok()["data"][0].clone();
    let pay_url = order["pay_url"].as_str().unwrap();
    let pay_path = pay_url.strip_prefix(&app.base).unwrap();
    let pay = b.get(pay_path).await;
    assert!(pay.html.contains("Pay with Stripe"), "{}", pay.html);
    let retried = b.post(pay_path, &[("csrf", &pay.csrf())]).await;
    assert_eq!(retried.status, 422, "{}", retried.html);
    assert!(
        retried
            .error("payment_method")
            .unwrap()
            .contains("try again")
    );
    let order = app
        .get(&format!("/api/v1/orders/{}", order["id"].as_str().unwrap()))
        .await;
    assert_eq!(order.ok()["status"], "not_paid");
    assert_eq!(order.body["payments"], json!([]), "nothing recorded");
}

async fn stripe_keys_are_never_shown_again(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    let put = |mode: &str, key: &str, whsec: &str| {
        app.request(
            Method::PUT,
            &app.key,
            &format!("/api/v1/settings/stripe/{mode}"),
        )
        .json(&json!({"secret_key": key, "webhook_secret": whsec}))
    };
    // Not offered before its keys are set, even when enabled.
    app.patch_as(
        &app.key,
        "/api/v1/settings",
        json!({"payment_methods": ["stripe", "test_card"]}),
    )
    .await
    .ok();
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    assert!(!page.html.contains("value=\"stripe\""));

    let saved = app.send(put("test", TEST_KEY, TEST_WHSEC)).await;
    let stripe = &saved.ok()["stripe"];
    assert_eq!(stripe["test"]["configured"], true);
    assert_eq!(stripe["test"]["secret_key_last4"], "0001");
    assert_eq!(stripe["test"]["webhook_secret_last4"], "0001");
    assert_eq!(
        stripe["test"]["webhook_url"],
        format!("{}/acme/test/webhooks/stripe", app.base)
    );
    assert_eq!(stripe["live"]["configured"], false);
    assert_eq!(
        stripe["live"]["webhook_url"],
        format!("{}/acme/webhooks/stripe", app.base)
    );
    let shown = app.get("/api/v1/settings").await;
    for text in [&saved.text, &shown.text] {
        assert!(
            !text.contains(TEST_KEY) && !text.contains(TEST_WHSEC),
            "{text}"
        );
    }
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    assert!(page.html.contains("value=\"stripe\""), "offered once set");
    // The live checkout does not offer it: live mode has no keys.
    let live_prd = app
        .post_as(&app.live_key, "/api/v1/products", json!({"name": "L", "prices": [{"currency": "USD", "amount": 100}],
                 "delivery": {"method": "license_pool", "pool_id": app.post_as(&app.live_key, "/api/v1/license-pools", json!({"name": "L"})).await.ok()["id"]}}))
        .await;
    let live_page = b
        .open(&format!(
            "/acme/buy/{}",
            live_prd.ok()["id"].as_str().unwrap()
        ))
        .await;
    assert!(!live_page.html.contains("value=\"stripe\""));

    // A test key for live mode, a live key for test mode, a publishable key, no whsec_.
    let wrong = app.send(put("live", TEST_KEY, LIVE_WHSEC)).await;
    assert_eq!(wrong.invalid_fields(), ["secret_key"]);
    let wrong = app.send(put("test", LIVE_KEY, TEST_WHSEC)).await;
    assert_eq!(wrong.invalid_fields(), ["secret_key"]);
    let wrong = app
        .send(put("test", "pk_test_publishable0001", "nope"))
        .await;
    assert_eq!(wrong.invalid_fields(), ["secret_key", "webhook_secret"]);
    let wrong = app.send(put("sandbox", TEST_KEY, TEST_WHSEC)).await;
    assert_eq!(wrong.invalid_fields(), ["mode"]);
    // A read-only key may not set them.
    let read_only = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "ro", "scope": "read_only"}),
        )
        .await;
    let ro = read_only.ok()["api_key"].as_str().unwrap().to_owned();
    let refused = app
        .send(
            app.request(Method::PUT, &ro, "/api/v1/settings/stripe/test")
                .json(&json!({"secret_key": TEST_KEY, "webhook_secret": TEST_WHSEC})),
        )
        .await;
    refused.problem(403);
    // Nothing of the keys in any log-like answer: the database holds them for Kassa.
    let removed = app
        .delete_as(&app.key, "/api/v1/settings/stripe/test")
        .await;
    assert_eq!(removed.ok()["stripe"]["test"]["configured"], false);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    assert!(
        !page.html.contains("value=\"stripe\""),
        "not offered once removed"
    );
}

async fn the_dashboard_sets_stripe_keys(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let b = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let settings = b.open("/dashboard/settings").await;
    assert!(
        settings
            .html
            .contains(&format!("{}/ada/test/webhooks/stripe", app.base).replace('/', "&#x2f;")),
        "the URL to give Stripe: {}",
        settings.html
    );
    assert!(
        settings
            .html
            .contains(&format!("{}/ada/webhooks/stripe", app.base).replace('/', "&#x2f;"))
    );
    let save = |mode: &str, key: &str, whsec: &str, action: &str| {
        let csrf = settings.csrf();
        let (mode, key, whsec, action) = (
            mode.to_owned(),
            key.to_owned(),
            whsec.to_owned(),
            action.to_owned(),
        );
        let b = &b;
        async move {
            b.post(
                "/dashboard/settings/stripe",
                &[
                    ("csrf", csrf.as_str()),
                    ("mode", mode.as_str()),
                    (&format!("stripe_{mode}.secret_key"), key.as_str()),
                    (&format!("stripe_{mode}.webhook_secret"), whsec.as_str()),
                    ("action", action.as_str()),
                ],
            )
            .await
        }
    };
    // A test key for live mode: refused next to the field, nothing saved.
    let refused = save("live", TEST_KEY, LIVE_WHSEC, "save").await;
    assert_eq!(refused.status, 422, "{}", refused.html);
    assert!(
        refused
            .html
            .contains("id=\"e-stripe_live.secret_key\">must be a live mode key"),
        "{}",
        refused.html
    );
    assert!(
        !refused.html.contains(TEST_KEY),
        "what was typed is not shown back"
    );
    let saved = save("test", TEST_KEY, TEST_WHSEC, "save").await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let shown = b.open(&saved.location.unwrap()).await;
    assert!(
        shown.html.contains("Stripe keys saved for test mode."),
        "{}",
        shown.html
    );
    assert!(
        shown
            .html
            .contains("secret key ending in <code>0001</code>"),
        "{}",
        shown.html
    );
    assert!(!shown.html.contains(TEST_KEY) && !shown.html.contains(TEST_WHSEC));
    let tenant = app.store.tenant_by_slug("ada").await.unwrap();
    assert!(tenant.stripe_ready(kassa_domain::mode::Mode::Test));
    assert!(!tenant.stripe_ready(kassa_domain::mode::Mode::Live));
    let removed = save("test", "", "", "remove").await;
    assert_eq!(removed.status, 303, "{}", removed.html);
    let tenant = app.store.tenant_by_slug("ada").await.unwrap();
    assert!(!tenant.stripe_ready(kassa_domain::mode::Mode::Test));
}

async fn a_failed_stripe_payment_is_told_and_the_customer_pays_again(backend: Backend) {
    let stand_in = StandIn::start().await;
    let sink = Sink::start(None);
    let app = spawn(backend, &stand_in, Some(&sink)).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    let b = Browser::new(&app);
    let (first, order_id) = test_order_sent_to_stripe(&app, &stand_in, &b).await;
    // A bank debit that did not go through: Stripe's `async_payment_failed`.
    let failed = json!({"id": "evt_failed", "object": "event", "type": "checkout.session.async_payment_failed",
                        "livemode": false, "data": {"object": first}});
    let answer = deliver_test(&app, &failed).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let order = attempt_ended(&app, &order_id, "payment_failed").await;
    assert_eq!(events_of(&app, &app.key, "payment.failed").await, 1);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["to"], "buyer@example.com", "{mails:?}");

    // The customer pays again from the order's payment page: a new session (a new
    // attempt, a new idempotency key), then paid by its own event.
    let pay_url = order.body["pay_url"].as_str().unwrap().to_owned();
    let pay_path = pay_url.strip_prefix(&app.base).unwrap();
    let pay = b.get(pay_path).await;
    let again = b.post(pay_path, &[("csrf", &pay.csrf())]).await;
    assert_eq!(again.status, 303, "{}", again.html);
    let sessions = stand_in.made();
    assert_eq!(sessions.len(), 2);
    assert_eq!(again.location.as_deref(), sessions[1]["url"].as_str());
    assert_ne!(
        sessions[0]["idempotency_key"],
        sessions[1]["idempotency_key"]
    );
    let paid = deliver_test(&app, &completed("evt_paid", &sessions[1])).await;
    assert_eq!(paid.body["status"], "paid", "{}", paid.text);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    let statuses: Vec<_> = order.ok()["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].clone())
        .collect();
    assert!(
        statuses.contains(&json!("failed")) && statuses.contains(&json!("succeeded")),
        "{statuses:?}"
    );
}

/// The customer was sent to Stripe, came back, switched to bank transfer, then paid in
/// Stripe's tab after all: the money moved into the store's account, so the order is
/// paid (by Stripe), not left unpaid with the money taken.
async fn money_paid_at_stripe_after_switching_method_still_pays_the_order(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    let b = Browser::new(&app);
    let (session, order_id) = test_order_sent_to_stripe(&app, &stand_in, &b).await;
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    let pay_path = order.ok()["pay_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap()
        .to_owned();
    let pay = b.get(&pay_path).await;
    let method_path = pay_path.replace("/pay", "/method");
    let switched = b
        .post(
            &method_path,
            &[("csrf", &pay.csrf()), ("payment_method", "bank_transfer")],
        )
        .await;
    assert_eq!(switched.status, 303, "{}", switched.html);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["payment_method"], "bank_transfer");
    let paid = deliver_test(&app, &completed("evt_late", &session)).await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "paid");
    assert_eq!(order.body["payment_method"], "stripe");
}

/// Stripe delivering the same event several times at once, and two different "paid"
/// events for one order at once: paid once, one `payment.succeeded`.
async fn events_arriving_at_once_pay_once(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    let b = Browser::new(&app);
    let (session, order_id) = test_order_sent_to_stripe(&app, &stand_in, &b).await;
    let hook = "/acme/test/webhooks/stripe";
    let same = completed("evt_same", &session);
    let other = completed("evt_other", &session);
    let answers = futures::future::join_all((0..6).map(|i| {
        deliver(
            &app,
            hook,
            TEST_WHSEC,
            if i % 3 == 2 { &other } else { &same },
            0,
        )
    }))
    .await;
    let paid = answers
        .iter()
        .filter(|a| a.body["status"] == "paid")
        .count();
    assert_eq!(
        paid,
        1,
        "{:?}",
        answers.iter().map(|a| &a.text).collect::<Vec<_>>()
    );
    for a in &answers {
        assert!(
            a.body["status"] == "paid"
                || a.body["replayed"] == true
                || (a.status == 422 && a.text.contains("no longer waiting")),
            "{} {}",
            a.status,
            a.text
        );
    }
    assert_eq!(events_of(&app, &app.key, "payment.succeeded").await, 1);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["payments"].as_array().unwrap().len(), 1);
}

/// A refund of an order paid through Stripe goes back through Stripe: the
/// PaymentIntent that paid it is refunded (once per refund, even when asked twice),
/// and the order records Stripe's refund; the whole refunded revokes the keys.
async fn a_stripe_payment_is_refunded_at_stripe(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    let b = Browser::new(&app);
    let (session, order_id) = test_order_sent_to_stripe(&app, &stand_in, &b).await;
    let paid = deliver_test(&app, &completed("evt_r", &session)).await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    order_once(&app, &app.key, &order_id, |o| {
        o["delivery_status"] == "delivered"
    })
    .await;

    let refunds = format!("/api/v1/orders/{order_id}/refunds");
    let part = app
        .post(&refunds, json!({"amount": 1000, "reason": "one seat less"}))
        .await;
    assert_eq!(part.ok()["status"], "succeeded", "{}", part.text);
    assert_eq!(part.body["reference"], "re_1");
    assert_eq!(
        stand_in.refunds(),
        [
            json!({"id": "re_1", "object": "refund", "amount": 1000, "payment_intent": "pi_evt_r",
                "status": "succeeded", "idempotency_key": stand_in.refunds()[0]["idempotency_key"]})
        ]
    );
    let too_much = app.post(&refunds, json!({"amount": 5000})).await;
    assert_eq!(too_much.invalid_fields(), ["amount"]);
    assert_eq!(stand_in.refunds().len(), 1, "nothing asked of Stripe");

    let rest = app.post(&refunds, json!({})).await;
    assert_eq!(rest.ok()["amount"], 2998, "{}", rest.text);
    let at_stripe = stand_in.refunds();
    assert_eq!(at_stripe.len(), 2);
    assert_eq!(at_stripe[1]["amount"], 2998);
    assert_eq!(at_stripe[1]["payment_intent"], "pi_evt_r");
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "refunded");
    assert_eq!(order.body["amount_refunded"], 3998);
    assert_eq!(
        order.body["lines"][0]["revoked_licenses"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{}",
        order.text
    );
}

/// Places an order from `link` with the coupon ONCE, to be paid by card.
async fn place_with_coupon(b: &Browser, link: &str) -> crate::pages::Page {
    let page = b.open(link).await;
    let csrf = page.csrf();
    let mut fields = details(&csrf, "test_card");
    fields.push(("coupon", "ONCE"));
    b.submit(&page, "/acme/test/checkout", &fields).await
}

/// A Stripe page is made only while the order holds its coupon's use: one whose hold
/// lapsed, the coupon's last use taken meanwhile, is refused before Stripe is asked,
/// since a Stripe payment, once made, would count the use past the coupon's limit.
async fn a_lapsed_coupon_hold_is_not_paid_through_stripe_past_the_limit(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    app.patch_as(&app.key, "/api/v1/settings", json!({"coupon_hold": "1s"}))
        .await
        .ok();
    app.post(
        "/api/v1/coupons",
        json!({"code": "ONCE", "percent_off": 10, "max_redemptions": 1}),
    )
    .await
    .ok();
    let prd = product(&app, 1000).await;
    let link = format!("/acme/test/buy/{prd}?coupon=ONCE");
    // Ann's order holds the use for a second, and she does not pay.
    let ann = Browser::new(&app);
    let placed = place_with_coupon(&ann, &link).await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let ann_pay = placed.location.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Bob takes the lapsed use, and pays for it.
    let bob = Browser::new(&app);
    let placed = place_with_coupon(&bob, &link).await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let paid = bob
        .pay_by_card(placed.location.as_deref().unwrap(), "4242 4242 4242 4242")
        .await;
    assert_eq!(paid.status, 303, "{}", paid.html);

    // Ann switches to Stripe: no Stripe page is made for the discounted price.
    let pay = ann.get(&ann_pay).await;
    let switched = ann
        .post(
            &ann_pay.replace("/pay", "/method"),
            &[("csrf", &pay.csrf()), ("payment_method", "stripe")],
        )
        .await;
    assert_eq!(switched.status, 303, "{}", switched.html);
    let pay = ann.get(&ann_pay).await;
    let refused = ann.post(&ann_pay, &[("csrf", &pay.csrf())]).await;
    assert!(
        refused
            .error("coupon")
            .is_some_and(|e| e.contains("has been used up meanwhile")),
        "{} {}",
        refused.status,
        refused.html
    );
    assert!(stand_in.made().is_empty(), "Stripe was not asked");
    let coupons = app.get("/api/v1/coupons").await;
    assert_eq!(coupons.ok()["data"][0]["times_redeemed"], 1);
}

/// A Stripe page the customer left expires: its attempt ends (no payment failed, no
/// email), the order page stops saying the payment is being confirmed, and paying
/// again makes a new page.
async fn an_expired_stripe_page_ends_its_attempt(backend: Backend) {
    let stand_in = StandIn::start().await;
    let app = spawn(backend, &stand_in, None).await;
    set_up_stripe(&app, &app.key, "test", TEST_KEY, TEST_WHSEC).await;
    let b = Browser::new(&app);
    let (session, order_id) = test_order_sent_to_stripe(&app, &stand_in, &b).await;
    let mut expired = session.clone();
    expired["status"] = json!("expired");
    let event = json!({"id": "evt_exp", "object": "event", "type": "checkout.session.expired",
                       "livemode": false, "data": {"object": expired}});
    let answer = deliver_test(&app, &event).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let order = attempt_ended(&app, &order_id, "expired").await;
    assert_eq!(events_of(&app, &app.key, "payment.failed").await, 0);
    let pay_path = order.body["pay_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap()
        .to_owned();
    let page = b.get(&pay_path.replace("/pay", "")).await;
    assert!(!page.html.contains("payment-confirming"), "{}", page.html);

    let pay = b.get(&pay_path).await;
    let again = b.post(&pay_path, &[("csrf", &pay.csrf())]).await;
    let made = stand_in.made();
    assert_eq!(made.len(), 2, "a new page");
    assert_eq!(again.location.as_deref(), made[1]["url"].as_str());
    assert_ne!(made[0]["id"], made[1]["id"]);
}
