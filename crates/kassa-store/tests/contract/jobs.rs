//! Jobs: what the store writes into apalis's tables (an account email's job), a real
//! apalis worker runs; and finished jobs are cleaned up.

use std::time::Duration;

use apalis::prelude::*;
use kassa_store::{AccountEmail, Job, JobPool, LinkToken, SendAccountEmail, Store, Timestamp};
use kassa_testkit::{Backend, on_both_backends};
use tokio::sync::mpsc;

use crate::Fixture;

on_both_backends!(
    apalis_runs_the_jobs_the_store_writes,
    jobs_whose_every_attempt_failed_are_revived,
);

type Got = mpsc::UnboundedSender<SendAccountEmail>;

async fn got(job: SendAccountEmail, to: Data<Got>) -> Result<(), BoxDynError> {
    to.send(job)?;
    Ok(())
}

/// Runs one apalis worker of the `SendAccountEmail` queue on the store's database. Its
/// heartbeat wakes it every second (apalis's interval strategy may not; see
/// docs/background-work.md).
async fn worker(pool: JobPool, to: Got) -> Result<(), WorkerError> {
    let every = Duration::from_millis(100);
    let beat = Duration::from_secs(1);
    match pool {
        JobPool::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default()
                .queue(SendAccountEmail::QUEUE)
                .heartbeat_interval(beat);
            let backend = apalis_sqlite::SqliteStorage::new(&pool)
                .with_config(config)
                .poll_with_interval(every);
            WorkerBuilder::new("contract-test")
                .backend(backend)
                .data(to)
                .build(got)
                .run()
                .await
        }
        JobPool::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(SendAccountEmail::QUEUE)
                .heartbeat_interval(beat);
            let backend = apalis_postgres::PostgresStorage::new(&pool)
                .with_config(config)
                .poll_with_interval(every);
            WorkerBuilder::new("contract-test")
                .backend(backend)
                .data(to)
                .build(got)
                .run()
                .await
        }
    }
}

async fn apalis_runs_the_jobs_the_store_writes(backend: Backend) {
    let fx = Fixture::new(backend).await;
    fx.tenant("acme").await;
    let raw = fx.raw().await;
    assert_eq!(
        fx.store
            .pending_jobs(SendAccountEmail::QUEUE)
            .await
            .unwrap(),
        0
    );
    // Sending a link writes its email's job in the same transaction.
    send_link(&fx.store, "owner@acme.test").await;
    send_link(&fx.store, "nobody@acme.test").await;
    assert_eq!(
        fx.store
            .pending_jobs(SendAccountEmail::QUEUE)
            .await
            .unwrap(),
        1,
        "a job for the known account only"
    );

    let (to, mut jobs) = mpsc::unbounded_channel();
    let running = tokio::spawn(worker(fx.store.job_pool(), to));
    let job = tokio::time::timeout(Duration::from_secs(20), jobs.recv())
        .await
        .expect("apalis ran the job")
        .unwrap();
    let email = fx
        .store
        .due_account_email(&job)
        .await
        .unwrap()
        .expect("due");
    assert_eq!(email.to_address, "owner@acme.test");
    // The worker acknowledges it: nothing is left to run.
    let mut left = 1;
    for _ in 0..100 {
        left = fx
            .store
            .pending_jobs(SendAccountEmail::QUEUE)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the job is done");
    running.abort();

    // A finished job is removed after a day, and the worker that is gone with it.
    let age = match backend {
        Backend::Sqlite => [
            "UPDATE Jobs SET done_at = 1000",
            "UPDATE Workers SET last_seen = 1000",
        ],
        Backend::Postgres => [
            "UPDATE apalis.jobs SET done_at = to_timestamp(1000)",
            "UPDATE apalis.workers SET last_seen = to_timestamp(1000)",
        ],
    };
    let done = fx.store.clean_up().await.unwrap();
    assert_eq!((done.jobs, done.job_workers), (0, 0), "kept while fresh");
    for sql in age {
        raw.execute(sql, &[]).await;
    }
    raw.close().await;
    let done = fx.store.clean_up().await.unwrap();
    assert_eq!((done.jobs, done.job_workers), (1, 1));
}

/// A job that failed on every attempt (the database was down) is started again once it
/// has been dead for a while, and not before.
async fn jobs_whose_every_attempt_failed_are_revived(backend: Backend) {
    let fx = Fixture::new(backend).await;
    fx.tenant("acme").await;
    let raw = fx.raw().await;
    send_link(&fx.store, "owner@acme.test").await;
    let (died_now, died_long_ago) = match backend {
        Backend::Sqlite => (
            "UPDATE Jobs SET status = 'Failed', attempts = max_attempts, done_at = strftime('%s', 'now')",
            "UPDATE Jobs SET done_at = 1000",
        ),
        Backend::Postgres => (
            "UPDATE apalis.jobs SET status = 'Failed', attempts = max_attempts, done_at = now()",
            "UPDATE apalis.jobs SET done_at = to_timestamp(1000)",
        ),
    };
    raw.execute(died_now, &[]).await;
    assert_eq!(
        fx.store
            .pending_jobs(SendAccountEmail::QUEUE)
            .await
            .unwrap(),
        0,
        "dead"
    );
    let minute = Duration::from_secs(60);
    assert_eq!(
        fx.store.revive_dead_jobs(minute).await.unwrap(),
        0,
        "not yet"
    );
    raw.execute(died_long_ago, &[]).await;
    raw.close().await;
    assert_eq!(fx.store.revive_dead_jobs(minute).await.unwrap(), 1);
    assert_eq!(
        fx.store
            .pending_jobs(SendAccountEmail::QUEUE)
            .await
            .unwrap(),
        1,
        "runnable again"
    );
    assert_eq!(
        fx.store.revive_dead_jobs(minute).await.unwrap(),
        0,
        "revived once"
    );
}

/// Sends a password reset link to `email` (queued with its job when the account exists).
async fn send_link(store: &Store, email: &str) {
    let hash = format!("hash-{}", ulid::Ulid::new());
    let token = LinkToken {
        hash: &hash,
        purpose: kassa_domain::account::TokenPurpose::ResetPassword,
        expires_at: Timestamp::from(Timestamp::now().millis() + 3_600_000),
    };
    let message = AccountEmail {
        kind: kassa_domain::account::AccountEmailKind::ResetPassword,
        to: email.to_owned(),
        subject: "Reset your password".to_owned(),
        text: "A link".to_owned(),
        html: "<p>A link</p>".to_owned(),
    };
    store
        .send_account_link(email, &token, &message)
        .await
        .expect("sending a link");
}
