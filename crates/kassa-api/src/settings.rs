//! `/settings`: the store's branding, legal links, bank details and payment methods,
//! and its signing secrets (buy links, license web services), which rotate with an
//! overlap window.

use kassa_domain::Invalid;
use kassa_domain::access::ApiAction;
use kassa_domain::mode::Mode;
use kassa_domain::secret::parse_overlap;
use kassa_domain::tenant::{BankDetails, StripeAccount, TenantSettings, last4};
use kassa_store::{StoreSecret, TenantRecord, Timestamp};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::ApiError;

pub struct SettingsApi(pub ApiContext);

/// Where customers paying by bank transfer send the money.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct BankDetailsIo {
    pub account_holder: String,
    pub bank_name: String,
    pub iban: String,
    pub bic: String,
}

// Not `Debug`: it holds the store's signing secrets.
#[derive(Object)]
pub struct SettingsOut {
    /// The store's name in URLs: `{public_url}/{slug}/buy/…`.
    pub slug: String,
    /// The store's name as customers see it.
    pub name: String,
    pub logo_url: Option<String>,
    /// `#RRGGBB`, used for buttons and links on the checkout pages.
    pub accent_color: Option<String>,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
    pub support_email: Option<String>,
    /// Shown to customers who pay by bank transfer.
    pub bank: Option<BankDetailsIo>,
    /// The payment methods customers may choose, in display order.
    pub payment_methods: Vec<String>,
    /// The secret buy links with fixed prices or discounts are signed with
    /// (HMAC-SHA256). Keep it on your server.
    pub link_signing_secret: String,
    /// Until when the link-signing secret the last rotation replaced still verifies
    /// links; absent when none does.
    pub link_signing_secret_previous_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The `whsec_` secret requests to license web services are signed with
    /// (Standard Webhooks headers, like webhooks).
    pub web_service_signing_secret: String,
    /// Until when requests also carry a signature with the web-service secret the last
    /// rotation replaced; absent when they do not.
    pub web_service_signing_secret_previous_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When customers are reminded of unpaid orders (`24h`), `off`, or absent for the
    /// operator's default.
    pub unpaid_reminder_after: Option<String>,
    /// When unpaid orders are deleted (`30d`), or absent for the operator's limit
    /// (90 days unless configured); a store can only shorten it.
    pub unpaid_delete_after: Option<String>,
    /// How long an unpaid order holds the use of a limited coupon (`24h`), or absent
    /// for a day. A use is counted for good when the order is paid.
    pub coupon_hold: Option<String>,
    /// The store's Stripe account in each mode (`PUT /settings/stripe/{mode}`). Its
    /// keys are never shown again, only their last four characters.
    pub stripe: StripeSettingsOut,
}

/// The store's Stripe accounts: test mode's serves test orders, live mode's live ones.
#[derive(Debug, Object)]
pub struct StripeSettingsOut {
    pub test: StripeAccountOut,
    pub live: StripeAccountOut,
}

/// One mode's Stripe account, as far as it is shown.
#[derive(Debug, Object)]
pub struct StripeAccountOut {
    /// Whether the secret key, publishable key and webhook signing secret are set:
    /// `stripe` is offered at the checkout of this mode when they are and
    /// `payment_methods` lists it. (Keys saved before the publishable key was asked for
    /// are not: set them again with it.)
    pub configured: bool,
    /// The last four characters of the secret key, when set.
    pub secret_key_last4: Option<String>,
    /// The publishable key (`pk_…`), given to Stripe.js on the payment page: not a
    /// secret, so shown whole.
    pub publishable_key: Option<String>,
    /// The last four characters of the webhook signing secret, when set.
    pub webhook_secret_last4: Option<String>,
    /// The URL to add as a webhook endpoint in Stripe's dashboard (in this mode), with
    /// the events `payment_intent.succeeded`, `payment_intent.payment_failed` and
    /// `payment_intent.canceled`.
    pub webhook_url: String,
}

/// A mode's Stripe keys, as pasted from Stripe's dashboard. Not `Debug`: secrets.
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct StripeKeysIn {
    /// A secret key (`sk_…`) or, better, a restricted key (`rk_…`) allowed to write
    /// PaymentIntents and Refunds; a test mode key (`…_test_…`) for test mode, a live
    /// key for live mode.
    pub secret_key: String,
    /// The publishable key (`pk_test_…` for test mode, `pk_live_…` for live mode),
    /// which Stripe.js uses on the payment page.
    pub publishable_key: String,
    /// The signing secret (`whsec_…`) of the webhook endpoint made with `webhook_url`.
    pub webhook_secret: String,
}

