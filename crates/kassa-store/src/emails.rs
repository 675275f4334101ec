//! The email outbox: queued in the transaction of what causes the email, then claimed
//! in batches (the queued rows are their own queue, `queues.rs`), rendered and sent (or
//! kept, without SMTP) by the email dispatcher, and their outcomes recorded many to a
//! transaction.

use std::time::Duration;

use kassa_domain::ids::{EmailId, TenantId};
use kassa_domain::mode::Mode;
use sqlx::AssertSqlSafe;

use crate::db::{Tx, db_run};
use crate::error::StoreError;
use crate::jobs::Priority;
use crate::page::{Page, PageRequest};
use crate::queues::{Queue, wrote};
use crate::store::Store;
use crate::time::Timestamp;

/// An email to queue.
pub(crate) struct NewEmail {
    pub id: EmailId,
    pub kind: String,
    pub order_id: Option<String>,
    /// The same key is queued once (a receipt per order, a failure notice per payment
    /// attempt).
    pub dedupe_key: String,
    pub to: String,
    pub locale: String,
    pub at: Timestamp,
    pub priority: Priority,
    pub request_id: Option<String>,
    /// Its world: its order's, or for an email about no order, what it is about's
    /// (only that mode's keys and dashboard list it).
    pub livemode: bool,
}

impl NewEmail {
    pub(crate) fn new(
        kind: &str,
        order_id: Option<&str>,
        dedupe_key: &str,
        to: &str,
        locale: &str,
        at: Timestamp,
        mode: Mode,
    ) -> Self {
        Self {
            id: EmailId::generate(),
            kind: kind.to_owned(),
            order_id: order_id.map(str::to_owned),
            dedupe_key: dedupe_key.to_owned(),
            to: to.to_owned(),
            locale: locale.to_owned(),
            at,
            // A paid order's receipt and licenses go before a backlog of other emails.
            priority: Priority::paid_order_if(
                kind.parse::<kassa_domain::email::EmailKind>()
                    .is_ok_and(kassa_domain::email::EmailKind::reports_paid_order),
            ),
            request_id: crate::RequestId::current().map(|r| r.as_str().to_owned()),
            livemode: mode.is_live(),
        }
    }
}

/// How many parameters [`email_sql`] takes, bound by [`bind_email!`].
pub(crate) const EMAIL_ARGS: usize = 11;

/// Binds a [`NewEmail`] of `tenant` in [`email_sql`]'s order.
macro_rules! bind_email {
    ($query:expr, $tenant:expr, $email:expr) => {
        $query
            .bind($tenant.as_str())
            .bind($email.id.as_str())
            .bind($email.kind.as_str())
            .bind($email.order_id.as_deref())
            .bind($email.dedupe_key.as_str())
            .bind($email.to.as_str())
            .bind($email.locale.as_str())
            .bind($email.at)
            .bind($email.priority as i32)
            .bind($email.request_id.as_deref())
            .bind($email.livemode)
    };
}
pub(crate) use bind_email;

/// The statement queueing an email (parameters `$from`…, see [`bind_email!`]), due at
/// once, unless one with its key was queued before. On PostgreSQL a trigger wakes every
/// node's email dispatcher at the commit (migration 0035).
pub(crate) fn email_sql(from: usize) -> String {
    format!(
        "INSERT INTO emails (tenant_id, id, kind, order_id, dedupe_key, to_address, locale, status,
         attempts, next_attempt_at, created_at, priority, request_id, livemode)
         VALUES ({}, 'queued', 0, ${at}, ${at}, ${priority}, ${request}, ${livemode})
         ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
        crate::db::placeholders(from, 7),
        at = from + 7,
        priority = from + 8,
        request = from + 9,
        livemode = from + 10,
    )
}

