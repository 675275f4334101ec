//! Orders: the list with filters and pages, and an order's page with its timeline
//! (events, payment attempts, emails, webhook attempts) and the actions a member may
//! take: record a bank transfer, refund, resend the licenses.

use chrono::NaiveDate;
use kassa_domain::Invalid;
use kassa_domain::account::Permission;
use kassa_domain::error::parse_text;
use kassa_domain::mode::Mode;
use kassa_domain::money::{Currency, Money, left_to_refund};
use kassa_domain::order::{DeliveryStatus, OrderStatus, PaymentMethod, PaymentStatus};
use kassa_domain::tenant::TenantSettings;
use kassa_orders::OrdersError;
use kassa_store::{OrderFilter, OrderRecord, PageRequest, StoreError, Timestamp};
use minijinja::{Value, context};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, errors_of, failure, field, not_found, one_error, page, query, redirect,
    staff, staff_posting, when, with_notice,
};

const PAGE_SIZE: i64 = 25;

fn date(raw: &str, field: &str, errors: &mut Errors) -> Option<Timestamp> {
    if raw.is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(0, 0, 0).map(|t| Timestamp::from(t.and_utc())),
        Err(_) => {
            errors.insert(field.into(), "must be a date like 2026-12-31".into());
            None
        }
    }
}

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeOrders).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let q = |name: &str| query(req, name).unwrap_or_default().trim().to_owned();
    let (status, delivery, email, from, to) = (
        q("status"),
        q("delivery_status"),
        q("email"),
        q("from"),
        q("to"),
    );
    let mut errors = Errors::new();
    let filter = OrderFilter {
        status: OrderStatus::from_name(&status),
        delivery_status: DeliveryStatus::from_name(&delivery),
        email: Some(email.clone()).filter(|e| !e.is_empty()),
        from: date(&from, "from", &mut errors),
        // Up to and including the day chosen.
        until: date(&to, "to", &mut errors).map(|t| Timestamp::from(t.millis() + 86_400_000)),
        mode: Some(staff.mode),
    };
    let request = PageRequest {
        after: query(req, "after").filter(|a| a.starts_with("ord_")),
        limit: PAGE_SIZE,
    };
    let found = match ctx
        .web
        .store
        .search_orders(&staff.tenant.id, &filter, &request)
        .await
    {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let orders: Vec<_> = found.data.iter().map(row).collect();
    let next = found.next_cursor.map(|after| {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &status)
            .append_pair("delivery_status", &delivery)
            .append_pair("email", &email)
            .append_pair("from", &from)
            .append_pair("to", &to)
            .append_pair("after", &after)
            .finish();
        format!("/dashboard/orders?{query}")
    });
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    let deliveries: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
    page(
        &staff,
        StatusCode::OK,
        "orders.html",
        "orders",
        context! {
            orders, next, errors, statuses, deliveries,
            filter => context! { status, delivery_status => delivery, email, from, to },
        },
    )
}

fn row(o: &OrderRecord) -> Value {
    context! {
        id => o.id.clone(), number => o.number, status => o.status.as_str(),
        delivery_status => o.delivery_status.as_str(),
        email => o.customer.email.clone(), total => kassa_emails::money(o.total, &o.currency),
        created_at => o.created_at.clone(), test_mode => o.test_mode,
    }
}

