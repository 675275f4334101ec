//! The paid lines and the outbox emails are their own queues: due rows claimed once, a
//! paid order's emails first, a claim that runs out given back, an extended claim
//! held, and an outcome that lets its row go (due again at its retry's time).

use std::time::Duration;

use kassa_domain::mode::Mode;
use kassa_domain::order::LineStatus;
use kassa_domain::workflow::{Followups, Wake};
use kassa_store::{EmailFinished, EmailOutcome, Queue, Timestamp};
use kassa_testkit::Backend;

use crate::{Arg, Fixture, Raw};

kassa_testkit::on_both_backends!(
    emails_are_claimed_once_paid_first_and_given_back_when_a_claim_runs_out,
    paid_lines_are_claimed_once_and_let_go_by_their_outcome,
    queued_email_jobs_become_due_rows_on_upgrade,
);

const LONG: Duration = Duration::from_secs(60);

async fn emails_are_claimed_once_paid_first_and_given_back_when_a_claim_runs_out(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = acme.tenant.id.as_str();
    let now = Timestamp::now().millis();
    let raw = fx.raw().await;
    // (id, status, priority, due): the first is due earliest, the second reports a paid
    // order, the fourth is due later, the fifth was kept while there was no SMTP.
    for (id, status, priority, due) in [
        ("eml_1", "queued", "0", now - 5_000),
        ("eml_2", "queued", "1", now),
        ("eml_3", "queued", "0", now - 1_000),
        ("eml_4", "queued", "1", now + 600_000),
        ("eml_5", "kept", "0", now - 9_000),
    ] {
        raw.execute(
            &format!(
                "INSERT INTO emails (tenant_id, id, kind, dedupe_key, to_address, locale, status,
                 attempts, next_attempt_at, created_at, priority)
                 VALUES ($1, $2, 'licenses', $2, 'c@example.com', 'en', $3, 0, $4, $4, {priority})"
            ),
            &[
                Arg::Text(tenant),
                Arg::Text(id),
                Arg::Text(status),
                Arg::Time(Timestamp::from(due)),
            ],
        )
        .await;
    }
    raw.close().await;
    let ids = |emails: &[kassa_store::EmailRecord]| {
        emails.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    };

    let a = fx.store.claim_emails("clm_a", 2, LONG).await.unwrap();
    assert_eq!(
        ids(&a),
        ["eml_2", "eml_1"],
        "a paid order's first, then the earliest"
    );
    let b = fx
        .store
        .claim_emails("clm_b", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(ids(&b), ["eml_3"], "what is left and due, once");
    // `clm_b`'s claim ran out at once: its email is claimed again (a dead node's).
    let c = fx
        .store
        .claim_emails("clm_c", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        ids(&c),
        ["eml_3"],
        "a claim that ran out gives its rows back"
    );
    fx.store
        .extend_claims(Queue::Emails, &["clm_c".to_owned()], LONG)
        .await
        .unwrap();
    assert!(
        fx.store
            .claim_emails("clm_d", 10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "an extended claim holds"
    );

    // Sent, and tried again at once: the retry is claimed again, the sent one never.
    let retry = EmailOutcome::RetryAt {
        at: now - 1,
        error: "421 busy".into(),
    };
    let rendered = Some(("Your licenses", "text", "<p>html</p>"));
    fx.store
        .finish_emails(&[
            EmailFinished {
                email: &a[0],
                rendered,
                outcome: &EmailOutcome::Sent,
            },
            EmailFinished {
                email: &a[1],
                rendered,
                outcome: &retry,
            },
        ])
        .await
        .unwrap();
    let again = fx.store.claim_emails("clm_e", 10, LONG).await.unwrap();
    assert_eq!(ids(&again), ["eml_1"]);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("421 busy"));
    let page = fx
        .store
        .list_emails(
            &acme.tenant.id,
            // Written above without a mode, so live (the column's default, migration
            // 0043); the outbox lists only its reader's mode.
            kassa_domain::mode::Mode::Live,
            &kassa_store::PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let sent = page.data.iter().find(|e| e.id == "eml_2").unwrap();
    assert_eq!(sent.status, "sent");
    assert_eq!(sent.subject.as_deref(), Some("Your licenses"));

    // Nothing else is due: the next look is at the earliest claim's end or due time.
    let next = fx.store.next_due_at(Queue::Emails).await.unwrap().unwrap();
    assert!(next.millis() > now, "{next:?}");
    // The kept email is queued again when SMTP comes, and claimed.
    assert_eq!(fx.store.queue_kept_emails().await.unwrap(), 1);
    let kept = fx.store.claim_emails("clm_f", 10, LONG).await.unwrap();
    assert_eq!(ids(&kept), ["eml_5"]);
}

async fn paid_lines_are_claimed_once_and_let_go_by_their_outcome(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (acme, _) = fx.tenant("acme").await;
    let tenant = &acme.tenant.id;
    let pool = fx
        .store
        .create_license_pool(tenant, Mode::Test, "Keys", None)
        .await
        .unwrap();
    let (id, work) = crate::refunds::paid_order(&fx.store, tenant, &pool.id).await;
    work.commit().await.unwrap();
    assert!(
        fx.store
            .claim_lines("clm_a", 10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "no line is due before its order is paid"
    );
    let due = Followups {
        deliver: vec![Wake {
            line_no: 1,
            at: None,
        }],
        ..Followups::default()
    };
    let mut work = fx.store.work(tenant).await.unwrap();
    work.follow(Some(&id), &due).await.unwrap();
    work.commit().await.unwrap();

    let a = fx.store.claim_lines("clm_a", 10, LONG).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].order_id.as_str(), a[0].line_no), (id.as_str(), 1));
    assert_eq!(a[0].quantity, 2);
    assert!(
        fx.store
            .claim_lines("clm_b", 10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "claimed once"
    );
    // The claim runs out (the node died): the line is claimed again.
    fx.store
        .extend_claims(Queue::Lines, &["clm_a".to_owned()], Duration::ZERO)
        .await
        .unwrap();
    let c = fx.store.claim_lines("clm_c", 10, LONG).await.unwrap();
    assert_eq!(c.len(), 1, "a claim that ran out gives its line back");

    // Waiting for stock lets the line go and leaves it undue until a restock wakes it.
    let mut work = fx.store.work(tenant).await.unwrap();
    work.mark_undelivered(&id, 1, LineStatus::WaitingStock, "no keys")
        .await
        .unwrap();
    work.commit().await.unwrap();
    assert!(
        fx.store
            .claim_lines("clm_d", 10, LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(fx.store.next_due_at(Queue::Lines).await.unwrap(), None);
    let mut work = fx.store.work(tenant).await.unwrap();
    work.follow(Some(&id), &due).await.unwrap();
    work.commit().await.unwrap();
    let e = fx.store.claim_lines("clm_e", 10, LONG).await.unwrap();
    assert_eq!(e.len(), 1, "woken by the restock");

    // Delivered: never claimed again.
    let mut work = fx.store.work(tenant).await.unwrap();
    work.mark_delivered(&id, 1, &["K-1".to_owned(), "K-2".to_owned()], true)
        .await
        .unwrap();
    work.commit().await.unwrap();
    fx.store
        .extend_claims(Queue::Lines, &["clm_e".to_owned()], Duration::ZERO)
        .await
        .unwrap();
    assert!(
        fx.store
            .claim_lines("clm_f", 10, LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(fx.store.next_due_at(Queue::Lines).await.unwrap(), None);
}

/// A database of 0029 with an email queued with its apalis job (a paid order's, from a
/// request), upgraded: the job's priority and request id are on the row, the job is
/// gone, and the email is claimed by the dispatch.
async fn queued_email_jobs_become_due_rows_on_upgrade(backend: Backend) {
    let db = kassa_testkit::TestDatabase::create(backend).await;
    let store = kassa_store::Store::connect(&db.url, 5)
        .await
        .expect("connecting");
    let until_0029 = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            store
                .migrations()
                .migrations
                .iter()
                .filter(|m| m.version < 30)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    store
        .migrate_with(&until_0029)
        .await
        .expect("migrating to 0029");
    let created = store
        .create_tenant(
            &crate::parse_slug("acme"),
            "Acme",
            &crate::email("owner@acme.test"),
            &kassa_domain::tenant::NewApiKey::generate(Mode::Live),
            &kassa_domain::tenant::NewApiKey::generate(Mode::Test),
        )
        .await
        .expect("a tenant");
    let tenant = created.tenant.id.as_str();
    let raw = Raw::connect(&db.url).await;
    raw.execute(
        "INSERT INTO emails (tenant_id, id, kind, dedupe_key, to_address, locale, status,
         attempts, next_attempt_at, created_at)
         VALUES ($1, 'eml_1', 'licenses', 'k', 'c@example.com', 'en', 'queued', 0, $2, $2)",
        &[Arg::Text(tenant), Arg::Time(Timestamp::now())],
    )
    .await;
    let job = serde_json::json!({"tenant_id": tenant, "email_id": "eml_1", "request_id": "req_1"})
        .to_string();
    let insert = match backend {
        Backend::Sqlite => {
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata)
             VALUES (CAST($1 AS BLOB), 'job_1', 'kassa::send_email', 'Pending', 0, 5, 0, 1, '{}')"
        }
        Backend::Postgres => {
            "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority)
             VALUES (convert_to($1, 'UTF8'), 'job_1', 'kassa::send_email', 'Pending', 0, 5, now(), 1)"
        }
    };
    assert_eq!(raw.execute(insert, &[Arg::Text(&job)]).await, 1);
    raw.close().await;

    store.migrate().await.expect("upgrading to today's schema");
    assert_eq!(
        store.pending_jobs("kassa::send_email").await.unwrap(),
        0,
        "the job is gone"
    );
    let due = store.claim_emails("clm_a", 10, LONG).await.unwrap();
    assert_eq!(due.len(), 1, "the email is due by itself");
    assert_eq!(due[0].request_id.as_deref(), Some("req_1"));
    let raw = Raw::connect(&db.url).await;
    let paid_first = raw
        .count(
            "SELECT COUNT(*) FROM emails WHERE id = 'eml_1' AND priority = 1",
            &[],
        )
        .await;
    raw.close().await;
    assert_eq!(paid_first, 1, "the job's priority is the row's");
}
