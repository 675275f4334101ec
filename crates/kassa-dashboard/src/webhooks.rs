//! Webhook endpoints: the list, a new endpoint (URL, description, the event types it
//! takes), and an endpoint's page: its signing secret revealed on request and
//! rotated (the old one keeps signing for a day), turning it off and on, changing and
//! deleting it, the log of its delivery attempts page by page, and sending an event
//! again. The URL rules are
//! the API's (`kassa_orders::endpoint_fields`). The pages follow the header's
//! test/live switch: they list, make and change only endpoints of the dashboard's
//! mode, which receive only that mode's events.

use kassa_domain::account::Permission;
use kassa_domain::event::EventKind;
use kassa_domain::ids::WebhookEndpointId;
use kassa_domain::webhook::generate_secret;
use kassa_orders::{EndpointInput, endpoint_fields};
use kassa_store::{DeliveryRecord, PageRequest, StoreError, WebhookEndpointRecord};
use minijinja::{Value, context};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, all, errors_of, failure, field, not_found, one_error, optional, page,
    query, redirect, staff, staff_form, when, with_notice,
};

/// Deliveries shown per page of the attempts log.
const PAGE_SIZE: i64 = 20;
/// The part of a receiver's answer shown in the log (the store keeps 1 KiB).
const RESPONSE_SHOWN: usize = 200;

fn view(e: &WebhookEndpointRecord) -> Value {
    context! {
        id => e.id.as_str(), url => e.fields.url.clone(),
        description => e.fields.description.clone(),
        event_types => e.fields.event_types.clone(),
        disabled => e.fields.disabled, created_at => when(&e.created_at),
    }
}

/// The event types as checkboxes, with those in `checked` ticked.
fn event_choices(checked: &[String]) -> Vec<Value> {
    EventKind::ALL
        .iter()
        .map(|k| context! { value => k.as_str(), checked => checked.iter().any(|c| c == k.as_str()) })
        .collect()
}

async fn list_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    typed: &[(String, String)],
    errors: Errors,
    notice: Option<String>,
) -> Response {
    let endpoints = match ctx
        .web
        .store
        .list_webhook_endpoints(&staff.tenant.id, staff.mode, &all())
        .await
    {
        Ok(p) => p.data,
        Err(e) => return failure(e),
    };
    let endpoints: Vec<_> = endpoints.iter().map(view).collect();
    page(
        staff,
        status,
        "webhooks.html",
        "webhooks",
        context! {
            endpoints, errors, notice,
            url => field(typed, "url"), description => field(typed, "description"),
            events => event_choices(&chosen_types(typed)),
        },
    )
}

fn chosen_types(form: &[(String, String)]) -> Vec<String> {
    form.iter()
        .filter(|(k, _)| k == "event_types")
        .map(|(_, v)| v.clone())
        .collect()
}

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    list_page(
        &ctx,
        &staff,
        StatusCode::OK,
        &[],
        Errors::new(),
        query(req, "notice"),
    )
    .await
}

/// The endpoint a form (new or changed) describes, or the messages for its fields.
fn fields_of(
    form: &[(String, String)],
    disabled: bool,
    network: kassa_webhooks::NetworkPolicy,
) -> Result<kassa_store::WebhookEndpointFields, Errors> {
    let types = chosen_types(form);
    let description = optional(form, "description");
    let input = EndpointInput {
        url: field(form, "url"),
        description: description.as_deref(),
        event_types: &types,
        disabled,
    };
    endpoint_fields(input, network).map_err(|invalid| form_errors(&invalid))
}

/// Field errors as the form shows them: one message for the event type checkboxes.
fn form_errors(invalid: &kassa_domain::Invalid) -> Errors {
    let mut errors = errors_of(invalid);
    if let Some(key) = errors
        .keys()
        .find(|k| k.starts_with("event_types["))
        .cloned()
        && let Some(message) = errors.remove(&key)
    {
        errors.insert("event_types".into(), message);
    }
    errors
}

#[handler]
pub async fn create(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let fields = match fields_of(&form, false, ctx.network) {
        Ok(f) => f,
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return list_page(&ctx, &staff, status, &form, errors, None).await;
        }
    };
    match ctx
        .web
        .store
        .create_webhook_endpoint(&staff.tenant.id, staff.mode, &fields, &generate_secret())
        .await
    {
        Ok(e) => redirect(&with_notice(
            &format!("/dashboard/webhooks/{}", e.id),
            "Endpoint created. Reveal its signing secret below to verify the events it receives.",
        )),
        Err(e) => failure(e),
    }
}

