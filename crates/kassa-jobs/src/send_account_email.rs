//! Sends one account email (a verification or password-reset link, an invitation),
//! rendered when it was queued. Without SMTP it is kept, and its text is written to
//! the log so whoever runs Kassa can open the link (documented in docs/dashboard.md).

use std::time::Duration;

use apalis::prelude::Data;
use kassa_mail::{MailError, Outgoing};
use kassa_store::{AccountEmailRecord, EmailOutcome, SendAccountEmail, Timestamp};

use crate::workers::{Error, Workers};

pub(crate) async fn run(job: SendAccountEmail, workers: Data<Workers>) -> Result<(), Error> {
    crate::workers::caused_by(&job, async {
        let Some(email) = workers.store.due_account_email(&job).await? else {
            return Ok(());
        };
        let outcome = send(&workers, &email).await;
        tracing::info!(email = %email.id, kind = %email.kind, outcome = ?outcome, "account email");
        workers.store.finish_account_email(&email, &outcome).await?;
        Ok::<(), Error>(())
    })
    .await
}

async fn send(workers: &Workers, email: &AccountEmailRecord) -> EmailOutcome {
    let (Some(text), Some(html)) = (&email.text_body, &email.html_body) else {
        return EmailOutcome::Dropped {
            reason: "the email has no body".into(),
        };
    };
    let Some(mailer) = &workers.mailer else {
        tracing::warn!(
            to = %email.to_address,
            subject = %email.subject,
            "no SMTP is configured: this account email is not sent; its text follows\n{text}"
        );
        return EmailOutcome::Kept;
    };
    let outgoing = Outgoing {
        to: &email.to_address,
        from_name: "Kassa",
        reply_to: None,
        subject: &email.subject,
        text,
        html,
    };
    match mailer.send(&outgoing).await {
        Ok(()) => EmailOutcome::Sent,
        Err(MailError::Permanent(reason)) => EmailOutcome::Dropped { reason },
        Err(MailError::Transient(error)) => {
            let exp = u32::try_from(email.attempts.clamp(0, 9)).unwrap_or(9);
            let wait = Duration::from_secs(1u64 << exp);
            EmailOutcome::RetryAt {
                at: Timestamp::now().millis() + i64::try_from(wait.as_millis()).unwrap_or(0),
                error,
            }
        }
    }
}
