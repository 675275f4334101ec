//! Refunds: a refund and what it does to its order are written together; refunds
//! never add up to more than the order's total, even when asked to; the keys of a
//! refunded line are revoked, or returned to a pool that takes them back.

use kassa_domain::ids::{LicensePoolId, OrderId, RefundId, TenantId};
use kassa_domain::mode::Mode;
use kassa_domain::order::{PaymentMethod, RefundStatus};
use kassa_domain::workflow::{self, RefundRequest};
use kassa_store::{NewRefund, Placement, Store};
use kassa_testkit::Backend;

use crate::{Arg, Fixture, assert_conflict, new_order, place_new, pool_product};

kassa_testkit::on_both_backends!(
    a_partial_then_a_full_refund_revoke_the_keys,
    refunded_keys_go_back_to_a_pool_that_takes_them,
    refunds_never_add_up_to_more_than_the_total,
    a_pending_refund_revokes_at_success_and_a_failed_one_is_taken_back,
);

/// A paid test order of two units of a product delivered from a pool of three keys;
/// returns the order's id and the pool.
async fn delivered_order(
    store: &Store,
    tenant: &TenantId,
    give_back: bool,
) -> (String, LicensePoolId) {
    let pool = store
        .create_license_pool(tenant, Mode::Test, "Keys", None)
        .await
        .expect("a pool");
    if give_back {
        store
            .set_return_refunded_keys(tenant, &pool.id, true)
            .await
            .expect("the pool takes refunded keys back");
    }
    let mut work = store.work(tenant).await.expect("work");
    work.lock_pool(&pool.id, true).await.expect("the pool");
    let keys: Vec<String> = ["K-1", "K-2", "K-3"].map(str::to_owned).to_vec();
    work.insert_keys(&pool.id, &keys).await.expect("keys");
    work.commit().await.expect("commit");
    let (id, mut work) = paid_order(store, tenant, &pool.id).await;
    let licenses = work
        .claim_keys(&pool.id, (&id, 1), 2)
        .await
        .expect("keys")
        .expect("enough keys");
    work.mark_delivered(&id, 1, &licenses, true)
        .await
        .expect("delivered");
    work.commit().await.expect("commit");
    (id, pool.id)
}

/// A test order of two units of a product delivered from `pool`, marked paid in the
/// transaction returned (not committed yet).
pub(crate) async fn paid_order(
    store: &Store,
    tenant: &TenantId,
    pool: &LicensePoolId,
) -> (String, kassa_store::Work) {
    let product = pool_product(store, tenant, pool).await;
    let mut work = store.work(tenant).await.expect("work");
    let placed = place_new(&mut work, &new_order(&product, 2, PaymentMethod::TestCard)).await;
    let Placement::New(id) = placed else {
        panic!("a new order")
    };
    let id = id.to_string();
    work.mark_paid(&id, PaymentMethod::TestCard)
        .await
        .expect("paid");
    (id, work)
}

/// Asks the workflow for a refund of `amount` (`None`: the rest) and writes it.
async fn refund(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    amount: Option<i64>,
) -> Vec<LicensePoolId> {
    let mut work = store.work(tenant).await.expect("work");
    let order = work.order(id).await.expect("the order");
    let request = RefundRequest {
        id: RefundId::generate(),
        amount,
        currency: None,
        lines: Vec::new(),
    };
    let decided = order
        .refund(&request)
        .expect("a refund the workflow allows");
    let reference = format!("test_re_{}", request.id);
    let new = NewRefund {
        id: request.id,
        method: PaymentMethod::TestCard,
        status: RefundStatus::Succeeded,
        reason: Some("asked".into()),
        // A provider's refund id names one refund (unique per store since 0029).
        reference: Some(reference),
    };
    let returned = work
        .insert_refund(&order, &new, &decided)
        .await
        .expect("recorded");
    work.commit().await.expect("commit");
    returned
}

