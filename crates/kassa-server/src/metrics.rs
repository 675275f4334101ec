//! `/metrics`: what the process counted, in Prometheus's text format.
//!
//! Counters and histograms are recorded where things happen, through the `metrics`
//! facade (`kassa_orders_placed_total` in `kassa-orders`, webhook attempts and
//! deliveries in `kassa-jobs`, requests in `request_log`); this module installs the
//! one recorder (`metrics-exporter-prometheus`, without its own HTTP listener) and, at
//! each scrape, reads the gauges that live in the database (job queues) and the pool.
//!
//! The page is closed unless the operator sets `metrics_token`; then a scrape must send
//! `Authorization: Bearer <token>`. Labels never carry a store, an order or an address:
//! what is counted is the whole node's.

use std::sync::OnceLock;

use kassa_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};
use secrecy::{ExposeSecret, SecretString};

/// Latency buckets, in seconds, for every `*_seconds` histogram.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (once per process: tests start
/// several servers in one process, and they share it).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        handle
    })
}

/// Who may read `/metrics`.
#[derive(Clone)]
pub struct MetricsAccess {
    /// `None`: nobody (the page answers 404).
    pub token: Option<SecretString>,
}

#[handler]
pub(crate) async fn scrape(
    req: &Request,
    Data(access): Data<&MetricsAccess>,
    Data(store): Data<&Store>,
) -> Response {
    let Some(token) = &access.token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sent = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !kassa_domain::secret::same(token.expose_secret(), sent) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Bearer")
            .finish();
    }
    let handle = install();
    read_gauges(store).await;
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// The gauges kept outside the process's counters: the job queues and the pool.
async fn read_gauges(store: &Store) {
    match store.job_queues().await {
        Ok(queues) => {
            for q in queues {
                let queue = q
                    .queue
                    .strip_prefix("kassa::")
                    .unwrap_or(&q.queue)
                    .to_owned();
                ::metrics::gauge!("kassa_jobs_due", "queue" => queue.clone()).set(q.due as f64);
                ::metrics::gauge!("kassa_jobs_scheduled", "queue" => queue.clone())
                    .set(q.scheduled as f64);
                ::metrics::gauge!("kassa_jobs_running", "queue" => queue.clone())
                    .set(q.running as f64);
                ::metrics::gauge!("kassa_jobs_oldest_due_seconds", "queue" => queue)
                    .set(q.oldest_due_seconds);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading the job queues for /metrics"),
    }
    for pool in store.pool_use() {
        // The pool's size and idle count are read one after the other: a connection
        // opened or closed between the two can make idle exceed size for a moment.
        ::metrics::gauge!("kassa_db_pool_connections", "pool" => pool.name, "state" => "in_use")
            .set(f64::from(pool.size.saturating_sub(pool.idle)));
        ::metrics::gauge!("kassa_db_pool_connections", "pool" => pool.name, "state" => "idle")
            .set(f64::from(pool.idle));
        ::metrics::gauge!("kassa_db_pool_max_connections", "pool" => pool.name)
            .set(f64::from(pool.max));
    }
}
