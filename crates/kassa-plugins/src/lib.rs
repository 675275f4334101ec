//! The WebAssembly plugin host: runs a merchant's fulfillment component (the
//! `kassa:plugin/fulfillment` world in `plugins/wit/`) in wasmtime, sandboxed.
//!
//! Every call gets a fuel budget, a wall-clock deadline (a timer around the whole call,
//! so host calls such as `http-fetch` count too; wasm code yields to the executor at
//! every epoch tick, so a busy plugin never holds an async thread), a
//! memory cap, and capped input, output and logs; the component sees no filesystem,
//! sockets or environment (an empty WASI context), only the host functions of the
//! world: `http-fetch` (the plugin's allow-listed hosts, HTTPS unless plain HTTP is
//! allowed, never private addresses unless the operator allows them), `secret`, `log`
//! and `take-pool-keys`. A trap, a timeout or a limit fails that one call with a reason
//! the merchant can read, naming the limit and its value; the host goes on.
//!
//! Components are compiled once, off the async threads, and kept ready to instantiate
//! (`InstancePre`) from the pooling allocator with copy-on-write memory images: in
//! memory (bounded, least recently used evicted) and on disk under the operator's cache
//! directory, keyed by content hash and engine ([`cache`]), so a restart does not
//! recompile. A call never compiles: a version this node has not prepared is reported
//! as not ready (worth retrying) while it is prepared in the background. Every store
//! has a quota of calls running at once, so one store's slow plugin cannot take the
//! instances other stores need, and test runs have their own small quota.

mod cache;
mod limits;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_domain::Secret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use limits::{CallLimits, Limit, fixed};

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

const MIB: usize = 1024 * 1024;

/// The WIT plugins are built against, as Kassa serves it (`/api/wit/…`).
pub const WIT: &str = include_str!("../../../plugins/wit/kassa-plugin.wit");
/// The version of the `kassa:plugin` package in [`WIT`]. It only grows within a
/// version (new functions, new interfaces), so a plugin built against an older text of
/// the same version keeps linking; a change that would break one gets a new version,
/// and Kassa keeps giving the old one too.
pub const WIT_VERSION: &str = "0.1.0";

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
    /// The store (tenant id) the call is for: its quota of calls at once applies.
    pub tenant: String,
    pub secrets: HashMap<String, Secret>,
    /// Hosts `http-fetch` may reach, exactly as written (`api.example.com`).
    pub allowed_hosts: Vec<String>,
    pub pool_keys: PoolKeys,
    /// The plugin's own limits (see [`PluginHost::limits_for`]); `None`: the
    /// operator's defaults.
    pub limits: Option<CallLimits>,
}

/// What a call produced.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub result: Result<Vec<String>, PluginError>,
    pub logs: Vec<String>,
    /// The sandbox limit the call ran into, if it ran into one (a call may hit a limit
    /// and still succeed, e.g. when it logs more lines than are kept).
    pub limit: Option<Limit>,
    /// The linear memory the instance took.
    pub memory_bytes: usize,
    /// The component failed in itself: it trapped, ran past a limit (fuel, memory,
    /// time) or returned what Kassa cannot take, rather than answering an error. A
    /// version that does this before it ever delivered is taken off.
    pub crashed: bool,
}

/// A run on a sample order, as a test run shows it.
#[derive(Debug, Clone)]
pub struct TestRun {
    pub outcome: CallOutcome,
    pub duration_ms: i64,
}

/// A test run refused because as many as the host allows are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{running} test runs are already running; try again in a moment")]
pub struct Busy {
    pub running: u32,
}

