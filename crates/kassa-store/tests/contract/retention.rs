//! Clean-up removes finished work past its retention, and nothing else.

use kassa_domain::mode::Mode;
use kassa_store::{CartRecord, Timestamp};
use kassa_testkit::{Backend, on_both_backends};

use crate::{Arg, Fixture};

on_both_backends!(clean_up_removes_only_what_is_old);

async fn clean_up_removes_only_what_is_old(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (created, _) = fx.tenant("acme").await;
    let tenant = &created.tenant.id;
    for token in ["old-cart", "new-cart"] {
        fx.store
            .save_cart(
                tenant,
                &CartRecord {
                    token: token.into(),
                    ..CartRecord::default()
                },
            )
            .await
            .unwrap();
    }
    fx.store
        .start_idempotency(tenant, "old-key", "f")
        .await
        .unwrap();
    fx.store
        .start_idempotency(tenant, "new-key", "f")
        .await
        .unwrap();
    let raw = fx.raw().await;
    let long_ago = [Arg::Time(Timestamp::from(1000))];
    raw.execute(
        "UPDATE carts SET updated_at = $1 WHERE token = 'old-cart'",
        &long_ago,
    )
    .await;
    raw.execute(
        "UPDATE idempotency_keys SET created_at = $1 WHERE key = 'old-key'",
        &long_ago,
    )
    .await;
    raw.close().await;
    let done = fx.store.clean_up().await.unwrap();
    assert_eq!((done.carts, done.idempotency_keys), (1, 1));
    let kept = |token| fx.store.cart_by_token(tenant, Mode::Live, token);
    assert!(kept("old-cart").await.is_err());
    assert!(kept("new-cart").await.is_ok());
    assert_eq!(
        fx.count(
            "SELECT COUNT(*) FROM idempotency_keys WHERE key = $1",
            "new-key"
        )
        .await,
        1
    );
    assert_eq!(
        fx.store.clean_up().await.unwrap(),
        kassa_store::CleanUp::default(),
        "nothing more"
    );
}
