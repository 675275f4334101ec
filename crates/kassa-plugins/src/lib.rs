//! The WebAssembly plugin host: runs a merchant's fulfillment component (the
//! `kassa:plugin/fulfillment` world in `plugins/wit/`) in wasmtime, sandboxed.
//!
//! Every call gets a fuel budget, a wall-clock deadline (epoch interruption), a memory
//! cap, and capped input, output and logs; the component sees no filesystem, sockets or
//! environment (an empty WASI context), only the host functions of the world:
//! `http-fetch` (the plugin's allow-listed hosts, HTTPS unless plain HTTP is allowed,
//! never private addresses unless the operator allows them), `secret`, `log` and
//! `take-pool-keys`. A trap, a timeout or a limit fails that one call with a reason the
//! merchant can read; the host goes on. Components are compiled once and kept ready to
//! instantiate (`InstancePre`), on the pooling allocator.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_domain::Secret;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit",
        world: "fulfillment",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::kassa::plugin::host::Host;
pub use bindings::kassa::plugin::types::{Customer, FulfillError, Request};
use bindings::kassa::plugin::types::{HttpRequest, HttpResponse};
use bindings::{Fulfillment, FulfillmentPre};

/// The limits of one call.
pub mod limits {
    use std::time::Duration;

    /// Instructions, roughly: enough for real work, not for a loop without end.
    pub const FUEL: u64 = 2_000_000_000;
    /// The wall-clock deadline of one call.
    pub const DEADLINE: Duration = Duration::from_secs(5);
    /// Linear memory of one instance.
    pub const MEMORY_BYTES: usize = 64 * 1024 * 1024;
    /// The largest component accepted.
    pub const COMPONENT_BYTES: usize = 16 * 1024 * 1024;
    /// At most this many licenses, and this many bytes in all, per call.
    pub const MAX_LICENSES: usize = 1_000;
    pub const OUTPUT_BYTES: usize = 1024 * 1024;
    /// Log lines kept per call, and their length.
    pub const LOG_LINES: usize = 100;
    pub const LOG_LINE_BYTES: usize = 1_000;
    /// `http-fetch`: calls per call, timeout, and the largest response body read.
    pub const FETCHES: u32 = 10;
    pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
    pub const FETCH_BODY_BYTES: usize = 1024 * 1024;
    /// How often the epoch advances.
    pub const TICK: Duration = Duration::from_millis(10);
}

/// Why a plugin cannot be used or a call did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The upload is not a component for Kassa's world.
    #[error("{0}")]
    Invalid(String),
    /// The call failed; `retryable` says whether trying again may help.
    #[error("{message}")]
    Failed { message: String, retryable: bool },
}

/// Takes keys from the store's pools for the line being delivered.
pub type PoolKeys = Arc<
    dyn Fn(String, u32) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send>>
        + Send
        + Sync,
>;

/// What a call may use besides the request.
#[derive(Clone)]
pub struct CallContext {
    pub secrets: HashMap<String, Secret>,
    /// Hosts `http-fetch` may reach, exactly as written (`api.example.com`).
    pub allowed_hosts: Vec<String>,
    pub pool_keys: PoolKeys,
}

/// What a call produced.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub result: Result<Vec<String>, PluginError>,
    pub logs: Vec<String>,
    /// The sandbox limit the call ran into, if it ran into one (a call may hit a limit
    /// and still succeed, e.g. when it logs more lines than are kept).
    pub limit: Option<Limit>,
}

/// A limit of the sandbox, as the merchant is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Fuel,
    Deadline,
    Memory,
    Output,
    Fetches,
    FetchBody,
    Logs,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Fuel => write!(f, "fuel ({} units of computation)", limits::FUEL),
            Limit::Deadline => write!(f, "time ({} s per call)", limits::DEADLINE.as_secs()),
            Limit::Memory => write!(f, "memory ({} MiB)", limits::MEMORY_BYTES / (1024 * 1024)),
            Limit::Output => write!(
                f,
                "output (1 to {} licenses, {} bytes in all)",
                limits::MAX_LICENSES,
                limits::OUTPUT_BYTES
            ),
            Limit::Fetches => write!(f, "http-fetch calls ({} per call)", limits::FETCHES),
            Limit::FetchBody => write!(
                f,
                "http-fetch response size ({} bytes)",
                limits::FETCH_BODY_BYTES
            ),
            Limit::Logs => write!(
                f,
                "log lines ({} per call, {} bytes each)",
                limits::LOG_LINES,
                limits::LOG_LINE_BYTES
            ),
        }
    }
}

