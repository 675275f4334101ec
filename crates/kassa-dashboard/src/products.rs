//! Products: the list with each product's buy link, a new product (name, prices typed
//! in major units, how it is delivered), and a product's page. All in the dashboard's
//! mode: its products only, a new one of that mode, delivered from that mode's pools.
//! A test product's page has "Copy to live mode" (owners): the new-product form of
//! live mode, filled in with its name, description, prices and a web service or plugin
//! delivery, where the owner picks a live pool and creates the live product.

use kassa_domain::Invalid;
use kassa_domain::account::{Permission, Role};
use kassa_domain::catalog::{
    Delivery, KeysPer, parse_description, parse_prices, parse_product_name,
};
use kassa_domain::ids::ProductId;
use kassa_domain::mode::Mode;
use kassa_domain::money::{Currency, Money};
use kassa_orders::DeliveryChoice;
use kassa_store::{Price, ProductFields, ProductRecord, StoreError};
use minijinja::{Value, context};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, all, errors_of, failure, field, not_found, page, query, redirect, staff,
    staff_form, staff_posting, with_notice,
};

/// Price rows on the form.
const PRICE_ROWS: usize = 3;

fn view(ctx: &Ctx, staff: &Staff, p: &ProductRecord) -> Value {
    let prices: Vec<String> = p
        .fields
        .prices
        .iter()
        .map(|m| kassa_emails::money(m.amount, &m.currency))
        .collect();
    let delivery = match &p.fields.delivery {
        Delivery::LicensePool { pool_id, .. } => {
            context! { method => "License pool", pool_id => pool_id.as_str() }
        }
        Delivery::WebService { url, .. } => context! { method => "Web service", url },
        Delivery::Plugin { plugin_id, .. } => {
            context! { method => "Plugin", plugin_id => plugin_id.as_str() }
        }
    };
    context! {
        id => p.id.as_str(), name => p.fields.name.clone(),
        description => p.fields.description.clone(), prices, delivery,
        active => p.fields.active,
        buy_url => format!("{}{}/buy/{}", ctx.web.public_url, staff.mode.store_path(&staff.tenant.slug), p.id),
    }
}

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let products = match ctx
        .web
        .store
        .list_products(&staff.tenant.id, staff.mode, &all())
        .await
    {
        Ok(p) => p.data,
        Err(e) => return failure(e),
    };
    let products: Vec<_> = products.iter().map(|p| view(&ctx, &staff, p)).collect();
    page(
        &staff,
        StatusCode::OK,
        "products.html",
        "products",
        context! { products, can_edit => staff.may(Permission::EditCatalog), notice => query(req, "notice") },
    )
}

/// The new-product form, with what was typed and its errors.
async fn form_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    typed: &[(String, String)],
    errors: Errors,
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
    let plugins = match ctx.web.store.list_plugins(&staff.tenant.id, &all()).await {
        Ok(p) => p.data,
        Err(e) => return failure(e),
    };
    // A pool serves orders of its own mode only: a product of the dashboard's mode is
    // delivered from a pool of that mode, and only those are offered.
    let pools: Vec<_> = pools
        .iter()
        .map(|p| context! { id => p.id.as_str(), name => p.name.clone(), available => p.available })
        .collect();
    let plugins: Vec<_> = plugins
        .iter()
        .map(|p| context! { id => p.id.as_str(), name => p.name.clone() })
        .collect();
    let value = |name: &str| field(typed, name).to_owned();
    let copied_from = typed
        .iter()
        .any(|(k, _)| k == "copied_from")
        .then(|| value("copied_from"));
    let rows: Vec<_> = (0..PRICE_ROWS)
        .map(|i| {
            let currency = value(&format!("prices[{i}].currency"));
            context! {
                i,
                currency => if i == 0 && currency.is_empty() { "USD".to_owned() } else { currency },
                amount => value(&format!("prices[{i}].amount")),
            }
        })
        .collect();
    let method = match value("delivery.method").as_str() {
        "" => "license_pool".to_owned(),
        m => m.to_owned(),
    };
    page(
        staff,
        status,
        "product_new.html",
        "products",
        context! {
            name => value("name"), description => value("description"), rows, method,
            pool_id => value("delivery.pool_id"), keys_per => value("delivery.keys_per"),
            url => value("delivery.url"), plugin_id => value("delivery.plugin_id"),
            pools, plugins, errors, copied_from,
        },
    )
}

#[handler]
pub async fn new_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::EditCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    form_page(&ctx, &staff, StatusCode::OK, &[], Errors::new()).await
}

/// The prices of the form's rows, in minor units; empty rows are skipped.
fn prices(form: &[(String, String)], invalid: &mut Invalid) -> Option<Vec<Price>> {
    let mut raw = Vec::new();
    for i in 0..PRICE_ROWS {
        let (cf, af) = (
            format!("prices[{i}].currency"),
            format!("prices[{i}].amount"),
        );
        let amount = field(form, &af);
        if amount.is_empty() {
            continue;
        }
        let Some(currency) = invalid.check(Currency::parse(&cf, field(form, &cf))) else {
            continue;
        };
        if let Some(money) = invalid.check(Money::parse_major(&af, amount, currency)) {
            raw.push((currency.code().to_owned(), money.amount));
        }
    }
    if raw.is_empty() {
        if !invalid.errors.iter().any(|e| e.field.starts_with("prices")) {
            invalid.push("prices[0].amount", "Give the product a price.");
        }
        return None;
    }
    let prices = invalid.check(parse_prices(&raw))?;
    Some(
        prices
            .into_iter()
            .map(|m| Price {
                currency: m.currency.code().to_owned(),
                amount: m.amount,
            })
            .collect(),
    )
}

