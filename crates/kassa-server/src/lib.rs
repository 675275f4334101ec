//! The `kassa` program: configuration, the command line, and the HTTP server that
//! puts the API, the customer pages and the dashboard on one port, beside the
//! workers. Business rules live in `kassa-domain`, SQL in `kassa-store`, handlers in
//! `kassa-api`, `kassa-web` and `kassa-dashboard`.

pub mod config;
pub mod demo;
mod http;
pub mod metrics;
mod request_log;
pub mod secrets_key;

pub use config::Config;
pub use http::{DEFAULT_MAX_IN_FLIGHT, Server, app};
