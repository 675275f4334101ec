//! Payment providers' side of storage: a store's Stripe account per mode (its keys,
//! sealed like the store's other secrets, `sealed.rs`), the provider events already acted on (each
//! once), and a provider's payment attempt settled by its webhook.

use kassa_domain::ids::TenantId;
use kassa_domain::mode::Mode;
use kassa_domain::order::PaymentStatus;
use kassa_domain::tenant::StripeAccount;
use sqlx::AssertSqlSafe;

use crate::db::db_run;
use crate::error::StoreError;
use crate::sealed::Place;
use crate::store::Store;
use crate::time::Timestamp;
use crate::work::Work;

/// The columns of `mode`'s Stripe account on `tenants`: secret key, publishable key,
/// webhook signing secret.
fn stripe_columns(mode: Mode) -> (&'static str, &'static str, &'static str) {
    match mode {
        Mode::Test => (
            "stripe_test_secret_key",
            "stripe_test_publishable_key",
            "stripe_test_webhook_secret",
        ),
        Mode::Live => (
            "stripe_live_secret_key",
            "stripe_live_publishable_key",
            "stripe_live_webhook_secret",
        ),
    }
}

/// A provider's payment attempt of an order, as its webhook finds it.
#[derive(Debug, Clone)]
pub struct ProviderAttempt {
    pub id: String,
    /// When the provider's page was made for it.
    pub created_at: Timestamp,
    /// It succeeded: its money is what paid the order.
    pub succeeded: bool,
}

/// What a provider's webhook says became of an attempt.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub status: PaymentStatus,
    /// What the provider refunds it by (a Stripe PaymentIntent `pi_…`).
    pub charge_reference: Option<&'a str>,
    pub failure_code: Option<&'a str>,
    pub failure_message: Option<&'a str>,
}

