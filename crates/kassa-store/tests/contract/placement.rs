//! A placement writes the order and everything that follows it in one statement: its
//! `order.created` event, with the order's number in the payload, a delivery to each
//! endpoint that takes the event (enabled, of its mode, its filter taking the type) and
//! the customer's payment instructions.

use kassa_domain::ids::{DeliveryId, WebhookEndpointId};
use kassa_domain::mode::Mode;
use kassa_domain::order::PaymentMethod;
use kassa_store::{Placement, WebhookEndpointFields};
use kassa_testkit::Backend;

use crate::{Fixture, first_page, new_order, place_new, pool_product};

kassa_testkit::on_both_backends!(a_placement_writes_its_event_deliveries_and_email);

async fn a_placement_writes_its_event_deliveries_and_email(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let endpoint = |types: &[&str], disabled: bool| WebhookEndpointFields {
        url: "https://hooks.acme.test/kassa".into(),
        description: None,
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        disabled,
    };
    let make = |mode: Mode, fields: WebhookEndpointFields| {
        let store = fx.store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .create_webhook_endpoint(&tenant, mode, &fields, &"whsec_one".into())
                .await
                .expect("an endpoint")
                .id
        }
    };
    let every_event = make(Mode::Test, endpoint(&[], false)).await;
    let created_only = make(Mode::Test, endpoint(&["order.created"], false)).await;
    let other_types = make(Mode::Test, endpoint(&["order.refunded"], false)).await;
    let disabled = make(Mode::Test, endpoint(&[], true)).await;
    let live = make(Mode::Live, endpoint(&[], false)).await;

    let pool = fx
        .store
        .create_license_pool(tenant, Mode::Test, "Keys", None)
        .await
        .expect("a pool");
    let product = pool_product(&fx.store, tenant, &pool.id).await;
    let mut numbers = Vec::new();
    for _ in 0..2 {
        let mut work = fx.store.work(tenant).await.expect("work");
        let new = new_order(&product, 1, PaymentMethod::BankTransfer);
        let Placement::New(id) = place_new(&mut work, &new).await else {
            panic!("a new order")
        };
        let answer = work
            .view_after_follow(id.as_str())
            .await
            .expect("the order");
        work.commit().await.expect("commit");

        let order = fx
            .store
            .order(tenant, id.as_str())
            .await
            .expect("the order");
        assert_eq!(
            answer.number, order.number,
            "the answer has the stored number"
        );
        numbers.push(order.number);
        let events = fx
            .store
            .order_events(tenant, id.as_str())
            .await
            .expect("events");
        assert_eq!(events.len(), 1, "one event: {events:?}");
        let event = &events[0];
        assert_eq!(event.kind, "order.created");
        assert!(!event.livemode);
        assert_eq!(event.payload["id"], event.id.as_str());
        assert_eq!(event.payload["livemode"], false);
        assert_eq!(event.payload["data"]["order"]["id"], id.as_str());
        assert_eq!(
            event.payload["data"]["order"]["number"], order.number,
            "the payload carries the order's number"
        );
        assert_eq!(event.payload["data"]["order"]["total"], 1000);
    }
    assert_eq!(numbers, [1, 2]);

    // Each order's event went to the two test endpoints that take it, and nowhere else.
    let deliveries = |endpoint: WebhookEndpointId| {
        let store = fx.store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .list_deliveries(&tenant, &endpoint, &first_page(10))
                .await
                .expect("deliveries")
                .data
        }
    };
    let mut ids = Vec::new();
    for taker in [&every_event, &created_only] {
        let got = deliveries(taker.clone()).await;
        assert_eq!(got.len(), 2, "{got:?}");
        for d in got {
            assert_eq!(d.status, "pending");
            assert_eq!(d.event_type, "order.created");
            assert!(d.next_attempt_at.is_some(), "due at once");
            DeliveryId::parse(&d.id).expect("a well-formed delivery id");
            assert_eq!(
                &d.id[4..14],
                &d.event_id[4..14],
                "a delivery id starts with its event's time"
            );
            ids.push(d.id);
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "no delivery id twice");
    for not_taking in [other_types, disabled, live] {
        assert!(deliveries(not_taking).await.is_empty());
    }

    // And each customer was sent the bank transfer instructions, once.
    let emails = fx
        .store
        .list_emails(tenant, Mode::Test, &first_page(10))
        .await
        .expect("emails")
        .data;
    assert_eq!(emails.len(), 2, "{emails:?}");
    for email in &emails {
        assert_eq!(email.kind, "payment_instructions");
        assert_eq!(email.to_address, "buyer@example.com");
        assert_eq!(email.status, "queued");
    }
}
