//! Accounts: sign up, confirm the email, log in and out, reset a forgotten password.
//! Passwords are Argon2id hashes; links and session cookies are random tokens kept
//! only as hashes; every form carries a CSRF token; sign-ins and emails are rate
//! limited per client address and per account.

use kassa_domain::account::{
    AccountEmailKind, NewPassword, OneTimeToken, SESSION_LIFETIME, SignUp, TokenPurpose,
};
use kassa_domain::tenant::{EmailAddress, verify_password};
use kassa_limits::Action;
use kassa_store::{AccountEmail, LinkToken, SignUpOutcome, StoreError};
use minijinja::context;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Dash, Errors, SESSION_COOKIE, csrf_pair, csrf_refused, errors_of, expires_in, failure,
    field, limited, one_error, public, query, redirect, signed_in,
};

fn client(req: &Request) -> Option<std::net::IpAddr> {
    kassa_web::page::client_addr(req)
}

fn account_emails(ctx: &Dash, req: &Request, to: &str) -> Result<(), String> {
    limited(
        ctx,
        Action::EmailAccount {
            ip: client(req),
            email: to,
        },
    )
}

async fn form(req: &Request, body: Body) -> Result<Vec<(String, String)>, Response> {
    let form = kassa_web::page::read_form(body).await;
    if kassa_web::page::csrf_ok(req, &form) {
        Ok(form)
    } else {
        Err(csrf_refused())
    }
}

/// Renders one of the account pages with this browser's CSRF token.
fn account_page(
    ctx: &Dash,
    req: &Request,
    status: StatusCode,
    template: &str,
    vars: minijinja::Value,
) -> Response {
    let (csrf, cookie) = csrf_pair(ctx, req);
    public(
        status,
        template,
        context! { csrf, ..vars },
        cookie.as_deref(),
    )
}

/// An account email rendered from `web/dashboard/emails/{kind}.txt` and `.html`.
pub fn account_email(
    kind: AccountEmailKind,
    to: &str,
    subject: String,
    vars: minijinja::Value,
) -> Result<AccountEmail, minijinja::Error> {
    let env = crate::templates::emails();
    let text = env
        .get_template(&format!("{kind}.txt"))?
        .render(vars.clone())?;
    let html = env.get_template(&format!("{kind}.html"))?.render(vars)?;
    Ok(AccountEmail {
        kind,
        to: to.to_owned(),
        subject,
        text,
        html,
    })
}

fn link_token(token: &OneTimeToken, purpose: TokenPurpose) -> LinkToken<'_> {
    LinkToken {
        hash: &token.hash,
        purpose,
        expires_at: expires_in(purpose.lifetime()),
    }
}

/// The verification email; its link goes on to `next` (a dashboard page, such as the
/// invitation the person signed up for) once confirmed.
fn verify_message(
    ctx: &Dash,
    to: &str,
    token: &OneTimeToken,
    next: &str,
) -> Result<AccountEmail, Response> {
    let mut link = format!(
        "{}/dashboard/verify?token={}",
        ctx.web.public_url,
        token.secret.expose_secret()
    );
    if next != "/dashboard" {
        link.push_str("&next=");
        link.extend(url::form_urlencoded::byte_serialize(next.as_bytes()));
    }
    account_email(
        AccountEmailKind::VerifyEmail,
        to,
        "Confirm your email for Kassa".into(),
        context! { link },
    )
    .map_err(failure)
}

fn check_email(ctx: &Dash, req: &Request, email: &str, purpose: TokenPurpose) -> Response {
    let (what, lifetime) = match purpose {
        TokenPurpose::VerifyEmail => ("confirm your address and finish signing up", "24 hours"),
        TokenPurpose::ResetPassword => ("choose a new password", "one hour"),
    };
    account_page(
        ctx,
        req,
        StatusCode::OK,
        "check_email.html",
        context! { email, purpose => what, lifetime },
    )
}

#[handler]
pub async fn signup_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    // From an invitation: its email, and the invitation to return to once confirmed.
    let email = query(req, "email").unwrap_or_default();
    let next = safe_next(&query(req, "next").unwrap_or_default()).to_owned();
    account_page(
        &ctx,
        req,
        StatusCode::OK,
        "signup.html",
        context! { email, next, errors => Errors::new() },
    )
}