impl Store {
    /// The store's Stripe account in `mode`, when its keys are set.
    pub async fn stripe_account(
        &self,
        tenant: &TenantId,
        mode: Mode,
    ) -> Result<Option<StripeAccount>, StoreError> {
        let (key, pk, whsec) = stripe_columns(mode);
        let row: Option<(Option<String>, Option<String>, Option<String>)> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {key}, {pk}, {whsec} FROM tenants WHERE id = $1"
        )))
        .bind(tenant.as_str())
        .fetch_optional(c).await?);
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let t = tenant.as_str();
        Ok(match row {
            (Some(sealed_key), publishable_key, Some(sealed_whsec)) => Some(StripeAccount {
                secret_key: self.open(&Place::tenant(t, key), &sealed_key)?,
                publishable_key,
                webhook_secret: self.open(&Place::tenant(t, whsec), &sealed_whsec)?,
            }),
            _ => None,
        })
    }

    /// The store whose URL name is `slug` and its Stripe webhook signing secret in
    /// `mode`, when its Stripe account there is set: all that Stripe's webhook reads
    /// before the signature is checked. An unknown store is `NotFound`.
    pub async fn stripe_webhook_secret(
        &self,
        slug: &str,
        mode: Mode,
    ) -> Result<Option<(TenantId, kassa_domain::Secret)>, StoreError> {
        let (key, _, whsec_column) = stripe_columns(mode);
        let row: Option<(String, Option<String>)> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, CASE WHEN {key} IS NULL THEN NULL ELSE {whsec_column} END FROM tenants WHERE slug = $1"
        )))
        .bind(slug)
        .fetch_optional(c).await?);
        let (id, whsec) = row.ok_or(StoreError::NotFound)?;
        let place = Place::tenant(&id, whsec_column);
        let whsec = whsec.map(|w| self.open(&place, &w)).transpose()?;
        let id = TenantId::parse(&id).map_err(crate::error::corrupt)?;
        Ok(whsec.map(|w| (id, w)))
    }

    /// The order that the provider's payment `payment` (a Stripe PaymentIntent
    /// `pi_…`) paid, if it paid one of this store's.
    pub async fn order_paid_by(
        &self,
        tenant: &TenantId,
        payment: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(db_run!(self, c => sqlx::query_scalar(
            "SELECT order_id FROM payments
             WHERE tenant_id = $1 AND charge_reference = $2 AND status = 'succeeded'
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(payment)
        .fetch_optional(c).await?))
    }

    /// Whether the provider's payment `payment` (a PaymentIntent) is one Kassa sent back
    /// itself, its order paid another way (an attempt ended with `code`).
    pub async fn sent_back(
        &self,
        tenant: &TenantId,
        payment: &str,
        code: &str,
    ) -> Result<bool, StoreError> {
        let found: i64 = db_run!(self, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM payments
             WHERE tenant_id = $1 AND reference = $2 AND failure_code = $3",
        )
        .bind(tenant.as_str())
        .bind(payment)
        .bind(code)
        .fetch_one(c).await?);
        Ok(found > 0)
    }

    /// The provider's id of the payment that paid the order `order` (a Stripe
    /// PaymentIntent `pi_…`), to refund it with.
    pub async fn charge_reference(
        &self,
        tenant: &TenantId,
        order: &str,
    ) -> Result<Option<String>, StoreError> {
        let found: Option<Option<String>> = db_run!(self, c => sqlx::query_scalar(
            "SELECT charge_reference FROM payments
             WHERE tenant_id = $1 AND order_id = $2 AND status = 'succeeded'
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(order)
        .fetch_optional(c).await?);
        Ok(found.flatten())
    }

    /// Saves (or, with `None`, removes) the store's Stripe account in `mode`.
    pub async fn set_stripe_account(
        &self,
        tenant: &TenantId,
        mode: Mode,
        account: Option<&StripeAccount>,
    ) -> Result<(), StoreError> {
        let (key, pk, whsec) = stripe_columns(mode);
        let t = tenant.as_str();
        let sealed_key = account
            .map(|a| self.seal(&Place::tenant(t, key), a.secret_key.expose_secret()))
            .transpose()?;
        let sealed_whsec = account
            .map(|a| self.seal(&Place::tenant(t, whsec), a.webhook_secret.expose_secret()))
            .transpose()?;
        let done = db_run!(self.writer(), c => sqlx::query(AssertSqlSafe(format!(
            "UPDATE tenants SET {key} = $2, {whsec} = $3, {pk} = $4 WHERE id = $1"
        )))
        .bind(t)
        .bind(sealed_key)
        .bind(sealed_whsec)
        .bind(account.and_then(|a| a.publishable_key.as_deref()))
        .execute(c).await?.rows_affected());
        // Stores kept in memory say whether Stripe is set (`recent.rs`).
        self.state.recent.forget();
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

impl Work {
    /// Notes that `provider`'s event `event_id` is being acted on; false when it was
    /// already (a replay or a redelivery), and then nothing else should be written.
    pub async fn first_provider_event(
        &mut self,
        provider: &str,
        event_id: &str,
        order: &str,
    ) -> Result<bool, StoreError> {
        let inserted = db_run!(&mut self.tx, c => sqlx::query(
            "INSERT INTO provider_events (provider, event_id, tenant_id, order_id, received_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(self.now)
        .execute(c).await?.rows_affected());
        Ok(inserted == 1)
    }

    /// The order's attempt whose provider id is `reference` (a Stripe
    /// PaymentIntent), if Kassa recorded it.
    pub async fn provider_attempt(
        &mut self,
        order: &str,
        reference: &str,
    ) -> Result<Option<ProviderAttempt>, StoreError> {
        let row: Option<(String, Timestamp, String)> = db_run!(&mut self.tx, c => sqlx::query_as(
            "SELECT id, created_at, status FROM payments
             WHERE tenant_id = $1 AND order_id = $2 AND reference = $3",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(reference)
        .fetch_optional(c).await?);
        Ok(row.map(|(id, created_at, status)| ProviderAttempt {
            id,
            created_at,
            succeeded: status == "succeeded",
        }))
    }

    /// Ends an attempt still pending at the provider (canceled unpaid there) with
    /// `code` and `message`; an attempt that already ended stays as it is.
    pub async fn end_pending_attempt(
        &mut self,
        order: &str,
        payment: &str,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE payments SET status = 'failed', failure_code = $4, failure_message = $5
             WHERE tenant_id = $1 AND order_id = $2 AND id = $3 AND status = 'pending'",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(payment)
        .bind(code)
        .bind(message)
        .execute(c).await?.rows_affected());
        Ok(())
    }

    /// Writes what became of an attempt.
    pub async fn settle_payment(
        &mut self,
        order: &str,
        payment: &str,
        settled: &Settlement<'_>,
    ) -> Result<(), StoreError> {
        db_run!(&mut self.tx, c => sqlx::query(
            "UPDATE payments SET status = $4, charge_reference = $5, failure_code = $6, failure_message = $7
             WHERE tenant_id = $1 AND order_id = $2 AND id = $3",
        )
        .bind(self.tenant.as_str())
        .bind(order)
        .bind(payment)
        .bind(settled.status.as_str())
        .bind(settled.charge_reference)
        .bind(settled.failure_code)
        .bind(settled.failure_message)
        .execute(c).await?.rows_affected());
        Ok(())
    }
}
