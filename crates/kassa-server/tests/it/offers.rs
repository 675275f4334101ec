//! Signed links and the offers they carry, attacked as issue 14 found them: a signed
//! price bought in another currency and quantity, a fixed discount kept for fewer
//! units, a signed string read two ways, and an expired offer kept in the cart and
//! paid. Each is refused on the page, next to the field, and nothing is placed or paid.

use chrono::Utc;
use kassa_domain::signed_link;
use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::TestApp;
use crate::pages::{Browser, details, orders, product};

on_both_backends!(
    signed_links_fix_prices_and_refuse_tampering,
    a_signed_price_holds_only_in_its_currency_and_quantity,
    a_signed_discount_holds_only_for_its_quantity,
    the_signed_string_reads_one_way_only,
    an_expired_offer_is_refused_when_placed_and_when_paid,
);

/// The store's link-signing secret.
async fn secret(app: &TestApp) -> String {
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let secret = app.store.link_secret(&tenant.id).await.unwrap();
    secret.expose_secret().to_owned()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A buy link for `prd` signed as a merchant would sign it.
async fn signed_path(app: &TestApp, prd: &str, params: &[(&str, &str)]) -> String {
    let query = signed_link::signed_query(&secret(app).await, "acme", prd, &pairs(params))
        .expect("a link that signs");
    format!("/acme/test/buy/{prd}?{query}")
}

/// `details` with another quantity and currency.
fn order_form<'a>(csrf: &'a str, quantity: &'a str, currency: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut form = details(csrf, "test_card");
    form.retain(|(k, _)| *k != "quantity_0");
    form.push(("quantity_0", quantity));
    form.push(("currency", currency));
    form
}

async fn signed_links_fix_prices_and_refuse_tampering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let far = (Utc::now().timestamp() + 3600).to_string();
    let path = signed_path(
        &app,
        &prd,
        &[("currency", "USD"), ("price", "999"), ("expires", &far)],
    )
    .await;
    let b = Browser::new(&app);
    let page = b.open(&path).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("9.99 USD"), "the signed price");

    let tampered = b.get(&path.replace("price=999", "price=1")).await;
    assert_eq!(tampered.status, 400);
    assert!(tampered.html.contains("has been changed"));
    let unsigned = b.get(&format!("/acme/test/buy/{prd}?price=1")).await;
    assert_eq!(unsigned.status, 400);
    assert!(unsigned.html.contains("is not signed"));
    for key in ["discount", "min_quantity", "max_quantity", "expires"] {
        let page = b.get(&format!("/acme/test/buy/{prd}?{key}=1")).await;
        assert_eq!(page.status, 400, "{key} needs a signature");
    }
    let expired = signed_path(&app, &prd, &[("expires", "1000")]).await;
    let expired = b.get(&expired).await;
    assert_eq!(expired.status, 400);
    assert!(expired.html.contains("has expired"));

    // Nothing may be added to a signed link, not even a parameter Kassa does not know.
    let added = b.get(&format!("{path}&utm_source=news")).await;
    assert_eq!(added.status, 400);
    assert!(added.html.contains("does not know"), "{}", added.html);
    assert!(added.html.contains("utm_source"));

    // The first format (path + "?" + unencoded pairs) is refused.
    let old_message = format!("/acme/test/buy/{prd}?currency=USD&price=999");
    let old = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret(&app).await.as_bytes()).unwrap();
        mac.update(old_message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let old = b
        .get(&format!(
            "/acme/test/buy/{prd}?currency=USD&price=999&sig={old}"
        ))
        .await;
    assert_eq!(old.status, 400);
    assert!(old.html.contains("has been changed"));

    // Signed terms that are not valid are the merchant's mistake, said on the page.
    let no_currency = signed_path(&app, &prd, &[("price", "999")]).await;
    let page = b.get(&no_currency).await;
    assert_eq!(page.status, 400);
    assert!(
        page.html
            .contains("terms signed in this link are not valid")
    );
    assert!(page.html.contains("currency: is required with a price"));
    assert!(orders(&app.store, "acme").await.is_empty());
}