/// A run on a sample order, as a test run shows it.
#[derive(Debug, Clone)]
pub struct TestRun {
    pub outcome: CallOutcome,
    pub duration_ms: i64,
}

/// The operator's settings for plugins.
#[derive(Debug, Clone, Copy)]
pub struct HostPolicy {
    /// Let `http-fetch` reach loopback and private addresses (development, tests).
    pub allow_private_network: bool,
    /// Let `http-fetch` use plain `http://`.
    pub allow_plain_http: bool,
}

/// A compiled plugin, ready to instantiate.
#[derive(Clone)]
pub struct Compiled(FulfillmentPre<State>);

/// The engine, the linker and the compiled components; one per process.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<State>,
    compiled: Mutex<HashMap<String, Compiled>>,
    http: reqwest::Client,
    policy: HostPolicy,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The state of one call.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    context: CallContext,
    logs: Vec<String>,
    fetches: u32,
    http: reqwest::Client,
    policy: HostPolicy,
    /// A limit a host function ran into.
    limit: Option<Limit>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::kassa::plugin::types::Host for State {}

impl Host for State {
    async fn http_fetch(&mut self, request: HttpRequest) -> Result<HttpResponse, String> {
        if self.fetches >= limits::FETCHES {
            self.limit = Some(Limit::Fetches);
            return Err(format!(
                "at most {} http-fetch calls per delivery",
                limits::FETCHES
            ));
        }
        self.fetches += 1;
        let url = url::Url::parse(&request.url).map_err(|e| format!("invalid URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.policy.allow_plain_http => {}
            other => return Err(format!("{other}:// is not allowed; use https://")),
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if !self
            .context
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
        {
            return Err(format!(
                "{host} is not on this plugin's list of allowed hosts"
            ));
        }
        kassa_webhooks::NetworkPolicy {
            allow_private: self.policy.allow_private_network,
        }
        .check_url(&url)
        .map_err(|blocked| format!("{host}: {blocked}"))?;
        let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("{:?} is not an HTTP method", request.method))?;
        let mut builder = self.http.request(method, url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut response = builder.body(request.body).send().await.map_err(|e| {
            format!(
                "the request failed: {}",
                kassa_webhooks::explain(&e, limits::FETCH_TIMEOUT)
            )
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the response: {e}"))?
        {
            if body.len() + chunk.len() > limits::FETCH_BODY_BYTES {
                self.limit = Some(Limit::FetchBody);
                return Err(format!(
                    "the response is larger than {} bytes",
                    limits::FETCH_BODY_BYTES
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    async fn secret(&mut self, name: String) -> Option<String> {
        self.context
            .secrets
            .get(&name)
            .map(|s| s.expose_secret().to_owned())
    }

    async fn log(&mut self, message: String) {
        if self.logs.len() >= limits::LOG_LINES {
            self.limit = Some(Limit::Logs);
        } else {
            let mut line = message;
            if line.len() > limits::LOG_LINE_BYTES {
                self.limit = Some(Limit::Logs);
                let mut cut = limits::LOG_LINE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            self.logs.push(line);
        }
    }

    async fn take_pool_keys(&mut self, pool_id: String, count: u32) -> Result<Vec<String>, String> {
        if count == 0 || count as usize > limits::MAX_LICENSES {
            return Err(format!(
                "count must be between 1 and {}",
                limits::MAX_LICENSES
            ));
        }
        (self.context.pool_keys)(pool_id, count).await
    }
}

impl PluginHost {
    pub fn new(policy: HostPolicy) -> Result<Self, String> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .total_core_instances(256)
            .total_memories(128)
            .total_tables(256)
            .total_stacks(64)
            .max_memory_size(limits::MEMORY_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| e.to_string())?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
        Fulfillment::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| e.to_string())?;
        // The epoch advances on its own thread; deadlines count its ticks.
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("kassa-plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(limits::TICK);
                }
            })
            .map_err(|e| e.to_string())?;
        let http = kassa_webhooks::guarded_client(
            kassa_webhooks::NetworkPolicy {
                allow_private: policy.allow_private_network,
            },
            limits::FETCH_TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            http,
            policy,
        })
    }

    /// Compiles and checks a component against Kassa's world.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, PluginError> {
        if bytes.len() > limits::COMPONENT_BYTES {
            return Err(PluginError::Invalid(format!(
                "the component is larger than {} bytes",
                limits::COMPONENT_BYTES
            )));
        }
        // wasmtime's own answer to bytes that are not WebAssembly at all is a dump of
        // the header it expected; say it in words.
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::Invalid(
                "not a WebAssembly file (a component begins with the bytes \\0asm)".into(),
            ));
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            PluginError::Invalid(format!("not a WebAssembly component: {}", root_cause(&e)))
        })?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            PluginError::Invalid(format!(
                "the component needs imports Kassa does not give: {}",
                root_cause(&e)
            ))
        })?;
        let pre = FulfillmentPre::new(pre).map_err(|e| {
            PluginError::Invalid(format!(
                "the component does not export Kassa's fulfill function: {}",
                root_cause(&e)
            ))
        })?;
        Ok(Compiled(pre))
    }

    /// The compiled plugin for `key` (a plugin version), compiling `bytes` once.
    pub fn compiled(&self, key: &str, bytes: &[u8]) -> Result<Compiled, PluginError> {
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(c.clone());
        }
        let compiled = self.compile(bytes)?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), compiled.clone());
        Ok(compiled)
    }

    /// Runs `fulfill` once, within the limits.
    pub async fn call(
        &self,
        compiled: &Compiled,
        request: &Request,
        context: CallContext,
    ) -> CallOutcome {
        let state = State {
            wasi: WasiCtxBuilder::new()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits::MEMORY_BYTES)
                .trap_on_grow_failure(true)
                .instances(64)
                .build(),
            context,
            logs: Vec::new(),
            fetches: 0,
            http: self.http.clone(),
            policy: self.policy,
            limit: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let fuel_ok = store.set_fuel(limits::FUEL);
        let ticks = (limits::DEADLINE.as_millis() / limits::TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let (result, limit) = match fuel_ok {
            Err(e) => (
                Err(failed(format!("could not set the fuel budget: {e}"), true)),
                None,
            ),
            Ok(()) => match run(&compiled.0, &mut store, request).await {
                Ok(licenses) => (Ok(licenses), None),
                Err((e, limit)) => (Err(e), limit),
            },
        };
        let state = store.data_mut();
        CallOutcome {
            result,
            logs: std::mem::take(&mut state.logs),
            limit: limit.or(state.limit),
        }
    }

    /// Checks that `bytes` are a component for Kassa's world (as an upload must be)
    /// and returns their SHA-256, hex.
    pub fn check(&self, bytes: &[u8]) -> Result<String, String> {
        use sha2::Digest;
        match self.compile(bytes) {
            Ok(_) => Ok(hex::encode(sha2::Sha256::digest(bytes))),
            Err(PluginError::Invalid(why)) | Err(PluginError::Failed { message: why, .. }) => {
                Err(why)
            }
        }
    }

    /// Runs a plugin on a sample order of `quantity` units, with its config, secrets
    /// and allowed hosts. Nothing is delivered: keys it asks from a pool are samples
    /// (`SAMPLE-<pool>-1`…), not taken from the pool.
    pub async fn test_run(
        &self,
        compiled: &Compiled,
        quantity: u32,
        config: Vec<(String, String)>,
        secrets: HashMap<String, Secret>,
        allowed_hosts: Vec<String>,
    ) -> TestRun {
        let request = Request {
            order_id: "ord_test".into(),
            line_no: 1,
            product_id: "prd_test".into(),
            product_name: "Sample product".into(),
            quantity,
            customer: Customer {
                email: "customer@example.com".into(),
                name: Some("Sample Customer".into()),
            },
            test_mode: true,
            config,
            idempotency_key: format!(
                "test-run-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            ),
        };
        let context = CallContext {
            secrets,
            allowed_hosts,
            pool_keys: Arc::new(|pool, count| {
                Box::pin(
                    async move { Ok((1..=count).map(|i| format!("SAMPLE-{pool}-{i}")).collect()) },
                )
            }),
        };
        let started = std::time::Instant::now();
        let outcome = self.call(compiled, &request, context).await;
        TestRun {
            outcome,
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

async fn run(
    pre: &FulfillmentPre<State>,
    store: &mut Store<State>,
    request: &Request,
) -> Result<Vec<String>, (PluginError, Option<Limit>)> {
    let instance = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(trap_reason)?;
    let answer = instance
        .call_fulfill(&mut *store, request)
        .await
        .map_err(trap_reason)?;
    match answer {
        Ok(licenses) => check_output(licenses),
        Err(FulfillError::Retryable(m)) => {
            Err((failed(format!("the plugin says: {m}"), true), None))
        }
        Err(FulfillError::Permanent(m)) => {
            Err((failed(format!("the plugin says: {m}"), false), None))
        }
    }
}

fn check_output(licenses: Vec<String>) -> Result<Vec<String>, (PluginError, Option<Limit>)> {
    if licenses.is_empty() || licenses.len() > limits::MAX_LICENSES {
        return Err((
            failed(
                format!(
                    "the plugin must return 1 to {} licenses",
                    limits::MAX_LICENSES
                ),
                false,
            ),
            Some(Limit::Output),
        ));
    }
    let total: usize = licenses.iter().map(String::len).sum();
    if total > limits::OUTPUT_BYTES {
        return Err((
            failed(
                format!(
                    "the plugin returned more than {} bytes",
                    limits::OUTPUT_BYTES
                ),
                false,
            ),
            Some(Limit::Output),
        ));
    }
    if licenses.iter().any(|l| l.trim().is_empty()) {
        return Err((
            failed("the plugin returned an empty license".into(), false),
            None,
        ));
    }
    Ok(licenses)
}

fn failed(message: String, retryable: bool) -> PluginError {
    PluginError::Failed { message, retryable }
}

fn root_cause(e: &wasmtime::Error) -> String {
    e.chain()
        .last()
        .map(ToString::to_string)
        .unwrap_or_else(|| e.to_string())
}

/// A trap or an error from the sandbox, in words a merchant can act on, with the
/// limit that caused it.
fn trap_reason(e: wasmtime::Error) -> (PluginError, Option<Limit>) {
    let text = format!("{e:?}");
    let (message, limit) = match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            "the plugin ran out of fuel: it computed for too long".to_owned(),
            Some(Limit::Fuel),
        ),
        Some(Trap::Interrupt) => (
            format!(
                "the plugin ran past its {} s deadline",
                limits::DEADLINE.as_secs()
            ),
            Some(Limit::Deadline),
        ),
        Some(trap) => (format!("the plugin trapped: {trap}"), None),
        None if text.contains("memory") || text.contains("grow") => (
            format!(
                "the plugin used more than {} MiB of memory",
                limits::MEMORY_BYTES / (1024 * 1024)
            ),
            Some(Limit::Memory),
        ),
        None => (format!("the plugin failed: {}", root_cause(&e)), None),
    };
    // A deadline may pass because a service was slow: worth another try. Other
    // failures are in the plugin and will recur.
    let retryable = matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt));
    (failed(message, retryable), limit)
}

