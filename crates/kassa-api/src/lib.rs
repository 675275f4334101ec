//! The merchant API under `/api/v1`: one file per resource, errors as problem+json.
//!
//! It is described by poem-openapi so the published document is the code. Each
//! resource's file holds its handlers and its transport types (`XIn`, `XOut`,
//! `XPatch`). Handlers parse input into domain values, call the store, and map errors
//! once through [`error::ApiError`]. No SQL here.

mod api_keys;
mod auth;
mod checkout_links;
mod context;
mod contract;
mod coupons;
mod emails;
pub mod error;
mod events;
mod idempotency;
mod license_pools;
mod orders;
mod pagination;
mod plugins;
mod products;
mod provider_webhooks;
mod settings;
mod webhook_endpoints;

pub use context::{ApiContext, Deleted, Tag};
use kassa_store::Store;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

/// The largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

type Apis = (
    products::ProductsApi,
    license_pools::LicensePoolsApi,
    coupons::CouponsApi,
    checkout_links::CheckoutLinksApi,
    webhook_endpoints::WebhookEndpointsApi,
    api_keys::ApiKeysApi,
    orders::OrdersApi,
    settings::SettingsApi,
    events::EventsApi,
    emails::EmailsApi,
    plugins::PluginsApi,
);

fn service(ctx: &ApiContext) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            products::ProductsApi(ctx.clone()),
            license_pools::LicensePoolsApi(ctx.clone()),
            coupons::CouponsApi(ctx.clone()),
            checkout_links::CheckoutLinksApi(ctx.clone()),
            webhook_endpoints::WebhookEndpointsApi(ctx.clone()),
            api_keys::ApiKeysApi(ctx.clone()),
            orders::OrdersApi(ctx.clone()),
            settings::SettingsApi(ctx.clone()),
            events::EventsApi(ctx.clone()),
            emails::EmailsApi(ctx.clone()),
            plugins::PluginsApi(ctx.clone()),
        ),
        "Kassa merchant API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Products, checkout links, coupons, license pools, webhook endpoints, orders and \
         settings of one store. \
         Authenticate with `Authorization: Bearer <api key>`. Errors are \
         `application/problem+json`. POST requests accept an `Idempotency-Key` header.",
    )
    .server("/api/v1")
}

/// The OpenAPI document, as served at `/api/openapi.json`. Call it inside a Tokio
/// runtime.
pub fn openapi_json() -> String {
    // The document does not depend on the data; this store is never connected.
    let ctx = ApiContext {
        store: Store::connect_lazy("sqlite::memory:").expect("an in-memory SQLite URL parses"),
        public_url: String::new(),
        plugins: None,
        limits: std::sync::Arc::new(kassa_limits::Limits::off()),
        network: kassa_webhooks::NetworkPolicy {
            allow_private: false,
        },
        providers: kassa_orders::Providers::default(),
    };
    contract::publish(&service(&ctx).spec())
}

/// `/api/v1/…`, `/api/openapi.json`, `/api/docs` and the plugins' WIT
/// (`/api/wit/…`), to be nested under `/api`.
pub fn routes(ctx: ApiContext) -> impl Endpoint {
    let api = service(&ctx);
    let spec = contract::publish(&api.spec());
    let docs = api.swagger_ui();
    let contract = contract::Contract::of(&spec);
    Route::new()
        .nest(
            "/v1",
            api.with(idempotency::Idempotency::new(ctx.store.clone()))
                .data(ctx.store.clone())
                .around(move |next, req| contract::keep(next, req, contract.clone())),
        )
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            }),
        )
        .nest("/docs", docs)
        .at(
            "/wit/kassa-plugin.wit",
            poem::endpoint::make_sync(|_| wit()),
        )
        .at(
            format!("/wit/kassa-plugin@{}.wit", kassa_plugins::WIT_VERSION),
            poem::endpoint::make_sync(|_| wit()),
        )
}

/// Stripe's webhooks, added at the root of `route`: `/{store}/webhooks/stripe` for the
/// store's live mode and `/{store}/test/webhooks/stripe` for its test mode (beside the
/// test checkout's `/{store}/test/…`). Not in the published document.
pub fn mount_provider_webhooks(route: Route, ctx: ApiContext) -> Route {
    let ctx = std::sync::Arc::new(ctx);
    route
        .at(
            "/:tenant/webhooks/stripe",
            poem::post(provider_webhooks::stripe)
                .data(ctx.clone())
                .data(kassa_domain::mode::Mode::Live),
        )
        .at(
            "/:tenant/test/webhooks/stripe",
            poem::post(provider_webhooks::stripe)
                .data(ctx)
                .data(kassa_domain::mode::Mode::Test),
        )
}

/// The WIT plugins are built against (`/api/wit/kassa-plugin.wit`, and by version
/// `/api/wit/kassa-plugin@0.1.0.wit`).
fn wit() -> poem::Response {
    poem::Response::builder()
        .content_type("text/plain; charset=utf-8")
        .body(kassa_plugins::WIT)
}
