//! A webhook delivery's attempts: each logged, and the delivery and its endpoint moved
//! on, with what the workflow says follows.

use kassa_domain::workflow::Followups;

use crate::db::db_run;
use crate::error::StoreError;
use crate::events::{DeliveryOutcome, DueDelivery};
use crate::jobs::{DeliverWebhook, enqueue};
use crate::store::Store;
use crate::time::Timestamp;
use kassa_domain::ids::AttemptId;

impl Store {
    /// Logs an attempt and moves the delivery on, with what follows (the owners told
    /// of a disabled endpoint), in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_delivery_attempt(
        &self,
        d: &DueDelivery,
        status_code: Option<u16>,
        latency_ms: i64,
        response: &str,
        outcome: DeliveryOutcome,
        followups: &Followups,
    ) -> Result<(), StoreError> {
        let mut work = self.work(&d.tenant_id).await?;
        let now = work.now.millis();
        let tx = &mut work.tx;
        db_run!(tx, c => sqlx::query(
            "INSERT INTO webhook_attempts (tenant_id, id, delivery_id, endpoint_id, event_id, attempt, url,
             status_code, latency_ms, response, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(d.tenant_id.as_str())
        .bind(AttemptId::generate().as_str())
        .bind(d.id.as_str())
        .bind(d.endpoint_id.as_str())
        .bind(&d.event_id)
        .bind(d.attempts + 1)
        .bind(&d.url)
        .bind(status_code.map(i64::from))
        .bind(latency_ms)
        .bind(response)
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        let (status, next) = match outcome {
            DeliveryOutcome::Succeeded => ("succeeded", None),
            DeliveryOutcome::RetryAt(at) => ("pending", Some(at)),
            DeliveryOutcome::Failed | DeliveryOutcome::EndpointDisabled => ("failed", None),
        };
        db_run!(tx, c => sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4,
             last_status = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(d.tenant_id.as_str())
        .bind(d.id.as_str())
        .bind(status)
        .bind(next.map(Timestamp::from))
        .bind(status_code.map(i64::from))
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        if let DeliveryOutcome::RetryAt(at) = outcome {
            let job = DeliverWebhook {
                tenant_id: d.tenant_id.clone(),
                delivery_id: d.id.clone(),
                request_id: crate::RequestId::current(),
            };
            enqueue(tx, &job, at).await?;
        }
        let endpoint_sql = match outcome {
            DeliveryOutcome::Succeeded => {
                "UPDATE webhook_endpoints SET failing_since = NULL WHERE tenant_id = $1 AND id = $2 AND $3 IS NOT NULL"
            }
            DeliveryOutcome::EndpointDisabled => {
                "UPDATE webhook_endpoints SET disabled_at = COALESCE(disabled_at, $3) WHERE tenant_id = $1 AND id = $2"
            }
            _ => {
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $3) WHERE tenant_id = $1 AND id = $2"
            }
        };
        db_run!(tx, c => sqlx::query(endpoint_sql)
            .bind(d.tenant_id.as_str())
            .bind(d.endpoint_id.as_str())
            .bind(Timestamp::from(now))
            .execute(c).await?.rows_affected());
        work.follow(None, followups).await?;
        work.commit().await?;
        Ok(())
    }
}
