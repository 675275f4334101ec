//! `kassa-bench`: measures the release `kassa serve` from outside, on SQLite and on
//! PostgreSQL, and prints each figure next to a baseline measured in the same run
//! (a bare poem handler for HTTP, an order's inserts run directly for the database)
//! and the target it must meet. It builds nothing: build `kassa` first
//! (`cargo build --release -p kassa`). See `docs/benchmarks.md`.

mod baseline;
mod kassa;
mod load;
mod receiver;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;

use crate::kassa::Kassa;
use crate::load::Run;

#[derive(Parser, Debug)]
#[command(about = "Loads the release `kassa serve` on SQLite and PostgreSQL and prints numbers")]
struct Args {
    /// The `kassa` binary to run.
    #[arg(long, default_value = "target/release/kassa")]
    kassa: PathBuf,
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    backend: String,
    /// A PostgreSQL server to use (`postgres://user@host:port/db`); each run creates its
    /// own database there. Without it a throwaway server is started (initdb, pg_ctl).
    #[arg(long)]
    postgres_url: Option<String>,
    /// How long each load phase runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent clients for the saturation phases.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Offered load of the fixed-load phases, requests a second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Payments a second in the paid → delivered phases.
    #[arg(long, default_value_t = 100.0)]
    paid_rate: f64,
    /// Orders a second placed through the API in the mixed phase, while payments are
    /// recorded at `--paid-rate`.
    #[arg(long, default_value_t = 200.0)]
    mixed_rate: f64,
    /// Orders made in the webhook burst phase (at most 8 s of them) while the receiver
    /// holds its requests; their `order.created` then drain to it.
    #[arg(long, default_value_t = 2000)]
    webhook_burst: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only the orders through the API (saturation, then the offered rate) besides the
    /// baselines: for profiling `kassa serve` under that load alone.
    #[arg(long)]
    api_only: bool,
    /// Only the orders through the checkout page's Continue (saturation, then the
    /// offered rate) besides the baselines: for profiling that load alone.
    #[arg(long, conflicts_with = "api_only")]
    checkout_only: bool,
}

/// One figure of the report.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    backend: String,
    what: String,
    value: String,
    baseline: Option<String>,
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<Run>,
}

#[derive(Default)]
struct Report(Vec<Figure>);

impl Report {
    fn add(
        &mut self,
        backend: &str,
        what: &str,
        value: String,
        baseline: Option<String>,
        target: Option<&str>,
        run: Option<Run>,
    ) {
        let f = Figure {
            backend: backend.to_owned(),
            what: what.to_owned(),
            value,
            baseline,
            target: target.map(str::to_owned),
            run,
        };
        eprintln!("  {:<10} {:<44} {}", f.backend, f.what, f.value);
        self.0.push(f);
    }

    fn print(&self) {
        println!();
        println!("| backend | what | Kassa | baseline | target |");
        println!("|---|---|---|---|---|");
        for f in &self.0 {
            println!(
                "| {} | {} | {} | {} | {} |",
                f.backend,
                f.what,
                f.value,
                f.baseline.as_deref().unwrap_or(""),
                f.target.as_deref().unwrap_or("")
            );
        }
    }
}

/// `1234/s, p50 1.2 ms, p99 9.9 ms` (and the errors, if any).
fn describe(run: &Run) -> String {
    let mut s = format!(
        "{:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
        run.per_second, run.p50_ms, run.p99_ms
    );
    if run.shed > 0 {
        s.push_str(&format!(" ({} shed with 503 busy)", run.shed));
    }
    if run.errors > 0 {
        s.push_str(&format!(
            " ({} errors: {})",
            run.errors,
            run.first_error.as_deref().unwrap_or("?")
        ));
    }
    s
}

