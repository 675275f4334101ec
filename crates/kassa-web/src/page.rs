//! What all pages share: templates, texts, the store's branding, cookies, CSRF,
//! and the error pages.

use std::sync::LazyLock;

use kassa_domain::Reason;
use kassa_domain::mode::Mode;
use kassa_domain::order::PaymentMethod;
use kassa_domain::tenant::TenantSettings;
use kassa_domain::workflow::Refused;
pub use kassa_emails::{Brand, Texts, brand, language_of, method_label, money, texts};
use kassa_emails::{default_locale, environment};
use kassa_store::{Store, StoreError, TenantRecord};
use minijinja::Environment;
use poem::http::StatusCode;
use poem::{Request, Response};
use serde::Serialize;

/// Field errors keyed by form field name (`email`, `quantity_0`, `consents.terms`).
pub type Errors = std::collections::BTreeMap<String, String>;

/// What every page needs.
#[derive(Clone)]
pub struct WebContext {
    pub store: Store,
    /// Where customers reach Kassa, without a trailing slash.
    pub public_url: String,
    /// Whether cookies are marked `Secure` (true when the public URL is https).
    pub secure_cookies: bool,
    /// Rate limits on what visitors can make Kassa do.
    pub limits: std::sync::Arc<kassa_limits::Limits>,
    /// Where the payment providers (Stripe) are reached.
    pub providers: kassa_orders::Providers,
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    environment([
        (
            "base.html",
            include_str!("../../../web/templates/base.html"),
        ),
        (
            "error.html",
            include_str!("../../../web/templates/error.html"),
        ),
        (
            "checkout.html",
            include_str!("../../../web/templates/checkout.html"),
        ),
        (
            "order_summary.html",
            include_str!("../../../web/templates/order_summary.html"),
        ),
        ("pay.html", include_str!("../../../web/templates/pay.html")),
        (
            "order.html",
            include_str!("../../../web/templates/order.html"),
        ),
        (
            "invoice.html",
            include_str!("../../../web/templates/invoice.html"),
        ),
    ])
});

/// Picks the language: an explicit choice, else the browser's `Accept-Language`.
pub fn pick_locale(explicit: Option<&str>, req: &Request) -> &'static str {
    if let Some(lang) = explicit.and_then(language_of) {
        return lang;
    }
    let accept = req
        .headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept
        .split(',')
        .find_map(|part| language_of(part.split(';').next().unwrap_or_default()))
        .unwrap_or_else(default_locale)
}

/// A payment method as a choice on a page.
#[derive(Serialize)]
pub struct MethodChoice {
    pub value: &'static str,
    pub label: String,
    /// Chosen on the page as it opens: one always is, when any is offered.
    pub checked: bool,
}

/// The methods a customer may choose in `mode` (Stripe only once that mode's keys are
/// set), the one `chosen` before checked if it is among them, else the one the domain
/// prefers (`PaymentMethod::preselected`).
pub fn method_choices(
    tenant: &TenantRecord,
    settings: &TenantSettings,
    mode: Mode,
    chosen: &str,
    t: &Texts,
) -> Vec<MethodChoice> {
    let offered = settings.offered_methods(mode, tenant.stripe_ready(mode));
    let checked = PaymentMethod::preselected(PaymentMethod::from_name(chosen), &offered);
    offered
        .into_iter()
        .map(|m| MethodChoice {
            value: m.as_str(),
            label: method_label(m, t),
            checked: Some(m) == checked,
        })
        .collect()
}

/// The text `key` of the page's language (every locale has every key; an empty text
/// rather than a panic if one did not).
pub fn text(t: &Texts, key: &str) -> String {
    t.get(key).cloned().unwrap_or_default()
}

/// A use case's message about a field, in the page's language: a refusal customers
/// meet by its code (`refused_<code>` in web/locales), else as the use case said it.
pub fn field_message(e: &kassa_domain::FieldError, t: &Texts) -> String {
    match &e.reason {
        Some(reason) => reason_message(reason, t).unwrap_or_else(|| e.message.clone()),
        None => e.message.clone(),
    }
}

