//! Renders outbox emails and sends them over SMTP: sent, dropped (its order is gone,
//! or the server refused it for good), tried again with backoff, or kept in the outbox
//! while there is no SMTP.
//!
//! The queued emails are their own queue: a dispatcher (`dispatch.rs`, as for webhooks)
//! claims due emails in batches, a paid order's first, renders and sends them side by
//! side (at most [`IN_FLIGHT`] at once on a node, on the mailer's pooled SMTP
//! connections), and a recorder writes the outcomes of many in one transaction. An
//! email whose outcome was not recorded is sent again once its claim runs out (at
//! least once).

use std::sync::Arc;
use std::time::Duration;

use kassa_emails::{Loaded, RenderError};
use kassa_mail::{MailError, Outgoing};
use kassa_store::{EmailFinished, EmailOutcome, EmailRecord, Queue, Store, StoreError, Timestamp};
use tokio::sync::watch;

use crate::dispatch::{Dispatch, Recorder, Taken};
use crate::workers::Workers;

/// The longest wait between two tries of an email.
const MAX_EMAIL_BACKOFF: Duration = Duration::from_secs(600);
/// Emails claimed at once, at most.
const BATCH: usize = 32;
/// Emails rendered and sent at once on one node.
const IN_FLIGHT: usize = 16;
/// Outcomes recorded in one transaction, at most.
const RECORD_BATCH: usize = 64;

/// An email's outcome, on its way to the recorder; its row is let go once recorded.
struct Finished {
    email: EmailRecord,
    /// Subject, text and HTML, when it was rendered.
    rendered: Option<(String, String, String)>,
    outcome: EmailOutcome,
    _taken: Taken,
}

/// Sends due emails until `stop` says so (or its sender goes), then finishes the
/// emails in flight.
pub(crate) async fn run(workers: Workers, stop: watch::Receiver<bool>) {
    let store = workers.store.clone();
    let dispatch = Dispatch::new(Queue::Emails, BATCH, IN_FLIGHT);
    let writer = store.clone();
    let recorder = Recorder::spawn(RECORD_BATCH, dispatch.wake.clone(), move |batch| {
        let store = writer.clone();
        async move {
            write(&store, &batch).await;
            // Only a retry can be due before the dispatcher's idle wait ends.
            batch
                .iter()
                .any(|f| matches!(f.outcome, EmailOutcome::RetryAt { .. }))
        }
    });
    let done = recorder.outcomes.clone();
    dispatch
        .run(
            store,
            workers.heartbeat,
            stop,
            |store, name, limit, lease| async move { claim(&store, &name, limit, lease).await },
            |(email, loaded): (EmailRecord, Arc<Loaded>), taken| {
                let (workers, done) = (workers.clone(), done.clone());
                tokio::spawn(async move {
                    let request = email
                        .request_id
                        .clone()
                        .map(kassa_store::RequestId::from_stored);
                    let (rendered, outcome) =
                        crate::workers::in_scope_of(request, send(&workers, &email, &loaded)).await;
                    let _ = done.send(Finished {
                        email,
                        rendered,
                        outcome,
                        _taken: taken,
                    });
                });
            },
        )
        .await;
    drop(done);
    recorder.finish(Queue::Emails).await;
}

/// Claims a batch of due emails, with the stores and orders they are rendered from
/// (read once for the batch; when that read fails, each email reads its own).
async fn claim(
    store: &Store,
    claim: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<(EmailRecord, Arc<Loaded>)>, StoreError> {
    let emails = store.claim_emails(claim, limit, lease).await?;
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    let loaded = Arc::new(Loaded::load(store, &emails).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading an email batch's orders");
        Loaded::default()
    }));
    Ok(emails.into_iter().map(|e| (e, loaded.clone())).collect())
}

/// Renders and sends (or keeps) one email: its rendered content and outcome.
async fn send(
    workers: &Workers,
    email: &EmailRecord,
    loaded: &Loaded,
) -> (Option<(String, String, String)>, EmailOutcome) {
    let rendered =
        match kassa_emails::render_from(&workers.store, &workers.public_url, email, loaded).await {
            Ok(r) => r,
            Err(RenderError::Gone(reason)) => return (None, EmailOutcome::Dropped { reason }),
            Err(e) => {
                tracing::error!(error = %e, email = %email.id, "could not render an email");
                return (None, retry(email, e.to_string()));
            }
        };
    let outcome = match &workers.mailer {
        None => EmailOutcome::Kept,
        Some(mailer) => {
            let outgoing = Outgoing {
                to: &email.to_address,
                from_name: &rendered.from_name,
                reply_to: rendered.reply_to.as_deref(),
                subject: &rendered.subject,
                text: &rendered.text,
                html: &rendered.html,
            };
            match mailer.send(&outgoing).await {
                Ok(()) => EmailOutcome::Sent,
                Err(MailError::Permanent(reason)) => EmailOutcome::Dropped { reason },
                Err(MailError::Transient(reason)) => retry(email, reason),
            }
        }
    };
    if workers.mailer.is_some() {
        tracing::info!(tenant = %email.tenant_id, email = %email.id, kind = %email.kind, outcome = ?outcome, "email");
    }
    (
        Some((rendered.subject, rendered.text, rendered.html)),
        outcome,
    )
}

/// Writes a batch of outcomes; when the database keeps failing it, one at a time, so
/// one bad row does not hold back the others. An outcome not recorded is sent again
/// once its claim runs out (at least once).
async fn write(store: &Store, batch: &[Finished]) {
    let all: Vec<EmailFinished> = batch.iter().map(as_finished).collect();
    for wait in [200, 1_000, 2_000] {
        match store.finish_emails(&all).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, emails = all.len(), "recording emails");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
    for f in &all {
        if let Err(e) = store.finish_emails(std::slice::from_ref(f)).await {
            tracing::warn!(
                error = %e, tenant = %f.email.tenant_id, email = %f.email.id,
                "an email's outcome was not recorded; it is sent again once its claim runs out"
            );
        }
    }
}

fn as_finished(f: &Finished) -> EmailFinished<'_> {
    EmailFinished {
        email: &f.email,
        rendered: f
            .rendered
            .as_ref()
            .map(|(s, t, h)| (s.as_str(), t.as_str(), h.as_str())),
        outcome: &f.outcome,
    }
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
