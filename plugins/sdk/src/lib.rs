//! The Rust SDK for Kassa fulfillment plugins.
//!
//! ```ignore
//! use kassa_plugin_sdk::{export, FulfillError, Plugin, Request};
//!
//! struct MyPlugin;
//! impl Plugin for MyPlugin {
//!     fn fulfill(request: Request) -> Result<Vec<String>, FulfillError> {
//!         Ok(vec![format!("KEY-{}", request.idempotency_key)])
//!     }
//! }
//! export!(MyPlugin);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` and upload the `.wasm`
//! (`POST /api/v1/plugins`, `content-type: application/wasm`).

/// The bindings generated from `plugins/wit`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "fulfillment",
        pub_export_macro: true,
        default_bindings_module: "kassa_plugin_sdk::bindings",
    });
}

pub use bindings::kassa::plugin::host;
pub use bindings::kassa::plugin::types::{Customer, HttpRequest, HttpResponse};
pub use bindings::{FulfillError, Guest as Plugin, Request, export};

/// The plugin's setting `name` from its non-secret configuration.
pub fn config<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .config
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
