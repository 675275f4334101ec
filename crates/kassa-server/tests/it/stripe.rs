//! Stripe wired into orders: a store with Stripe keys starts a PaymentIntent for the
//! order, the customer confirms it on Kassa's pay page (Stripe.js's card Element), and
//! the order is paid only by Stripe's signed webhook, checked against the order.
//!
//! Kassa's Stripe here is localstripe (`crate::localstripe`), written by others: it
//! makes the PaymentIntents, takes the card ("what Stripe.js does" is done through its
//! API), refunds, and sends the webhooks itself, signed as Stripe signs them. The
//! attacks (a forged, tampered or stale signature, another store's order, a test mode
//! event presented as live) are events the test signs itself with `hmac` (not Kassa's
//! own signing code), as an attacker holding the secret would; so are the events
//! localstripe never sends (`payment_intent.canceled`, `refund.created` and
//! `refund.updated`, and any with `livemode: true`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use kassa_limits::LimitsConfig;
use kassa_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};

use crate::dashboard::{merchant, pool_and_product, product_id};
use crate::emails::Sink;
use crate::harness::{Answer, Options, TestApp};
use crate::localstripe::{LocalStripe, Recorder, SECRET_KEY, Sent};
use crate::modes::order_once;
use crate::pages::{Browser, details, product, unescape};
use crate::refunds::card_order;
use crate::webhooks::endpoint_with_receiver;

on_both_backends!(
    a_test_store_sells_through_stripe,
    a_stripe_payment_is_refunded_at_stripe,
    a_canceled_payment_intent_ends_its_attempt,
    a_lapsed_coupon_hold_is_not_paid_through_stripe_past_the_limit,
    forged_replayed_and_mismatched_events_pay_nothing,
    a_stripe_test_event_never_pays_a_live_order,
    stripe_down_is_a_clear_error_and_pays_nothing,
    stripe_keys_are_never_shown_again,
    the_dashboard_sets_stripe_keys,
    a_stripe_orders_page_names_its_payment_intent_not_a_transfer_reference,
    a_declined_card_is_told_and_the_customer_pays_again,
    money_paid_at_stripe_after_switching_method_still_pays_the_order,
    money_paid_at_stripe_for_an_order_paid_meanwhile_goes_back,
    events_arriving_at_once_pay_once,
    a_refund_made_in_stripes_dashboard_refunds_the_order,
    a_refund_that_fails_at_stripe_is_taken_back,
    the_stripe_webhook_limits_bad_signatures_and_survives_a_failing_database,
    a_card_needing_3d_secure_is_paid_only_once_authenticated,
    a_failed_3d_secure_leaves_the_order_unpaid_until_a_payment_succeeds,
);

const TEST_KEY: &str = SECRET_KEY;
const TEST_PK: &str = "pk_test_51KassaPublishableKey0001";
pub(crate) const TEST_WHSEC: &str = "whsec_kassaTestEndpointSecret0001";
const LIVE_KEY: &str = "sk_live_51KassaLiveSecretKey0002";
const LIVE_PK: &str = "pk_live_51KassaLivePublishable0002";
const LIVE_WHSEC: &str = "whsec_kassaLiveEndpointSecret0002";
/// Stripe's test cards, as localstripe takes them.
const GOOD_CARD: &str = "4242424242424242";
const DECLINED_CARD: &str = "4000000000000341";
/// Stripe's test card that asks for 3-D Secure on every payment.
const THREE_D_SECURE_CARD: &str = "4000002500003155";

/// A Kassa whose Stripe is `stripe`, sending mail to `sink` when given.
pub(crate) async fn spawn(backend: Backend, stripe: &LocalStripe, sink: Option<&Sink>) -> TestApp {
    let mut options = Options {
        smtp_url: sink.map(Sink::url),
        ..Options::default()
    };
    options.providers.stripe_api_base = stripe.base.clone();
    options.providers.stripe_js_url = stripe.js_url();
    TestApp::spawn_with(backend, options).await
}

/// Sets `mode`'s Stripe keys of the store whose key is `key`, and offers Stripe.
pub(crate) async fn set_up_stripe(app: &TestApp, key: &str, mode: &str, keys: (&str, &str, &str)) {
    let (secret, pk, whsec) = keys;
    let answer = app
        .send(
            app.request(Method::PUT, key, &format!("/api/v1/settings/stripe/{mode}"))
                .json(
                    &json!({"secret_key": secret, "publishable_key": pk, "webhook_secret": whsec}),
                ),
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

pub(crate) const TEST_KEYS: (&str, &str, &str) = (TEST_KEY, TEST_PK, TEST_WHSEC);
const LIVE_KEYS: (&str, &str, &str) = (LIVE_KEY, LIVE_PK, LIVE_WHSEC);

/// A Kassa with acme's Stripe test keys set, localstripe sending its events to acme's
/// test mode endpoint (and to a recorder, to replay them).
async fn kassa_with_stripe(
    backend: Backend,
    stripe: &LocalStripe,
    sink: Option<&Sink>,
) -> (TestApp, Recorder) {
    let app = spawn(backend, stripe, sink).await;
    set_up_stripe(&app, &app.live_key, "test", TEST_KEYS).await;
    let recorder = events_to(
        stripe,
        Some(&app.url("/acme/test/webhooks/stripe")),
        TEST_WHSEC,
    )
    .await;
    (app, recorder)
}

/// Makes localstripe send its events, signed with `secret`, to `url` (when given) and
/// to a recorder, which it returns.
async fn events_to(stripe: &LocalStripe, url: Option<&str>, secret: &str) -> Recorder {
    if let Some(url) = url {
        stripe.send_webhooks("kassa", url, secret).await;
    }
    let recorder = Recorder::start().await;
    stripe
        .send_webhooks("recorder", &recorder.url, secret)
        .await;
    recorder
}

/// The `Stripe-Signature` header Stripe sends for `body` signed at `t`.
fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// An event of `kind` about the PaymentIntent `intent`, as Stripe would send it.
fn event(id: &str, kind: &str, intent: &Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "livemode": intent["livemode"],
           "api_version": "2024-06-20", "data": {"object": intent}})
}

/// `intent` succeeded, as Stripe's `payment_intent.succeeded` carries it.
fn succeeded(id: &str, intent: &Value) -> Value {
    let mut paid = intent.clone();
    paid["status"] = json!("succeeded");
    paid["amount_received"] = intent["amount"].clone();
    event(id, "payment_intent.succeeded", &paid)
}

/// Delivers `event` to `path` signed with `secret` `age` seconds ago, as Stripe does.
async fn deliver(app: &TestApp, path: &str, secret: &str, event: &Value, age: i64) -> Answer {
    let body = event.to_string();
    let t = chrono::Utc::now().timestamp() - age;
    post_signed(app, path, &stripe_signature(secret, t, &body), body).await
}

