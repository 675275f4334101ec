//! Coupons: the list with how often each was used, and a new coupon (a percentage or
//! an amount in one currency, optionally limited in time, uses and products). All in
//! the dashboard's mode: its coupons and products only, a new coupon of that mode.

use chrono::Utc;
use kassa_domain::Invalid;
use kassa_domain::account::Permission;
use kassa_domain::catalog::coupon_unusable_reason;
use kassa_domain::money::{Currency, Money};
use kassa_orders::{CouponInput, OrdersError};
use minijinja::context;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, all, errors_of, failure, field, last_day, number, one_error, page, query,
    redirect, staff, staff_posting, when, with_notice,
};

async fn coupons_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    typed: &[(String, String)],
    errors: Errors,
    notice: Option<String>,
) -> Response {
    let all = all();
    let (coupons, products) = match tokio::try_join!(
        ctx.web
            .store
            .list_coupons(&staff.tenant.id, staff.mode, &all),
        ctx.web
            .store
            .list_products(&staff.tenant.id, staff.mode, &all),
    ) {
        Ok((c, p)) => (c.data, p.data),
        Err(e) => return failure(e),
    };
    let now = Utc::now();
    let coupons: Vec<_> = coupons
        .iter()
        .map(|c| {
            let f = &c.fields;
            let off = match (f.percent_off, f.amount_off, &f.currency) {
                (Some(p), _, _) => format!("{p} %"),
                (_, Some(a), Some(cur)) => kassa_emails::money(a, cur),
                _ => String::new(),
            };
            let unusable = coupon_unusable_reason(
                f.active,
                f.expires_at.map(|t| t.0),
                f.max_redemptions,
                c.times_redeemed,
                now,
            );
            context! {
                code => f.code.clone(), off, used => c.times_redeemed,
                max => f.max_redemptions, expires => f.expires_at.as_ref().map(when),
                products => f.product_ids.len(), unusable,
            }
        })
        .collect();
    let products: Vec<_> = products
        .iter()
        .map(|p| {
            let id = p.id.as_str().to_owned();
            let checked = typed.iter().any(|(k, v)| k == "product_ids" && *v == id);
            context! { id, name => p.fields.name.clone(), checked }
        })
        .collect();
    let value = |name: &str| field(typed, name).to_owned();
    page(
        staff,
        status,
        "coupons.html",
        "coupons",
        context! {
            coupons, products, errors, notice,
            can_edit => staff.may(Permission::EditCatalog),
            form => context! {
                code => value("code"), kind => if value("kind").is_empty() { "percent".into() } else { value("kind") },
                percent_off => value("percent_off"), amount_off => value("amount_off"),
                currency => value("currency"), expires_on => value("expires_on"),
                max_redemptions => value("max_redemptions"),
            },
        },
    )
}

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    coupons_page(
        &ctx,
        &staff,
        StatusCode::OK,
        &[],
        Errors::new(),
        query(req, "notice"),
    )
    .await
}

#[handler]
pub async fn create(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut invalid = Invalid::default();
    let percent = field(&form, "kind") != "amount";
    let percent_off = if percent {
        number(&form, "percent_off", &mut invalid)
    } else {
        None
    };
    let currency = (!percent).then(|| field(&form, "currency").to_uppercase());
    let amount_off = if percent {
        None
    } else {
        let raw = field(&form, "amount_off");
        match Currency::parse("currency", currency.as_deref().unwrap_or_default()) {
            Ok(c) => invalid
                .check(Money::parse_major("amount_off", raw, c))
                .map(|m| m.amount),
            Err(e) => {
                invalid.errors.extend(e.errors);
                None
            }
        }
    };
    if percent && percent_off.is_none() && !invalid.errors.iter().any(|e| e.field == "percent_off")
    {
        invalid.push("percent_off", "Give the percentage taken off.");
    }
    let expires_at = last_day(&form, "expires_on", &mut invalid);
    let max_redemptions = number(&form, "max_redemptions", &mut invalid);
    let product_ids: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "product_ids")
        .map(|(_, v)| v.clone())
        .collect();
    if !invalid.errors.is_empty() {
        return coupons_page(
            &ctx,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            errors_of(&invalid),
            None,
        )
        .await;
    }
    let input = CouponInput {
        code: field(&form, "code"),
        percent_off,
        amount_off,
        currency: currency.as_deref(),
        expires_at,
        max_redemptions,
        product_ids: &product_ids,
        active: true,
    };
    match kassa_orders::create_coupon(&ctx.web.store, &staff.tenant.id, staff.mode, &input).await {
        Ok(c) => redirect(&with_notice(
            "/dashboard/coupons",
            &format!(
                "Coupon {} created. Customers enter it at checkout, or add ?coupon={} to a buy link.",
                c.fields.code, c.fields.code
            ),
        )),
        Err(OrdersError::Invalid(invalid)) => {
            let mut errors = errors_of(&invalid);
            if let Some(m) = errors.remove("expires_at") {
                errors.insert("expires_on".into(), m);
            }
            coupons_page(
                &ctx,
                &staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                errors,
                None,
            )
            .await
        }
        Err(OrdersError::Conflict(m)) => {
            coupons_page(
                &ctx,
                &staff,
                StatusCode::CONFLICT,
                &form,
                one_error("code", m),
                None,
            )
            .await
        }
        Err(e) => failure(e),
    }
}
