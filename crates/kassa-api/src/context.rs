//! What every endpoint is given and what several answer with: the handler context,
//! the groups of the published document, and the answer to a DELETE.

use kassa_store::Store;

/// Groups of endpoints in the published document.
#[derive(poem_openapi::Tags)]
pub enum Tag {
    /// What the store sells.
    Products,
    /// Stocks of license keys.
    LicensePools,
    /// Discount codes.
    Coupons,
    /// Buy links with presets.
    CheckoutLinks,
    /// Where events are sent.
    WebhookEndpoints,
    /// Keys for this API.
    ApiKeys,
    /// Orders, their payments and events.
    Orders,
    /// The store's branding, legal links, bank details and payment methods. They serve
    /// both modes: read and changed with a live key only.
    Settings,
    /// Everything that happened, for replay.
    Events,
    /// The email outbox.
    Emails,
    /// WebAssembly fulfillment plugins. A plugin delivers test and live orders alike:
    /// any key reads it, only a live key changes or test-runs it.
    Plugins,
}

/// The answer to a DELETE.
#[derive(poem_openapi::ApiResponse)]
pub enum Deleted {
    /// Done; nothing to return.
    #[oai(status = 204)]
    Deleted,
}

/// What every handler needs.
#[derive(Clone, Debug)]
pub struct ApiContext {
    pub store: Store,
    /// Where customers reach Kassa, e.g. `https://pay.example.com`, without a slash.
    pub public_url: String,
    /// Runs plugins for test runs and checks uploads; `None` where none is needed.
    pub plugins: Option<std::sync::Arc<kassa_plugins::PluginHost>>,
    /// Rate limits, shared with the pages: orders and resends email customers.
    pub limits: std::sync::Arc<kassa_limits::Limits>,
    /// Which addresses outgoing requests may reach (webhook endpoints are checked
    /// against it when they are saved).
    pub network: kassa_webhooks::NetworkPolicy,
    /// Where the payment providers (Stripe) are reached.
    pub providers: kassa_orders::Providers,
}
