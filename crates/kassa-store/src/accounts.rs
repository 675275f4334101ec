//! The dashboard's people: accounts (verified email, password hash), sessions, one-time
//! links, invitations to a store, and the account emails that carry the links. Tokens
//! arrive hashed; the plain token never reaches the database.

use kassa_domain::account::{AccountEmailKind, Role, TokenPurpose};
use kassa_domain::ids::{EmailId, InvitationId, TenantId, UserId};
use kassa_domain::tenant::{EmailAddress, TenantSlug};

use crate::db::{Tx, db_run};
use crate::emails::EmailOutcome;
use crate::error::{StoreError, corrupt, named};
use crate::jobs::enqueue;
use crate::store::Store;
use crate::tenants::{TenantRecord, insert_tenant};
use crate::time::Timestamp;

/// Sends one account email (a verification or reset link, an invitation).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SendAccountEmail {
    pub email_id: EmailId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<crate::RequestId>,
}

crate::jobs::job!(SendAccountEmail, "kassa::send_account_email");

/// A rendered account email, ready to queue.
#[derive(Debug, Clone)]
pub struct AccountEmail {
    pub kind: AccountEmailKind,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A queued account email, as the worker reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountEmailRecord {
    pub id: String,
    pub kind: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub attempts: i32,
}

/// A link token as stored: its hash, what it does, until when.
pub struct LinkToken<'a> {
    pub hash: &'a str,
    pub purpose: TokenPurpose,
    pub expires_at: Timestamp,
}

/// Who may sign in with an email.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: UserId,
    pub email: String,
    pub password_hash: Option<String>,
    pub verified: bool,
}

/// A signed-in session: the user and, when they work in one, the store and their role.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: UserId,
    pub email: String,
    pub store: Option<(TenantRecord, Role)>,
}

/// A store a user belongs to.
#[derive(Debug, Clone)]
pub struct Membership {
    pub tenant: TenantRecord,
    pub role: Role,
}

/// A member of a store, or someone invited who has not joined yet.
#[derive(Debug, Clone)]
pub struct TeamMember {
    pub user_id: Option<UserId>,
    pub invitation_id: Option<InvitationId>,
    pub email: String,
    pub role: Role,
    pub since: Timestamp,
}

/// An invitation to a store, as it is written.
pub struct NewInvitation<'a> {
    pub email: &'a EmailAddress,
    pub role: Role,
    pub invited_by: &'a UserId,
    pub token_hash: &'a str,
    pub expires_at: Timestamp,
}

/// What the sign-up of an email found.
#[derive(Debug, PartialEq, Eq)]
pub enum SignUpOutcome {
    /// A new account, or one made for the email before (by `kassa tenant create`, or
    /// a sign-up never verified): the link is sent.
    LinkSent,
    /// The email already has a verified account: nothing changed.
    Taken,
}

async fn queue_account_email(tx: &mut Tx, email: &AccountEmail) -> Result<(), StoreError> {
    let now = Timestamp::now();
    let id = EmailId::generate();
    db_run!(tx, c => sqlx::query(
        "INSERT INTO account_emails (id, kind, to_address, subject, text_body, html_body, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7)",
    )
    .bind(id.as_str())
    .bind(email.kind.as_str())
    .bind(&email.to)
    .bind(&email.subject)
    .bind(&email.text)
    .bind(&email.html)
    .bind(now)
    .execute(c).await?.rows_affected());
    let job = SendAccountEmail {
        email_id: id,
        request_id: crate::RequestId::current(),
    };
    enqueue(tx, &job, now.millis()).await
}

/// Writes a link token; a sign-up's link carries the password it will set.
async fn insert_token(
    tx: &mut Tx,
    user: &UserId,
    token: &LinkToken<'_>,
    password_hash: Option<&str>,
) -> Result<(), StoreError> {
    db_run!(tx, c => sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at, created_at, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.hash)
    .bind(user.as_str())
    .bind(token.purpose.as_str())
    .bind(token.expires_at)
    .bind(Timestamp::now())
    .bind(password_hash)
    .execute(c).await?.rows_affected());
    Ok(())
}