/// Queues an email in `tx`.
pub(crate) async fn queue_email(
    tx: &mut Tx,
    tenant: &TenantId,
    email: &NewEmail,
) -> Result<(), StoreError> {
    let sql = email_sql(1);
    let queued = db_run!(tx, c => bind_email!(sqlx::query(AssertSqlSafe(sql.as_str())), tenant, email)
        .execute(c).await?.rows_affected());
    if queued == 1 {
        wrote(Queue::Emails);
    }
    Ok(())
}

/// Queues an email of `kind` to each of the store's owners (merchant emails are in
/// English), in `mode`'s world; `about` names what it is about, and each owner gets it
/// once.
pub(crate) async fn email_owners(
    tx: &mut Tx,
    tenant: &TenantId,
    kind: &str,
    order_id: Option<&str>,
    about: &str,
    mode: Mode,
) -> Result<(), StoreError> {
    let owners: Vec<String> = db_run!(tx, c => sqlx::query_scalar(
        "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $1 AND m.role = 'owner' ORDER BY u.email",
    )
    .bind(tenant.as_str())
    .fetch_all(c).await?);
    let now = Timestamp::now();
    for owner in owners {
        let key = format!("{about}:{owner}");
        let email = NewEmail::new(kind, order_id, &key, &owner, "en", now, mode);
        queue_email(tx, tenant, &email).await?;
    }
    Ok(())
}

/// The world of the order `id`.
pub(crate) async fn order_mode(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &str,
) -> Result<Mode, StoreError> {
    let test: bool = db_run!(tx, c => sqlx::query_scalar(
        "SELECT test_mode FROM orders WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_one(c).await?);
    Ok(Mode::from_livemode(!test))
}

/// An email in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailRecord {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub order_id: Option<String>,
    /// What the email is about, e.g. `failed:pay_…` for a failed payment's notice.
    pub dedupe_key: String,
    pub to_address: String,
    pub locale: String,
    /// `queued` (to be sent), `sent`, `kept` (no SMTP configured) or `failed`
    /// (permanently: a refused address, an erased order).
    pub status: String,
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// The request that queued the email, logged when it is sent.
    pub request_id: Option<String>,
}

impl crate::catalog::HasId for EmailRecord {
    fn id_str(&self) -> &str {
        &self.id
    }
}

const EMAIL_COLUMNS: &str = "id, tenant_id, kind, order_id, dedupe_key, to_address, locale, status, subject, \
    text_body, html_body, attempts, last_error, sent_at, created_at, request_id";

/// An email's outcome, to record: the email, its rendered subject, text and HTML, and
/// what became of it.
#[derive(Debug, Clone, Copy)]
pub struct EmailFinished<'a> {
    pub email: &'a EmailRecord,
    pub rendered: Option<(&'a str, &'a str, &'a str)>,
    pub outcome: &'a EmailOutcome,
}

/// What happened to an email a worker took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailOutcome {
    Sent,
    /// No SMTP: kept in the outbox, rendered.
    Kept,
    /// A transient failure: try again at this time.
    RetryAt {
        at: i64,
        error: String,
    },
    /// Never to be sent: refused for good, or the order was erased.
    Dropped {
        reason: String,
    },
}