/// The operator's settings for plugins.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// Let `http-fetch` reach loopback and private addresses (development, tests).
    pub allow_private_network: bool,
    /// Let `http-fetch` use plain `http://`.
    pub allow_plain_http: bool,
    /// The largest component accepted (a CPython component is about 18 MiB).
    pub max_component_bytes: usize,
    /// Memory, fuel and time of every call, unless its plugin sets its own.
    pub limits: CallLimits,
    /// The most a merchant may set for a plugin.
    pub max_limits: CallLimits,
    /// Where compiled components are kept on disk (none: compiled again after a
    /// restart). Only Kassa may write there: what is in it is run as machine code.
    pub cache_dir: Option<PathBuf>,
    /// Compiled code kept in memory at most; beyond it the least recently used
    /// component is dropped (and read back from disk when it is needed again).
    pub cache_memory_bytes: usize,
    /// Instances (calls) running at once on this node, all stores together.
    pub instances: u32,
    /// Calls running at once for one store; the rest of its calls wait their turn.
    pub instances_per_store: u32,
    /// Test runs running at once on this node; more are refused (429).
    pub test_runs: u32,
}

impl Default for HostPolicy {
    fn default() -> Self {
        Self {
            allow_private_network: false,
            allow_plain_http: false,
            max_component_bytes: 64 * MIB,
            limits: CallLimits::default(),
            max_limits: CallLimits {
                memory_bytes: 1024 * MIB,
                fuel: 50_000_000_000,
                deadline: Duration::from_secs(30),
            },
            cache_dir: None,
            cache_memory_bytes: 1024 * MIB,
            instances: 32,
            instances_per_store: 4,
            test_runs: 4,
        }
    }
}

/// A compiled plugin, ready to instantiate.
#[derive(Clone)]
pub struct Compiled(FulfillmentPre<State>);

/// The engine, the linker and the compiled components; one per process.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<State>,
    cache: cache::Cache<Compiled>,
    /// Content hashes being compiled in the background.
    preparing: Mutex<HashSet<String>>,
    http: reqwest::Client,
    policy: HostPolicy,
    instances: Arc<Semaphore>,
    per_store: Mutex<HashMap<String, Arc<Semaphore>>>,
    test_runs: Arc<Semaphore>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What `http-fetch` may reach.
#[derive(Debug, Clone, Copy)]
struct Network {
    allow_private_network: bool,
    allow_plain_http: bool,
}

/// The store's limits, counting the linear memory the instance takes.
struct Meter {
    limits: StoreLimits,
    memory_bytes: usize,
}

impl wasmtime::ResourceLimiter for Meter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The state of one call.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Meter,
    context: CallContext,
    logs: Vec<String>,
    fetches: u32,
    http: reqwest::Client,
    policy: Network,
    /// A limit a host function ran into.
    limit: Option<Limit>,
    /// What the plugin writes to stdout and stderr (a Python traceback, a JavaScript
    /// `console.error`), kept for its log.
    output: MemoryOutputPipe,
}

impl State {
    fn new(
        context: CallContext,
        http: reqwest::Client,
        policy: Network,
        memory: Option<usize>,
    ) -> Self {
        let mut limits = StoreLimitsBuilder::new().instances(64);
        if let Some(bytes) = memory {
            limits = limits.memory_size(bytes).trap_on_grow_failure(true);
        }
        let output = MemoryOutputPipe::new(fixed::LOG_LINES * fixed::LOG_LINE_BYTES);
        Self {
            wasi: WasiCtxBuilder::new()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .stdout(output.clone())
                .stderr(output.clone())
                .build(),
            output,
            table: ResourceTable::new(),
            limits: Meter {
                limits: limits.build(),
                memory_bytes: 0,
            },
            context,
            logs: Vec::new(),
            fetches: 0,
            http,
            policy,
            limit: None,
        }
    }

