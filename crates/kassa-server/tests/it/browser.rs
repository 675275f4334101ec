//! The checkout and the merchant dashboard in a real headless Chromium, driven by
//! visible labels (tests/browser/*.mjs, playwright-core) and checked with axe-core, on
//! both databases.

use std::path::PathBuf;

use kassa_domain::tenant::{BankDetails, TenantSettings};
use kassa_store::PageRequest;
use kassa_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::emails::Sink;
use crate::harness::TestApp;

on_both_backends!(
    a_customer_buys_two_with_a_card,
    a_declined_card_then_a_good_one,
    bank_transfer_then_the_merchant_records_the_payment,
    a_merchant_signs_up_and_sells_in_the_browser,
    a_customer_pays_by_card_through_stripe,
    a_declined_card_through_stripe_then_another_payment,
);

/// One Chromium at a time: the machine has two cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A script of tests/browser: `KASSA_BROWSER_SCRIPT` is checkout.mjs, the others are
/// beside it.
fn script(name: &str) -> PathBuf {
    let checkout = std::env::var("KASSA_BROWSER_SCRIPT").expect(
        "KASSA_BROWSER_SCRIPT is not set: run the suite with `bash tests/run.sh`, which installs \
         Chromium, playwright-core and axe-core",
    );
    PathBuf::from(checkout).with_file_name(name)
}

/// Runs a browser script with `args` and returns the JSON line it printed.
async fn run(name: &str, args: &[&str]) -> Value {
    let script = script(name);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let _one_at_a_time = BROWSER.lock().await;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .args(&args)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "browser scenario failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .expect("the script prints one JSON line");
    serde_json::from_str(line).expect("JSON from the browser script")
}

/// A checkout scenario of checkout.mjs on `url`.
async fn checkout(scenario: &str, url: &str) -> Value {
    run("checkout.mjs", &[scenario, url]).await
}

/// A store with bank details and a 19.99 USD product with keys; returns its buy URL.
async fn store_with_product(app: &TestApp) -> String {
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let settings = TenantSettings {
        bank: Some(BankDetails {
            account_holder: "Acme GmbH".into(),
            bank_name: "Test Bank".into(),
            iban: "DE89370400440532013000".into(),
            bic: "COBADEFFXXX".into(),
        }),
        ..TenantSettings::default()
    };
    app.store
        .update_tenant_settings(&tenant.id, &settings)
        .await
        .unwrap();
    let pool = app.pool_with_keys(&["KEY-1", "KEY-2"]).await;
    let product = app.product(&pool).await;
    format!(
        "{}?quantity=2&locale=en",
        product["buy_url"].as_str().unwrap()
    )
}

