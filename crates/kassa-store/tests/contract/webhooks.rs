//! Webhook endpoints and their signing secrets.

use kassa_domain::Secret;
use kassa_domain::ids::WebhookEndpointId;
use kassa_domain::mode::Mode;
use kassa_store::{SECRET_OVERLAP_MILLIS, Timestamp, WebhookEndpointFields};
use kassa_testkit::Backend;

use crate::{Fixture, assert_not_found, first_page};

kassa_testkit::on_both_backends!(
    endpoints_are_created_updated_and_deleted,
    rotating_a_secret_keeps_the_old_one_for_a_day,
    endpoints_of_another_tenant_are_not_found,
    endpoints_of_the_other_mode_are_not_found,
);

fn endpoint(url: &str) -> WebhookEndpointFields {
    WebhookEndpointFields {
        url: url.to_owned(),
        description: Some("Fulfilment".into()),
        event_types: vec!["order.completed".into(), "order.refunded".into()],
        disabled: false,
    }
}

async fn endpoints_are_created_updated_and_deleted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;

    let created = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &endpoint("https://hooks.acme.test/kassa"),
            &"whsec_one".into(),
        )
        .await
        .expect("creating an endpoint");
    let read = fx
        .store
        .webhook_endpoint(tenant, &created.id)
        .await
        .expect("reading the endpoint");
    assert_eq!(read.fields.url, "https://hooks.acme.test/kassa");
    assert_eq!(read.fields.description.as_deref(), Some("Fulfilment"));
    assert_eq!(
        read.fields.event_types,
        ["order.completed", "order.refunded"]
    );
    assert!(!read.fields.disabled);
    assert_eq!(read.secret.expose_secret(), "whsec_one");
    assert!(read.previous_secret.is_none());
    assert_eq!(read.previous_secret_expires_at, None);

    let disabled = WebhookEndpointFields {
        url: "https://hooks.acme.test/v2".into(),
        description: None,
        event_types: Vec::new(),
        disabled: true,
    };
    let updated = fx
        .store
        .update_webhook_endpoint(tenant, Mode::Live, &created.id, &disabled)
        .await
        .expect("disabling the endpoint");
    assert!(updated.fields.disabled);
    assert_eq!(updated.fields.url, "https://hooks.acme.test/v2");
    assert_eq!(updated.fields.description, None);
    assert!(updated.fields.event_types.is_empty());
    assert_eq!(
        updated.secret.expose_secret(),
        "whsec_one",
        "an update keeps the secret"
    );

    // Saving a disabled endpoint again leaves it disabled.
    let still = fx
        .store
        .update_webhook_endpoint(tenant, Mode::Live, &created.id, &disabled)
        .await
        .expect("saving it disabled again");
    assert!(still.fields.disabled);

    let enabled = WebhookEndpointFields {
        disabled: false,
        ..disabled
    };
    let updated = fx
        .store
        .update_webhook_endpoint(tenant, Mode::Live, &created.id, &enabled)
        .await
        .expect("re-enabling the endpoint");
    assert!(!updated.fields.disabled);
    assert!(
        !fx.store
            .webhook_endpoint(tenant, &created.id)
            .await
            .expect("reading it back")
            .fields
            .disabled
    );

    let born_disabled = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &WebhookEndpointFields {
                disabled: true,
                ..endpoint("https://hooks.acme.test/later")
            },
            &"whsec_two".into(),
        )
        .await
        .expect("creating a disabled endpoint");
    assert!(born_disabled.fields.disabled);
    let listed: Vec<WebhookEndpointId> = fx
        .store
        .list_webhook_endpoints(tenant, Mode::Live, &first_page(50))
        .await
        .expect("listing endpoints")
        .data
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&created.id) && listed.contains(&born_disabled.id));

    fx.store
        .delete_webhook_endpoint(tenant, Mode::Live, &created.id)
        .await
        .expect("deleting the endpoint");
    assert_not_found(fx.store.webhook_endpoint(tenant, &created.id).await);
    assert_not_found(
        fx.store
            .delete_webhook_endpoint(tenant, Mode::Live, &created.id)
            .await,
    );
    assert_not_found(
        fx.store
            .update_webhook_endpoint(tenant, Mode::Live, &created.id, &enabled)
            .await,
    );
    assert_not_found(
        fx.store
            .rotate_webhook_secret(tenant, Mode::Live, &created.id, &"whsec_x".into())
            .await,
    );
    let listed: Vec<WebhookEndpointId> = fx
        .store
        .list_webhook_endpoints(tenant, Mode::Live, &first_page(50))
        .await
        .expect("listing endpoints")
        .data
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, [born_disabled.id]);
}

