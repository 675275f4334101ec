//! Tenants, their owners and API keys.

use kassa_domain::access::KeyScope;
use kassa_domain::ids::ApiKeyId;
use kassa_domain::mode::Mode;
use kassa_domain::tenant::{NewApiKey, hash_api_key};
use kassa_testkit::Backend;

use crate::{Fixture, assert_conflict, assert_not_found, email, parse_slug};

kassa_testkit::on_both_backends!(
    create_tenant_returns_the_tenant_and_a_working_key,
    a_taken_slug_is_a_conflict_and_stores_nothing,
    one_owner_email_is_one_user_across_tenants,
    a_revoked_key_stops_working,
    a_tenant_cannot_revoke_another_tenants_key,
);

async fn create_tenant_returns_the_tenant_and_a_working_key(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = NewApiKey::generate(kassa_domain::mode::Mode::Live);
    let created = fx
        .store
        .create_tenant(
            &parse_slug("acme"),
            "Acme Ltd",
            &email("owner@acme.test"),
            &key,
            &NewApiKey::generate(kassa_domain::mode::Mode::Test),
        )
        .await
        .expect("creating a tenant");
    assert_eq!(created.tenant.slug, "acme");
    assert_eq!(created.tenant.name, "Acme Ltd");
    assert_eq!(created.tenant.settings, "{}");

    let by_id = fx.store.tenant(&created.tenant.id).await.expect("by id");
    assert_eq!(by_id.slug, "acme");
    assert_eq!(by_id.name, "Acme Ltd");
    assert_eq!(by_id.created_at, created.tenant.created_at);

    let by_slug = fx.store.tenant_by_slug("acme").await.expect("by slug");
    assert_eq!(by_slug.id, created.tenant.id);
    assert_not_found(fx.store.tenant_by_slug("acme-2").await);

    let (tenant, first) = fx
        .store
        .authenticate_api_key(&hash_api_key(key.secret.expose_secret()))
        .await
        .expect("the first key authenticates");
    assert_eq!(tenant.id, created.tenant.id);
    assert_eq!(first.id, created.api_key_id);
    assert_eq!(
        first.scope,
        KeyScope::Full,
        "a store's first key can do everything"
    );
    assert_not_found(
        fx.store
            .authenticate_api_key(&hash_api_key("kassa_sk_not-a-key"))
            .await,
    );

    // A live key and a test key, each listed in its own mode.
    let list = |mode| fx.store.list_api_keys(&created.tenant.id, mode);
    let live = list(Mode::Live).await.expect("listing live keys");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, created.api_key_id);
    assert_eq!(live[0].prefix, key.prefix);
    assert!(live[0].livemode && key.prefix.starts_with("kassa_sk_live_"));
    let test = list(Mode::Test).await.expect("listing test keys");
    assert_eq!(test.len(), 1);
    assert_eq!(test[0].id, created.test_api_key_id);
    assert!(!test[0].livemode && test[0].prefix.starts_with("kassa_sk_test_"));
    assert!(live.iter().chain(&test).all(|k| k.revoked_at.is_none()));
}

async fn a_taken_slug_is_a_conflict_and_stores_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (first, _) = fx.tenant("acme").await;

    let second_key = NewApiKey::generate(Mode::Live);
    assert_conflict(
        fx.store
            .create_tenant(
                &parse_slug("acme"),
                "Another Acme",
                &email("someone-else@acme.test"),
                &second_key,
                &NewApiKey::generate(kassa_domain::mode::Mode::Test),
            )
            .await,
    );

    let stored = fx.store.tenant_by_slug("acme").await.expect("by slug");
    assert_eq!(stored.id, first.tenant.id);
    assert_eq!(stored.name, "acme Ltd");
    assert_not_found(fx.store.authenticate_api_key(&second_key.hash).await);
    assert_eq!(
        fx.count(
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "someone-else@acme.test"
        )
        .await,
        0,
        "the failed call's owner was stored"
    );
    assert_eq!(
        fx.count(
            "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1",
            "someone-else@acme.test"
        )
        .await,
        0,
        "the failed call's owner got a membership"
    );
    assert_eq!(
        fx.count("SELECT COUNT(*) FROM tenants WHERE slug = $1", "acme")
            .await,
        1
    );
    assert_eq!(
        fx.count(
            "SELECT COUNT(*) FROM api_keys WHERE key_hash = $1",
            &second_key.hash
        )
        .await,
        0
    );
}

