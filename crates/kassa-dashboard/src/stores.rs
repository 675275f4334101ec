//! Stores: create one (the first run after signing up), switch between the stores a
//! member belongs to, and the store's settings: branding (logo, accent colour),
//! support email, legal links, bank details, payment methods, each mode's Stripe keys,
//! reminders and retention.

use kassa_domain::Invalid;
use kassa_domain::account::Permission;
use kassa_domain::mode::Mode;
use kassa_domain::order::PaymentMethod;
use kassa_domain::tenant::{
    BankDetails, StripeAccount, TenantSettings, TenantSlug, last4, parse_tenant_name,
};
use kassa_store::StoreError;
use minijinja::context;
use poem::http::StatusCode;
use poem::web::{Data, Multipart, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, csrf_pair, errors_of, failure, field, multipart, one_error, optional, page,
    public, query, redirect, signed_in, staff, staff_posting, user_posting, with_notice,
};

/// The largest logo accepted.
const MAX_LOGO_BYTES: usize = 512 * 1024;

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let me = match signed_in(&ctx, req).await {
        Ok(Some(me)) => me,
        Ok(None) => return redirect("/dashboard/login"),
        Err(resp) => return resp,
    };
    let stores = match ctx.web.store.memberships(&me.user_id).await {
        Ok(m) => m,
        Err(e) => return failure(e),
    };
    let current = me.store.as_ref().map(|(t, _)| t.id.as_str().to_owned());
    let stores: Vec<_> = stores
        .iter()
        .map(|m| {
            context! {
                id => m.tenant.id.as_str(), name => m.tenant.name.clone(),
                slug => m.tenant.slug.clone(), role => m.role.as_str(),
                current => current.as_deref() == Some(m.tenant.id.as_str()),
            }
        })
        .collect();
    let (csrf, cookie) = csrf_pair(&ctx, req);
    public(
        StatusCode::OK,
        "stores.html",
        context! { stores, csrf },
        cookie.as_deref(),
    )
}

#[handler]
pub async fn switch(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let me = match user_posting(&ctx, req, &form).await {
        Ok(me) => me,
        Err(resp) => return resp,
    };
    let Ok(tenant) = kassa_domain::ids::TenantId::parse(field(&form, "store")) else {
        return redirect("/dashboard/stores");
    };
    match ctx
        .web
        .store
        .switch_store(&me.session_hash, &me.user_id, &tenant)
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => redirect("/dashboard"),
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn new_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    match signed_in(&ctx, req).await {
        Ok(Some(_)) => {}
        Ok(None) => return redirect("/dashboard/login?next=/dashboard/stores/new"),
        Err(resp) => return resp,
    }
    let (csrf, cookie) = csrf_pair(&ctx, req);
    public(
        StatusCode::OK,
        "store_new.html",
        context! { csrf, name => "", slug => "", errors => Errors::new(), public_url => ctx.web.public_url.clone() },
        cookie.as_deref(),
    )
}

#[handler]
pub async fn create(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let me = match user_posting(&ctx, req, &form).await {
        Ok(me) => me,
        Err(resp) => return resp,
    };
    let (name, slug) = (field(&form, "name"), field(&form, "slug"));
    let again = |status, errors: Errors| {
        let (csrf, cookie) = csrf_pair(&ctx, req);
        public(
            status,
            "store_new.html",
            context! { csrf, name, slug, errors, public_url => ctx.web.public_url.clone() },
            cookie.as_deref(),
        )
    };
    let mut invalid = Invalid::default();
    let parsed_name = invalid.check(parse_tenant_name(name));
    let parsed_slug = invalid.check(TenantSlug::parse(slug));
    let (Some(parsed_name), Some(parsed_slug)) = (parsed_name, parsed_slug) else {
        return again(StatusCode::UNPROCESSABLE_ENTITY, errors_of(&invalid));
    };
    match ctx
        .web
        .store
        .create_store(
            &me.user_id,
            &me.session_hash,
            &parsed_slug,
            &parsed_name,
            &TenantSettings::for_new_store(),
        )
        .await
    {
        Ok(_) => redirect(&with_notice(
            "/dashboard/settings",
            "Your store is ready. Add your branding, legal links and how customers pay.",
        )),
        Err(StoreError::Conflict(_)) => again(
            StatusCode::CONFLICT,
            one_error("slug", "This URL name is taken; choose another."),
        ),
        Err(e) => failure(e),
    }
}