async fn rotating_a_secret_keeps_the_old_one_for_a_day(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let created = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &endpoint("https://hooks.acme.test/kassa"),
            &"whsec_one".into(),
        )
        .await
        .expect("creating an endpoint");

    let before = Timestamp::now().millis();
    let rotated = fx
        .store
        .rotate_webhook_secret(tenant, Mode::Live, &created.id, &"whsec_two".into())
        .await
        .expect("rotating the secret");
    let after = Timestamp::now().millis();
    assert_eq!(rotated.secret.expose_secret(), "whsec_two");
    assert_eq!(
        rotated.previous_secret.as_ref().map(Secret::expose_secret),
        Some("whsec_one")
    );
    let expires = rotated
        .previous_secret_expires_at
        .expect("the old secret has an expiry")
        .millis();
    assert_eq!(SECRET_OVERLAP_MILLIS, 24 * 60 * 60 * 1000);
    assert!(
        (before + SECRET_OVERLAP_MILLIS..=after + SECRET_OVERLAP_MILLIS).contains(&expires),
        "expiry {expires} is not a day after the rotation ({before}..={after})"
    );

    let read = fx
        .store
        .webhook_endpoint(tenant, &created.id)
        .await
        .expect("reading the endpoint");
    assert_eq!(read.secret.expose_secret(), "whsec_two");
    assert_eq!(
        read.previous_secret.as_ref().map(Secret::expose_secret),
        Some("whsec_one")
    );
    assert_eq!(
        read.previous_secret_expires_at.map(|t| t.millis()),
        Some(expires)
    );

    let again = fx
        .store
        .rotate_webhook_secret(tenant, Mode::Live, &created.id, &"whsec_three".into())
        .await
        .expect("rotating again");
    assert_eq!(again.secret.expose_secret(), "whsec_three");
    assert_eq!(
        again.previous_secret.as_ref().map(Secret::expose_secret),
        Some("whsec_two")
    );
}

async fn endpoints_of_another_tenant_are_not_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let (globex, _) = fx.tenant("globex").await;
    let created = fx
        .store
        .create_webhook_endpoint(
            &acme.tenant.id,
            Mode::Live,
            &endpoint("https://hooks.acme.test/kassa"),
            &"whsec_one".into(),
        )
        .await
        .expect("creating an endpoint");

    let intruder = &globex.tenant.id;
    let hijack = endpoint("https://evil.test/steal");
    assert_not_found(fx.store.webhook_endpoint(intruder, &created.id).await);
    assert_not_found(
        fx.store
            .update_webhook_endpoint(intruder, Mode::Live, &created.id, &hijack)
            .await,
    );
    assert_not_found(
        fx.store
            .rotate_webhook_secret(intruder, Mode::Live, &created.id, &"whsec_evil".into())
            .await,
    );
    assert_not_found(
        fx.store
            .delete_webhook_endpoint(intruder, Mode::Live, &created.id)
            .await,
    );
    assert!(
        fx.store
            .list_webhook_endpoints(intruder, Mode::Live, &first_page(50))
            .await
            .expect("listing globex's endpoints")
            .data
            .is_empty()
    );

    let untouched = fx
        .store
        .webhook_endpoint(&acme.tenant.id, &created.id)
        .await
        .expect("acme's endpoint survives");
    assert_eq!(untouched.fields.url, "https://hooks.acme.test/kassa");
    assert_eq!(untouched.secret.expose_secret(), "whsec_one");
    assert!(untouched.previous_secret.is_none());
}

/// An endpoint belongs to the mode it was made in: the other mode's keys and pages
/// neither see nor change it.
async fn endpoints_of_the_other_mode_are_not_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let live = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Live,
            &endpoint("https://hooks.acme.test/live"),
            &"whsec_live".into(),
        )
        .await
        .expect("creating a live endpoint");
    assert!(live.livemode);
    let test = fx
        .store
        .create_webhook_endpoint(
            tenant,
            Mode::Test,
            &endpoint("https://hooks.acme.test/test"),
            &"whsec_test".into(),
        )
        .await
        .expect("creating a test endpoint");
    assert!(!test.livemode);

    let hijack = endpoint("https://evil.test/steal");
    assert_not_found(
        fx.store
            .webhook_endpoint_in(tenant, Mode::Test, &live.id)
            .await,
    );
    assert_not_found(
        fx.store
            .update_webhook_endpoint(tenant, Mode::Test, &live.id, &hijack)
            .await,
    );
    assert_not_found(
        fx.store
            .rotate_webhook_secret(tenant, Mode::Test, &live.id, &"whsec_evil".into())
            .await,
    );
    assert_not_found(
        fx.store
            .delete_webhook_endpoint(tenant, Mode::Test, &live.id)
            .await,
    );
    for (mode, only) in [(Mode::Test, test.id), (Mode::Live, live.id.clone())] {
        let listed: Vec<WebhookEndpointId> = fx
            .store
            .list_webhook_endpoints(tenant, mode, &first_page(50))
            .await
            .expect("listing endpoints")
            .data
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(listed, [only], "{mode}");
    }
    let untouched = fx
        .store
        .webhook_endpoint_in(tenant, Mode::Live, &live.id)
        .await
        .expect("the live endpoint survives");
    assert_eq!(untouched.fields.url, "https://hooks.acme.test/live");
    assert_eq!(untouched.secret.expose_secret(), "whsec_live");
}
