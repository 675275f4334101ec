//! Idempotency keys: a POST retried with the same key gets the first answer again.
//! The answer's body is kept as the API hands it over: sealed, never in clear (it may
//! carry a secret shown once or a customer's personal data).

use kassa_domain::ids::TenantId;

use crate::db::db_run;
use crate::error::StoreError;
use crate::store::Store;
use crate::time::Timestamp;

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// What to do with a request that carries an idempotency key.
#[derive(Debug, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// First time: run it, then call `finish_idempotency`.
    Proceed,
    /// Seen with the same request: send this stored response.
    Replay {
        status: u16,
        content_type: Option<String>,
        /// The sealed body, as given to `finish_idempotency`.
        body: String,
    },
    /// Seen with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

impl Store {
    /// Claims `key` for a request with this fingerprint (a hash of method, path and
    /// body), or says how the key was used before.
    pub async fn start_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
        fingerprint: &str,
    ) -> Result<IdempotencyStart, StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        db_run!(&mut tx, c => sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND created_at < $3",
        )
        .bind(tenant.as_str())
        .bind(key)
        .bind(Timestamp::from(now - IDEMPOTENCY_TTL_MILLIS))
        .execute(c).await?.rows_affected());
        let claimed = db_run!(&mut tx, c => sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(key)
        .bind(fingerprint)
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        let start = if claimed == 1 {
            IdempotencyStart::Proceed
        } else {
            let (stored, status, content_type, body): (
                String,
                Option<i64>,
                Option<String>,
                Option<String>,
            ) = db_run!(&mut tx, c => sqlx::query_as(
                "SELECT fingerprint, status_code, content_type, body FROM idempotency_keys
                     WHERE tenant_id = $1 AND key = $2",
            )
            .bind(tenant.as_str())
            .bind(key)
            .fetch_one(c).await?);
            match status {
                _ if stored != fingerprint => IdempotencyStart::Mismatch,
                None => IdempotencyStart::InProgress,
                Some(status) => IdempotencyStart::Replay {
                    status: u16::try_from(status).unwrap_or(500),
                    content_type,
                    body: body.unwrap_or_default(),
                },
            }
        };
        tx.commit().await?;
        Ok(start)
    }

    /// Stores the response to replay for `key`; `body` is sealed by the caller.
    pub async fn finish_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<(), StoreError> {
        db_run!(self.writer(), c => sqlx::query(
            "UPDATE idempotency_keys SET status_code = $3, content_type = $4, body = $5
             WHERE tenant_id = $1 AND key = $2",
        )
        .bind(tenant.as_str())
        .bind(key)
        .bind(i64::from(status))
        .bind(content_type)
        .bind(body)
        .execute(c).await?.rows_affected());
        Ok(())
    }

    /// Forgets `key`, so a request that failed on Kassa's side can be retried.
    pub async fn abandon_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<(), StoreError> {
        db_run!(self.writer(), c => sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2")
            .bind(tenant.as_str())
            .bind(key)
            .execute(c).await?.rows_affected());
        Ok(())
    }
}