/// Sends `body` to `path` with the `Stripe-Signature` header `signature`.
async fn post_signed(app: &TestApp, path: &str, signature: &str, body: String) -> Answer {
    app.send(
        reqwest::Client::new()
            .post(app.url(path))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// Sends again, to acme's test mode endpoint, what localstripe sent.
async fn replay(app: &TestApp, sent: &Sent) -> Answer {
    post_signed(
        app,
        "/acme/test/webhooks/stripe",
        &sent.signature,
        sent.body.clone(),
    )
    .await
}

/// Asserts Kassa refused a genuine event (`422 payment_refused`) saying `reason`.
fn refused_for(answer: &Answer, reason: &str) {
    let problem = answer.problem(422);
    assert_eq!(problem["type"], "payment_refused");
    assert!(
        problem["detail"].as_str().unwrap().contains(reason),
        "{}",
        answer.text
    );
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
async fn attempt_ended(app: &TestApp, order_id: &str, code: &str) -> Value {
    let order = order_once(app, &app.key, order_id, |o| {
        o["payments"][0]["status"] == "failed"
    })
    .await;
    assert_eq!(order["status"], "not_paid");
    assert_eq!(order["payments"][0]["status"], "failed", "{order}");
    assert_eq!(order["payments"][0]["failure_code"], code);
    order
}

/// A customer places an order on `checkout` paying with Stripe; returns the payment
/// page Kassa sent them to.
async fn place_with_stripe(b: &Browser, link: &str, checkout: &str) -> String {
    let page = b.open(link).await;
    assert!(page.html.contains("value=\"stripe\""), "Stripe is offered");
    let placed = b
        .submit(&page, checkout, &details(&page.csrf(), "stripe"))
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    placed.location.unwrap()
}

/// A customer buys two of a new product on acme's test checkout and chooses Stripe;
/// returns the PaymentIntent Kassa made and its order's id.
async fn test_order_at_stripe(app: &TestApp, stripe: &LocalStripe, b: &Browser) -> (Value, String) {
    let prd = product(app, 1999).await;
    place_with_stripe(b, &format!("/acme/test/buy/{prd}"), "/acme/test/checkout").await;
    let intent = stripe.payment_intents().await.last().unwrap().clone();
    let order_id = intent["metadata"]["order_id"].as_str().unwrap().to_owned();
    (intent, order_id)
}

/// A test order paid at Stripe with a good card, its keys delivered: its
/// PaymentIntent, its id, and the order.
async fn paid_test_order_at_stripe(app: &TestApp, stripe: &LocalStripe) -> (String, String, Value) {
    let b = Browser::new(app);
    let (intent, order_id) = test_order_at_stripe(app, stripe, &b).await;
    let pi = intent["id"].as_str().unwrap().to_owned();
    stripe.pay(&pi, GOOD_CARD).await;
    let order = order_once(app, &app.key, &order_id, |o| {
        o["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(order["delivery_status"], "delivered", "{order}");
    (pi, order_id, order)
}

/// The order's payment page path.
async fn pay_path(app: &TestApp, order_id: &str) -> String {
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    order.ok()["pay_url"]
        .as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap()
        .to_owned()
}

/// The value of the card form's `data-NAME` attribute on a payment page.
fn card_form(html: &str, name: &str) -> String {
    let marker = format!("data-{name}=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no data-{name}: {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    unescape(&html[start..end])
}

async fn a_test_store_sells_through_stripe(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let sink = Sink::start(None);
    let (app, recorder) = kassa_with_stripe(backend, &stripe, Some(&sink)).await;
    let (endpoint, receiver) = endpoint_with_receiver(&app, "", json!(["payment.succeeded"])).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let to = place_with_stripe(&b, &format!("/acme/test/buy/{prd}"), "/acme/test/checkout").await;

    // A PaymentIntent for the order's total, the order and store in its metadata.
    let intents = stripe.payment_intents().await;
    assert_eq!(intents.len(), 1);
    let intent = &intents[0];
    assert_eq!(
        (intent["amount"].clone(), intent["currency"].clone()),
        (json!(3998), json!("usd"))
    );
    let order_id = intent["metadata"]["order_id"].as_str().unwrap().to_owned();
    let pi = intent["id"].as_str().unwrap().to_owned();
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "not_paid");
    assert_eq!(order.body["payment_method"], "stripe");
    assert_eq!(order.body["payments"][0]["status"], "pending");
    assert_eq!(order.body["payments"][0]["reference"], pi.as_str());
    assert_eq!(
        to,
        pay_path(&app, &order_id).await,
        "sent to the payment page"
    );

    // The payment page: Stripe.js and the card form with the store's publishable key
    // and the PaymentIntent's client secret, which is in no URL; a policy letting in
    // exactly localstripe's script.
    let pay = b.get(&to).await;
    assert_eq!(pay.status, 200, "{}", pay.html);
    assert_eq!(card_form(&pay.html, "key"), TEST_PK);
    assert_eq!(
        card_form(&pay.html, "secret"),
        intent["client_secret"].as_str().unwrap()
    );
    assert!(
        pay.html.contains(&format!(
            "src=\"{}\"",
            stripe.js_url().replace('/', "&#x2f;")
        )),
        "{}",
        pay.html
    );
    assert!(
        pay.html.contains("data-testid=\"stripe-needs-js\""),
        "said without JavaScript"
    );
    let csp = pay.csp.clone().expect("a Content-Security-Policy");
    assert!(csp.contains("script-src 'nonce-"), "{csp}");
    assert!(csp.contains(&format!(" {};", stripe.base)), "{csp}");
    assert!(!csp.contains("script-src 'self'"), "{csp}");
    let order_page = to.replace("/pay", "");
    assert_eq!(card_form(&pay.html, "done"), order_page);

    // Clicking "Pay by card" again while it is pending makes no second PaymentIntent
    // that could be paid too.
    let again = b.post(&to, &[("csrf", &pay.csrf())]).await;
    assert_eq!(
        again.location.as_deref(),
        Some(to.as_str()),
        "{}",
        again.html
    );
    assert_eq!(stripe.payment_intents().await.len(), 1);

    // Coming back to the order page pays nothing: it says the payment is being
    // confirmed, and looks again by itself until it is.
    let back = b.get(&order_page).await;
    assert!(back.html.contains("payment-confirming"), "{}", back.html);
    let refresh = r#"<meta http-equiv="refresh" content="3">"#;
    assert!(back.html.contains(refresh), "{}", back.html);

    // The customer pays at Stripe; localstripe's signed webhook pays the order:
    // licenses delivered, emails, payment.succeeded.
    let (status, paid) = stripe.pay(&pi, GOOD_CARD).await;
    assert_eq!(
        (status, paid["status"].clone()),
        (200, json!("succeeded")),
        "{paid}"
    );
    let order = order_once(&app, &app.key, &order_id, |o| {
        o["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(order["status"], "paid", "{order}");
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
    let page = b.get(&order_page).await;
    assert!(!page.html.contains("payment-confirming"));
    assert!(
        !page.html.contains(refresh),
        "a paid order's page stays put"
    );

    // The event localstripe sent, sent again (a retry, or a replay within the
    // tolerance): answered 200, nothing more.
    let sent = recorder.wait_for("payment_intent.succeeded").await;
    let again = replay(&app, &sent).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(events_of(&app, &app.key, "payment.succeeded").await, 1);
    // An event type Kassa does not act on: 200, so Stripe stops sending it.
    let other = json!({"id": "evt_2", "object": "event", "type": "customer.created", "livemode": false,
                       "data": {"object": {"id": "cus_1", "object": "customer"}}});
    let ignored = deliver_test(&app, &other).await;
    assert_eq!(ignored.status, 200, "{}", ignored.text);
    assert_eq!(ignored.body["ignored"], "customer.created");

    // The Stripe keys and the endpoint's secret that did all this are in no row of
    // the database, as someone with a copy of it would read it.
    let endpoint = app
        .store
        .webhook_endpoint(
            &app.store.tenant_by_slug("acme").await.unwrap().id,
            &kassa_domain::ids::WebhookEndpointId::parse(&endpoint).unwrap(),
        )
        .await
        .unwrap();
    app.assert_stored_sealed(&[TEST_KEY, TEST_WHSEC, endpoint.secret.expose_secret()])
        .await;
}

async fn forged_replayed_and_mismatched_events_pay_nothing(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let (app, recorder) = kassa_with_stripe(backend, &stripe, None).await;
    // Another store, with its own Stripe account.
    let (globex, globex_live) = app.new_tenant_keys("globex").await;
    set_up_stripe(
        &app,
        &globex_live,
        "test",
        (
            "sk_test_globexKey0003",
            "pk_test_globexKey0003",
            "whsec_globexSecret0003",
        ),
    )
    .await;
    let b = Browser::new(&app);
    let (intent, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    let tenant_id = intent["metadata"]["tenant_id"].as_str().unwrap().to_owned();
    let hook = "/acme/test/webhooks/stripe";
    let genuine = succeeded("evt_genuine", &intent);

    // Signed with another secret, tampered with, unsigned, or signed long ago: 400.
    let forged = deliver(&app, hook, "whsec_attackerSecret", &genuine, 0).await;
    assert_eq!(forged.problem(400)["type"], "invalid_signature");
    let body = genuine.to_string();
    let t = chrono::Utc::now().timestamp();
    let tampered = post_signed(
        &app,
        hook,
        &stripe_signature(TEST_WHSEC, t, &body),
        body.replace("3998", "1"),
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

    // PaymentIntents made at Stripe by someone else, naming this order, paid there:
    // localstripe's genuine signed events, refused with the reason (422), nothing paid.
    let cases = [
        (
            [("amount", "1"), ("currency", "usd")],
            "must be the order total",
        ),
        (
            [("amount", "3998"), ("currency", "eur")],
            "the order is in USD",
        ),
    ];
    for (made, reason) in cases {
        let mut form = made.to_vec();
        form.extend([
            ("metadata[order_id]", order_id.as_str()),
            ("metadata[tenant_id]", tenant_id.as_str()),
        ]);
        let other = stripe.create_payment_intent(&form).await;
        let (status, _) = stripe.pay(other["id"].as_str().unwrap(), GOOD_CARD).await;
        assert_eq!(status, 200);
        let sent = recorder
            .wait_for_payment("payment_intent.succeeded", other["id"].as_str().unwrap())
            .await;
        // What Kassa answered localstripe, seen by sending it again.
        refused_for(&replay(&app, &sent).await, reason);
    }
    // An unknown order; another store's order at this store's endpoint; this store's
    // order named with the other store's id: signed with acme's secret.
    let variant = |id: &str, change: &dyn Fn(&mut Value)| {
        let mut event = succeeded(id, &intent);
        change(&mut event["data"]["object"]);
        event
    };
    let globex_id = app
        .store
        .tenant_by_slug("globex")
        .await
        .unwrap()
        .id
        .as_str()
        .to_owned();
    let cases = [
        (
            variant("evt_unknown", &|s| {
                s["metadata"]["order_id"] = json!("ord_doesnotexist")
            }),
            "names no order of this store",
        ),
        (
            variant("evt_mixed", &|s| {
                s["metadata"]["tenant_id"] = json!(globex_id)
            }),
            "another store",
        ),
    ];
    for (event, reason) in &cases {
        refused_for(&deliver(&app, hook, TEST_WHSEC, event, 0).await, reason);
    }
    // This order at globex's endpoint signed with acme's secret: a bad signature.
    let answer = deliver(
        &app,
        "/globex/test/webhooks/stripe",
        TEST_WHSEC,
        &genuine,
        0,
    )
    .await;
    answer.problem(400);
    // And signed with globex's: not globex's order.
    let answer = deliver(
        &app,
        "/globex/test/webhooks/stripe",
        "whsec_globexSecret0003",
        &genuine,
        0,
    )
    .await;
    assert!(
        answer.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("another store")
    );

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

    // The customer's own payment still pays, once, after all that.
    let pi = intent["id"].as_str().unwrap();
    stripe.pay(pi, GOOD_CARD).await;
    let order = order_once(&app, &app.key, &order_id, |o| o["status"] == "paid").await;
    assert_eq!(order["status"], "paid", "{order}");
    let sent = recorder
        .wait_for_payment("payment_intent.succeeded", pi)
        .await;
    let replayed = replay(&app, &sent).await;
    assert_eq!(replayed.body["replayed"], true, "{}", replayed.text);
    // A second, different "paid" event for the same order pays nothing more.
    let second = deliver_test(&app, &succeeded("evt_second", &intent)).await;
    assert!(
        second.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("no longer waiting")
    );
    assert_eq!(events_of(&app, &app.key, "payment.succeeded").await, 1);
}

async fn a_stripe_test_event_never_pays_a_live_order(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let app = spawn(backend, &stripe, None).await;
    set_up_stripe(&app, &app.live_key, "test", TEST_KEYS).await;
    set_up_stripe(&app, &app.live_key, "live", LIVE_KEYS).await;
    // localstripe's events are test mode events (`livemode: false`), whichever key
    // made the PaymentIntent: sent to the live endpoint, with the live secret.
    let recorder = events_to(&stripe, Some(&app.url("/acme/webhooks/stripe")), LIVE_WHSEC).await;
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
    let pay = b.get(&to).await;
    assert_eq!(
        card_form(&pay.html, "key"),
        LIVE_PK,
        "the live publishable key"
    );
    let intent = stripe.payment_intents().await[0].clone();
    let order_id = intent["metadata"]["order_id"].as_str().unwrap().to_owned();
    stripe.pay(intent["id"].as_str().unwrap(), GOOD_CARD).await;
    let sent = recorder.wait_for("payment_intent.succeeded").await;
    assert_eq!(sent.event()["livemode"], false);
    let answer = post_signed(
        &app,
        "/acme/webhooks/stripe",
        &sent.signature,
        sent.body.clone(),
    )
    .await;
    let detail = answer.problem(422)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("a test mode payment cannot pay a live mode order"),
        "{detail}"
    );
    // At the test endpoint, signed with the test secret: refused too.
    let answer = deliver_test(&app, &sent.event()).await;
    let detail = answer.problem(422)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("a test mode payment cannot pay a live mode order"),
        "{detail}"
    );
    let order = app
        .get_as(&app.live_key, &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(order.ok()["status"], "not_paid");
    // A live event at the live endpoint (as Stripe's live mode sends it) pays it.
    let mut live_event = sent.event();
    live_event["id"] = json!("evt_live");
    live_event["livemode"] = json!(true);
    live_event["data"]["object"]["livemode"] = json!(true);
    let answer = deliver(&app, "/acme/webhooks/stripe", LIVE_WHSEC, &live_event, 0).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let order = app
        .get_as(&app.live_key, &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(order.ok()["status"], "paid");
    assert_eq!(order.body["livemode"], true);
}

async fn a_declined_card_is_told_and_the_customer_pays_again(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let sink = Sink::start(None);
    let (app, _recorder) = kassa_with_stripe(backend, &stripe, Some(&sink)).await;
    let b = Browser::new(&app);
    let (first, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    // The card is declined: Stripe.js says why on the page, and Stripe's
    // `payment_intent.payment_failed` ends the attempt with Stripe's reason.
    let (status, declined) = stripe
        .pay(first["id"].as_str().unwrap(), DECLINED_CARD)
        .await;
    assert_eq!(status, 402);
    assert_eq!(declined["error"]["code"], "card_declined");
    let order = attempt_ended(&app, &order_id, "card_declined").await;
    assert_eq!(
        order["payments"][0]["failure_message"],
        "Your card was declined."
    );
    assert_eq!(events_of(&app, &app.key, "payment.failed").await, 1);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["to"], "buyer@example.com", "{mails:?}");
    // The page has Kassa's own words for that code, in the page's language.
    let pay_path = pay_path(&app, &order_id).await;
    let pay = b.get(&pay_path).await;
    assert!(
        pay.html.contains("Pay by card"),
        "no attempt pending: {}",
        pay.html
    );

    // The customer pays again from the payment page: a new PaymentIntent (a new
    // attempt, a new idempotency key), paid by its own event.
    let again = b.post(&pay_path, &[("csrf", &pay.csrf())]).await;
    assert_eq!(again.status, 303, "{}", again.html);
    let intents = stripe.payment_intents().await;
    assert_eq!(intents.len(), 2);
    let pay = b.get(&pay_path).await;
    assert_eq!(
        card_form(&pay.html, "secret"),
        intents[1]["client_secret"].as_str().unwrap()
    );
    let messages: Value = serde_json::from_str(&card_form(&pay.html, "messages")).unwrap();
    assert!(
        messages["card_declined"]
            .as_str()
            .unwrap()
            .starts_with("Your card was declined."),
        "{messages}"
    );
    stripe
        .pay(intents[1]["id"].as_str().unwrap(), GOOD_CARD)
        .await;
    let order = order_once(&app, &app.key, &order_id, |o| o["status"] == "paid").await;
    let statuses: Vec<_> = order["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].clone())
        .collect();
    assert_eq!(order["status"], "paid", "{order}");
    assert!(
        statuses.contains(&json!("failed")) && statuses.contains(&json!("succeeded")),
        "{statuses:?}"
    );
}

/// The customer started paying by card, switched to bank transfer, then the card
/// payment went through after all (a second tab, a slow 3-D Secure): the money moved
/// into the store's account, so the order is paid (by Stripe), not left unpaid with
/// the money taken.
async fn money_paid_at_stripe_after_switching_method_still_pays_the_order(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let (app, _recorder) = kassa_with_stripe(backend, &stripe, None).await;
    let b = Browser::new(&app);
    let (intent, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    let pay_path = pay_path(&app, &order_id).await;
    let switched = b.switch_method(&pay_path, "bank_transfer").await;
    assert_eq!(switched.status, 303, "{}", switched.html);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["payment_method"], "bank_transfer");
    stripe.pay(intent["id"].as_str().unwrap(), GOOD_CARD).await;
    let order = order_once(&app, &app.key, &order_id, |o| o["status"] == "paid").await;
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(order["payment_method"], "stripe");
}

/// The attack, found trying the checkout as a customer: the card was charged at
/// Stripe, its webhook was late, and meanwhile the order was paid another way (a
/// bank transfer recorded, or another method on the pay page). Stripe's event was
/// refused (422, retried for days) and its money kept: paid twice, the second
/// payment recorded nowhere. Now it goes back in full at Stripe, at once, and the
/// order shows the attempt ended by it; a replay refunds nothing more.
async fn money_paid_at_stripe_for_an_order_paid_meanwhile_goes_back(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let (app, recorder) = kassa_with_stripe(backend, &stripe, None).await;
    let b = Browser::new(&app);
    let (intent, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    let pi = intent["id"].as_str().unwrap().to_owned();
    let pay_path = pay_path(&app, &order_id).await;
    let switched = b.switch_method(&pay_path, "bank_transfer").await;
    assert_eq!(switched.status, 303, "{}", switched.html);
    let total = app.get(&format!("/api/v1/orders/{order_id}")).await.ok()["total"].clone();
    let transfer = app
        .post(
            &format!("/api/v1/orders/{order_id}/payments"),
            json!({"method": "bank_transfer", "amount": total, "currency": "USD"}),
        )
        .await;
    assert_eq!(transfer.ok()["status"], "paid", "{}", transfer.text);

    let (status, paid) = stripe.pay(&pi, GOOD_CARD).await;
    assert_eq!(
        (status, &paid["status"]),
        (200, &json!("succeeded")),
        "{paid}"
    );
    let order = order_once(&app, &app.key, &order_id, |o| {
        o["payments"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["failure_code"] == "paid_twice"))
            && o["delivery_status"] == "delivered"
    })
    .await;
    let refunds = stripe.refunds(&pi).await;
    assert_eq!(refunds.len(), 1, "refunded at Stripe: {refunds:?}");
    assert_eq!(refunds[0]["amount"], total);
    let attempt = order["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["method"] == "stripe")
        .cloned()
        .unwrap_or_default();
    assert_eq!(attempt["status"], "failed", "{order}");
    assert_eq!(attempt["failure_code"], "paid_twice", "{order}");
    assert!(
        attempt["failure_message"]
            .as_str()
            .is_some_and(|m| m.contains(refunds[0]["id"].as_str().unwrap())),
        "{attempt}"
    );
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(order["payment_method"], "bank_transfer");
    assert_eq!(
        order["amount_refunded"], 0,
        "the order's own payment stands"
    );
    assert_eq!(order["lines"][0]["licenses"].as_array().unwrap().len(), 2);

    // Stripe sends it again: nothing more is refunded.
    let sent = recorder.wait_for("payment_intent.succeeded").await;
    let again = replay(&app, &sent).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(stripe.refunds(&pi).await.len(), 1);
    // The owners are told, once, by email: which payment, and where the money went.
    let mut told = Vec::new();
    for _ in 0..50 {
        let emails = app.get("/api/v1/emails").await;
        told = emails.ok()["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "paid_twice")
            .cloned()
            .collect();
        if told.iter().all(|m| m["status"] == "kept") && !told.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(told.len(), 1, "one email to the one owner: {told:?}");
    assert_eq!(told[0]["to"], "owner@acme.test");
    assert_eq!(told[0]["order_id"], order_id.as_str());
    let text = told[0]["text_body"].as_str().unwrap_or_default();
    assert!(
        text.contains(&pi) && text.contains(refunds[0]["id"].as_str().unwrap()),
        "{text}"
    );
    assert!(
        told[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("was paid twice")),
        "{}",
        told[0]
    );
    // Stripe's event for that refund (localstripe sends none; signed as Stripe's) is
    // taken as what it is: the refund Kassa asked for, not a refund of the order.
    let told = report(&app, "evt_paid_twice_refund", "refund.created", &refunds[0]).await;
    assert_eq!(told.status, 200, "{}", told.text);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "paid", "{}", order.text);
    assert_eq!(order.body["amount_refunded"], 0);
    assert_eq!(order.body["lines"][0]["revoked_licenses"], json!([]));
}

/// The event localstripe sent, delivered several times at once, and two different
/// "paid" events for one order at once: paid once, one `payment.succeeded`.
async fn events_arriving_at_once_pay_once(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let app = spawn(backend, &stripe, None).await;
    set_up_stripe(&app, &app.live_key, "test", TEST_KEYS).await;
    // localstripe sends to the recorder only: the test delivers.
    let recorder = events_to(&stripe, None, TEST_WHSEC).await;
    let b = Browser::new(&app);
    let (intent, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    stripe.pay(intent["id"].as_str().unwrap(), GOOD_CARD).await;
    let sent = recorder.wait_for("payment_intent.succeeded").await;
    let other = succeeded("evt_other", &intent);
    let answers = futures::future::join_all((0..6).map(|i| {
        let (app, sent, other) = (&app, &sent, &other);
        async move {
            if i % 3 == 2 {
                deliver_test(app, other).await
            } else {
                replay(app, sent).await
            }
        }
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
/// PaymentIntent that paid it is refunded at localstripe, and the order records
/// Stripe's refund; the whole refunded revokes the keys.
async fn a_stripe_payment_is_refunded_at_stripe(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let (app, _recorder) = kassa_with_stripe(backend, &stripe, None).await;
    let (pi, order_id, _) = paid_test_order_at_stripe(&app, &stripe).await;
    let pi = pi.as_str();

    let refunds = format!("/api/v1/orders/{order_id}/refunds");
    let part = app
        .post(&refunds, json!({"amount": 1000, "reason": "one seat less"}))
        .await;
    assert_eq!(part.ok()["status"], "succeeded", "{}", part.text);
    let at_stripe = stripe.refunds(pi).await;
    assert_eq!(at_stripe.len(), 1);
    assert_eq!(at_stripe[0]["amount"], 1000);
    assert_eq!(part.body["reference"], at_stripe[0]["id"]);
    let too_much = app.post(&refunds, json!({"amount": 5000})).await;
    assert_eq!(too_much.invalid_fields(), ["amount"]);
    assert_eq!(stripe.refunds(pi).await.len(), 1, "nothing asked of Stripe");

    // The store's Stripe keys removed: no refund through Stripe, said next to the
    // method. A key Stripe refuses (revoked; localstripe takes no restricted key):
    // Stripe's reason next to the amount. Nothing recorded either way.
    app.delete_as(&app.live_key, "/api/v1/settings/stripe/test")
        .await
        .ok();
    let no_keys = app.post(&refunds, json!({"amount": 500})).await;
    assert_eq!(
        no_keys.invalid_fields(),
        ["payment_method"],
        "{}",
        no_keys.text
    );
    let revoked = ("rk_test_51KassaRevokedKey0009", TEST_PK, TEST_WHSEC);
    set_up_stripe(&app, &app.live_key, "test", revoked).await;
    let refused = app.post(&refunds, json!({"amount": 500})).await;
    assert_eq!(refused.invalid_fields(), ["amount"], "{}", refused.text);
    assert!(
        refused.text.contains("Unauthorized"),
        "Stripe's reason: {}",
        refused.text
    );
    assert_eq!(
        stripe.refunds(pi).await.len(),
        1,
        "nothing refunded at Stripe"
    );
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["amount_refunded"], 1000, "nothing recorded");
    set_up_stripe(&app, &app.live_key, "test", TEST_KEYS).await;

    let rest = app.post(&refunds, json!({})).await;
    assert_eq!(rest.ok()["amount"], 2998, "{}", rest.text);
    let at_stripe = stripe.refunds(pi).await;
    assert_eq!(at_stripe.len(), 2);
    let amounts: Vec<_> = at_stripe
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert!(
        amounts.contains(&2998) && amounts.contains(&1000),
        "{amounts:?}"
    );
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

/// A PaymentIntent canceled at Stripe unpaid ends its attempt (no payment failed, no
/// email), the order page stops saying the payment is being confirmed, and paying
/// again makes a new PaymentIntent. localstripe cancels but sends no
/// `payment_intent.canceled`: the test signs it, from the canceled PaymentIntent.
async fn a_canceled_payment_intent_ends_its_attempt(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let (app, _recorder) = kassa_with_stripe(backend, &stripe, None).await;
    let b = Browser::new(&app);
    let (intent, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    let canceled = stripe.cancel(intent["id"].as_str().unwrap()).await;
    assert_eq!(canceled["status"], "canceled");
    let answer = deliver_test(
        &app,
        &event("evt_cancel", "payment_intent.canceled", &canceled),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    attempt_ended(&app, &order_id, "canceled").await;
    assert_eq!(events_of(&app, &app.key, "payment.failed").await, 0);
    let pay_path = pay_path(&app, &order_id).await;
    let page = b.get(&pay_path.replace("/pay", "")).await;
    assert!(!page.html.contains("payment-confirming"), "{}", page.html);

    let pay = b.get(&pay_path).await;
    let again = b.post(&pay_path, &[("csrf", &pay.csrf())]).await;
    assert_eq!(again.status, 303, "{}", again.html);
    let made = stripe.payment_intents().await;
    assert_eq!(made.len(), 2, "a new PaymentIntent");
    assert_ne!(made[0]["id"], made[1]["id"]);
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
    set_up_stripe(app, &app.live_key, "test", TEST_KEYS).await;
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
    assert!(pay.html.contains("Pay by card"), "{}", pay.html);
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
    let stripe = LocalStripe::start().await;
    let app = spawn(backend, &stripe, None).await;
    let put = |mode: &str, key: &str, pk: &str, whsec: &str| {
        app.request(
            Method::PUT,
            &app.live_key,
            &format!("/api/v1/settings/stripe/{mode}"),
        )
        .json(&json!({"secret_key": key, "publishable_key": pk, "webhook_secret": whsec}))
    };
    // Not offered before its keys are set, even when enabled.
    app.patch_as(
        &app.live_key,
        "/api/v1/settings",
        json!({"payment_methods": ["stripe", "test_card"]}),
    )
    .await
    .ok();
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    assert!(!page.html.contains("value=\"stripe\""));

    let saved = app.send(put("test", TEST_KEY, TEST_PK, TEST_WHSEC)).await;
    let stripe = &saved.ok()["stripe"];
    assert_eq!(stripe["test"]["configured"], true);
    assert_eq!(stripe["test"]["secret_key_last4"], "0001");
    assert_eq!(stripe["test"]["publishable_key"], TEST_PK, "not a secret");
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
    let shown = app.get_as(&app.live_key, "/api/v1/settings").await;
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

    // A test key for live mode, a live key for test mode (secret or publishable), a
    // publishable key as the secret one and the reverse, no whsec_.
    let wrong = app.send(put("live", TEST_KEY, LIVE_PK, LIVE_WHSEC)).await;
    assert_eq!(wrong.invalid_fields(), ["secret_key"]);
    let wrong = app.send(put("test", LIVE_KEY, TEST_PK, TEST_WHSEC)).await;
    assert_eq!(wrong.invalid_fields(), ["secret_key"]);
    let wrong = app.send(put("live", LIVE_KEY, TEST_PK, LIVE_WHSEC)).await;
    assert_eq!(wrong.invalid_fields(), ["publishable_key"]);
    let wrong = app
        .send(put("test", "pk_test_publishable0001", TEST_KEY, "nope"))
        .await;
    assert_eq!(
        wrong.invalid_fields(),
        ["secret_key", "publishable_key", "webhook_secret"]
    );
    let wrong = app
        .send(put("sandbox", TEST_KEY, TEST_PK, TEST_WHSEC))
        .await;
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
                .json(&json!({"secret_key": TEST_KEY, "publishable_key": TEST_PK, "webhook_secret": TEST_WHSEC})),
        )
        .await;
    refused.problem(403);
    // Nothing of the keys in any log-like answer: the database holds them for Kassa.
    let removed = app
        .delete_as(&app.live_key, "/api/v1/settings/stripe/test")
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
    let save = |mode: &str, (key, pk, whsec): (&str, &str, &str), action: &str| {
        let csrf = settings.csrf();
        let (mode, key, pk, whsec, action) = (
            mode.to_owned(),
            key.to_owned(),
            pk.to_owned(),
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
                    (&format!("stripe_{mode}.publishable_key"), pk.as_str()),
                    (&format!("stripe_{mode}.webhook_secret"), whsec.as_str()),
                    ("action", action.as_str()),
                ],
            )
            .await
        }
    };
    // A test key for live mode: refused next to the field, nothing saved.
    let refused = save("live", (TEST_KEY, LIVE_PK, LIVE_WHSEC), "save").await;
    assert_eq!(refused.status, 422, "{}", refused.html);
    assert!(
        refused
            .html
            .contains("id=\"e-stripe_live.secret_key\">is a test mode key; live mode needs a live mode key (sk_live_… or rk_live_…)"),
        "{}",
        refused.html
    );
    // Each key refused says exactly what is wrong with it.
    let short = save("live", (LIVE_KEY, "pk_live_x", LIVE_WHSEC), "save").await;
    assert_eq!(short.status, 422, "{}", short.html);
    assert!(
        short.html.contains(
            "id=\"e-stripe_live.publishable_key\">is too short to be a whole Stripe key: paste all of it, pk_live_…"
        ),
        "{}",
        short.html
    );
    let swapped = save("test", (TEST_PK, LIVE_PK, TEST_WHSEC), "save").await;
    assert_eq!(swapped.status, 422, "{}", swapped.html);
    assert!(
        swapped.html.contains(
            "id=\"e-stripe_test.secret_key\">is a publishable key, not a secret key: this field takes sk_test_… or rk_test_…"
        ),
        "{}",
        swapped.html
    );
    assert!(
        swapped.html.contains(
            "id=\"e-stripe_test.publishable_key\">is a live mode key; test mode needs a test mode key (pk_test_…)"
        ),
        "{}",
        swapped.html
    );
    assert!(
        !refused.html.contains(TEST_KEY),
        "what was typed is not shown back"
    );
    let saved = save("test", TEST_KEYS, "save").await;
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
    assert!(
        shown
            .html
            .contains(&format!("publishable key <code>{TEST_PK}</code>"))
    );
    assert!(!shown.html.contains(TEST_KEY) && !shown.html.contains(TEST_WHSEC));
    let tenant = app.store.tenant_by_slug("ada").await.unwrap();
    assert!(tenant.stripe_ready(kassa_domain::mode::Mode::Test));
    assert!(!tenant.stripe_ready(kassa_domain::mode::Mode::Live));
    let removed = save("test", ("", "", ""), "remove").await;
    assert_eq!(removed.status, 303, "{}", removed.html);
    let tenant = app.store.tenant_by_slug("ada").await.unwrap();
    assert!(!tenant.stripe_ready(kassa_domain::mode::Mode::Test));
}

/// A new merchant sets Stripe up in the dashboard and a customer chooses it: the
/// order's dashboard page names the PaymentIntent that identifies the payment at
/// Stripe, and no bank transfer reference (the order is not paid by transfer).
async fn a_stripe_orders_page_names_its_payment_intent_not_a_transfer_reference(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let sink = Sink::start(None);
    let app = spawn(backend, &stripe, Some(&sink)).await;
    let b = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let settings = b.open("/dashboard/settings").await;
    let (key, pk, whsec) = TEST_KEYS;
    let keys = b
        .post(
            "/dashboard/settings/stripe",
            &[
                ("csrf", &settings.csrf()),
                ("mode", "test"),
                ("stripe_test.secret_key", key),
                ("stripe_test.publishable_key", pk),
                ("stripe_test.webhook_secret", whsec),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(keys.status, 303, "{}", keys.html);
    let settings = b.open("/dashboard/settings").await;
    let methods = b
        .post(
            "/dashboard/settings",
            &[
                ("csrf", &settings.csrf()),
                ("payment_methods", "test_card"),
                ("payment_methods", "stripe"),
            ],
        )
        .await;
    assert_eq!(methods.status, 303, "{}", methods.html);
    let (_, product) = pool_and_product(&b, "ADA-1\nADA-2\n").await;
    let customer = Browser::new(&app);
    place_with_stripe(
        &customer,
        &format!("/ada/test/buy/{}", product_id(&product)),
        "/ada/test/checkout",
    )
    .await;
    let intent = stripe.payment_intents().await.last().unwrap().clone();
    let pi = intent["id"].as_str().unwrap();
    let orders = b.get("/dashboard/orders").await;
    let start = orders.html.find("href=\"/dashboard/orders/ord_").unwrap() + 6;
    let order_path = orders.html[start..].split('"').next().unwrap().to_owned();
    let order = b.get(&order_path).await;
    assert!(
        order.html.contains(&format!(
            "Stripe PaymentIntent <code data-testid=\"payment-intent\">{pi}</code>"
        )),
        "{}",
        order.html
    );
    assert!(
        !order.html.contains("KS-") && !order.html.contains("transfer reference"),
        "no transfer reference on a Stripe order: {}",
        order.html
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

/// A PaymentIntent is made only while the order holds its coupon's use: one whose
/// hold lapsed, the coupon's last use taken meanwhile, is refused before Stripe is
/// asked, since a Stripe payment, once made, would count the use past the coupon's
/// limit.
async fn a_lapsed_coupon_hold_is_not_paid_through_stripe_past_the_limit(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let app = spawn(backend, &stripe, None).await;
    set_up_stripe(&app, &app.live_key, "test", TEST_KEYS).await;
    app.patch_as(
        &app.live_key,
        "/api/v1/settings",
        json!({"coupon_hold": "1s"}),
    )
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

    // Ann switches to Stripe: no PaymentIntent is made for the discounted price.
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
    assert!(
        stripe.payment_intents().await.is_empty(),
        "Stripe was not asked"
    );
    let coupons = app.get("/api/v1/coupons").await;
    assert_eq!(coupons.ok()["data"][0]["times_redeemed"], 1);
}

/// Stripe's event about the Refund `refund` (`refund.created`, `refund.updated`), as
/// Stripe sends it from API version 2024-10-28 for every refund.
fn refund_event(id: &str, kind: &str, refund: &Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "livemode": false,
           "api_version": "2024-10-28.acacia", "data": {"object": refund}})
}

/// The types of the webhooks `hooks`, sorted.
fn sorted_types(hooks: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = hooks.iter().map(|h| h["type"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    kinds
}

/// Delivers Stripe's `kind` event `id` about the Refund `refund` to acme's test mode
/// endpoint.
async fn report(app: &TestApp, id: &str, kind: &str, refund: &Value) -> Answer {
    deliver_test(app, &refund_event(id, kind, refund)).await
}

/// A merchant refunds in Stripe's dashboard, not in Kassa: Stripe's refund event
/// records it on the order through the workflow (events, email, keys revoked when all
/// went back), once per Stripe refund, and a refund Kassa made itself is not counted
/// again when its event arrives. localstripe makes the refunds but sends no refund
/// events: the test signs Stripe's event from localstripe's Refund.
async fn a_refund_made_in_stripes_dashboard_refunds_the_order(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let sink = Sink::start(None);
    let (app, _recorder) = kassa_with_stripe(backend, &stripe, Some(&sink)).await;
    let (_, receiver) =
        endpoint_with_receiver(&app, "", json!(["refund.succeeded", "order.refunded"])).await;
    let (pi, order_id, order) = paid_test_order_at_stripe(&app, &stripe).await;
    let pi = pi.as_str();
    let total = order["total"].as_i64().unwrap();
    let path = format!("/api/v1/orders/{order_id}");

    // Part of it, refunded in Stripe's dashboard.
    let part = stripe.refund(pi, 1000).await;
    let created = refund_event("evt_re_part", "refund.created", &part);
    let answer = deliver_test(&app, &created).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "paid");
    let order = app.get(&path).await.ok().clone();
    assert_eq!(order["amount_refunded"], 1000, "{order}");
    assert_eq!(order["refunds"][0]["reference"], part["id"]);
    assert_eq!(order["refunds"][0]["method"], "stripe");
    assert_eq!(order["refunds"][0]["status"], "succeeded");
    assert_eq!(
        order["lines"][0]["licenses"].as_array().unwrap().len(),
        2,
        "a partial refund revokes nothing"
    );
    // The same event again, and the same refund reported updated: recorded once.
    let again = deliver_test(&app, &created).await;
    assert_eq!(again.body["replayed"], true, "{}", again.text);
    let updated = deliver_test(&app, &refund_event("evt_re_upd", "refund.updated", &part)).await;
    assert_eq!(updated.body["replayed"], true, "{}", updated.text);

    // A refund made through Kassa's API, then Stripe's event for it: counted once.
    let api = app
        .post(&format!("{path}/refunds"), json!({"amount": 500}))
        .await;
    let reference = api.ok()["reference"].clone();
    let at_stripe = stripe.refunds(pi).await;
    let by_kassa = at_stripe.iter().find(|r| r["id"] == reference).unwrap();
    let echo = deliver_test(
        &app,
        &refund_event("evt_re_api", "refund.created", by_kassa),
    )
    .await;
    assert_eq!(echo.body["replayed"], true, "{}", echo.text);
    assert_eq!(app.get(&path).await.ok()["amount_refunded"], 1500);

    // Forged or mistaken ones: another currency, more than is left, the live mode,
    // a PaymentIntent of no order. Refused, nothing recorded.
    let forged = |id: &str, field: &str, value: Value| {
        let mut r = part.clone();
        r["id"] = json!(id);
        r[field] = value;
        r
    };
    let eur = forged("re_forged_eur", "currency", json!("eur"));
    refused_for(
        &deliver_test(&app, &refund_event("evt_f1", "refund.created", &eur)).await,
        "the order is in USD",
    );
    let above = forged("re_forged_above", "amount", json!(total));
    refused_for(
        &deliver_test(&app, &refund_event("evt_f2", "refund.created", &above)).await,
        "what is left to refund",
    );
    let mut live = refund_event(
        "evt_f3",
        "refund.created",
        &forged("re_forged_live", "amount", json!(1)),
    );
    live["livemode"] = json!(true);
    refused_for(&deliver_test(&app, &live).await, "live mode refund");
    let nobody = forged("re_forged_pi", "payment_intent", json!("pi_nobody"));
    refused_for(
        &deliver_test(&app, &refund_event("evt_f4", "refund.created", &nobody)).await,
        "no order",
    );
    assert_eq!(app.get(&path).await.ok()["amount_refunded"], 1500);

    // A refund Stripe reports pending, then succeeded: recorded once, then settled.
    let mut slow = stripe.refund(pi, 100).await;
    slow["status"] = json!("pending");
    let answer = deliver_test(&app, &refund_event("evt_re_slow", "refund.created", &slow)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let order = app.get(&path).await.ok().clone();
    let slow_id = slow["id"].clone();
    let recorded = |order: &Value| {
        order["refunds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["reference"] == slow_id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(recorded(&order), "pending", "{order}");
    slow["status"] = json!("succeeded");
    let settled = deliver_test(&app, &refund_event("evt_re_slow2", "refund.updated", &slow)).await;
    assert_eq!(settled.status, 200, "{}", settled.text);
    let order = app.get(&path).await.ok().clone();
    assert_eq!(recorded(&order), "succeeded", "{order}");
    assert_eq!(order["amount_refunded"], 1600);

    // The rest, in Stripe's dashboard: the order refunded, its keys revoked.
    let rest = stripe.refund(pi, total - 1600).await;
    let answer = deliver_test(&app, &refund_event("evt_re_rest", "refund.created", &rest)).await;
    assert_eq!(answer.body["status"], "refunded", "{}", answer.text);
    let order = app.get(&path).await.ok().clone();
    assert_eq!(order["status"], "refunded");
    assert_eq!(order["amount_refunded"], total);
    assert_eq!(order["refunds"].as_array().unwrap().len(), 4, "{order}");
    assert_eq!(
        order["lines"][0]["revoked_licenses"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{order}"
    );
    assert_eq!(events_of(&app, &app.key, "refund.succeeded").await, 4);
    assert_eq!(events_of(&app, &app.key, "order.refunded").await, 1);
    let hooks = receiver.wait_for(5).await;
    assert_eq!(
        sorted_types(&hooks),
        [
            "order.refunded",
            "refund.succeeded",
            "refund.succeeded",
            "refund.succeeded",
            "refund.succeeded"
        ]
    );
    assert!(hooks.iter().all(|h| h["verified"] == true));
    // The customer is told of each refund (the receipt and licenses came before).
    let mails = sink.wait_for(6).await;
    let refunds = mails
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
                .contains("refund")
        })
        .count();
    assert_eq!(refunds, 4, "{mails:?}");
}

/// A refund Stripe reports pending and then failed gave nothing back: it is taken back
/// (marked failed with Stripe's reason, the order paid again with all of it refundable,
/// `refund.failed`, the owners emailed), once however often Stripe says so. A pending
/// refund revokes no key and says it is pending (`refund.pending`); the keys of a full
/// refund are revoked (here returned to their pool) when Stripe says it succeeded
/// (`refund.succeeded`, then). A failure reported after that success (a card refund
/// the bank returned) takes it back too: the key still free in the pool is the
/// customer's again, the one another customer got meanwhile stays theirs, and the line
/// and the owners' email say so. localstripe's refunds succeed at once and it sends no
/// refund events: the test signs Stripe's events from localstripe's Refund, with the
/// status Stripe would report.
async fn a_refund_that_fails_at_stripe_is_taken_back(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let sink = Sink::start(None);
    let (app, _recorder) = kassa_with_stripe(backend, &stripe, Some(&sink)).await;
    let (_, receiver) = endpoint_with_receiver(
        &app,
        "",
        json!([
            "refund.pending",
            "refund.succeeded",
            "refund.failed",
            "order.refunded"
        ]),
    )
    .await;
    let (pi, order_id, order) = paid_test_order_at_stripe(&app, &stripe).await;
    let total = order["total"].as_i64().unwrap();
    let keys = order["lines"][0]["licenses"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let pools = app.get("/api/v1/license-pools").await;
    let pool_path = format!(
        "/api/v1/license-pools/{}",
        pools.ok()["data"][0]["id"].as_str().unwrap()
    );
    app.patch_as(&app.key, &pool_path, json!({"return_refunded_keys": true}))
        .await
        .ok();
    let available = || async { app.get(&pool_path).await.ok()["available"].clone() };
    assert_eq!(available().await, 1);
    let path = format!("/api/v1/orders/{order_id}");

    // All of it, refunded in Stripe's dashboard, pending there: counted, nothing revoked.
    let mut refund = stripe.refund(&pi, total).await;
    refund["status"] = json!("pending");
    let answer = report(&app, "evt_pending", "refund.created", &refund).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let o = app.get(&path).await.ok().clone();
    assert_eq!(o["status"], "refunded", "{o}");
    assert_eq!(o["amount_refunded"], total);
    assert_eq!(o["refunds"][0]["status"], "pending");
    assert_eq!(o["lines"][0]["refunded"], true);
    assert_eq!(o["lines"][0]["licenses"], keys);
    assert_eq!(o["lines"][0]["revoked_licenses"], json!([]), "{o}");
    assert_eq!(available().await, 1, "no key back in the pool yet");

    // It fails at Stripe: taken back.
    refund["status"] = json!("failed");
    refund["failure_reason"] = json!("expired_or_canceled_card");
    let failed = refund_event("evt_failed", "refund.failed", &refund);
    let answer = deliver_test(&app, &failed).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "paid", "{}", answer.text);
    let o = app.get(&path).await.ok().clone();
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["amount_refunded"], 0);
    assert_eq!(o["refunds"][0]["status"], "failed");
    assert_eq!(
        o["refunds"][0]["failure_reason"],
        "expired_or_canceled_card"
    );
    assert_eq!(o["lines"][0]["refunded"], false);
    assert_eq!(o["lines"][0]["delivery_status"], "delivered");
    assert_eq!(o["lines"][0]["licenses"], keys);
    // Said again, as `refund.failed` or `refund.updated`: nothing more.
    for again in [
        failed.clone(),
        refund_event("evt_failed_upd", "refund.updated", &refund),
    ] {
        let answer = deliver_test(&app, &again).await;
        assert_eq!(answer.body["replayed"], true, "{}", answer.text);
    }
    let o = app.get(&path).await.ok().clone();
    assert_eq!(
        (o["status"].clone(), o["amount_refunded"].clone()),
        (json!("paid"), json!(0))
    );
    assert_eq!(available().await, 1);

    // All of it is refundable again: a new refund, pending, then succeeded at Stripe;
    // the keys are revoked (back in the pool) when it succeeds.
    let mut second = stripe.refund(&pi, total).await;
    second["status"] = json!("pending");
    let answer = report(&app, "evt_second", "refund.created", &second).await;
    assert_eq!(answer.body["status"], "refunded", "{}", answer.text);
    assert_eq!(available().await, 1);
    second["status"] = json!("succeeded");
    let answer = report(&app, "evt_second_ok", "refund.updated", &second).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let o = app.get(&path).await.ok().clone();
    assert_eq!(o["refunds"][1]["status"], "succeeded", "{o}");
    assert_eq!(o["lines"][0]["revoked_licenses"], keys, "{o}");
    assert_eq!(available().await, 3, "the two keys are back, once");
    // Another customer buys one while the keys are back in the pool: one of the two
    // is theirs now.
    let prd = o["lines"][0]["product_id"].as_str().unwrap();
    let other = card_order(&app, prd).await;
    let given = other["lines"][0]["licenses"][0].clone();
    assert!(keys.as_array().unwrap().contains(&given), "{other}");
    assert_eq!(available().await, 2);

    // The refund that succeeded fails after all (a card refund the bank returned):
    // the money did not go back, so it is taken back. The key still free in the pool
    // is the customer's again; the one given to the other customer stays theirs, and
    // the line says so.
    second["status"] = json!("failed");
    second["failure_reason"] = json!("charge_for_pending_refund_disputed");
    let late = refund_event("evt_second_late", "refund.failed", &second);
    let answer = deliver_test(&app, &late).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "paid", "{}", answer.text);
    let o = app.get(&path).await.ok().clone();
    assert_eq!(
        (o["status"].clone(), o["amount_refunded"].clone()),
        (json!("paid"), json!(0)),
        "{o}"
    );
    assert_eq!(o["refunds"][1]["status"], "failed");
    assert_eq!(
        o["refunds"][1]["failure_reason"],
        "charge_for_pending_refund_disputed"
    );
    assert_eq!(o["lines"][0]["refunded"], false);
    assert_eq!(o["lines"][0]["licenses"], keys, "the line's history");
    assert_eq!(
        o["lines"][0]["revoked_licenses"],
        json!([given.clone()]),
        "{o}"
    );
    let said = o["lines"][0]["delivery_error"].as_str().unwrap_or_default();
    assert!(
        said.contains(given.as_str().unwrap()) && said.contains("another order"),
        "{o}"
    );
    assert_eq!(available().await, 1, "the free key is the customer's again");
    let other_now = app
        .get(&format!("/api/v1/orders/{}", other["id"].as_str().unwrap()))
        .await
        .ok()
        .clone();
    assert_eq!(other_now["lines"][0]["licenses"], json!([given.clone()]));
    assert_eq!(other_now["lines"][0]["revoked_licenses"], json!([]));
    // Said again, as `refund.failed` or `refund.updated`: nothing more.
    for again in [
        late.clone(),
        refund_event("evt_second_late_upd", "refund.updated", &second),
    ] {
        let answer = deliver_test(&app, &again).await;
        assert_eq!(answer.body["replayed"], true, "{}", answer.text);
    }
    assert_eq!(available().await, 1);
    assert_eq!(app.get(&path).await.ok()["amount_refunded"], 0);

    // The merchant hears of it: each refund's state at their endpoint (a pending one
    // says it is pending, and `refund.succeeded` comes once, when it succeeded), and
    // an email for each failure.
    let hooks = receiver.wait_for(7).await;
    assert_eq!(
        sorted_types(&hooks),
        [
            "order.refunded",
            "order.refunded",
            "refund.failed",
            "refund.failed",
            "refund.pending",
            "refund.pending",
            "refund.succeeded",
        ]
    );
    let told = hooks.iter().find(|h| h["type"] == "refund.failed").unwrap();
    assert_eq!(told["event"]["data"]["refund"]["status"], "failed");
    assert_eq!(told["event"]["data"]["order"]["status"], "paid");
    let succeeded = hooks
        .iter()
        .find(|h| h["type"] == "refund.succeeded")
        .unwrap();
    assert_eq!(succeeded["event"]["data"]["refund"]["status"], "succeeded");
    let pending = hooks
        .iter()
        .find(|h| h["type"] == "refund.pending")
        .unwrap();
    assert_eq!(pending["event"]["data"]["refund"]["status"], "pending");
    assert!(hooks.iter().all(|h| h["verified"] == true));
    let owners = || {
        let mails = sink.mails();
        mails
            .into_iter()
            .filter(|m| m["rcpt_tos"][0] == "owner@acme.test")
            .collect::<Vec<_>>()
    };
    for _ in 0..300 {
        if owners().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notices = owners();
    assert_eq!(notices.len(), 2, "{notices:?}");
    let amount = format!("The refund of {}.{:02} USD", total / 100, total % 100);
    for notice in &notices {
        let subject = notice["subject"].as_str().unwrap();
        assert!(
            subject.contains("refund") && subject.contains("failed"),
            "{subject}"
        );
        let text = notice["text"].as_str().unwrap();
        assert!(text.contains(&amount), "{text}");
    }
    let lost = notices
        .iter()
        .filter(|m| {
            let text = m["text"].as_str().unwrap_or_default();
            text.contains(given.as_str().unwrap()) && text.contains("given to another order")
        })
        .count();
    assert_eq!(lost, 1, "the second notice names the key lost: {notices:?}");
}

/// The webhook route under attack: failed signature checks (and deliveries to a
/// store or mode without Stripe) are counted per sender address, and past the limit
/// answered 429 with `Retry-After`; Stripe's genuine deliveries go on, from any
/// address. A database that fails while the store is looked up is a 503 Stripe
/// retries, not a 500.
async fn the_stripe_webhook_limits_bad_signatures_and_survives_a_failing_database(
    backend: Backend,
) {
    let stripe = LocalStripe::start().await;
    let mut options = Options {
        limits: LimitsConfig {
            bad_provider_webhooks_per_ip: "3/1h".into(),
            ..LimitsConfig::off()
        },
        ..Options::default()
    };
    options.providers.stripe_api_base = stripe.base.clone();
    options.providers.stripe_js_url = stripe.js_url();
    let app = TestApp::spawn_with(backend, options).await;
    set_up_stripe(&app, &app.live_key, "test", TEST_KEYS).await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let genuine = json!({"id": "evt_fine", "object": "event", "type": "customer.created",
                         "livemode": false, "data": {"object": {"id": "cus_1"}}});
    let send = |client: reqwest::Client, path: &str, secret: &str| {
        let body = genuine.to_string();
        let signature = stripe_signature(secret, chrono::Utc::now().timestamp(), &body);
        app.send(
            client
                .post(app.url(path))
                .header("stripe-signature", signature)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    let test_hook = "/acme/test/webhooks/stripe";
    let attacker = from("127.0.0.2");
    // Three wrong signatures, an unknown store, a mode without Stripe: 400, 400, 400,
    // then 429 with Retry-After.
    for _ in 0..3 {
        send(attacker.clone(), test_hook, "whsec_guess")
            .await
            .problem(400);
    }
    for path in [
        test_hook,
        "/nobody/test/webhooks/stripe",
        "/acme/webhooks/stripe",
    ] {
        let limited = send(attacker.clone(), path, "whsec_guess").await;
        assert_eq!(limited.problem(429)["type"], "rate_limited");
        let wait: u64 = limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait > 0);
    }
    // Stripe's genuine deliveries, from another address and from the same one.
    for client in [from("127.0.0.3"), attacker] {
        let fine = send(client, test_hook, TEST_WHSEC).await;
        assert_eq!(fine.status, 200, "{}", fine.text);
        assert_eq!(fine.body["ignored"], "customer.created");
    }

    // The database fails while the store is looked up: 503, Retry-After.
    execute(&app, "ALTER TABLE tenants RENAME TO tenants_away").await;
    let down = send(from("127.0.0.4"), test_hook, TEST_WHSEC).await;
    execute(&app, "ALTER TABLE tenants_away RENAME TO tenants").await;
    assert_eq!(down.problem(503)["type"], "unavailable", "{}", down.text);
    assert!(down.headers.contains_key("retry-after"));
    let back = send(from("127.0.0.4"), test_hook, TEST_WHSEC).await;
    assert_eq!(back.status, 200, "{}", back.text);
}

/// Runs `sql` on the test's database, past Kassa.
async fn execute(app: &TestApp, sql: &'static str) {
    match (app.store.sqlite_pool(), app.store.pg_pool()) {
        (Some(pool), _) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        (_, Some(pool)) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        _ => unreachable!("a store has a pool"),
    }
    .unwrap();
}

/// A card that needs 3-D Secure: confirming the PaymentIntent leaves it
/// `requires_action` (Stripe.js shows the bank's challenge), and the order stays
/// unpaid, its page saying the payment is being confirmed, until the customer passed
/// the challenge and Stripe's `payment_intent.succeeded` arrived. localstripe asks for
/// authentication for Stripe's 3-D Secure test cards and completes it through its
/// `_authenticate` call (what its Stripe.js does when the customer passes).
async fn a_card_needing_3d_secure_is_paid_only_once_authenticated(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let (app, recorder) = kassa_with_stripe(backend, &stripe, None).await;
    let b = Browser::new(&app);
    let (intent, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    let pi = intent["id"].as_str().unwrap();
    let (status, confirmed) = stripe.pay(pi, THREE_D_SECURE_CARD).await;
    assert_eq!(
        (status, confirmed["status"].clone()),
        (200, json!("requires_action")),
        "{confirmed}"
    );
    let order_page = pay_path(&app, &order_id).await.replace("/pay", "");
    let page = b.get(&order_page).await;
    assert!(page.html.contains("payment-confirming"), "{}", page.html);
    let order = app.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order.ok()["status"], "not_paid");
    assert_eq!(order.body["payments"][0]["status"], "pending");

    let secret = card_form(
        &b.get(&pay_path(&app, &order_id).await).await.html,
        "secret",
    );
    let authenticated = stripe.authenticate(pi, &secret).await;
    assert_eq!(authenticated["status"], "succeeded", "{authenticated}");
    recorder.wait_for("payment_intent.succeeded").await;
    let order = order_once(&app, &app.key, &order_id, |o| o["status"] == "paid").await;
    assert_eq!(order["status"], "paid", "{order}");
    let page = b.get(&order_page).await;
    assert!(!page.html.contains("payment-confirming"), "{}", page.html);
}

/// 3-D Secure that the customer fails (or abandons): Stripe sends
/// `payment_intent.payment_failed` with `payment_intent_authentication_failure` as
/// the PaymentIntent's `last_payment_error`. localstripe sends no event for it, so
/// the test signs Stripe's event from localstripe's PaymentIntent (waiting for
/// authentication) with the error Stripe gives. The order stays unpaid with Stripe's
/// reason on its attempt, nothing is delivered, the customer is told; a later
/// payment with another card pays it.
async fn a_failed_3d_secure_leaves_the_order_unpaid_until_a_payment_succeeds(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let sink = Sink::start(None);
    let (app, _recorder) = kassa_with_stripe(backend, &stripe, Some(&sink)).await;
    let b = Browser::new(&app);
    let (intent, order_id) = test_order_at_stripe(&app, &stripe, &b).await;
    let pi = intent["id"].as_str().unwrap();
    let (_, confirmed) = stripe.pay(pi, THREE_D_SECURE_CARD).await;
    assert_eq!(confirmed["status"], "requires_action", "{confirmed}");
    let mut failed = stripe
        .payment_intents()
        .await
        .into_iter()
        .find(|i| i["id"] == pi)
        .unwrap();
    failed["status"] = json!("requires_payment_method");
    failed["last_payment_error"] = json!({
        "type": "invalid_request_error",
        "code": "payment_intent_authentication_failure",
        "message": "We are unable to authenticate your payment method. Please choose a different payment method and try again."
    });
    let answer = deliver_test(
        &app,
        &event("evt_3ds_failed", "payment_intent.payment_failed", &failed),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let order = attempt_ended(&app, &order_id, "payment_intent_authentication_failure").await;
    assert!(
        order["payments"][0]["failure_message"]
            .as_str()
            .unwrap()
            .contains("unable to authenticate"),
        "{order}"
    );
    assert_eq!(order["delivery_status"], "not_delivered");
    assert_eq!(order["lines"][0]["licenses"], json!([]));
    assert_eq!(events_of(&app, &app.key, "payment.failed").await, 1);
    assert_eq!(events_of(&app, &app.key, "payment.succeeded").await, 0);
    // Sent again: nothing more.
    let again = deliver_test(
        &app,
        &event("evt_3ds_failed", "payment_intent.payment_failed", &failed),
    )
    .await;
    assert_eq!(again.body["replayed"], true, "{}", again.text);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["to"], "buyer@example.com", "{mails:?}");

    // The customer pays again with another card: a new PaymentIntent pays the order.
    let pay_path = pay_path(&app, &order_id).await;
    let pay = b.get(&pay_path).await;
    assert!(pay.html.contains("Pay by card"), "{}", pay.html);
    let retry = b.post(&pay_path, &[("csrf", &pay.csrf())]).await;
    assert_eq!(retry.status, 303, "{}", retry.html);
    let second = stripe.payment_intents().await;
    assert_eq!(second.len(), 2);
    stripe
        .pay(second[1]["id"].as_str().unwrap(), GOOD_CARD)
        .await;
    let order = order_once(&app, &app.key, &order_id, |o| {
        o["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(
        (order["status"].clone(), order["delivery_status"].clone()),
        (json!("paid"), json!("delivered")),
        "{order}"
    );
    assert_eq!(order["payments"][0]["status"], "failed");
    assert_eq!(order["payments"][1]["status"], "succeeded");
}