/// The one order of the store `slug`.
async fn the_order(app: &TestApp, slug: &str) -> kassa_store::OrderRecord {
    let tenant = app.store.tenant_by_slug(slug).await.unwrap();
    let mut all = app
        .store
        .search_orders(
            &tenant.id,
            &kassa_store::OrderFilter::default(),
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
        .data;
    assert_eq!(all.len(), 1, "exactly one order");
    all.remove(0)
}

/// A store selling only through Stripe, whose Stripe is `stripe` (its events sent to
/// the store's test mode endpoint); returns the buy URL of a product with two keys.
async fn store_on_localstripe(app: &TestApp, stripe: &crate::localstripe::LocalStripe) -> String {
    use crate::stripe::{TEST_KEYS, TEST_WHSEC, set_up_stripe};
    set_up_stripe(app, &app.live_key, "test", TEST_KEYS).await;
    app.patch_as(
        &app.live_key,
        "/api/v1/settings",
        json!({"payment_methods": ["stripe"]}),
    )
    .await
    .ok();
    stripe
        .send_webhooks("kassa", &app.url("/acme/test/webhooks/stripe"), TEST_WHSEC)
        .await;
    let pool = app.pool_with_keys(&["KEY-1", "KEY-2"]).await;
    let product = app.product(&pool).await;
    format!(
        "{}?quantity=2&locale=en",
        product["buy_url"].as_str().unwrap()
    )
}

/// The card form Stripe.js mounts on the payment page (localstripe's Stripe.js, through
/// Kassa's `stripe_js_url`), typed into and confirmed: the customer lands on the order
/// page, which says the payment is being confirmed, and the order is paid when
/// localstripe's signed webhook arrives.
async fn a_customer_pays_by_card_through_stripe(backend: Backend) {
    use crate::localstripe::{LocalStripe, SECRET_KEY};
    let stripe = LocalStripe::start().await;
    let app = crate::stripe::spawn(backend, &stripe, None).await;
    let url = store_on_localstripe(&app, &stripe).await;
    let seen = run("checkout.mjs", &["stripe", &url, &stripe.base, SECRET_KEY]).await;
    assert!(
        seen["confirming"].to_string().contains("being confirmed"),
        "{seen}"
    );
    assert_eq!(seen["status_text"], "Paid", "{seen}");
    assert_eq!(seen["page_errors"], json!([]), "{seen}");
    let order = the_order(&app, "acme").await;
    assert_eq!(order.status.as_str(), "paid");
    assert_eq!(order.payments.len(), 1);
    assert_eq!(order.payments[0].status.as_str(), "succeeded");
    let intents = stripe.payment_intents().await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(intents[0]["amount"], 3998);
}

/// A declined card on the card form: Kassa's own words for Stripe's `card_declined`
/// next to it; once Stripe's `payment_intent.payment_failed` ended the attempt, "Pay by
/// card" starts a new PaymentIntent, which a good card pays.
async fn a_declined_card_through_stripe_then_another_payment(backend: Backend) {
    use crate::localstripe::{LocalStripe, SECRET_KEY};
    let stripe = LocalStripe::start().await;
    let app = crate::stripe::spawn(backend, &stripe, None).await;
    let url = store_on_localstripe(&app, &stripe).await;
    let seen = run(
        "checkout.mjs",
        &["stripe_declined", &url, &stripe.base, SECRET_KEY],
    )
    .await;
    assert_eq!(
        seen["declined_message"],
        kassa_web::page::texts("en")
            .get("card_declined")
            .unwrap()
            .as_str(),
        "{seen}"
    );
    assert_eq!(seen["status_text"], "Paid", "{seen}");
    let order = the_order(&app, "acme").await;
    assert_eq!(order.status.as_str(), "paid");
    let statuses: Vec<_> = order.payments.iter().map(|p| p.status.as_str()).collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(
        statuses.contains(&"failed") && statuses.contains(&"succeeded"),
        "{statuses:?}"
    );
    assert_eq!(stripe.payment_intents().await.len(), 2);
}

async fn a_customer_buys_two_with_a_card(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = store_with_product(&app).await;
    let seen = checkout("happy", &url).await;
    assert_eq!(seen["status_text"], "Paid");
    // axe-core found no serious or critical violation on these.
    assert_eq!(seen["audited"], json!(["checkout", "pay", "order"]));
    let order = the_order(&app, "acme").await;
    assert_eq!(order.status.as_str(), "paid");
    assert_eq!(order.total, 3998);
    assert_eq!(order.lines[0].quantity, 2);
    assert_eq!(order.customer.email.as_deref(), Some("buyer@example.com"));
    assert_eq!(order.customer.name.as_deref(), Some("Ada Buyer"));
    assert_eq!(order.consents.len(), 2);
    let api = app.get(&format!("/api/v1/orders/{}", order.id)).await;
    assert_eq!(api.ok()["status"], "paid");
}

async fn a_declined_card_then_a_good_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = store_with_product(&app).await;
    let seen = checkout("declined", &url).await;
    assert!(
        seen["declined_message"]
            .as_str()
            .unwrap()
            .contains("declined"),
        "{seen}"
    );
    assert_eq!(seen["status_text"], "Paid");
    let order = the_order(&app, "acme").await;
    let attempts: Vec<_> = order
        .payments
        .iter()
        .map(|p| (p.status.as_str(), p.failure_code.as_deref()))
        .collect();
    assert_eq!(
        attempts,
        [("failed", Some("card_declined")), ("succeeded", None)]
    );
}