#[handler]
pub async fn signup(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = match form(req, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let email = field(&form, "email");
    let next = safe_next(field(&form, "next"));
    let again = |status, errors: Errors| {
        account_page(
            &ctx,
            req,
            status,
            "signup.html",
            context! { email, next, errors },
        )
    };
    let signup = match SignUp::parse(
        email,
        kassa_web::page::form_value(&form, "password").unwrap_or_default(),
        kassa_web::page::form_value(&form, "password_confirm").unwrap_or_default(),
    ) {
        Ok(s) => s,
        Err(invalid) => return again(StatusCode::UNPROCESSABLE_ENTITY, errors_of(&invalid)),
    };
    if let Err(m) = account_emails(&ctx, req, signup.email.as_str()) {
        return again(StatusCode::TOO_MANY_REQUESTS, one_error("email", m));
    }
    let token = OneTimeToken::generate();
    let message = match verify_message(&ctx, signup.email.as_str(), &token, next) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let outcome = ctx
        .web
        .store
        .sign_up(
            &signup.email,
            &signup.password.hash,
            &link_token(&token, TokenPurpose::VerifyEmail),
            &message,
        )
        .await;
    match outcome {
        Ok(SignUpOutcome::LinkSent) => {
            check_email(&ctx, req, signup.email.as_str(), TokenPurpose::VerifyEmail)
        }
        Ok(SignUpOutcome::Taken) | Err(StoreError::Conflict(_)) => again(
            StatusCode::CONFLICT,
            one_error(
                "email",
                "An account with this email already exists. Log in, or reset the password if you forgot it.",
            ),
        ),
        Err(e) => failure(e),
    }
}

/// Sends a new verification link (the first one expired or got lost).
#[handler]
pub async fn resend_verification(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = match form(req, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let Ok(email) = EmailAddress::parse("email", field(&form, "email")) else {
        return redirect("/dashboard/signup");
    };
    if account_emails(&ctx, req, email.as_str()).is_ok() {
        let verified = ctx
            .web
            .store
            .account(email.as_str())
            .await
            .is_ok_and(|a| a.verified);
        if !verified {
            let token = OneTimeToken::generate();
            let message = match verify_message(&ctx, email.as_str(), &token, "/dashboard") {
                Ok(m) => m,
                Err(resp) => return resp,
            };
            let link = link_token(&token, TokenPurpose::VerifyEmail);
            if let Err(e) = ctx
                .web
                .store
                .send_account_link(email.as_str(), &link, &message)
                .await
            {
                return failure(e);
            }
        }
    }
    check_email(&ctx, req, email.as_str(), TokenPurpose::VerifyEmail)
}

/// The link in the verification email opens a page with one button: mail scanners
/// that follow links do not use the link up.
#[handler]
pub async fn verify_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    let token = query(req, "token").unwrap_or_default();
    let next = safe_next(&query(req, "next").unwrap_or_default()).to_owned();
    account_page(
        &ctx,
        req,
        StatusCode::OK,
        "verify.html",
        context! { token, next },
    )
}

#[handler]
pub async fn verify(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = match form(req, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let token = field(&form, "token");
    match ctx
        .web
        .store
        .verify_email(&kassa_domain::account::hash_token(token))
        .await
    {
        Ok(user) => start_session(&ctx, &user, safe_next(field(&form, "next"))).await,
        Err(StoreError::NotFound) => public(
            StatusCode::GONE,
            "message.html",
            context! {
                title => "This link no longer works",
                message => "The link has expired or was already used. Log in to get a new one.",
                link => context! { href => "/dashboard/login", label => "Log in" },
            },
            None,
        ),
        Err(e) => failure(e),
    }
}

/// Starts a session for a user and sends them on to `next`.
async fn start_session(ctx: &Dash, user: &kassa_domain::ids::UserId, next: &str) -> Response {
    let token = OneTimeToken::generate();
    let expires = expires_in(SESSION_LIFETIME);
    if let Err(e) = ctx
        .web
        .store
        .create_session(user, &token.hash, expires)
        .await
    {
        return failure(e);
    }
    let days = u32::try_from(SESSION_LIFETIME.as_secs() / 86_400).unwrap_or(u32::MAX);
    let cookie = kassa_web::page::set_cookie(
        &ctx.web,
        SESSION_COOKIE,
        token.secret.expose_secret(),
        "/dashboard",
        days,
    );
    kassa_web::page::see_other(next, &[cookie])
}

/// Where a sign-in goes on to: a dashboard page, never another site.
fn safe_next(next: &str) -> &str {
    if next.starts_with("/dashboard") && !next.contains("//") && !next.contains('\\') {
        next
    } else {
        "/dashboard"
    }
}

#[handler]
pub async fn login_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    if let Ok(Some(_)) = signed_in(&ctx, req).await {
        return redirect("/dashboard");
    }
    let next = query(req, "next").unwrap_or_default();
    let notice = query(req, "notice");
    account_page(
        &ctx,
        req,
        StatusCode::OK,
        "login.html",
        context! { email => "", next, notice, errors => Errors::new() },
    )
}

#[handler]
pub async fn login(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = match form(req, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let email = field(&form, "email");
    let next = field(&form, "next");
    let again = |status, errors: Errors| {
        account_page(
            &ctx,
            req,
            status,
            "login.html",
            context! { email, next, errors },
        )
    };
    if let Err(m) = limited(
        &ctx,
        Action::SignIn {
            ip: client(req),
            account: email,
        },
    ) {
        return again(StatusCode::TOO_MANY_REQUESTS, one_error("form", m));
    }
    let password = kassa_web::page::form_value(&form, "password")
        .unwrap_or_default()
        .to_owned();
    let account = match ctx.web.store.account(email).await {
        Ok(a) => Some(a),
        Err(StoreError::NotFound) => None,
        Err(e) => return failure(e),
    };
    // The hash is checked even for an unknown email, so the answer takes as long.
    let stored = account
        .as_ref()
        .and_then(|a| a.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let matches = tokio_blocking(move || verify_password(&password, &stored)).await;
    let account = match account {
        Some(a) if matches && a.password_hash.is_some() => a,
        _ => {
            return again(
                StatusCode::UNAUTHORIZED,
                one_error("form", "The email or the password is not right."),
            );
        }
    };
    if !account.verified {
        return check_email(&ctx, req, &account.email, TokenPurpose::VerifyEmail);
    }
    start_session(&ctx, &account.id, safe_next(next)).await
}

/// An Argon2id hash of a password nobody knows, checked when no account matches.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    kassa_domain::tenant::hash_password(&OneTimeToken::generate().hash).unwrap_or_default()
});

/// Argon2 takes tens of milliseconds of CPU: off the async threads.
async fn tokio_blocking(f: impl FnOnce() -> bool + Send + 'static) -> bool {
    tokio::task::spawn_blocking(f).await.unwrap_or(false)
}

#[handler]
pub async fn logout(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    if form(req, body).await.is_err() {
        return csrf_refused();
    }
    if let Ok(Some(me)) = signed_in(&ctx, req).await
        && let Err(e) = ctx.web.store.end_session(&me.session_hash).await
    {
        return failure(e);
    }
    let clear = kassa_web::page::set_cookie(&ctx.web, SESSION_COOKIE, "", "/dashboard", 0);
    kassa_web::page::see_other("/dashboard/login", &[clear])
}

#[handler]
pub async fn forgot_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    account_page(
        &ctx,
        req,
        StatusCode::OK,
        "forgot.html",
        context! { email => "", errors => Errors::new() },
    )
}

