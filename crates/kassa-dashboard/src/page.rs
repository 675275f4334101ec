//! What every dashboard page shares: the templates, the signed-in member (session,
//! store, role), CSRF, form errors and the answers (a page, a redirect, a refusal).

use kassa_domain::mode::Mode;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use kassa_domain::Invalid;
use kassa_domain::account::{Permission, Role, hash_token};
use kassa_domain::ids::UserId;
use kassa_store::{StoreError, TenantRecord};
use kassa_web::page::{cookie, csrf, csrf_ok};
use minijinja::{Environment, Value, context};
use poem::http::StatusCode;
use poem::{Request, Response};

/// What every dashboard handler is given.
pub struct Dash {
    /// What the customer pages have too: the store, the public URL, whether cookies
    /// are `Secure`, and the node's rate limits.
    pub web: kassa_web::WebContext,
    /// Checks plugin uploads and runs test runs; `None` where no host runs.
    pub plugins: Option<Arc<kassa_plugins::PluginHost>>,
    /// Which addresses outgoing requests may reach (webhook endpoints are checked
    /// against it when they are saved).
    pub network: kassa_webhooks::NetworkPolicy,
    /// The largest request body the server reads: an upload must fit in it.
    pub max_body_bytes: usize,
    /// The largest plugin component the server takes (its upload forms may be that
    /// large, plus the form's other fields).
    pub max_component_bytes: usize,
    /// Becomes `true` when the server starts to stop: open streams (the order list's
    /// live updates) end then, so they do not hold a restart for its grace period.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl Dash {
    /// Resolves when the server starts to stop; never, where no one can stop it.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.clone();
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

pub type Ctx = Arc<Dash>;

pub const SESSION_COOKIE: &str = "kassa_session";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = kassa_emails::environment(crate::templates::ALL.iter().copied());
    env.add_filter("money", |amount: i64, currency: String| {
        kassa_emails::money(amount, &currency)
    });
    env
});

/// Field errors of a form, by field name, shown next to each field.
pub type Errors = BTreeMap<String, String>;

/// The errors of a domain parse, by field.
pub fn errors_of(invalid: &Invalid) -> Errors {
    let mut errors = Errors::new();
    for e in &invalid.errors {
        errors
            .entry(e.field.clone())
            .or_insert_with(|| e.message.clone());
    }
    errors
}

pub fn one_error(field: &str, message: impl Into<String>) -> Errors {
    Errors::from([(field.to_owned(), message.into())])
}

/// A signed-in member working in a store.
pub struct Staff {
    pub user_id: UserId,
    pub email: String,
    pub tenant: TenantRecord,
    pub role: Role,
    pub csrf: String,
    /// The world the dashboard shows (test or live), switched in its header.
    pub mode: Mode,
    new_csrf_cookie: Option<String>,
}

/// The cookie holding the dashboard's mode: `live`, else test. A new store starts
/// in test mode, where it can sell from its first minute, as on Stripe.
pub const MODE_COOKIE: &str = "kassa_mode";

/// The mode this browser's dashboard shows.
pub fn mode(req: &Request) -> Mode {
    match kassa_web::page::cookie(req, MODE_COOKIE).as_deref() {
        Some("live") => Mode::Live,
        _ => Mode::Test,
    }
}

impl Staff {
    pub fn may(&self, p: Permission) -> bool {
        self.role.may(p)
    }
}

/// A signed-in user, in a store or not yet.
pub struct SignedIn {
    pub session_hash: String,
    pub user_id: UserId,
    pub email: String,
    pub store: Option<(TenantRecord, Role)>,
}

/// The session of this request, if it has a live one.
pub async fn signed_in(ctx: &Dash, req: &Request) -> Result<Option<SignedIn>, Response> {
    let Some(token) = cookie(req, SESSION_COOKIE) else {
        return Ok(None);
    };
    let session_hash = hash_token(&token);
    match ctx.web.store.session(&session_hash).await {
        Ok(s) => Ok(Some(SignedIn {
            session_hash,
            user_id: s.user_id,
            email: s.email,
            store: s.store,
        })),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(failure(e)),
    }
}