/// The settings form's values: the stored settings, or what was typed.
fn settings_form(settings: &TenantSettings) -> minijinja::Value {
    let bank = settings.bank.clone().unwrap_or_default();
    let enabled = settings.enabled_methods();
    let methods: Vec<_> = PaymentMethod::ALL
        .iter()
        .map(|m| {
            context! {
                value => m.as_str(),
                label => method_name(*m),
                checked => enabled.contains(m),
            }
        })
        .collect();
    context! {
        accent_color => settings.accent().to_string(),
        support_email => settings.support_email.clone().unwrap_or_default(),
        terms_url => settings.terms_url.clone().unwrap_or_default(),
        privacy_url => settings.privacy_url.clone().unwrap_or_default(),
        account_holder => bank.account_holder, bank_name => bank.bank_name,
        iban => bank.iban, bic => bank.bic,
        methods,
        unpaid_reminder_after => settings.unpaid_reminder_after.clone().unwrap_or_default(),
        unpaid_delete_after => settings.unpaid_delete_after.clone().unwrap_or_default(),
        coupon_hold => settings.coupon_hold.clone().unwrap_or_default(),
        logo_url => settings.logo_url.clone(),
    }
}

pub fn method_name(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::TestCard => "Test card (sandbox)",
        PaymentMethod::BankTransfer => "Bank transfer",
        PaymentMethod::Stripe => {
            "Stripe (cards on the payment page; needs the mode's Stripe keys, above)"
        }
    }
}

/// The store's Stripe accounts as the settings page shows them: whether each mode's
/// keys are set, their last four characters, and the webhook URL to give Stripe.
async fn stripe_view(
    ctx: &Ctx,
    tenant: &kassa_store::TenantRecord,
) -> Result<minijinja::Value, Response> {
    let mut modes = Vec::new();
    for mode in [Mode::Test, Mode::Live] {
        let account = ctx
            .web
            .store
            .stripe_account(&tenant.id, mode)
            .await
            .map_err(failure)?;
        modes.push(context! {
            mode => mode.as_str(),
            configured => account.as_ref().is_some_and(|a| a.publishable_key.is_some()),
            secret_key_last4 => account.as_ref().map(|a| last4(&a.secret_key)),
            publishable_key => account.as_ref().and_then(|a| a.publishable_key.clone()),
            webhook_secret_last4 => account.as_ref().map(|a| last4(&a.webhook_secret)),
            webhook_url => format!("{}{}/webhooks/stripe", ctx.web.public_url, mode.store_path(&tenant.slug)),
        });
    }
    Ok(minijinja::Value::from_serialize(&modes))
}

/// Saves (or with `remove`, removes) one mode's Stripe keys; only their last four
/// characters are shown again.
#[handler]
pub async fn save_stripe(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditSettings).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mode = match field(&form, "mode") {
        "live" => Mode::Live,
        _ => Mode::Test,
    };
    let account = if field(&form, "action") == "remove" {
        None
    } else {
        let key = field(&form, &format!("stripe_{mode}.secret_key"));
        let pk = field(&form, &format!("stripe_{mode}.publishable_key"));
        let whsec = field(&form, &format!("stripe_{mode}.webhook_secret"));
        match StripeAccount::parse(mode, key, pk, whsec) {
            Ok(account) => Some(account),
            Err(invalid) => {
                let stripe = match stripe_view(&ctx, &staff.tenant).await {
                    Ok(v) => v,
                    Err(resp) => return resp,
                };
                let settings = TenantSettings::from_json(&staff.tenant.settings);
                // Errors are named by mode so each form shows its own.
                let errors: Errors = errors_of(&invalid)
                    .into_iter()
                    .map(|(k, v)| (format!("stripe_{mode}.{k}"), v))
                    .collect();
                return page(
                    &staff,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "settings.html",
                    "settings",
                    context! { form => settings_form(&settings), stripe, errors },
                );
            }
        }
    };
    match ctx
        .web
        .store
        .set_stripe_account(&staff.tenant.id, mode, account.as_ref())
        .await
    {
        Ok(()) => redirect(&with_notice(
            "/dashboard/settings",
            &format!(
                "Stripe {} for {mode} mode.",
                if account.is_some() {
                    "keys saved"
                } else {
                    "keys removed"
                }
            ),
        )),
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn settings_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::EditSettings).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let settings = TenantSettings::from_json(&staff.tenant.settings);
    let stripe = match stripe_view(&ctx, &staff.tenant).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    page(
        &staff,
        StatusCode::OK,
        "settings.html",
        "settings",
        context! { form => settings_form(&settings), stripe, errors => Errors::new(), notice => query(req, "notice") },
    )
}