#[handler]
pub async fn forgot(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = match form(req, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let email = match EmailAddress::parse("email", field(&form, "email")) {
        Ok(e) => e,
        Err(invalid) => {
            let email = field(&form, "email");
            return account_page(
                &ctx,
                req,
                StatusCode::UNPROCESSABLE_ENTITY,
                "forgot.html",
                context! { email, errors => errors_of(&invalid) },
            );
        }
    };
    if let Err(m) = account_emails(&ctx, req, email.as_str()) {
        return account_page(
            &ctx,
            req,
            StatusCode::TOO_MANY_REQUESTS,
            "forgot.html",
            context! { email => email.as_str(), errors => one_error("email", m) },
        );
    }
    let token = OneTimeToken::generate();
    let link = format!(
        "{}/dashboard/reset?token={}",
        ctx.web.public_url,
        token.secret.expose_secret()
    );
    let message = match account_email(
        AccountEmailKind::ResetPassword,
        email.as_str(),
        "Reset your Kassa password".into(),
        context! { link, email => email.as_str() },
    ) {
        Ok(m) => m,
        Err(e) => return failure(e),
    };
    let token = link_token(&token, TokenPurpose::ResetPassword);
    if let Err(e) = ctx
        .web
        .store
        .send_account_link(email.as_str(), &token, &message)
        .await
    {
        return failure(e);
    }
    check_email(&ctx, req, email.as_str(), TokenPurpose::ResetPassword)
}

#[handler]
pub async fn reset_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    let token = query(req, "token").unwrap_or_default();
    account_page(
        &ctx,
        req,
        StatusCode::OK,
        "reset.html",
        context! { token, errors => Errors::new() },
    )
}

#[handler]
pub async fn reset(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = match form(req, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let token = field(&form, "token");
    let again = |status, errors: Errors| {
        account_page(&ctx, req, status, "reset.html", context! { token, errors })
    };
    let password = match NewPassword::parse(
        kassa_web::page::form_value(&form, "password").unwrap_or_default(),
        kassa_web::page::form_value(&form, "password_confirm").unwrap_or_default(),
        "",
    ) {
        Ok(p) => p,
        Err(invalid) => return again(StatusCode::UNPROCESSABLE_ENTITY, errors_of(&invalid)),
    };
    match ctx
        .web
        .store
        .reset_password(&kassa_domain::account::hash_token(token), &password.hash)
        .await
    {
        Ok(_) => redirect(&crate::page::with_notice(
            "/dashboard/login",
            "Your password was changed. Log in with the new one.",
        )),
        Err(StoreError::NotFound) => again(
            StatusCode::GONE,
            one_error(
                "form",
                "This link has expired or was already used. Ask for a new one from the login page.",
            ),
        ),
        Err(e) => failure(e),
    }
}