/// The signed-in user behind a form post (in a store or not), its CSRF token checked;
/// not signed in: to the login page.
pub async fn user_posting(
    ctx: &Dash,
    req: &Request,
    form: &[(String, String)],
) -> Result<SignedIn, Response> {
    if !csrf_ok(req, form) {
        return Err(csrf_refused());
    }
    match signed_in(ctx, req).await? {
        Some(me) => Ok(me),
        None => Err(redirect("/dashboard/login")),
    }
}

/// The time `lifetime` from now (when a link or a session expires).
pub fn expires_in(lifetime: std::time::Duration) -> kassa_store::Timestamp {
    let ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    kassa_store::Timestamp::from(kassa_store::Timestamp::now().millis().saturating_add(ms))
}

/// The member behind this request, allowed to do `need` in their store. Not signed
/// in: to the login page; no store yet: to creating one; not allowed: a 403 page.
pub async fn staff(ctx: &Dash, req: &Request, need: Permission) -> Result<Staff, Response> {
    let Some(me) = signed_in(ctx, req).await? else {
        let next = req
            .original_uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/dashboard");
        let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        return Err(redirect(&format!("/dashboard/login?next={next}")));
    };
    let Some((tenant, role)) = me.store else {
        return Err(redirect("/dashboard/stores/new"));
    };
    let (csrf, new_csrf_cookie) = csrf_pair(ctx, req);
    let staff = Staff {
        user_id: me.user_id,
        email: me.email,
        tenant,
        role,
        csrf,
        mode: mode(req),
        new_csrf_cookie,
    };
    if !staff.may(need) {
        return Err(forbidden(&staff));
    }
    Ok(staff)
}

/// Like [`staff`] for a form post: the CSRF token must match too.
pub async fn staff_posting(
    ctx: &Dash,
    req: &Request,
    form: &[(String, String)],
    need: Permission,
) -> Result<Staff, Response> {
    if !csrf_ok(req, form) {
        return Err(csrf_refused());
    }
    staff(ctx, req, need).await
}

/// Like [`staff_posting`] for a form in the request's body: the member, and the form.
pub async fn staff_form(
    ctx: &Dash,
    req: &Request,
    body: poem::Body,
    need: Permission,
) -> Result<(Staff, Vec<(String, String)>), Response> {
    let form = kassa_web::page::read_form(body).await;
    let staff = staff_posting(ctx, req, &form, need).await?;
    Ok((staff, form))
}

/// This browser's CSRF token, and the cookie to set when it is new.
pub fn csrf_pair(ctx: &Dash, req: &Request) -> (String, Option<String>) {
    csrf(&ctx.web, req)
}

/// The page for a form whose CSRF token is missing or forged.
pub fn csrf_refused() -> Response {
    public(
        StatusCode::FORBIDDEN,
        "message.html",
        context! {
            title => "This form has expired",
            message => "The form was sent without its security token, or from another site. Go back, reload the page and try again.",
        },
        None,
    )
}

fn forbidden(staff: &Staff) -> Response {
    page(
        staff,
        StatusCode::FORBIDDEN,
        "message.html",
        "",
        context! {
            title => "Not allowed",
            message => format!("Your role in {} ({}) does not allow this. Ask an owner of the store.", staff.tenant.name, staff.role),
        },
    )
}

