//! A buy link applied to a cart: its signature checked (`kassa_domain::signed_link`),
//! its product's line set with the link's offer when signed, and what the link
//! presets filled in. Shared by the buy link's GET (`buy`) and by the checkout's POST,
//! which makes the cart from the link a page carried (`checkout`).
//!
//! A link fills in only what the cart does not have yet: a link opened from another
//! site never overwrites the email, name, return URL or custom data the cart holds.

use std::collections::BTreeMap;

use chrono::Utc;
use kassa_domain::catalog::{CouponCode, MAX_QUANTITY, parse_outgoing_url};
use kassa_domain::ids::ProductId;
use kassa_domain::mode::Mode;
use kassa_domain::money::Currency;
use kassa_domain::signed_link::{self, LinkProblem};
use kassa_store::{CartLine, CartRecord, ProductRecord, StoreError, TenantRecord};
use poem::http::StatusCode;
use poem::{Request, Response};

use crate::page::{self, Errors, WebContext};

/// At most this many `custom[...]` entries are kept, each key up to 40 and each
/// value up to 500 characters.
const MAX_CUSTOM: usize = 20;

/// What a link did to a cart: the problems to show next to the fields, and the
/// quantities typed that were not taken, by line.
pub(crate) struct Applied {
    pub errors: Errors,
    pub typed: BTreeMap<usize, String>,
    /// The link's product, as read (the checkout prices it without reading it again).
    pub product: ProductRecord,
}

/// The path a link was opened at (`{store_path}/buy/{product}?{query}`, the store's
/// path in the page's mode), carried by the page while no cart is saved.
pub(crate) fn link_path(store_path: &str, product: &str, query: &str) -> String {
    format!("{store_path}/buy/{product}?{query}")
}

/// The product and query of a link carried by a page, if it is one of this store's in
/// the page's mode (a live page never takes a test link, nor the reverse).
pub(crate) fn split_link<'a>(store_path: &str, link: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = link.strip_prefix(&format!("{store_path}/buy/"))?;
    Some(rest.split_once('?').unwrap_or((rest, "")))
}

/// The page for a link that cannot be used.
fn bad_link(tenant: &TenantRecord, lang: &str, problem: LinkProblem) -> Response {
    let (key, detail) = match problem {
        LinkProblem::Tampered => ("link_tampered", None),
        LinkProblem::Expired(_) => ("link_expired", None),
        LinkProblem::Unsigned => ("link_unsigned", None),
        LinkProblem::Duplicate(key) => ("link_duplicate", Some(format!("{key:.40}"))),
        LinkProblem::Unknown(key) => ("link_unknown", Some(format!("{key:.40}"))),
        LinkProblem::Invalid(invalid) => ("link_invalid", Some(invalid.to_string())),
    };
    page::error_page_with(
        StatusCode::BAD_REQUEST,
        Some(tenant),
        lang,
        "bad_link_title",
        key,
        detail,
    )
}

/// Applies the buy link to `product` with `query` to `cart`: checks its signature,
/// sets the product's line (with the link's offer when signed) and what the link
/// presets. A link that cannot be used, or a product not for sale, is the page to
/// show instead.
pub(crate) async fn apply(
    ctx: &WebContext,
    req: &Request,
    tenant: &TenantRecord,
    cart: &mut CartRecord,
    product: &str,
    query: &str,
) -> Result<Applied, Response> {
    let params = signed_link::parse_query(query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let lang = page::pick_locale(param("locale").as_deref(), req);
    let product = match ProductId::parse(product) {
        // The product of the page's mode: the test checkout sells only test products.
        Ok(id) => match ctx.store.product(&tenant.id, page::mode(req), &id).await {
            Ok(p) if p.fields.active => p,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(page::error_page(
                    StatusCode::NOT_FOUND,
                    Some(tenant),
                    lang,
                    "not_found_title",
                    "product_unavailable",
                ));
            }
            Err(e) => return Err(page::failure(e)),
        },
        Err(_) => return Err(page::not_found(Some(tenant), lang)),
    };
    let secrets = ctx
        .store
        .link_secrets(&tenant.id)
        .await
        .map_err(page::failure)?;
    // A link signed by Kassa for test mode holds only in the test checkout; the links
    // a merchant signs (under the store's slug) hold in both.
    let verify = |name: &str| {
        signed_link::verify_any(
            &secrets.valid(),
            name,
            product.id.as_str(),
            &params,
            Utc::now(),
        )
    };
    let signed = match page::mode(req) {
        Mode::Live => verify(&tenant.slug),
        Mode::Test => match verify(&signed_link::signing_name(&tenant.slug, Mode::Test)) {
            Err(LinkProblem::Tampered) => verify(&tenant.slug),
            other => other,
        },
    }
    .map_err(|problem| bad_link(tenant, lang, problem))?;

    let mut errors = Errors::new();
    let existing = cart.lines.iter().position(|l| l.product_id == product.id);
    let index = existing.unwrap_or(cart.lines.len());
    let kept = existing.map(|i| cart.lines[i].clone());
    let mut typed = BTreeMap::new();
    let quantity = match (param("quantity"), &signed) {
        // A signed quantity was checked against the offer with the signature.
        (_, Some(signed)) => signed.quantity,
        (None, None) => kept.as_ref().map(|l| l.quantity).unwrap_or(1),
        (Some(raw), None) => match raw.parse::<i64>() {
            Ok(q) if (1..=MAX_QUANTITY).contains(&q) => q,
            _ => {
                typed.insert(index, raw.chars().take(20).collect::<String>());
                errors.insert(
                    format!("quantity_{index}"),
                    format!("must be a whole number between 1 and {MAX_QUANTITY}"),
                );
                kept.as_ref().map(|l| l.quantity).unwrap_or(1)
            }
        },
    };
    let line = CartLine {
        product_id: product.id.clone(),
        quantity,
        // A plain link for a product the cart holds on a signed offer keeps the offer
        // (its terms are checked again when the line is priced).
        offer: match signed {
            Some(signed) => Some(signed.offer),
            None => kept.and_then(|l| l.offer),
        },
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
    // What the customer types is theirs: a link only fills it in while it is empty.
    if cart.email.is_none()
        && let Some(email) = param("email")
    {
        cart.email = Some(email.chars().take(300).collect());
    }
    if cart.name.is_none()
        && let Some(name) = param("name")
    {
        cart.name = Some(name.chars().take(300).collect());
    }
    if let Some(locale) = param("locale") {
        cart.locale = page::language_of(&locale).map(str::to_owned);
    }
    if let Some(url) = param("return_url") {
        match parse_outgoing_url("return_url", &url) {
            Ok(url) => {
                cart.return_url.get_or_insert(url);
            }
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
        if ok_name && cart.custom.contains_key(name) {
            // Set before, by the customer's own first link: kept.
            continue;
        }
        if ok_name && value.chars().count() <= 500 && cart.custom.len() < MAX_CUSTOM {
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
    Ok(Applied {
        errors,
        typed,
        product,
    })
}