async fn order_page(
    ctx: &Ctx,
    staff: &Staff,
    id: &str,
    status: StatusCode,
    errors: Errors,
    notice: Option<String>,
) -> Response {
    let tenant = &staff.tenant.id;
    let order = match order_of(ctx, staff, id).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    // What the page offers is what the workflow would allow.
    let state = match order.state() {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let enabled = TenantSettings::from_json(&staff.tenant.settings).enabled_methods();
    let takes_transfer = state.status == OrderStatus::NotPaid
        && state.accepts(PaymentMethod::BankTransfer, &enabled);
    let (events, emails, attempts) = match tokio::try_join!(
        ctx.web.store.order_events(tenant, id),
        ctx.web.store.order_emails(tenant, id),
        ctx.web.store.order_webhook_attempts(tenant, id),
    ) {
        Ok(all) => all,
        Err(e) => return failure(e),
    };
    let mut timeline: Vec<(String, Value)> = Vec::new();
    for e in &events {
        timeline.push((
            e.created_at.0.to_rfc3339(),
            context! { at => when(&e.created_at), what => "event", title => e.kind.clone(), detail => e.id.clone() },
        ));
    }
    for e in &emails {
        let detail = match &e.last_error {
            Some(err) => format!("to {} · {} · {err}", e.to_address, e.status),
            None => format!("to {} · {}", e.to_address, e.status),
        };
        timeline.push((
            e.created_at.0.to_rfc3339(),
            context! { at => when(&e.created_at), what => "email", title => e.kind.replace('_', " "), detail },
        ));
    }
    for a in &attempts {
        let outcome = a
            .status_code
            .map_or_else(|| "no answer".to_owned(), |c| format!("HTTP {c}"));
        timeline.push((
            a.created_at.0.to_rfc3339(),
            context! {
                at => when(&a.created_at), what => "webhook",
                title => format!("{} → {}", a.event_type, a.url),
                detail => format!("attempt {} · {outcome} · {} ms", a.attempt, a.latency_ms),
            },
        ));
    }
    timeline.sort_by(|a, b| a.0.cmp(&b.0));
    let timeline: Vec<Value> = timeline.into_iter().map(|(_, v)| v).collect();
    let lines: Vec<_> = order
        .lines
        .iter()
        .map(|l| {
            context! {
                name => l.name.clone(), quantity => l.quantity,
                unit_amount => kassa_emails::money(l.unit_amount, &order.currency),
                total => kassa_emails::money(l.total, &order.currency),
                delivery_status => l.delivery_status.as_str(), licenses => l.licenses.clone(),
                refunded => l.refunded, revoked => !l.revoked_licenses.is_empty(),
                line_no => l.line_no, error => l.delivery_error.clone(),
                can_retry => staff.may(Permission::HelpCustomers) && state.retry_delivery(l.line_no).is_ok(),
            }
        })
        .collect();
    let payments: Vec<_> = order
        .payments
        .iter()
        .map(|p| {
            context! {
                method => p.method.as_str(), status => p.status.as_str(),
                amount => kassa_emails::money(p.amount, &p.currency),
                failure => p.failure_message.clone(), card => p.card_last4.clone(),
                reference => p.reference.clone(), created_at => p.created_at.clone(),
            }
        })
        .collect();
    let refunds: Vec<_> = order
        .refunds
        .iter()
        .map(|r| {
            context! {
                id => r.id.clone(), method => r.method.as_str(), status => r.status.as_str(),
                amount => kassa_emails::money(r.amount, &r.currency),
                reason => r.reason.clone(), reference => r.reference.clone(),
                lines => r.lines.clone(), created_at => r.created_at.clone(),
                failure_reason => r.failure_reason.clone(),
            }
        })
        .collect();
    let left = left_to_refund(order.total, order.amount_refunded);
    let amount_major = Currency::parse("currency", &order.currency)
        .map(|c| {
            Money {
                amount: order.total,
                currency: c,
            }
            .display()
        })
        .unwrap_or_default();
    let amount_major = amount_major
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    page(
        staff,
        status,
        "order.html",
        "orders",
        context! {
            order => row(&order), lines, payments, refunds, timeline, errors, notice,
            refunded => (order.amount_refunded > 0).then(|| kassa_emails::money(order.amount_refunded, &order.currency)),
            refundable => kassa_emails::money(left, &order.currency),
            can_refund => staff.may(Permission::RecordPayments) && state.status == OrderStatus::Paid && left > 0,
            currency => order.currency.clone(), amount => amount_major,
            subtotal => kassa_emails::money(order.subtotal, &order.currency),
            discount => (order.discount > 0).then(|| kassa_emails::money(order.discount, &order.currency)),
            name => order.customer.name.clone(), method => order.payment_method.as_str(),
            transfer_reference => (order.payment_method == PaymentMethod::BankTransfer)
                .then(|| order.payment_reference.clone()),
            payment_intent => stripe_payment(&order),
            can_record => staff.may(Permission::RecordPayments) && takes_transfer,
            can_resend => staff.may(Permission::HelpCustomers) && state.resend_licenses(chrono::Utc::now()).is_ok(),
        },
    )
}

/// What identifies a Stripe order's payment at Stripe: the PaymentIntent that paid it,
/// else the last one made for it (none for another method).
fn stripe_payment(order: &OrderRecord) -> Option<String> {
    if order.payment_method != PaymentMethod::Stripe {
        return None;
    }
    let stripe = || {
        order
            .payments
            .iter()
            .filter(|p| p.method == PaymentMethod::Stripe)
    };
    stripe()
        .find(|p| p.status == PaymentStatus::Succeeded)
        .or_else(|| stripe().next_back())
        .and_then(|p| p.reference.clone())
}

#[handler]
pub async fn show(ctx: Data<&Ctx>, req: &Request, Path(id): Path<String>) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeOrders).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    order_page(
        &ctx,
        &staff,
        &id,
        StatusCode::OK,
        Errors::new(),
        query(req, "notice"),
    )
    .await
}

