//! The email outbox: queued, with the job that sends it, in the transaction of what
//! causes the email, then rendered and sent (or kept, without SMTP) by a worker.

use kassa_domain::ids::{EmailId, TenantId};
use kassa_domain::mode::Mode;
use sqlx::AssertSqlSafe;

use crate::db::{Tx, db_run};
use crate::error::StoreError;
use crate::jobs::{EARLY_MILLIS, Priority, SendEmail, enqueue, enqueue_with};
use crate::page::{Page, PageRequest};
use crate::store::Store;
use crate::time::Timestamp;

/// Queues an email; the same `dedupe_key` is queued once (a receipt per order, a
/// failure notice per payment attempt).
pub(crate) async fn queue_email(
    tx: &mut Tx,
    tenant: &TenantId,
    kind: &str,
    order_id: Option<&str>,
    dedupe_key: &str,
    to: &str,
    locale: &str,
) -> Result<(), StoreError> {
    let now = Timestamp::now().millis();
    let id = EmailId::generate();
    let queued = db_run!(tx, c => sqlx::query(
        "INSERT INTO emails (tenant_id, id, kind, order_id, dedupe_key, to_address, locale, status,
         attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8)
         ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(kind)
    .bind(order_id)
    .bind(dedupe_key)
    .bind(to)
    .bind(locale)
    .bind(Timestamp::from(now))
    .execute(c).await?.rows_affected());
    if queued == 1 {
        let job = SendEmail {
            tenant_id: tenant.clone(),
            email_id: id,
            request_id: crate::RequestId::current(),
        };
        let priority = Priority::paid_order_if(
            kind.parse::<kassa_domain::email::EmailKind>()
                .is_ok_and(kassa_domain::email::EmailKind::reports_paid_order),
        );
        enqueue_with(tx, &job, now, priority).await?;
    }
    Ok(())
}

/// Queues an email of `kind` to each of the store's owners (merchant emails are in
/// English); `about` names what it is about, and each owner gets it once.
pub(crate) async fn email_owners(
    tx: &mut Tx,
    tenant: &TenantId,
    kind: &str,
    order_id: Option<&str>,
    about: &str,
) -> Result<(), StoreError> {
    let owners: Vec<String> = db_run!(tx, c => sqlx::query_scalar(
        "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $1 AND m.role = 'owner' ORDER BY u.email",
    )
    .bind(tenant.as_str())
    .fetch_all(c).await?);
    for owner in owners {
        let key = format!("{about}:{owner}");
        queue_email(tx, tenant, kind, order_id, &key, &owner, "en").await?;
    }
    Ok(())
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
}

impl crate::catalog::HasId for EmailRecord {
    fn id_str(&self) -> &str {
        &self.id
    }
}

const EMAIL_COLUMNS: &str = "id, tenant_id, kind, order_id, dedupe_key, to_address, locale, status, subject, \
    text_body, html_body, attempts, last_error, sent_at, created_at";

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
    /// The email a job is for, when it is still to be sent and due.
    pub async fn due_email(&self, job: &SendEmail) -> Result<Option<EmailRecord>, StoreError> {
        Ok(db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EMAIL_COLUMNS} FROM emails WHERE tenant_id = $1 AND id = $2
             AND status = 'queued' AND next_attempt_at <= $3"
        )))
        .bind(job.tenant_id.as_str())
        .bind(job.email_id.as_str())
        .bind(Timestamp::from(Timestamp::now().millis() + EARLY_MILLIS))
        .fetch_optional(c).await?))
    }

    /// Queues again the emails kept in the outbox while there was no SMTP: a worker
    /// that has SMTP calls this when it starts. Returns how many.
    pub async fn queue_kept_emails(&self) -> Result<u64, StoreError> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let kept: Vec<(String, String)> = db_run!(&mut tx, c => sqlx::query_as(
            "UPDATE emails SET status = 'queued', next_attempt_at = $1 WHERE status = 'kept'
             RETURNING tenant_id, id",
        )
        .bind(Timestamp::from(now))
        .fetch_all(c).await?);
        for (tenant, id) in &kept {
            let job = SendEmail {
                tenant_id: TenantId::parse(tenant).map_err(crate::error::corrupt)?,
                email_id: EmailId::parse(id).map_err(crate::error::corrupt)?,
                request_id: crate::RequestId::current(),
            };
            enqueue(&mut tx, &job, now).await?;
        }
        tx.commit().await?;
        Ok(u64::try_from(kept.len()).unwrap_or(u64::MAX))
    }

    /// Records what became of an email, with its rendered content.
    pub async fn finish_email(
        &self,
        email: &EmailRecord,
        rendered: Option<(&str, &str, &str)>,
        outcome: &EmailOutcome,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().millis();
        let (status, next, error, sent_at) = match outcome {
            EmailOutcome::Sent => ("sent", None, None, Some(now)),
            EmailOutcome::Kept => ("kept", Some(now), None, None),
            EmailOutcome::RetryAt { at, error } => {
                ("queued", Some(*at), Some(error.as_str()), None)
            }
            EmailOutcome::Dropped { reason } => ("failed", None, Some(reason.as_str()), None),
        };
        let (subject, text, html) = match rendered {
            Some((s, t, h)) => (Some(s), Some(t), Some(h)),
            None => (None, None, None),
        };
        let mut tx = self.begin_write().await?;
        // An email erased meanwhile (its order was deleted while it was rendered or
        // sent) gets none of its content back: at most the fact that it was sent.
        let recorded = db_run!(&mut tx, c => sqlx::query(
            "UPDATE emails SET status = $3, next_attempt_at = $4, last_error = $5, sent_at = $6,
             subject = COALESCE($7, subject), text_body = COALESCE($8, text_body),
             html_body = COALESCE($9, html_body), attempts = attempts + 1
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
            if let Some(at) = sent_at {
                db_run!(&mut tx, c => sqlx::query(
                    "UPDATE emails SET status = 'sent', last_error = NULL, sent_at = $3
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(&email.tenant_id)
                .bind(&email.id)
                .bind(Timestamp::from(at))
                .execute(c).await?.rows_affected());
            }
        } else if let EmailOutcome::RetryAt { at, .. } = outcome {
            let job = SendEmail {
                tenant_id: TenantId::parse(&email.tenant_id).map_err(crate::error::corrupt)?,
                email_id: EmailId::parse(&email.id).map_err(crate::error::corrupt)?,
                request_id: crate::RequestId::current(),
            };
            enqueue(&mut tx, &job, *at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The store's emails seen from `mode`'s world, newest first: those of its orders
    /// (never another mode's: they carry customers and licenses), and the merchant's
    /// own emails about no order.
    pub async fn list_emails(
        &self,
        tenant: &TenantId,
        mode: Mode,
        page: &PageRequest,
    ) -> Result<Page<EmailRecord>, StoreError> {
        let rows: Vec<EmailRecord> = db_run!(self, c => sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EMAIL_COLUMNS} FROM emails WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2)
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = emails.tenant_id
                             AND o.id = emails.order_id AND o.test_mode = $4)
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(tenant.as_str())
        .bind(page.after.as_deref())
        .bind(page.limit + 1)
        .bind(mode.is_live())
        .fetch_all(c).await?);
        Ok(Page::from_rows(rows, page.limit, |e| e.id.clone()))
    }
}
