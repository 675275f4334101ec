//! Upgrading in place: a database made by migrations 0001–0009 (times as Unix
//! milliseconds, JSON as text, flags as 0/1) and filled the way version 0009 wrote it,
//! then migrated to today's schema, shows every order, key and event through the store
//! with the same values. On PostgreSQL the schema then uses its native types. The
//! secrets stored in clear are sealed when the store gets its secrets key.

use std::borrow::Cow;

use kassa_domain::catalog::{Delivery, KeysPer};
use kassa_domain::ids::{
    ApiKeyId, AttemptId, CheckoutLinkId, CouponId, DeliveryId, EmailId, EventId, LicenseKeyId,
    LicensePoolId, OrderId, PaymentId, ProductId, TenantId, UserId, WebhookEndpointId,
};
use kassa_domain::mode::Mode;
use kassa_store::{Store, Timestamp};
use kassa_testkit::{Backend, TestDatabase, on_both_backends};

use crate::{Arg, Raw, first_page};

on_both_backends!(a_0009_database_upgrades_in_place);

/// Times as 0009 wrote them, each distinct and with milliseconds.
const T0: i64 = 1_700_000_000_123;

fn at(offset: i64) -> Arg<'static> {
    Arg::Int(T0 + offset)
}

fn rfc3339(ms: i64) -> String {
    Timestamp::from(ms)
        .0
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn a_0009_database_upgrades_in_place(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = Store::connect(&db.url, 5).await.expect("connecting");
    let until_0009 = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            store
                .migrations()
                .migrations
                .iter()
                .filter(|m| m.version <= 9)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    assert_eq!(until_0009.migrations.len(), 9, "0001 to 0009");
    store
        .migrate_with(&until_0009)
        .await
        .expect("migrating to 0009");

    let tenant = TenantId::generate();
    let user = UserId::generate();
    let api_key = ApiKeyId::generate();
    let product = ProductId::generate();
    let (coupon, checkout_link) = (CouponId::generate(), CheckoutLinkId::generate());
    let pool = LicensePoolId::generate();
    let (key_given, key_free) = (LicenseKeyId::generate(), LicenseKeyId::generate());
    let order = OrderId::generate();
    let payment = PaymentId::generate();
    let event = EventId::generate();
    let endpoint = WebhookEndpointId::generate();
    let delivery = DeliveryId::generate();
    let attempt = AttemptId::generate();
    let email = EmailId::generate();
    let delivery_json = serde_json::to_string(&Delivery::LicensePool {
        pool_id: pool.clone(),
        keys_per: KeysPer::Unit,
    })
    .unwrap();
    let payload = serde_json::json!({
        "id": event.as_str(), "type": "order.created", "timestamp": rfc3339(T0 + 9),
        "data": {"order": {"id": order.as_str(), "custom": {"ref": "A-1"}}},
    })
    .to_string();
    let (t, o) = (Arg::Text(tenant.as_str()), Arg::Text(order.as_str()));

    let raw = Raw::connect(&db.url).await;
    let rows: Vec<(&str, Vec<Arg<'_>>)> = vec![
        (
            "INSERT INTO tenants (id, slug, name, settings, created_at, link_secret, order_seq, service_secret)
             VALUES ($1, 'acme', 'Acme', '{\"accent_color\":\"#ff0000\"}', $2, 'ls', 1, '')",
            vec![t, at(0)],
        ),
        (
            "INSERT INTO users (id, email, created_at) VALUES ($1, 'owner@acme.test', $2)",
            vec![Arg::Text(user.as_str()), at(1)],
        ),
        (
            "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
            vec![t, Arg::Text(user.as_str()), at(1)],
        ),
        (
            "INSERT INTO api_keys (tenant_id, id, name, prefix, key_hash, created_at, revoked_at)
             VALUES ($1, $2, 'Old', 'kassa_sk_old', 'hash-old', $3, $4)",
            vec![t, Arg::Text(api_key.as_str()), at(2), at(3)],
        ),
        (
            "INSERT INTO license_pools (tenant_id, id, name, low_stock_threshold, created_at)
             VALUES ($1, $2, 'Pro keys', 5, $3)",
            vec![t, Arg::Text(pool.as_str()), at(4)],
        ),
        (
            "INSERT INTO products (tenant_id, id, name, description, prices, delivery, active, created_at, updated_at)
             VALUES ($1, $2, 'Pro', NULL, '[{\"currency\":\"USD\",\"amount\":1999}]', $3, 1, $4, $5)",
            vec![t, Arg::Text(product.as_str()), Arg::Text(&delivery_json), at(5), at(6)],
        ),
        (
            "INSERT INTO coupons (tenant_id, id, code, percent_off, amount_off, currency, expires_at,
             max_redemptions, times_redeemed, product_ids, active, created_at)
             VALUES ($1, $2, 'SAVE10', 10, NULL, NULL, NULL, 100, 1, '[]', 1, $3)",
            vec![t, Arg::Text(coupon.as_str()), at(5)],
        ),
        (
            "INSERT INTO checkout_links (tenant_id, id, product_id, quantity, currency, coupon_code, created_at)
             VALUES ($1, $2, $3, 2, 'USD', 'SAVE10', $4)",
            vec![t, Arg::Text(checkout_link.as_str()), Arg::Text(product.as_str()), at(6)],
        ),
        (
            "INSERT INTO orders (tenant_id, id, number, token, status, delivery_status, currency, subtotal,
             discount, tax, total, email, name, locale, payment_method, payment_reference, coupon_code,
             custom, test_mode, return_url, created_at, updated_at, paid_at, reminded_at)
             VALUES ($1, $2, 1, 'tok-1', 'paid', 'delivered', 'USD', 1999, 0, 0, 1999, 'c@example.com',
             'Customer', 'en', 'test_card', 'KS-AAAA-BBBB', 'SAVE10', '{\"ref\":\"A-1\"}', 1, NULL, $3, $4, $5, NULL)",
            vec![t, o, at(7), at(8), at(8)],
        ),
        (
            "INSERT INTO order_lines (tenant_id, order_id, line_no, product_id, name, quantity, unit_amount,
             subtotal, discount, total, delivery_status, licenses, delivery, pool_id, delivery_attempts,
             next_delivery_at, delivery_error, delivered_at)
             VALUES ($1, $2, 1, $3, 'Pro', 1, 1999, 1999, 0, 1999, 'delivered', '[\"PRO-1111\"]', $4, $5, 1,
             NULL, NULL, $6)",
            vec![
                t,
                o,
                Arg::Text(product.as_str()),
                Arg::Text(&delivery_json),
                Arg::Text(pool.as_str()),
                at(10),
            ],
        ),
        (
            "INSERT INTO order_consents (tenant_id, order_id, kind, text_version, accepted_at, ip, user_agent)
             VALUES ($1, $2, 'terms', 'v1', $3, '192.0.2.1', 'test')",
            vec![t, o, at(7)],
        ),
        (
            "INSERT INTO payments (tenant_id, id, order_id, method, status, amount, currency, card_brand,
             card_last4, created_at) VALUES ($1, $2, $3, 'test_card', 'succeeded', 1999, 'USD', 'visa', '4242', $4)",
            vec![t, Arg::Text(payment.as_str()), o, at(8)],
        ),
        (
            "INSERT INTO license_keys (tenant_id, id, pool_id, value, status, created_at, order_id, line_no, assigned_at)
             VALUES ($1, $2, $3, 'PRO-1111', 'assigned', $4, $5, 1, $6)",
            vec![
                t,
                Arg::Text(key_given.as_str()),
                Arg::Text(pool.as_str()),
                at(4),
                o,
                at(10),
            ],
        ),
        (
            "INSERT INTO license_keys (tenant_id, id, pool_id, value, status, created_at)
             VALUES ($1, $2, $3, 'PRO-2222', 'available', $4)",
            vec![t, Arg::Text(key_free.as_str()), Arg::Text(pool.as_str()), at(4)],
        ),
        (
            "INSERT INTO events (tenant_id, id, type, order_id, payload, created_at)
             VALUES ($1, $2, 'order.created', $3, $4, $5)",
            vec![t, Arg::Text(event.as_str()), o, Arg::Text(&payload), at(9)],
        ),
        (
            "INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, secret,
             previous_secret, previous_secret_expires_at, disabled_at, created_at, failing_since)
             VALUES ($1, $2, 'https://example.com/hook', NULL, '[\"order.created\"]', 'whsec_new',
             'whsec_old', $3, NULL, $4, $5)",
            vec![t, Arg::Text(endpoint.as_str()), at(11), at(2), at(12)],
        ),
        (
            "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, status, attempts,
             next_attempt_at, last_status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'succeeded', 1, NULL, 200, $5, $6)",
            vec![
                t,
                Arg::Text(delivery.as_str()),
                Arg::Text(endpoint.as_str()),
                Arg::Text(event.as_str()),
                at(9),
                at(13),
            ],
        ),
        (
            "INSERT INTO webhook_attempts (tenant_id, id, delivery_id, endpoint_id, event_id, attempt, url,
             status_code, latency_ms, response, created_at)
             VALUES ($1, $2, $3, $4, $5, 1, 'https://example.com/hook', 200, 42, 'ok', $6)",
            vec![
                t,
                Arg::Text(attempt.as_str()),
                Arg::Text(delivery.as_str()),
                Arg::Text(endpoint.as_str()),
                Arg::Text(event.as_str()),
                at(13),
            ],
        ),
        (
            "INSERT INTO emails (tenant_id, id, kind, order_id, dedupe_key, to_address, locale, status,
             subject, text_body, html_body, attempts, next_attempt_at, last_error, sent_at, created_at)
             VALUES ($1, $2, 'licenses', $3, 'licenses:1', 'c@example.com', 'en', 'sent', 'Your keys',
             'PRO-1111', '<p>PRO-1111</p>', 1, NULL, NULL, $4, $5)",
            vec![t, Arg::Text(email.as_str()), o, at(14), at(10)],
        ),
    ];
    for (sql, args) in &rows {
        assert_eq!(raw.execute(sql, args).await, 1, "{sql}");
    }

    store.migrate().await.expect("upgrading to today's schema");
    // Secrets written in clear by versions before sealing (0009 wrote the store's link
    // secret and the endpoint's; later ones Stripe keys and plugins' secrets).
    let plugin = store
        .create_plugin(&tenant, "keys", b"\0asm".to_vec(), "00")
        .await
        .unwrap();
    raw.execute(
        "UPDATE tenants SET stripe_live_secret_key = 'sk_live_clear', stripe_live_webhook_secret = 'whsec_stripe_clear',
         stripe_live_publishable_key = 'pk_live_clear' WHERE id = $1",
        &[t],
    )
    .await;
    raw.execute(
        "UPDATE plugins SET secrets = '{\"token\": \"plugin-clear\"}' WHERE id = $1",
        &[Arg::Text(plugin.id.as_str())],
    )
    .await;
    let key = kassa_store::Keyring::generate_key();
    let sealed = store
        .use_secrets_key(kassa_store::Keyring::new(key.expose_secret(), &[]).unwrap())
        .await
        .expect("sealing what was stored in clear");
    assert_eq!(
        sealed, 8,
        "link secret, the endpoint's two and its test twin's two (0029), Stripe's two, the plugin's"
    );
    let again = Store::connect(&db.url, 1).await.unwrap();
    let twice = again
        .use_secrets_key(kassa_store::Keyring::new(key.expose_secret(), &[]).unwrap())
        .await
        .unwrap();
    assert_eq!(twice, 0, "sealing again finds nothing in clear");
    again.close().await;
    for clear in [
        "ls",
        "whsec_new",
        "whsec_old",
        "sk_live_clear",
        "whsec_stripe_clear",
    ] {
        let found = raw
            .count(
                "SELECT (SELECT COUNT(*) FROM tenants WHERE link_secret = $1
                   OR stripe_live_secret_key = $1 OR stripe_live_webhook_secret = $1)
                 + (SELECT COUNT(*) FROM webhook_endpoints WHERE secret = $1 OR previous_secret = $1)",
                &[Arg::Text(clear)],
            )
            .await;
        assert_eq!(found, 0, "{clear} is still in clear");
    }
    let plugin_rows = raw
        .count(
            "SELECT COUNT(*) FROM plugins WHERE CAST(secrets AS TEXT) LIKE '%plugin-clear%'",
            &[],
        )
        .await;
    assert_eq!(plugin_rows, 0, "the plugin's secret is still in clear");
    let link = store.link_secret(&tenant).await.unwrap();
    assert_eq!(link.expose_secret(), "ls");
    let stripe = store
        .stripe_account(&tenant, kassa_domain::mode::Mode::Live)
        .await
        .unwrap()
        .expect("Stripe is set");
    assert_eq!(stripe.secret_key.expose_secret(), "sk_live_clear");
    assert_eq!(stripe.webhook_secret.expose_secret(), "whsec_stripe_clear");
    let runnable = store.runnable_plugin(&tenant, &plugin.id).await.unwrap();
    assert_eq!(runnable.secrets["token"].expose_secret(), "plugin-clear");

    // The store reads everything back with the values 0009 wrote.
    let record = store.tenant(&tenant).await.unwrap();
    assert_eq!(record.created_at.millis(), T0);
    let settings: serde_json::Value = serde_json::from_str(&record.settings).unwrap();
    assert_eq!(settings, serde_json::json!({"accent_color": "#ff0000"}));
    let keys = store.list_api_keys(&tenant, Mode::Live).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].created_at.millis(), T0 + 2);
    assert_eq!(keys[0].revoked_at.map(|t| t.millis()), Some(T0 + 3));

    // 0033: the product, coupon and checkout link stay live and each gets a test twin
    // with the same id and fields; the coupon's uses are counted per world (the one
    // paid order was a test one).
    for mode in [Mode::Live, Mode::Test] {
        let found = store.product(&tenant, mode, &product).await.unwrap();
        assert_eq!(found.livemode, mode.is_live());
        assert!(found.fields.active);
        assert_eq!(found.fields.prices.len(), 1);
        assert_eq!(found.fields.prices[0].amount, 1999);
        assert_eq!(found.fields.delivery.method(), "license_pool");
        assert_eq!(
            (found.created_at.millis(), found.updated_at.millis()),
            (T0 + 5, T0 + 6)
        );
        let code = store.coupon_by_code(&tenant, mode, "SAVE10").await.unwrap();
        assert_eq!(
            (code.id.as_str(), code.livemode),
            (coupon.as_str(), mode.is_live())
        );
        assert_eq!(code.fields.max_redemptions, Some(100));
        assert_eq!(code.times_redeemed, i64::from(mode == Mode::Test), "{mode}");
        let found = store
            .checkout_link(&tenant, mode, &checkout_link)
            .await
            .unwrap();
        assert_eq!(found.fields.product_id, product);
        assert_eq!(found.fields.coupon_code.as_deref(), Some("SAVE10"));
        assert_eq!(found.livemode, mode.is_live());
    }
    // 0038: the test twin of this pool-delivered product is delivered from an empty
    // test pool of its own (the live pool's name), the live product from its pool.
    let twin = store.product(&tenant, Mode::Test, &product).await.unwrap();
    let Delivery::LicensePool {
        pool_id: test_pool, ..
    } = twin.fields.delivery
    else {
        panic!(
            "the twin is delivered from a pool: {:?}",
            twin.fields.delivery
        )
    };
    assert_ne!(test_pool, pool);
    let test_stock = store.license_pool(&tenant, &test_pool).await.unwrap();
    assert_eq!(
        (test_stock.livemode, test_stock.available),
        (false, 0),
        "{test_stock:?}"
    );
    let live = store.product(&tenant, Mode::Live, &product).await.unwrap();
    assert!(
        matches!(&live.fields.delivery, Delivery::LicensePool { pool_id, .. } if *pool_id == pool),
        "{:?}",
        live.fields.delivery
    );
    // A live order's line is delivered as the live product says, whatever its test
    // twin became.
    let mut twin = store.product(&tenant, Mode::Test, &product).await.unwrap();
    twin.fields.delivery = Delivery::WebService {
        url: "https://test.acme.test/keys".into(),
        keys_per: KeysPer::Unit,
    };
    store
        .update_product(&tenant, Mode::Test, &product, &twin.fields)
        .await
        .unwrap();
    let due = crate::place_and_claim_line(&store, &tenant, &product, Mode::Live).await;
    assert_eq!(
        serde_json::to_string(&due.delivery).unwrap(),
        delivery_json,
        "the live product's pool"
    );

    let got = store.order(&tenant, order.as_str()).await.unwrap();
    assert_eq!(
        (got.status.as_str(), got.delivery_status.as_str()),
        ("paid", "delivered")
    );
    assert_eq!(got.total, 1999);
    assert!(got.test_mode);
    assert_eq!(got.custom, serde_json::json!({"ref": "A-1"}));
    assert_eq!(got.created_at, rfc3339(T0 + 7));
    assert_eq!(got.updated_at, rfc3339(T0 + 8));
    assert_eq!(got.paid_at, Some(rfc3339(T0 + 8)));
    assert_eq!(got.lines.len(), 1);
    assert_eq!(got.lines[0].licenses, vec!["PRO-1111".to_owned()]);
    assert_eq!(got.lines[0].delivery_status.as_str(), "delivered");
    assert_eq!(got.payments.len(), 1);
    assert_eq!(got.payments[0].created_at, rfc3339(T0 + 8));
    assert_eq!(got.payments[0].card_last4.as_deref(), Some("4242"));
    assert_eq!(got.consents.len(), 1);
    assert_eq!(got.consents[0].accepted_at, T0 + 7);
    let by_token = store.order_by_token(&tenant, "tok-1").await.unwrap();
    assert_eq!(by_token.id, order.as_str());
    let listed = store
        .search_orders(
            &tenant,
            &kassa_store::OrderFilter {
                mode: Some(kassa_domain::mode::Mode::Test),
                ..kassa_store::OrderFilter::default()
            },
            &first_page(10),
        )
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);

    // The store's order numbers go on from its last one (and the live order above).
    assert_eq!(crate::numbers::place(&store, &tenant, &product).await, 3);

    let stock = store.license_pool(&tenant, &pool).await.unwrap();
    assert_eq!((stock.available, stock.assigned), (1, 1));
    assert_eq!(stock.created_at.millis(), T0 + 4);
    // The free key is still there; the old order, paid with the sandbox, is a test
    // order now, and takes no key of the (live) pool.
    let refused = store
        .take_keys_for_line(&tenant, order.as_str(), 1, pool.as_str(), 1)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("a test mode order takes no keys from a live mode license pool"),
        "{refused}"
    );
    let stock = store.license_pool(&tenant, &pool).await.unwrap();
    assert_eq!(stock.available, 1, "the key stays in the pool");

    let events = store.order_events(&tenant, order.as_str()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, event.as_str());
    assert_eq!(events[0].kind, "order.created");
    assert_eq!(events[0].created_at.millis(), T0 + 9);
    assert_eq!(
        events[0].payload,
        serde_json::from_str::<serde_json::Value>(&payload).unwrap()
    );
    let one = store.event(&tenant, event.as_str()).await.unwrap();
    assert_eq!(one.payload["data"]["order"]["custom"]["ref"], "A-1");

    let hook = store.webhook_endpoint(&tenant, &endpoint).await.unwrap();
    assert_eq!(hook.secret.expose_secret(), "whsec_new");
    assert_eq!(
        hook.previous_secret.as_ref().map(|s| s.expose_secret()),
        Some("whsec_old")
    );
    assert_eq!(hook.fields.event_types, vec!["order.created".to_owned()]);
    assert!(!hook.fields.disabled);
    assert_eq!(
        hook.previous_secret_expires_at.map(|t| t.millis()),
        Some(T0 + 11)
    );
    assert_eq!(hook.created_at.millis(), T0 + 2);
    // 0029: the endpoint stays live and gets a test twin (same URL, filter, secrets),
    // which takes the deliveries of test events (the order was a sandbox one).
    assert!(hook.livemode);
    let twins = store
        .list_webhook_endpoints(&tenant, kassa_domain::mode::Mode::Test, &first_page(10))
        .await
        .unwrap();
    assert_eq!(twins.data.len(), 1);
    let twin = &twins.data[0];
    assert!(!twin.livemode);
    assert_ne!(twin.id, endpoint);
    assert_eq!(
        (twin.fields.url.as_str(), &twin.fields.event_types),
        (hook.fields.url.as_str(), &hook.fields.event_types)
    );
    assert_eq!(twin.secret.expose_secret(), "whsec_new");
    assert_eq!(
        twin.previous_secret.as_ref().map(|s| s.expose_secret()),
        Some("whsec_old")
    );
    assert_eq!(twin.created_at, hook.created_at);
    assert_eq!(
        &twin.id.as_str()[..13],
        &endpoint.as_str()[..13],
        "its time part"
    );
    let left = store
        .list_deliveries(&tenant, &endpoint, &first_page(10))
        .await
        .unwrap();
    // It has the live order placed above's `order.created`, and no test event.
    assert_eq!(left.data.len(), 1, "{:?}", left.data);
    for delivery in &left.data {
        let event = store.event(&tenant, &delivery.event_id).await.unwrap();
        assert!(event.livemode, "the live endpoint keeps no test event");
    }
    let deliveries = store
        .list_deliveries(&tenant, &twin.id, &first_page(10))
        .await
        .unwrap();
    // The test order placed above went to the twin too; the delivery moved is the other.
    assert_eq!(deliveries.data.len(), 2);
    let (moved, placed): (Vec<_>, Vec<_>) = deliveries
        .data
        .iter()
        .partition(|d| d.created_at.millis() == T0 + 9);
    assert_eq!(moved.len(), 1, "{:?}", deliveries.data);
    assert_eq!(moved[0].status, "succeeded");
    assert_eq!(moved[0].attempts.len(), 1);
    assert_eq!(moved[0].attempts[0].created_at.millis(), T0 + 13);
    assert_eq!(
        (placed[0].event_type.as_str(), placed[0].status.as_str()),
        ("order.created", "pending")
    );

    let emails = store
        .list_emails(&tenant, kassa_domain::mode::Mode::Test, &first_page(10))
        .await
        .unwrap();
    // The migrated email, and the instructions of the bank transfer order placed above.
    assert_eq!(emails.data.len(), 2, "{:?}", emails.data);
    let migrated = emails
        .data
        .iter()
        .find(|e| e.created_at.millis() == T0 + 10)
        .expect("the migrated email");
    assert_eq!(migrated.status, "sent");
    assert_eq!(migrated.sent_at.map(|t| t.millis()), Some(T0 + 14));
    assert!(
        emails
            .data
            .iter()
            .any(|e| e.kind == "payment_instructions" && e.status == "queued")
    );

    if backend == Backend::Postgres {
        assert_native_types(&raw).await;
    }
    raw.close().await;
}