/// The attack: a 9.00 USD signature bought 1,000 units at 900 JPY. A signed price
/// holds for its currency and its quantity only; anything else is refused next to
/// the field, and no order is placed.
async fn a_signed_price_holds_only_in_its_currency_and_quantity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let path = signed_path(&app, &prd, &[("price", "900"), ("currency", "USD")]).await;
    let b = Browser::new(&app);
    let page = b.open(&path).await;
    assert!(page.html.contains("9.00 USD"), "{}", page.html);
    let csrf = page.csrf();

    let euros = b
        .submit(&page, "/acme/test/checkout", &order_form(&csrf, "1", "EUR"))
        .await;
    assert_eq!(euros.status, 422, "{}", euros.html);
    assert!(
        euros.error("line_0").unwrap().contains("price is in USD"),
        "{}",
        euros.html
    );
    let many = b
        .post("/acme/test/checkout", &order_form(&csrf, "1000", "USD"))
        .await;
    assert_eq!(many.status, 422);
    assert_eq!(
        many.error("quantity_0").unwrap(),
        "this offer is for a quantity of exactly 1"
    );
    assert!(
        orders(&app.store, "acme").await.is_empty(),
        "nothing placed"
    );

    let placed = b
        .post("/acme/test/checkout", &order_form(&csrf, "1", "USD"))
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let order = &orders(&app.store, "acme").await[0];
    assert_eq!((order.currency.as_str(), order.total), ("USD", 900));
    assert_eq!(order.lines[0].quantity, 1);
}

/// The attack: a fixed discount signed for 10 units stayed when the quantity dropped
/// to 1 (a total of 0.00).
async fn a_signed_discount_holds_only_for_its_quantity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1000).await;
    let path = signed_path(
        &app,
        &prd,
        &[
            ("discount", "9000"),
            ("currency", "USD"),
            ("quantity", "10"),
        ],
    )
    .await;
    let b = Browser::new(&app);
    let page = b.open(&path).await;
    assert!(page.html.contains("10.00 USD"), "10 × 10.00 − 90.00");
    let one = b
        .submit(
            &page,
            "/acme/test/checkout",
            &order_form(&page.csrf(), "1", "USD"),
        )
        .await;
    assert_eq!(one.status, 422);
    assert_eq!(
        one.error("quantity_0").unwrap(),
        "this offer is for a quantity of exactly 10"
    );
    assert!(
        !one.html.contains("0.00 USD"),
        "no price for terms not signed"
    );
    let cart = b.get("/acme/test/checkout").await;
    assert!(
        cart.error("quantity_0").is_some(),
        "the cart says it too: {}",
        cart.html
    );
    assert!(orders(&app.store, "acme").await.is_empty());

    // With signed bounds the customer chooses within them, the discount on the line.
    let bounded = signed_path(
        &app,
        &prd,
        &[
            ("discount", "500"),
            ("currency", "USD"),
            ("min_quantity", "2"),
            ("max_quantity", "5"),
        ],
    )
    .await;
    let b = Browser::new(&app);
    let page = b.open(&bounded).await;
    assert!(
        page.html.contains("value=\"2\""),
        "opens at the lower bound"
    );
    let six = b
        .submit(
            &page,
            "/acme/test/checkout",
            &order_form(&page.csrf(), "6", "USD"),
        )
        .await;
    assert_eq!(
        six.error("quantity_0").unwrap(),
        "this offer is for a quantity between 2 and 5"
    );
    let five = b
        .post("/acme/test/checkout", &order_form(&page.csrf(), "5", "USD"))
        .await;
    assert_eq!(five.status, 303, "{}", five.html);
    assert_eq!(orders(&app.store, "acme").await[0].total, 4500);
}