/// The default deadline, for callers that need to wait for a call.
pub const CALL_TIMEOUT: Duration = limits::DEADLINE;

/// A bare wasmtime set-up (default engine, no limits) running the same component, for
/// the benchmark that compares Kassa's sandboxed call with it
/// (`cargo run --release -p kassa-plugins --example plugin-bench`).
#[doc(hidden)]
pub mod bare {
    use super::*;

    pub struct Bare {
        engine: Engine,
        pre: FulfillmentPre<State>,
        http: reqwest::Client,
    }

    impl Bare {
        pub fn new(bytes: &[u8]) -> Result<Self, String> {
            let engine = Engine::default();
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
            Fulfillment::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                .map_err(|e| e.to_string())?;
            let component = Component::new(&engine, bytes).map_err(|e| e.to_string())?;
            let pre = FulfillmentPre::new(
                linker
                    .instantiate_pre(&component)
                    .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            Ok(Self {
                engine,
                pre,
                http: reqwest::Client::new(),
            })
        }

        /// Instantiates and calls `fulfill` once.
        pub async fn call(
            &self,
            request: &Request,
            context: CallContext,
        ) -> Result<Vec<String>, String> {
            let state = State {
                wasi: WasiCtxBuilder::new().build(),
                table: ResourceTable::new(),
                limits: StoreLimitsBuilder::new().build(),
                context,
                logs: Vec::new(),
                fetches: 0,
                http: self.http.clone(),
                policy: HostPolicy {
                    allow_private_network: true,
                    allow_plain_http: true,
                },
                limit: None,
            };
            let mut store = Store::new(&self.engine, state);
            let instance = self
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| e.to_string())?;
            match instance.call_fulfill(&mut store, request).await {
                Ok(Ok(l)) => Ok(l),
                Ok(Err(e)) => Err(format!("{e:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}