fn delivery_view(d: &DeliveryRecord) -> Value {
    let attempts: Vec<_> = d
        .attempts
        .iter()
        .map(|a| {
            let shown: String = a.response.chars().take(RESPONSE_SHOWN).collect();
            let cut = shown.len() < a.response.len();
            context! {
                attempt => a.attempt, at => when(&a.created_at),
                status => a.status_code, latency_ms => a.latency_ms,
                response => if cut { format!("{shown}…") } else { shown },
                ok => a.status_code.is_some_and(|c| (200..300).contains(&c)),
            }
        })
        .collect();
    context! {
        event_id => d.event_id.clone(), event_type => d.event_type.clone(),
        status => d.status.clone(), next_attempt_at => d.next_attempt_at.as_ref().map(when),
        created_at => when(&d.created_at), attempts,
    }
}

/// The endpoint with this id in the member's store; otherwise the answer to give.
async fn endpoint_of(
    ctx: &Ctx,
    staff: &Staff,
    id: &str,
) -> Result<WebhookEndpointRecord, Response> {
    let Ok(id) = WebhookEndpointId::parse(id) else {
        return Err(not_found(staff));
    };
    match ctx
        .web
        .store
        .webhook_endpoint_in(&staff.tenant.id, staff.mode, &id)
        .await
    {
        Ok(e) => Ok(e),
        Err(StoreError::NotFound) => Err(not_found(staff)),
        Err(e) => Err(failure(e)),
    }
}

