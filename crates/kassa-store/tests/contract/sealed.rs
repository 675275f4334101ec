//! Secrets sealed at rest under the operator's key: the rows hold none in clear, each
//! opens only where it was written (its store, its column, its endpoint or plugin), a
//! store with another key refuses the database, and a rotation reseals everything so
//! the old key can go.

use std::collections::BTreeMap;

use kassa_domain::ids::TenantId;
use kassa_domain::mode::Mode;
use kassa_domain::tenant::StripeAccount;
use kassa_store::{
    Keyring, PluginChanges, Store, StoreError, StoreSecret, Timestamp, WebhookEndpointFields,
};
use kassa_testkit::Backend;

use crate::{Arg, Fixture, Raw};

kassa_testkit::on_both_backends!(
    stored_secrets_are_sealed_and_open_only_where_they_were_written,
    another_key_is_refused_and_a_rotation_reseals_everything,
    an_endpoint_whose_secret_does_not_open_holds_back_only_its_own_deliveries,
);

const STRIPE_KEY: &str = "sk_test_acme-stripe-secret-key";
const STRIPE_WHSEC: &str = "whsec_acme-stripe-signing-secret";
const PLUGIN_TOKEN: &str = "acme-plugin-token-value";

fn account() -> StripeAccount {
    StripeAccount {
        secret_key: STRIPE_KEY.into(),
        publishable_key: Some("pk_test_acme".into()),
        webhook_secret: STRIPE_WHSEC.into(),
    }
}

fn endpoint_fields() -> WebhookEndpointFields {
    WebhookEndpointFields {
        url: "https://hooks.acme.test/kassa".into(),
        description: None,
        event_types: vec![],
        disabled: false,
    }
}

/// A store on `fx`'s database sealing with `current` and opening with `previous` too,
/// or why it refused.
async fn store_with(fx: &Fixture, current: &str, previous: &[&str]) -> Result<Store, StoreError> {
    let store = Store::connect(&fx.db.url, 2).await.expect("connecting");
    store
        .use_secrets_key(Keyring::new(current, previous).expect("a key"))
        .await?;
    Ok(store)
}

/// Every secret kind written for `tenant`: Stripe, the two store secrets (rotated,
/// so each has a previous one), a webhook endpoint (rotated) and a plugin's secret.
async fn write_every_secret(store: &Store, tenant: &TenantId) -> kassa_domain::ids::PluginId {
    store
        .set_stripe_account(tenant, Mode::Test, Some(&account()))
        .await
        .unwrap();
    let until = Timestamp::from(Timestamp::now().millis() + 3_600_000);
    for which in [StoreSecret::Link, StoreSecret::Service] {
        store
            .rotate_store_secret(tenant, which, &format!("{which:?}-rotated").into(), until)
            .await
            .unwrap();
    }
    let endpoint = store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &endpoint_fields(),
            &"whsec_endpoint-first".into(),
        )
        .await
        .unwrap();
    store
        .rotate_webhook_secret(
            tenant,
            Mode::Live,
            &endpoint.id,
            &"whsec_endpoint-second".into(),
        )
        .await
        .unwrap();
    let plugin = store
        .create_plugin(tenant, "keys", b"\0asm".to_vec(), "00")
        .await
        .unwrap();
    store
        .update_plugin(
            tenant,
            &plugin.id,
            &PluginChanges {
                secrets: Some(BTreeMap::from([(
                    "token".into(),
                    Some(PLUGIN_TOKEN.into()),
                )])),
                ..PluginChanges::default()
            },
        )
        .await
        .unwrap();
    plugin.id
}