impl Store {
    /// Claims up to `limit` due emails for `claim` (a name for this batch, unique)
    /// until `lease` from now, and returns them, a paid order's first, then the
    /// earliest. On PostgreSQL two nodes claiming at once skip each other's rows.
    pub async fn claim_emails(
        &self,
        claim: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<EmailRecord>, StoreError> {
        let select =
            format!("SELECT {EMAIL_COLUMNS} FROM claimed ORDER BY priority DESC, next_attempt_at");
        if let Some(claimed) = self
            .claim_rows_returning(Queue::Emails, &select, claim, limit, lease, &[])
            .await?
        {
            return Ok(claimed);
        }
        if self.claim_rows(Queue::Emails, claim, limit, lease).await? == 0 {
            return Ok(Vec::new());
        }
        // The claim committed: a reader sees it.
        Ok(db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EMAIL_COLUMNS} FROM emails WHERE claimed_by = $1 AND status = 'queued'
             ORDER BY priority DESC, next_attempt_at"
        )))
        .bind(claim)
        .fetch_all(c).await?))
    }

    /// Queues again the emails kept in the outbox while there was no SMTP: a worker
    /// that has SMTP calls this when it starts. Returns how many.
    pub async fn queue_kept_emails(&self) -> Result<u64, StoreError> {
        let now = Timestamp::now().millis();
        let kept = db_run!(self.writer(), c => sqlx::query(
            "UPDATE emails SET status = 'queued', next_attempt_at = $1, claimed_by = NULL,
             claimed_until = NULL WHERE status = 'kept'",
        )
        .bind(Timestamp::from(now))
        .execute(c).await?.rows_affected());
        if kept > 0 {
            wrote(Queue::Emails);
        }
        Ok(kept)
    }

    /// Records what became of many emails, in one transaction, and lets their claims
    /// go: a retry is due again at its time.
    pub async fn finish_emails(&self, finished: &[EmailFinished<'_>]) -> Result<(), StoreError> {
        if finished.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        for f in finished {
            let (email, outcome) = (f.email, f.outcome);
            let (status, next, error, sent_at) = match outcome {
                EmailOutcome::Sent => ("sent", None, None, Some(now)),
                EmailOutcome::Kept => ("kept", Some(now), None, None),
                EmailOutcome::RetryAt { at, error } => {
                    ("queued", Some(*at), Some(error.as_str()), None)
                }
                EmailOutcome::Dropped { reason } => ("failed", None, Some(reason.as_str()), None),
            };
            let (subject, text, html) = match f.rendered {
                Some((s, t, h)) => (Some(s), Some(t), Some(h)),
                None => (None, None, None),
            };
            // An email erased meanwhile (its order was deleted while it was rendered or
            // sent) gets none of its content back: at most the fact that it was sent.
            let recorded = db_run!(&mut tx, c => sqlx::query(
                "UPDATE emails SET status = $3, next_attempt_at = $4, last_error = $5, sent_at = $6,
                 subject = COALESCE($7, subject), text_body = COALESCE($8, text_body),
                 html_body = COALESCE($9, html_body), attempts = attempts + 1,
                 claimed_by = NULL, claimed_until = NULL
                 WHERE tenant_id = $1 AND id = $2 AND to_address <> ''",
            )
            .bind(&email.tenant_id)
            .bind(&email.id)
            .bind(status)
            .bind(next.map(Timestamp::from))
            .bind(error)
            .bind(sent_at.map(Timestamp::from))
            .bind(subject)
            .bind(text)
            .bind(html)
            .execute(c).await?.rows_affected());
            if recorded == 0 {
                let at = sent_at.map(Timestamp::from);
                db_run!(&mut tx, c => sqlx::query(
                    "UPDATE emails SET status = CASE WHEN $3 IS NULL THEN status ELSE 'sent' END,
                     last_error = CASE WHEN $3 IS NULL THEN last_error ELSE NULL END,
                     sent_at = COALESCE($3, sent_at), claimed_by = NULL, claimed_until = NULL
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(&email.tenant_id)
                .bind(&email.id)
                .bind(at)
                .execute(c).await?.rows_affected());
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The store's emails of `mode`'s world, newest first: those of its orders (never
    /// another mode's: they carry customers and licenses), and the merchant's emails
    /// about its pools and webhook endpoints (never another mode's: they name them).
    pub async fn list_emails(
        &self,
        tenant: &TenantId,
        mode: Mode,
        page: &PageRequest,
    ) -> Result<Page<EmailRecord>, StoreError> {
        let rows: Vec<EmailRecord> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EMAIL_COLUMNS} FROM emails WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2)
             AND livemode = $4 ORDER BY id DESC LIMIT $3"
        )))
        .bind(tenant.as_str())
        .bind(page.after.as_deref())
        .bind(page.limit + 1)
        .bind(mode.is_live())
        .fetch_all(c).await?);
        Ok(Page::from_rows(rows, page.limit, |e| e.id.clone()))
    }
}
