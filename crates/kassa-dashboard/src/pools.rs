//! License pools: the list with stock, a new pool, and a pool's page where keys are
//! uploaded (a text file with one key per line, a CSV file, or pasted) and the
//! refused duplicates are listed.

use kassa_domain::Invalid;
use kassa_domain::account::Permission;
use kassa_domain::catalog::{
    csv_keys, parse_license_keys, parse_low_stock_threshold, parse_pool_name,
};
use kassa_domain::ids::LicensePoolId;
use kassa_domain::mode::Mode;
use kassa_orders::OrdersError;
use kassa_store::{LicensePoolRecord, StoreError};
use minijinja::{Value, context};
use poem::http::StatusCode;
use poem::web::{Data, Multipart, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, Upload, all, errors_of, failure, field, multipart, not_found, one_error,
    page, query, redirect, staff, staff_posting, with_notice,
};

/// Refused keys listed on the page at most.
const MAX_LISTED: usize = 100;

fn view(p: &LicensePoolRecord) -> Value {
    context! {
        id => p.id.as_str(), name => p.name.clone(), available => p.available,
        assigned => p.assigned, low_stock_threshold => p.low_stock_threshold,
        low => p.low_stock_threshold.is_some_and(|t| p.available <= t),
        return_refunded_keys => p.return_refunded_keys,
    }
}

async fn list_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    typed: (&str, &str),
    errors: Errors,
    notice: Option<String>,
) -> Response {
    let pools = match ctx
        .web
        .store
        .list_license_pools_of(&staff.tenant.id, staff.mode, &all())
        .await
    {
        Ok(p) => p.data,
        Err(e) => return failure(e),
    };
    let pools: Vec<_> = pools.iter().map(view).collect();
    page(
        staff,
        status,
        "pools.html",
        "pools",
        context! {
            pools, name => typed.0, low_stock_threshold => typed.1, errors, notice,
            can_edit => staff.may(Permission::EditCatalog),
        },
    )
}

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    list_page(
        &ctx,
        &staff,
        StatusCode::OK,
        ("", ""),
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
    let (name, threshold) = (field(&form, "name"), field(&form, "low_stock_threshold"));
    let mut invalid = Invalid::default();
    let parsed_name = invalid.check(parse_pool_name(name));
    let parsed_threshold = if threshold.is_empty() {
        Some(None)
    } else {
        match threshold.parse::<i64>() {
            Ok(n) => invalid.check(parse_low_stock_threshold(Some(n))),
            Err(_) => {
                invalid.push("low_stock_threshold", "must be a whole number");
                None
            }
        }
    };
    let (Some(parsed_name), Some(parsed_threshold)) = (parsed_name, parsed_threshold) else {
        return list_page(
            &ctx,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            (name, threshold),
            errors_of(&invalid),
            None,
        )
        .await;
    };
    let give_back = field(&form, "return_refunded_keys") == "true";
    let created = match ctx
        .web
        .store
        .create_license_pool(&staff.tenant.id, staff.mode, &parsed_name, parsed_threshold)
        .await
    {
        Ok(pool) if give_back => {
            ctx.web
                .store
                .set_return_refunded_keys(&staff.tenant.id, &pool.id, true)
                .await
        }
        other => other,
    };
    match created {
        Ok(pool) => redirect(&with_notice(
            &format!("/dashboard/pools/{}", pool.id),
            "Pool created. Upload its keys.",
        )),
        Err(e) => failure(e),
    }
}

async fn pool_page(
    ctx: &Ctx,
    staff: &Staff,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    match pool_of(ctx, staff, id).await {
        Ok(pool) => page(
            staff,
            status,
            "pool.html",
            "pools",
            context! { pool => view(&pool), can_edit => staff.may(Permission::EditCatalog), ..extra },
        ),
        Err(resp) => resp,
    }
}

/// The pool, when it is of the dashboard's mode: the other world's pools are not
/// found, as another store's are.
async fn pool_of(ctx: &Ctx, staff: &Staff, id: &str) -> Result<LicensePoolRecord, Response> {
    let Ok(id) = LicensePoolId::parse(id) else {
        return Err(not_found(staff));
    };
    match ctx.web.store.license_pool(&staff.tenant.id, &id).await {
        Ok(pool) if Mode::from_livemode(pool.livemode) == staff.mode => Ok(pool),
        Ok(_) | Err(StoreError::NotFound) => Err(not_found(staff)),
        Err(e) => Err(failure(e)),
    }
}

#[handler]
pub async fn show(ctx: Data<&Ctx>, req: &Request, Path(id): Path<String>) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let extra = context! { errors => Errors::new(), notice => query(req, "notice") };
    pool_page(&ctx, &staff, &id, StatusCode::OK, extra).await
}

/// The errors of a key upload, with line numbers as people count them.
fn key_errors(invalid: &Invalid) -> Errors {
    let lines: Vec<String> = invalid
        .errors
        .iter()
        .map(|e| {
            match e
                .field
                .strip_prefix("keys[")
                .and_then(|r| r.strip_suffix(']'))
            {
                Some(i) => format!(
                    "Line {}: {}",
                    i.parse::<usize>().map_or(0, |i| i + 1),
                    e.message
                ),
                None => e.message.clone(),
            }
        })
        .collect();
    one_error("keys", format!("Nothing was added. {}", lines.join("; ")))
}

#[handler]
pub async fn upload_keys(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    parts: Multipart,
) -> Response {
    let (form, file) = multipart(parts, "file").await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let refuse = |errors: Errors| {
        let extra = context! { errors, pasted => field(&form, "keys").to_owned() };
        pool_page(&ctx, &staff, &id, StatusCode::UNPROCESSABLE_ENTITY, extra)
    };
    let raw: Vec<String> = match &file {
        Some(Upload { file_name, bytes }) => {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return refuse(one_error(
                    "keys",
                    "The file is not text (UTF-8): upload a .txt or .csv file.",
                ))
                .await;
            };
            if file_name.to_lowercase().ends_with(".csv") {
                match csv_keys("keys", text) {
                    Ok(keys) => keys,
                    Err(invalid) => return refuse(errors_of(&invalid)).await,
                }
            } else {
                text.lines().map(str::to_owned).collect()
            }
        }
        None => field(&form, "keys").lines().map(str::to_owned).collect(),
    };
    let upload = match parse_license_keys(raw.iter().map(String::as_str)) {
        Ok(u) => u,
        Err(invalid) => return refuse(key_errors(&invalid)).await,
    };
    let pool = match pool_of(&ctx, &staff, &id).await {
        Ok(pool) => pool,
        Err(resp) => return resp,
    };
    let added = match kassa_orders::add_keys(
        &ctx.web.store,
        &staff.tenant.id,
        &pool.id,
        &upload.keys,
    )
    .await
    {
        Ok(a) => a,
        Err(OrdersError::NotFound) => return not_found(&staff),
        Err(e) => return failure(e),
    };
    let mut refused = upload.repeated;
    refused.extend(added.duplicates);
    let extra = context! {
        errors => Errors::new(),
        result => context! {
            added => added.added,
            refused => refused.len(),
            refused_keys => refused.into_iter().take(MAX_LISTED).collect::<Vec<_>>(),
        },
    };
    pool_page(&ctx, &staff, &id, StatusCode::OK, extra).await
}