async fn bank_transfer_then_the_merchant_records_the_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = store_with_product(&app).await;
    let seen = checkout("bank_transfer", &url).await;
    let order = the_order(&app, "acme").await;
    assert_eq!(seen["reference"], order.payment_reference.as_str());
    assert_eq!(order.status.as_str(), "not_paid");
    assert_eq!(order.payment_method.as_str(), "bank_transfer");
    let recorded = app
        .post(
            &format!("/api/v1/orders/{}/payments", order.id),
            json!({"method": "bank_transfer", "amount": order.total, "currency": order.currency}),
        )
        .await;
    assert_eq!(recorded.ok()["status"], "paid");
    let reloaded = checkout("reload", seen["order_url"].as_str().unwrap()).await;
    assert_eq!(reloaded["status_text"], "Paid");
}

async fn a_merchant_signs_up_and_sells_in_the_browser(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let mails = sink.file().to_str().unwrap().to_owned();
    let seen = run("dashboard.mjs", &["merchant", &app.base, &mails]).await;
    // axe-core found no serious or critical violation on these.
    assert_eq!(
        seen["audited"],
        json!([
            "signup",
            "signup-errors",
            "check-email",
            "verify",
            "store-new",
            "settings",
            "pools",
            "pool",
            "products-empty",
            "product-new",
            "product",
            "coupons",
            "checkout-links",
            "checkout-links-made",
            "branded-checkout",
            "branded-checkout-errors",
            "branded-pay",
            "branded-order",
            "orders",
            "order",
            "team",
            "login",
            "home"
        ])
    );
    assert!(
        seen["keys_uploaded"]
            .as_str()
            .unwrap()
            .contains("Added 3 keys"),
        "{seen}"
    );
    assert!(
        seen["buy_link"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/ada-software/test/buy/prd_", app.base)),
        "{seen}"
    );
    assert_eq!(seen["order_row"]["Total"], "39.98 USD", "{seen}");
    assert_eq!(seen["today"], "1 paid order", "{seen}");

    // What the pages showed is what is stored: the store made in the browser, its one
    // order paid and delivered with two of the three keys.
    let tenant = app.store.tenant_by_slug("ada-software").await.unwrap();
    assert_eq!(tenant.name, "Ada Software");
    let order = the_order(&app, "ada-software").await;
    assert_eq!(order.status.as_str(), "paid");
    assert_eq!(order.delivery_status.as_str(), "delivered");
    assert_eq!(order.total, 3998);
    assert_eq!(order.customer.email.as_deref(), Some("buyer@example.com"));
    let mut licenses = order.lines[0].licenses.clone();
    licenses.sort();
    licenses.dedup();
    assert_eq!(licenses.len(), 2, "{licenses:?}");
    assert!(licenses.iter().all(|k| k.starts_with("ADA-PRO-")));
    assert_eq!(seen["licenses"], json!(order.lines[0].licenses), "{seen}");
    assert!(
        seen["order_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/dashboard/orders/{}", order.id)),
        "{seen}"
    );

    // The customer got the keys by email too.
    let sent = sink.wait_for(3).await;
    let to_buyer: Vec<&Value> = sent
        .iter()
        .filter(|m| m["rcpt_tos"][0] == "buyer@example.com")
        .collect();
    assert!(
        to_buyer.iter().any(|m| order.lines[0]
            .licenses
            .iter()
            .all(|k| m["text"].as_str().unwrap_or_default().contains(k.as_str()))),
        "{sent:?}"
    );
}