/// Uses a link token once: the user it is for (and the password a sign-up's link
/// sets), if it is unused and not expired.
async fn use_token(
    tx: &mut Tx,
    hash: &str,
    purpose: TokenPurpose,
) -> Result<(UserId, Option<String>), StoreError> {
    let now = Timestamp::now();
    let row: Option<(String, Option<String>)> = db_run!(tx, c => sqlx::query_as(
        "UPDATE account_tokens SET used_at = $3
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING user_id, password_hash",
    )
    .bind(hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(c).await?);
    let (user, password_hash) = row.ok_or(StoreError::NotFound)?;
    Ok((UserId::parse(&user).map_err(corrupt)?, password_hash))
}

impl Store {
    /// Signs up an email with a password hash and queues the verification link, in
    /// one transaction. The password waits in the link's row and becomes the account's
    /// when that link is used, so a sign-up by someone else with the same email sets
    /// nothing the owner of the inbox did not confirm. A verified account with this
    /// email is left alone.
    pub async fn sign_up(
        &self,
        email: &EmailAddress,
        password_hash: &str,
        token: &LinkToken<'_>,
        message: &AccountEmail,
    ) -> Result<SignUpOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let existing: Option<(String, bool)> = db_run!(&mut tx, c => sqlx::query_as(
            "SELECT id, email_verified_at IS NOT NULL AND password_hash IS NOT NULL FROM users WHERE email = $1",
        )
        .bind(email.as_str())
        .fetch_optional(c).await?);
        let user = match existing {
            Some((_, true)) => return Ok(SignUpOutcome::Taken),
            Some((id, false)) => UserId::parse(&id).map_err(corrupt)?,
            None => {
                let id = UserId::generate();
                db_run!(&mut tx, c => sqlx::query(
                    "INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)",
                )
                .bind(id.as_str())
                .bind(email.as_str())
                .bind(Timestamp::now())
                .execute(c).await
                .map_err(StoreError::on_unique("an account with this email already exists"))?
                .rows_affected());
                id
            }
        };
        insert_token(&mut tx, &user, token, Some(password_hash)).await?;
        queue_account_email(&mut tx, message).await?;
        tx.commit().await?;
        Ok(SignUpOutcome::LinkSent)
    }

    /// Sends another link to an account's email (a new verification link, a password
    /// reset). Nothing happens for an unknown email, so the answer does not tell.
    pub async fn send_account_link(
        &self,
        email: &str,
        token: &LinkToken<'_>,
        message: &AccountEmail,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let user: Option<String> = db_run!(&mut tx, c => sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(c).await?);
        if let Some(user) = user {
            let user = UserId::parse(&user).map_err(corrupt)?;
            insert_token(&mut tx, &user, token, None).await?;
            queue_account_email(&mut tx, message).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Marks the email of the link's account verified. `NotFound` when the link is
    /// unknown, used or expired.
    pub async fn verify_email(&self, token_hash: &str) -> Result<UserId, StoreError> {
        let mut tx = self.begin_write().await?;
        let (user, password_hash) =
            use_token(&mut tx, token_hash, TokenPurpose::VerifyEmail).await?;
        // The first link used sets the password; the account's other sign-up links
        // (someone else's, perhaps) are spent with it.
        db_run!(&mut tx, c => sqlx::query(
            "UPDATE users SET password_hash = CASE WHEN email_verified_at IS NULL
             THEN COALESCE($3, password_hash) ELSE password_hash END,
             email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1",
        )
        .bind(user.as_str())
        .bind(Timestamp::now())
        .bind(password_hash)
        .execute(c).await?.rows_affected());
        db_run!(&mut tx, c => sqlx::query(
            "UPDATE account_tokens SET used_at = $2
             WHERE user_id = $1 AND purpose = 'verify_email' AND used_at IS NULL",
        )
        .bind(user.as_str())
        .bind(Timestamp::now())
        .execute(c).await?.rows_affected());
        tx.commit().await?;
        Ok(user)
    }

    /// Sets a new password through a reset link, which also proves the email; every
    /// session of the account ends. `NotFound` when the link is unknown, used or expired.
    pub async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<UserId, StoreError> {
        let mut tx = self.begin_write().await?;
        let (user, _) = use_token(&mut tx, token_hash, TokenPurpose::ResetPassword).await?;
        db_run!(&mut tx, c => sqlx::query(
            "UPDATE users SET password_hash = $2, email_verified_at = COALESCE(email_verified_at, $3) WHERE id = $1",
        )
        .bind(user.as_str())
        .bind(password_hash)
        .bind(Timestamp::now())
        .execute(c).await?.rows_affected());
        db_run!(&mut tx, c => sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.as_str())
            .execute(c).await?.rows_affected());
        tx.commit().await?;
        Ok(user)
    }

    /// The account an email signs in to.
    pub async fn account(&self, email: &str) -> Result<Account, StoreError> {
        let row: Option<(String, String, Option<String>, bool)> = db_run!(self, c => sqlx::query_as(
            "SELECT id, email, password_hash, email_verified_at IS NOT NULL FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(c).await?);
        let (id, email, password_hash, verified) = row.ok_or(StoreError::NotFound)?;
        Ok(Account {
            id: UserId::parse(&id).map_err(corrupt)?,
            email,
            password_hash,
            verified,
        })
    }

    /// Starts a session for a user, in their first store if they have one.
    pub async fn create_session(
        &self,
        user: &UserId,
        token_hash: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        db_run!(&mut tx, c => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(c).await?.rows_affected());
        let first: Option<String> = db_run!(&mut tx, c => sqlx::query_scalar(
            "SELECT tenant_id FROM memberships WHERE user_id = $1 ORDER BY created_at, tenant_id LIMIT 1",
        )
        .bind(user.as_str())
        .fetch_optional(c).await?);
        db_run!(&mut tx, c => sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, tenant_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.as_str())
        .bind(first)
        .bind(now)
        .bind(expires_at)
        .execute(c).await?.rows_affected());
        tx.commit().await?;
        Ok(())
    }

    /// The session of a cookie, unexpired, with the store it works in and the role the
    /// user has there (a store they were removed from is no longer theirs).
    pub async fn session(&self, token_hash: &str) -> Result<SessionRecord, StoreError> {
        let row: Option<(String, String, Option<String>, Option<String>)> = db_run!(self, c => sqlx::query_as(
            "SELECT s.user_id, u.email, m.tenant_id, m.role FROM sessions s
             JOIN users u ON u.id = s.user_id
             LEFT JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(Timestamp::now())
        .fetch_optional(c).await?);
        let (user, email, tenant, role) = row.ok_or(StoreError::NotFound)?;
        let store = match (tenant, role) {
            (Some(tenant), Some(role)) => Some((
                self.tenant(&TenantId::parse(&tenant).map_err(corrupt)?)
                    .await?,
                named(&role)?,
            )),
            _ => None,
        };
        Ok(SessionRecord {
            user_id: UserId::parse(&user).map_err(corrupt)?,
            email,
            store,
        })
    }

    pub async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        db_run!(self.writer(), c => sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(c).await?.rows_affected());
        Ok(())
    }

    /// Makes a session work in one of the user's stores.
    pub async fn switch_store(
        &self,
        token_hash: &str,
        user: &UserId,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "UPDATE sessions SET tenant_id = $3 WHERE token_hash = $1 AND user_id = $2
             AND EXISTS (SELECT 1 FROM memberships WHERE tenant_id = $3 AND user_id = $2)",
        )
        .bind(token_hash)
        .bind(user.as_str())
        .bind(tenant.as_str())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The stores a user belongs to, oldest first.
    pub async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        let rows: Vec<(String, String)> = db_run!(self, c => sqlx::query_as(
            "SELECT tenant_id, role FROM memberships WHERE user_id = $1 ORDER BY created_at, tenant_id",
        )
        .bind(user.as_str())
        .fetch_all(c).await?);
        let mut out = Vec::with_capacity(rows.len());
        for (tenant, role) in rows {
            out.push(Membership {
                tenant: self
                    .tenant(&TenantId::parse(&tenant).map_err(corrupt)?)
                    .await?,
                role: named(&role)?,
            });
        }
        Ok(out)
    }

    /// Creates a store owned by a user, with its first `settings`, and makes the
    /// session work in it.
    pub async fn create_store(
        &self,
        owner: &UserId,
        session_hash: &str,
        slug: &TenantSlug,
        name: &str,
        settings: &kassa_domain::tenant::TenantSettings,
    ) -> Result<TenantRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let settings = serde_json::to_value(settings).map_err(corrupt)?;
        let tenant = insert_tenant(&mut tx, slug, name, owner, settings).await?;
        db_run!(&mut tx, c => sqlx::query("UPDATE sessions SET tenant_id = $2 WHERE token_hash = $1")
            .bind(session_hash)
            .bind(tenant.id.as_str())
            .execute(c).await?.rows_affected());
        tx.commit().await?;
        Ok(tenant)
    }

    /// Invites an email to a store with a role, and queues the invitation email.
    pub async fn invite(
        &self,
        tenant: &TenantId,
        invitation: &NewInvitation<'_>,
        message: &AccountEmail,
    ) -> Result<InvitationId, StoreError> {
        let NewInvitation {
            email,
            role,
            invited_by,
            token_hash,
            expires_at,
        } = invitation;
        let mut tx = self.begin_write().await?;
        let member: Option<i64> = db_run!(&mut tx, c => sqlx::query_scalar(
            "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email = $2",
        )
        .bind(tenant.as_str())
        .bind(email.as_str())
        .fetch_optional(c).await?);
        if member.is_some() {
            return Err(StoreError::Conflict(
                "this person is already a member of the store".into(),
            ));
        }
        let id = InvitationId::generate();
        db_run!(&mut tx, c => sqlx::query(
            "INSERT INTO invitations (tenant_id, id, email, role, token_hash, invited_by, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(email.as_str())
        .bind(role.as_str())
        .bind(token_hash)
        .bind(invited_by.as_str())
        .bind(*expires_at)
        .bind(Timestamp::now())
        .execute(c).await?.rows_affected());
        queue_account_email(&mut tx, message).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The store and role an unexpired, unaccepted invitation is for.
    pub async fn invitation(
        &self,
        token_hash: &str,
    ) -> Result<(TenantRecord, Role, String), StoreError> {
        let row: Option<(String, String, String)> = db_run!(self, c => sqlx::query_as(
            "SELECT tenant_id, role, email FROM invitations
             WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(Timestamp::now())
        .fetch_optional(c).await?);
        let (tenant, role, email) = row.ok_or(StoreError::NotFound)?;
        let tenant = self
            .tenant(&TenantId::parse(&tenant).map_err(corrupt)?)
            .await?;
        Ok((tenant, named(&role)?, email))
    }

    /// Accepts an invitation for a signed-in user: they join the store with its role,
    /// and the session works in it.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        user: &UserId,
        session_hash: &str,
    ) -> Result<TenantId, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        let row: Option<(String, String)> = db_run!(&mut tx, c => sqlx::query_as(
            "UPDATE invitations SET accepted_at = $2
             WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2
             RETURNING tenant_id, role",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(c).await?);
        let (tenant, role) = row.ok_or(StoreError::NotFound)?;
        db_run!(&mut tx, c => sqlx::query(
            "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, user_id) DO NOTHING",
        )
        .bind(&tenant)
        .bind(user.as_str())
        .bind(&role)
        .bind(now)
        .execute(c).await?.rows_affected());
        db_run!(&mut tx, c => sqlx::query("UPDATE sessions SET tenant_id = $2 WHERE token_hash = $1")
            .bind(session_hash)
            .bind(&tenant)
            .execute(c).await?.rows_affected());
        tx.commit().await?;
        TenantId::parse(&tenant).map_err(corrupt)
    }

    /// A store's members and open invitations.
    pub async fn team(&self, tenant: &TenantId) -> Result<Vec<TeamMember>, StoreError> {
        let members: Vec<(String, String, String, Timestamp)> = db_run!(self, c => sqlx::query_as(
            "SELECT u.id, u.email, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.tenant_id = $1 ORDER BY m.created_at, u.email",
        )
        .bind(tenant.as_str())
        .fetch_all(c).await?);
        let invited: Vec<(String, String, String, Timestamp)> = db_run!(self, c => sqlx::query_as(
            "SELECT id, email, role, created_at FROM invitations
             WHERE tenant_id = $1 AND accepted_at IS NULL AND expires_at > $2 ORDER BY created_at",
        )
        .bind(tenant.as_str())
        .bind(Timestamp::now())
        .fetch_all(c).await?);
        let mut team = Vec::with_capacity(members.len() + invited.len());
        for (id, email, role, since) in members {
            team.push(TeamMember {
                user_id: Some(UserId::parse(&id).map_err(corrupt)?),
                invitation_id: None,
                email,
                role: named(&role)?,
                since,
            });
        }
        for (id, email, role, since) in invited {
            team.push(TeamMember {
                user_id: None,
                invitation_id: Some(InvitationId::parse(&id).map_err(corrupt)?),
                email,
                role: named(&role)?,
                since,
            });
        }
        Ok(team)
    }

    /// Removes a member from a store (their sessions there end), never its last owner.
    pub async fn remove_member(&self, tenant: &TenantId, user: &UserId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let owners_left: i64 = db_run!(&mut tx, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner' AND user_id <> $2",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .fetch_one(c).await?);
        if owners_left == 0 {
            return Err(StoreError::Conflict(
                "a store keeps at least one owner".into(),
            ));
        }
        let done = db_run!(&mut tx, c => sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Withdraws an invitation not yet accepted.
    pub async fn withdraw_invitation(
        &self,
        tenant: &TenantId,
        id: &InvitationId,
    ) -> Result<(), StoreError> {
        let done = db_run!(self.writer(), c => sqlx::query(
            "DELETE FROM invitations WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .execute(c).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The account email a job is for, while it is still to be sent.
    pub async fn due_account_email(
        &self,
        job: &SendAccountEmail,
    ) -> Result<Option<AccountEmailRecord>, StoreError> {
        Ok(db_run!(self, c => sqlx::query_as(
            "SELECT id, kind, to_address, subject, text_body, html_body, attempts FROM account_emails
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(job.email_id.as_str())
        .fetch_optional(c).await?))
    }

    /// Records what happened to an account email. Once sent, its bodies (which hold a
    /// one-time link) are cleared; kept ones (no SMTP) stay for the operator.
    pub async fn finish_account_email(
        &self,
        email: &AccountEmailRecord,
        outcome: &EmailOutcome,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let (status, error) = match outcome {
            EmailOutcome::Sent => ("sent", None),
            EmailOutcome::Kept => ("kept", None),
            EmailOutcome::RetryAt { error, .. } => ("queued", Some(error.as_str())),
            EmailOutcome::Dropped { reason } => ("failed", Some(reason.as_str())),
        };
        let mut tx = self.begin_write().await?;
        db_run!(&mut tx, c => sqlx::query(
            "UPDATE account_emails SET status = $2, last_error = $3, attempts = attempts + 1,
             sent_at = CASE WHEN $2 = 'sent' THEN $4 ELSE sent_at END,
             text_body = CASE WHEN $2 = 'sent' THEN NULL ELSE text_body END,
             html_body = CASE WHEN $2 = 'sent' THEN NULL ELSE html_body END
             WHERE id = $1",
        )
        .bind(&email.id)
        .bind(status)
        .bind(error)
        .bind(now)
        .execute(c).await?.rows_affected());
        if let EmailOutcome::RetryAt { at, .. } = outcome {
            let job = SendAccountEmail {
                email_id: EmailId::parse(&email.id).map_err(corrupt)?,
                request_id: crate::RequestId::current(),
            };
            enqueue(&mut tx, &job, *at).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