/// The workflow's refusal `refused`, in the page's language (in English, as the API
/// says it, when it is none customers meet or the locale has no text for it).
pub fn refusal_message(refused: &Refused, t: &Texts) -> String {
    refused
        .reason()
        .and_then(|reason| reason_message(&reason, t))
        .unwrap_or_else(|| refused.to_string())
}

fn reason_message(reason: &Reason, t: &Texts) -> Option<String> {
    let text = t.get(&format!("refused_{}", reason.code()))?;
    let method = |name: &str| {
        PaymentMethod::from_name(name).map_or_else(|| name.to_owned(), |m| method_label(m, t))
    };
    Some(match reason {
        Reason::SandboxInLiveMode(name) | Reason::MethodNotOffered(name) => {
            text.replace("{method}", &method(name))
        }
        Reason::OfferExpired(at) => text.replace("{date}", at),
        Reason::CouponUsedUp => text.clone(),
    })
}

/// The mode of the checkout page asked for: test under `/{store}/test/`, else live.
pub fn mode(req: &Request) -> Mode {
    req.data::<Mode>().copied().unwrap_or(Mode::Live)
}

/// Where the checkout of this request's mode lives: `/{store}` or `/{store}/test`.
pub fn store_path(req: &Request, tenant: &TenantRecord) -> String {
    mode(req).store_path(&tenant.slug)
}

/// Renders a template into an HTML response.
pub fn render(status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    let html = TEMPLATES.get_template(template).and_then(|t| t.render(ctx));
    match html {
        Ok(html) => Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .header("cache-control", "no-store")
            .header("x-frame-options", "DENY")
            .header("referrer-policy", "same-origin")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, template, "page failed to render");
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong; it has been logged.")
        }
    }
}

/// A page that says what went wrong, branded when the store is known.
pub fn error_page(
    status: StatusCode,
    tenant: Option<&TenantRecord>,
    lang: &str,
    title_key: &str,
    message_key: &str,
) -> Response {
    error_page_with(status, tenant, lang, title_key, message_key, None)
}

/// [`error_page`] with a line of detail under the message (which parameter, say).
pub fn error_page_with(
    status: StatusCode,
    tenant: Option<&TenantRecord>,
    lang: &str,
    title_key: &str,
    message_key: &str,
    detail: Option<String>,
) -> Response {
    let message = texts(lang).get(message_key).cloned().unwrap_or_default();
    error_page_saying(status, tenant, lang, title_key, message, detail)
}

/// An error page whose message is given, not a text's key.
fn error_page_saying(
    status: StatusCode,
    tenant: Option<&TenantRecord>,
    lang: &str,
    title_key: &str,
    message: String,
    detail: Option<String>,
) -> Response {
    let t = texts(lang);
    let settings = tenant
        .map(|t| TenantSettings::from_json(&t.settings))
        .unwrap_or_default();
    let store = match tenant {
        Some(tenant) => brand(tenant, &settings),
        None => Brand::kassa(),
    };
    render(
        status,
        "error.html",
        minijinja::context! {
            t => t,
            store => store,
            title => t.get(title_key).cloned().unwrap_or_default(),
            message => message,
            detail => detail,
        },
    )
}

/// Counts `action` against the rate limits; over a limit, the page to answer with
/// instead, which says when to try again (429, with `Retry-After`).
pub fn over_limit(
    ctx: &WebContext,
    action: kassa_limits::Action<'_>,
    tenant: &TenantRecord,
    lang: &str,
) -> Option<Response> {
    ctx.limits.check(action).err().map(|refused| {
        let secs = refused.retry_after_secs();
        let message = texts(lang)
            .get("too_many")
            .cloned()
            .unwrap_or_default()
            .replace("{minutes}", &secs.div_ceil(60).to_string());
        let mut resp = error_page_saying(
            StatusCode::TOO_MANY_REQUESTS,
            Some(tenant),
            lang,
            "too_many_title",
            message,
            None,
        );
        resp.headers_mut()
            .insert(poem::http::header::RETRY_AFTER, secs.into());
        resp
    })
}

pub fn not_found(tenant: Option<&TenantRecord>, lang: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        tenant,
        lang,
        "not_found_title",
        "not_found",
    )
}

/// The page for a request whose body is over the server's limit.
pub fn too_large(req: &Request) -> Response {
    error_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        pick_locale(None, req),
        "too_large_title",
        "too_large",
    )
}