/// The endpoint's page; `extra` adds the secret when it was asked for, or errors.
async fn endpoint_page(
    ctx: &Ctx,
    staff: &Staff,
    req: &Request,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let endpoint = match endpoint_of(ctx, staff, id).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let id = &endpoint.id;
    let after = query(req, "after").filter(|a| a.starts_with("whd_"));
    let request = PageRequest {
        after: after.clone(),
        limit: PAGE_SIZE,
    };
    let deliveries = match ctx
        .web
        .store
        .list_deliveries(&staff.tenant.id, id, &request)
        .await
    {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let path = format!("/dashboard/webhooks/{id}");
    let older = deliveries
        .next_cursor
        .map(|c| format!("{path}?after={c}#attempts"));
    let newest = after.map(|_| format!("{path}#attempts"));
    let previous_until = endpoint
        .previous_secret_expires_at
        .filter(|t| t.millis() > kassa_store::Timestamp::now().millis())
        .map(|t| when(&t));
    let secret_version = secret_version(&endpoint);
    // The change form holds the endpoint as it is, or what was just typed (`extra`).
    let typed = extra.get_attr("edit").ok().filter(|v| !v.is_undefined());
    let current = typed.unwrap_or_else(|| {
        context! {
            url => endpoint.fields.url.clone(),
            description => endpoint.fields.description.clone().unwrap_or_default(),
            events => event_choices(&endpoint.fields.event_types),
        }
    });
    page(
        staff,
        status,
        "webhook.html",
        "webhooks",
        context! {
            endpoint => view(&endpoint), previous_until, secret_version, edit => current,
            deliveries => deliveries.data.iter().map(delivery_view).collect::<Vec<_>>(),
            older, newest,
            notice => query(req, "notice"),
            ..extra
        },
    )
}

#[handler]
pub async fn show(ctx: Data<&Ctx>, req: &Request, Path(id): Path<String>) -> Response {
    let staff = match staff(&ctx, req, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let extra = context! { errors => Errors::new() };
    endpoint_page(&ctx, &staff, req, &id, StatusCode::OK, extra).await
}

/// Shows the signing secret, on the answer to this POST only (never in a URL).
#[handler]
pub async fn reveal_secret(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    secret_page(&ctx, req, &id, body, false).await
}

/// A new secret, shown at once; the old one keeps signing for a day.
#[handler]
pub async fn rotate_secret(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    secret_page(&ctx, req, &id, body, true).await
}

/// Which secret the endpoint's page showed: its rotation form names it, so the same
/// form sent again (a reload of the page the rotation answered) rotates nothing more,
/// and the secret the receiver still uses keeps signing for its 24 hours.
fn secret_version(endpoint: &kassa_store::WebhookEndpointRecord) -> String {
    endpoint
        .previous_secret_expires_at
        .map_or_else(|| "first".to_owned(), |t| t.millis().to_string())
}

/// The endpoint's page with its secret, a new one when `rotate` (unless the secret the
/// form was made for was rotated already).
async fn secret_page(ctx: &Ctx, req: &Request, id: &str, body: Body, rotate: bool) -> Response {
    let (staff, form) = match staff_form(ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut endpoint = match endpoint_of(ctx, &staff, id).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let already = rotate && field(&form, "secret_version") != secret_version(&endpoint);
    if rotate && !already {
        endpoint = match ctx
            .web
            .store
            .rotate_webhook_secret(
                &staff.tenant.id,
                staff.mode,
                &endpoint.id,
                &generate_secret(),
            )
            .await
        {
            Ok(e) => e,
            Err(e) => return failure(e),
        };
    }
    let secret = endpoint.secret.expose_secret().to_owned();
    let extra = context! { errors => Errors::new(), secret, rotated => rotate, already };
    endpoint_page(ctx, &staff, req, id, StatusCode::OK, extra).await
}

/// Turns the endpoint off or on again (after a receiver said 410, or failed for days).
#[handler]
pub async fn set_state(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let endpoint = match endpoint_of(&ctx, &staff, &id).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let mut fields = endpoint.fields;
    fields.disabled = field(&form, "state") == "disabled";
    let notice = if fields.disabled {
        "Endpoint turned off: no events are sent to it until you turn it on."
    } else {
        "Endpoint turned on: new events are sent to it."
    };
    save(&ctx, &staff, &endpoint.id, &fields, notice).await
}

/// Sends an event to the endpoint again, now.
#[handler]
pub async fn redeliver(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    // Which of the two is missing decides the answer: another store's endpoint is a
    // 404, an unknown event a message next to the field.
    let endpoint = match endpoint_of(&ctx, &staff, &id).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let event = field(&form, "event_id");
    match ctx
        .web
        .store
        .redeliver(&staff.tenant.id, staff.mode, &endpoint.id, event)
        .await
    {
        Ok(()) => redirect(&with_notice(
            &format!("/dashboard/webhooks/{id}"),
            &format!("{event} is on its way to the endpoint again."),
        )),
        Err(StoreError::NotFound) => {
            let extra = context! {
                errors => one_error("event_id", "No event with this id in this store."),
                event_id => event,
            };
            endpoint_page(
                &ctx,
                &staff,
                req,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                extra,
            )
            .await
        }
        Err(e) => failure(e),
    }
}

/// Changes the endpoint's URL, description and event types, by the rules of a new one.
#[handler]
pub async fn edit(ctx: Data<&Ctx>, req: &Request, Path(id): Path<String>, body: Body) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let endpoint = match endpoint_of(&ctx, &staff, &id).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let fields = match fields_of(&form, endpoint.fields.disabled, ctx.network) {
        Ok(f) => f,
        Err(errors) => {
            // The form shows what was typed, with the messages beside it.
            let typed = context! {
                url => field(&form, "url"), description => field(&form, "description"),
                events => event_choices(&chosen_types(&form)),
            };
            let extra = context! { errors, edit => typed };
            return endpoint_page(
                &ctx,
                &staff,
                req,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                extra,
            )
            .await;
        }
    };
    let notice = "Endpoint changed. New events are sent as it says now.";
    save(&ctx, &staff, &endpoint.id, &fields, notice).await
}

/// Stores the endpoint's new fields and goes back to its page with `notice`.
async fn save(
    ctx: &Ctx,
    staff: &Staff,
    id: &WebhookEndpointId,
    fields: &kassa_store::WebhookEndpointFields,
    notice: &str,
) -> Response {
    match ctx
        .web
        .store
        .update_webhook_endpoint(&staff.tenant.id, staff.mode, id, fields)
        .await
    {
        Ok(_) => redirect(&with_notice(&format!("/dashboard/webhooks/{id}"), notice)),
        Err(StoreError::NotFound) => not_found(staff),
        Err(e) => failure(e),
    }
}

/// Deletes the endpoint: nothing more is sent to it, its log goes with it.
#[handler]
pub async fn delete(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, _) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let endpoint = match endpoint_of(&ctx, &staff, &id).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match ctx
        .web
        .store
        .delete_webhook_endpoint(&staff.tenant.id, staff.mode, &endpoint.id)
        .await
    {
        Ok(()) => redirect(&with_notice(
            "/dashboard/webhooks",
            &format!(
                "Endpoint {} deleted: no more events are sent to it.",
                endpoint.fields.url
            ),
        )),
        Err(StoreError::NotFound) => not_found(&staff),
        Err(e) => failure(e),
    }
}
