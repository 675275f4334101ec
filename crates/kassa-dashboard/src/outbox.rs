//! The store's emails: what Kassa sent (or keeps, without SMTP) to customers and to
//! the owners, newest first, each readable as it was written.

use kassa_domain::account::Permission;
use kassa_store::PageRequest;
use minijinja::context;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, handler};

use crate::page::{Ctx, failure, page, query, staff, when};

const PAGE_SIZE: i64 = 25;

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeOrders).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let request = PageRequest {
        after: query(req, "after").filter(|a| a.starts_with("eml_")),
        limit: PAGE_SIZE,
    };
    let found = match ctx
        .web
        .store
        .list_emails(&staff.tenant.id, staff.mode, &request)
        .await
    {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let emails: Vec<_> = found
        .data
        .iter()
        .map(|e| {
            context! {
                id => e.id.clone(), kind => e.kind.replace('_', " "), to => e.to_address.clone(),
                status => e.status.clone(), subject => e.subject.clone(),
                text => e.text_body.clone(), error => e.last_error.clone(),
                order_id => e.order_id.clone(), created_at => when(&e.created_at),
            }
        })
        .collect();
    let next = found
        .next_cursor
        .map(|after| format!("/dashboard/outbox?after={after}"));
    page(
        &staff,
        StatusCode::OK,
        "outbox.html",
        "outbox",
        context! { emails, next, smtp_hint => found.data.iter().any(|e| e.status == "kept") },
    )
}
