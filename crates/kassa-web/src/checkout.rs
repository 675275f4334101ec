//! `/{tenant}/checkout`: the cart, the customer's details, the payment method, the two
//! consents, and Continue, which places the order.

use std::collections::BTreeMap;
use std::sync::Arc;

use kassa_domain::mode::Mode;
use kassa_domain::order::PaymentMethod;
use kassa_domain::tenant::TenantSettings;
use kassa_limits::Action;
use kassa_orders::{OrderInput, OrdersError, price};
use kassa_store::{CartRecord, FromCart, OrderRecord, ProductRecord, StoreError, TenantRecord};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use serde::Serialize;

use crate::form::{self, FormState};
use crate::link;
use crate::page::{self, Errors, Texts, WebContext, form_value, money};

/// The cart cookies, one per mode, so a test cart and a live cart never mix.
pub fn cart_cookie_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Live => "kassa_cart",
        Mode::Test => "kassa_cart_test",
    }
}

#[derive(Serialize)]
struct LineView {
    index: usize,
    name: String,
    quantity: String,
    unit_amount: String,
    total: String,
}

#[derive(Serialize)]
struct Totals {
    subtotal: String,
    discount: String,
    has_discount: bool,
    total: String,
    coupon: Option<String>,
}

/// Maps the checkout service's field names to the page's.
pub fn page_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("lines[")
        && let Some((i, what)) = rest.split_once("].")
    {
        return match what {
            "quantity" => format!("quantity_{i}"),
            _ => format!("line_{i}"),
        };
    }
    match field {
        "lines" => "cart".to_owned(),
        other => other.to_owned(),
    }
}