/// The store reads back every secret `write_every_secret` wrote.
async fn assert_every_secret_opens(
    store: &Store,
    tenant: &TenantId,
    plugin: &kassa_domain::ids::PluginId,
) {
    let stripe = store
        .stripe_account(tenant, Mode::Test)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stripe.secret_key.expose_secret(), STRIPE_KEY);
    assert_eq!(stripe.webhook_secret.expose_secret(), STRIPE_WHSEC);
    let link = store.link_secrets(tenant).await.unwrap();
    assert_eq!(link.current.expose_secret(), "Link-rotated");
    assert!(
        link.previous.is_some(),
        "the replaced link secret still counts"
    );
    let service = store.service_secrets(tenant).await.unwrap();
    assert_eq!(service.current.expose_secret(), "Service-rotated");
    let endpoints = store
        .list_webhook_endpoints(tenant, Mode::Live, &crate::first_page(10))
        .await
        .unwrap();
    assert_eq!(endpoints.data.len(), 1);
    assert_eq!(
        endpoints.data[0].secret.expose_secret(),
        "whsec_endpoint-second"
    );
    assert_eq!(
        endpoints.data[0]
            .previous_secret
            .as_ref()
            .map(|s| s.expose_secret()),
        Some("whsec_endpoint-first")
    );
    let runnable = store.runnable_plugin(tenant, plugin).await.unwrap();
    assert_eq!(runnable.secrets["token"].expose_secret(), PLUGIN_TOKEN);
}

/// How many secret values in the database are not sealed under `key_id` (clear ones
/// included).
async fn not_sealed_under(raw: &Raw, key_id: &str) -> i64 {
    let sealed = format!("sealed:v1:{key_id}:%");
    let mut n = 0;
    for (table, column) in [
        ("tenants", "link_secret"),
        ("tenants", "previous_link_secret"),
        ("tenants", "service_secret"),
        ("tenants", "previous_service_secret"),
        ("tenants", "stripe_test_secret_key"),
        ("tenants", "stripe_test_webhook_secret"),
        ("tenants", "stripe_live_secret_key"),
        ("tenants", "stripe_live_webhook_secret"),
        ("webhook_endpoints", "secret"),
        ("webhook_endpoints", "previous_secret"),
    ] {
        n += raw
            .count(
                &format!(
                    "SELECT COUNT(*) FROM {table} WHERE {column} <> '' AND {column} NOT LIKE $1"
                ),
                &[Arg::Text(&sealed)],
            )
            .await;
    }
    n + raw
        .count(
            "SELECT COUNT(*) FROM plugins WHERE CAST(secrets AS TEXT) <> '{}'
             AND CAST(secrets AS TEXT) NOT LIKE $1",
            &[Arg::Text(&format!("%\"{}%", &sealed[..sealed.len() - 1]))],
        )
        .await
}

async fn stored_secrets_are_sealed_and_open_only_where_they_were_written(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let (acme, globex) = (&acme.tenant.id, &globex.tenant.id);
    let plugin = write_every_secret(&fx.store, acme).await;
    assert_every_secret_opens(&fx.store, acme, &plugin).await;

    let raw = fx.raw().await;
    let key_id = fx
        .store
        .secrets_key_id()
        .await
        .unwrap()
        .expect("the key is recorded");
    assert_eq!(not_sealed_under(&raw, &key_id).await, 0);
    for clear in [
        STRIPE_KEY,
        STRIPE_WHSEC,
        PLUGIN_TOKEN,
        "Link-rotated",
        "whsec_endpoint-first",
    ] {
        let found = raw
            .count(
                "SELECT (SELECT COUNT(*) FROM tenants WHERE link_secret
                   || COALESCE(previous_link_secret, '') || service_secret
                   || COALESCE(previous_service_secret, '') || COALESCE(stripe_test_secret_key, '')
                   || COALESCE(stripe_test_webhook_secret, '') LIKE $1)
                 + (SELECT COUNT(*) FROM webhook_endpoints
                    WHERE secret || COALESCE(previous_secret, '') LIKE $1)
                 + (SELECT COUNT(*) FROM plugins WHERE CAST(secrets AS TEXT) LIKE $1)",
                &[Arg::Text(&format!("%{clear}%"))],
            )
            .await;
        assert_eq!(found, 0, "{clear} is stored in clear");
    }

    // Copied into another column of its store, or into another store's row, a sealed
    // value does not open.
    raw.execute(
        "UPDATE tenants SET stripe_live_secret_key = stripe_test_secret_key,
         stripe_live_webhook_secret = stripe_test_webhook_secret WHERE id = $1",
        &[Arg::Text(acme.as_str())],
    )
    .await;
    assert!(matches!(
        fx.store.stripe_account(acme, Mode::Live).await,
        Err(StoreError::Corrupt(_))
    ));
    raw.execute(
        "UPDATE tenants SET stripe_test_secret_key = (SELECT stripe_test_secret_key FROM tenants WHERE id = $1),
         stripe_test_webhook_secret = (SELECT stripe_test_webhook_secret FROM tenants WHERE id = $1),
         link_secret = (SELECT link_secret FROM tenants WHERE id = $1)
         WHERE id = $2",
        &[Arg::Text(acme.as_str()), Arg::Text(globex.as_str())],
    )
    .await;
    let refused = fx.store.stripe_account(globex, Mode::Test).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    assert!(!format!("{refused:?}").contains(STRIPE_KEY));
    assert!(fx.store.link_secrets(globex).await.is_err());
    // Its own store still opens it.
    assert_every_secret_opens(&fx.store, acme, &plugin).await;
    raw.close().await;
}

