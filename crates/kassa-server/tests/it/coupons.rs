//! A limited coupon's uses (issue 14): an unpaid order holds its use for a while (the
//! store's `coupon_hold`), a paid one counts it for good, so unpaid orders cannot use a
//! coupon up, and a customer cannot take more uses than the merchant allowed.

use std::time::{Duration, Instant};

use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::harness::TestApp;
use crate::pages::{Browser, details, orders, product};

on_both_backends!(an_unpaid_order_holds_a_limited_coupon_only_for_a_while);

/// The checkout form as a browser sends it, with the coupon the link filled in.
fn with_coupon(csrf: &str) -> Vec<(&str, &str)> {
    let mut fields = details(csrf, "test_card");
    fields.push(("coupon", "ONCE"));
    fields
}

async fn times_redeemed(app: &TestApp) -> i64 {
    let coupons = app.get("/api/v1/coupons").await;
    coupons.ok()["data"][0]["times_redeemed"].as_i64().unwrap()
}

async fn an_unpaid_order_holds_a_limited_coupon_only_for_a_while(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1000).await;
    let set = app
        .patch_as(
            &app.live_key,
            "/api/v1/settings",
            json!({"coupon_hold": "2s"}),
        )
        .await;
    assert_eq!(set.ok()["coupon_hold"], "2s");
    let bad = app
        .patch_as(
            &app.live_key,
            "/api/v1/settings",
            json!({"coupon_hold": "90d"}),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["coupon_hold"]);
    app.post(
        "/api/v1/coupons",
        json!({"code": "ONCE", "percent_off": 10, "max_redemptions": 1}),
    )
    .await
    .ok();
    let link = format!("/acme/test/buy/{prd}?coupon=ONCE");

    // Ann places an order with the coupon's only use and does not pay (yet).
    let ann = Browser::new(&app);
    let page = ann.open(&link).await;
    assert!(page.html.contains("ONCE"), "{}", page.html);
    let placed = ann
        .submit(&page, "/acme/test/checkout", &with_coupon(&page.csrf()))
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let ann_pay = placed.location.unwrap();
    assert_eq!(times_redeemed(&app).await, 0, "held, not redeemed");

    // While Ann's order holds it, Bob is told the coupon is used up.
    let bob = Browser::new(&app);
    let page = bob.open(&link).await;
    assert!(
        page.error("coupon").unwrap().contains("used up"),
        "{}",
        page.html
    );

    // Once the hold lapses, Bob gets the use, and pays for it.
    let started = Instant::now();
    let page = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let page = bob.open(&link).await;
        if page.error("coupon").is_none() {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{}", page.html);
    };
    let placed = bob
        .submit(&page, "/acme/test/checkout", &with_coupon(&page.csrf()))
        .await;
    assert_eq!(placed.status, 303, "{}", placed.html);
    let bob_pay = placed.location.unwrap();
    let paid = bob.pay_by_card(&bob_pay, "4242 4242 4242 4242").await;
    assert_eq!(paid.status, 303, "{}", paid.html);
    assert_eq!(times_redeemed(&app).await, 1);

    // Ann's hold lapsed and the only use is Bob's: her card is not charged at the
    // discounted price, and she is told why.
    let refused = ann.pay_by_card(&ann_pay, "4242 4242 4242 4242").await;
    assert_eq!(refused.status, 410, "{}", refused.html);
    assert!(
        refused
            .error("coupon")
            .unwrap()
            .contains("has been used up meanwhile"),
        "{}",
        refused.html
    );
    assert!(!refused.html.contains("Card number"), "no card form");
    let all = orders(&app.store, "acme").await;
    let ann_order = all
        .iter()
        .find(|o| o.status.as_str() == "not_paid")
        .unwrap();
    assert!(ann_order.payments.is_empty(), "nothing recorded");
    assert_eq!(
        ann_order.discount, 200,
        "the order keeps what it was quoted"
    );
    assert_eq!(times_redeemed(&app).await, 1, "the limit holds");

    // Money that already moved is the merchant's to accept: a transfer Ann made on the
    // order's instructions is recorded, and counted, past the limit.
    let recorded = app
        .post(
            &format!("/api/v1/orders/{}/payments", ann_order.id),
            json!({"method": "bank_transfer", "amount": 1800, "currency": "USD"}),
        )
        .await;
    assert_eq!(recorded.ok()["status"], "paid");
    assert_eq!(times_redeemed(&app).await, 2);

    // A third customer finds the coupon used up for good.
    let page = Browser::new(&app).open(&link).await;
    assert!(page.error("coupon").unwrap().contains("used up"));
}
