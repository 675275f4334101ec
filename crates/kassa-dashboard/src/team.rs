//! The team: who works in the store and with which role, invitations by email (the
//! invited person signs up or logs in, then accepts), and removing a member.

use kassa_domain::Invalid;
use kassa_domain::account::{
    AccountEmailKind, INVITATION_LIFETIME, OneTimeToken, Permission, Role, hash_token,
};
use kassa_domain::ids::{InvitationId, UserId};
use kassa_domain::tenant::EmailAddress;
use kassa_store::{NewInvitation, StoreError};
use minijinja::context;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use crate::account::account_email;
use crate::page::{
    Ctx, Errors, Staff, csrf_pair, errors_of, expires_in, failure, field, limited, one_error, page,
    public, query, redirect, signed_in, staff, staff_posting, user_posting, when, with_notice,
};

async fn team_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    typed: (&str, &str),
    errors: Errors,
    notice: Option<String>,
) -> Response {
    let team = match ctx.web.store.team(&staff.tenant.id).await {
        Ok(t) => t,
        Err(e) => return failure(e),
    };
    let members: Vec<_> = team
        .iter()
        .map(|m| {
            context! {
                email => m.email.clone(), role => m.role.as_str(), since => when(&m.since),
                user_id => m.user_id.as_ref().map(|u| u.as_str().to_owned()),
                invitation_id => m.invitation_id.as_ref().map(|i| i.as_str().to_owned()),
                me => m.user_id.as_ref() == Some(&staff.user_id),
            }
        })
        .collect();
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    page(
        staff,
        status,
        "team.html",
        "team",
        context! {
            members, roles, errors, notice, email => typed.0, role => typed.1,
            can_manage => staff.may(Permission::ManageTeam),
        },
    )
}

#[handler]
pub async fn show(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::SeeOrders).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    team_page(
        &ctx,
        &staff,
        StatusCode::OK,
        ("", "support"),
        Errors::new(),
        query(req, "notice"),
    )
    .await
}

#[handler]
pub async fn invite(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::ManageTeam).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (email, role) = (field(&form, "email"), field(&form, "role"));
    let mut invalid = Invalid::default();
    let parsed_email = invalid.check(EmailAddress::parse("email", email));
    let parsed_role = invalid.check(Role::parse("role", role));
    let (Some(parsed_email), Some(parsed_role)) = (parsed_email, parsed_role) else {
        return team_page(
            &ctx,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            (email, role),
            errors_of(&invalid),
            None,
        )
        .await;
    };
    let action = kassa_limits::Action::EmailAccount {
        ip: kassa_web::page::client_addr(req),
        email: parsed_email.as_str(),
    };
    if let Err(m) = limited(&ctx, action) {
        let errors = one_error("email", m);
        return team_page(
            &ctx,
            &staff,
            StatusCode::TOO_MANY_REQUESTS,
            (email, role),
            errors,
            None,
        )
        .await;
    }
    let token = OneTimeToken::generate();
    let link = format!(
        "{}/dashboard/invitations?token={}",
        ctx.web.public_url,
        token.secret.expose_secret()
    );
    let message = match account_email(
        AccountEmailKind::Invitation,
        parsed_email.as_str(),
        format!("Join {} on Kassa", staff.tenant.name),
        context! { link, inviter => staff.email.clone(), store => staff.tenant.name.clone(), role => parsed_role.as_str() },
    ) {
        Ok(m) => m,
        Err(e) => return failure(e),
    };
    let invitation = NewInvitation {
        email: &parsed_email,
        role: parsed_role,
        invited_by: &staff.user_id,
        token_hash: &token.hash,
        expires_at: expires_in(INVITATION_LIFETIME),
    };
    match ctx
        .web
        .store
        .invite(&staff.tenant.id, &invitation, &message)
        .await
    {
        Ok(_) => redirect(&with_notice(
            "/dashboard/team",
            &format!("Invitation sent to {}.", parsed_email.as_str()),
        )),
        Err(StoreError::Conflict(m)) => {
            team_page(
                &ctx,
                &staff,
                StatusCode::CONFLICT,
                (email, role),
                one_error("email", m),
                None,
            )
            .await
        }
        Err(e) => failure(e),
    }
}