/// Logs a failure and answers with a plain page: 503 with `Retry-After` when the
/// database cannot be reached right now (restarting, down, no connection free in
/// time), else 500. The pages' and the dashboard's one error answer.
pub fn failure<E: std::fmt::Display + 'static>(e: E) -> Response {
    let any: &dyn std::any::Any = &e;
    let unavailable = any
        .downcast_ref::<StoreError>()
        .is_some_and(StoreError::is_unavailable)
        || any
            .downcast_ref::<kassa_orders::OrdersError>()
            .is_some_and(kassa_orders::OrdersError::is_unavailable);
    if unavailable {
        tracing::warn!(error = %e, "page failed: database unavailable");
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("text/plain; charset=utf-8")
            .header(poem::http::header::RETRY_AFTER, RETRY_AFTER_SECS)
            .header("cache-control", "no-store")
            .body("We cannot reach our database right now; nothing was changed. Please try again in a moment.");
    }
    tracing::error!(error = %e, "page failed");
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .content_type("text/plain; charset=utf-8")
        .body("Something went wrong on our side; it has been logged. Please try again.")
}

/// What a 503 page asks the browser to wait, in seconds.
const RETRY_AFTER_SECS: u64 = 2;

/// Finds the store a page belongs to.
pub async fn tenant(ctx: &WebContext, slug: &str, req: &Request) -> Result<TenantRecord, Response> {
    match ctx.store.tenant_by_slug(slug).await {
        Ok(t) => Ok(t),
        Err(StoreError::NotFound) => Err(not_found(None, pick_locale(None, req))),
        Err(e) => Err(failure(e)),
    }
}

/// A cookie's value from the request.
pub fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, for the store's pages only.
pub fn set_cookie(
    ctx: &WebContext,
    name: &str,
    value: &str,
    path: &str,
    max_age_days: u32,
) -> String {
    let secure = if ctx.secure_cookies { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        u64::from(max_age_days) * 86_400
    )
}

pub fn random_token() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

pub const CSRF_COOKIE: &str = "kassa_csrf";

/// The CSRF token of this browser, and the `Set-Cookie` to send when it is new.
pub fn csrf(ctx: &WebContext, req: &Request) -> (String, Option<String>) {
    match cookie(req, CSRF_COOKIE) {
        Some(token) => (token, None),
        None => {
            let token = random_token();
            let set = set_cookie(ctx, CSRF_COOKIE, &token, "/", 1);
            (token, Some(set))
        }
    }
}

/// True when a form's token matches the browser's cookie (double submit).
pub fn csrf_ok(req: &Request, form: &[(String, String)]) -> bool {
    let sent = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    match (cookie(req, CSRF_COOKIE), sent) {
        (Some(cookie), Some(sent)) => kassa_domain::secret::same(&cookie, sent),
        _ => false,
    }
}

pub fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses a form body (its size is bounded by the server's one body limit); an
/// unreadable one reads as empty (and then fails CSRF).
pub async fn read_form(body: poem::Body) -> Vec<(String, String)> {
    match body.into_bytes().await {
        Ok(bytes) => url::form_urlencoded::parse(&bytes).into_owned().collect(),
        Err(_) => Vec::new(),
    }
}

/// The page a POST redirects to (303, so a refresh does not resubmit).
pub fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", location);
    for c in cookies {
        builder = builder.header("set-cookie", c.as_str());
    }
    builder.finish()
}

pub fn with_cookies(mut resp: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = poem::http::HeaderValue::from_str(c) {
            resp.headers_mut().append("set-cookie", v);
        }
    }
    resp
}

pub use kassa_limits::ClientAddr;

/// The client's address: [`ClientAddr`], or else the peer's.
pub fn client_addr(req: &Request) -> Option<std::net::IpAddr> {
    match req.extensions().get::<ClientAddr>() {
        Some(ClientAddr(ip)) => Some(*ip),
        None => req.remote_addr().as_socket_addr().map(|a| a.ip()),
    }
}

pub fn client_ip(req: &Request) -> Option<String> {
    client_addr(req).map(|ip| ip.to_string())
}

pub fn user_agent(req: &Request) -> Option<String> {
    req.headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect())
}
