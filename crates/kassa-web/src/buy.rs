//! `/{tenant}/buy/{product}`: a buy link puts the product in the store's cart (kept by
//! a cookie, so the customer can go back to the merchant's site and come in again
//! through another product's link) and opens the checkout.
//!
//! Query parameters: `quantity`, `currency`, `coupon`, `email`, `name`, `locale`,
//! `return_url`, `custom[KEY]`; signed links may add `price`, `discount`, `expires`
//! and must carry `sig` (see `kassa_domain::signed_link`). Opening the same link twice
//! changes nothing more: the product's line is set, not added again.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use kassa_domain::catalog::{CouponCode, MAX_QUANTITY, parse_outgoing_url};
use kassa_domain::ids::ProductId;
use kassa_domain::money::Currency;
use kassa_domain::signed_link::{self, LinkProblem};
use kassa_limits::Action;
use kassa_store::{CartLine, CartRecord, StoreError};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};

use crate::checkout::{self, Errors, FormState};
use crate::page::{self, WebContext};

/// At most this many `custom[...]` entries are kept, each key up to 40 and each
/// value up to 500 characters.
const MAX_CUSTOM: usize = 20;

#[handler]
pub async fn buy(
    req: &Request,
    Path((slug, product)): Path<(String, String)>,
    Data(ctx): Data<&Arc<WebContext>>,
) -> Response {
    let tenant = match page::tenant(ctx, &slug, req).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let params: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let lang = page::pick_locale(param("locale").as_deref(), req);
    // Every buy link opened may write a cart.
    let form = Action::Form {
        ip: page::client_addr(req),
    };
    if let Some(resp) = page::over_limit(ctx, form, &tenant, lang) {
        return resp;
    }
    let product = match ProductId::parse(&product) {
        Ok(id) => match ctx.store.product(&tenant.id, &id).await {
            Ok(p) if p.fields.active => p,
            Ok(_) | Err(StoreError::NotFound) => {
                return page::error_page(
                    StatusCode::NOT_FOUND,
                    Some(&tenant),
                    lang,
                    "not_found_title",
                    "product_unavailable",
                );
            }
            Err(e) => return page::failure(e),
        },
        Err(_) => return page::not_found(Some(&tenant), lang),
    };
    let secrets = match ctx.store.link_secrets(&tenant.id).await {
        Ok(s) => s,
        Err(e) => return page::failure(e),
    };
    let path = req.uri().path().to_owned();
    let signed =
        match signed_link::verify_any(&secrets.valid(), &path, &params, Utc::now().timestamp()) {
            Ok(signed) => signed,
            Err(problem) => {
                let key = match problem {
                    LinkProblem::Tampered => "link_tampered",
                    LinkProblem::Expired => "link_expired",
                    LinkProblem::Unsigned => "link_unsigned",
                };
                return page::error_page(
                    StatusCode::BAD_REQUEST,
                    Some(&tenant),
                    lang,
                    "bad_link_title",
                    key,
                );
            }
        };

    let mut cart = match checkout::current_cart(ctx, &tenant, req).await {
        Ok(Some(cart)) if cart.order_id.is_none() => cart,
        Ok(_) => CartRecord {
            token: page::random_token(),
            ..CartRecord::default()
        },
        Err(resp) => return resp,
    };
    let mut errors = Errors::new();
    let existing = cart.lines.iter().position(|l| l.product_id == product.id);
    let index = existing.unwrap_or(cart.lines.len());
    let mut typed = BTreeMap::new();
    let quantity = match param("quantity") {
        None => existing.map(|i| cart.lines[i].quantity).unwrap_or(1),
        Some(raw) => match raw.parse::<i64>() {
            Ok(q) if (1..=MAX_QUANTITY).contains(&q) => q,
            _ => {
                typed.insert(index, raw.chars().take(20).collect::<String>());
                errors.insert(
                    format!("quantity_{index}"),
                    format!("must be a whole number between 1 and {MAX_QUANTITY}"),
                );
                existing.map(|i| cart.lines[i].quantity).unwrap_or(1)
            }
        },
    };
    let signed_amount = |name: &str, errors: &mut Errors| -> Option<i64> {
        let raw = param(name).filter(|_| signed)?;
        match raw.parse::<i64>() {
            Ok(v) if (0..=kassa_domain::money::MAX_AMOUNT).contains(&v) => Some(v),
            _ => {
                errors.insert(
                    format!("line_{index}"),
                    format!("the link's {name} is not valid"),
                );
                None
            }
        }
    };
    let line = CartLine {
        product_id: product.id.clone(),
        quantity,
        unit_amount: signed_amount("price", &mut errors),
        discount: signed_amount("discount", &mut errors),
    };
    match existing {
        Some(i) => cart.lines[i] = line,
        None => cart.lines.push(line),
    }

    if let Some(raw) = param("currency") {
        match Currency::parse("currency", &raw) {
            Ok(c) if product.fields.prices.iter().any(|p| p.currency == c.code()) => {
                cart.currency = Some(c.code().to_owned());
            }
            Ok(c) => {
                errors.insert(
                    "currency".into(),
                    format!("{} is not sold in {c}", product.fields.name),
                );
            }
            Err(_) => {
                errors.insert("currency".into(), format!("{raw:?} is not a currency"));
            }
        }
    }
    if cart.currency.is_none() {
        cart.currency = product.fields.prices.first().map(|p| p.currency.clone());
    }
    if let Some(raw) = param("coupon") {
        match CouponCode::parse("coupon", &raw) {
            Ok(code) => cart.coupon_code = Some(code.as_str().to_owned()),
            Err(_) => {
                errors.insert("coupon".into(), "this coupon does not exist".into());
            }
        }
    }
    if let Some(email) = param("email") {
        cart.email = Some(email.chars().take(300).collect());
    }
    if let Some(name) = param("name") {
        cart.name = Some(name.chars().take(300).collect());
    }
    if let Some(locale) = param("locale") {
        cart.locale = page::language_of(&locale).map(str::to_owned);
    }
    if let Some(url) = param("return_url") {
        match parse_outgoing_url("return_url", &url) {
            Ok(url) => cart.return_url = Some(url),
            Err(_) => {
                errors.insert(
                    "cart".into(),
                    "the link's return_url is not a valid web address".into(),
                );
            }
        }
    }
    for (key, value) in &params {
        let Some(name) = key
            .strip_prefix("custom[")
            .and_then(|k| k.strip_suffix(']'))
        else {
            continue;
        };
        let ok_name = (1..=40).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok_name
            && value.chars().count() <= 500
            && (cart.custom.len() < MAX_CUSTOM || cart.custom.contains_key(name))
        {
            cart.custom
                .insert(name.to_owned(), serde_json::Value::String(value.clone()));
        } else {
            errors.insert(
                "cart".into(),
                format!(
                    "the link's custom[{}] was not kept",
                    name.chars().take(40).collect::<String>()
                ),
            );
        }
    }

    let cart = match ctx.store.save_cart(&tenant.id, &cart).await {
        Ok(cart) => cart,
        Err(e) => return page::failure(e),
    };
    let cookie = checkout::cart_cookie(ctx, &tenant, &cart);
    if errors.is_empty() {
        return page::see_other(&format!("/{}/checkout", tenant.slug), &[cookie]);
    }
    // Show the problems on the checkout page itself; opening the link again is harmless.
    let form = FormState::from_cart(&cart);
    checkout::render(
        ctx,
        req,
        &tenant,
        &cart,
        &form,
        &typed,
        errors,
        vec![cookie],
    )
    .await
}