/// Changes to the settings. Absent (or `null`) fields stay as they are; an empty string
/// clears an optional text, and `"bank": null` removes the bank details.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SettingsPatch {
    pub logo_url: Option<String>,
    pub accent_color: Option<String>,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
    pub support_email: Option<String>,
    pub bank: MaybeUndefined<BankDetailsIo>,
    /// `test_card`, `bank_transfer`, `stripe`; an empty list enables every method
    /// but `stripe` (offered only when listed and its mode's keys are set).
    pub payment_methods: Option<Vec<String>>,
    /// A duration (`24h`, `3d`) or `off`; empty returns to the operator's default.
    pub unpaid_reminder_after: Option<String>,
    /// A duration (`30d`); empty returns to the operator's limit.
    pub unpaid_delete_after: Option<String>,
    /// A duration (`30m`, `24h`, at most `30d`); empty returns to a day.
    pub coupon_hold: Option<String>,
}

/// A patched optional text: absent keeps `current`, empty clears it.
fn patch_text(current: &mut Option<String>, patch: Option<String>) {
    if let Some(value) = patch {
        let value = value.trim();
        *current = (!value.is_empty()).then(|| value.to_owned());
    }
}

fn parse_bank(raw: BankDetailsIo) -> Result<BankDetails, Invalid> {
    BankDetails::parse(&raw.account_holder, &raw.bank_name, &raw.iban, &raw.bic)
}

impl SettingsApi {
    async fn rotate(
        &self,
        auth: ApiKey,
        which: StoreSecret,
        fresh: &kassa_domain::Secret,
        overlap: Option<String>,
    ) -> Result<Json<SettingsOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::ManageSecrets)?;
        let overlap = parse_overlap("overlap", overlap.as_deref())?;
        let until = Timestamp::from(Timestamp::now().millis() + overlap);
        self.0
            .store
            .rotate_store_secret(&tenant.id, which, fresh, until)
            .await
            .map_err(ApiError::from_store("store"))?;
        let settings = TenantSettings::from_json(&tenant.settings);
        Ok(Json(self.out(tenant, settings).await?))
    }

    async fn out(
        &self,
        tenant: &TenantRecord,
        settings: TenantSettings,
    ) -> Result<SettingsOut, ApiError> {
        let link = self
            .0
            .store
            .link_secrets(&tenant.id)
            .await
            .map_err(ApiError::from_store("store"))?;
        let service = self
            .0
            .store
            .service_secrets(&tenant.id)
            .await
            .map_err(ApiError::from_store("store"))?;
        let stripe = StripeSettingsOut {
            test: self.stripe_out(tenant, Mode::Test).await?,
            live: self.stripe_out(tenant, Mode::Live).await?,
        };
        let payment_methods = settings
            .enabled_methods()
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect();
        Ok(SettingsOut {
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            logo_url: settings.logo_url,
            accent_color: settings.accent_color,
            terms_url: settings.terms_url,
            privacy_url: settings.privacy_url,
            support_email: settings.support_email,
            bank: settings.bank.map(|b| BankDetailsIo {
                account_holder: b.account_holder,
                bank_name: b.bank_name,
                iban: b.iban,
                bic: b.bic,
            }),
            payment_methods,
            link_signing_secret: link.current.expose_secret().to_owned(),
            link_signing_secret_previous_expires_at: link.previous.map(|(_, until)| until.0),
            web_service_signing_secret: service.current.expose_secret().to_owned(),
            web_service_signing_secret_previous_expires_at: service
                .previous
                .map(|(_, until)| until.0),
            unpaid_reminder_after: settings.unpaid_reminder_after,
            unpaid_delete_after: settings.unpaid_delete_after,
            coupon_hold: settings.coupon_hold,
            stripe,
        })
    }

    async fn stripe_out(
        &self,
        tenant: &TenantRecord,
        mode: Mode,
    ) -> Result<StripeAccountOut, ApiError> {
        let account = self
            .0
            .store
            .stripe_account(&tenant.id, mode)
            .await
            .map_err(ApiError::from_store("store"))?;
        Ok(StripeAccountOut {
            configured: account
                .as_ref()
                .is_some_and(|a| a.publishable_key.is_some()),
            secret_key_last4: account.as_ref().map(|a| last4(&a.secret_key)),
            publishable_key: account.as_ref().and_then(|a| a.publishable_key.clone()),
            webhook_secret_last4: account.as_ref().map(|a| last4(&a.webhook_secret)),
            webhook_url: format!(
                "{}{}/webhooks/stripe",
                self.0.public_url,
                mode.store_path(&tenant.slug)
            ),
        })
    }

    async fn set_stripe(
        &self,
        auth: ApiKey,
        mode: &str,
        account: Option<StripeKeysIn>,
    ) -> Result<Json<SettingsOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::ManageSecrets)?;
        let mode = match mode {
            "test" => Mode::Test,
            "live" => Mode::Live,
            _ => return Err(Invalid::field("mode", "must be test or live").into()),
        };
        let account = match account {
            Some(keys) => Some(StripeAccount::parse(
                mode,
                &keys.secret_key,
                &keys.publishable_key,
                &keys.webhook_secret,
            )?),
            None => None,
        };
        self.0
            .store
            .set_stripe_account(&tenant.id, mode, account.as_ref())
            .await
            .map_err(ApiError::from_store("store"))?;
        let settings = TenantSettings::from_json(&tenant.settings);
        Ok(Json(self.out(tenant, settings).await?))
    }
}