/// Highest resident memory seen while `sampling` is set.
struct RssPeak {
    peak: Arc<Mutex<f64>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl RssPeak {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(Mutex::new(0.0f64));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(mb) = kassa::rss_mb(pid) {
                    let mut p = p.lock().expect("rss");
                    *p = p.max(mb);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { peak, stop }
    }

    fn finish(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        *self.peak.lock().expect("rss")
    }
}

/// The merchant's side of the bench: a store with a webhook endpoint to the receiver,
/// a pool with keys, and a product delivered from it.
struct Shop {
    http: reqwest::Client,
    base: String,
    key: String,
    product: String,
}

impl Shop {
    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let r = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn open(base: &str, key: &str, hook: &str, keys: usize) -> anyhow::Result<Self> {
        let mut shop = Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(1024)
                .build()?,
            base: base.to_owned(),
            key: key.to_owned(),
            product: String::new(),
        };
        shop.post("/webhook-endpoints", serde_json::json!({"url": hook}))
            .await?;
        let pool = shop
            .post("/license-pools", serde_json::json!({"name": "Bench keys"}))
            .await?;
        let pool = pool["id"].as_str().context("pool id")?.to_owned();
        let run = ulid::Ulid::new();
        for chunk in (0..keys).collect::<Vec<_>>().chunks(5_000) {
            let batch: Vec<String> = chunk
                .iter()
                .map(|n| format!("BENCH-{run}-{n:06}"))
                .collect();
            shop.post(
                &format!("/license-pools/{pool}/keys"),
                serde_json::json!({"keys": batch}),
            )
            .await?;
        }
        let product = shop
            .post(
                "/products",
                serde_json::json!({
                    "name": "Bench Pro",
                    "prices": [{"currency": "USD", "amount": 1999}],
                    "delivery": {"method": "license_pool", "pool_id": pool},
                }),
            )
            .await?;
        shop.product = product["id"].as_str().context("product id")?.to_owned();
        Ok(shop)
    }
}

