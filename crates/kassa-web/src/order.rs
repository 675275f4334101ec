//! The order's pages, opened by its unguessable token: the payment page (card form or
//! bank transfer instructions, switching between them while unpaid), the order page
//! (status and, once delivered, the licenses) and the invoice.

use std::sync::Arc;

use chrono::Utc;

use kassa_domain::mode::Mode;
use kassa_domain::order::{OrderStatus, PaymentMethod};
use kassa_domain::tenant::TenantSettings;
use kassa_domain::workflow::Refused;
use kassa_limits::Action;
use kassa_orders::{CardOutcome, OrdersError};
use kassa_payments::CardInput;
use kassa_store::{OrderRecord, StoreError, TenantRecord};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{self, Errors, WebContext, form_value};
use kassa_emails::order_view;

/// The store and order a page is about, or the page to show instead.
async fn load(
    ctx: &WebContext,
    req: &Request,
    slug: &str,
    token: &str,
) -> Result<(TenantRecord, OrderRecord), Response> {
    let tenant = page::tenant(ctx, slug, req).await?;
    let valid_token = token.len() == 32 && token.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid_token {
        return Err(page::not_found(Some(&tenant), page::pick_locale(None, req)));
    }
    match ctx.store.order_by_token(&tenant.id, token).await {
        Ok(order) => Ok((tenant, order)),
        Err(StoreError::NotFound) => {
            Err(page::not_found(Some(&tenant), page::pick_locale(None, req)))
        }
        Err(e) => Err(page::failure(e)),
    }
}

fn urls(tenant: &TenantRecord, order: &OrderRecord) -> (String, String, String, String) {
    let base = format!("/{}/orders/{}", tenant.slug, order.token);
    (
        base.clone(),
        format!("{base}/pay"),
        format!("{base}/method"),
        format!("{base}/invoice"),
    )
}

#[handler]
pub async fn show(
    req: &Request,
    Path((slug, token)): Path<(String, String)>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let (tenant, order) = match load(ctx, req, &slug, &token).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let settings = TenantSettings::from_json(&tenant.settings);
    let t = page::texts(page::pick_locale(Some(&order.locale), req));
    let (_, pay_url, _, invoice_url) = urls(&tenant, &order);
    page::render(
        StatusCode::OK,
        "order.html",
        minijinja::context! {
            t => t,
            store => page::brand(&tenant, &settings),
            test_mode => !order.livemode,
            order => order_view(&order, t),
            pay_url => pay_url,
            invoice_url => invoice_url,
        },
    )
}

#[handler]
pub async fn invoice(
    req: &Request,
    Path((slug, token)): Path<(String, String)>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let (tenant, order) = match load(ctx, req, &slug, &token).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let settings = TenantSettings::from_json(&tenant.settings);
    let t = page::texts(page::pick_locale(Some(&order.locale), req));
    page::render(
        StatusCode::OK,
        "invoice.html",
        minijinja::context! {
            t => t,
            store => page::brand(&tenant, &settings),
            test_mode => !order.livemode,
            order => order_view(&order, t),
            bank => settings.bank,
        },
    )
}

/// What the payment page shows beside the order: a decline, field errors, the
/// expiry typed, and the Stripe card form of a pending Stripe attempt.
#[derive(Default)]
struct Shown {
    failure: Option<String>,
    errors: Errors,
    expiry: String,
    stripe: Option<kassa_orders::StripeCardForm>,
}

impl Shown {
    fn errors(errors: Errors) -> Self {
        Self {
            errors,
            ..Self::default()
        }
    }
}

