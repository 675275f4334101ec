//! API keys: the store's keys (name, prefix, created, revoked), a new key shown once
//! on the page that answers its creation (never stored in clear, never put in a URL),
//! and revoking a key after a confirmation.

use kassa_domain::access::KeyScope;
use kassa_domain::account::Permission;
use kassa_domain::error::parse_text;
use kassa_domain::ids::ApiKeyId;
use kassa_domain::tenant::NewApiKey;
use kassa_store::{ApiKeyRecord, StoreError};
use minijinja::{Value, context};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, errors_of, failure, field, not_found, page, query, redirect, staff,
    staff_form, when, with_notice,
};

fn view(k: &ApiKeyRecord) -> Value {
    context! {
        id => k.id.as_str(), name => k.name.clone(), prefix => k.prefix.clone(),
        created_at => when(&k.created_at),
        revoked_at => k.revoked_at.as_ref().map(when),
    }
}

/// The list with the form for a new key; `created` is the new key's secret, shown on
/// this one answer only.
async fn keys_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    name: &str,
    errors: Errors,
    extra: Value,
) -> Response {
    // The keys of the world the dashboard shows, as on Stripe: a test key is listed in
    // test mode, a live key in live mode.
    let keys = match ctx
        .web
        .store
        .list_api_keys(&staff.tenant.id, staff.mode)
        .await
    {
        Ok(k) => k,
        Err(e) => return failure(e),
    };
    let keys: Vec<_> = keys.iter().map(view).collect();
    page(
        staff,
        status,
        "api_keys.html",
        "api-keys",
        context! { keys, name, errors, ..extra },
    )
}

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let extra = context! { notice => query(req, "notice") };
    keys_page(&ctx, &staff, StatusCode::OK, "", Errors::new(), extra).await
}

#[handler]
pub async fn create(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let typed = field(&form, "name");
    let name = match parse_text("name", typed, 100) {
        Ok(n) => n,
        Err(invalid) => {
            return keys_page(
                &ctx,
                &staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                typed,
                errors_of(&invalid),
                context! {},
            )
            .await;
        }
    };
    // A key does everything unless the form narrows it.
    let scope = KeyScope::from_name(field(&form, "scope")).unwrap_or(KeyScope::Full);
    // A key of the world the dashboard shows.
    let key = NewApiKey::generate(staff.mode);
    let record = match ctx
        .web
        .store
        .create_api_key(&staff.tenant.id, &name, &key, scope)
        .await
    {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    // Shown on this answer only: the store keeps its hash.
    let created = context! {
        name => record.name, prefix => record.prefix,
        secret => key.secret.expose_secret().to_owned(),
    };
    keys_page(
        &ctx,
        &staff,
        StatusCode::OK,
        "",
        Errors::new(),
        context! { created },
    )
    .await
}

/// The key with this id in the member's store.
async fn key_of(ctx: &Ctx, staff: &Staff, id: &str) -> Result<ApiKeyRecord, Response> {
    let Ok(id) = ApiKeyId::parse(id) else {
        return Err(not_found(staff));
    };
    match ctx
        .web
        .store
        .list_api_keys(&staff.tenant.id, staff.mode)
        .await
    {
        Ok(keys) => keys
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| not_found(staff)),
        Err(e) => Err(failure(e)),
    }
}

/// Asks before revoking: programs using the key stop working at once.
#[handler]
pub async fn confirm_revoke(ctx: Data<&Ctx>, req: &Request, Path(id): Path<String>) -> Response {
    let staff = match staff(&ctx, req, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match key_of(&ctx, &staff, &id).await {
        Ok(key) => page(
            &staff,
            StatusCode::OK,
            "api_key_revoke.html",
            "api-keys",
            context! { key => view(&key) },
        ),
        Err(resp) => resp,
    }
}

#[handler]
pub async fn revoke(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let staff = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok((s, _)) => s,
        Err(resp) => return resp,
    };
    let Ok(key) = ApiKeyId::parse(&id) else {
        return not_found(&staff);
    };
    match ctx
        .web
        .store
        .revoke_api_key(&staff.tenant.id, staff.mode, &key)
        .await
    {
        Ok(()) => redirect(&with_notice(
            "/dashboard/api-keys",
            "The key is revoked: requests with it are refused from now on.",
        )),
        Err(StoreError::NotFound) => not_found(&staff),
        Err(e) => failure(e),
    }
}
