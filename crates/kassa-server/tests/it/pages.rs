//! The customer pages at the HTTP level, as a browser without JavaScript uses them:
//! buy links, the cart, Continue, payment, and every kind of bad input.

use kassa_domain::tenant::TenantSettings;
use kassa_store::{PageRequest, Store};
use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::TestApp;

on_both_backends!(
    buy_two_decline_then_pay,
    bad_buy_links_say_what_is_wrong_on_the_page,
    continue_refuses_bad_details_and_creates_nothing,
    forged_forms_and_double_submits_create_nothing_more,
    the_cart_is_kept_across_products,
    buy_link_gets_write_no_cart_until_the_customer_acts,
    a_buy_link_never_overwrites_what_the_customer_typed,
    bank_transfer_shows_a_reference_and_an_invoice,
    pages_speak_russian,
    non_ascii_locales_fall_back_to_english,
    the_sandbox_card_never_pays_a_bank_transfer_order,
    a_payment_method_is_always_chosen_when_a_page_opens,
);

/// A browser: keeps cookies, does not follow redirects (so tests see them).
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) retry_after: Option<String>,
    /// The page's Content-Security-Policy, if it has one.
    pub(crate) csp: Option<String>,
    pub(crate) html: String,
}

impl Page {
    /// The message shown next to `field`, if any.
    pub(crate) fn error(&self, field: &str) -> Option<String> {
        let marker = format!("id=\"{field}-error\">");
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('<')? + start;
        Some(self.html[start..end].to_owned())
    }

    /// The hidden fields of the page's forms (a browser sends them with the form).
    pub(crate) fn hidden(&self) -> Vec<(String, String)> {
        let attr = |tag: &str, name: &str| {
            let marker = format!("{name}=\"");
            let start = tag.find(&marker)? + marker.len();
            let end = tag[start..].find('"')? + start;
            Some(unescape(&tag[start..end]))
        };
        self.html
            .split("<input type=\"hidden\"")
            .skip(1)
            .filter_map(|rest| {
                let tag = &rest[..rest.find('>')?];
                Some((attr(tag, "name")?, attr(tag, "value")?))
            })
            .collect()
    }