#[OpenApi(prefix_path = "/settings", tag = "crate::context::Tag::Settings")]
impl SettingsApi {
    /// Get the store's settings
    #[oai(path = "/", method = "get")]
    async fn get(&self, auth: ApiKey) -> Result<Json<SettingsOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::ManageSecrets)?;
        let settings = TenantSettings::from_json(&tenant.settings);
        Ok(Json(self.out(tenant, settings).await?))
    }

    /// Rotate the link-signing secret
    ///
    /// A new secret signs links from now on; links signed with the one it replaces keep
    /// working for `overlap` (a duration, default `24h`, at most `7d`; `0s` ends them
    /// now, e.g. after a leak). The answer is the settings with the new secret.
    #[oai(path = "/link-signing-secret/rotate", method = "post")]
    async fn rotate_link_secret(
        &self,
        auth: ApiKey,
        overlap: Query<Option<String>>,
    ) -> Result<Json<SettingsOut>, ApiError> {
        let fresh = kassa_domain::signed_link::generate_secret();
        self.rotate(auth, StoreSecret::Link, &fresh, overlap.0)
            .await
    }

    /// Rotate the web-service signing secret
    ///
    /// Requests to license web services are signed with the new secret and, for
    /// `overlap` (default `24h`, at most `7d`), also with the one it replaces
    /// (`webhook-signature: v1,<new> v1,<previous>`), so services switch without a
    /// failed request.
    #[oai(path = "/web-service-signing-secret/rotate", method = "post")]
    async fn rotate_service_secret(
        &self,
        auth: ApiKey,
        overlap: Query<Option<String>>,
    ) -> Result<Json<SettingsOut>, ApiError> {
        let fresh = kassa_domain::webhook::generate_secret();
        self.rotate(auth, StoreSecret::Service, &fresh, overlap.0)
            .await
    }

    /// Set a mode's Stripe keys
    ///
    /// `mode` is `test` or `live`. The keys are checked for their shape and mode (a
    /// Stripe test key is refused for live mode and the reverse), kept as secrets and
    /// never returned: the answer shows their last four characters. Add `stripe` to
    /// `payment_methods` to offer it.
    #[oai(path = "/stripe/:mode", method = "put")]
    async fn set_stripe_keys(
        &self,
        auth: ApiKey,
        mode: Path<String>,
        body: Json<StripeKeysIn>,
    ) -> Result<Json<SettingsOut>, ApiError> {
        self.set_stripe(auth, &mode.0, Some(body.0)).await
    }

    /// Remove a mode's Stripe keys
    ///
    /// Stripe is no longer offered in that mode; orders already sent to Stripe are
    /// still paid by Stripe's webhooks only while the keys are set.
    #[oai(path = "/stripe/:mode", method = "delete")]
    async fn delete_stripe_keys(
        &self,
        auth: ApiKey,
        mode: Path<String>,
    ) -> Result<Json<SettingsOut>, ApiError> {
        self.set_stripe(auth, &mode.0, None).await
    }

    /// Change the store's settings
    #[oai(path = "/", method = "patch")]
    async fn update(
        &self,
        auth: ApiKey,
        body: Json<SettingsPatch>,
    ) -> Result<Json<SettingsOut>, ApiError> {
        let tenant = auth.allowed(ApiAction::EditSettings)?;
        let patch = body.0;
        let mut settings = TenantSettings::from_json(&tenant.settings);
        patch_text(&mut settings.logo_url, patch.logo_url);
        patch_text(&mut settings.accent_color, patch.accent_color);
        patch_text(&mut settings.terms_url, patch.terms_url);
        patch_text(&mut settings.privacy_url, patch.privacy_url);
        patch_text(&mut settings.support_email, patch.support_email);
        patch_text(
            &mut settings.unpaid_reminder_after,
            patch.unpaid_reminder_after,
        );
        patch_text(&mut settings.unpaid_delete_after, patch.unpaid_delete_after);
        patch_text(&mut settings.coupon_hold, patch.coupon_hold);
        if let Some(methods) = patch.payment_methods {
            settings.payment_methods = methods;
        }
        let mut invalid = Invalid::default();
        match patch.bank {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => settings.bank = None,
            MaybeUndefined::Value(bank) => settings.bank = invalid.check(parse_bank(bank)),
        }
        invalid.check(settings.validate());
        invalid.into_result()?;
        let mut methods = std::mem::take(&mut settings.payment_methods);
        let mut seen = Vec::with_capacity(methods.len());
        methods.retain(|m| {
            let first = !seen.contains(m);
            seen.push(m.clone());
            first
        });
        settings.payment_methods = methods;
        self.0
            .store
            .update_tenant_settings(&tenant.id, &settings)
            .await
            .map_err(ApiError::from_store("store"))?;
        Ok(Json(self.out(tenant, settings).await?))
    }
}