/// Every time is a `timestamptz`, every document `jsonb`, every flag `boolean`, and no
/// text column holds JSON.
async fn assert_native_types(raw: &Raw) {
    let Raw::Postgres(pg) = raw else {
        unreachable!("PostgreSQL only")
    };
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_%'
         ORDER BY table_name, column_name",
    )
    .fetch_all(pg)
    .await
    .unwrap();
    assert!(columns.len() > 100, "every table is listed");
    let times = ["failing_since"];
    let documents = [
        ("tenants", "settings"),
        ("products", "prices"),
        ("products", "delivery"),
        ("coupons", "product_ids"),
        ("webhook_endpoints", "event_types"),
        ("carts", "lines"),
        ("carts", "custom"),
        ("orders", "custom"),
        ("order_lines", "licenses"),
        ("order_lines", "delivery"),
        ("events", "payload"),
        ("plugins", "config"),
        ("plugins", "secrets"),
        ("plugins", "allowed_hosts"),
    ];
    let flags = [
        ("products", "active"),
        ("coupons", "active"),
        ("orders", "test_mode"),
    ];
    for (table, column, data_type) in &columns {
        if column.ends_with("_at") || times.contains(&column.as_str()) {
            assert_eq!(data_type, "timestamp with time zone", "{table}.{column}");
        }
        if documents.contains(&(table.as_str(), column.as_str())) {
            assert_eq!(data_type, "jsonb", "{table}.{column}");
        }
        if flags.contains(&(table.as_str(), column.as_str())) {
            assert_eq!(data_type, "boolean", "{table}.{column}");
        }
        if data_type == "text" {
            // An HTTP response body is kept byte for byte, whatever it holds.
            if (table.as_str(), column.as_str()) == ("idempotency_keys", "body") {
                continue;
            }
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} ~ '^\\s*[\\[{{]'");
            let json_like: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pg)
                .await
                .unwrap();
            assert_eq!(json_like, 0, "{table}.{column} holds JSON as text");
        }
    }
    for (table, column) in documents.iter().chain(flags.iter()) {
        assert!(
            columns.iter().any(|(t, c, _)| t == table && c == column),
            "{table}.{column} exists"
        );
    }
}