async fn a_partial_then_a_full_refund_revoke_the_keys(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let (id, pool) = delivered_order(&fx.store, tenant, false).await;

    assert!(refund(&fx.store, tenant, &id, Some(500)).await.is_empty());
    let order = fx.store.order(tenant, &id).await.expect("the order");
    assert_eq!(order.status.as_str(), "paid");
    assert_eq!(order.amount_refunded, 500);
    assert_eq!(order.refunds.len(), 1);
    assert_eq!(order.refunds[0].amount, 500);
    assert_eq!(order.refunds[0].currency, "USD");
    assert!(!order.refunds[0].livemode);
    assert_eq!(order.refunds[0].reason.as_deref(), Some("asked"));
    assert!(!order.lines[0].refunded);

    assert!(refund(&fx.store, tenant, &id, None).await.is_empty());
    let order = fx.store.order(tenant, &id).await.expect("the order");
    assert_eq!(order.status.as_str(), "refunded");
    assert_eq!(order.amount_refunded, 2000);
    assert!(order.lines[0].refunded);
    assert_eq!(order.lines[0].revoked_licenses, order.lines[0].licenses);
    let listed = fx
        .store
        .refunds(tenant, &OrderId::parse(&order.id).unwrap())
        .await
        .expect("the refunds");
    assert_eq!(
        listed.iter().map(|r| r.amount).collect::<Vec<_>>(),
        [500, 1500]
    );
    assert_eq!(listed[1].lines, [1]);
    // The keys stay the line's, revoked: the pool does not get them back.
    let stock = fx
        .store
        .license_pool(tenant, &pool)
        .await
        .expect("the pool");
    assert_eq!((stock.available, stock.assigned), (1, 2));
    let revoked = fx
        .count(
            "SELECT COUNT(*) FROM license_keys WHERE status = 'revoked' AND order_id = $1",
            &id,
        )
        .await;
    assert_eq!(revoked, 2);
    // Another store sees no refund of it.
    let (other, _) = fx.tenant("other").await;
    let theirs = fx
        .store
        .refunds(&other.tenant.id, &OrderId::parse(&order.id).unwrap())
        .await
        .expect("a list");
    assert!(theirs.is_empty());
}

async fn refunded_keys_go_back_to_a_pool_that_takes_them(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let (id, pool) = delivered_order(&fx.store, tenant, true).await;
    assert_eq!(
        refund(&fx.store, tenant, &id, None).await,
        vec![pool.clone()]
    );
    let stock = fx
        .store
        .license_pool(tenant, &pool)
        .await
        .expect("the pool");
    assert!(stock.return_refunded_keys);
    assert_eq!((stock.available, stock.assigned), (3, 0));
    let order = fx.store.order(tenant, &id).await.expect("the order");
    assert_eq!(
        order.lines[0].revoked_licenses.len(),
        2,
        "recorded as revoked"
    );
    // A returned key belongs to no line until it is claimed again.
    let raw = fx.raw().await;
    let on_a_line = raw
        .count(
            "SELECT COUNT(*) FROM license_keys WHERE order_id = $1",
            &[Arg::Text(&id)],
        )
        .await;
    raw.close().await;
    assert_eq!(on_a_line, 0);
}

/// The attack at the storage level: a refund the workflow did not decide, above what
/// is left, is never written.
async fn refunds_never_add_up_to_more_than_the_total(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let (id, _) = delivered_order(&fx.store, tenant, false).await;
    refund(&fx.store, tenant, &id, Some(1500)).await;
    let mut work = fx.store.work(tenant).await.expect("work");
    let order = work.order(&id).await.expect("the order");
    let forged = workflow::Refund {
        amount: 600,
        order_refunded: false,
        refunded_lines: Vec::new(),
        cancelled_lines: Vec::new(),
        followups: workflow::Followups::default(),
    };
    let new = NewRefund {
        id: RefundId::generate(),
        method: PaymentMethod::TestCard,
        status: RefundStatus::Succeeded,
        reason: None,
        reference: None,
    };
    assert_conflict(work.insert_refund(&order, &new, &forged).await);
    drop(work);
    let order = fx.store.order(tenant, &id).await.expect("the order");
    assert_eq!(order.amount_refunded, 1500);
    assert_eq!(order.refunds.len(), 1);
}

