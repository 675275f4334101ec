//! Runs Kassa's background work: one file per job, and the apalis runner that starts them.
//!
//! The jobs send emails, deliver licenses, remind and delete unpaid orders, clean up,
//! and start again the jobs whose every attempt failed. Webhooks are not jobs: a
//! dispatcher (`deliver_webhooks.rs`) claims the due deliveries in batches, sends them
//! concurrently and records their attempts many to a transaction.
//!
//! Each job (see `kassa_store::jobs`) is written by the transaction of the change that
//! causes it and wakes a worker for one row of Kassa's tables; the handler loads the
//! row, does the work, and records the outcome, scheduling the next try as a new job
//! with its run time when one is due (webhooks and license services follow the retry
//! schedule, SMTP backs off). Handlers are idempotent: a job that finds its row
//! finished or rescheduled does nothing, and a delivered line is never delivered again.
//! A webhook keeps its `webhook-id` (the event's id) across tries. apalis runs the jobs
//! (apalis-sqlite or apalis-postgres, with the store's database) and apalis-cron the
//! schedules; a worker that dies stops sending heartbeats, and after three missed
//! heartbeats its jobs are taken over by another worker or the restarted one.

mod clean_up;
mod deliver_line;
mod deliver_webhooks;
mod prepare_plugins;
mod revive_jobs;
mod runner;
mod send_account_email;
mod send_email;
mod sweep_unpaid;
mod workers;

pub use workers::{Error, UnpaidDefaults, Workers};
