//! Reminds and deletes unpaid orders, store by store, each by its own policy.

use std::time::Duration;

use apalis::prelude::Data;
use apalis_cron::Tick;

use crate::workers::{Error, Workers};

pub(crate) async fn run(_: Tick, workers: Data<Workers>) -> Result<(), Error> {
    sweep(&workers).await;
    Ok(())
}

/// Reminds and deletes unpaid orders, store by store, each by its own policy.
async fn sweep(workers: &Workers) {
    let tenants = match workers.store.tenant_settings().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "could not list stores for the unpaid sweep");
            return;
        }
    };
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    for (tenant, raw) in tenants {
        let settings = kassa_domain::tenant::TenantSettings::from_json(&raw);
        let policy = kassa_orders::UnpaidPolicy {
            remind_after: settings
                .reminder_after(workers.unpaid.remind_after)
                .map(millis),
            delete_after: millis(settings.delete_after(workers.unpaid.delete_after)),
        };
        match kassa_orders::sweep_unpaid(&workers.store, &tenant, policy).await {
            Ok(s) if s.reminded + s.deleted > 0 => {
                tracing::info!(tenant = %tenant, reminded = s.reminded, deleted = s.deleted, "unpaid orders")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, tenant = %tenant, "unpaid sweep failed"),
        }
    }
}