/// Renders a page of the signed-in dashboard: the layout gets the member, the
/// store, the navigation (`section` marks the current one) and the CSRF token.
pub fn page(
    staff: &Staff,
    status: StatusCode,
    template: &str,
    section: &str,
    vars: Value,
) -> Response {
    let nav = [
        ("home", "Home", "/dashboard", Permission::SeeOrders),
        (
            "orders",
            "Orders",
            "/dashboard/orders",
            Permission::SeeOrders,
        ),
        (
            "products",
            "Products",
            "/dashboard/products",
            Permission::SeeCatalog,
        ),
        (
            "checkout-links",
            "Checkout links",
            "/dashboard/checkout-links",
            Permission::SeeCatalog,
        ),
        (
            "coupons",
            "Coupons",
            "/dashboard/coupons",
            Permission::SeeCatalog,
        ),
        (
            "pools",
            "License pools",
            "/dashboard/pools",
            Permission::SeeCatalog,
        ),
        (
            "webhooks",
            "Webhooks",
            "/dashboard/webhooks",
            Permission::Develop,
        ),
        (
            "api-keys",
            "API keys",
            "/dashboard/api-keys",
            Permission::Develop,
        ),
        (
            "plugins",
            "Plugins",
            "/dashboard/plugins",
            Permission::Develop,
        ),
        (
            "outbox",
            "Emails",
            "/dashboard/outbox",
            Permission::SeeOrders,
        ),
        ("team", "Team", "/dashboard/team", Permission::SeeOrders),
        (
            "settings",
            "Settings",
            "/dashboard/settings",
            Permission::EditSettings,
        ),
    ];
    let nav: Vec<Value> = nav
        .iter()
        .filter(|(_, _, _, need)| staff.may(*need))
        .map(|(id, label, href, _)| context! { id, label, href, current => *id == section })
        .collect();
    let layout = context! {
        me => context! { email => staff.email.clone(), role => staff.role.as_str() },
        shop => context! { name => staff.tenant.name.clone(), slug => staff.tenant.slug.clone() },
        nav => nav,
        csrf => staff.csrf.clone(),
        livemode => staff.mode.is_live(),
    };
    let resp = render(status, template, context! { ..layout, ..vars });
    with_csrf_cookie(resp, staff.new_csrf_cookie.as_deref())
}

/// Renders a page outside the signed-in dashboard (sign up, log in, messages).
pub fn public(
    status: StatusCode,
    template: &str,
    vars: Value,
    csrf_cookie: Option<&str>,
) -> Response {
    with_csrf_cookie(render(status, template, vars), csrf_cookie)
}

fn with_csrf_cookie(mut resp: Response, cookie: Option<&str>) -> Response {
    if let Some(c) = cookie
        && let Ok(v) = poem::http::HeaderValue::from_str(c)
    {
        resp.headers_mut().append("set-cookie", v);
    }
    resp
}

fn render(status: StatusCode, template: &str, vars: Value) -> Response {
    match TEMPLATES.get_template(template).and_then(|t| t.render(vars)) {
        Ok(html) => Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .header("cache-control", "no-store")
            .header("x-frame-options", "DENY")
            .header("referrer-policy", "same-origin")
            .header("content-security-policy", "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
            .body(html),
        Err(e) => failure(e),
    }
}

/// A 303 to `location`, so a refresh does not post again.
pub fn redirect(location: &str) -> Response {
    kassa_web::page::see_other(location, &[])
}

/// Logs a failure and answers with a plain page (503 when the database cannot be
/// reached right now, else 500): the customer pages' one error answer.
pub fn failure<E: std::fmt::Display + 'static>(e: E) -> Response {
    kassa_web::page::failure(e)
}

/// The page for an object that is not in the member's store.
pub fn not_found(staff: &Staff) -> Response {
    page(
        staff,
        StatusCode::NOT_FOUND,
        "message.html",
        "",
        context! { title => "Not found", message => "There is no such page in this store." },
    )
}

/// Any other address under `/dashboard`: the dashboard's own "Not found" page (after
/// signing in), not the API's problem+json, which a browser shows as raw JSON.
#[poem::handler]
pub async fn unknown(ctx: poem::web::Data<&Ctx>, req: &Request) -> Response {
    match staff(&ctx, req, Permission::SeeOrders).await {
        Ok(staff) => not_found(&staff),
        Err(resp) => resp,
    }
}

/// A file chosen on a form: its name as the browser gave it, and its bytes.
pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// A form sent as `multipart/form-data`: its text fields, and the file in
/// `file_field` when one was chosen (an empty file counts as none).
pub async fn multipart(
    mut parts: poem::web::Multipart,
    file_field: &str,
) -> (Vec<(String, String)>, Option<Upload>) {
    let mut form = Vec::new();
    let mut file = None;
    while let Ok(Some(part)) = parts.next_field().await {
        let name = part.name().unwrap_or_default().to_owned();
        if name == file_field {
            let file_name = part.file_name().unwrap_or_default().to_owned();
            let bytes = part.bytes().await.unwrap_or_default();
            if !bytes.is_empty() {
                file = Some(Upload { file_name, bytes });
            }
        } else if let Ok(text) = part.text().await {
            form.push((name, text));
        }
    }
    (form, file)
}

