//! Idempotency keys: a retried request gets the first answer again.

use kassa_store::{IDEMPOTENCY_TTL_MILLIS, IdempotencyStart, Timestamp};
use kassa_testkit::Backend;

use crate::{Arg, Fixture};

kassa_testkit::on_both_backends!(
    a_key_proceeds_once_then_replays,
    an_abandoned_key_can_be_claimed_again,
    keys_belong_to_one_tenant,
    an_expired_key_is_forgotten,
);

async fn a_key_proceeds_once_then_replays(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let store = &fx.store;

    let start = |fingerprint: &'static str| store.start_idempotency(tenant, "req-1", fingerprint);
    assert_eq!(
        start("fp-a").await.expect("first"),
        IdempotencyStart::Proceed
    );
    assert_eq!(
        start("fp-a").await.expect("retry"),
        IdempotencyStart::InProgress
    );
    assert_eq!(
        start("fp-b").await.expect("other"),
        IdempotencyStart::Mismatch
    );

    store
        .finish_idempotency(
            tenant,
            "req-1",
            201,
            Some("application/json"),
            r#"{"id":"ord_1"}"#,
        )
        .await
        .expect("finishing");
    let replay = IdempotencyStart::Replay {
        status: 201,
        content_type: Some("application/json".into()),
        body: r#"{"id":"ord_1"}"#.into(),
    };
    assert_eq!(start("fp-a").await.expect("after finish"), replay);
    assert_eq!(start("fp-a").await.expect("and again"), replay);
    assert_eq!(
        start("fp-b").await.expect("other"),
        IdempotencyStart::Mismatch
    );

    // A response without a content type or body replays as such.
    assert_eq!(
        store
            .start_idempotency(tenant, "req-2", "fp-a")
            .await
            .expect("another key"),
        IdempotencyStart::Proceed
    );
    store
        .finish_idempotency(tenant, "req-2", 204, None, "")
        .await
        .expect("finishing");
    assert_eq!(
        store
            .start_idempotency(tenant, "req-2", "fp-a")
            .await
            .expect("replay"),
        IdempotencyStart::Replay {
            status: 204,
            content_type: None,
            body: String::new(),
        }
    );
}

async fn an_abandoned_key_can_be_claimed_again(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let store = &fx.store;

    assert_eq!(
        store
            .start_idempotency(tenant, "req-1", "fp-a")
            .await
            .expect("first"),
        IdempotencyStart::Proceed
    );
    store
        .abandon_idempotency(tenant, "req-1")
        .await
        .expect("abandoning");
    assert_eq!(
        store
            .start_idempotency(tenant, "req-1", "fp-a")
            .await
            .expect("retry"),
        IdempotencyStart::Proceed
    );
    assert_eq!(
        store
            .start_idempotency(tenant, "req-1", "fp-a")
            .await
            .expect("retry"),
        IdempotencyStart::InProgress
    );

    // Once forgotten, the key is free for any request.
    store
        .abandon_idempotency(tenant, "req-1")
        .await
        .expect("abandoning");
    assert_eq!(
        store
            .start_idempotency(tenant, "req-1", "fp-b")
            .await
            .expect("other"),
        IdempotencyStart::Proceed
    );
    store
        .abandon_idempotency(tenant, "never-used")
        .await
        .expect("abandoning an unknown key is fine");
}

async fn keys_belong_to_one_tenant(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let (a, g) = (&acme.tenant.id, &globex.tenant.id);
    let store = &fx.store;

    assert_eq!(
        store
            .start_idempotency(a, "req-1", "fp-a")
            .await
            .expect("acme"),
        IdempotencyStart::Proceed
    );
    assert_eq!(
        store
            .start_idempotency(g, "req-1", "fp-b")
            .await
            .expect("globex"),
        IdempotencyStart::Proceed
    );

    store
        .finish_idempotency(a, "req-1", 200, Some("text/plain"), "acme's")
        .await
        .expect("acme finishes");
    assert_eq!(
        store
            .start_idempotency(g, "req-1", "fp-b")
            .await
            .expect("globex"),
        IdempotencyStart::InProgress,
        "acme's finish touched globex's key"
    );

    store
        .abandon_idempotency(g, "req-1")
        .await
        .expect("globex abandons");
    assert_eq!(
        store
            .start_idempotency(a, "req-1", "fp-a")
            .await
            .expect("acme"),
        IdempotencyStart::Replay {
            status: 200,
            content_type: Some("text/plain".into()),
            body: "acme's".into(),
        },
        "globex's abandon touched acme's key"
    );
}

async fn an_expired_key_is_forgotten(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;

    let raw = fx.raw().await;
    let long_ago = Timestamp::now().millis() - IDEMPOTENCY_TTL_MILLIS - 60_000;
    raw.execute(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, status_code, content_type, body, created_at)
         VALUES ($1, 'req-old', 'fp-old', 200, NULL, 'old', $2)",
        &[Arg::Text(tenant.as_str()), Arg::Time(Timestamp::from(long_ago))],
    )
    .await;
    raw.close().await;

    assert_eq!(
        fx.store
            .start_idempotency(tenant, "req-old", "fp-new")
            .await
            .expect("claiming the expired key"),
        IdempotencyStart::Proceed
    );
    assert_eq!(
        fx.store
            .start_idempotency(tenant, "req-old", "fp-old")
            .await
            .expect("the old request again"),
        IdempotencyStart::Mismatch
    );
}
