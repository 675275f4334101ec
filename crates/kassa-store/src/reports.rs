//! What the dashboard's home page sums up: paid sales per day and currency, and what
//! needs the merchant's attention, each of one mode (the dashboard's switch).

use kassa_domain::ids::TenantId;
use kassa_domain::mode::Mode;

use crate::db::{Backend, db_run};
use crate::error::StoreError;
use crate::page::PageRequest;
use crate::store::Store;
use crate::time::Timestamp;

/// One day's paid orders in one currency (days are UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailySales {
    /// Days since 1970-01-01.
    pub day: i64,
    pub currency: String,
    pub orders: i64,
    /// What they paid, integer minor units.
    pub revenue: i64,
    /// What was refunded of them since, integer minor units.
    pub refunded: i64,
}

impl DailySales {
    /// The money kept: paid less refunded.
    pub fn kept(&self) -> i64 {
        self.revenue.saturating_sub(self.refunded)
    }
}

/// What needs the merchant's attention.
#[derive(Debug, Clone, Default)]
pub struct Attention {
    /// Pools at or under their low-stock threshold: name and keys left.
    pub low_pools: Vec<(String, String, i64)>,
    /// Paid order lines waiting for keys.
    pub lines_waiting_for_stock: i64,
    /// Order lines whose delivery failed for good.
    pub failed_deliveries: i64,
    /// Webhook endpoints failing or disabled: id, URL, disabled.
    pub failing_endpoints: Vec<(String, String, bool)>,
}

impl Store {
    /// Paid orders of `mode` per day and currency since `since`, by the day they were
    /// paid, with what was refunded of them since.
    pub async fn daily_sales(
        &self,
        tenant: &TenantId,
        mode: Mode,
        since: Timestamp,
    ) -> Result<Vec<DailySales>, StoreError> {
        let day = match self.backend() {
            Backend::Sqlite => "paid_at / 86400000",
            Backend::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM paid_at) / 86400) AS BIGINT)",
        };
        let sql = format!(
            "SELECT {day} AS day, currency, COUNT(*), CAST(SUM(total) AS BIGINT),
             CAST(SUM(amount_refunded) AS BIGINT) FROM orders
             WHERE tenant_id = $1 AND paid_at IS NOT NULL AND paid_at >= $2
             AND status IN ('paid', 'refunded') AND test_mode = $3
             GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let rows: Vec<(i64, String, i64, i64, i64)> = db_run!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tenant.as_str())
            .bind(since)
            .bind(!mode.is_live())
            .fetch_all(c).await?);
        Ok(rows
            .into_iter()
            .map(|(day, currency, orders, revenue, refunded)| DailySales {
                day,
                currency,
                orders,
                revenue,
                refunded,
            })
            .collect())
    }

    /// What needs the merchant's attention in `mode`: its pools running low, its
    /// orders' lines waiting for keys or failed, its webhook endpoints failing.
    pub async fn attention(&self, tenant: &TenantId, mode: Mode) -> Result<Attention, StoreError> {
        let all = PageRequest {
            after: None,
            limit: 1000,
        };
        let pools = self.list_license_pools_of(tenant, mode, &all).await?;
        let low_pools = pools
            .data
            .into_iter()
            .filter(|p| p.low_stock_threshold.is_some_and(|t| p.available <= t) || p.available == 0)
            .map(|p| (p.id.as_str().to_owned(), p.name, p.available))
            .collect();
        let lines: Vec<(String, i64)> = db_run!(self, c => sqlx::query_as(
            "SELECT l.delivery_status, COUNT(*) FROM order_lines l
             JOIN orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
             WHERE l.tenant_id = $1 AND l.delivery_status IN ('waiting_stock', 'failed')
             AND o.test_mode = $2
             GROUP BY l.delivery_status",
        )
        .bind(tenant.as_str())
        .bind(!mode.is_live())
        .fetch_all(c).await?);
        let count = |status: &str| {
            lines
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n)
        };
        let failing_endpoints: Vec<(String, String, bool)> = db_run!(self, c => sqlx::query_as(
            "SELECT id, url, disabled_at IS NOT NULL FROM webhook_endpoints
             WHERE tenant_id = $1 AND (disabled_at IS NOT NULL OR failing_since IS NOT NULL)
             AND livemode = $2
             ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(mode.is_live())
        .fetch_all(c).await?);
        Ok(Attention {
            low_pools,
            lines_waiting_for_stock: count("waiting_stock"),
            failed_deliveries: count("failed"),
            failing_endpoints,
        })
    }

    /// When the store's orders last changed (a new order, a payment, a delivery), and
    /// how many there are: a value that moves whenever the order list would.
    pub async fn orders_version(
        &self,
        tenant: &TenantId,
    ) -> Result<(i64, Option<Timestamp>), StoreError> {
        Ok(db_run!(self, c => sqlx::query_as(
            "SELECT COUNT(*), MAX(updated_at) FROM orders WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_one(c).await?))
    }

    /// Stores a store's logo, replacing the previous one.
    pub async fn set_logo(
        &self,
        tenant: &TenantId,
        content_type: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        db_run!(self.writer(), c => sqlx::query(
            "INSERT INTO tenant_logos (tenant_id, content_type, data, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO UPDATE SET content_type = excluded.content_type,
             data = excluded.data, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(content_type)
        .bind(data)
        .bind(Timestamp::now())
        .execute(c).await?.rows_affected());
        Ok(())
    }

    /// A store's logo: its content type and bytes.
    pub async fn logo(&self, tenant: &TenantId) -> Result<(String, Vec<u8>), StoreError> {
        db_run!(self, c => sqlx::query_as(
            "SELECT content_type, data FROM tenant_logos WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(c).await?)
        .ok_or(StoreError::NotFound)
    }
}
