//! Order numbers: each store counts its own orders from 1, and orders placed at the
//! same moment never share a number.

use kassa_domain::ids::TenantId;
use kassa_domain::mode::Mode;
use kassa_domain::order::PaymentMethod;
use kassa_store::{Placement, Store};
use kassa_testkit::Backend;

use crate::{Fixture, new_order, place_new, pool_product};

kassa_testkit::on_both_backends!(each_store_numbers_its_orders_from_one_without_a_number_twice);

/// A product of `tenant`'s, sold for 10 USD.
async fn product(store: &Store, tenant: &TenantId) -> kassa_domain::ids::ProductId {
    let pool = store
        .create_license_pool(tenant, Mode::Test, "Keys", None)
        .await
        .expect("a pool");
    pool_product(store, tenant, &pool.id).await
}

/// Places an order of one `product` in `tenant`; its number.
pub(crate) async fn place(
    store: &Store,
    tenant: &TenantId,
    product: &kassa_domain::ids::ProductId,
) -> i64 {
    let mut work = store.work(tenant).await.expect("work");
    let placed = place_new(
        &mut work,
        &new_order(product, 1, PaymentMethod::BankTransfer),
    )
    .await;
    work.commit().await.expect("commit");
    let Placement::New(id) = placed else {
        panic!("a new order")
    };
    store
        .order(tenant, id.as_str())
        .await
        .expect("the order reads back")
        .number
}

async fn each_store_numbers_its_orders_from_one_without_a_number_twice(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let (acme, globex) = (acme.tenant.id, globex.tenant.id);
    let (acme_pro, globex_pro) = (
        product(&fx.store, &acme).await,
        product(&fx.store, &globex).await,
    );
    let mut placing = tokio::task::JoinSet::new();
    for n in 0..24 {
        let (tenant, product) = if n % 2 == 0 {
            (acme.clone(), acme_pro.clone())
        } else {
            (globex.clone(), globex_pro.clone())
        };
        let store = fx.store.clone();
        placing.spawn(async move {
            let number = place(&store, &tenant, &product).await;
            (tenant, number)
        });
    }
    let placed = placing.join_all().await;
    for tenant in [&acme, &globex] {
        let mut numbers: Vec<i64> = placed
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, n)| *n)
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=12).collect::<Vec<_>>(), "{tenant}'s numbers");
    }
    // A store made later starts from 1 too.
    let (initech, _) = fx.tenant("initech").await;
    let initech_pro = product(&fx.store, &initech.tenant.id).await;
    assert_eq!(place(&fx.store, &initech.tenant.id, &initech_pro).await, 1);
}