/// `POST /api/v1/orders`, one line, bank transfer; the new order's id.
async fn api_order(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    product: &str,
    n: u64,
) -> Result<String, String> {
    let body = serde_json::json!({
        "lines": [{"product_id": product, "quantity": 1}],
        "currency": "USD",
        "customer": {"email": format!("buyer{n}@bench.test"), "name": "Bench Buyer"},
        "consents": {"terms": true, "personal_data": true},
        "payment_method": "bank_transfer",
    });
    let r = http
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Err(load::SHED.to_owned());
    }
    let text = r.text().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::CREATED && status != reqwest::StatusCode::OK {
        return Err(format!(
            "{status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no id".to_owned())
}

/// The checkout page's Continue, as a browser without a cart sends it from a buy
/// link's page: a fresh cart and an order, answered by a redirect to the payment page.
async fn checkout_order(
    http: &reqwest::Client,
    base: &str,
    product: &str,
    n: u64,
) -> Result<(), String> {
    let csrf = format!("bench{n:012}");
    let link = format!("/bench/buy/{product}?");
    let email = format!("shopper{n}@bench.test");
    let form = [
        ("csrf", csrf.as_str()),
        ("link", link.as_str()),
        ("email", email.as_str()),
        ("name", "Bench Shopper"),
        ("payment_method", "bank_transfer"),
        ("consent_terms", "yes"),
        ("consent_personal_data", "yes"),
        ("action", "continue"),
    ];
    let r = http
        .post(format!("{base}/bench/checkout"))
        .header("cookie", format!("kassa_csrf={csrf}"))
        .form(&form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let to = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("");
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Err(load::SHED.to_owned());
    }
    if status != reqwest::StatusCode::SEE_OTHER || !to.ends_with("/pay") {
        return Err(format!("{status} to {to:?}"));
    }
    Ok(())
}

/// One backend's whole run.
async fn bench_backend(
    args: &Args,
    backend: &str,
    db_url: &str,
    work: &std::path::Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let b = backend;
    let secs = args.duration;
    let target_create = if backend == "sqlite" {
        "≥ 3,000/s"
    } else {
        "≥ 1,000/s"
    };
    eprintln!("== {backend}: kassa migrate, tenant create");
    let key = kassa::prepare(&args.kassa, db_url)?;
    let log = work.join(format!("kassa-{backend}.log"));
    let kassa = Kassa::start(&args.kassa, db_url, &log).await?;
    report.add(
        b,
        "cold start to /readyz",
        format!("{:.0} ms", kassa.cold_start.as_secs_f64() * 1e3),
        None,
        Some("< 1 s"),
        None,
    );

    let (hook, seen, gate) = receiver::start().await?;
    let paid_orders = (args.paid_rate * secs.as_secs_f64()).ceil() as usize;
    // Keys for the paid phase and the mixed phase.
    let shop = Shop::open(&kassa.base, &key, &hook, 2 * paid_orders + 100).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.add(
        b,
        "RSS idle",
        format!("{:.0} MB", kassa.rss_mb()),
        None,
        None,
        None,
    );
    let rss = RssPeak::start(kassa.pid());

    // Webhook throughput alone: a backlog to one endpoint, drained.
    let burst = if args.api_only || args.checkout_only {
        0
    } else {
        eprintln!(
            "== {backend}: webhook burst, up to {} order.created held, then drained",
            args.webhook_burst
        );
        let (burst, burst_rate) =
            webhook_burst(&shop, &seen, &gate, args.webhook_burst, args.clients).await;
        report.add(
            b,
            "webhook deliveries, a backlog to one endpoint drained",
            format!("{burst_rate:.0}/s ({burst} messages)"),
            None,
            Some("≥ 1,000/s"),
            None,
        );
        burst
    };

    // Orders through the API.
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = format!("{}/api/v1/orders", kassa.base);
    let api = {
        let (http, url, key, product, created) = (
            shop.http.clone(),
            url.clone(),
            key.clone(),
            shop.product.clone(),
            created.clone(),
        );
        move |n: u64| {
            let (http, url, key, product, created) = (
                http.clone(),
                url.clone(),
                key.clone(),
                product.clone(),
                created.clone(),
            );
            async move {
                let id = api_order(&http, &url, &key, &product, n).await?;
                created.lock().expect("ids").push(id);
                Ok(())
            }
        }
    };
    let webhooks_from = Instant::now();
    let api_during_mixed = api.clone();
    if !args.checkout_only {
        eprintln!(
            "== {backend}: POST /api/v1/orders, {} clients",
            args.clients
        );
        let sat = load::closed_loop(args.clients, secs, api.clone()).await;
        report.add(
            b,
            &format!("API orders, {} clients (saturation)", args.clients),
            describe(&sat),
            None,
            Some(target_create),
            Some(sat),
        );
        let fixed = load::open_loop(args.rate, secs, 4096, move |n| api(1_000_000 + n)).await;
        report.add(
            b,
            &format!("API orders, offered {:.0}/s", args.rate),
            describe(&fixed),
            None,
            Some("p99 < 50 ms at 500/s"),
            Some(fixed),
        );
    }
    if args.api_only {
        kassa.stop();
        return Ok(());
    }

    // Orders through the checkout page.
    let checkout = {
        let (http, base, product) = (shop.http.clone(), kassa.base.clone(), shop.product.clone());
        move |n: u64| {
            let (http, base, product) = (http.clone(), base.clone(), product.clone());
            async move { checkout_order(&http, &base, &product, n).await }
        }
    };
    eprintln!("== {backend}: checkout Continue");
    let sat = load::closed_loop(args.clients, secs, checkout.clone()).await;
    report.add(
        b,
        &format!("checkout orders, {} clients (saturation)", args.clients),
        describe(&sat),
        None,
        Some(target_create),
        Some(sat.clone()),
    );
    let fixed = load::open_loop(args.rate, secs, 4096, move |n| checkout(2_000_000 + n)).await;
    let checkout_ok = sat.ok + fixed.ok;
    report.add(
        b,
        &format!("checkout orders, offered {:.0}/s", args.rate),
        describe(&fixed),
        None,
        Some("p99 < 50 ms at 500/s"),
        Some(fixed),
    );
    if args.checkout_only {
        kassa.stop();
        return Ok(());
    }

    // Every order made so far sends `order.created` to the receiver: how fast they drain.
    let expected = burst + created.lock().expect("ids").len() + checkout_ok as usize;
    eprintln!("== {backend}: waiting for the order.created webhooks");
    let drained = wait_for(&seen, "order.created", expected, Duration::from_secs(180)).await;
    let arrivals: Vec<Instant> = receiver::arrivals(&seen, "order.created")
        .into_iter()
        .filter(|at| *at >= webhooks_from)
        .collect();
    if let Some(last) = arrivals.iter().max() {
        let n = arrivals.len();
        let rate = n as f64 / last.duration_since(webhooks_from).as_secs_f64();
        report.add(
            b,
            "webhook deliveries (order.created, during and after the order phases)",
            format!(
                "{rate:.0}/s ({n} messages{})",
                if drained { "" } else { ", not all arrived" }
            ),
            None,
            Some("≥ 1,000/s"),
            None,
        );
    }

    // Paid → product.delivered at the receiver, nothing else going on.
    let to_pay: Vec<String> = created
        .lock()
        .expect("ids")
        .iter()
        .take(paid_orders)
        .cloned()
        .collect();
    eprintln!(
        "== {backend}: paying {} orders at {:.0}/s",
        to_pay.len(),
        args.paid_rate
    );
    let (paying, paid) = pay(&shop, to_pay, args.paid_rate).await;
    let e2e = delivered_after(&seen, &paid).await;
    add_paid(
        report,
        b,
        &format!("{:.0} payments/s", args.paid_rate),
        paying,
        &e2e,
        paid.len(),
    );

    // The same while orders are placed: their order.created webhooks compete with the
    // paid orders' deliveries, emails and webhooks.
    let to_pay: Vec<String> = created
        .lock()
        .expect("ids")
        .iter()
        .skip(paid_orders)
        .take(paid_orders)
        .cloned()
        .collect();
    eprintln!(
        "== {backend}: mixed: orders at {:.0}/s, paying {} orders at {:.0}/s",
        args.mixed_rate,
        to_pay.len(),
        args.paid_rate
    );
    let placing = load::open_loop(args.mixed_rate, secs, 4096, move |n| {
        api_during_mixed(3_000_000 + n)
    });
    let (placed, (paying, paid)) = tokio::join!(placing, pay(&shop, to_pay, args.paid_rate));
    report.add(
        b,
        &format!(
            "mixed: API orders offered {:.0}/s during payments",
            args.mixed_rate
        ),
        describe(&placed),
        None,
        None,
        Some(placed),
    );
    let e2e = delivered_after(&seen, &paid).await;
    add_paid(
        report,
        b,
        &format!(
            "{:.0} payments/s + {:.0} orders/s (mixed)",
            args.paid_rate, args.mixed_rate
        ),
        paying,
        &e2e,
        paid.len(),
    );
    report.add(
        b,
        "RSS peak under load",
        format!("{:.0} MB", rss.finish()),
        None,
        Some("< 150 MB"),
        None,
    );
    kassa.stop();
    Ok(())
}

/// Waits until `kind` arrived `n` times; false on timeout.
async fn wait_for(seen: &receiver::Shared, kind: &str, n: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while receiver::count(seen, kind) < n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Records a payment (bank transfer) for each of `orders` at `rate` a second; returns
/// the run and when each order was paid.
async fn pay(shop: &Shop, orders: Vec<String>, rate: f64) -> (Run, Vec<(String, Instant)>) {
    let orders = Arc::new(orders);
    let paid_at = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let call = {
        let (http, base, key, orders, paid_at) = (
            shop.http.clone(),
            shop.base.clone(),
            shop.key.clone(),
            orders.clone(),
            paid_at.clone(),
        );
        move |n: u64| {
            let (http, base, key, orders, paid_at) = (
                http.clone(),
                base.clone(),
                key.clone(),
                orders.clone(),
                paid_at.clone(),
            );
            async move {
                let Some(id) = orders.get(n as usize) else {
                    return Err("no order left to pay".into());
                };
                let at = Instant::now();
                let r = http
                    .post(format!("{base}/api/v1/orders/{id}/payments"))
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"method": "bank_transfer", "amount": 1999, "currency": "USD"}))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ));
                }
                paid_at.lock().expect("paid").push((id.clone(), at));
                Ok(())
            }
        }
    };
    let run = load::open_loop(
        rate,
        Duration::from_secs_f64(orders.len() as f64 / rate),
        4096,
        call,
    )
    .await;
    let paid = std::mem::take(&mut *paid_at.lock().expect("paid"));
    (run, paid)
}

