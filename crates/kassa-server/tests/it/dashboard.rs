//! The merchant dashboard over HTTP, as a browser without JavaScript drives it: sign
//! up with the link from a real SMTP server, create a store, a pool, keys and a
//! product, sell it, and see the order; bad input answered next to the field; one
//! store's member never reaching another's pages. Both databases.

use std::time::Duration;

use kassa_testkit::{Backend, on_both_backends};

use crate::emails::Sink;
use crate::harness::TestApp;
use crate::pages::{Browser, Page, details, unescape};

on_both_backends!(
    a_merchant_signs_up_and_sells_without_curl,
    bad_input_is_answered_next_to_the_field,
    a_member_of_one_store_never_sees_another,
    a_forgotten_password_is_reset_by_email,
    guessing_passwords_is_slowed_down,
    a_teammate_joins_by_invitation_with_a_role,
    coupons_apply_at_checkout_and_emails_show_in_the_outbox,
    a_failed_delivery_is_tried_again_from_the_order,
    an_open_order_list_hears_of_new_orders,
    signing_up_first_with_someone_elses_email_gains_nothing,
    a_checkout_link_from_the_dashboard_sells_its_signed_offer,
    a_new_store_offers_what_it_is_set_up_for,
);

pub(crate) const PASSWORD: &str = "correct horse battery";

/// The message shown next to a dashboard field.
pub(crate) fn error(page: &Page, field: &str) -> Option<String> {
    let marker = format!("id=\"e-{field}\">");
    let start = page.html.find(&marker)? + marker.len();
    let end = page.html[start..].find('<')? + start;
    Some(page.html[start..end].to_owned())
}

/// The first link in a mail's text that starts with `prefix`.
pub(crate) fn link_in(mail: &serde_json::Value, prefix: &str) -> String {
    let text = mail["text"].as_str().expect("a text part");
    let start = text.find(prefix).expect("the link is in the email");
    text[start..].split_whitespace().next().unwrap().to_owned()
}

pub(crate) fn path_of(app: &TestApp, url: &str) -> String {
    url.strip_prefix(&app.base)
        .expect("a link to this Kassa")
        .to_owned()
}