/// Renders the payment page, with a decline or field errors when there are some.
fn render_pay(
    ctx: &WebContext,
    req: &Request,
    tenant: &TenantRecord,
    order: &OrderRecord,
    shown: Shown,
) -> Response {
    let settings = TenantSettings::from_json(&tenant.settings);
    let t = page::texts(page::pick_locale(Some(&order.locale), req));
    let (csrf, csrf_cookie) = page::csrf(ctx, req);
    let (order_url, pay_action, method_action, invoice_url) = urls(tenant, order);
    let Shown {
        failure,
        errors,
        expiry,
        stripe,
    } = shown;
    let status = if failure.is_some() {
        StatusCode::PAYMENT_REQUIRED
    } else if errors.contains_key("offer") || errors.contains_key("coupon") {
        // The signed offer expired, or the coupon's use it held went to another
        // order: this order can no longer be paid here.
        StatusCode::GONE
    } else if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let nonce = crate::stripe_page::nonce();
    let stripe_view = stripe.map(|form| crate::stripe_page::view(&ctx.providers, form, &nonce, t));
    let resp = page::render(
        status,
        "pay.html",
        minijinja::context! {
            t => t,
            store => page::brand(tenant, &settings),
            test_mode => !order.livemode,
            order => order_view(order, t),
            methods => page::method_choices(tenant, &settings, Mode::from_livemode(order.livemode), order.payment_method.as_str(), t),
            csrf => csrf,
            order_url => order_url,
            pay_action => pay_action,
            method_action => method_action,
            invoice_url => invoice_url,
            bank => settings.bank,
            failure => failure,
            errors => errors,
            form => minijinja::context! { expiry => expiry },
            stripe => stripe_view,
        },
    );
    let resp = crate::stripe_page::with_policy(resp, &ctx.providers, &nonce);
    page::with_cookies(resp, &csrf_cookie.into_iter().collect::<Vec<_>>())
}

#[handler]
pub async fn pay_page(
    req: &Request,
    Path((slug, token)): Path<(String, String)>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let (tenant, order) = match load(ctx, req, &slug, &token).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    if order.status != OrderStatus::NotPaid {
        return page::see_other(&urls(&tenant, &order).0, &[]);
    }
    let mut shown = Shown::default();
    match order.state().map(|o| o.offer_open(Utc::now())) {
        Ok(Ok(())) => {}
        Ok(Err(expired)) => {
            let t = page::texts(page::pick_locale(Some(&order.locale), req));
            shown
                .errors
                .insert("offer".into(), page::refusal_message(&expired, t));
        }
        Err(e) => return page::failure(e),
    }
    if order.payment_method == PaymentMethod::Stripe && shown.errors.is_empty() {
        // A Stripe attempt under way: its card form, read back from Stripe.
        match kassa_orders::stripe_card_form(&ctx.store, &ctx.providers, &tenant, &order).await {
            Ok(form) => shown.stripe = form,
            Err(OrdersError::Invalid(invalid)) => shown.errors = by_field(invalid, &order, req),
            Err(e) => return page::failure(e),
        }
    }
    render_pay(ctx, req, &tenant, &order, shown)
}

/// A use case's field errors, to show next to their fields in the order's language.
fn by_field(invalid: kassa_domain::Invalid, order: &OrderRecord, req: &Request) -> Errors {
    let t = page::texts(page::pick_locale(Some(&order.locale), req));
    invalid
        .errors
        .into_iter()
        .map(|e| {
            let message = page::field_message(&e, t);
            (e.field, message)
        })
        .collect()
}

fn forged(tenant: &TenantRecord, order: &OrderRecord, req: &Request) -> Response {
    page::error_page(
        StatusCode::FORBIDDEN,
        Some(tenant),
        page::pick_locale(Some(&order.locale), req),
        "form_expired_title",
        "form_expired",
    )
}

/// Counts a form posted on an order's pages, and `action`, against the rate limits;
/// over one, the page to answer with instead.
fn over_limit(
    ctx: &WebContext,
    req: &Request,
    action: Action<'_>,
    tenant: &TenantRecord,
    order: &OrderRecord,
) -> Option<Response> {
    let lang = page::pick_locale(Some(&order.locale), req);
    let form = Action::Form {
        ip: page::client_addr(req),
    };
    page::over_limit(ctx, form, tenant, lang)
        .or_else(|| page::over_limit(ctx, action, tenant, lang))
}

/// The order a form was posted for, and the form, once its CSRF token checks out.
async fn load_posted(
    ctx: &WebContext,
    req: &Request,
    body: Body,
    slug: &str,
    token: &str,
) -> Result<(TenantRecord, OrderRecord, Vec<(String, String)>), Response> {
    let (tenant, order) = load(ctx, req, slug, token).await?;
    let form = page::read_form(body).await;
    if !page::csrf_ok(req, &form) {
        return Err(forged(&tenant, &order, req));
    }
    Ok((tenant, order, form))
}

