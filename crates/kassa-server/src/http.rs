//! The HTTP server: health checks, the API, error shaping, body limits, logging.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use kassa_api::{ApiContext, MAX_BODY_BYTES};
use kassa_store::Store;
use kassa_web::WebContext;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::CatchPanic;
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use secrecy::SecretString;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::metrics::MetricsAccess;

/// Every route Kassa serves, `/metrics` closed, no proxy trusted.
pub fn app(ctx: ApiContext) -> impl Endpoint {
    app_with(
        ctx,
        MetricsAccess { token: None },
        Vec::new(),
        DEFAULT_MAX_IN_FLIGHT,
        tokio::sync::watch::channel(false).1,
    )
}

/// How many requests are served at once unless the operator says otherwise
/// (`http_max_in_flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// What a request over the limit is asked to wait, in seconds.
const RETRY_AFTER_BUSY_SECS: u64 = 1;

/// Every route Kassa serves: `/metrics` to whom `metrics` lets in, and
/// `X-Forwarded-For` believed from `trusted_proxies`; at most `max_in_flight` requests
/// at once.
fn app_with(
    ctx: ApiContext,
    metrics: MetricsAccess,
    trusted_proxies: Vec<IpNet>,
    max_in_flight: usize,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> impl Endpoint {
    crate::metrics::install();
    let store = ctx.store.clone();
    let web = WebContext {
        store: ctx.store.clone(),
        secure_cookies: ctx.public_url.starts_with("https://"),
        public_url: ctx.public_url.clone(),
        limits: ctx.limits.clone(),
        providers: ctx.providers.clone(),
    };
    // Plugin uploads may be as large as the operator lets components be.
    let component_bytes = ctx
        .plugins
        .as_ref()
        .map_or(MAX_BODY_BYTES, |host| host.policy().max_component_bytes);
    let dashboard = kassa_dashboard::Dash {
        web: web.clone(),
        plugins: ctx.plugins.clone(),
        network: ctx.network,
        max_body_bytes: MAX_BODY_BYTES,
        max_component_bytes: component_bytes,
        stopping,
    };
    let routes = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz).data(store.clone()))
        .at("/favicon.ico", get(no_favicon))
        .at(
            "/metrics",
            get(crate::metrics::scrape).data(metrics).data(store),
        )
        .nest("/api", kassa_api::routes(ctx.clone()));
    let routes = kassa_api::mount_provider_webhooks(routes, ctx);
    let routes = kassa_dashboard::mount(routes, dashboard);
    kassa_web::mount(routes, web)
        .around(move |next, req| limit_body(next, req, component_bytes))
        .around(move |next, mut req: Request| {
            let client = client_addr(&req, &trusted_proxies);
            async move {
                if let Some(ip) = client {
                    req.extensions_mut().insert(kassa_web::page::ClientAddr(ip));
                }
                next.call(req).await
            }
        })
        .around(crate::request_log::log_request)
        .around(page_not_found)
        .catch_all_error(kassa_api::error::to_problem)
        .with(CatchPanic::new())
        .around({
            let in_flight = Arc::new(Semaphore::new(max_in_flight));
            move |next, req| shed_over_limit(next, req, in_flight.clone())
        })
}

/// The one bound on requests in flight: over it, a request is answered at once with a
/// 503 problem and `Retry-After` instead of waiting in memory, so a burst (thousands
/// of clients at once) costs a bounded amount of memory and the requests taken keep
/// their latency. Health checks and `/metrics` are always answered, so an operator
/// sees the node under load.
async fn shed_over_limit<E: Endpoint>(
    next: E,
    req: Request,
    in_flight: Arc<Semaphore>,
) -> poem::Result<Response> {
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let Ok(_permit) = in_flight.try_acquire() else {
        ::metrics::counter!("kassa_http_requests_shed_total").increment(1);
        let mut resp = kassa_api::error::Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            Some(format!(
                "Kassa is serving as many requests as it takes at once; nothing was done. \
                 Retry after {RETRY_AFTER_BUSY_SECS} second."
            )),
        )
        .into_http();
        resp.headers_mut().insert(
            poem::http::header::RETRY_AFTER,
            RETRY_AFTER_BUSY_SECS.into(),
        );
        return Ok(resp);
    };
    next.call(req).await.map(IntoResponse::into_response)
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

/// The longest an oversized body is read before the 413 is sent anyway.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Room for a dashboard upload form's other fields and its multipart framing.
const FORM_OVERHEAD_BYTES: usize = 16 * 1024;

