//! The people who run a store from the dashboard: their passwords, their roles and what
//! each role may do, and the one-time links (email verification, password reset,
//! invitations) they are sent.

use std::time::Duration;

use crate::Invalid;
use crate::Secret;
use crate::tenant::{EmailAddress, hash_password};

crate::names::named_enum! {
    /// What a member is to a store. An owner does everything; a developer builds the
    /// integration (catalog, API keys, webhooks, plugins) and sees orders; support
    /// looks after customers (sees orders, resends licenses, retries deliveries).
    Role {
        Owner = "owner",
        Developer = "developer",
        Support = "support",
    }
}

/// What a dashboard page or action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Orders, their timelines, the outbox, revenue.
    SeeOrders,
    /// Resend licenses, retry a failed delivery.
    HelpCustomers,
    /// Mark an order paid by an offline payment, or refund it: money, so owners only.
    RecordPayments,
    /// See the catalog: products, pools, coupons, links.
    SeeCatalog,
    /// Change the catalog.
    EditCatalog,
    /// API keys, webhook endpoints, plugins and their secrets.
    Develop,
    /// Branding, bank details, payment methods, reminders and retention.
    EditSettings,
    /// Invite and remove teammates.
    ManageTeam,
}

impl Role {
    /// The one rule of who may do what.
    pub fn may(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Developer => matches!(
                permission,
                SeeOrders | HelpCustomers | SeeCatalog | EditCatalog | Develop
            ),
            Role::Support => matches!(permission, SeeOrders | HelpCustomers | SeeCatalog),
        }
    }

    /// A role chosen on a form.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        Self::from_name(raw.trim())
            .ok_or_else(|| Invalid::field(field, format!("must be one of {}", Self::names())))
    }
}

/// A new password as typed twice on a form, hashed (Argon2id) for storage.
pub struct NewPassword {
    pub hash: String,
}

impl NewPassword {
    /// Checks the password against its confirmation and the account's email, then
    /// hashes it. Errors name the form fields `password` and `password_confirm`.
    pub fn parse(password: &str, confirm: &str, email: &str) -> Result<Self, Invalid> {
        let length = password.chars().count();
        if !(10..=200).contains(&length) {
            return Err(Invalid::field(
                "password",
                "must be between 10 and 200 characters",
            ));
        }
        if password.trim().is_empty()
            || password.eq_ignore_ascii_case(email)
            || email
                .split('@')
                .next()
                .is_some_and(|local| local.len() >= 4 && password.eq_ignore_ascii_case(local))
        {
            return Err(Invalid::field(
                "password",
                "is too easy to guess: do not use your email address",
            ));
        }
        if password
            .chars()
            .all(|c| c == password.chars().next().unwrap_or(c))
        {
            return Err(Invalid::field(
                "password",
                "is too easy to guess: use more than one character",
            ));
        }
        if password != confirm {
            return Err(Invalid::field(
                "password_confirm",
                "does not match the password",
            ));
        }
        Ok(Self {
            hash: hash_password(password)?,
        })
    }
}

/// The sign-up form.
pub struct SignUp {
    pub email: EmailAddress,
    pub password: NewPassword,
}

impl SignUp {
    pub fn parse(email: &str, password: &str, confirm: &str) -> Result<Self, Invalid> {
        let mut invalid = Invalid::default();
        let email = invalid.check(EmailAddress::parse("email", email));
        let password = invalid.check(NewPassword::parse(
            password,
            confirm,
            email.as_ref().map_or("", |e| e.as_str()),
        ));
        match (email, password) {
            (Some(email), Some(password)) if invalid.errors.is_empty() => {
                Ok(Self { email, password })
            }
            _ => Err(invalid),
        }
    }
}

crate::names::named_enum! {
    /// What a one-time link emailed to a user does.
    TokenPurpose {
        VerifyEmail = "verify_email",
        ResetPassword = "reset_password",
    }
}

impl TokenPurpose {
    /// How long a link works: long enough to find the email, short enough that an
    /// old inbox is not a key to the account.
    pub fn lifetime(self) -> Duration {
        match self {
            TokenPurpose::VerifyEmail => Duration::from_secs(24 * 3600),
            TokenPurpose::ResetPassword => Duration::from_secs(3600),
        }
    }
}

/// How long an invitation to a store works.
pub const INVITATION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a dashboard session lasts without signing in again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

crate::names::named_enum! {
    /// The emails Kassa sends to a person about their account, not about a store's
    /// orders.
    AccountEmailKind {
        VerifyEmail = "verify_email",
        ResetPassword = "reset_password",
        Invitation = "invitation",
    }
}

/// A random token for a link or a cookie: shown once (in the email, in the cookie),
/// kept only as its SHA-256.
pub struct OneTimeToken {
    pub secret: Secret,
    pub hash: String,
}

impl OneTimeToken {
    pub fn generate() -> Self {
        use rand::Rng;
        use rand::distributions::Alphanumeric;
        let secret: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(43)
            .map(char::from)
            .collect();
        Self {
            hash: hash_token(&secret),
            secret: Secret::from(secret),
        }
    }
}

/// The stored form of a presented token (a link's, a session cookie's).
pub fn hash_token(secret: &str) -> String {
    crate::tenant::hash_api_key(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_limit_what_members_do() {
        assert!(Role::ALL.iter().all(|r| r.may(Permission::SeeOrders)));
        assert!(Role::Owner.may(Permission::ManageTeam));
        assert!(!Role::Developer.may(Permission::ManageTeam));
        assert!(!Role::Developer.may(Permission::RecordPayments));
        assert!(Role::Developer.may(Permission::Develop));
        assert!(!Role::Support.may(Permission::Develop));
        assert!(!Role::Support.may(Permission::EditCatalog));
        assert!(Role::Support.may(Permission::HelpCustomers));
        assert!(!Role::Support.may(Permission::EditSettings));
    }

    #[test]
    fn weak_or_mismatched_passwords_are_refused_by_field() {
        let field = |r: Result<NewPassword, Invalid>| r.err().map(|e| e.errors[0].field.clone());
        assert_eq!(
            field(NewPassword::parse("short", "short", "a@b.co")).as_deref(),
            Some("password")
        );
        assert_eq!(
            field(NewPassword::parse("aaaaaaaaaaaa", "aaaaaaaaaaaa", "a@b.co")).as_deref(),
            Some("password")
        );
        assert_eq!(
            field(NewPassword::parse(
                "owner@acme.test",
                "owner@acme.test",
                "owner@acme.test"
            ))
            .as_deref(),
            Some("password")
        );
        assert_eq!(
            field(NewPassword::parse(
                "correct horse",
                "correct horsf",
                "a@b.co"
            ))
            .as_deref(),
            Some("password_confirm")
        );
        assert!(NewPassword::parse("correct horse", "correct horse", "a@b.co").is_ok());
    }

    #[test]
    fn sign_up_reports_every_field() {
        let invalid = SignUp::parse("not-an-email", "short", "other")
            .err()
            .unwrap();
        let fields: Vec<&str> = invalid.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "password"]);
    }

    #[test]
    fn tokens_are_kept_only_hashed() {
        let token = OneTimeToken::generate();
        assert_eq!(token.hash, hash_token(token.secret.expose_secret()));
        assert_ne!(token.hash, token.secret.expose_secret());
        assert_eq!(format!("{:?}", token.secret), "[redacted]");
    }
}
