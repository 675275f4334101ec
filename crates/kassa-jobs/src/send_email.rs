//! Renders one outbox email and sends it over SMTP: sent, dropped (its order is gone,
//! or the server refused it for good), tried again with backoff, or kept in the outbox
//! while there is no SMTP.

use std::time::Duration;

use apalis::prelude::Data;
use kassa_emails::RenderError;
use kassa_mail::{MailError, Outgoing};
use kassa_store::{EmailOutcome, EmailRecord, SendEmail, StoreError, Timestamp};

use crate::workers::{Error, Workers};

/// The longest wait between two tries of an email.
const MAX_EMAIL_BACKOFF: Duration = Duration::from_secs(600);

pub(crate) async fn run(job: SendEmail, workers: Data<Workers>) -> Result<(), Error> {
    crate::workers::caused_by(&job, async {
        if let Some(email) = workers.store.due_email(&job).await? {
            send(&workers, email).await?;
        }
        Ok::<(), Error>(())
    })
    .await
}

async fn send(workers: &Workers, email: EmailRecord) -> Result<(), StoreError> {
    let store = &workers.store;
    let rendered = match kassa_emails::render(store, &workers.public_url, &email).await {
        Ok(r) => r,
        Err(RenderError::Gone(reason)) => {
            let outcome = EmailOutcome::Dropped { reason };
            return store.finish_email(&email, None, &outcome).await;
        }
        Err(e) => {
            tracing::error!(error = %e, email = %email.id, "could not render an email");
            let outcome = retry(&email, e.to_string());
            return store.finish_email(&email, None, &outcome).await;
        }
    };
    let content = Some((
        rendered.subject.as_str(),
        rendered.text.as_str(),
        rendered.html.as_str(),
    ));
    let Some(mailer) = &workers.mailer else {
        return store
            .finish_email(&email, content, &EmailOutcome::Kept)
            .await;
    };
    let outgoing = Outgoing {
        to: &email.to_address,
        from_name: &rendered.from_name,
        reply_to: rendered.reply_to.as_deref(),
        subject: &rendered.subject,
        text: &rendered.text,
        html: &rendered.html,
    };
    let outcome = match mailer.send(&outgoing).await {
        Ok(()) => EmailOutcome::Sent,
        Err(MailError::Permanent(reason)) => EmailOutcome::Dropped { reason },
        Err(MailError::Transient(reason)) => retry(&email, reason),
    };
    tracing::info!(tenant = %email.tenant_id, email = %email.id, kind = %email.kind, outcome = ?outcome, "email");
    store.finish_email(&email, content, &outcome).await
}

/// Backoff: 1 s, 2 s, 4 s, … up to 10 minutes, until sent.
fn retry(email: &EmailRecord, error: String) -> EmailOutcome {
    let exp = u32::try_from(email.attempts.clamp(0, 20)).unwrap_or(20);
    let wait = Duration::from_secs(1u64 << exp).min(MAX_EMAIL_BACKOFF);
    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    EmailOutcome::RetryAt {
        at: Timestamp::now().millis() + wait_ms,
        error,
    }
}
