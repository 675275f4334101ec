//! Runs Kassa's background work: one file per job, and the apalis runner that starts them.
//!
//! Webhook deliveries, paid lines and outbox emails are not jobs: their rows are their
//! queues, and a dispatcher per queue (`dispatch.rs`, shared) claims due rows in
//! batches, works them concurrently within bounds (`deliver_webhooks.rs`,
//! `deliver_line.rs`, `send_email.rs`), and records their outcomes (webhook attempts and
//! emails many to a transaction; a line in the transaction of its delivery). A row's
//! outcome says when it is due again (webhooks and license services follow the retry
//! schedule, SMTP backs off); a claim whose node died runs out and the rows go back to
//! the queue. A delivered line is never delivered again, and a webhook keeps its
//! `webhook-id` (the event's id) across tries.
//!
//! The apalis jobs send account emails, remind and delete unpaid orders, clean up, and
//! start again the jobs whose every attempt failed. Each (see `kassa_store::jobs`) is
//! written by the transaction of the change that causes it; apalis runs them
//! (apalis-sqlite or apalis-postgres, with the store's database) and apalis-cron the
//! schedules; a worker that dies stops sending heartbeats, and after three missed
//! heartbeats its jobs are taken over by another worker or the restarted one.

mod clean_up;
mod deliver_line;
mod deliver_webhooks;
mod dispatch;
mod prepare_plugins;
mod revive_jobs;
mod runner;
mod send_account_email;
mod send_email;
mod sweep_unpaid;
mod workers;

pub use workers::{Error, UnpaidDefaults, Workers};