#[handler]
pub async fn remove(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let staff = match staff_posting(&ctx, req, &form, Permission::ManageTeam).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let result = if let Ok(user) = UserId::parse(field(&form, "user_id")) {
        ctx.web.store.remove_member(&staff.tenant.id, &user).await
    } else if let Ok(invitation) = InvitationId::parse(field(&form, "invitation_id")) {
        ctx.web
            .store
            .withdraw_invitation(&staff.tenant.id, &invitation)
            .await
    } else {
        Err(StoreError::NotFound)
    };
    match result {
        Ok(()) => redirect(&with_notice("/dashboard/team", "Removed.")),
        Err(StoreError::Conflict(m)) => {
            team_page(
                &ctx,
                &staff,
                StatusCode::CONFLICT,
                ("", "support"),
                one_error("team", m),
                None,
            )
            .await
        }
        Err(StoreError::NotFound) => {
            team_page(
                &ctx,
                &staff,
                StatusCode::NOT_FOUND,
                ("", "support"),
                one_error("team", "No such member in this store."),
                None,
            )
            .await
        }
        Err(e) => failure(e),
    }
}

/// The link in an invitation: sign in (or sign up) first, then accept.
#[handler]
pub async fn accept_page(ctx: Data<&Ctx>, req: &Request) -> Response {
    let token = query(req, "token").unwrap_or_default();
    let invitation = match ctx.web.store.invitation(&hash_token(&token)).await {
        Ok(i) => i,
        Err(StoreError::NotFound) => return expired(),
        Err(e) => return failure(e),
    };
    let (tenant, role, email) = invitation;
    let me = match signed_in(&ctx, req).await {
        Ok(me) => me,
        Err(resp) => return resp,
    };
    let (csrf, cookie) = csrf_pair(&ctx, req);
    let next: String = url::form_urlencoded::byte_serialize(
        format!("/dashboard/invitations?token={token}").as_bytes(),
    )
    .collect();
    let email_param: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    let signup = format!("/dashboard/signup?next={next}&email={email_param}");
    public(
        StatusCode::OK,
        "invitation.html",
        context! {
            csrf, token, store => tenant.name, role => role.as_str(), email,
            signed_in_as => me.map(|m| m.email), next, signup,
        },
        cookie.as_deref(),
    )
}

fn expired() -> Response {
    public(
        StatusCode::GONE,
        "message.html",
        context! {
            title => "This invitation no longer works",
            message => "It has expired, was withdrawn or was already accepted. Ask the store's owner for a new one.",
        },
        None,
    )
}

#[handler]
pub async fn accept(ctx: Data<&Ctx>, req: &Request, body: Body) -> Response {
    let form = kassa_web::page::read_form(body).await;
    let me = match user_posting(&ctx, req, &form).await {
        Ok(me) => me,
        Err(resp) => return resp,
    };
    let token = hash_token(field(&form, "token"));
    // The invitation is for the person at its email, not for whoever holds the link.
    match ctx.web.store.invitation(&token).await {
        Ok((_, _, email)) if email.eq_ignore_ascii_case(&me.email) => {}
        Ok(_) => {
            return public(
                StatusCode::FORBIDDEN,
                "message.html",
                context! {
                    title => "This invitation is for someone else",
                    message => "Log out, then log in (or sign up) with the email address the invitation was sent to.",
                },
                None,
            );
        }
        Err(StoreError::NotFound) => return expired(),
        Err(e) => return failure(e),
    }
    match ctx
        .web
        .store
        .accept_invitation(&token, &me.user_id, &me.session_hash)
        .await
    {
        Ok(_) => redirect(&with_notice("/dashboard", "Welcome to the team.")),
        Err(StoreError::NotFound) => expired(),
        Err(e) => failure(e),
    }
}