/// The cart this browser has in this store and in this page's world (the token of
/// the other world's cart, put in this world's cookie, finds none), unless it already
/// became an order.
pub async fn current_cart(
    ctx: &WebContext,
    tenant: &TenantRecord,
    req: &Request,
) -> Result<Option<CartRecord>, Response> {
    let mode = page::mode(req);
    let Some(token) = page::cookie(req, cart_cookie_name(mode)) else {
        return Ok(None);
    };
    match ctx.store.cart_by_token(&tenant.id, mode, &token).await {
        Ok(cart) => Ok(Some(cart)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(page::failure(e)),
    }
}

/// The token a cart not saved yet will have: the one the browser's cookie names when
/// no cart has it yet (a page shown from a buy link set it), else a new one (after a
/// cart that became an order).
pub fn unsaved_cart_token(req: &Request, current: Option<&CartRecord>) -> String {
    match current {
        None => {
            page::cookie(req, cart_cookie_name(page::mode(req))).unwrap_or_else(page::random_token)
        }
        Some(_) => page::random_token(),
    }
}

pub fn cart_cookie(
    ctx: &WebContext,
    req: &Request,
    tenant: &TenantRecord,
    cart: &CartRecord,
) -> String {
    page::set_cookie(
        ctx,
        cart_cookie_name(page::mode(req)),
        &cart.token,
        &format!("/{}", tenant.slug),
        30,
    )
}

/// Renders the checkout page for `cart`.
#[allow(clippy::too_many_arguments)]
pub async fn render(
    ctx: &WebContext,
    req: &Request,
    tenant: &TenantRecord,
    cart: &CartRecord,
    form: &FormState,
    typed_quantities: &BTreeMap<usize, String>,
    mut errors: Errors,
    cookies: Vec<String>,
) -> Response {
    let settings = TenantSettings::from_json(&tenant.settings);
    let lang = page::pick_locale(cart.locale.as_deref(), req);
    let t: &Texts = page::texts(lang);
    let (csrf, csrf_cookie) = page::csrf(ctx, req);
    let mut cookies = cookies;
    cookies.extend(csrf_cookie);

    // The page's world: its products and coupons (the other world's are not found).
    let mode = page::mode(req);
    let mut names = Vec::with_capacity(cart.lines.len());
    let mut currencies: Option<Vec<String>> = None;
    for line in &cart.lines {
        match ctx.store.product(&tenant.id, mode, &line.product_id).await {
            Ok(p) => {
                let codes: Vec<String> =
                    p.fields.prices.iter().map(|p| p.currency.clone()).collect();
                currencies = Some(match currencies {
                    None => codes,
                    Some(have) => have.into_iter().filter(|c| codes.contains(c)).collect(),
                });
                names.push(p.fields.name);
            }
            Err(StoreError::NotFound) => names.push(line.product_id.to_string()),
            Err(e) => return page::failure(e),
        }
    }
    let currency = cart
        .currency
        .clone()
        .or_else(|| currencies.as_ref().and_then(|c| c.first().cloned()))
        .unwrap_or_default();

    let mut quote = None;
    if !cart.lines.is_empty() {
        let coupon = cart.coupon_code.as_deref();
        match price(&ctx.store, &tenant.id, mode, &currency, &cart.lines, coupon).await {
            Ok(q) => quote = Some(q),
            Err(OrdersError::Invalid(invalid)) => {
                for e in invalid.errors {
                    let message = page::field_message(&e, t);
                    errors.entry(page_field(&e.field)).or_insert(message);
                }
                if coupon.is_some()
                    && let Ok(q) =
                        price(&ctx.store, &tenant.id, mode, &currency, &cart.lines, None).await
                {
                    quote = Some(q);
                }
            }
            Err(e) => return page::failure(e),
        }
    }
    let lines: Vec<LineView> = cart
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let priced = quote.as_ref().and_then(|q| q.lines.get(i));
            LineView {
                index: i,
                name: names.get(i).cloned().unwrap_or_default(),
                quantity: typed_quantities
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| line.quantity.to_string()),
                unit_amount: priced
                    .map(|p| money(p.unit_amount, &currency))
                    .unwrap_or_default(),
                total: priced
                    .map(|p| money(p.total, &currency))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let totals = quote.as_ref().map(|q| Totals {
        subtotal: money(q.subtotal, &currency),
        discount: money(q.discount, &currency),
        has_discount: q.discount > 0,
        total: money(q.total, &currency),
        coupon: q.coupon_code.clone(),
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut form_view = FormState {
        email: form.email.clone(),
        name: form.name.clone(),
        coupon: form.coupon.clone(),
        payment_method: form.payment_method.clone(),
        consent_terms: form.consent_terms,
        consent_personal_data: form.consent_personal_data,
        link: form.link.clone(),
    };
    let methods = page::method_choices(tenant, &settings, mode, &form_view.payment_method, t);
    if let Some(checked) = methods.iter().find(|m| m.checked) {
        form_view.payment_method = checked.value.to_owned();
    }
    let resp = page::render(
        status,
        "checkout.html",
        minijinja::context! {
            t => t,
            store => page::brand(tenant, &settings),
            test_mode => !page::mode(req).is_live(),
            action => format!("{}/checkout", page::store_path(req, tenant)),
            csrf => csrf,
            lines => lines,
            currencies => currencies.unwrap_or_default(),
            currency => currency,
            totals => totals,
            form => form_view,
            methods => methods,
            errors => errors,
            return_url => cart.return_url.clone(),
        },
    );
    page::with_cookies(resp, &cookies)
}

#[handler]
pub async fn show(
    req: &Request,
    Path(slug): Path<String>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let tenant = match page::tenant(ctx, &slug, req).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let cart = match current_cart(ctx, &tenant, req).await {
        Ok(cart) => cart,
        Err(resp) => return resp,
    };
    match cart {
        Some(cart) if cart.order_id.is_some() => redirect_to_order(ctx, &tenant, &cart).await,
        Some(cart) => {
            let form = FormState::from_cart(&cart);
            render(
                ctx,
                req,
                &tenant,
                &cart,
                &form,
                &BTreeMap::new(),
                Errors::new(),
                vec![],
            )
            .await
        }
        None => empty_cart(ctx, req, &tenant).await,
    }
}

/// The checkout page of a browser without a cart.
async fn empty_cart(ctx: &WebContext, req: &Request, tenant: &TenantRecord) -> Response {
    let empty = CartRecord::default();
    render(
        ctx,
        req,
        tenant,
        &empty,
        &FormState::default(),
        &BTreeMap::new(),
        Errors::new(),
        vec![],
    )
    .await
}

/// Applies the buy link a page carried to `cart`, or gives the page to show instead;
/// the link's product as read.
async fn take_link(
    ctx: &WebContext,
    req: &Request,
    tenant: &TenantRecord,
    cart: &mut CartRecord,
    link: &str,
) -> Result<ProductRecord, Response> {
    let Some((product, query)) = link::split_link(&page::store_path(req, tenant), link) else {
        return Err(page::error_page(
            StatusCode::BAD_REQUEST,
            Some(tenant),
            page::pick_locale(None, req),
            "bad_link_title",
            "link_tampered",
        ));
    };
    // The link's own problems (a quantity out of range) were shown when it was opened;
    // what the customer sends now takes their place.
    link::apply(ctx, req, tenant, cart, product, query)
        .await
        .map(|applied| applied.product)
}

/// Saves a cart a submit changed. A cart made now from the page's link (`fresh`) is
/// inserted, unless another submit of the page made it first: then the stored one,
/// with the form applied again (`Some` of what that gave), or its order's page when
/// it is spent.
async fn save(
    ctx: &WebContext,
    tenant: &TenantRecord,
    form: &[(String, String)],
    mut cart: CartRecord,
    fresh: bool,
) -> Result<(CartRecord, Option<form::Submitted>), Response> {
    if !fresh {
        return match ctx.store.save_cart(&tenant.id, &cart).await {
            Ok(saved) => Ok((saved, None)),
            Err(e) => Err(page::failure(e)),
        };
    }
    // Two submits of the page race to make the cart: one makes it, the other goes on
    // with the cart made.
    let made = match ctx.store.insert_cart_if_new(&tenant.id, &cart).await {
        // The cookie's token is another world's cart (or store's): this one gets a
        // token of its own.
        Err(StoreError::NotFound) => {
            cart.token = page::random_token();
            ctx.store.insert_cart_if_new(&tenant.id, &cart).await
        }
        made => made,
    };
    match made {
        Ok((cart, true)) => Ok((cart, None)),
        Ok((stored, false)) if stored.order_id.is_some() => {
            Err(redirect_to_order(ctx, tenant, &stored).await)
        }
        Ok((mut stored, false)) => {
            let submitted = form::apply(form, &mut stored);
            match ctx.store.save_cart(&tenant.id, &stored).await {
                Ok(saved) => Ok((saved, Some(submitted))),
                Err(e) => Err(page::failure(e)),
            }
        }
        Err(e) => Err(page::failure(e)),
    }
}

/// A spent cart (its order exists) leads to that order's payment page.
async fn redirect_to_order(ctx: &WebContext, tenant: &TenantRecord, cart: &CartRecord) -> Response {
    let Some(order_id) = &cart.order_id else {
        return page::failure("cart without order");
    };
    match ctx.store.order(&tenant.id, order_id.as_str()).await {
        Ok(order) => page::see_other(&format!("/{}/orders/{}/pay", tenant.slug, order.token), &[]),
        Err(e) => page::failure(e),
    }
}

#[handler]
pub async fn submit(
    req: &Request,
    body: Body,
    Path(slug): Path<String>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let tenant = match page::tenant(ctx, &slug, req).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let form = page::read_form(body).await;
    let cart = match current_cart(ctx, &tenant, req).await {
        Ok(cart) => cart,
        Err(resp) => return resp,
    };
    let lang = page::pick_locale(cart.as_ref().and_then(|c| c.locale.as_deref()), req);
    let ip = page::client_addr(req);
    if let Some(resp) = page::over_limit(ctx, Action::Form { ip }, &tenant, lang) {
        return resp;
    }
    if !page::csrf_ok(req, &form) {
        return page::error_page(
            StatusCode::FORBIDDEN,
            Some(&tenant),
            lang,
            "form_expired_title",
            "form_expired",
        );
    }
    // The page of a buy link opened without a cart carries the link: the customer's
    // first action makes the cart from it (the link is checked again, expiry too).
    let link = form_value(&form, "link").filter(|l| !l.is_empty());
    // A cart made now from the link is written once, with the form applied; the link's
    // product is read once, here.
    let (mut cart, fresh, read) = match (cart, link) {
        (Some(cart), link) if cart.order_id.is_none() => {
            let mut cart = cart;
            let mut read = None;
            if let Some(link) = link {
                match take_link(ctx, req, &tenant, &mut cart, link).await {
                    Ok(product) => read = Some(product),
                    Err(resp) => return resp,
                }
            }
            (cart, false, read)
        }
        // A double submit of the order's own form.
        (Some(spent), _) => return redirect_to_order(ctx, &tenant, &spent).await,
        (None, Some(link)) => {
            let mut fresh = CartRecord {
                token: unsaved_cart_token(req, None),
                mode: page::mode(req),
                ..CartRecord::default()
            };
            match take_link(ctx, req, &tenant, &mut fresh, link).await {
                Ok(product) => (fresh, true, Some(product)),
                Err(resp) => return resp,
            }
        }
        (None, None) => return empty_cart(ctx, req, &tenant).await,
    };
    let new_cart = link.is_some();

    let submitted = form::apply(&form, &mut cart);
    // A fresh cart whose first action is Continue is written by the placing
    // transaction, spent (one round trip for the cart instead of three); any other
    // action saves the cart now.
    let unsaved = fresh && submitted.action == "continue" && submitted.errors.is_empty();
    let (cart, submitted) = if unsaved {
        (cart, submitted)
    } else {
        match save(ctx, &tenant, &form, cart, fresh).await {
            Ok((saved, again)) => (saved, again.unwrap_or(submitted)),
            Err(resp) => return resp,
        }
    };
    let form::Submitted {
        state,
        action,
        mut errors,
        typed,
    } = submitted;
    let action = action.as_str();
    // A cart made from the page's link now has the link's language.
    let lang = page::pick_locale(cart.locale.as_deref(), req);
    let cookies: Vec<String> = if new_cart {
        vec![cart_cookie(ctx, req, &tenant, &cart)]
    } else {
        vec![]
    };
    if action.starts_with("remove:") {
        return page::see_other(
            &format!("{}/checkout", page::store_path(req, &tenant)),
            &cookies,
        );
    }
    if action == "back" {
        // Back to the merchant's site, the cart saved for the customer's return.
        let to = cart
            .return_url
            .clone()
            .unwrap_or_else(|| format!("{}/checkout", page::store_path(req, &tenant)));
        return page::see_other(&to, &cookies);
    }
    if action != "continue" || !errors.is_empty() {
        return render(ctx, req, &tenant, &cart, &state, &typed, errors, cookies).await;
    }

    let order = Action::PlaceOrder {
        ip,
        store: tenant.id.as_str(),
        email: Some(&state.email),
    };
    if let Some(resp) = page::over_limit(ctx, order, &tenant, lang) {
        // The cart stays, as after any other action.
        if unsaved && let Err(resp) = save(ctx, &tenant, &form, cart, true).await {
            return resp;
        }
        return resp;
    }
    let from = if unsaved {
        Some(FromCart::New(Box::new(cart.clone())))
    } else {
        cart.id.clone().map(FromCart::Saved)
    };
    let mut placed = place(ctx, req, &tenant, &cart, &state, from, read.as_ref(), lang).await;
    let mut cart = cart;
    let mut cookies = cookies;
    let (mut state, mut typed) = (state, typed);
    if unsaved && matches!(placed, Err(OrdersError::NotFound | OrdersError::Invalid(_))) {
        // Not placed: the cart is saved as after any other action. Its token named a
        // cart already (`NotFound`: another submit of the page made it, not spent, or
        // the cookie's token is another world's): placed from the cart saved.
        let retry = matches!(placed, Err(OrdersError::NotFound));
        let again = match save(ctx, &tenant, &form, cart, true).await {
            Ok((saved, again)) => {
                cart = saved;
                again
            }
            Err(resp) => return resp,
        };
        cookies = vec![cart_cookie(ctx, req, &tenant, &cart)];
        if retry {
            if let Some(again) = again {
                // The other submit's cart, with this form applied to it.
                (state, errors, typed) = (again.state, again.errors, again.typed);
                if again.action != "continue" || !errors.is_empty() {
                    return render(ctx, req, &tenant, &cart, &state, &typed, errors, cookies).await;
                }
            }
            let from = cart.id.clone().map(FromCart::Saved);
            placed = place(ctx, req, &tenant, &cart, &state, from, read.as_ref(), lang).await;
        }
    }
    match placed {
        // Stripe chosen: its payment started, then the card form.
        Ok(order) if order.payment_method == PaymentMethod::Stripe => {
            crate::order::start_stripe(ctx, req, &tenant, &order, &cookies).await
        }
        Ok(order) => page::see_other(
            &format!("/{}/orders/{}/pay", tenant.slug, order.token),
            &cookies,
        ),
        Err(OrdersError::Invalid(invalid)) => {
            let t = page::texts(lang);
            for e in invalid.errors {
                let field = match e.field.as_str() {
                    "email" if state.email.is_empty() => {
                        errors.insert("email".into(), page::text(t, "field_required"));
                        continue;
                    }
                    other => page_field(other),
                };
                errors
                    .entry(field)
                    .or_insert_with(|| page::field_message(&e, t));
            }
            render(ctx, req, &tenant, &cart, &state, &typed, errors, cookies).await
        }
        Err(e) => page::failure(e),
    }
}

/// Places the order of `cart` (`from`: saved, or written by the placement) with what
/// the customer typed; `read` is the link's product this request read.
#[allow(clippy::too_many_arguments)]
async fn place(
    ctx: &WebContext,
    req: &Request,
    tenant: &TenantRecord,
    cart: &CartRecord,
    state: &FormState,
    from: Option<FromCart>,
    read: Option<&ProductRecord>,
    lang: &str,
) -> Result<OrderRecord, OrdersError> {
    let t = page::texts(lang);
    let mut consents = Vec::new();
    if state.consent_terms {
        consents.push("terms".to_owned());
    }
    if state.consent_personal_data {
        consents.push("personal_data".to_owned());
    }
    let currency = match &cart.currency {
        Some(c) => c.clone(),
        None => match cart.lines.first() {
            Some(line) => {
                let product = match read.filter(|p| p.id == line.product_id) {
                    Some(p) => Ok(p.clone()),
                    None => {
                        ctx.store
                            .product(&tenant.id, page::mode(req), &line.product_id)
                            .await
                    }
                };
                product
                    .ok()
                    .and_then(|p| p.fields.prices.first().map(|p| p.currency.clone()))
                    .unwrap_or_default()
            }
            None => String::new(),
        },
    };
    let input = OrderInput {
        currency,
        lines: cart.lines.clone(),
        coupon: cart.coupon_code.clone(),
        email: state.email.clone(),
        name: Some(state.name.clone()),
        payment_method: state.payment_method.clone(),
        consents,
        consent_texts: vec![
            (
                "terms".into(),
                t.get("consent_terms").cloned().unwrap_or_default(),
            ),
            (
                "personal_data".into(),
                t.get("consent_personal_data").cloned().unwrap_or_default(),
            ),
        ],
        locale: lang.to_owned(),
        custom: cart.custom.clone(),
        return_url: cart.return_url.clone(),
        ip: page::client_ip(req),
        user_agent: page::user_agent(req),
        cart: from,
        products: read.into_iter().cloned().collect(),
        mode: page::mode(req),
    };
    kassa_orders::place_order(&ctx.store, tenant, &input).await
}