/// The attack: pairs were joined by `&` without encoding, so a merchant who signed a
/// value a customer chose (`custom[ref]=x&price=1`) had also signed `price=1`; and a
/// key given twice read as its first value.
async fn the_signed_string_reads_one_way_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let chosen = "x&price=1";
    let sig = signed_link::sign(
        &secret(&app).await,
        "acme",
        &prd,
        &pairs(&[("currency", "USD"), ("custom[ref]", chosen)]),
    )
    .unwrap();
    let b = Browser::new(&app);
    let split = b
        .get(&format!(
            "/acme/test/buy/{prd}?currency=USD&custom[ref]=x&price=1&sig={sig}"
        ))
        .await;
    assert_eq!(split.status, 400, "the value read as a price is refused");
    assert!(split.html.contains("has been changed"));
    let honest = b
        .open(&format!(
            "/acme/test/buy/{prd}?currency=USD&custom%5Bref%5D=x%26price%3D1&sig={sig}"
        ))
        .await;
    assert_eq!(honest.status, 200, "{}", honest.html);
    assert!(honest.html.contains("19.99 USD"), "the catalog price");

    let path = signed_path(&app, &prd, &[("price", "999"), ("currency", "USD")]).await;
    let twice = b.get(&format!("{path}&price=1")).await;
    assert_eq!(twice.status, 400);
    assert!(twice.html.contains("same setting twice"));
    let first_wins = b.get(&path.replace("price=999", "price=1&price=999")).await;
    assert_eq!(first_wins.status, 400);
    assert!(orders(&app.store, "acme").await.is_empty());
}

/// The attack: `expires` was checked only when the link was opened, and the cart kept
/// the signed price for 30 days after. An offer is checked again when the order is
/// placed and when it is paid online: after its expiry nothing is placed or paid, and
/// the page says why.
async fn an_expired_offer_is_refused_when_placed_and_when_paid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let expires = Utc::now().timestamp() + 3;
    let path = signed_path(
        &app,
        &prd,
        &[
            ("price", "500"),
            ("currency", "USD"),
            ("max_quantity", "5"),
            ("expires", &expires.to_string()),
        ],
    )
    .await;
    // One customer places the order in time; another fills the cart and waits.
    let early = Browser::new(&app);
    let page = early.open(&path).await;
    let placed = early
        .submit(
            &page,
            "/acme/test/checkout",
            &details(&page.csrf(), "test_card"),
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let pay_path = placed.location.unwrap();
    let open_pay_page = early.get(&pay_path).await;
    assert!(open_pay_page.html.contains("Card number"));
    let late = Browser::new(&app);
    let page = late.open(&path).await;
    let kept = late
        .submit(&page, "/acme/test/checkout", &[("action", "update")])
        .await;
    assert!(kept.html.contains("5.00 USD"), "{}", kept.html);

    let wait = expires - Utc::now().timestamp() + 1;
    tokio::time::sleep(std::time::Duration::from_secs(wait.max(0).unsigned_abs())).await;

    let cart = late.get("/acme/test/checkout").await;
    assert!(
        cart.error("line_0")
            .unwrap()
            .contains("this offer expired on"),
        "{}",
        cart.html
    );
    let refused = late
        .post("/acme/test/checkout", &details(&cart.csrf(), "test_card"))
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .error("line_0")
            .unwrap()
            .contains("ask the store for a new link")
    );
    assert_eq!(orders(&app.store, "acme").await.len(), 1, "nothing placed");
    assert_eq!(late.get(&path).await.status, 400, "the link has expired");

    let pay = early.get(&pay_path).await;
    assert_eq!(pay.status, 410);
    assert!(
        pay.error("offer").unwrap().contains("expired on"),
        "{}",
        pay.html
    );
    assert!(!pay.html.contains("Card number"), "no card form");
    let attempt = early
        .post(
            &pay_path,
            &[
                ("csrf", &open_pay_page.csrf()),
                ("card_number", "4242 4242 4242 4242"),
                ("expiry", "12/34"),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(attempt.status, 410);
    assert!(attempt.error("offer").unwrap().contains("expired on"));
    let order = &orders(&app.store, "acme").await[0];
    assert_eq!(order.status.as_str(), "not_paid");
    assert!(order.payments.is_empty(), "nothing charged or recorded");

    // Money the merchant received offline is the merchant's to record.
    let recorded = app
        .post(
            &format!("/api/v1/orders/{}/payments", order.id),
            json!({"method": "bank_transfer", "amount": 1000, "currency": "USD"}),
        )
        .await;
    assert_eq!(recorded.ok()["status"], "paid");
}