async fn one_owner_email_is_one_user_across_tenants(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = email("founder@example.test");
    let mut created = Vec::new();
    for slug in ["first-shop", "second-shop"] {
        created.push(
            fx.store
                .create_tenant(
                    &parse_slug(slug),
                    slug,
                    &owner,
                    &NewApiKey::generate(kassa_domain::mode::Mode::Live),
                    &NewApiKey::generate(kassa_domain::mode::Mode::Test),
                )
                .await
                .expect("creating a tenant"),
        );
    }
    assert_ne!(created[0].tenant.id, created[1].tenant.id);
    assert_eq!(created[0].owner_id, created[1].owner_id);

    let (other, _) = fx.tenant("third-shop").await;
    assert_ne!(other.owner_id, created[0].owner_id);

    assert_eq!(
        fx.count(
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "founder@example.test"
        )
        .await,
        1
    );
    assert_eq!(
        fx.count(
            "SELECT COUNT(*) FROM memberships WHERE user_id = $1 AND role = 'owner'",
            created[0].owner_id.as_str()
        )
        .await,
        2
    );
}

async fn a_revoked_key_stops_working(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, first_key) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let second_key = NewApiKey::generate(Mode::Live);
    let second = fx
        .store
        .create_api_key(tenant, "CI", &second_key, KeyScope::ReadOnly)
        .await
        .expect("creating a second key");
    assert_eq!(second.prefix, second_key.prefix);
    assert_eq!(second.scope, KeyScope::ReadOnly);

    let (found, found_key) = fx
        .store
        .authenticate_api_key(&hash_api_key(second_key.secret.expose_secret()))
        .await
        .expect("the second key authenticates");
    assert_eq!(found.id, *tenant);
    assert_eq!(
        (found_key.id, found_key.scope),
        (second.id.clone(), KeyScope::ReadOnly)
    );

    assert_not_found(
        fx.store
            .revoke_api_key(tenant, Mode::Test, &acme.api_key_id)
            .await,
    );
    fx.store
        .authenticate_api_key(&first_key.hash)
        .await
        .expect("the other mode cannot revoke a key");
    fx.store
        .revoke_api_key(tenant, Mode::Live, &acme.api_key_id)
        .await
        .expect("revoking the first key");
    assert_not_found(
        fx.store
            .authenticate_api_key(&hash_api_key(first_key.secret.expose_secret()))
            .await,
    );
    fx.store
        .revoke_api_key(tenant, Mode::Live, &acme.api_key_id)
        .await
        .expect("revoking twice is fine");
    assert_not_found(fx.store.authenticate_api_key(&first_key.hash).await);

    // The other key is untouched.
    let (_, still) = fx
        .store
        .authenticate_api_key(&second_key.hash)
        .await
        .expect("the second key still works");
    assert_eq!(still.id, second.id);

    let keys = fx
        .store
        .list_api_keys(tenant, Mode::Live)
        .await
        .expect("listing keys");
    assert_eq!(keys.len(), 2, "the first live key, and the second");
    for key in &keys {
        assert_eq!(
            key.revoked_at.is_some(),
            key.id == acme.api_key_id,
            "{key:?}"
        );
    }

    assert_not_found(
        fx.store
            .revoke_api_key(tenant, Mode::Live, &ApiKeyId::generate())
            .await,
    );
}

async fn a_tenant_cannot_revoke_another_tenants_key(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, acme_key) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;

    assert_not_found(
        fx.store
            .revoke_api_key(&globex.tenant.id, Mode::Live, &acme.api_key_id)
            .await,
    );
    let (tenant, _) = fx
        .store
        .authenticate_api_key(&acme_key.hash)
        .await
        .expect("acme's key still works");
    assert_eq!(tenant.id, acme.tenant.id);

    let globex_keys = fx
        .store
        .list_api_keys(&globex.tenant.id, Mode::Live)
        .await
        .expect("listing keys");
    assert_eq!(globex_keys.len(), 1);
    assert!(globex_keys.iter().any(|k| k.id == globex.api_key_id));
}
