//! Rotating the store's link-signing and web-service signing secrets: the previous
//! secret stays valid for an overlap window (24 hours unless asked otherwise), so links
//! already handed out keep working and license services switch without a failed
//! request; after the window only the new secret counts. Both databases.

use kassa_domain::signed_link;
use kassa_testkit::{Backend, on_both_backends};
use serde_json::json;

use crate::fulfillment::{paid_order, service_product, wait_delivered};
use crate::harness::TestApp;
use crate::pages::{Browser, product};

on_both_backends!(
    signed_links_verify_against_either_secret_during_the_overlap,
    web_service_requests_carry_both_signatures_during_the_overlap,
);

/// A buy link of `prd` with a signed price, signed with `secret`.
fn signed(secret: &str, prd: &str) -> String {
    let params = vec![
        ("currency".to_owned(), "USD".to_owned()),
        ("price".to_owned(), "999".to_owned()),
    ];
    let query = signed_link::signed_query(secret, "acme", prd, &params).expect("a valid offer");
    format!("/acme/test/buy/{prd}?{query}")
}

async fn rotate(app: &TestApp, which: &str, overlap: Option<&str>) -> serde_json::Value {
    let query = overlap.map(|o| format!("?overlap={o}")).unwrap_or_default();
    let rotated = app
        .post_as(
            &app.live_key,
            &format!("/api/v1/settings/{which}/rotate{query}"),
            json!({}),
        )
        .await;
    rotated.ok().clone()
}

async fn signed_links_verify_against_either_secret_during_the_overlap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let before = app.get_as(&app.live_key, "/api/v1/settings").await;
    let first = before.ok()["link_signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        before.body["link_signing_secret_previous_expires_at"],
        json!(null)
    );

    let rotated = rotate(&app, "link-signing-secret", None).await;
    let second = rotated["link_signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "a new secret");
    let until = chrono::DateTime::parse_from_rfc3339(
        rotated["link_signing_secret_previous_expires_at"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let hours =
        (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!(
        (23.9..=24.0).contains(&hours),
        "24 hours of overlap: {hours}"
    );

    let b = Browser::new(&app);
    for secret in [&first, &second] {
        let page = b.open(&signed(secret, &prd)).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("9.99 USD"), "the signed price");
    }
    let forged = b.get(&signed("not-the-secret", &prd)).await;
    assert_eq!(forged.status, 400);

    // Rotating again without overlap: only the newest secret counts.
    let third = rotate(&app, "link-signing-secret", Some("0s")).await;
    let third = third["link_signing_secret"].as_str().unwrap().to_owned();
    for old in [&first, &second] {
        let page = b.get(&signed(old, &prd)).await;
        assert_eq!(page.status, 400, "{}", page.html);
        assert!(page.html.contains("has been changed"));
    }
    assert_eq!(b.open(&signed(&third, &prd)).await.status, 200);
    app.assert_stored_sealed(&[&first, &second, &third]).await;
    let bad = app
        .post_as(
            &app.live_key,
            "/api/v1/settings/link-signing-secret/rotate?overlap=soon",
            json!({}),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["overlap"]);
}

async fn web_service_requests_carry_both_signatures_during_the_overlap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The service knows only the secret it was set up with.
    let (prd, service) = service_product(&app, "").await;
    let rotated = rotate(&app, "web-service-signing-secret", None).await;
    let new = rotated["web_service_signing_secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_"));
    let id = paid_order(&app, &prd, 1).await;
    let order = wait_delivered(&app, &id).await;
    assert_eq!(order["delivery_status"], "delivered", "{order}");
    let asked = service.received();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["signatures"], 2, "v1,new v1,previous");
    assert_eq!(
        asked[0]["verified"], true,
        "the previous secret still verifies"
    );
    app.assert_stored_sealed(&[new]).await;
}