/// The answer to an action on an order: back to its page with `notice`, or the page
/// with what the workflow refused next to the action (or the field).
async fn answer(
    ctx: &Ctx,
    staff: &Staff,
    id: &str,
    done: Result<(), OrdersError>,
    notice: &str,
) -> Response {
    let errors = match done {
        Ok(()) => return redirect(&with_notice(&format!("/dashboard/orders/{id}"), notice)),
        Err(OrdersError::Invalid(invalid)) => {
            let errors = errors_of(&invalid);
            return order_page(
                ctx,
                staff,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                errors,
                None,
            )
            .await;
        }
        Err(OrdersError::Refused(r)) => one_error("action", r.to_string()),
        Err(OrdersError::Conflict(m)) => one_error("action", m),
        Err(OrdersError::NotFound) => return not_found(staff),
        Err(e) => return failure(e),
    };
    order_page(ctx, staff, id, StatusCode::CONFLICT, errors, None).await
}

/// A form that moves money (record a payment, refund): its member, who must be
/// allowed to, and its order.
async fn money_form(
    ctx: &Ctx,
    req: &Request,
    id: &str,
    body: Body,
) -> Result<(Vec<(String, String)>, Staff, OrderRecord), Response> {
    let form = kassa_web::page::read_form(body).await;
    let staff = staff_posting(ctx, req, &form, Permission::RecordPayments).await?;
    let order = order_of(ctx, &staff, id).await?;
    Ok((form, staff, order))
}

/// The order, when it is of the dashboard's mode: the other world's orders are not
/// found, as another store's are (a pasted live order link in test mode neither
/// shows it nor acts on it).
async fn order_of(ctx: &Ctx, staff: &Staff, id: &str) -> Result<OrderRecord, Response> {
    match ctx.web.store.order(&staff.tenant.id, id).await {
        Ok(order) if Mode::from_livemode(order.livemode) == staff.mode => Ok(order),
        Ok(_) | Err(StoreError::NotFound) => Err(not_found(staff)),
        Err(e) => Err(failure(e)),
    }
}

/// An amount the member typed in the order's currency, in major units.
fn typed_amount(order: &OrderRecord, raw: &str) -> Result<i64, Invalid> {
    let currency = Currency::parse("currency", &order.currency)?;
    Ok(Money::parse_major("amount", raw, currency)?.amount)
}

/// The workflow speaks in minor units, the member typed major ones: a refused amount
/// is told as `message`, in the order's currency.
fn in_major_units(e: OrdersError, message: &str) -> OrdersError {
    match e {
        OrdersError::Invalid(mut invalid) => {
            for error in invalid.errors.iter_mut().filter(|e| e.field == "amount") {
                error.message = message.to_owned();
            }
            OrdersError::Invalid(invalid)
        }
        e => e,
    }
}

#[handler]
pub async fn record_payment(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (form, staff, order) = match money_form(&ctx, req, &id, body).await {
        Ok(all) => all,
        Err(resp) => return resp,
    };
    let done = match typed_amount(&order, field(&form, "amount")) {
        Ok(amount) => {
            let reference = Some(field(&form, "reference").to_owned()).filter(|r| !r.is_empty());
            kassa_orders::record_offline_payment(
                &ctx.web.store,
                &staff.tenant,
                &id,
                PaymentMethod::BankTransfer.as_str(),
                amount,
                &order.currency,
                reference,
            )
            .await
            .map(|_| ())
        }
        Err(invalid) => Err(invalid.into()),
    };
    let total = kassa_emails::money(order.total, &order.currency);
    let done = done.map_err(|e| in_major_units(e, &format!("must be the order total, {total}")));
    let notice = "Payment recorded. The order is paid and its licenses are on their way.";
    answer(&ctx, &staff, &id, done, notice).await
}