    /// The call's log: its `log` lines, then what it printed.
    fn take_logs(&mut self) -> Vec<String> {
        let mut logs = std::mem::take(&mut self.logs);
        let printed = self.output.contents();
        for line in String::from_utf8_lossy(&printed).lines() {
            if logs.len() >= fixed::LOG_LINES {
                self.limit = self.limit.or(Some(Limit::Logs));
                break;
            }
            let mut line = format!("output: {line}");
            let mut cut = line.len().min(fixed::LOG_LINE_BYTES);
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            logs.push(line);
        }
        logs
    }
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
        if self.fetches >= fixed::FETCHES {
            self.limit = Some(Limit::Fetches);
            return Err(format!(
                "at most {} http-fetch calls per delivery",
                fixed::FETCHES
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
                kassa_webhooks::explain(&e, fixed::FETCH_TIMEOUT)
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
            if body.len() + chunk.len() > fixed::FETCH_BODY_BYTES {
                self.limit = Some(Limit::FetchBody);
                return Err(format!(
                    "the response is larger than {} bytes",
                    fixed::FETCH_BODY_BYTES
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
        if self.logs.len() >= fixed::LOG_LINES {
            self.limit = Some(Limit::Logs);
        } else {
            let mut line = message;
            if line.len() > fixed::LOG_LINE_BYTES {
                self.limit = Some(Limit::Logs);
                let mut cut = fixed::LOG_LINE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            self.logs.push(line);
        }
    }

    async fn take_pool_keys(&mut self, pool_id: String, count: u32) -> Result<Vec<String>, String> {
        if count == 0 || count as usize > fixed::MAX_LICENSES {
            return Err(format!(
                "count must be between 1 and {}",
                fixed::MAX_LICENSES
            ));
        }
        (self.context.pool_keys)(pool_id, count).await
    }
}

/// The SHA-256 of an upload, hex: the key of its compiled form.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Checks the first bytes of an upload, as soon as they arrive: WebAssembly, and a
/// component rather than a core module. Fewer than 8 bytes is a truncated file.
pub fn check_header(head: &[u8]) -> Result<(), PluginError> {
    let invalid = |why: &str| Err(PluginError::Invalid(why.to_owned()));
    if head.len() >= 4 && !head.starts_with(b"\0asm")
        || head.len() < 4 && !b"\0asm".starts_with(head)
    {
        return invalid("not a WebAssembly file (a component begins with the bytes \\0asm)");
    }
    match head.get(4..8) {
        None => invalid("the file is truncated: it ends inside the WebAssembly header"),
        Some([1, 0, 0, 0]) => invalid(
            "a core WebAssembly module, not a component: build for wasm32-wasip2 \
             (or make a component of it with `wasm-tools component new`)",
        ),
        Some([0x0d, 0, 1, 0]) => Ok(()),
        Some(_) => invalid("a WebAssembly version or layer Kassa does not know"),
    }
}

impl PluginHost {
    pub fn new(policy: HostPolicy) -> Result<Self, String> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Instantiation maps the component's initial memory copy-on-write instead of
        // copying it: what lets a CPython or StarlingMonkey snapshot start at once.
        config.memory_init_cow(true);
        let instances = policy.instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // Sized for the runtimes languages bring: a CPython component links a dozen
        // core modules with large function tables.
        pool.total_component_instances(instances)
            .total_core_instances(instances * 24)
            .total_memories(instances * 2)
            .total_tables(instances * 24)
            .total_stacks(instances)
            .max_core_instances_per_component(24)
            .max_memories_per_component(2)
            .max_tables_per_component(24)
            .max_core_instance_size(2 * MIB)
            .table_elements(100_000)
            .max_memory_size(
                policy
                    .limits
                    .memory_bytes
                    .max(policy.max_limits.memory_bytes),
            );
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
                    std::thread::sleep(fixed::TICK);
                }
            })
            .map_err(|e| e.to_string())?;
        let http = kassa_webhooks::guarded_client(
            kassa_webhooks::NetworkPolicy {
                allow_private: policy.allow_private_network,
            },
            fixed::FETCH_TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
        let cache = cache::Cache::new(
            &engine,
            policy.cache_dir.as_deref(),
            policy.cache_memory_bytes,
        )
        .map_err(|e| format!("the plugin cache directory: {e}"))?;
        Ok(Self {
            engine,
            linker,
            cache,
            preparing: Mutex::new(HashSet::new()),
            http,
            instances: Arc::new(Semaphore::new(instances as usize)),
            per_store: Mutex::new(HashMap::new()),
            test_runs: Arc::new(Semaphore::new(policy.test_runs.max(1) as usize)),
            policy,
        })
    }

    /// The operator's settings.
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }

    /// The operator's caps on a plugin's own limits.
    pub fn caps(&self) -> kassa_domain::plugin::LimitCaps {
        let max = self.policy.max_limits;
        kassa_domain::plugin::LimitCaps {
            memory_mib: u32::try_from(max.memory_bytes / MIB).unwrap_or(u32::MAX),
            fuel: max.fuel,
            timeout_ms: u64::try_from(max.deadline.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The limits of a call of a plugin with its own `limits`: each the plugin's,
    /// or the operator's default, and never above the operator's cap.
    pub fn limits_for(&self, limits: &kassa_domain::plugin::PluginLimits) -> CallLimits {
        let (default, max) = (self.policy.limits, self.policy.max_limits);
        CallLimits {
            memory_bytes: limits
                .memory_mib
                .map_or(default.memory_bytes, |m| m as usize * MIB)
                .min(max.memory_bytes.max(default.memory_bytes)),
            fuel: limits
                .fuel
                .unwrap_or(default.fuel)
                .min(max.fuel.max(default.fuel)),
            deadline: limits
                .timeout_ms
                .map_or(default.deadline, Duration::from_millis)
                .min(max.deadline.max(default.deadline)),
        }
    }

    /// Compiled code kept in memory (bytes) and how many components.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }

    fn network(&self) -> Network {
        Network {
            allow_private_network: self.policy.allow_private_network,
            allow_plain_http: self.policy.allow_plain_http,
        }
    }

    /// Checks a component against Kassa's world and compiles it, without keeping it.
    /// CPU-heavy: call it on a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, PluginError> {
        self.build(bytes).map(|(compiled, _)| compiled)
    }

    /// The compiled component and its artifact (what is kept on disk).
    fn build(&self, bytes: &[u8]) -> Result<(Compiled, Vec<u8>), PluginError> {
        if bytes.len() > self.policy.max_component_bytes {
            return Err(PluginError::Invalid(format!(
                "the component is larger than {} bytes",
                self.policy.max_component_bytes
            )));
        }
        check_header(bytes)?;
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            PluginError::Invalid(format!(
                "not a valid WebAssembly component: {}",
                root_cause(&e)
            ))
        })?;
        let artifact = component.serialize().map_err(|e| {
            failed(
                format!("keeping the compiled component: {}", root_cause(&e)),
                true,
            )
        })?;
        Ok((self.link(&component)?, artifact))
    }

    /// Pre-links a component against Kassa's world: what it imports must be what Kassa
    /// gives, and it must export `fulfill`.
    fn link(&self, component: &Component) -> Result<Compiled, PluginError> {
        let pre = self.linker.instantiate_pre(component).map_err(|e| {
            PluginError::Invalid(format!(
                "the component needs imports Kassa does not give (Kassa gives the world \
                 kassa:plugin/fulfillment and WASI without files, sockets or environment): {e:#}"
            ))
        })?;
        let pre = FulfillmentPre::new(pre).map_err(|e| {
            PluginError::Invalid(format!(
                "the component does not export the world kassa:plugin/fulfillment \
                 (its function `fulfill`): {}",
                root_cause(&e)
            ))
        })?;
        Ok(Compiled(pre))
    }

    /// The compiled component for content hash `sha` if this node has it, in memory or
    /// on disk; never compiles. Blocking (it may read a file).
    pub fn load(&self, sha: &str) -> Option<Compiled> {
        if let Some(compiled) = self.cache.get(sha) {
            return Some(compiled);
        }
        let path = self.cache.path(sha)?;
        if !path.exists() {
            return None;
        }
        let loaded = self
            .read_artifact(&path)
            .map_err(|e| PluginError::Invalid(root_cause(&e)))
            .and_then(|component| {
                let size = image_size(&component);
                self.link(&component).map(|c| (c, size))
            });
        match loaded {
            Ok((compiled, size)) => {
                self.cache.insert(sha, compiled.clone(), size);
                Some(compiled)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a kept compiled plugin could not be loaded; it is compiled again");
                std::fs::remove_file(&path).ok();
                None
            }
        }
    }

    /// Reads back a component this host compiled and kept.
    #[allow(unsafe_code)]
    fn read_artifact(&self, path: &std::path::Path) -> wasmtime::Result<Component> {
        // SAFETY: wasmtime runs these bytes as machine code. Files in the cache
        // directory are written by this host only (`cache::Cache::store`, whole files
        // renamed into place; the operator keeps the directory Kassa's), under a
        // directory named for the engine's compatibility hash, so they are what this
        // engine compiled.
        unsafe { Component::deserialize_file(&self.engine, path) }
    }

    /// The compiled component for `bytes` (whose SHA-256 is `sha`): from memory, from
    /// disk, or compiled now and kept. Blocking and CPU-heavy on first sight.
    pub fn prepare(&self, sha: &str, bytes: &[u8]) -> Result<Compiled, PluginError> {
        if let Some(compiled) = self.load(sha) {
            return Ok(compiled);
        }
        let started = std::time::Instant::now();
        let (compiled, artifact) = self.build(bytes)?;
        self.cache.store(sha, &artifact);
        self.cache.insert(sha, compiled.clone(), artifact.len());
        tracing::info!(sha256 = %sha, bytes = bytes.len(), compiled_bytes = artifact.len(),
            ms = started.elapsed().as_millis() as u64, "plugin compiled");
        Ok(compiled)
    }

    /// [`Self::prepare`] on a blocking thread, never on the async workers. The bytes
    /// come back for storing.
    pub async fn prepare_async(
        self: &Arc<Self>,
        sha: String,
        bytes: Vec<u8>,
    ) -> (Vec<u8>, Result<Compiled, PluginError>) {
        let host = self.clone();
        match tokio::task::spawn_blocking(move || {
            let prepared = host.prepare(&sha, &bytes);
            (bytes, prepared)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => (
                Vec::new(),
                Err(failed(format!("compiling the plugin stopped: {e}"), true)),
            ),
        }
    }

    /// The compiled component for `sha` if this node has it; reads the disk on a
    /// blocking thread. Never compiles.
    pub async fn ready(self: &Arc<Self>, sha: &str) -> Option<Compiled> {
        if let Some(compiled) = self.cache.get(sha) {
            return Some(compiled);
        }
        let (host, sha) = (self.clone(), sha.to_owned());
        tokio::task::spawn_blocking(move || host.load(&sha))
            .await
            .ok()
            .flatten()
    }

    /// Whether `sha` is being compiled in the background.
    pub fn is_preparing(&self, sha: &str) -> bool {
        self.preparing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sha)
    }

    /// Compiles `bytes` on a blocking thread unless this node has it or is compiling
    /// it already, and waits for it (for a version this node has not prepared).
    pub async fn prepare_once(self: &Arc<Self>, sha: String, bytes: Vec<u8>) {
        /// Takes the hash off the list however the wait ends.
        struct Preparing<'a>(&'a PluginHost, String);
        impl Drop for Preparing<'_> {
            fn drop(&mut self) {
                self.0
                    .preparing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.1);
            }
        }
        if !self
            .preparing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha.clone())
        {
            return;
        }
        let _preparing = Preparing(self, sha.clone());
        let host = self.clone();
        let compiled =
            tokio::task::spawn_blocking(move || host.prepare(&sha, &bytes).map_err(|e| (sha, e)))
                .await;
        if let Ok(Err((sha, e))) = compiled {
            tracing::warn!(sha256 = %sha, error = %e, "a stored plugin version does not compile");
        }
    }

    /// [`Self::prepare_once`] without waiting.
    pub fn prepare_in_background(self: &Arc<Self>, sha: String, bytes: Vec<u8>) {
        let host = self.clone();
        tokio::spawn(async move { host.prepare_once(sha, bytes).await });
    }

    fn store_slots(&self, tenant: &str) -> Arc<Semaphore> {
        self.per_store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.to_owned())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.policy.instances_per_store.max(1) as usize
                ))
            })
            .clone()
    }

    /// Waits (at most one deadline) for a place among the store's calls and then among
    /// the node's instances.
    async fn admit(
        &self,
        tenant: &str,
        wait: Duration,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), (PluginError, Option<Limit>)> {
        let quota = self.policy.instances_per_store.max(1);
        let Ok(Ok(mine)) =
            tokio::time::timeout(wait, self.store_slots(tenant).acquire_owned()).await
        else {
            return Err((
                failed(
                    format!(
                        "this store already runs {quota} plugin calls at once; the call waits its turn"
                    ),
                    true,
                ),
                Some(Limit::Concurrency(quota)),
            ));
        };
        let Ok(Ok(node)) = tokio::time::timeout(wait, self.instances.clone().acquire_owned()).await
        else {
            return Err((
                failed(
                    "every plugin instance of this node is busy; the call waits its turn".into(),
                    true,
                ),
                None,
            ));
        };
        Ok((mine, node))
    }

    /// Runs `fulfill` once, within the limits.
    pub async fn call(
        &self,
        compiled: &Compiled,
        request: &Request,
        context: CallContext,
    ) -> CallOutcome {
        let limits = context.limits.unwrap_or(self.policy.limits);
        let _permits = match self.admit(&context.tenant, limits.deadline).await {
            Ok(permits) => permits,
            Err((e, limit)) => {
                return CallOutcome {
                    result: Err(e),
                    logs: Vec::new(),
                    limit,
                    memory_bytes: 0,
                    crashed: false,
                };
            }
        };
        let state = State::new(
            context,
            self.http.clone(),
            self.network(),
            Some(limits.memory_bytes),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let fuel_ok = store.set_fuel(limits.fuel);
        // Every tick the call yields to the executor, so a plugin computing hard never
        // holds an async worker thread; the timer below ends it at its deadline.
        store.epoch_deadline_async_yield_and_update(1);
        let (result, limit, crashed) = match fuel_ok {
            Err(e) => (
                Err(failed(format!("could not set the fuel budget: {e}"), true)),
                None,
                false,
            ),
            // The deadline covers the whole call: wasm code (which yields every tick)
            // and host functions (a slow `http-fetch`).
            Ok(()) => match tokio::time::timeout(
                limits.deadline,
                run(&compiled.0, &mut store, request, limits),
            )
            .await
            {
                Ok(Ok(Ok(licenses))) => (Ok(licenses), None, false),
                Ok(Ok(Err(answered))) => (Err(answered), None, false),
                Ok(Err((e, limit))) => (Err(e), limit, true),
                Err(_) => (
                    Err(past_deadline(limits)),
                    Some(Limit::Deadline(limits.deadline)),
                    true,
                ),
            },
        };
        let state = store.data_mut();
        let logs = state.take_logs();
        CallOutcome {
            result,
            logs,
            limit: limit.or(state.limit),
            memory_bytes: state.limits.memory_bytes,
            crashed,
        }
    }

    /// Runs a plugin on a sample order of `quantity` units, with its config and its
    /// store, secrets, allowed hosts and limits (`context`). Nothing is delivered: keys
    /// it asks from a pool are samples (`SAMPLE-<pool>-1`…), not taken from the pool,
    /// whatever `context` says. At most `test_runs` run at once.
    pub async fn test_run(
        &self,
        compiled: &Compiled,
        quantity: u32,
        config: Vec<(String, String)>,
        context: CallContext,
    ) -> Result<TestRun, Busy> {
        let Ok(_running) = self.test_runs.clone().try_acquire_owned() else {
            return Err(Busy {
                running: self.policy.test_runs.max(1),
            });
        };
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
            pool_keys: Arc::new(|pool, count| {
                Box::pin(
                    async move { Ok((1..=count).map(|i| format!("SAMPLE-{pool}-{i}")).collect()) },
                )
            }),
            ..context
        };
        let started = std::time::Instant::now();
        let outcome = self.call(compiled, &request, context).await;
        Ok(TestRun {
            outcome,
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        })
    }
}

