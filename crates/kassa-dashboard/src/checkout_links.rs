//! Checkout links: a product's buy link with presets (quantity, currency, coupon),
//! or a signed offer the customer cannot change (a price, a fixed discount, quantity
//! bounds, a last day). The rules are `kassa_orders::create_checkout_link`'s, the
//! API's too; this page reads the form in major units and dates. All in the
//! dashboard's mode: its links, products and coupons only, a new link of that mode.

use kassa_domain::Invalid;
use kassa_domain::account::Permission;
use kassa_domain::ids::CheckoutLinkId;
use kassa_domain::money::{Currency, Money};
use kassa_orders::{CheckoutLinkInput, OrdersError};
use minijinja::context;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, all, errors_of, failure, field, last_day, number, page, query, redirect,
    staff, staff_posting, when, with_notice,
};

async fn links_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    typed: &[(String, String)],
    errors: Errors,
    notice: Option<String>,
) -> Response {
    let store = &ctx.web.store;
    let tenant = &staff.tenant.id;
    let all = all();
    let (links, products, coupons, secret) = match tokio::try_join!(
        store.list_checkout_links(tenant, staff.mode, &all),
        store.list_products(tenant, staff.mode, &all),
        store.list_coupons(tenant, staff.mode, &all),
        store.link_secret(tenant),
    ) {
        Ok(found) => found,
        Err(e) => return failure(e),
    };
    let product_name = |id: &str| {
        products
            .data
            .iter()
            .find(|p| p.id.as_str() == id)
            .map_or_else(|| id.to_owned(), |p| p.fields.name.clone())
    };
    let links: Vec<_> = links
        .data
        .iter()
        .map(|l| {
            let f = &l.fields;
            let url = kassa_orders::checkout_link_url(
                &ctx.web.public_url,
                &staff.tenant.slug,
                staff.mode,
                secret.expose_secret(),
                f,
            );
            let offer = f.offer.as_ref();
            let money = |minor: i64| match &f.currency {
                Some(c) => kassa_emails::money(minor, c),
                None => minor.to_string(),
            };
            let quantity = match offer {
                Some(o) if o.min_quantity != o.max_quantity => {
                    format!("{} ({}–{})", f.quantity, o.min_quantity, o.max_quantity)
                }
                _ => f.quantity.to_string(),
            };
            context! {
                id => l.id.to_string(),
                product => product_name(f.product_id.as_str()),
                quantity,
                currency => f.currency.clone(),
                coupon => f.coupon_code.clone(),
                signed => offer.is_some(),
                price => offer.and_then(|o| o.unit_amount).map(money),
                discount => offer.and_then(|o| o.discount).map(money),
                expires => offer.and_then(|o| o.expires_at()).map(|at| when(&kassa_store::Timestamp::from(at))),
                url,
            }
        })
        .collect();
    let products: Vec<_> = products
        .data
        .iter()
        .map(|p| {
            let id = p.id.as_str().to_owned();
            let selected = field(typed, "product_id") == id;
            context! { id, name => p.fields.name.clone(), selected }
        })
        .collect();
    let coupons: Vec<_> = coupons.data.iter().map(|c| c.fields.code.clone()).collect();
    let value = |name: &str| field(typed, name).to_owned();
    page(
        staff,
        status,
        "checkout_links.html",
        "checkout-links",
        context! {
            links, products, coupons, errors, notice,
            can_edit => staff.may(Permission::EditCatalog),
            form => context! {
                quantity => value("quantity"), currency => value("currency"),
                coupon => value("coupon"), price => value("price"),
                discount => value("discount"), min_quantity => value("min_quantity"),
                max_quantity => value("max_quantity"), expires_on => value("expires_on"),
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
    let notice = query(req, "notice");
    links_page(&ctx, &staff, StatusCode::OK, &[], Errors::new(), notice).await
}

/// An amount typed in major units of the link's currency; empty is `None`.
fn amount(
    form: &[(String, String)],
    name: &str,
    currency: Option<Currency>,
    invalid: &mut Invalid,
) -> Option<i64> {
    let raw = field(form, name);
    if raw.is_empty() {
        return None;
    }
    let Some(currency) = currency else {
        invalid.push("currency", "Choose the currency of the price or discount.");
        return None;
    };
    invalid
        .check(Money::parse_major(name, raw, currency))
        .map(|m| m.amount)
}

#[handler]
pub async fn create(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut invalid = Invalid::default();
    let currency_code = field(&form, "currency").trim().to_uppercase();
    let currency = match currency_code.as_str() {
        "" => None,
        code => invalid.check(Currency::parse("currency", code)),
    };
    let price = amount(&form, "price", currency, &mut invalid);
    let discount = amount(&form, "discount", currency, &mut invalid);
    let quantity = number(&form, "quantity", &mut invalid);
    let min_quantity = number(&form, "min_quantity", &mut invalid);
    let max_quantity = number(&form, "max_quantity", &mut invalid);
    let expires_at = last_day(&form, "expires_on", &mut invalid);
    let refused = |errors: Errors| {
        links_page(
            &ctx,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            errors,
            None,
        )
    };
    if !invalid.errors.is_empty() {
        return refused(errors_of(&invalid)).await;
    }
    let coupon = field(&form, "coupon");
    let input = CheckoutLinkInput {
        product_id: field(&form, "product_id"),
        quantity,
        currency: (!currency_code.is_empty()).then_some(currency_code.as_str()),
        coupon: (!coupon.is_empty()).then_some(coupon),
        price,
        discount,
        min_quantity,
        max_quantity,
        expires_at,
    };
    match kassa_orders::create_checkout_link(&ctx.web.store, &staff.tenant.id, staff.mode, &input)
        .await
    {
        Ok(_) => redirect(&with_notice(
            "/dashboard/checkout-links",
            "Checkout link created. Copy it below and hand it to your customers.",
        )),
        Err(OrdersError::Invalid(invalid)) => {
            let mut errors = errors_of(&invalid);
            if let Some(m) = errors.remove("expires_at") {
                errors.insert("expires_on".into(), m);
            }
            refused(errors).await
        }
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn delete(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let Ok(id) = CheckoutLinkId::parse(&id) else {
        return crate::page::not_found(&staff);
    };
    match ctx
        .web
        .store
        .delete_checkout_link(&staff.tenant.id, staff.mode, &id)
        .await
    {
        Ok(()) => redirect(&with_notice(
            "/dashboard/checkout-links",
            "Checkout link deleted from the list. Its address carries what it offers, so copies already handed out still open a checkout (a signed one until its last day); rotating the link-signing secret in Settings stops signed ones.",
        )),
        Err(kassa_store::StoreError::NotFound) => crate::page::not_found(&staff),
        Err(e) => failure(e),
    }
}