#[handler]
pub async fn create(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut invalid = Invalid::default();
    let name = invalid.check(parse_product_name(field(&form, "name")));
    let description = invalid.check(parse_description(
        Some(field(&form, "description")).filter(|d| !d.is_empty()),
    ));
    let prices = prices(&form, &mut invalid);
    let keys_per = if field(&form, "delivery.keys_per") == "line" {
        KeysPer::Line
    } else {
        KeysPer::Unit
    };
    let choice = match field(&form, "delivery.method") {
        "web_service" => DeliveryChoice::WebService {
            url: field(&form, "delivery.url"),
            keys_per,
        },
        "plugin" => DeliveryChoice::Plugin {
            plugin_id: field(&form, "delivery.plugin_id"),
            keys_per,
        },
        _ => DeliveryChoice::LicensePool {
            pool_id: field(&form, "delivery.pool_id"),
            keys_per,
        },
    };
    let delivery =
        match kassa_orders::delivery(&ctx.web.store, &staff.tenant.id, staff.mode, choice).await {
            Ok(d) => invalid.check(d),
            Err(e) => return failure(e),
        };
    let (Some(name), Some(description), Some(prices), Some(delivery)) =
        (name, description, prices, delivery)
    else {
        return form_page(
            &ctx,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            errors_of(&invalid),
        )
        .await;
    };
    let fields = ProductFields {
        name,
        description,
        prices,
        delivery,
        active: true,
    };
    match ctx
        .web
        .store
        .create_product(&staff.tenant.id, staff.mode, &fields)
        .await
    {
        Ok(p) => redirect(&with_notice(
            &format!("/dashboard/products/{}", p.id),
            "Product created. Share its buy link to sell it.",
        )),
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn show(ctx: Data<&Ctx>, req: &Request, Path(id): Path<String>) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeCatalog).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let Ok(id) = ProductId::parse(&id) else {
        return not_found(&staff);
    };
    match ctx
        .web
        .store
        .product(&staff.tenant.id, staff.mode, &id)
        .await
    {
        Ok(p) => page(
            &staff,
            StatusCode::OK,
            "product.html",
            "products",
            context! {
                product => view(&ctx, &staff, &p), notice => query(req, "notice"),
                delivered_by => delivered_by(&ctx, &staff, &p).await,
                can_copy => !p.livemode && staff.role == Role::Owner,
            },
        ),
        Err(StoreError::NotFound) => not_found(&staff),
        Err(e) => failure(e),
    }
}

/// The name of the pool or plugin that delivers `p`, to link it by; none when it
/// cannot be read (the page then says "the pool" or "the plugin").
async fn delivered_by(ctx: &Ctx, staff: &Staff, p: &ProductRecord) -> Option<String> {
    let store = &ctx.web.store;
    match &p.fields.delivery {
        Delivery::LicensePool { pool_id, .. } => store
            .license_pool(&staff.tenant.id, pool_id)
            .await
            .ok()
            .map(|pool| pool.name),
        Delivery::Plugin { plugin_id, .. } => store
            .plugin(&staff.tenant.id, plugin_id)
            .await
            .ok()
            .map(|plugin| plugin.name),
        Delivery::WebService { .. } => None,
    }
}

/// "Copy to live mode" on a test product (owners only: live prices are money): the
/// dashboard switches to live mode and shows the new-product form filled in with the
/// test product's name, description and prices, and its delivery when it is a web
/// service or a plugin (both serve either mode). A pool is the owner's to pick among
/// the live ones: nothing is made until the form is sent.
#[handler]
pub async fn copy_to_live(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let mut staff = match staff_form(&ctx, req, body, Permission::EditSettings).await {
        Ok((s, _)) => s,
        Err(resp) => return resp,
    };
    let Ok(id) = ProductId::parse(&id) else {
        return not_found(&staff);
    };
    let product = match ctx
        .web
        .store
        .product(&staff.tenant.id, Mode::Test, &id)
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound) => return not_found(&staff),
        Err(e) => return failure(e),
    };
    let mut typed = vec![
        ("copied_from".to_owned(), product.fields.name.clone()),
        ("name".to_owned(), product.fields.name.clone()),
        (
            "description".to_owned(),
            product.fields.description.clone().unwrap_or_default(),
        ),
    ];
    for (i, price) in product.fields.prices.iter().take(PRICE_ROWS).enumerate() {
        let major = Currency::parse("currency", &price.currency)
            .map(|c| {
                Money {
                    amount: price.amount,
                    currency: c,
                }
                .major()
            })
            .unwrap_or_default();
        typed.push((format!("prices[{i}].amount"), major));
        typed.push((format!("prices[{i}].currency"), price.currency.clone()));
    }
    let per = match product.fields.delivery.keys_per() {
        KeysPer::Line => "line",
        KeysPer::Unit => "unit",
    };
    typed.push(("delivery.keys_per".to_owned(), per.to_owned()));
    match &product.fields.delivery {
        Delivery::LicensePool { .. } => {}
        Delivery::WebService { url, .. } => {
            typed.push(("delivery.method".to_owned(), "web_service".to_owned()));
            typed.push(("delivery.url".to_owned(), url.clone()));
        }
        Delivery::Plugin { plugin_id, .. } => {
            typed.push(("delivery.method".to_owned(), "plugin".to_owned()));
            typed.push(("delivery.plugin_id".to_owned(), plugin_id.to_string()));
        }
    }
    staff.mode = Mode::Live;
    let shown = form_page(&ctx, &staff, StatusCode::OK, &typed, Errors::new()).await;
    let live = kassa_web::page::set_cookie(
        &ctx.web,
        crate::page::MODE_COOKIE,
        Mode::Live.as_str(),
        "/dashboard",
        365,
    );
    kassa_web::page::with_cookies(shown, &[live])
}