/// A full refund recorded `pending` refunds the order and its line but revokes no key;
/// taken back after it failed, the order is paid with nothing refunded and the line is
/// its own again; a second one that succeeds later revokes the keys then, back into a
/// pool that takes them, once.
async fn a_pending_refund_revokes_at_success_and_a_failed_one_is_taken_back(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let (id, pool) = delivered_order(&fx.store, tenant, true).await;
    let pending = |reference: &str| NewRefund {
        id: RefundId::generate(),
        method: PaymentMethod::Stripe,
        status: RefundStatus::Pending,
        reason: None,
        reference: Some(reference.to_owned()),
    };
    let record_pending = |reference: &'static str| {
        let store = fx.store.clone();
        let (tenant, id) = (tenant.clone(), id.clone());
        async move {
            let mut work = store.work(&tenant).await.expect("work");
            let order = work.order(&id).await.expect("the order");
            let new = pending(reference);
            let decided = order
                .refund(&RefundRequest {
                    id: new.id.clone(),
                    amount: None,
                    currency: None,
                    lines: Vec::new(),
                })
                .expect("a full refund");
            let returned = work
                .insert_refund(&order, &new, &decided)
                .await
                .expect("recorded");
            assert!(returned.is_empty(), "a pending refund returns no key");
            work.commit().await.expect("commit");
        }
    };
    let stock = || async {
        let p = fx
            .store
            .license_pool(tenant, &pool)
            .await
            .expect("the pool");
        (p.available, p.assigned)
    };

    record_pending("re_first").await;
    let order = fx.store.order(tenant, &id).await.expect("the order");
    assert_eq!(order.status.as_str(), "refunded");
    assert!(order.lines[0].refunded);
    assert!(order.lines[0].revoked_licenses.is_empty());
    assert_eq!(stock().await, (1, 2), "the keys are still the line's");

    let mut work = fx.store.work(tenant).await.expect("work");
    let order = work.order(&id).await.expect("the order");
    let recorded = work
        .refund_by_reference(&id, "re_first")
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(recorded.status, RefundStatus::Pending);
    let taken = order.refund_failed(&recorded).expect("taken back");
    work.take_back_refund(&id, &recorded, &taken, Some("lost_or_stolen_card"))
        .await
        .expect("written");
    work.commit().await.expect("commit");
    let order = fx.store.order(tenant, &id).await.expect("the order");
    assert_eq!((order.status.as_str(), order.amount_refunded), ("paid", 0));
    assert_eq!(order.refunds[0].status, RefundStatus::Failed);
    assert_eq!(
        order.refunds[0].failure_reason.as_deref(),
        Some("lost_or_stolen_card")
    );
    assert!(!order.lines[0].refunded);
    assert_eq!(order.lines[0].licenses.len(), 2);
    assert_eq!(stock().await, (1, 2));
    // Taken back once: the same again is a conflict, nothing written.
    let mut work = fx.store.work(tenant).await.expect("work");
    assert_conflict(work.take_back_refund(&id, &recorded, &taken, None).await);
    drop(work);

    record_pending("re_second").await;
    let mut work = fx.store.work(tenant).await.expect("work");
    let second = work
        .refund_by_reference(&id, "re_second")
        .await
        .expect("read")
        .expect("recorded");
    let returned = work
        .refund_succeeded(&id, &second)
        .await
        .expect("written")
        .expect("it was pending");
    assert_eq!(returned, std::slice::from_ref(&pool));
    assert!(
        work.refund_succeeded(&id, &second)
            .await
            .expect("read")
            .is_none(),
        "succeeded once"
    );
    work.commit().await.expect("commit");
    let order = fx.store.order(tenant, &id).await.expect("the order");
    assert_eq!(order.status.as_str(), "refunded");
    assert_eq!(order.lines[0].revoked_licenses.len(), 2);
    assert_eq!(stock().await, (3, 0), "both keys back, once");
}
