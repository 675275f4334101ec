//! `kassa serve --demo`: a demo store with a product, keys and a coupon, so a first
//! start shows a working buy link. Seeding twice changes nothing.

use kassa_domain::Secret;
use kassa_domain::catalog::{Delivery, KeysPer};
use kassa_domain::mode::Mode;
use kassa_domain::tenant::{BankDetails, EmailAddress, NewApiKey, TenantSettings, TenantSlug};
use kassa_store::{CouponFields, PageRequest, Price, ProductFields, Store, StoreError};

pub const DEMO_SLUG: &str = "demo";

/// What a first look needs: where to buy, and the store's API keys (only when just
/// created).
pub struct Demo {
    pub buy_url: String,
    pub api_keys: Option<DemoKeys>,
}

/// The demo sells in test mode, so its test key sees the demo's product, pool, coupon
/// and orders (a live key sees none of them); what both modes share (the settings,
/// plugins) is changed with the live key.
pub struct DemoKeys {
    pub test: Secret,
    pub live: Secret,
}

pub async fn seed(store: &Store, public_url: &str) -> anyhow::Result<Demo> {
    let slug = TenantSlug::parse(DEMO_SLUG).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let existing = match store.tenant_by_slug(DEMO_SLUG).await {
        Ok(t) => Some(t),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let (tenant, api_keys) = match existing {
        Some(t) => (t, None),
        None => {
            let test = NewApiKey::generate(Mode::Test);
            let live = NewApiKey::generate(Mode::Live);
            let owner = EmailAddress::parse("owner_email", "owner@demo.kassa.test")
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let created = store
                .create_tenant(&slug, "Kassa Demo Store", &owner, &live, &test)
                .await?;
            let keys = DemoKeys {
                test: test.secret,
                live: live.secret,
            };
            (created.tenant, Some(keys))
        }
    };
    let products = store
        .list_products(
            &tenant.id,
            Mode::Test,
            &PageRequest {
                after: None,
                limit: 1,
            },
        )
        .await?;
    let product = match products.data.into_iter().next() {
        Some(p) => p,
        None => {
            store
                .update_tenant_settings(
                    &tenant.id,
                    &TenantSettings {
                        accent_color: Some("#0f766e".into()),
                        support_email: Some("support@demo.kassa.test".into()),
                        bank: Some(BankDetails {
                            account_holder: "Kassa Demo Store Ltd".into(),
                            bank_name: "Demo Bank".into(),
                            iban: "DE89370400440532013000".into(),
                            bic: "COBADEFFXXX".into(),
                        }),
                        ..TenantSettings::default()
                    },
                )
                .await?;
            let pool = store
                .create_license_pool(&tenant.id, Mode::Test, "Demo Pro keys", Some(5))
                .await?;
            let keys: Vec<String> = (1..=50)
                .map(|n| format!("DEMO-PRO-{n:04}-{:04X}", n * 7919 % 65536))
                .collect();
            kassa_orders::add_keys(store, &tenant.id, &pool.id, &keys).await?;
            let product = store
                .create_product(
                    &tenant.id,
                    Mode::Test,
                    &ProductFields {
                        name: "Kassa Demo Pro".into(),
                        description: Some("A one-year license for the demo app.".into()),
                        prices: vec![
                            Price {
                                currency: "USD".into(),
                                amount: 1999,
                            },
                            Price {
                                currency: "EUR".into(),
                                amount: 1799,
                            },
                            Price {
                                currency: "RUB".into(),
                                amount: 149_900,
                            },
                        ],
                        delivery: Delivery::LicensePool {
                            pool_id: pool.id,
                            keys_per: KeysPer::Unit,
                        },
                        active: true,
                    },
                )
                .await?;
            store
                .create_coupon(
                    &tenant.id,
                    Mode::Test,
                    &CouponFields {
                        code: "WELCOME10".into(),
                        percent_off: Some(10),
                        amount_off: None,
                        currency: None,
                        expires_at: None,
                        max_redemptions: None,
                        product_ids: vec![],
                        active: true,
                    },
                )
                .await?;
            product
        }
    };
    Ok(Demo {
        buy_url: format!("{public_url}/{DEMO_SLUG}/test/buy/{}", product.id),
        api_keys,
    })
}