/// Whether a request uploads a plugin component (API or dashboard): those bodies may be
/// as large as a component may be, and are streamed to the handler, never buffered here.
fn uploads_component(req: &Request) -> bool {
    let path = req.uri().path().trim_end_matches('/');
    req.method() == poem::http::Method::POST
        && (path == "/api/v1/plugins"
            || path == "/dashboard/plugins"
            || ((path.starts_with("/api/v1/plugins/") || path.starts_with("/dashboard/plugins/"))
                && path.ends_with("/versions")))
}

/// The one rule for request bodies, whatever reads them afterwards (API payloads, key
/// uploads, plugin uploads, page forms): a body over [`MAX_BODY_BYTES`] (a plugin
/// upload: over the operator's component size) is refused with 413, whether it
/// declares its length or comes in chunks, so nothing is ever cut short and stored.
/// Handlers then read a body that is known to fit; a chunked plugin upload is passed
/// on as it arrives, cut one byte past the limit, and its handler, which hashes and
/// checks it while it arrives, refuses it there.
async fn limit_body<E: Endpoint>(
    next: E,
    mut req: Request,
    component_bytes: usize,
) -> poem::Result<Response> {
    let upload = uploads_component(&req);
    let from_dashboard = req.uri().path().starts_with("/dashboard/");
    let limit = match (upload, from_dashboard) {
        (true, true) => component_bytes + FORM_OVERHEAD_BYTES,
        (true, false) => component_bytes,
        (false, _) => MAX_BODY_BYTES,
    };
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let fits = match declared {
        Some(len) => len <= limit,
        None if upload => {
            let body = req.take_body();
            req.set_body(cut_past(body, limit));
            true
        }
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
        // What the handler leaves unread of a body still arriving (a refusal that came
        // before the body: no key, a test key uploading a plugin, not a component) is
        // read and dropped before the answer goes out.
        let unread = if declared.is_some_and(|len| len > 0) || declared.is_none() && upload {
            let (body, unread) = unread(req.take_body().into_bytes_stream());
            req.set_body(body);
            Some(unread)
        } else {
            None
        };
        let answer = next.call(req).await;
        if let Some(unread) = unread {
            unread.drain().await;
        }
        let mut resp = answer?.into_response();
        if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
            // A handler refused the body while it arrived (a chunked plugin upload past
            // the limit): the rest is unread, so this connection cannot carry another
            // request. Saying so keeps the client from sending its next one on it.
            resp.headers_mut().insert(
                poem::http::header::CONNECTION,
                poem::http::HeaderValue::from_static("close"),
            );
        }
        return Ok(resp);
    }
    // Read and drop a moderately oversized body, so the client is done sending and
    // reliably reads the 413 instead of a broken pipe.
    if declared.is_none_or(|len| len <= DRAIN_LIMIT_BYTES) {
        drain(Box::pin(req.take_body().into_bytes_stream())).await;
    }
    if req.uri().path().starts_with("/api/") {
        return Err(poem::Error::from_string(
            if upload {
                format!(
                    "the component is larger than {limit} bytes ({} MiB), the most this Kassa \
                     accepts (setting plugins_max_component_mib)",
                    limit / (1024 * 1024)
                )
            } else {
                format!("the request body is larger than {limit} bytes")
            },
            StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    if req.uri().path().starts_with("/dashboard/") {
        return Ok(kassa_dashboard::too_large(&req, limit));
    }
    Ok(kassa_web::too_large(&req))
}

/// A chunked upload passed on as it arrives, cut one byte past `limit`. Its reader
/// finds the end after the cut only once the rest of the body has been read and
/// dropped ([`drain`]): a handler that refuses it answers a client that is done sending,
/// which then reads the 413, where an unread rest would have the connection reset and
/// the answer lost with it.
fn cut_past(body: Body, limit: usize) -> Body {
    use futures::StreamExt;
    let chunks = Box::pin(body.into_bytes_stream());
    let stream = futures::stream::unfold(Some((chunks, 0usize)), move |state| async move {
        let (mut chunks, passed) = state?;
        if passed > limit {
            drain(chunks).await;
            return None;
        }
        match chunks.next().await? {
            Ok(mut chunk) => {
                chunk.truncate(limit + 1 - passed);
                let passed = passed + chunk.len();
                Some((Ok(chunk), Some((chunks, passed))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_bytes_stream(stream)
}

/// A request body as its handler reads it, and what the handler leaves of it.
type Chunks<S> = Arc<std::sync::Mutex<Option<std::pin::Pin<Box<S>>>>>;

/// The rest of a body its handler did not read to the end.
struct Unread<S>(Chunks<S>);

/// `chunks` as a body for the handler, and a handle on what it leaves unread: a
/// connection closed over unread data is reset, and the client, still sending, loses
/// the answer with it (a 401, 403 or 422 that came before the body).
fn unread<S>(chunks: S) -> (Body, Unread<S>)
where
    S: futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
{
    let shared: Chunks<S> = Arc::new(std::sync::Mutex::new(Some(Box::pin(chunks))));
    let read = Arc::clone(&shared);
    let body = futures::stream::poll_fn(move |cx| {
        let mut chunks = read.lock().unwrap_or_else(|e| e.into_inner());
        let Some(stream) = chunks.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let next = stream.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(None) = next {
            *chunks = None;
        }
        next
    });
    (Body::from_bytes_stream(body), Unread(shared))
}

impl<S> Unread<S>
where
    S: futures::Stream<Item = Result<bytes::Bytes, std::io::Error>>,
{
    /// Reads and drops the rest, if the handler left any ([`drain`]'s bounds).
    async fn drain(self) {
        let rest = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rest) = rest {
            drain(rest).await;
        }
    }
}

/// Reads and drops what is left of a refused body: at most [`DRAIN_LIMIT_BYTES`], for
/// at most [`DRAIN_TIME`], so a client sending more or slower is cut off instead.
async fn drain<B: AsRef<[u8]>, E>(mut chunks: impl futures::Stream<Item = Result<B, E>> + Unpin) {
    use futures::StreamExt;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut drained = 0usize;
        while let Some(Ok(chunk)) = chunks.next().await {
            drained += chunk.as_ref().len();
            if drained > DRAIN_LIMIT_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Kassa has no icon of its own (a store's logo is on its pages): browsers asking for
/// one get an empty answer, not a 404 in their console.
#[handler]
fn no_favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// An address no route serves, outside the API: a page saying so, in the reader's
/// language, as a customer following a wrong link expects (the API's, and anything
/// else, stay problem+json).
async fn page_not_found<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    // The reader's language, read before the request is handed on; never for the API.
    let lang =
        (!req.uri().path().starts_with("/api/")).then(|| kassa_web::page::pick_locale(None, &req));
    match (next.call(req).await, lang) {
        (Err(e), Some(lang)) if e.status() == StatusCode::NOT_FOUND => {
            Ok(kassa_web::page::error_page(
                StatusCode::NOT_FOUND,
                None,
                lang,
                "not_found_title",
                "not_found",
            ))
        }
        (answered, _) => answered.map(IntoResponse::into_response),
    }
}

/// The client's address: the peer's, or, when the peer is one of the trusted proxies,
/// the nearest address in `X-Forwarded-For` that is not (each proxy appends the
/// address it was reached from, so entries left of an untrusted one may be forged).
fn client_addr(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded = req.headers().get_all("x-forwarded-for").iter();
    let hops: Option<Vec<IpAddr>> = forwarded
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|hop| hop.trim().parse().ok())
        .collect();
    let Some(hops) = hops else {
        // An entry that is not an address: believe nothing the proxies relayed.
        return Some(peer);
    };
    let first_untrusted = hops.iter().rev().find(|ip| !is_trusted(ip));
    Some(first_untrusted.or(hops.first()).copied().unwrap_or(peer))
}

/// A bound, not yet running server.
pub struct Server {
    acceptor: poem::listener::TcpAcceptor,
    pub local_addr: SocketAddr,
    trusted_proxies: Vec<IpNet>,
    metrics: MetricsAccess,
    max_in_flight: usize,
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
            trusted_proxies: Vec::new(),
            metrics: MetricsAccess { token: None },
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// Serves at most `max` requests at once; more get a 503 with `Retry-After` (at
    /// least one is always served).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// Believes `X-Forwarded-For` from these proxies (see [`client_addr`]).
    pub fn trust_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Opens `/metrics` to scrapes that send `Authorization: Bearer <token>`.
    pub fn with_metrics_token(mut self, token: Option<SecretString>) -> Self {
        self.metrics = MetricsAccess { token };
        self
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish (open
    /// streams end at once).
    pub async fn run(
        self,
        ctx: ApiContext,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let app = app_with(
            ctx,
            self.metrics,
            self.trusted_proxies,
            self.max_in_flight,
            stopping,
        );
        let shutdown = async move {
            shutdown.await;
            stop.send_replace(true);
        };
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(20)))
            .await
    }
}