#[handler]
pub async fn pay(
    req: &Request,
    body: Body,
    Path((slug, token)): Path<(String, String)>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let (tenant, order, form) = match load_posted(ctx, req, body, &slug, &token).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    if order.status != OrderStatus::NotPaid {
        return page::see_other(&urls(&tenant, &order).0, &[]);
    }
    let card = Action::CardTry {
        ip: page::client_addr(req),
        store: tenant.id.as_str(),
        order: &order.id,
        email: order.customer.email.as_deref(),
    };
    if let Some(resp) = over_limit(ctx, req, card, &tenant, &order) {
        return resp;
    }
    if order.payment_method == PaymentMethod::Stripe {
        return start_stripe(ctx, req, &tenant, &order, &[]).await;
    }
    let expiry = form_value(&form, "expiry").unwrap_or_default();
    let input = CardInput {
        number: form_value(&form, "card_number").unwrap_or_default(),
        expiry,
        cvc: form_value(&form, "cvc").unwrap_or_default(),
    };
    let t = page::texts(page::pick_locale(Some(&order.locale), req));
    match kassa_orders::pay_with_card(&ctx.store, &tenant, &order, &input).await {
        Ok(CardOutcome::Paid(order)) => page::see_other(&urls(&tenant, &order).0, &[]),
        Ok(CardOutcome::Declined { order, payment }) => {
            let code = payment.failure_code.unwrap_or_default();
            let message = t
                .get(&code)
                .cloned()
                .or(payment.failure_message)
                .unwrap_or_default();
            let shown = Shown {
                failure: Some(message),
                expiry: expiry.to_owned(),
                ..Shown::default()
            };
            render_pay(ctx, req, &tenant, &order, shown)
        }
        Err(OrdersError::Invalid(invalid)) => {
            let shown = Shown {
                expiry: expiry.to_owned(),
                ..Shown::errors(by_field(invalid, &order, req))
            };
            render_pay(ctx, req, &tenant, &order, shown)
        }
        Err(OrdersError::Refused(_) | OrdersError::Conflict(_)) => {
            page::see_other(&urls(&tenant, &order).0, &[])
        }
        Err(e) => page::failure(e),
    }
}

/// Starts a Stripe payment of `order` (a PaymentIntent, recorded as a pending
/// attempt) and sends the customer to the payment page, where Stripe.js's card form
/// confirms it; or shows the payment page with why not next to the method. The
/// payment page, and the order page after it, pay nothing: Stripe's webhook does.
pub(crate) async fn start_stripe(
    ctx: &WebContext,
    req: &Request,
    tenant: &TenantRecord,
    order: &OrderRecord,
    cookies: &[String],
) -> Response {
    let (order_url, pay_url, _, _) = urls(tenant, order);
    match kassa_orders::pay_with_stripe(&ctx.store, &ctx.providers, tenant, order).await {
        Ok(()) => page::see_other(&pay_url, cookies),
        Err(OrdersError::Invalid(invalid)) => {
            let resp = render_pay(
                ctx,
                req,
                tenant,
                order,
                Shown::errors(by_field(invalid, order, req)),
            );
            page::with_cookies(resp, cookies)
        }
        Err(OrdersError::Refused(_) | OrdersError::Conflict(_)) => {
            page::see_other(&order_url, cookies)
        }
        Err(e) => page::failure(e),
    }
}

#[handler]
pub async fn change_method(
    req: &Request,
    body: Body,
    Path((slug, token)): Path<(String, String)>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let (tenant, order, form) = match load_posted(ctx, req, body, &slug, &token).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let wrong_method = || {
        let t = page::texts(page::pick_locale(Some(&order.locale), req));
        let mut errors = Errors::new();
        errors.insert("payment_method".into(), page::text(t, "choose_a_method"));
        render_pay(ctx, req, &tenant, &order, Shown::errors(errors))
    };
    // Switching to an offline method emails its instructions.
    let email = Action::EmailCustomer {
        email: order.customer.email.as_deref(),
    };
    if let Some(resp) = over_limit(ctx, req, email, &tenant, &order) {
        return resp;
    }
    let chosen = form_value(&form, "payment_method").unwrap_or_default();
    let Ok(method) = PaymentMethod::parse("payment_method", chosen) else {
        return wrong_method();
    };
    // Whether the store offers the method is the workflow's to say.
    match kassa_orders::switch_method(&ctx.store, &tenant, &order.id, method).await {
        Ok(()) => page::see_other(&urls(&tenant, &order).1, &[]),
        Err(OrdersError::Refused(Refused::MethodNotAllowed(_))) => wrong_method(),
        // The sandbox for a live order: said next to the methods.
        Err(OrdersError::Invalid(invalid)) => render_pay(
            ctx,
            req,
            &tenant,
            &order,
            Shown::errors(by_field(invalid, &order, req)),
        ),
        Err(OrdersError::Refused(_)) => page::see_other(&urls(&tenant, &order).0, &[]),
        Err(e) => page::failure(e),
    }
}
