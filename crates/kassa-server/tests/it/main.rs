//! Kassa's integration tests: the real server on a free port with a fresh database,
//! driven over HTTP as a merchant's code would. Every test runs on SQLite and on
//! PostgreSQL.

mod harness;

mod api_keys;
mod browser;
mod catalog;
mod cli;
mod config;
mod coupons;
mod dashboard;
mod dashboard_dev;
mod emails;
mod errors;
mod faults;
mod fulfillment;
mod idempotency;
mod isolation;
mod limits;
mod localstripe;
mod logs;
mod metrics;
mod modes;
mod offers;
mod openapi;
mod orders_api;
mod pages;
mod plugins;
mod refunds;
mod rotation;
mod stripe;
mod unpaid;
mod webhooks;