/// The value of a form field, trimmed; empty when absent.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    kassa_web::page::form_value(form, name).map_or("", str::trim)
}

/// A form field that may be left empty.
/// A whole number typed in a form field; empty is `None`.
pub fn number(form: &[(String, String)], name: &str, invalid: &mut Invalid) -> Option<i64> {
    let raw = field(form, name);
    if raw.is_empty() {
        return None;
    }
    raw.parse()
        .map_err(|_| invalid.push(name, "must be a whole number"))
        .ok()
}

/// A last day typed in a form field (`2026-12-31`): the end of that day, UTC, so it
/// holds through the whole day; empty is `None`.
pub fn last_day(
    form: &[(String, String)],
    name: &str,
    invalid: &mut Invalid,
) -> Option<chrono::DateTime<chrono::Utc>> {
    match field(form, name) {
        "" => None,
        raw => match chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => d
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
            Err(_) => {
                invalid.push(name, "must be a date like 2026-12-31");
                None
            }
        },
    }
}

pub fn optional(form: &[(String, String)], name: &str) -> Option<String> {
    Some(field(form, name))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Counts a visitor's action against the rate limits: `Err` with a message to show
/// next to the field when over.
pub fn limited(ctx: &Dash, action: kassa_limits::Action<'_>) -> Result<(), String> {
    ctx.web.limits.check(action).map_err(|too_many| {
        let minutes = too_many.retry_after_secs().div_ceil(60);
        format!(
            "Too many attempts from here or for this account. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )
    })
}

/// The URL of a page with a notice to show once (`?notice=…`).
pub fn with_notice(path: &str, notice: &str) -> String {
    let notice: String = url::form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    format!("{path}?notice={notice}")
}

/// The whole of a store's list, for the pages that show every item at once.
pub fn all() -> kassa_store::PageRequest {
    kassa_store::PageRequest {
        after: None,
        limit: 500,
    }
}

/// A query parameter of the request.
pub fn query(req: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.original_uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A time as the dashboard shows it: `2026-12-05 14:03 UTC`.
pub fn when(at: &kassa_store::Timestamp) -> String {
    at.0.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A size in bytes as people read it: `512 bytes`, `340 KiB`, `2 MiB`, `1.5 MiB`.
pub fn size(bytes: i64) -> String {
    const KIB: i64 = 1024;
    const MIB: i64 = 1024 * 1024;
    if bytes < KIB {
        format!("{bytes} bytes")
    } else if bytes < MIB {
        format!("{} KiB", (bytes + KIB / 2) / KIB)
    } else {
        let tenths = (bytes * 10 + MIB / 2) / MIB;
        if tenths % 10 == 0 {
            format!("{} MiB", tenths / 10)
        } else {
            format!("{}.{} MiB", tenths / 10, tenths % 10)
        }
    }
}

/// The answer to a dashboard form whose body is larger than the server reads (the
/// server's body limit answers before any handler): what happened, and the way back
/// to the page the form was on.
pub fn too_large(req: &Request, max_body_bytes: usize) -> Response {
    let back = req
        .headers()
        .get("referer")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        })
        .filter(|p| p.starts_with("/dashboard") && !p.contains("//"))
        .unwrap_or_else(|| "/dashboard".to_owned());
    public(
        StatusCode::PAYLOAD_TOO_LARGE,
        "message.html",
        context! {
            title => "The file is too large",
            message => format!(
                "Kassa accepts uploads of at most {} for now, and nothing was saved. Go back and choose a smaller file.",
                size(i64::try_from(max_body_bytes).unwrap_or(i64::MAX))
            ),
            link => context! { href => back, label => "Go back" },
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(340 * 1024), "340 KiB");
        assert_eq!(size(2 * 1024 * 1024), "2 MiB");
        assert_eq!(size(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
