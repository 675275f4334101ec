//! The webhook delivery queue: claims taken once, a paid order's deliveries first, a
//! claim that runs out given back, attempts recorded many at once into the log the
//! merchant reads.

use std::time::Duration;

use kassa_domain::ids::TenantId;
use kassa_domain::mode::Mode;
use kassa_domain::workflow::Followups;
use kassa_store::{AttemptMade, DeliveryOutcome, Timestamp, WebhookEndpointFields};
use kassa_testkit::Backend;

use crate::{Arg, Fixture, first_page};

kassa_testkit::on_both_backends!(
    deliveries_are_claimed_once_paid_first_and_given_back_when_a_claim_runs_out,
);

/// Writes an event as the store would, for a redelivery to queue.
pub(crate) async fn event(fx: &Fixture, backend: Backend, tenant: &TenantId, id: &str) {
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO events (tenant_id, id, type, order_id, livemode, payload, created_at)
             VALUES ($1, $2, 'order.created', NULL, 1, $3, $4)"
        }
        Backend::Postgres => {
            "INSERT INTO events (tenant_id, id, type, order_id, livemode, payload, created_at)
             VALUES ($1, $2, 'order.created', NULL, true, CAST($3 AS jsonb), $4)"
        }
    };
    let raw = fx.raw().await;
    let payload = format!(r#"{{"id":"{id}","type":"order.created"}}"#);
    raw.execute(
        sql,
        &[
            Arg::Text(tenant.as_str()),
            Arg::Text(id),
            Arg::Text(&payload),
            Arg::Time(Timestamp::now()),
        ],
    )
    .await;
    raw.close().await;
}

fn made(delivery: kassa_store::DueDelivery, status: u16, outcome: DeliveryOutcome) -> AttemptMade {
    AttemptMade {
        delivery,
        status_code: Some(status),
        latency_ms: 3,
        response: format!("answer {status}"),
        outcome,
        followups: Followups::default(),
    }
}

async fn deliveries_are_claimed_once_paid_first_and_given_back_when_a_claim_runs_out(
    backend: Backend,
) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let endpoint = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &WebhookEndpointFields {
                url: "https://hooks.acme.test/kassa".into(),
                description: None,
                event_types: Vec::new(),
                disabled: false,
            },
            &"whsec_one".into(),
        )
        .await
        .unwrap();
    for id in ["evt_1", "evt_2", "evt_3"] {
        event(&fx, backend, tenant, id).await;
        fx.store
            .redeliver(tenant, Mode::Live, &endpoint.id, id)
            .await
            .unwrap();
    }
    // The last one reports a paid order: it goes first; the first was due earliest.
    let raw = fx.raw().await;
    raw.execute(
        "UPDATE webhook_deliveries SET priority = 1 WHERE event_id = $1",
        &[Arg::Text("evt_3")],
    )
    .await;
    raw.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE event_id = $2",
        &[
            Arg::Time(Timestamp::from(Timestamp::now().millis() - 5_000)),
            Arg::Text("evt_1"),
        ],
    )
    .await;
    raw.close().await;
    let long = Duration::from_secs(60);

    let a = fx
        .store
        .claim_webhook_deliveries("clm_a", 2, long, &[])
        .await
        .unwrap();
    let events: Vec<&str> = a.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(events, ["evt_3", "evt_1"], "paid first, then the earliest");
    assert_eq!(a[0].url, "https://hooks.acme.test/kassa");
    assert_eq!(a[0].secrets.len(), 1);
    assert!(a[0].payload.contains("evt_3"), "{}", a[0].payload);

    // Another claimant gets only what is left, and then nothing.
    let b = fx
        .store
        .claim_webhook_deliveries("clm_b", 10, Duration::ZERO, &[])
        .await
        .unwrap();
    let events: Vec<&str> = b.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(events, ["evt_2"]);
    // `clm_b`'s claim ran out at once: its delivery is claimed again (a dead node's).
    let c = fx
        .store
        .claim_webhook_deliveries("clm_c", 10, Duration::ZERO, &[])
        .await
        .unwrap();
    let events: Vec<&str> = c.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(
        events,
        ["evt_2"],
        "a claim that ran out gives its rows back"
    );
    // Extended, a claim holds.
    fx.store
        .extend_claims(kassa_store::Queue::Webhooks, &["clm_c".to_owned()], long)
        .await
        .unwrap();
    assert!(
        fx.store
            .claim_webhook_deliveries("clm_d", 10, long, &[])
            .await
            .unwrap()
            .is_empty(),
        "nothing is claimed twice"
    );

    // Recorded together: one succeeded, one to be tried again at once.
    let mut a = a.into_iter();
    let (paid, first) = (a.next().unwrap(), a.next().unwrap());
    let retry_at = Timestamp::now().millis() - 1;
    fx.store
        .record_webhook_attempts(&[
            made(paid, 204, DeliveryOutcome::Succeeded),
            made(first, 500, DeliveryOutcome::RetryAt(retry_at)),
        ])
        .await
        .unwrap();
    let again = fx
        .store
        .claim_webhook_deliveries("clm_e", 10, long, &[])
        .await
        .unwrap();
    let events: Vec<&str> = again.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(
        events,
        ["evt_1"],
        "the retry is due again, the success is not"
    );
    assert_eq!(again[0].attempts, 1);

    let page = fx
        .store
        .list_deliveries(tenant, &endpoint.id, &first_page(10))
        .await
        .unwrap();
    let by_event = |id: &str| {
        page.data
            .iter()
            .find(|d| d.event_id == id)
            .unwrap_or_else(|| panic!("{id} listed"))
            .clone()
    };
    let paid = by_event("evt_3");
    assert_eq!(paid.status, "succeeded");
    assert_eq!(paid.attempts.len(), 1);
    assert_eq!(paid.attempts[0].status_code, Some(204));
    let first = by_event("evt_1");
    assert_eq!(first.status, "pending");
    assert_eq!(first.attempts[0].response, "answer 500");
    assert_eq!(by_event("evt_2").attempts.len(), 0);
}