/// Signs up `email`, confirms it through the emailed link (the `nth` mail of the sink)
/// and creates the store `slug`; returns the signed-in browser.
pub(crate) async fn merchant(
    app: &TestApp,
    sink: &Sink,
    nth: usize,
    email: &str,
    slug: &str,
) -> Browser {
    let b = Browser::new(app);
    let form = b.get("/dashboard/signup").await;
    assert_eq!(form.status, 200);
    let sent = b
        .post(
            "/dashboard/signup",
            &[
                ("csrf", &form.csrf()),
                ("email", email),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert!(sent.html.contains("Check your email"), "{}", sent.html);
    let mails = sink.wait_for(nth).await;
    let mail = &mails[nth - 1];
    assert_eq!(mail["rcpt_tos"][0], email);
    assert_eq!(mail["subject"], "Confirm your email for Kassa");
    let link = path_of(
        app,
        &link_in(mail, &format!("{}/dashboard/verify?token=", app.base)),
    );
    let confirm = b.get(&link).await;
    assert!(confirm.html.contains("Confirm my email"));
    let token = link.split("token=").nth(1).unwrap();
    let verified = b
        .post(
            "/dashboard/verify",
            &[("csrf", &confirm.csrf()), ("token", token)],
        )
        .await;
    assert_eq!(verified.status, 303);
    // Signed in, with no store yet: the dashboard asks for one.
    let home = b.get("/dashboard").await;
    assert_eq!(home.location.as_deref(), Some("/dashboard/stores/new"));
    let new = b.get("/dashboard/stores/new").await;
    let created = b
        .post(
            "/dashboard/stores/new",
            &[
                ("csrf", &new.csrf()),
                ("name", &format!("Shop of {slug}")),
                ("slug", slug),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.html);
    let next = created.location.unwrap();
    assert!(
        next.starts_with("/dashboard/settings?notice=Your+store+is+ready"),
        "{next}"
    );
    b
}

/// The id of the product whose dashboard page is `product`.
pub(crate) fn product_id(product: &Page) -> String {
    let start = product.html.find("<code>prd_").unwrap() + 6;
    product.html[start..].split('<').next().unwrap().to_owned()
}

/// Turns bank transfer on in the store's settings, with the bank details it needs.
pub(crate) async fn offer_bank_transfer(b: &Browser) {
    let settings = b.open("/dashboard/settings").await;
    let saved = b
        .post(
            "/dashboard/settings",
            &[
                ("csrf", &settings.csrf()),
                ("payment_methods", "test_card"),
                ("payment_methods", "bank_transfer"),
                ("account_holder", "Ada Ltd"),
                ("iban", "DE89370400440532013000"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
}

/// The payment methods ticked on the settings form, as a browser would send them.
fn ticked(page: &Page) -> Vec<String> {
    page.html
        .split("name=\"payment_methods\" value=\"")
        .skip(1)
        .filter_map(|rest| {
            let (value, after) = rest.split_once('"')?;
            after.starts_with(" checked").then(|| value.to_owned())
        })
        .collect()
}

/// Creates a pool holding `keys` (uploaded as a file) and a product delivered from
/// it; returns the product's page.
pub(crate) async fn pool_and_product(b: &Browser, keys: &str) -> (String, Page) {
    pool_and_product_with(b, keys, ("low_stock_threshold", "1")).await
}

/// [`pool_and_product`], the pool's form with `setting` filled in.
pub(crate) async fn pool_and_product_with(
    b: &Browser,
    keys: &str,
    setting: (&str, &str),
) -> (String, Page) {
    let pools = b.get("/dashboard/pools").await;
    let created = b
        .post(
            "/dashboard/pools",
            &[("csrf", &pools.csrf()), ("name", "Pro keys"), setting],
        )
        .await;
    let pool_path = created.location.unwrap();
    let pool_path = pool_path.split('?').next().unwrap().to_owned();
    let pool_id = pool_path.rsplit('/').next().unwrap().to_owned();
    let form = reqwest::multipart::Form::new()
        .text("csrf", pools.csrf())
        .part(
            "file",
            reqwest::multipart::Part::bytes(keys.as_bytes().to_vec()).file_name("keys.txt"),
        );
    let uploaded = b.post_multipart(&format!("{pool_path}/keys"), form).await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.html);
    let new = b.get("/dashboard/products/new").await;
    let product = b
        .post(
            "/dashboard/products/new",
            &[
                ("csrf", &new.csrf()),
                ("name", "Ada Pro"),
                ("prices[0].amount", "19.99"),
                ("prices[0].currency", "USD"),
                ("delivery.method", "license_pool"),
                ("delivery.pool_id", &pool_id),
                ("delivery.keys_per", "unit"),
            ],
        )
        .await;
    assert_eq!(product.status, 303, "{}", product.html);
    let page = b.open(&product.location.unwrap()).await;
    assert!(
        page.html
            .contains(&format!("<a href=\"{pool_path}\">Pro keys</a>")),
        "the product names the pool it is delivered from: {}",
        page.html
    );
    (pool_path, page)
}

async fn a_merchant_signs_up_and_sells_without_curl(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let b = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;

    let settings = b.open("/dashboard/settings").await;
    let saved = b
        .post(
            "/dashboard/settings",
            &[
                ("csrf", &settings.csrf()),
                ("accent_color", "#aa3300"),
                ("support_email", "help@shop.test"),
                ("payment_methods", "test_card"),
                ("payment_methods", "bank_transfer"),
                ("account_holder", "Ada Ltd"),
                ("iban", "DE89370400440532013000"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);

    let (pool_path, product) = pool_and_product(&b, "ADA-1\nADA-2\nADA-2\nADA-3\n").await;
    let pool = b.get(&pool_path).await;
    assert!(
        pool.html.contains("<span class=\"figure\">3</span>"),
        "{}",
        pool.html
    );
    let marker = "id=\"buy-link\" readonly value=\"";
    let start = product.html.find(marker).unwrap() + marker.len();
    let buy_url = product.html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(
        buy_url.starts_with(&format!("{}/ada/test/buy/prd_", app.base)),
        "{buy_url}"
    );

    // A customer buys two with the sandbox card, in another browser.
    let customer = Browser::new(&app);
    let checkout = customer.open(&path_of(&app, &buy_url)).await;
    assert!(checkout.html.contains("Shop of ada"));
    let placed = customer
        .submit(
            &checkout,
            "/ada/test/checkout",
            &details(&checkout.csrf(), "test_card"),
        )
        .await;
    let pay_path = placed.location.expect("the order is placed");
    let pay = customer.get(&pay_path).await;
    customer
        .post(
            &pay_path,
            &[
                ("csrf", &pay.csrf()),
                ("card_number", "4242 4242 4242 4242"),
                ("expiry", "12/34"),
                ("cvc", "123"),
            ],
        )
        .await;

    // The merchant sees it paid and delivered, with its timeline.
    let mut listed = b.get("/dashboard/orders").await;
    for _ in 0..100 {
        if listed.html.contains("badge good\">delivered<") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        listed = b.get("/dashboard/orders").await;
    }
    assert!(listed.html.contains("buyer@example.com"), "{}", listed.html);
    assert!(listed.html.contains("badge good\">paid<"));
    assert!(
        listed.html.contains("badge good\">delivered<"),
        "{}",
        listed.html
    );
    let start = listed.html.find("href=\"/dashboard/orders/ord_").unwrap() + 6;
    let order_path = listed.html[start..].split('"').next().unwrap().to_owned();
    let order = b.get(&order_path).await;
    // Two of the three keys, each once.
    let shown: Vec<&str> = ["ADA-1", "ADA-2", "ADA-3"]
        .into_iter()
        .filter(|k| order.html.matches(&format!("<code>{k}</code>")).count() == 1)
        .collect();
    assert_eq!(shown.len(), 2, "{}", order.html);
    assert!(order.html.contains("payment.succeeded"));
    assert!(order.html.contains("product.delivered"));
    assert!(order.html.contains("39.98 USD"));

    // Home counts today's sale; the pool is now low (1 key left, alert at 1).
    let home = b.get("/dashboard").await;
    assert!(home.html.contains("39.98 USD"), "{}", home.html);
    assert!(home.html.contains("1 paid order"));
    assert!(
        home.html.contains("is running low: 1 key left"),
        "{}",
        home.html
    );

    // Filters narrow the list.
    let none = b.get("/dashboard/orders?status=not_paid").await;
    assert!(
        none.html.contains("No orders match these filters"),
        "{}",
        none.html
    );
    let found = b.get("/dashboard/orders?email=BUYER@").await;
    assert!(found.html.contains("buyer@example.com"));
}

/// A new store offers only what it can take: the sandbox card. Ticking Stripe saves
/// (nothing asks for bank details the merchant never chose); bank transfer ticked
/// without them is answered next to the field; with them, customers may choose it.
async fn a_new_store_offers_what_it_is_set_up_for(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let b = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let settings = b.open("/dashboard/settings").await;
    assert_eq!(ticked(&settings), ["test_card"], "{}", settings.html);
    let (_, product) = pool_and_product(&b, "ADA-1\nADA-2\n").await;
    let buy = format!("/ada/test/buy/{}", product_id(&product));
    let customer = Browser::new(&app);
    let checkout = customer.open(&buy).await;
    assert!(
        checkout.html.contains("value=\"test_card\""),
        "{}",
        checkout.html
    );
    assert!(
        !checkout.html.contains("value=\"bank_transfer\""),
        "no bank transfer without bank details: {}",
        checkout.html
    );

    // Stripe ticked besides what the form has ticked, as a browser sends it: saved.
    let csrf = settings.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf), ("payment_methods", "stripe")];
    let methods = ticked(&settings);
    form.extend(methods.iter().map(|m| ("payment_methods", m.as_str())));
    let saved = b.post("/dashboard/settings", &form).await;
    assert_eq!(saved.status, 303, "{}", saved.html);

    // Bank transfer ticked without the details it needs: told next to the methods.
    let settings = b.open("/dashboard/settings").await;
    let refused = b
        .post(
            "/dashboard/settings",
            &[
                ("csrf", &settings.csrf()),
                ("payment_methods", "test_card"),
                ("payment_methods", "bank_transfer"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.html);
    assert_eq!(
        error(&refused, "payment_methods").as_deref(),
        Some(
            "Bank transfer needs your bank details: fill in the account holder and IBAN below, or untick it."
        ),
        "{}",
        refused.html
    );
    offer_bank_transfer(&b).await;
    let checkout = customer.open(&buy).await;
    assert!(
        checkout.html.contains("value=\"bank_transfer\""),
        "{}",
        checkout.html
    );
}

async fn bad_input_is_answered_next_to_the_field(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let b = Browser::new(&app);
    let form = b.get("/dashboard/signup").await;
    let csrf = form.csrf();
    let signup = |email: &'static str, password: &'static str, confirm: &'static str| {
        let b = &b;
        let csrf = csrf.clone();
        async move {
            b.post(
                "/dashboard/signup",
                &[
                    ("csrf", &csrf),
                    ("email", email),
                    ("password", password),
                    ("password_confirm", confirm),
                ],
            )
            .await
        }
    };
    let weak = signup("ada@shop.test", "short", "short").await;
    assert_eq!(weak.status, 422);
    assert!(error(&weak, "password").unwrap().contains("10"));
    assert!(
        weak.html.contains("value=\"ada@shop.test\""),
        "what was typed is kept"
    );
    let mismatched = signup("ada@shop.test", PASSWORD, "correct horse batterz").await;
    assert_eq!(
        error(&mismatched, "password_confirm").as_deref(),
        Some("does not match the password")
    );
    let email = signup("not-an-email", PASSWORD, PASSWORD).await;
    assert!(error(&email, "email").is_some());
    // A forged CSRF token changes nothing.
    let forged = b
        .post(
            "/dashboard/signup",
            &[
                ("csrf", "forged"),
                ("email", "ada@shop.test"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.html.contains("This form has expired"));
    assert!(
        app.store.account("ada@shop.test").await.is_err(),
        "nothing half-saved"
    );

    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    // The same email again, and the same store URL name.
    let taken = signup("ada@shop.test", PASSWORD, PASSWORD).await;
    assert_eq!(taken.status, 409);
    assert!(error(&taken, "email").unwrap().contains("already exists"));
    let bob = merchant_without_store(&app, &sink, 2, "bob@shop.test").await;
    let new = bob.get("/dashboard/stores/new").await;
    let slug = bob
        .post(
            "/dashboard/stores/new",
            &[("csrf", &new.csrf()), ("name", "Bob"), ("slug", "ada")],
        )
        .await;
    assert_eq!(slug.status, 409);
    assert!(error(&slug, "slug").unwrap().contains("taken"));
    assert!(slug.html.contains("value=\"Bob\""));
    // A used verification link does not work twice.
    let mails = sink.wait_for(2).await;
    let link = path_of(
        &app,
        &link_in(&mails[0], &format!("{}/dashboard/verify?token=", app.base)),
    );
    let token = link.split("token=").nth(1).unwrap();
    let again = bob
        .post(
            "/dashboard/verify",
            &[("csrf", &new.csrf()), ("token", token)],
        )
        .await;
    assert_eq!(again.status, 410);
    assert!(again.html.contains("expired or was already used"));

    // A logo that is not an image, and one too large.
    let settings = ada.get("/dashboard/settings").await;
    let upload = |bytes: Vec<u8>, name: &'static str| {
        reqwest::multipart::Form::new()
            .text("csrf", settings.csrf())
            .part(
                "logo",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            )
    };
    let text = ada
        .post_multipart(
            "/dashboard/settings/logo",
            upload(b"<svg onload=alert(1)>".to_vec(), "logo.png"),
        )
        .await;
    assert_eq!(text.status, 422);
    assert!(
        error(&text, "logo")
            .unwrap()
            .contains("PNG, JPEG, GIF or WebP")
    );
    let mut huge = b"\x89PNG\r\n\x1a\n".to_vec();
    huge.resize(600 * 1024, 0);
    let big = ada
        .post_multipart("/dashboard/settings/logo", upload(huge, "logo.png"))
        .await;
    assert!(error(&big, "logo").unwrap().contains("512 KB"));
    let ada_store = app.store.tenant_by_slug("ada").await.unwrap();
    assert!(
        app.store.logo(&ada_store.id).await.is_err(),
        "no logo was stored"
    );

    // A keys file with junk lines adds nothing.
    let pools = ada.get("/dashboard/pools").await;
    let created = ada
        .post(
            "/dashboard/pools",
            &[
                ("csrf", &pools.csrf()),
                ("name", "Keys"),
                ("low_stock_threshold", "-3"),
            ],
        )
        .await;
    assert!(error(&created, "low_stock_threshold").is_some());
    let created = ada
        .post(
            "/dashboard/pools",
            &[("csrf", &pools.csrf()), ("name", "Keys")],
        )
        .await;
    let pool_path = created
        .location
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let junk = reqwest::multipart::Form::new()
        .text("csrf", pools.csrf())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"GOOD-1\nBAD\x07KEY\nGOOD-2\n".to_vec())
                .file_name("keys.txt"),
        );
    let refused = ada.post_multipart(&format!("{pool_path}/keys"), junk).await;
    assert_eq!(refused.status, 422);
    assert!(
        error(&refused, "keys").unwrap().contains("Line 2"),
        "{}",
        refused.html
    );
    let pool = ada.get(&pool_path).await;
    assert!(pool.html.contains("<span class=\"figure\">0</span>"));

    // A product without a price or a pool says so by field.
    let new = ada.get("/dashboard/products/new").await;
    let product = ada
        .post(
            "/dashboard/products/new",
            &[
                ("csrf", &new.csrf()),
                ("name", "X"),
                ("prices[0].amount", "1.999"),
                ("prices[0].currency", "USD"),
                ("delivery.method", "license_pool"),
            ],
        )
        .await;
    assert_eq!(product.status, 422);
    assert!(
        error(&product, "prices[0].amount")
            .unwrap()
            .contains("2 decimal places")
    );
    assert!(error(&product, "delivery.pool_id").is_some());
}

/// Signs up and verifies `email`, without creating a store.
pub(crate) async fn merchant_without_store(
    app: &TestApp,
    sink: &Sink,
    nth: usize,
    email: &str,
) -> Browser {
    let b = Browser::new(app);
    let form = b.get("/dashboard/signup").await;
    b.post(
        "/dashboard/signup",
        &[
            ("csrf", &form.csrf()),
            ("email", email),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await;
    let mails = sink.wait_for(nth).await;
    let link = path_of(
        app,
        &link_in(
            &mails[nth - 1],
            &format!("{}/dashboard/verify?token=", app.base),
        ),
    );
    let token = link.split("token=").nth(1).unwrap();
    let confirm = b.get(&link).await;
    let verified = b
        .post(
            "/dashboard/verify",
            &[("csrf", &confirm.csrf()), ("token", token)],
        )
        .await;
    assert_eq!(verified.status, 303);
    b
}

async fn a_member_of_one_store_never_sees_another(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let (pool_path, product) = pool_and_product(&ada, "ADA-1\n").await;
    let start = product.html.find("<code>prd_").unwrap() + 6;
    let product_id = product.html[start..].split('<').next().unwrap().to_owned();
    // An unpaid bank-transfer order in Ada's store, by the API.
    let ada_store = app.store.tenant_by_slug("ada").await.unwrap();
    let mallory = merchant(&app, &sink, 2, "mallory@evil.test", "mallory").await;
    let customer = Browser::new(&app);
    let checkout = customer.open(&format!("/ada/test/buy/{product_id}")).await;
    let placed = customer
        .submit(
            &checkout,
            "/ada/test/checkout",
            &details(&checkout.csrf(), "test_card"),
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let orders = ada.get("/dashboard/orders").await;
    let start = orders.html.find("href=\"/dashboard/orders/ord_").unwrap() + 6;
    let order_path = orders.html[start..].split('"').next().unwrap().to_owned();

    for path in [
        &order_path,
        &pool_path,
        &format!("/dashboard/products/{product_id}"),
    ] {
        let seen = mallory.get(path).await;
        assert_eq!(seen.status, 404, "{path}: {}", seen.html);
        assert!(!seen.html.contains("ADA-1") && !seen.html.contains("buyer@example.com"));
    }
    // An address the dashboard does not have is a page of its own, not the API's JSON.
    let unknown = mallory.get("/dashboard/no-such-page").await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.html.contains("<h1>Not found</h1>"),
        "{}",
        unknown.html
    );
    let mine = mallory.get("/dashboard/orders").await;
    assert!(!mine.html.contains("buyer@example.com"));
    let csrf = mine.csrf();
    let paid = mallory
        .post(
            &format!("{order_path}/payments"),
            &[("csrf", &csrf), ("amount", "19.99")],
        )
        .await;
    assert_eq!(paid.status, 404);
    let keys = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"EVIL-1\n".to_vec()).file_name("k.txt"),
        );
    assert_eq!(
        mallory
            .post_multipart(&format!("{pool_path}/keys"), keys)
            .await
            .status,
        404
    );
    // Switching to a store she is not a member of keeps her in her own.
    mallory
        .post(
            "/dashboard/stores",
            &[("csrf", &csrf), ("store", ada_store.id.as_str())],
        )
        .await;
    let home = mallory.get("/dashboard").await;
    assert!(home.html.contains("Shop of mallory"), "{}", home.html);
    assert!(!home.html.contains("Shop of ada"));
    let order = ada.get(&order_path).await;
    assert!(order.html.contains("not paid"), "Ada's order is untouched");
    assert!(!order.html.contains("EVIL-1"));
    // Signed out, the dashboard sends to the login page.
    let anonymous = Browser::new(&app);
    let redirected = anonymous.get(&order_path).await;
    assert_eq!(redirected.status, 303);
    assert!(
        redirected
            .location
            .unwrap()
            .starts_with("/dashboard/login?next=")
    );
}

async fn a_forgotten_password_is_reset_by_email(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let b = Browser::new(&app);
    let forgot = b.get("/dashboard/forgot").await;
    let sent = b
        .post(
            "/dashboard/forgot",
            &[("csrf", &forgot.csrf()), ("email", "ada@shop.test")],
        )
        .await;
    assert!(sent.html.contains("Check your email"));
    // An unknown email gets the same answer, and no email.
    let unknown = b
        .post(
            "/dashboard/forgot",
            &[("csrf", &forgot.csrf()), ("email", "nobody@shop.test")],
        )
        .await;
    assert!(unknown.html.contains("Check your email"));
    let mails = sink.wait_for(2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1]["subject"], "Reset your Kassa password");
    let link = path_of(
        &app,
        &link_in(&mails[1], &format!("{}/dashboard/reset?token=", app.base)),
    );
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let form = b.get(&link).await;
    let new_password = "a much better passphrase";
    let mismatch = b
        .post(
            "/dashboard/reset",
            &[
                ("csrf", &form.csrf()),
                ("token", &token),
                ("password", new_password),
                ("password_confirm", "nope"),
            ],
        )
        .await;
    assert!(error(&mismatch, "password_confirm").is_some());
    let reset = b
        .post(
            "/dashboard/reset",
            &[
                ("csrf", &form.csrf()),
                ("token", &token),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(reset.status, 303);
    let login = b.open(&reset.location.unwrap()).await;
    assert!(login.html.contains("Your password was changed"));
    let old = b
        .post(
            "/dashboard/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ada@shop.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(old.status, 401);
    assert!(old.html.contains("The email or the password is not right"));
    let new = b
        .post(
            "/dashboard/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ada@shop.test"),
                ("password", new_password),
                ("next", "/dashboard/orders"),
            ],
        )
        .await;
    assert_eq!(new.location.as_deref(), Some("/dashboard/orders"));
    // The link works once.
    let twice = b
        .post(
            "/dashboard/reset",
            &[
                ("csrf", &form.csrf()),
                ("token", &token),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(twice.status, 410);
    // Logging out ends the session.
    let orders = b.get("/dashboard/orders").await;
    b.post("/dashboard/logout", &[("csrf", &orders.csrf())])
        .await;
    assert_eq!(b.get("/dashboard/orders").await.status, 303);
}

async fn guessing_passwords_is_slowed_down(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let b = Browser::new(&app);
    let login = b.get("/dashboard/login").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let tried = b
            .post(
                "/dashboard/login",
                &[
                    ("csrf", &login.csrf()),
                    ("email", "ada@shop.test"),
                    ("password", "wrong guess 123"),
                ],
            )
            .await;
        statuses.push(tried.status);
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert_eq!(statuses[5..], [429; 2]);
    // Even the right password waits now.
    let right = b
        .post(
            "/dashboard/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ada@shop.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(right.status, 429);
    assert!(right.html.contains("Too many attempts"));
}

async fn a_teammate_joins_by_invitation_with_a_role(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let team = ada.get("/dashboard/team").await;
    let bad = ada
        .post(
            "/dashboard/team",
            &[
                ("csrf", &team.csrf()),
                ("email", "sam@shop.test"),
                ("role", "boss"),
            ],
        )
        .await;
    assert!(
        error(&bad, "role")
            .unwrap()
            .contains("owner, developer, support")
    );
    let invited = ada
        .post(
            "/dashboard/team",
            &[
                ("csrf", &team.csrf()),
                ("email", "sam@shop.test"),
                ("role", "support"),
            ],
        )
        .await;
    assert_eq!(invited.status, 303, "{}", invited.html);
    let mails = sink.wait_for(2).await;
    assert_eq!(mails[1]["rcpt_tos"][0], "sam@shop.test");
    assert_eq!(mails[1]["subject"], "Join Shop of ada on Kassa");
    let link = path_of(
        &app,
        &link_in(
            &mails[1],
            &format!("{}/dashboard/invitations?token=", app.base),
        ),
    );
    let token = link.split("token=").nth(1).unwrap().to_owned();

    // Someone else holding the link cannot use it.
    let eve = merchant_without_store(&app, &sink, 3, "eve@evil.test").await;
    let page = eve.get(&link).await;
    let taken = eve
        .post(
            "/dashboard/invitations",
            &[("csrf", &page.csrf()), ("token", &token)],
        )
        .await;
    assert_eq!(taken.status, 403);
    assert_eq!(
        eve.get("/dashboard/orders").await.location.as_deref(),
        Some("/dashboard/stores/new")
    );

    // Sam has no account yet: the invitation's page leads to the sign-up, with his
    // address filled in, and the confirmation email back to the invitation.
    let sam = Browser::new(&app);
    let page = sam.get(&link).await;
    assert!(page.html.contains("as <strong>support</strong>"));
    let html = unescape(&page.html);
    let start = html.find("/dashboard/signup?next=").unwrap();
    let signup_path = html[start..].split('"').next().unwrap().to_owned();
    let signup = sam.get(&signup_path).await;
    assert!(
        signup.html.contains("value=\"sam@shop.test\""),
        "{}",
        signup.html
    );
    let sent = sam
        .submit(
            &signup,
            "/dashboard/signup",
            &[
                ("email", "sam@shop.test"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert!(sent.html.contains("Check your email"), "{}", sent.html);
    let mails = sink.wait_for(4).await;
    assert_eq!(mails[3]["rcpt_tos"][0], "sam@shop.test");
    let verify_link = path_of(
        &app,
        &link_in(&mails[3], &format!("{}/dashboard/verify?token=", app.base)),
    );
    let confirm = sam.get(&verify_link).await;
    let verified = sam.submit(&confirm, "/dashboard/verify", &[]).await;
    assert_eq!(verified.status, 303, "{}", verified.html);
    assert_eq!(verified.location.as_deref(), Some(link.as_str()));
    let page = sam.get(&link).await;
    assert!(
        page.html.contains("You are logged in as sam@shop.test"),
        "{}",
        page.html
    );
    let joined = sam
        .post(
            "/dashboard/invitations",
            &[("csrf", &page.csrf()), ("token", &token)],
        )
        .await;
    assert_eq!(joined.status, 303);
    let home = sam.open(&joined.location.unwrap()).await;
    assert!(home.html.contains("Welcome to the team"));
    assert!(home.html.contains("Shop of ada"));
    // Support sees orders and products, not settings, API keys or the team's controls.
    assert!(!home.html.contains(">Settings</a>"));
    assert!(home.html.contains(">Orders</a>"));
    assert!(!home.html.contains(">API keys</a>"));
    let settings = sam.get("/dashboard/settings").await;
    assert_eq!(settings.status, 403);
    assert!(settings.html.contains("does not allow this"));
    let csrf = home.csrf();
    let changed = sam
        .post(
            "/dashboard/settings",
            &[("csrf", &csrf), ("payment_methods", "test_card")],
        )
        .await;
    assert_eq!(changed.status, 403);
    let product = sam
        .post("/dashboard/products/new", &[("csrf", &csrf), ("name", "X")])
        .await;
    assert_eq!(product.status, 403);
    let invite = sam
        .post(
            "/dashboard/team",
            &[("csrf", &csrf), ("email", "x@shop.test"), ("role", "owner")],
        )
        .await;
    assert_eq!(invite.status, 403);
    // The owner sees Sam in the team and may remove him; a store keeps its last owner.
    let team = ada.get("/dashboard/team").await;
    assert!(team.html.contains("sam@shop.test"));
    let start = team.html.find("name=\"user_id\" value=\"").unwrap() + 22;
    let sam_id = team.html[start..].split('"').next().unwrap().to_owned();
    let removed = ada
        .post(
            "/dashboard/team/remove",
            &[("csrf", &team.csrf()), ("user_id", &sam_id)],
        )
        .await;
    assert_eq!(removed.status, 303);
    assert_eq!(
        sam.get("/dashboard/orders").await.location.as_deref(),
        Some("/dashboard/stores/new")
    );
    let ada_store = app.store.tenant_by_slug("ada").await.unwrap();
    let members = app.store.team(&ada_store.id).await.unwrap();
    let owner = members[0].user_id.clone().unwrap();
    assert!(
        app.store
            .remove_member(&ada_store.id, &owner)
            .await
            .is_err()
    );
    // The invitation was used: it does not work again.
    let again = sam.get(&link).await;
    assert_eq!(again.status, 410);
}

async fn coupons_apply_at_checkout_and_emails_show_in_the_outbox(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    offer_bank_transfer(&ada).await;
    let (_, product) = pool_and_product(&ada, "ADA-1\nADA-2\nADA-3\n").await;
    let start = product.html.find("<code>prd_").unwrap() + 6;
    let product_id = product.html[start..].split('<').next().unwrap().to_owned();
    let coupons = ada.get("/dashboard/coupons").await;
    let csrf = coupons.csrf();
    let bad = ada
        .post(
            "/dashboard/coupons",
            &[
                ("csrf", &csrf),
                ("code", "HALF"),
                ("kind", "percent"),
                ("percent_off", "150"),
                ("expires_on", "2001-01-01"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        error(&bad, "percent_off")
            .unwrap()
            .contains("between 1 and 100")
    );
    assert!(
        error(&bad, "expires_on").unwrap().contains("future"),
        "{}",
        bad.html
    );
    assert!(bad.html.contains("value=\"HALF\""));
    let amount = ada
        .post(
            "/dashboard/coupons",
            &[
                ("csrf", &csrf),
                ("code", "FIVE"),
                ("kind", "amount"),
                ("amount_off", "5.001"),
                ("currency", "usd"),
            ],
        )
        .await;
    assert!(
        error(&amount, "amount_off")
            .unwrap()
            .contains("2 decimal places")
    );
    let half = ada
        .post(
            "/dashboard/coupons",
            &[
                ("csrf", &csrf),
                ("code", "HALF"),
                ("kind", "percent"),
                ("percent_off", "50"),
                ("max_redemptions", "1"),
                ("product_ids", &product_id),
            ],
        )
        .await;
    assert_eq!(half.status, 303, "{}", half.html);
    let again = ada
        .post(
            "/dashboard/coupons",
            &[
                ("csrf", &csrf),
                ("code", "HALF"),
                ("kind", "percent"),
                ("percent_off", "10"),
            ],
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(error(&again, "code").is_some());
    let listed = ada.open(&half.location.unwrap()).await;
    assert!(listed.html.contains("Coupon HALF created"));
    assert!(listed.html.contains("<code>HALF</code>"));
    assert!(listed.html.contains("50 %"));

    // A customer uses it: two at 19.99 with half off is 19.99.
    let customer = Browser::new(&app);
    let checkout = customer
        .open(&format!("/ada/test/buy/{product_id}?coupon=HALF"))
        .await;
    assert!(
        checkout.html.contains("value=\"HALF\""),
        "{}",
        checkout.html
    );
    let csrf = checkout.csrf();
    let mut form = details(&csrf, "bank_transfer");
    form.push(("coupon", "HALF"));
    let placed = customer
        .submit(&checkout, "/ada/test/checkout", &form)
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let orders = ada.get("/dashboard/orders").await;
    assert!(orders.html.contains("19.99 USD"), "{}", orders.html);

    // The payment instructions went out; the outbox shows them, readable.
    sink.wait_for(2).await;
    let mut outbox = ada.get("/dashboard/outbox").await;
    for _ in 0..50 {
        if outbox.html.contains("badge good\">sent<") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        outbox = ada.get("/dashboard/outbox").await;
    }
    assert!(outbox.html.contains("buyer@example.com"), "{}", outbox.html);
    assert!(outbox.html.contains("badge good\">sent<"));
    assert!(
        outbox.html.contains("KS-"),
        "the instructions' text with the reference"
    );
}

async fn a_failed_delivery_is_tried_again_from_the_order(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    offer_bank_transfer(&ada).await;
    let (_, product) = pool_and_product(&ada, "ADA-1\nADA-2\n").await;
    let start = product.html.find("<code>prd_").unwrap() + 6;
    let product_id = product.html[start..].split('<').next().unwrap().to_owned();
    let customer = Browser::new(&app);
    let checkout = customer.open(&format!("/ada/test/buy/{product_id}")).await;
    let placed = customer
        .submit(
            &checkout,
            "/ada/test/checkout",
            &details(&checkout.csrf(), "bank_transfer"),
        )
        .await;
    assert_eq!(placed.status, 303);
    let orders = ada.get("/dashboard/orders").await;
    let start = orders.html.find("href=\"/dashboard/orders/ord_").unwrap() + 6;
    let order_path = orders.html[start..].split('"').next().unwrap().to_owned();
    let order_id = order_path.rsplit('/').next().unwrap().to_owned();
    // Nothing to retry on an unpaid order: no button, and a forged post is refused.
    let order = ada.get(&order_path).await;
    assert!(!order.html.contains("Try delivery again"));
    let refused = ada
        .post(
            &format!("{order_path}/lines/1/retry"),
            &[("csrf", &order.csrf())],
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(refused.html.contains("the order is not paid"));
    // The bank transfer is recorded from the order's page: a wrong amount is refused.
    let wrong = ada
        .post(
            &format!("{order_path}/payments"),
            &[("csrf", &order.csrf()), ("amount", "1.00")],
        )
        .await;
    assert!(
        error(&wrong, "amount").unwrap().contains("39.98"),
        "{}",
        wrong.html
    );
    let paid = ada
        .post(
            &format!("{order_path}/payments"),
            &[
                ("csrf", &order.csrf()),
                ("amount", "39.98"),
                ("reference", "BANK-77"),
            ],
        )
        .await;
    assert_eq!(paid.status, 303, "{}", paid.html);
    let store = app.store.tenant_by_slug("ada").await.unwrap();
    let mut delivered = app.store.order(&store.id, &order_id).await.unwrap();
    for _ in 0..100 {
        if delivered.delivery_status.as_str() == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        delivered = app.store.order(&store.id, &order_id).await.unwrap();
    }
    assert_eq!(delivered.delivery_status.as_str(), "delivered");
    let order = ada.get(&order_path).await;
    assert!(order.html.contains("ref BANK-77"), "{}", order.html);
    assert!(order.html.contains("Resend licenses"));
    let resent = ada
        .post(&format!("{order_path}/resend"), &[("csrf", &order.csrf())])
        .await;
    assert_eq!(resent.status, 303);
}

async fn an_open_order_list_hears_of_new_orders(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    offer_bank_transfer(&ada).await;
    let (_, product) = pool_and_product(&ada, "ADA-1\n").await;
    let start = product.html.find("<code>prd_").unwrap() + 6;
    let product_id = product.html[start..].split('<').next().unwrap().to_owned();
    let live = ada.stream("/dashboard/orders/live").await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    // Another member's store is not this one's business: a stranger gets no stream.
    let anonymous = Browser::new(&app);
    assert_eq!(
        anonymous.stream("/dashboard/orders/live").await.status(),
        303
    );

    let customer = Browser::new(&app);
    let checkout = customer.open(&format!("/ada/test/buy/{product_id}")).await;
    customer
        .submit(
            &checkout,
            "/ada/test/checkout",
            &details(&checkout.csrf(), "bank_transfer"),
        )
        .await;
    let mut body = live.bytes_stream();
    let mut seen = String::new();
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        use futures::StreamExt;
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("event: changed") {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "no change event within 10 s: {seen:?}");
}

async fn signing_up_first_with_someone_elses_email_gains_nothing(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    // Mallory signs up with Ada's email before Ada does; the link goes to Ada's inbox.
    let mallory = Browser::new(&app);
    let form = mallory.get("/dashboard/signup").await;
    let mallorys_password = "mallory knows this one";
    mallory
        .post(
            "/dashboard/signup",
            &[
                ("csrf", &form.csrf()),
                ("email", "ada@shop.test"),
                ("password", mallorys_password),
                ("password_confirm", mallorys_password),
            ],
        )
        .await;
    sink.wait_for(1).await;
    // Ada signs up herself and confirms with her own link (the second email).
    let ada = merchant(&app, &sink, 2, "ada@shop.test", "ada").await;
    assert!(ada.get("/dashboard").await.status == 200);
    let login = mallory.get("/dashboard/login").await;
    let tried = mallory
        .post(
            "/dashboard/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ada@shop.test"),
                ("password", mallorys_password),
            ],
        )
        .await;
    assert_eq!(tried.status, 401, "Mallory's password was never confirmed");
    let b = Browser::new(&app);
    let login = b.get("/dashboard/login").await;
    let ok = b
        .post(
            "/dashboard/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ada@shop.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    // The first link, Mallory's, no longer sets anything once the account is verified:
    // a verified account cannot take another sign-up's password.
    let mails = sink.wait_for(2).await;
    let link = path_of(
        &app,
        &link_in(&mails[0], &format!("{}/dashboard/verify?token=", app.base)),
    );
    let token = link.split("token=").nth(1).unwrap();
    let page = mallory.get(&link).await;
    mallory
        .post(
            "/dashboard/verify",
            &[("csrf", &page.csrf()), ("token", token)],
        )
        .await;
    let login = mallory.get("/dashboard/login").await;
    let tried = mallory
        .post(
            "/dashboard/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ada@shop.test"),
                ("password", mallorys_password),
            ],
        )
        .await;
    assert_eq!(tried.status, 401);
}

async fn a_checkout_link_from_the_dashboard_sells_its_signed_offer(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    let ada = merchant(&app, &sink, 1, "ada@shop.test", "ada").await;
    let (_, product) = pool_and_product(&ada, "ADA-1\nADA-2\nADA-3\n").await;
    let start = product.html.find("<code>prd_").unwrap() + 6;
    let product_id = product.html[start..].split('<').next().unwrap().to_owned();

    let links = ada.get("/dashboard/checkout-links").await;
    assert!(
        unescape(&links.html).contains("href=\"/dashboard/checkout-links\""),
        "in the menu: {}",
        links.html
    );
    assert!(links.html.contains("No checkout links yet"));
    let csrf = links.csrf();
    // A price needs its currency; a last day must be to come; nothing is stored.
    let bad = ada
        .post(
            "/dashboard/checkout-links",
            &[
                ("csrf", &csrf),
                ("product_id", &product_id),
                ("price", "9.00"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        error(&bad, "currency")
            .unwrap()
            .contains("currency of the price")
    );
    assert!(bad.html.contains("value=\"9.00\""), "what was typed stays");
    let past = ada
        .post(
            "/dashboard/checkout-links",
            &[
                ("csrf", &csrf),
                ("product_id", &product_id),
                ("currency", "usd"),
                ("price", "9.00"),
                ("expires_on", "2001-01-01"),
            ],
        )
        .await;
    assert!(
        error(&past, "expires_on").unwrap().contains("future"),
        "{}",
        past.html
    );
    let yen = ada
        .post(
            "/dashboard/checkout-links",
            &[
                ("csrf", &csrf),
                ("product_id", &product_id),
                ("currency", "JPY"),
            ],
        )
        .await;
    assert!(error(&yen, "currency").unwrap().contains("no JPY price"));
    assert_eq!(app.count_rows("checkout_links").await, 0);

    // Two units at 9.00 each, signed, until a day far off.
    let made = ada
        .post(
            "/dashboard/checkout-links",
            &[
                ("csrf", &csrf),
                ("product_id", &product_id),
                ("quantity", "2"),
                ("currency", "usd"),
                ("price", "9.00"),
                ("expires_on", "2099-12-31"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let listed = ada.open(&made.location.unwrap()).await;
    assert!(listed.html.contains("Checkout link created"));
    assert!(listed.html.contains("signed offer"));
    assert!(listed.html.contains("9.00"), "{}", listed.html);
    let marker = "readonly value=\"";
    let start = listed.html.find(marker).unwrap() + marker.len();
    let url = unescape(listed.html[start..].split('"').next().unwrap());
    assert!(url.contains("&sig="), "{url}");

    // A customer opens it: 2 × 9.00, whatever the product's own price; a bent link is
    // refused.
    let customer = Browser::new(&app);
    let checkout = customer.open(&path_of(&app, &url)).await;
    assert_eq!(checkout.status, 200, "{}", checkout.html);
    assert!(checkout.html.contains("18.00"), "{}", checkout.html);
    let bent = customer
        .open(&path_of(&app, &url.replace("price=900", "price=1")))
        .await;
    assert_ne!(bent.status, 200);

    // Deleted, it leaves the list.
    let id_start = listed.html.find("/dashboard/checkout-links/lnk_").unwrap();
    let action = listed.html[id_start..]
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let deleted = ada.post(&action, &[("csrf", &listed.csrf())]).await;
    assert_eq!(deleted.status, 303);
    let after = ada.open(&deleted.location.unwrap()).await;
    assert!(
        after.html.contains("No checkout links yet"),
        "{}",
        after.html
    );
}
