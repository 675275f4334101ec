//! Kassa's storage: every SQL statement lives here, in small named functions.
//!
//! The store holds a typed pool, SQLite (the embedded default) or PostgreSQL, and each
//! query is written once and compiled for both with `db_run!` (see `db.rs` and
//! `docs/storage.md`); each backend keeps its native types (times, JSON, flags), and
//! placeholders are `$n`, which both accept. apalis's workers share the same pool.
//! Migrations are per backend under `migrations/`. Every tenant-owned query is scoped by `tenant_id`; an object of
//! another tenant is simply not found. This crate must not know about HTTP.

mod accounts;
mod catalog;
mod db;
mod deliveries;
mod emails;
mod error;
mod events;
mod fulfillment;
mod idempotency;
mod jobs;
mod orders;
mod page;
mod plugins;
mod pools;
mod providers;
mod queues;
mod recent;
mod refunds;
mod reports;
mod request_id;
mod retention;
mod sealed;
mod secrets_key;
mod store;
mod tenants;
mod time;
mod timeline;
mod unpaid;
mod view;
mod webhooks;
mod work;

pub use accounts::*;
pub use catalog::*;
pub use db::{Backend, Tx};
pub use deliveries::*;
pub use emails::*;
pub use error::StoreError;
pub use events::*;
pub use fulfillment::*;
pub use idempotency::*;
pub use jobs::{Job, JobPool, PoolUse, QueueUse, jobs_written_here};
pub use orders::*;
pub use page::{Page, PageRequest};
pub use plugins::*;
pub use pools::*;
pub use providers::*;
pub use queues::{Queue, written_here};
pub use recent::KEPT_FOR;
pub use refunds::NewRefund;
pub use reports::*;
pub use request_id::RequestId;
pub use retention::*;
pub use sealed::Keyring;
pub use store::Store;
pub use tenants::*;
pub use time::Timestamp;
pub use timeline::*;
pub use view::*;
pub use webhooks::*;
pub use work::Work;