/// Waits (up to 2 minutes) for each paid order's `product.delivered` at the receiver;
/// the times from payment to arrival, sorted.
async fn delivered_after(seen: &receiver::Shared, paid: &[(String, Instant)]) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = {
            let seen = seen.lock().expect("receiver");
            paid.iter()
                .filter(|(id, _)| seen.delivered.contains_key(id))
                .count()
        };
        if got == paid.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().expect("receiver");
    let mut e2e: Vec<Duration> = paid
        .iter()
        .filter_map(|(id, at)| seen.delivered.get(id).map(|d| d.duration_since(*at)))
        .collect();
    e2e.sort_unstable();
    e2e
}

/// The payments' run and paid → `product.delivered` at the receiver, under `load`.
fn add_paid(report: &mut Report, b: &str, load: &str, paying: Run, e2e: &[Duration], paid: usize) {
    report.add(
        b,
        &format!("record payment, {load}"),
        describe(&paying),
        None,
        None,
        Some(paying),
    );
    report.add(
        b,
        &format!("paid → product.delivered received, {load}"),
        describe_e2e(e2e, paid),
        None,
        Some("p99 < 2 s at 100/s"),
        None,
    );
}

/// `p50 …, p99 … (n of m delivered)`.
fn describe_e2e(e2e: &[Duration], paid: usize) -> String {
    format!(
        "p50 {:.0} ms, p99 {:.0} ms ({} of {} delivered)",
        load::percentile_ms(e2e, 0.5),
        load::percentile_ms(e2e, 0.99),
        e2e.len(),
        paid
    )
}