async fn another_key_is_refused_and_a_rotation_reseals_everything(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let acme = &acme.tenant.id;
    let plugin = write_every_secret(&fx.store, acme).await;
    let old = fx.key.expose_secret();
    let new = Keyring::generate_key();
    let new = new.expose_secret();

    // A node with another key refuses the database, saying what to do.
    let Err(StoreError::SecretsKey(why)) = store_with(&fx, new, &[]).await else {
        panic!("a node with another key is refused");
    };
    assert!(why.contains("KASSA_SECRETS_KEY"), "{why}");
    assert!(why.contains("kassa secrets reseal"), "{why}");
    assert!(!why.contains(new) && !why.contains(old), "{why}");

    // The new key with the old one as previous: everything opens, and reseals.
    let rotating = store_with(&fx, new, &[old])
        .await
        .expect("the old key is known");
    assert_every_secret_opens(&rotating, acme, &plugin).await;
    let resealed = rotating.reseal_secrets().await.unwrap();
    assert_eq!(resealed, 9, "8 text values and one plugin's secrets");
    let raw = fx.raw().await;
    let new_id = Keyring::new(new, &[]).unwrap().key_id().to_owned();
    assert_eq!(not_sealed_under(&raw, &new_id).await, 0);
    assert_eq!(rotating.secrets_key_id().await.unwrap(), Some(new_id));
    assert_eq!(
        rotating.reseal_secrets().await.unwrap(),
        0,
        "nothing is left"
    );

    // The old key alone no longer fits; the new key alone opens everything.
    assert!(matches!(
        store_with(&fx, old, &[]).await,
        Err(StoreError::SecretsKey(_))
    ));
    let renewed = store_with(&fx, new, &[]).await.expect("the new key fits");
    assert_every_secret_opens(&renewed, acme, &plugin).await;
    raw.close().await;
}

async fn an_endpoint_whose_secret_does_not_open_holds_back_only_its_own_deliveries(
    backend: Backend,
) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let good = fx
        .store
        .create_webhook_endpoint(tenant, Mode::Live, &endpoint_fields(), &"whsec_good".into())
        .await
        .unwrap();
    let broken = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &endpoint_fields(),
            &"whsec_broken".into(),
        )
        .await
        .unwrap();
    crate::deliveries::event(&fx, backend, tenant, "evt_1").await;
    for endpoint in [&good, &broken] {
        fx.store
            .redeliver(tenant, Mode::Live, &endpoint.id, "evt_1")
            .await
            .unwrap();
    }
    // The good endpoint's sealed secret, copied into the other's row, does not open there.
    let raw = fx.raw().await;
    raw.execute(
        "UPDATE webhook_endpoints SET secret = (SELECT secret FROM webhook_endpoints WHERE id = $1)
         WHERE id = $2",
        &[Arg::Text(good.id.as_str()), Arg::Text(broken.id.as_str())],
    )
    .await;
    raw.close().await;
    let claimed = fx
        .store
        .claim_webhook_deliveries("clm_1", 10, std::time::Duration::from_secs(60), &[])
        .await
        .expect("the batch is claimed despite the broken endpoint");
    assert_eq!(
        claimed.len(),
        1,
        "only the good endpoint's delivery goes out"
    );
    assert_eq!(claimed[0].endpoint_id, good.id);
    assert_eq!(claimed[0].secrets[0].expose_secret(), "whsec_good");
}
