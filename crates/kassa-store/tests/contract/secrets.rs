//! Records that hold a secret print it as `[redacted]`, whichever way it was made:
//! generated, written and read back, or built by a caller.

use std::collections::BTreeMap;
use std::fmt::Debug;

use kassa_domain::ids::{DeliveryId, WebhookEndpointId};
use kassa_domain::mode::Mode;
use kassa_store::{DueDelivery, PluginChanges, StoreSecret, Timestamp, WebhookEndpointFields};
use kassa_testkit::Backend;

use crate::Fixture;

kassa_testkit::on_both_backends!(
    records_holding_secrets_print_them_redacted,
    a_rotated_store_secret_counts_until_its_overlap_ends,
);

/// `value`'s `{:?}` shows none of `secrets`, and says where they were.
fn assert_redacted(value: &impl Debug, secrets: &[&str]) {
    let shown = format!("{value:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} is printed in {shown}");
    }
    assert!(shown.contains("[redacted]"), "{shown}");
}

async fn records_holding_secrets_print_them_redacted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, key) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    assert_redacted(&key, &[key.secret.expose_secret()]);

    let link = fx.store.link_secret(tenant).await.expect("link secret");
    assert_redacted(&link, &[link.expose_secret()]);
    assert_eq!(link.to_string(), "[redacted]");
    let service = fx
        .store
        .service_secret(tenant)
        .await
        .expect("service secret");
    assert_redacted(&service, &[service.expose_secret()]);

    let created = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &WebhookEndpointFields {
                url: "https://hooks.acme.test/kassa".into(),
                description: None,
                event_types: vec![],
                disabled: false,
            },
            &"whsec_known-current-one".into(),
        )
        .await
        .expect("creating an endpoint");
    assert_redacted(&created, &["whsec_known-current-one"]);
    let rotated = fx
        .store
        .rotate_webhook_secret(
            tenant,
            Mode::Live,
            &created.id,
            &"whsec_known-current-two".into(),
        )
        .await
        .expect("rotating the secret");
    assert_redacted(
        &rotated,
        &["whsec_known-current-one", "whsec_known-current-two"],
    );

    let plugin = fx
        .store
        .create_plugin(tenant, "licenses", b"\0asm".to_vec(), "sha")
        .await
        .expect("creating a plugin");
    let changes = PluginChanges {
        secrets: Some(BTreeMap::from([(
            "token".to_owned(),
            Some("plugin-known-s3cret".into()),
        )])),
        ..PluginChanges::default()
    };
    assert_redacted(&changes, &["plugin-known-s3cret"]);
    fx.store
        .update_plugin(tenant, &plugin.id, &changes)
        .await
        .expect("setting a secret");
    let runnable = fx
        .store
        .runnable_plugin(tenant, &plugin.id)
        .await
        .expect("the runnable plugin");
    assert_eq!(
        runnable.secrets["token"].expose_secret(),
        "plugin-known-s3cret"
    );
    assert_redacted(&runnable, &["plugin-known-s3cret"]);

    let due = DueDelivery {
        tenant_id: tenant.clone(),
        id: DeliveryId::generate(),
        endpoint_id: WebhookEndpointId::generate(),
        mode: kassa_domain::mode::Mode::Test,
        event_id: "evt_1".into(),
        attempts: 0,
        url: "https://hooks.acme.test/kassa".into(),
        secrets: vec![
            "whsec_known-current-two".into(),
            "whsec_known-current-one".into(),
        ],
        payload: "{}".into(),
        event_created_at: Timestamp::now(),
        failing_since: None,
        request_id: None,
    };
    assert_redacted(
        &due,
        &["whsec_known-current-one", "whsec_known-current-two"],
    );
}

/// The link-signing and web-service secrets: a rotation keeps the replaced secret
/// valid until its overlap ends, the current one first; each store's own.
async fn a_rotated_store_secret_counts_until_its_overlap_ends(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let tenant = &acme.tenant.id;
    let first = fx.store.link_secret(tenant).await.expect("link secret");
    let first = first.expose_secret().to_owned();
    let hour_on = Timestamp::from(Timestamp::now().millis() + 3_600_000);
    let rotated = fx
        .store
        .rotate_store_secret(tenant, StoreSecret::Link, &"link-two".into(), hour_on)
        .await
        .expect("rotating");
    assert_eq!(rotated.valid(), ["link-two", first.as_str()]);
    assert_redacted(&rotated, &["link-two", &first]);
    let read = fx.store.link_secrets(tenant).await.expect("reading");
    assert_eq!(read.valid(), ["link-two", first.as_str()]);
    assert_eq!(read.previous.map(|(_, until)| until), Some(hour_on));

    let now = Timestamp::now();
    fx.store
        .rotate_store_secret(tenant, StoreSecret::Link, &"link-three".into(), now)
        .await
        .expect("rotating without overlap");
    let read = fx.store.link_secrets(tenant).await.expect("reading");
    assert_eq!(read.valid(), ["link-three"]);

    let service = fx.store.service_secrets(tenant).await.expect("service");
    assert_eq!(service.valid().len(), 1, "the other secret did not rotate");
    let theirs = fx
        .store
        .link_secrets(&globex.tenant.id)
        .await
        .expect("theirs");
    assert_eq!(theirs.valid().len(), 1);
    assert_ne!(theirs.valid()[0], "link-three");
}