/// The "Refund" form: an amount in major units (empty: all that is left) and a
/// reason.
#[handler]
pub async fn refund(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (form, staff, order) = match money_form(&ctx, req, &id, body).await {
        Ok(all) => all,
        Err(resp) => return resp,
    };
    let mut invalid = Invalid::default();
    let amount = match field(&form, "amount").trim() {
        "" => Some(None),
        raw => invalid.check(typed_amount(&order, raw)).map(Some),
    };
    let reason = match field(&form, "reason").trim() {
        "" => Some(None),
        r => invalid.check(parse_text("reason", r, 500)).map(Some),
    };
    let done = match (amount, reason, invalid.into_result()) {
        (Some(amount), Some(reason), Ok(())) => {
            let input = kassa_orders::RefundInput {
                amount,
                reason,
                ..kassa_orders::RefundInput::default()
            };
            // A refund cannot be taken back: the member first sees what the workflow
            // would give back and revoke, then confirms (a click on Refund once
            // refunded everything at once). A refund it refuses is told at once.
            if field(&form, "confirmed") != "yes" {
                match kassa_orders::plan_refund(&order, &input) {
                    Ok(plan) => return confirm_refund(&staff, &order, &form, &plan),
                    Err(e) => Err(e),
                }
            } else {
                kassa_orders::refund(
                    &ctx.web.store,
                    &ctx.web.providers,
                    &staff.tenant.id,
                    &id,
                    input,
                )
                .await
                .map(|_| ())
            }
        }
        (_, _, Err(invalid)) => Err(invalid.into()),
        _ => Err(OrdersError::Invalid(Invalid::default())),
    };
    let left = left_to_refund(order.total, order.amount_refunded);
    let left = kassa_emails::money(left, &order.currency);
    let done =
        done.map_err(|e| in_major_units(e, &format!("must be more than 0 and at most {left}")));
    answer(&ctx, &staff, &id, done, "Refunded.").await
}

/// The page that asks before a refund: the amount, and the licenses of the lines it
/// refunds in full, which it revokes.
fn confirm_refund(
    staff: &Staff,
    order: &OrderRecord,
    form: &[(String, String)],
    plan: &kassa_domain::workflow::Refund,
) -> Response {
    let revoked: Vec<&str> = order
        .lines
        .iter()
        .filter(|l| plan.refunded_lines.contains(&l.line_no))
        .flat_map(|l| l.licenses.iter().map(String::as_str))
        .collect();
    page(
        staff,
        StatusCode::OK,
        "refund_confirm.html",
        "orders",
        context! {
            order => context! { id => order.id.to_string(), number => order.number },
            amount => kassa_emails::money(plan.amount, &order.currency),
            typed_amount => field(form, "amount").trim(),
            reason => field(form, "reason").trim(),
            whole => plan.order_refunded, revoked,
        },
    )
}

#[handler]
pub async fn resend(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::HelpCustomers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if let Err(resp) = order_of(&ctx, &staff, &id).await {
        return resp;
    }
    let done = kassa_orders::resend_licenses(&ctx.web.store, &staff.tenant.id, &id).await;
    let notice = "The licenses email is on its way to the customer.";
    answer(&ctx, &staff, &id, done, notice).await
}

#[handler]
pub async fn retry(
    ctx: Data<&Ctx>,
    req: &Request,
    Path((id, line_no)): Path<(String, i64)>,
    body: Body,
) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::HelpCustomers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if let Err(resp) = order_of(&ctx, &staff, &id).await {
        return resp;
    }
    let done = kassa_orders::retry_delivery(&ctx.web.store, &staff.tenant.id, &id, line_no).await;
    answer(
        &ctx,
        &staff,
        &id,
        done,
        "The delivery is being tried again.",
    )
    .await
}

/// How often an open order list looks for changes.
const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Server-sent events for an open order list: a `changed` event whenever the store's
/// orders change (a new one, a payment, a delivery); the page then reloads its list.
#[handler]
pub async fn live(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeOrders).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let store = ctx.web.store.clone();
    let tenant = staff.tenant.id.clone();
    let first = store.orders_version(&tenant).await.ok();
    let changes =
        futures::stream::unfold((store, tenant, first), |(store, tenant, seen)| async move {
            loop {
                tokio::time::sleep(LIVE_EVERY).await;
                match store.orders_version(&tenant).await {
                    Ok(now) if Some(now) != seen => {
                        let event = poem::web::sse::Event::message("changed").event_type("changed");
                        return Some((event, (store, tenant, Some(now))));
                    }
                    Ok(_) => {}
                    // The database is away: the browser reconnects later.
                    Err(_) => return None,
                }
            }
        });
    // The stream ends when the server starts to stop: the browser reconnects to the
    // next one.
    let ctx = ctx.clone();
    let changes = futures::StreamExt::take_until(changes, async move { ctx.stopping().await });
    poem::IntoResponse::into_response(
        poem::web::sse::SSE::new(changes).keep_alive(std::time::Duration::from_secs(15)),
    )
}
