//! The test/live switch in the dashboard's header: which world the pages show and
//! what they make (pools, API keys, buy links). A preference of this browser, kept in
//! a cookie; it changes what is shown, never an order.

use kassa_domain::account::Permission;
use kassa_domain::mode::Mode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use crate::page::{Ctx, MODE_COOKIE, staff_form};

#[handler]
pub async fn switch(req: &Request, body: Body, Data(ctx): Data<&Ctx>) -> Response {
    let (_staff, form) = match staff_form(ctx, req, body, Permission::SeeOrders).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let mode = match crate::page::field(&form, "mode") {
        "live" => Mode::Live,
        _ => Mode::Test,
    };
    let cookie =
        kassa_web::page::set_cookie(&ctx.web, MODE_COOKIE, mode.as_str(), "/dashboard", 365);
    kassa_web::page::see_other("/dashboard", &[cookie])
}
