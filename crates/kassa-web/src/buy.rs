//! `/{tenant}/buy/{product}`: a buy link puts the product in the store's cart (kept by
//! a cookie, so the customer can go back to the merchant's site and come in again
//! through another product's link) and opens the checkout.
//!
//! Query parameters: `quantity`, `currency`, `coupon`, `email`, `name`, `locale`,
//! `return_url`, `custom[KEY]`; signed links may add `price`, `discount`,
//! `min_quantity`, `max_quantity`, `expires` and must carry `sig` (the format is
//! `kassa_domain::signed_link`'s; the offer's rules `kassa_domain::offer`'s).
//!
//! A GET writes nothing for a browser without a cart: the checkout page is shown from
//! the link, and carries it in a hidden field, so the cart is saved only when the
//! customer acts on the page (a same-site POST, with its CSRF token). A flood of GETs
//! leaves no row behind. The cart cookie is set at once, with the token the cart will
//! have, so two submits of the page make one cart and one order. With a cart, the
//! link sets its product's line (opening the same link twice changes nothing more)
//! and fills in only what the cart does not have yet (see `link`).

use std::sync::Arc;

use kassa_limits::Action;
use kassa_store::CartRecord;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};

use crate::checkout;
use crate::form::FormState;
use crate::link;
use crate::page::{self, WebContext};

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
    // Every buy link opened is counted, cart or not.
    let locale = url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "locale")
        .map(|(_, v)| v.into_owned());
    let lang = page::pick_locale(locale.as_deref(), req);
    let form = Action::Form {
        ip: page::client_addr(req),
    };
    if let Some(resp) = page::over_limit(ctx, form, &tenant, lang) {
        return resp;
    }
    let query = req.uri().query().unwrap_or_default();
    let current = match checkout::current_cart(ctx, &tenant, req).await {
        Ok(cart) => cart,
        Err(resp) => return resp,
    };
    let token = checkout::unsaved_cart_token(req, current.as_ref());
    let existing = current.filter(|c| c.order_id.is_none());
    let saved = existing.is_some();
    let mut cart = existing.unwrap_or_else(|| CartRecord {
        token,
        mode: page::mode(req),
        ..CartRecord::default()
    });
    let applied = match link::apply(ctx, req, &tenant, &mut cart, &product, query).await {
        Ok(applied) => applied,
        Err(resp) => return resp,
    };
    let form = if saved {
        cart = match ctx.store.save_cart(&tenant.id, &cart).await {
            Ok(cart) => cart,
            Err(e) => return page::failure(e),
        };
        if applied.errors.is_empty() {
            let cookie = checkout::cart_cookie(ctx, req, &tenant, &cart);
            let to = format!("{}/checkout", page::store_path(req, &tenant));
            return page::see_other(&to, &[cookie]);
        }
        // The problems are shown on the checkout page; opening the link again is harmless.
        FormState::from_cart(&cart)
    } else {
        // Nothing is written until the customer acts: the page carries the link.
        FormState {
            link: Some(link::link_path(
                &page::store_path(req, &tenant),
                &product,
                query,
            )),
            ..FormState::from_cart(&cart)
        }
    };
    let cookie = checkout::cart_cookie(ctx, req, &tenant, &cart);
    checkout::render(
        ctx,
        req,
        &tenant,
        &cart,
        &form,
        &applied.typed,
        applied.errors,
        vec![cookie],
    )
    .await
}
