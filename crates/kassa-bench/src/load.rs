//! The load generator: a closed loop (N clients, each sending its next request when
//! the last one answered: saturation) and an open loop (requests started on a fixed
//! schedule whatever the answers: a fixed offered load). Latency in the open loop is
//! measured from the request's scheduled time, so a server that stalls is charged for
//! the requests that queued behind the stall (no coordinated omission).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a request answered with 503 reports: Kassa shed it (its in-flight limit,
/// `http_max_in_flight`), which is counted apart from errors.
pub const SHED: &str = "503: shed by Kassa's in-flight limit";

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub ok: u64,
    pub errors: u64,
    /// Requests answered 503 (shed), not counted in `errors` nor in the latencies.
    pub shed: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Run {
    pub fn new(
        mut latencies: Vec<Duration>,
        errors: u64,
        shed: u64,
        first_error: Option<String>,
        elapsed: Duration,
    ) -> Self {
        latencies.sort_unstable();
        let ok = latencies.len() as u64;
        let seconds = elapsed.as_secs_f64();
        Self {
            ok,
            errors,
            shed,
            first_error,
            seconds,
            per_second: if seconds > 0.0 {
                ok as f64 / seconds
            } else {
                0.0
            },
            p50_ms: percentile_ms(&latencies, 0.50),
            p99_ms: percentile_ms(&latencies, 0.99),
            max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        }
    }
}

/// The `q` quantile of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// What each request reports: `Ok` or a short reason.
pub type Outcome = Result<(), String>;

struct Tally {
    latencies: std::sync::Mutex<Vec<Duration>>,
    errors: AtomicU64,
    shed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            latencies: std::sync::Mutex::new(Vec::new()),
            errors: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            first_error: std::sync::Mutex::new(None),
        })
    }

    fn record(&self, outcome: Outcome, took: Duration) {
        match outcome {
            Ok(()) => self.latencies.lock().expect("tally").push(took),
            Err(e) if e == SHED => {
                self.shed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().expect("tally").get_or_insert(e);
            }
        }
    }

    fn finish(&self, elapsed: Duration) -> Run {
        let latencies = std::mem::take(&mut *self.latencies.lock().expect("tally"));
        let first = self.first_error.lock().expect("tally").take();
        Run::new(
            latencies,
            self.errors.load(Ordering::Relaxed),
            self.shed.load(Ordering::Relaxed),
            first,
            elapsed,
        )
    }
}

/// `clients` loops, each calling `call(n)` again as soon as the last call returned,
/// for `duration`.
pub async fn closed_loop<F, Fut>(clients: usize, duration: Duration, call: F) -> Run
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let tally = Tally::new();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (call, tally, next) = (call.clone(), tally.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let outcome = call(n).await;
                tally.record(outcome, t.elapsed());
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    tally.finish(start.elapsed())
}

/// `rate` calls a second on a fixed schedule for `duration`; each call's latency
/// counts from its scheduled start. At most `max_in_flight` run at once (more are
/// counted as errors: the server is too slow for this load).
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, max_in_flight: usize, call: F) -> Run
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let tally = Tally::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let start = Instant::now();
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tally.record(Err("too many requests in flight".into()), Duration::ZERO);
            continue;
        };
        let (call, tally) = (call.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = call(n).await;
            tally.record(outcome, due.elapsed());
            drop(slot);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    tally.finish(start.elapsed())
}
