//! Kassa's business rules: typed ids, money, the merchant's catalog (products,
//! coupons, checkout links, license pools, webhook endpoints, plugins), and the order
//! workflow (`workflow`): what may happen to an order and what must follow, as data.
//!
//! Raw input becomes a domain value here, through a `parse` that says which field is
//! wrong and why. This crate does no I/O: no database, no network, no clock except
//! what a caller passes in.

pub mod access;
pub mod account;
pub mod catalog;
pub mod email;
pub mod error;
pub mod event;
pub mod ids;
pub mod mode;
pub mod money;
mod names;
pub mod offer;
pub mod order;
pub mod plugin;
pub mod secret;
pub mod signed_link;
pub mod tenant;
pub mod webhook;
pub mod workflow;

pub use error::{FieldError, Invalid, Reason};
pub use secret::Secret;