/// A backlog of `order.created` webhooks to the one endpoint, built while the receiver
/// holds its requests (at most `n` orders, made for at most 8 s so no held request
/// reaches Kassa's 15 s timeout), then let go: deliveries a second from the gate's
/// opening to the last arrival. Returns the orders made and that rate.
async fn webhook_burst(
    shop: &Shop,
    seen: &receiver::Shared,
    gate: &receiver::Gate,
    n: usize,
    clients: usize,
) -> (usize, f64) {
    let before = receiver::count(seen, "order.created");
    gate.send_replace(false);
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(8);
    let url = format!("{}/api/v1/orders", shop.base);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, key, product, made) = (
            shop.http.clone(),
            url.clone(),
            shop.key.clone(),
            shop.product.clone(),
            made.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let k = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= n {
                    made.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
                if api_order(&http, &url, &key, &product, 5_000_000 + k as u64)
                    .await
                    .is_err()
                {
                    made.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let made = made.load(std::sync::atomic::Ordering::Relaxed);
    let opened = Instant::now();
    gate.send_replace(true);
    wait_for(
        seen,
        "order.created",
        before + made,
        Duration::from_secs(120),
    )
    .await;
    let arrivals = receiver::arrivals(seen, "order.created");
    let rate = match arrivals.iter().max() {
        Some(last) if arrivals.len() > before => {
            (arrivals.len() - before) as f64 / last.duration_since(opened).as_secs_f64()
        }
        _ => 0.0,
    };
    (made, rate)
}

/// Puts each backend's baseline next to its figures.
fn attach_baselines(report: &mut Report, http_sat: &Run, http_fixed: &Run, db: &[(String, Run)]) {
    for f in &mut report.0 {
        let db_run = db.iter().find(|(b, _)| *b == f.backend).map(|(_, r)| r);
        if f.what.contains("saturation") {
            f.baseline = Some(format!(
                "bare poem {:.0}/s; DB inserts {}",
                http_sat.per_second,
                db_run.map_or("-".into(), |r| format!(
                    "{:.0} tx/s, p99 {:.1} ms",
                    r.per_second, r.p99_ms
                ))
            ));
        } else if f.what.contains("offered") && f.what.contains("orders") {
            f.baseline = Some(format!(
                "bare poem p50 {:.1} ms, p99 {:.1} ms",
                http_fixed.p50_ms, http_fixed.p99_ms
            ));
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.kassa.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release -p kassa`",
            args.kassa.display()
        );
    }
    let work = std::env::temp_dir().join(format!("kassa-bench-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&work)?;
    eprintln!("kassa-bench: working in {}", work.display());
    let mut report = Report::default();

    eprintln!("== baseline: bare poem handler");
    let bare = baseline::start_bare_server()?;
    let http = reqwest::Client::new();
    let call = {
        let (http, bare) = (http.clone(), bare.clone());
        move |n: u64| {
            let (http, bare) = (http.clone(), bare.clone());
            async move {
                let body =
                    serde_json::json!({"lines": [{"product_id": "prd_x", "quantity": n % 3 + 1}]});
                let r = http
                    .post(&bare)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                r.bytes().await.map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    };
    let http_sat = load::closed_loop(args.clients, args.duration, call.clone()).await;
    report.add(
        "-",
        &format!("bare poem handler, {} clients", args.clients),
        describe(&http_sat),
        None,
        None,
        Some(http_sat.clone()),
    );
    let http_fixed = load::open_loop(args.rate, args.duration, 4096, call).await;
    report.add(
        "-",
        &format!("bare poem handler, offered {:.0}/s", args.rate),
        describe(&http_fixed),
        None,
        None,
        Some(http_fixed.clone()),
    );

    let mut db = Vec::new();
    let backends: Vec<&str> = match args.backend.as_str() {
        "both" => vec!["sqlite", "postgres"],
        "sqlite" => vec!["sqlite"],
        "postgres" => vec!["postgres"],
        other => bail!("--backend must be sqlite, postgres or both, not {other}"),
    };
    let mut throwaway = None;
    for backend in backends {
        let run_id = ulid::Ulid::new().to_string().to_lowercase();
        let (db_url, baseline_url) = if backend == "sqlite" {
            (
                format!("sqlite://{}", work.join("kassa.db").display()),
                None,
            )
        } else {
            let server = match &args.postgres_url {
                Some(url) => url.clone(),
                None => {
                    eprintln!(
                        "== starting a throwaway PostgreSQL under {}",
                        work.display()
                    );
                    let pg = kassa::Postgres::start(&work)?;
                    let url = pg.url.clone();
                    throwaway = Some(pg);
                    url
                }
            };
            (
                kassa::fresh_database(&server, &format!("kassa_bench_{run_id}")).await?,
                Some(kassa::fresh_database(&server, &format!("kassa_baseline_{run_id}")).await?),
            )
        };
        eprintln!(
            "== baseline: an order's 4 inserts directly on {backend}, {} clients",
            args.clients
        );
        let base = match &baseline_url {
            None => baseline::sqlite_inserts(&work, args.clients, args.duration).await?,
            Some(url) => baseline::postgres_inserts(url, args.clients, args.duration).await?,
        };
        report.add(
            backend,
            &format!("DB baseline: 4 inserts per tx, {} clients", args.clients),
            describe(&base),
            None,
            None,
            Some(base.clone()),
        );
        db.push((backend.to_owned(), base));
        bench_backend(&args, backend, &db_url, &work, &mut report).await?;
    }
    drop(throwaway);
    attach_baselines(&mut report, &http_sat, &http_fixed, &db);
    report.print();
    let json = serde_json::to_string_pretty(&report.0)?;
    match &args.json {
        Some(path) => std::fs::write(path, json)?,
        None => println!("\n{json}"),
    }
    println!("\nPlugin overhead: cargo run --release -p kassa-plugins --example plugin-bench");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