#[handler]
pub async fn save_settings(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditSettings).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let current = TenantSettings::from_json(&staff.tenant.settings);
    let mut invalid = Invalid::default();
    let bank_typed = ["account_holder", "bank_name", "iban", "bic"]
        .iter()
        .any(|f| !field(&form, f).is_empty());
    let bank = if bank_typed {
        invalid.check(BankDetails::parse(
            field(&form, "account_holder"),
            field(&form, "bank_name"),
            field(&form, "iban"),
            field(&form, "bic"),
        ))
    } else {
        None
    };
    let methods: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "payment_methods")
        .map(|(_, v)| v.clone())
        .collect();
    if methods.is_empty() {
        invalid.push("payment_methods", "Choose at least one way to pay.");
    }
    // Bank transfer ticked now needs the details customers pay to; a store that
    // offered it before without them (the old default) saves as it was, so saving
    // never fails on a method the merchant did not touch.
    let transfer = PaymentMethod::BankTransfer;
    if methods.iter().any(|m| m == transfer.as_str())
        && bank.is_none()
        && !current.enabled_methods().contains(&transfer)
    {
        invalid.push(
            "payment_methods",
            "Bank transfer needs your bank details: fill in the account holder and IBAN below, or untick it.",
        );
    }
    let settings = TenantSettings {
        logo_url: current.logo_url.clone(),
        accent_color: optional(&form, "accent_color"),
        terms_url: optional(&form, "terms_url"),
        privacy_url: optional(&form, "privacy_url"),
        support_email: optional(&form, "support_email"),
        bank,
        payment_methods: methods,
        unpaid_reminder_after: optional(&form, "unpaid_reminder_after"),
        unpaid_delete_after: optional(&form, "unpaid_delete_after"),
        coupon_hold: optional(&form, "coupon_hold"),
    };
    invalid.check(settings.validate());
    if !invalid.errors.is_empty() {
        let mut shown = settings.clone();
        shown.bank = Some(BankDetails {
            account_holder: field(&form, "account_holder").into(),
            bank_name: field(&form, "bank_name").into(),
            iban: field(&form, "iban").into(),
            bic: field(&form, "bic").into(),
        });
        let stripe = match stripe_view(&ctx, &staff.tenant).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        return page(
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            "settings.html",
            "settings",
            context! { form => settings_form(&shown), stripe, errors => errors_of(&invalid) },
        );
    }
    match ctx
        .web
        .store
        .update_tenant_settings(&staff.tenant.id, &settings)
        .await
    {
        Ok(()) => redirect(&with_notice("/dashboard/settings", "Settings saved.")),
        Err(e) => failure(e),
    }
}

/// The image types a logo may be, by what its bytes say (not by its name).
fn logo_type(bytes: &[u8]) -> Option<&'static str> {
    match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Png => Some("image/png"),
        imagesize::ImageType::Jpeg => Some("image/jpeg"),
        imagesize::ImageType::Gif => Some("image/gif"),
        imagesize::ImageType::Webp => Some("image/webp"),
        _ => None,
    }
}

#[handler]
pub async fn upload_logo(ctx: Data<&Ctx>, req: &Request, parts: Multipart) -> Response {
    let (form, image) = multipart(parts, "logo").await;
    let staff = match staff_posting(&ctx, req, &form, Permission::EditSettings).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let settings = TenantSettings::from_json(&staff.tenant.settings);
    let refuse = |message: &str| {
        page(
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            "settings.html",
            "settings",
            context! { form => settings_form(&settings), errors => one_error("logo", message) },
        )
    };
    let bytes = match image {
        None => return refuse("Choose an image file."),
        Some(image) if image.bytes.len() > MAX_LOGO_BYTES => {
            return refuse("The logo is larger than 512 KB; use a smaller image.");
        }
        Some(image) => image.bytes,
    };
    let Some(content_type) = logo_type(&bytes) else {
        return refuse("The logo must be a PNG, JPEG, GIF or WebP image.");
    };
    if let Err(e) = ctx
        .web
        .store
        .set_logo(&staff.tenant.id, content_type, &bytes)
        .await
    {
        return failure(e);
    }
    let mut updated = settings.clone();
    updated.logo_url = Some(format!(
        "{}/{}/logo?v={}",
        ctx.web.public_url,
        staff.tenant.slug,
        kassa_store::Timestamp::now().millis()
    ));
    match ctx
        .web
        .store
        .update_tenant_settings(&staff.tenant.id, &updated)
        .await
    {
        Ok(()) => redirect(&with_notice("/dashboard/settings", "Logo uploaded.")),
        Err(e) => failure(e),
    }
}

/// A store's logo, for its checkout pages and emails.
#[handler]
pub async fn logo(ctx: Data<&Ctx>, Path(slug): Path<String>) -> Response {
    let tenant = match ctx.web.store.tenant_by_slug(&slug).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => return StatusCode::NOT_FOUND.into(),
        Err(e) => return failure(e),
    };
    match ctx.web.store.logo(&tenant.id).await {
        Ok((content_type, bytes)) => Response::builder()
            .content_type(content_type)
            .header("cache-control", "public, max-age=86400")
            .header("x-content-type-options", "nosniff")
            .body(bytes),
        Err(StoreError::NotFound) => StatusCode::NOT_FOUND.into(),
        Err(e) => failure(e),
    }
}