    pub(crate) fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.html.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.html[start..].find('"').unwrap() + start;
        self.html[start..end].to_owned()
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self::client(app, reqwest::Client::builder())
    }

    /// A browser that says it is `user_agent`.
    pub(crate) fn with_user_agent(app: &TestApp, user_agent: &str) -> Self {
        Self::client(app, reqwest::Client::builder().user_agent(user_agent))
    }

    /// A browser connecting from `ip` (any address of 127.0.0.0/8 reaches the server).
    pub(crate) fn from_address(app: &TestApp, ip: &str) -> Self {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        Self::client(app, reqwest::Client::builder().local_address(ip))
    }

    /// A visitor at `ip` whose requests carry `X-Forwarded-For: forwarded`, as a proxy
    /// relays them (or as anyone may forge them).
    pub(crate) fn forwarding(app: &TestApp, ip: &str, forwarded: &str) -> Self {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().unwrap());
        Self::client(
            app,
            reqwest::Client::builder()
                .local_address(ip)
                .default_headers(headers),
        )
    }

    /// A browser keeping its cookies in `jar`, where the test can read and set them
    /// (as a customer can in their own browser).
    pub(crate) fn with_jar(app: &TestApp, jar: std::sync::Arc<reqwest::cookie::Jar>) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_provider(jar)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    fn client(app: &TestApp, builder: reqwest::ClientBuilder) -> Self {
        Self {
            client: builder
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    async fn page(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (location, retry_after) = (header("location"), header("retry-after"));
        Page {
            status,
            location,
            retry_after,
            csp: header("content-security-policy"),
            html: resp.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Page {
        Self::page(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// GETs and follows redirects within Kassa.
    pub(crate) async fn open(&self, path: &str) -> Page {
        let mut page = self.get(path).await;
        while let Some(next) = page.location.clone() {
            page = self.get(&next).await;
        }
        page
    }

    /// A streamed GET (server-sent events), with this browser's cookies.
    pub(crate) async fn stream(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Page {
        Self::page(
            self.client
                .post(format!("{}{path}", self.base))
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends `page`'s form as a browser does: its hidden fields, then `fields` (which
    /// take the place of hidden fields of the same name).
    pub(crate) async fn submit(&self, page: &Page, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(String, String)> = page
            .hidden()
            .into_iter()
            .filter(|(k, _)| !fields.iter().any(|(f, _)| f == k))
            .collect();
        form.extend(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post(path, &pairs).await
    }

    /// Opens `link`, places the order on the checkout at `checkout` with `method`, and
    /// returns the path of its payment page.
    pub(crate) async fn place(&self, link: &str, checkout: &str, method: &str) -> String {
        let page = self.open(link).await;
        assert_eq!(page.status, 200, "{}", page.html);
        let placed = self
            .submit(&page, checkout, &details(&page.csrf(), method))
            .await;
        assert_eq!(placed.status, 303, "{}", placed.html);
        placed.location.unwrap()
    }

    /// Posts a card (any future expiry and CVC) to the payment page at `pay_path`.
    pub(crate) async fn pay_by_card(&self, pay_path: &str, number: &str) -> Page {
        let pay = self.get(pay_path).await;
        let csrf = pay.csrf();
        let form = [
            ("csrf", csrf.as_str()),
            ("card_number", number),
            ("expiry", "12/34"),
            ("cvc", "123"),
        ];
        self.post(pay_path, &form).await
    }

    /// Chooses `method` on the payment page `pay_path` ("Change payment method").
    pub(crate) async fn switch_method(&self, pay_path: &str, method: &str) -> Page {
        let pay = self.get(pay_path).await;
        self.post(
            &pay_path.replace("/pay", "/method"),
            &[("csrf", &pay.csrf()), ("payment_method", method)],
        )
        .await
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::page(
            self.client
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// Reads back text a template escaped.
pub(crate) fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub(crate) async fn product(app: &TestApp, usd: i64) -> String {
    let pool = app.pool_with_keys(&["K-1", "K-2", "K-3"]).await;
    let p = app
        .post(
            "/api/v1/products",
            json!({"name": "Pro License", "prices": [{"currency": "USD", "amount": usd}, {"currency": "EUR", "amount": 1799}],
                   "delivery": {"method": "license_pool", "pool_id": pool}}),
        )
        .await;
    p.ok()["id"].as_str().unwrap().to_owned()
}

/// Sets the payment methods the store `acme` offers (all when empty).
pub(crate) async fn offer_methods(app: &TestApp, methods: &[String]) {
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let settings = TenantSettings {
        payment_methods: methods.to_vec(),
        ..TenantSettings::default()
    };
    app.store
        .update_tenant_settings(&tenant.id, &settings)
        .await
        .unwrap();
}

pub(crate) async fn orders(store: &Store, slug: &str) -> Vec<kassa_store::OrderRecord> {
    let tenant = store.tenant_by_slug(slug).await.unwrap();
    store
        .search_orders(
            &tenant.id,
            &kassa_store::OrderFilter::default(),
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap()
        .data
}

pub(crate) fn details<'a>(csrf: &'a str, method: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("quantity_0", "2"),
        ("email", "buyer@example.com"),
        ("name", "Ada Buyer"),
        ("payment_method", method),
        ("consent_terms", "yes"),
        ("consent_personal_data", "yes"),
        ("action", "continue"),
    ]
}

/// The payment method radio checked on `page`, if one is.
fn checked_method(page: &Page) -> Option<String> {
    page.html
        .split("name=\"payment_method\" value=\"")
        .skip(1)
        .find_map(|rest| {
            let (value, after) = rest.split_once('"')?;
            after.starts_with(" checked").then(|| value.to_owned())
        })
}

/// The checkout and payment pages open with a method chosen (a native radio group
/// in a fieldset with its legend, so the arrow keys move the choice and a screen reader
/// says which is chosen): the one there is, what the customer chose before while it is
/// offered, else a card before a transfer; also when the merchant turned off the one
/// chosen before (the page showed no choice made).
async fn a_payment_method_is_always_chosen_when_a_page_opens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    offer_methods(&app, &["bank_transfer".to_owned()]).await;
    let b = Browser::new(&app);
    let one = b.open(&format!("/acme/test/buy/{prd}")).await;
    assert_eq!(
        checked_method(&one).as_deref(),
        Some("bank_transfer"),
        "{}",
        one.html
    );
    assert!(one.html.contains("<fieldset"), "{}", one.html);

    offer_methods(&app, &[]).await;
    let two = b.open(&format!("/acme/test/buy/{prd}")).await;
    assert_eq!(
        checked_method(&two).as_deref(),
        Some("test_card"),
        "{}",
        two.html
    );
    // The customer chooses bank transfer and forgets a consent: kept as chosen.
    let csrf = two.csrf();
    let mut form = details(&csrf, "bank_transfer");
    form.retain(|(k, _)| *k != "consent_terms");
    let again = b.submit(&two, "/acme/test/checkout", &form).await;
    assert_eq!(again.status, 422, "{}", again.html);
    assert_eq!(checked_method(&again).as_deref(), Some("bank_transfer"));
    // The merchant turns bank transfer off meanwhile: the card is chosen instead.
    offer_methods(&app, &["test_card".to_owned()]).await;
    let reopened = b.open("/acme/test/checkout").await;
    assert_eq!(
        checked_method(&reopened).as_deref(),
        Some("test_card"),
        "{}",
        reopened.html
    );

    // A bank transfer order whose method the merchant turned off: its payment page
    // chooses one it offers.
    offer_methods(&app, &[]).await;
    let pay_path = b
        .place(
            &format!("/acme/test/buy/{prd}"),
            "/acme/test/checkout",
            "bank_transfer",
        )
        .await;
    let pay = b.get(&pay_path).await;
    assert_eq!(
        checked_method(&pay).as_deref(),
        Some("bank_transfer"),
        "{}",
        pay.html
    );
    offer_methods(&app, &["test_card".to_owned()]).await;
    let pay = b.get(&pay_path).await;
    assert_eq!(
        checked_method(&pay).as_deref(),
        Some("test_card"),
        "{}",
        pay.html
    );
}

async fn buy_two_decline_then_pay(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let checkout = b
        .open(&format!("/acme/test/buy/{prd}?quantity=2&locale=en"))
        .await;
    assert_eq!(checkout.status, 200);
    assert!(checkout.html.contains("value=\"2\""));
    assert!(checkout.html.contains("39.98 USD"), "quantity 2 × 19.99");
    let placed = b
        .submit(
            &checkout,
            "/acme/test/checkout",
            &details(&checkout.csrf(), "test_card"),
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let pay_path = placed.location.unwrap();
    assert!(pay_path.ends_with("/pay"));

    let pay = b.get(&pay_path).await;
    assert!(pay.html.contains("Card number"));
    let declined = b
        .post(
            &pay_path,
            &[
                ("csrf", &pay.csrf()),
                ("card_number", "4000 0000 0000 0002"),
                ("expiry", "12/34"),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(declined.status, 402);
    assert!(declined.html.contains("Your card was declined"));
    let paid = b
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
    assert_eq!(paid.status, 303);
    let order_page = b.open(&paid.location.unwrap()).await;
    assert!(
        order_page
            .html
            .contains("data-testid=\"order-status\">Paid<")
    );

    let all = orders(&app.store, "acme").await;
    assert_eq!(all.len(), 1);
    let order = &all[0];
    assert_eq!(
        (order.status.as_str(), order.total, order.test_mode),
        ("paid", 3998, true)
    );
    assert_eq!(order.lines[0].quantity, 2);
    assert_eq!(order.customer.email.as_deref(), Some("buyer@example.com"));
    let statuses: Vec<_> = order
        .payments
        .iter()
        .map(|p| (p.status.as_str(), p.card_last4.as_deref()))
        .collect();
    assert_eq!(
        statuses,
        [("failed", Some("0002")), ("succeeded", Some("4242"))]
    );
    assert_eq!(
        order.payments[0].failure_code.as_deref(),
        Some("card_declined")
    );
    let kinds: Vec<_> = order.consents.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["personal_data", "terms"]);
    assert!(
        order
            .consents
            .iter()
            .all(|c| c.ip.as_deref() == Some("127.0.0.1") && c.text_version.starts_with("en-"))
    );
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let events: Vec<_> = app
        .store
        .order_events(&tenant.id, &order.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        events[..3],
        ["order.created", "payment.failed", "payment.succeeded"],
        "delivery events may follow"
    );
}

async fn bad_buy_links_say_what_is_wrong_on_the_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    app.post(
        "/api/v1/coupons",
        json!({"code": "ONCE", "percent_off": 10, "max_redemptions": 1}),
    )
    .await
    .ok();
    let used = app.store.tenant_by_slug("acme").await.unwrap();
    // Use the coupon up through the API's store, as an earlier order would.
    let test = kassa_domain::mode::Mode::Test;
    let coupon = app
        .store
        .coupon_by_code(&used.id, test, "ONCE")
        .await
        .unwrap();
    app.store
        .update_coupon(
            &used.id,
            test,
            &coupon.id,
            true,
            Some(kassa_store::Timestamp::from(1_000)),
            None,
        )
        .await
        .unwrap();
    for q in ["0", "-1", "1000000000", "abc"] {
        let b = Browser::new(&app);
        let page = b.get(&format!("/acme/test/buy/{prd}?quantity={q}")).await;
        assert_eq!(page.status, 422, "quantity={q}");
        assert!(
            page.error("quantity_0")
                .unwrap()
                .contains("between 1 and 1000"),
            "quantity={q}"
        );
        assert!(
            page.html.contains(&format!("value=\"{q}\"")),
            "what was typed is kept"
        );
    }
    let b = Browser::new(&app);
    let page = b.get(&format!("/acme/test/buy/{prd}?currency=XYZ")).await;
    assert!(page.error("currency").unwrap().contains("not a currency"));
    let page = b.get(&format!("/acme/test/buy/{prd}?currency=GBP")).await;
    assert!(page.error("currency").unwrap().contains("not sold in GBP"));
    let page = b.open(&format!("/acme/test/buy/{prd}?coupon=ONCE")).await;
    assert!(
        page.error("coupon").unwrap().contains("expired"),
        "{}",
        page.html
    );
    let page = b.open(&format!("/acme/test/buy/{prd}?coupon=NOPE")).await;
    assert!(page.error("coupon").unwrap().contains("does not exist"));
    let page = b.get("/acme/test/buy/prd_01jz0000000000000000000000").await;
    assert_eq!(page.status, 404);
    assert!(page.html.contains("not available"));
    assert_eq!(b.get("/nobody/test/buy/prd_x").await.status, 404);
    assert_eq!(b.get("/acme/orders/notatoken").await.status, 404);
    assert!(orders(&app.store, "acme").await.is_empty());
}

async fn continue_refuses_bad_details_and_creates_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    let csrf = page.csrf();
    let long_name = "N".repeat(100 * 1024);
    let page = b
        .submit(
            &page,
            "/acme/test/checkout",
            &[
                ("csrf", &csrf),
                ("quantity_0", "1"),
                ("email", "not-an-email"),
                ("name", &long_name),
                ("payment_method", "test_card"),
                ("consent_terms", "yes"),
                ("action", "continue"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.error("email").unwrap().contains("email address"));
    assert!(page.error("name").unwrap().contains("at most 200"));
    assert!(page.error("consents.personal_data").is_some());
    assert!(page.error("consents.terms").is_none());
    assert!(
        page.html.contains("value=\"not-an-email\""),
        "what was typed is kept"
    );
    assert!(
        page.html
            .contains("id=\"consent_terms\" name=\"consent_terms\" value=\"yes\" checked")
    );
    let page = b
        .post(
            "/acme/test/checkout",
            &[
                ("csrf", &csrf),
                ("quantity_0", "1"),
                ("email", ""),
                ("action", "continue"),
            ],
        )
        .await;
    assert_eq!(page.error("email").unwrap(), "is required");
    let page = b
        .post(
            "/acme/test/checkout",
            &[
                ("csrf", &csrf),
                ("quantity_0", "abc"),
                ("email", "a@b.co"),
                ("action", "continue"),
            ],
        )
        .await;
    assert!(page.error("quantity_0").is_some());
    assert!(
        orders(&app.store, "acme").await.is_empty(),
        "no order was created"
    );
}

async fn forged_forms_and_double_submits_create_nothing_more(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    let forged = b
        .post(
            "/acme/test/checkout",
            &details("forged-token-0000000000000000000", "test_card"),
        )
        .await;
    assert_eq!(forged.status, 403);
    let mut no_token = details("", "test_card");
    no_token.remove(0);
    assert_eq!(b.post("/acme/test/checkout", &no_token).await.status, 403);
    assert!(orders(&app.store, "acme").await.is_empty());

    let csrf = page.csrf();
    let first = b
        .submit(&page, "/acme/test/checkout", &details(&csrf, "test_card"))
        .await;
    let second = b
        .submit(&page, "/acme/test/checkout", &details(&csrf, "test_card"))
        .await;
    assert_eq!(first.status, 303);
    assert_eq!(second.status, 303);
    assert_eq!(first.location, second.location, "the same order");
    let back = b.get("/acme/test/checkout").await;
    assert_eq!(
        back.location, first.location,
        "back to checkout leads to the order"
    );
    assert_eq!(orders(&app.store, "acme").await.len(), 1);
    let pay = b.get(first.location.as_deref().unwrap()).await;
    let forged_pay = b
        .post(
            first.location.as_deref().unwrap(),
            &[
                ("csrf", "x"),
                ("card_number", "4242424242424242"),
                ("expiry", "12/34"),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(forged_pay.status, 403);
    assert!(pay.html.contains("Card number"));
    assert_eq!(
        orders(&app.store, "acme").await[0].status.as_str(),
        "not_paid"
    );
}

async fn the_cart_is_kept_across_products(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = product(&app, 1000).await;
    let pool = app.pool_with_keys(&[]).await;
    let second = app
        .post(
            "/api/v1/products",
            json!({"name": "Add-on Pack", "prices": [{"currency": "USD", "amount": 500}],
                                         "delivery": {"method": "license_pool", "pool_id": pool}}),
        )
        .await;
    let bb = second.ok()["id"].as_str().unwrap().to_owned();
    let b = Browser::new(&app);
    let first = b
        .open(&format!(
            "/acme/test/buy/{a}?quantity=3&return_url=https://acme.example/store"
        ))
        .await;
    // Back to the merchant's site: the cart is kept for the customer's return.
    let back = b
        .submit(&first, "/acme/test/checkout", &[("action", "back")])
        .await;
    assert_eq!(back.status, 303);
    assert_eq!(back.location.as_deref(), Some("https://acme.example/store"));
    let page = b.open(&format!("/acme/test/buy/{bb}")).await;
    assert!(
        page.html.contains("Pro License") && page.html.contains("Add-on Pack"),
        "both lines"
    );
    assert!(page.html.contains("35.00 USD"), "3 × 10.00 + 5.00");
    assert!(
        page.html.contains("Back to the store"),
        "the way back to the merchant"
    );
    let again = b.open(&format!("/acme/test/buy/{a}")).await;
    assert!(
        again.html.contains("35.00 USD"),
        "opening a link again adds nothing"
    );
    let csrf = again.csrf();
    let removed = b
        .post(
            "/acme/test/checkout",
            &[
                ("csrf", &csrf),
                ("quantity_0", "3"),
                ("quantity_1", "1"),
                ("action", "remove:0"),
            ],
        )
        .await;
    assert_eq!(removed.status, 303);
    let page = b.get("/acme/test/checkout").await;
    assert!(!page.html.contains("Pro License"));
    assert!(page.html.contains("5.00 USD"));
    let other_browser = Browser::new(&app);
    assert!(
        other_browser
            .get("/acme/test/checkout")
            .await
            .html
            .contains("Your cart is empty")
    );
}

/// The attack: every cookieless GET of a buy link wrote a cart row, so a flood of
/// anonymous GETs grew the database. A GET writes nothing: the page carries the link
/// until the customer acts on it.
async fn buy_link_gets_write_no_cart_until_the_customer_acts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    for i in 0..25 {
        let page = Browser::new(&app)
            .get(&format!(
                "/acme/test/buy/{prd}?quantity=2&email=flood{i}@example.com"
            ))
            .await;
        assert_eq!(page.status, 200);
        assert!(page.html.contains("39.98 USD"), "the page shows the cart");
        assert!(
            page.html
                .contains(&format!("value=\"flood{i}@example.com\"")),
            "the link fills in the email"
        );
    }
    let b = Browser::new(&app);
    b.get(&format!("/acme/test/buy/{prd}")).await;
    let page = b.get(&format!("/acme/test/buy/{prd}")).await;
    assert_eq!(app.count_rows("carts").await, 0, "no cart for a GET");

    // The customer acts: one cart. Two submits of the page at once make one order.
    let csrf = page.csrf();
    let form = details(&csrf, "test_card");
    let (first, second) = tokio::join!(
        b.submit(&page, "/acme/test/checkout", &form),
        b.submit(&page, "/acme/test/checkout", &form)
    );
    assert_eq!((first.status, second.status), (303, 303), "{}", first.html);
    assert_eq!(first.location, second.location, "the same order");
    assert_eq!(app.count_rows("carts").await, 1);
    assert_eq!(orders(&app.store, "acme").await.len(), 1);
    assert_eq!(
        b.get("/acme/test/checkout").await.location,
        first.location,
        "the cart became that order"
    );
}

/// The attack: a GET of a buy link, which a page on any site can make the customer's
/// browser send with the cart cookie, overwrote the cart's email, return URL and
/// custom data. A link only fills in what the cart does not have yet.
async fn a_buy_link_never_overwrites_what_the_customer_typed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let page = b
        .open(&format!(
            "/acme/test/buy/{prd}?return_url=https://acme.example/store&custom[account]=ada"
        ))
        .await;
    let typed = b
        .submit(
            &page,
            "/acme/test/checkout",
            &[
                ("email", "ada@example.com"),
                ("name", "Ada"),
                ("action", "update"),
            ],
        )
        .await;
    assert!(typed.html.contains("value=\"ada@example.com\""));

    let evil = b
        .open(&format!(
            "/acme/test/buy/{prd}?email=mallory@evil.example&name=Mallory\
             &return_url=https://evil.example/&custom[account]=mallory"
        ))
        .await;
    assert_eq!(evil.status, 200, "{}", evil.html);
    assert!(
        evil.html.contains("value=\"ada@example.com\""),
        "{}",
        evil.html
    );
    assert!(evil.html.contains("value=\"Ada\""));
    assert!(!evil.html.to_lowercase().contains("mallory"));
    let back = b
        .submit(
            &evil,
            "/acme/test/checkout",
            &[("email", "ada@example.com"), ("action", "back")],
        )
        .await;
    assert_eq!(back.location.as_deref(), Some("https://acme.example/store"));

    let page = b.get("/acme/test/checkout").await;
    let placed = b
        .submit(
            &page,
            "/acme/test/checkout",
            &details(&page.csrf(), "test_card"),
        )
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let order = &orders(&app.store, "acme").await[0];
    assert_eq!(order.custom["account"], "ada");
    assert_eq!(
        order.return_url.as_deref(),
        Some("https://acme.example/store")
    );
}

async fn bank_transfer_shows_a_reference_and_an_invoice(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let settings = TenantSettings {
        bank: Some(kassa_domain::tenant::BankDetails {
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
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/test/buy/{prd}")).await;
    let placed = b
        .submit(
            &page,
            "/acme/test/checkout",
            &details(&page.csrf(), "test_card"),
        )
        .await;
    let pay_path = placed.location.unwrap();
    let switched = b.switch_method(&pay_path, "bank_transfer").await;
    assert_eq!(switched.status, 303);
    let pay = b.get(&pay_path).await;
    let order = &orders(&app.store, "acme").await[0];
    assert_eq!(order.payment_method.as_str(), "bank_transfer");
    assert!(order.payment_reference.starts_with("KS-"));
    assert!(pay.html.contains(&order.payment_reference));
    assert!(pay.html.contains("DE89370400440532013000"));
    let invoice = b.get(&pay_path.replace("/pay", "/invoice")).await;
    assert_eq!(invoice.status, 200);
    assert!(invoice.html.contains("Invoice") && invoice.html.contains(&order.payment_reference));
    assert!(invoice.html.contains("39.98 USD"));
}

async fn pages_speak_russian(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/test/buy/{prd}?locale=ru")).await;
    assert!(page.html.contains("Оформление заказа"));
    assert!(page.html.contains("Я принимаю условия продажи"));
    let by_header = Browser::new(&app);
    let resp = by_header
        .client
        .get(format!("{}/acme/checkout", app.base))
        .header("accept-language", "ru-RU,ru;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("Оформление заказа"));
}

/// The attack: a `locale` (or `Accept-Language`) of non-ASCII text used to panic the
/// page handler; every page shows English instead, and a real tag still counts.
async fn non_ascii_locales_fall_back_to_english(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    for locale in ["ééé", "é", "aé", "русский", "日本語", "r\u{301}u", "%FF%FE"] {
        let b = Browser::new(&app);
        let page = b
            .open(&format!("/acme/test/buy/{prd}?locale={locale}"))
            .await;
        assert_eq!(page.status, 200, "locale={locale}: {}", page.html);
        assert!(page.html.contains("Checkout"), "locale={locale}");
        let missing = b
            .get(&format!("/acme/test/buy/prd_nope?locale={locale}"))
            .await;
        assert_eq!(missing.status, 404, "locale={locale}");
    }
    let b = Browser::new(&app);
    let page = b.open(&format!("/acme/test/buy/{prd}?locale=RU-ru")).await;
    assert!(page.html.contains("Оформление заказа"));
    for header in ["ééé".as_bytes(), "日本語,ru;q=0.5".as_bytes(), b"\xff\xfe"] {
        let resp = Browser::new(&app)
            .client
            .get(format!("{}/acme/checkout", app.base))
            .header(
                "accept-language",
                reqwest::header::HeaderValue::from_bytes(header).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("<html"));
    }
}

/// The attack: the sandbox card posted to the pay form of a bank transfer order pays
/// nothing and takes no key, whether or not the store offers the card.
async fn the_sandbox_card_never_pays_a_bank_transfer_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A live product: the bank transfer orders below are live ones.
    let (prd, pool) = crate::modes::product_as(&app, &app.live_key).await;
    for offered in [vec!["bank_transfer".to_owned()], vec![]] {
        offer_methods(&app, &offered).await;
        let b = Browser::new(&app);
        let page = b.open(&format!("/acme/buy/{prd}")).await;
        let placed = b
            .submit(
                &page,
                "/acme/checkout",
                &details(&page.csrf(), "bank_transfer"),
            )
            .await;
        assert_eq!(placed.status, 303, "{}", placed.html);
        let pay_path = placed.location.unwrap();
        let pay = b.get(&pay_path).await;
        let attack = b
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
        // A live order: the sandbox is refused next to the payment method.
        assert_eq!(attack.status, 422, "offered {offered:?}: {}", attack.html);
        assert!(attack.error("payment_method").is_some(), "{}", attack.html);
        let order_page = b.open(pay_path.trim_end_matches("/pay")).await;
        assert!(
            order_page
                .html
                .contains("data-testid=\"order-status\">Not paid<"),
            "offered {offered:?}"
        );
        let order = &orders(&app.store, "acme").await[0];
        assert_eq!(order.status.as_str(), "not_paid");
        assert!(
            order.payments.is_empty(),
            "no attempt recorded: {:?}",
            order.payments
        );
    }
    let stock = app
        .get_as(&app.live_key, &format!("/api/v1/license-pools/{pool}"))
        .await;
    assert_eq!(stock.ok()["available"], 3, "no key was taken");
}
