//! The HTTP server: health checks, the API, error shaping, body limits, logging.

use std::net::SocketAddr;
use std::time::Duration;

use kassa_api::{ApiContext, MAX_BODY_BYTES};
use kassa_store::Store;
use kassa_web::WebContext;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::CatchPanic;
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use secrecy::SecretString;
use tokio::io::AsyncReadExt;

use crate::metrics::MetricsAccess;

/// Every route Kassa serves, `/metrics` closed.
pub fn app(ctx: ApiContext) -> impl Endpoint {
    app_with(ctx, MetricsAccess { token: None })
}

/// Every route Kassa serves, `/metrics` to whom `metrics` lets in.
fn app_with(ctx: ApiContext, metrics: MetricsAccess) -> impl Endpoint {
    crate::metrics::install();
    let store = ctx.store.clone();
    let web = WebContext {
        store: ctx.store.clone(),
        secure_cookies: ctx.public_url.starts_with("https://"),
        public_url: ctx.public_url.clone(),
        limits: ctx.limits.clone(),
    };
    let dashboard = kassa_dashboard::Dash {
        web: web.clone(),
        plugins: ctx.plugins.clone(),
        network: ctx.network,
        max_body_bytes: MAX_BODY_BYTES,
    };
    let routes = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz).data(store.clone()))
        .at(
            "/metrics",
            get(crate::metrics::scrape).data(metrics).data(store),
        )
        .nest("/api", kassa_api::routes(ctx));
    let routes = kassa_dashboard::mount(routes, dashboard);
    kassa_web::mount(routes, web)
        .around(limit_body)
        .around(crate::request_log::log_request)
        .catch_all_error(kassa_api::error::to_problem)
        .with(CatchPanic::new())
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
async fn readyz(store: poem::web::Data<&Store>) -> Response {
    match store.ping().await {
        Ok(()) => "ok".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database not reachable").into_response()
        }
    }
}

/// Oversized bodies up to this size are read (and dropped) before the 413 is sent.
const DRAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// The one rule for request bodies, whatever reads them afterwards (API payloads, key
/// uploads, plugin uploads, page forms): a body over [`MAX_BODY_BYTES`] is refused
/// with 413, whether it declares its length or comes in chunks, so nothing is ever
/// cut short and stored. Handlers then read a body that is known to fit.
async fn limit_body<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let fits = match declared {
        Some(len) => len <= MAX_BODY_BYTES,
        None => {
            let mut body = req.take_body().into_async_read();
            let mut kept = Vec::new();
            (&mut body)
                .take(MAX_BODY_BYTES as u64 + 1)
                .read_to_end(&mut kept)
                .await
                .map_err(|e| poem::Error::from_string(e.to_string(), StatusCode::BAD_REQUEST))?;
            let fits = kept.len() <= MAX_BODY_BYTES;
            req.set_body(if fits {
                Body::from(kept)
            } else {
                Body::from_async_read(body)
            });
            fits
        }
    };
    if fits {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    // Read and drop a moderately oversized body, so the client is done sending and
    // reliably reads the 413 instead of a broken pipe.
    if declared.is_none_or(|len| len <= DRAIN_LIMIT_BYTES) {
        let mut rest = req
            .take_body()
            .into_async_read()
            .take(DRAIN_LIMIT_BYTES as u64);
        tokio::io::copy(&mut rest, &mut tokio::io::sink())
            .await
            .ok();
    }
    if req.uri().path().starts_with("/api/") {
        return Err(poem::Error::from_string(
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    if req.uri().path().starts_with("/dashboard/") {
        return Ok(kassa_dashboard::too_large(&req, MAX_BODY_BYTES));
    }
    Ok(kassa_web::too_large(&req))
}

/// A bound, not yet running server.
pub struct Server {
    acceptor: poem::listener::TcpAcceptor,
    pub local_addr: SocketAddr,
    metrics: MetricsAccess,
}

impl Server {
    /// Binds the listening socket (port 0 picks a free one).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let acceptor = TcpListener::bind(addr).into_acceptor().await?;
        let local_addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(addr);
        crate::metrics::install();
        Ok(Self {
            acceptor,
            local_addr,
            metrics: MetricsAccess { token: None },
        })
    }

    /// Opens `/metrics` to scrapes that send `Authorization: Bearer <token>`.
    pub fn with_metrics_token(mut self, token: Option<SecretString>) -> Self {
        self.metrics = MetricsAccess { token };
        self
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run(
        self,
        ctx: ApiContext,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                app_with(ctx, self.metrics),
                shutdown,
                Some(Duration::from_secs(20)),
            )
            .await
    }
}
