//! Home: today's and this month's paid orders and the money kept of them (paid less
//! refunded) per currency, the last 30 days as a chart drawn on the server (an SVG with a table beside it, readable
//! without JavaScript), and what needs the merchant's attention; all of the
//! dashboard's mode (the test/live switch) only.

use chrono::{Datelike, Utc};
use kassa_domain::account::Permission;
use kassa_store::{DailySales, Timestamp};
use minijinja::context;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, handler};

use crate::page::{Ctx, failure, page, query, staff};

const DAY_MS: i64 = 86_400_000;

/// Per currency: the orders paid on the days from `first_day` on, the money they
/// brought, what was refunded of it, and what was kept (the figure shown).
fn totals(sales: &[DailySales], first_day: i64) -> Vec<minijinja::Value> {
    let mut by_currency: std::collections::BTreeMap<&str, (i64, i64, i64)> = Default::default();
    for s in sales.iter().filter(|s| s.day >= first_day) {
        let entry = by_currency.entry(&s.currency).or_default();
        entry.0 += s.orders;
        entry.1 = entry.1.saturating_add(s.revenue);
        entry.2 = entry.2.saturating_add(s.refunded);
    }
    by_currency
        .into_iter()
        .map(|(currency, (orders, paid, refunded))| {
            context! {
                currency, orders,
                kept => kassa_emails::money(paid.saturating_sub(refunded), currency),
                paid => kassa_emails::money(paid, currency),
                refunded => (refunded > 0).then(|| kassa_emails::money(refunded, currency)),
            }
        })
        .collect()
}

/// One bar chart per currency of the last 30 days' money kept (paid less refunded).
fn charts(sales: &[DailySales], today: i64) -> Vec<minijinja::Value> {
    let currencies: std::collections::BTreeSet<&str> =
        sales.iter().map(|s| s.currency.as_str()).collect();
    currencies
        .into_iter()
        .map(|currency| {
            let days: Vec<(i64, i64, i64)> = (today - 29..=today)
                .map(|day| {
                    let s = sales
                        .iter()
                        .find(|s| s.day == day && s.currency == currency);
                    (
                        day,
                        s.map_or(0, DailySales::kept),
                        s.map_or(0, |s| s.orders),
                    )
                })
                .collect();
            let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1);
            let bars: Vec<_> = days
                .iter()
                .enumerate()
                .map(|(i, (day, revenue, orders))| {
                    let height = revenue * 120 / max;
                    let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .unwrap_or_default();
                    context! {
                        x => i * 20 + 2, y => 130 - height, height, date, orders,
                        revenue => kassa_emails::money(*revenue, currency),
                    }
                })
                .collect();
            context! { currency, bars, max => kassa_emails::money(max, currency) }
        })
        .collect()
}

#[handler]
pub async fn show(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeOrders).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let now = Utc::now();
    let today = now.timestamp_millis().div_euclid(DAY_MS);
    let month_start = now
        .with_day(1)
        .map_or(today, |d| d.timestamp_millis().div_euclid(DAY_MS));
    let since = Timestamp::from((today - 29).min(month_start) * DAY_MS);
    let sales = match ctx
        .web
        .store
        .daily_sales(&staff.tenant.id, staff.mode, since)
        .await
    {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let attention = match ctx.web.store.attention(&staff.tenant.id, staff.mode).await {
        Ok(a) => a,
        Err(e) => return failure(e),
    };
    let low_pools: Vec<_> = attention
        .low_pools
        .iter()
        .map(|(id, name, left)| context! { id, name, left })
        .collect();
    let endpoints: Vec<_> = attention
        .failing_endpoints
        .iter()
        .map(|(id, url, disabled)| context! { id, url, disabled })
        .collect();
    let buy_base = format!(
        "{}{}/buy/",
        ctx.web.public_url,
        staff.mode.store_path(&staff.tenant.slug)
    );
    page(
        &staff,
        StatusCode::OK,
        "home.html",
        "home",
        context! {
            today => totals(&sales, today),
            month => totals(&sales, month_start),
            charts => charts(&sales, today),
            low_pools, endpoints,
            waiting => attention.lines_waiting_for_stock,
            failed => attention.failed_deliveries,
            buy_base,
            notice => query(req, "notice"),
            can_develop => staff.may(Permission::Develop),
        },
    )
}