/// The bytes of compiled code a component holds in memory.
fn image_size(component: &Component) -> usize {
    let range = component.image_range();
    (range.end as usize).saturating_sub(range.start as usize)
}

/// One call: `Err` when the component failed in itself (a trap, a limit, output
/// Kassa cannot take), `Ok(Err)` when it answered an error.
async fn run(
    pre: &FulfillmentPre<State>,
    store: &mut Store<State>,
    request: &Request,
    limits: CallLimits,
) -> Result<Result<Vec<String>, PluginError>, (PluginError, Option<Limit>)> {
    let instance = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(|e| trap_reason(e, limits))?;
    let answer = instance
        .call_fulfill(&mut *store, request)
        .await
        .map_err(|e| trap_reason(e, limits))?;
    Ok(match answer {
        Ok(licenses) => Ok(check_output(licenses)?),
        Err(FulfillError::Retryable(m)) => Err(failed(format!("the plugin says: {m}"), true)),
        Err(FulfillError::Permanent(m)) => Err(failed(format!("the plugin says: {m}"), false)),
    })
}

fn check_output(licenses: Vec<String>) -> Result<Vec<String>, (PluginError, Option<Limit>)> {
    if licenses.is_empty() || licenses.len() > fixed::MAX_LICENSES {
        return Err((
            failed(
                format!(
                    "the plugin must return 1 to {} licenses",
                    fixed::MAX_LICENSES
                ),
                false,
            ),
            Some(Limit::Output),
        ));
    }
    let total: usize = licenses.iter().map(String::len).sum();
    if total > fixed::OUTPUT_BYTES {
        return Err((
            failed(
                format!(
                    "the plugin returned more than {} bytes",
                    fixed::OUTPUT_BYTES
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

fn past_deadline(limits: CallLimits) -> PluginError {
    // A deadline may pass because a service was slow: worth another try.
    failed(
        format!(
            "the plugin ran past its deadline (limit: {})",
            Limit::Deadline(limits.deadline)
        ),
        true,
    )
}

fn root_cause(e: &wasmtime::Error) -> String {
    e.chain()
        .last()
        .map(ToString::to_string)
        .unwrap_or_else(|| e.to_string())
}

/// A trap or an error from the sandbox, in words a merchant can act on, with the
/// limit that caused it and its value.
fn trap_reason(e: wasmtime::Error, limits: CallLimits) -> (PluginError, Option<Limit>) {
    let text = format!("{e:?}");
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            let limit = Limit::Fuel(limits.fuel);
            (
                failed(
                    format!(
                        "the plugin ran out of fuel: it computed for too long (limit: {limit})"
                    ),
                    false,
                ),
                Some(limit),
            )
        }
        Some(Trap::Interrupt) => (
            past_deadline(limits),
            Some(Limit::Deadline(limits.deadline)),
        ),
        Some(trap) => (failed(format!("the plugin trapped: {trap}"), false), None),
        None if text.contains("memory") || text.contains("grow") => {
            let limit = Limit::Memory(limits.memory_bytes);
            (
                failed(
                    format!("the plugin used more memory than it may (limit: {limit})"),
                    false,
                ),
                Some(limit),
            )
        }
        None => (
            failed(format!("the plugin failed: {}", root_cause(&e)), false),
            None,
        ),
    }
}

/// The default deadline, for callers that need to wait for a call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

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
            let state = State::new(
                context,
                self.http.clone(),
                Network {
                    allow_private_network: true,
                    allow_plain_http: true,
                },
                None,
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_wit_is_the_version_it_says() {
        assert!(WIT.contains(&format!("package kassa:plugin@{WIT_VERSION};")));
    }

    #[test]
    fn the_header_tells_a_component_from_everything_else() {
        let why = |head: &[u8]| match check_header(head) {
            Err(PluginError::Invalid(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(why(b"\0asm\x01\0\0\0").contains("core WebAssembly module"));
        assert!(why(b"\0as").contains("truncated"));
        assert!(why(b"PK\x03\x04").contains("not a WebAssembly file"));
        assert!(why(b"\0asm\x02\0\0\0").contains("version"));
    }
}
