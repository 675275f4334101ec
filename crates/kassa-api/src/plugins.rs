//! `/plugins`: WebAssembly fulfillment components, their versions, config, secrets and
//! allowed hosts, and a test run on a sample order.

use kassa_domain::access::ApiAction;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kassa_domain::catalog::parse_quantity;
use kassa_domain::ids::PluginId;
use kassa_domain::plugin::{
    PluginLimits, limits_within, parse_allowed_hosts, parse_plugin_name, parse_setting_name,
};
use kassa_domain::{Invalid, Secret};
use kassa_plugins::PluginError;
use kassa_store::{PluginChanges, PluginRecord, PluginVersionRecord, StoreError};
use poem::http::StatusCode;
use poem::{Body, Request};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};

use crate::auth::ApiKey;
use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::pagination::{list_type, page_request};

pub struct PluginsApi(pub ApiContext);

/// A component built for `wasm32-wasip2` against `plugins/wit`.
#[derive(ApiRequest)]
pub enum WasmUpload {
    #[oai(content_type = "application/wasm")]
    Wasm(Binary<Body>),
}

/// The answer to an upload: only what these endpoints can say.
#[derive(Debug, ApiResponse)]
pub enum Uploaded {
    /// Stored and compiled: it runs from now on.
    #[oai(status = 200)]
    Ok(Json<PluginOut>),
    /// The body could not be read.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No valid API key.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The API key is not a `full` key.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// (A new version) no such plugin in this store.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The component is larger than this Kassa accepts (`plugins_max_component_mib`).
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// Not a component Kassa can run; `errors` says why (field `body`): not
    /// WebAssembly, truncated, a core module, or not the world
    /// `kassa:plugin/fulfillment` (naming the import or export at fault).
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    /// Kassa failed; the cause is in the server log.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// The database cannot be reached right now; nothing was done. Send the same
    /// request again after `Retry-After` seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] u64),
}

impl From<ApiError> for Uploaded {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadRequest(p) => Uploaded::BadRequest(p),
            ApiError::Unauthorized(p) => Uploaded::Unauthorized(p),
            ApiError::Forbidden(p) => Uploaded::Forbidden(p),
            ApiError::NotFound(p) => Uploaded::NotFound(p),
            ApiError::Invalid(p) => Uploaded::Invalid(p),
            ApiError::Internal(p) => Uploaded::Internal(p),
            ApiError::Unavailable(p, after) => Uploaded::Unavailable(p, after),
            other => {
                ApiError::internal(format!("unexpected answer to an upload: {other:?}")).into()
            }
        }
    }
}

impl From<Result<Json<PluginOut>, ApiError>> for Uploaded {
    fn from(r: Result<Json<PluginOut>, ApiError>) -> Self {
        r.map_or_else(Uploaded::from, Uploaded::Ok)
    }
}

/// Reads an upload as it arrives: the header is checked as soon as its first bytes are
/// in (a file that is not a component is refused before the rest is read), the SHA-256
/// is computed chunk by chunk, and a body past `max` bytes is refused the moment it
/// passes it. The bytes are held once, in the vector returned: a body already in
/// memory (read whole by the `Idempotency-Key` layer to fingerprint the request) comes
/// as one chunk, which becomes the vector without a copy.
async fn read_component(
    body: Body,
    declared: Option<usize>,
    max: usize,
) -> Result<(Vec<u8>, String), Uploaded> {
    use futures::StreamExt;
    use sha2::Digest;

    let too_large = || {
        Uploaded::TooLarge(Json(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some(format!(
                "the component is larger than {max} bytes ({} MiB), the most this Kassa \
                 accepts (setting plugins_max_component_mib)",
                max / (1024 * 1024)
            )),
        )))
    };
    let invalid = |why: String| Uploaded::from(ApiError::from(Invalid::field("body", why)));
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let mut chunks = std::pin::pin!(body.into_bytes_stream());
    let mut bytes: Vec<u8> = Vec::new();
    let mut hasher = sha2::Sha256::new();
    let mut header_checked = false;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            Uploaded::BadRequest(Json(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                Some(format!("the body could not be read: {e}")),
            )))
        })?;
        if bytes.len().saturating_add(chunk.len()) > max {
            // The server reads and drops the rest before the 413 goes out.
            return Err(too_large());
        }
        hasher.update(&chunk);
        if bytes.capacity() == 0 {
            bytes = Vec::from(chunk);
            // Room for the rest at once, not doubling (and copying) as it arrives.
            let expected = declared.unwrap_or(0).min(max);
            bytes.reserve(expected.saturating_sub(bytes.len()));
        } else {
            bytes.extend_from_slice(&chunk);
        }
        if !header_checked && bytes.len() >= 8 {
            kassa_plugins::check_header(&bytes[..8]).map_err(|e| invalid(e.to_string()))?;
            header_checked = true;
        }
    }
    if !header_checked {
        kassa_plugins::check_header(&bytes).map_err(|e| invalid(e.to_string()))?;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

#[derive(Debug, Object)]
pub struct PluginOut {
    /// `plg_…`
    pub id: String,
    pub name: String,
    /// The running version; every upload adds one.
    pub version: i64,
    /// The running version has not delivered a line for a real order yet. While it
    /// has not, a failure in the sandbox (a trap, running out of fuel, memory or
    /// time) takes it off and makes `fallback_version` live again.
    pub on_trial: bool,
    /// What runs again if the version on trial fails: the version that delivered last.
    pub fallback_version: Option<i64>,
    /// The newest version uploaded (an upload with `live=false` does not run yet).
    pub latest_version: i64,
    pub sha256: String,
    pub size: i64,
    /// Non-secret settings, given to the plugin with every request.
    pub config: BTreeMap<String, String>,
    /// The names of the plugin's secrets (their values are never shown).
    pub secrets: Vec<String>,
    /// Hosts the plugin's `http-fetch` may reach.
    pub allowed_hosts: Vec<String>,
    /// What one call may use: the plugin's own limits where set, else the operator's
    /// defaults.
    pub limits: PluginLimitsOut,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

list_type!(PluginList, PluginOut);

/// The limits of one call of a plugin.
#[derive(Debug, Object)]
pub struct PluginLimitsOut {
    /// Linear memory, in MiB.
    pub memory_mib: u64,
    /// Units of computation (roughly wasm instructions).
    pub fuel: u64,
    /// Wall-clock time, `http-fetch` calls included, in milliseconds.
    pub timeout_ms: u64,
}

/// A plugin's own limits; each at most the operator's cap. A field left out (or
/// `null`) takes the operator's default.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PluginLimitsIn {
    pub memory_mib: Option<u32>,
    pub fuel: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// One stored version of a plugin.
#[derive(Debug, Object)]
pub struct PluginVersionOut {
    pub version: i64,
    pub sha256: String,
    pub size: i64,
    /// The version that runs; it cannot be deleted.
    pub live: bool,
    /// It has delivered a line for a real order.
    pub delivered: bool,
    /// Why Kassa took it off: it failed a delivery in the sandbox before it ever
    /// delivered, and the version before it runs again. Making it live again clears it.
    pub withdrawn: Option<String>,
    pub withdrawn_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

list_type!(PluginVersionList, PluginVersionOut);

/// The answer to deleting a version: only what this endpoint can say.
#[derive(Debug, ApiResponse)]
pub enum VersionDeleted {
    /// Deleted with its component.
    #[oai(status = 204)]
    Deleted,
    /// No valid API key.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The API key is not a `full` key.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such plugin or version in this store.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// It is the live version; make another version live first.
    #[oai(status = 409, content_type = "application/problem+json")]
    Live(Json<Problem>),
    /// Kassa failed; the cause is in the server log.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// The database cannot be reached right now; nothing was done. Send the same
    /// request again after `Retry-After` seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] u64),
}

impl From<ApiError> for VersionDeleted {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(p) => VersionDeleted::NotFound(p),
            ApiError::Conflict(p) => VersionDeleted::Live(p),
            ApiError::Unauthorized(p) => VersionDeleted::Unauthorized(p),
            ApiError::Forbidden(p) => VersionDeleted::Forbidden(p),
            ApiError::Internal(p) => VersionDeleted::Internal(p),
            ApiError::Unavailable(p, after) => VersionDeleted::Unavailable(p, after),
            other => ApiError::internal(format!("unexpected answer to a delete: {other:?}")).into(),
        }
    }
}

/// Changes to a plugin; absent fields stay as they are.
// Not `Debug`: it holds secrets.
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct PluginPatch {
    pub name: Option<String>,
    /// Replaces the whole config.
    pub config: Option<BTreeMap<String, String>>,
    /// Sets secrets by name; `null` removes one.
    pub secrets: Option<HashMap<String, Option<String>>>,
    /// Replaces the list of hosts, e.g. `["licenses.example.com"]`.
    pub allowed_hosts: Option<Vec<String>>,
    /// Replaces the plugin's own limits (memory, fuel, time of one call).
    pub limits: Option<PluginLimitsIn>,
    /// Makes this stored version the one that runs: a rollback, or a version uploaded
    /// with `live=false`. It is on trial unless it has delivered before.
    pub live_version: Option<i64>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct TestRunIn {
    /// Units in the sample order line; default 1.
    pub quantity: Option<i64>,
    /// The stored version to run; default the live one.
    pub version: Option<i64>,
}

/// What the plugin did with a sample order (nothing is stored or delivered).
#[derive(Debug, Object)]
pub struct TestRunOut {
    pub licenses: Option<Vec<String>>,
    pub error: Option<String>,
    pub retryable: Option<bool>,
    pub logs: Vec<String>,
    pub duration_ms: i64,
    /// The sandbox limit the run ran into, with its value, e.g. `fuel (5000000000
    /// units of computation)` or `memory (256 MiB)`; absent when it stayed within every
    /// limit.
    pub limit: Option<String>,
}

fn out(p: PluginRecord, host: Option<&kassa_plugins::PluginHost>) -> PluginOut {
    let limits = host.map(|h| h.limits_for(&p.limits)).unwrap_or_default();
    PluginOut {
        limits: PluginLimitsOut {
            memory_mib: (limits.memory_bytes / (1024 * 1024)) as u64,
            fuel: limits.fuel,
            timeout_ms: u64::try_from(limits.deadline.as_millis()).unwrap_or(u64::MAX),
        },
        id: p.id.to_string(),
        name: p.name,
        version: p.version,
        on_trial: !p.live.proven,
        fallback_version: p.live.fallback,
        latest_version: p.latest_version,
        sha256: p.sha256,
        size: p.size,
        config: p.config,
        secrets: p.secret_names,
        allowed_hosts: p.allowed_hosts,
        created_at: p.created_at.0,
        updated_at: p.updated_at.0,
    }
}

fn plugin_id(raw: &str) -> Result<PluginId, ApiError> {
    PluginId::parse(raw).map_err(|_| ApiError::not_found("plugin"))
}

fn version_out(v: PluginVersionRecord) -> PluginVersionOut {
    PluginVersionOut {
        version: v.version,
        sha256: v.sha256,
        size: v.size,
        live: v.live,
        delivered: v.proven,
        withdrawn: v.withdrawn,
        withdrawn_at: v.withdrawn_at.map(|t| t.0),
        created_at: v.created_at.0,
    }
}

impl PluginsApi {
    /// The answer when `version` (given in `field`) was not found: 404 if the plugin
    /// itself is not this store's, else 422 naming the field.
    async fn no_version(
        &self,
        tenant: &kassa_domain::ids::TenantId,
        id: &PluginId,
        field: &str,
        version: i64,
    ) -> ApiError {
        match self.0.store.plugin(tenant, id).await {
            Ok(_) => Invalid::field(field, format!("this plugin has no version {version}")).into(),
            Err(e) => ApiError::from_store("plugin")(e),
        }
    }

    fn host(&self) -> Result<&Arc<kassa_plugins::PluginHost>, ApiError> {
        self.0
            .plugins
            .as_ref()
            .ok_or_else(|| ApiError::internal("no plugin host in this process"))
    }

    /// Reads an upload, checks it against Kassa's world and compiles it (on a blocking
    /// thread), so that it is ready to run when the answer goes out: the bytes and
    /// their SHA-256.
    async fn receive(
        &self,
        req: &Request,
        body: WasmUpload,
    ) -> Result<(Vec<u8>, String), Uploaded> {
        let WasmUpload::Wasm(Binary(body)) = body;
        let host = self.host()?;
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let (bytes, sha) =
            read_component(body, declared, host.policy().max_component_bytes).await?;
        let (bytes, compiled) = host.prepare_async(sha.clone(), bytes).await;
        match compiled {
            Ok(_) => Ok((bytes, sha)),
            Err(PluginError::Invalid(why)) => {
                Err(ApiError::from(Invalid::field("body", why)).into())
            }
            Err(e) => Err(ApiError::internal(e).into()),
        }
    }
}

/// The compiled component of a plugin's live version: ready on this node, or compiled
/// now on a blocking thread (a test run may wait for it; a delivery never does).
pub(crate) async fn compiled(
    host: &Arc<kassa_plugins::PluginHost>,
    store: &kassa_store::Store,
    tenant: &kassa_domain::ids::TenantId,
    plugin: &kassa_store::RunnablePlugin,
) -> Result<kassa_plugins::Compiled, ApiError> {
    if let Some(ready) = host.ready(&plugin.sha256).await {
        return Ok(ready);
    }
    let wasm = store
        .plugin_version_wasm(tenant, &plugin.id, plugin.version)
        .await
        .map_err(ApiError::from_store("plugin"))?;
    host.prepare_async(plugin.sha256.clone(), wasm)
        .await
        .1
        .map_err(ApiError::internal)
}

/// The names of config entries and secrets, checked.
fn check_names<'a>(field: &str, names: impl Iterator<Item = &'a String>, invalid: &mut Invalid) {
    for name in names {
        invalid.check(parse_setting_name(&format!("{field}.{name}"), name));
    }
}

#[OpenApi(prefix_path = "/plugins", tag = "crate::context::Tag::Plugins")]
impl PluginsApi {
    /// Upload a plugin
    ///
    /// The body is the component (`content-type: application/wasm`, at most 64 MiB
    /// unless the operator set another size). It is streamed: hashed and checked while
    /// it arrives, then checked against Kassa's WIT world and compiled before it is
    /// stored, so it is ready to run when this answers.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        req: &Request,
        auth: ApiKey,
        /// A name for the plugin; default `plugin`.
        name: Query<Option<String>>,
        body: WasmUpload,
    ) -> Uploaded {
        let tenant = match auth.allowed(ApiAction::ManagePlugins) {
            Ok(tenant) => tenant.id.clone(),
            Err(refused) => return refused.into(),
        };
        let name = match parse_plugin_name(name.0.as_deref().unwrap_or("plugin")) {
            Ok(name) => name,
            Err(invalid) => return ApiError::from(invalid).into(),
        };
        let (bytes, sha) = match self.receive(req, body).await {
            Ok(received) => received,
            Err(refused) => return refused,
        };
        self.0
            .store
            .create_plugin(&tenant, &name, bytes, &sha)
            .await
            .map(|record| Json(out(record, self.0.plugins.as_deref())))
            .map_err(ApiError::from_store("plugin"))
            .into()
    }

    /// Upload a new version of a plugin
    ///
    /// It runs from now on, on trial until it delivers a line: if it fails in the
    /// sandbox before that (a trap, running out of fuel, memory or time), Kassa takes
    /// it off and the version that delivered before runs again. With `live=false` it
    /// is only stored: try it with a test run (`version`), then make it live with
    /// `PATCH` (`live_version`).
    #[oai(path = "/:id/versions", method = "post")]
    async fn add_version(
        &self,
        req: &Request,
        auth: ApiKey,
        id: Path<String>,
        /// Make it the running version; default `true`.
        live: Query<Option<bool>>,
        body: WasmUpload,
    ) -> Uploaded {
        let tenant = match auth.allowed(ApiAction::ManagePlugins) {
            Ok(tenant) => tenant.id.clone(),
            Err(refused) => return refused.into(),
        };
        let id = match plugin_id(&id) {
            Ok(id) => id,
            Err(e) => return e.into(),
        };
        if let Err(e) = self.0.store.plugin(&tenant, &id).await {
            return ApiError::from_store("plugin")(e).into();
        }
        let (bytes, sha) = match self.receive(req, body).await {
            Ok(received) => received,
            Err(refused) => return refused,
        };
        self.0
            .store
            .add_plugin_version(&tenant, &id, bytes, &sha, live.0.unwrap_or(true))
            .await
            .map(|(record, _)| Json(out(record, self.0.plugins.as_deref())))
            .map_err(ApiError::from_store("plugin"))
            .into()
    }

    /// List a plugin's versions, newest first
    #[oai(path = "/:id/versions", method = "get")]
    async fn list_versions(
        &self,
        auth: ApiKey,
        id: Path<String>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<PluginVersionList>, ApiError> {
        let id = plugin_id(&id)?;
        let page = page_request(limit.0, cursor.0)?;
        let after = match page.after.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                return Err(
                    Invalid::field("cursor", "is not a cursor from a previous page").into(),
                );
            }
        };
        let store = &self.0.store;
        let tenant = &auth.allowed(ApiAction::Read)?.id;
        store
            .plugin(tenant, &id)
            .await
            .map_err(ApiError::from_store("plugin"))?;
        let versions = store
            .list_plugin_versions(tenant, &id, after, page.limit)
            .await
            .map_err(ApiError::from_store("plugin"))?;
        Ok(Json(PluginVersionList::from_page(versions, version_out)))
    }

    /// Delete a version that does not run
    ///
    /// Frees its stored component. The live version is refused with a 409: make
    /// another version live (`PATCH` with `live_version`, or an upload) first.
    #[oai(path = "/:id/versions/:version", method = "delete")]
    async fn delete_version(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// A version number from the plugin's versions.
        version: Path<String>,
    ) -> VersionDeleted {
        let not_found = || ApiError::not_found("plugin version");
        let tenant = match auth.allowed(ApiAction::ManagePlugins) {
            Ok(tenant) => tenant,
            Err(refused) => return refused.into(),
        };
        let Ok(id) = PluginId::parse(&id) else {
            return not_found().into();
        };
        let Ok(version) = version.parse::<i64>() else {
            return not_found().into();
        };
        match self
            .0
            .store
            .delete_plugin_version(&tenant.id, &id, version)
            .await
        {
            Ok(()) => VersionDeleted::Deleted,
            Err(StoreError::NotFound) => not_found().into(),
            Err(e) => ApiError::from_store("plugin version")(e).into(),
        }
    }

    /// List plugins, newest first
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<PluginList>, ApiError> {
        let page = self
            .0
            .store
            .list_plugins(
                &auth.allowed(ApiAction::Read)?.id,
                &page_request(limit.0, cursor.0)?,
            )
            .await
            .map_err(ApiError::from_store("plugin"))?;
        let host = self.0.plugins.as_deref();
        Ok(Json(PluginList::from_page(page, |p| out(p, host))))
    }

    /// Get a plugin
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: ApiKey, id: Path<String>) -> Result<Json<PluginOut>, ApiError> {
        let record = self
            .0
            .store
            .plugin(&auth.allowed(ApiAction::Read)?.id, &plugin_id(&id)?)
            .await
            .map_err(ApiError::from_store("plugin"))?;
        Ok(Json(out(record, self.0.plugins.as_deref())))
    }

    /// Change a plugin's name, config, secrets, allowed hosts, limits or live version
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<PluginPatch>,
    ) -> Result<Json<PluginOut>, ApiError> {
        let id = plugin_id(&id)?;
        let body = body.0;
        let mut invalid = Invalid::default();
        let name = body
            .name
            .as_deref()
            .and_then(|n| invalid.check(parse_plugin_name(n)));
        let hosts = body
            .allowed_hosts
            .as_deref()
            .and_then(|h| invalid.check(parse_allowed_hosts(h)));
        if let Some(config) = &body.config {
            check_names("config", config.keys(), &mut invalid);
        }
        if let Some(secrets) = &body.secrets {
            check_names("secrets", secrets.keys(), &mut invalid);
        }
        let limits = match (&body.limits, &self.0.plugins) {
            (Some(l), Some(host)) => invalid.check(limits_within(
                PluginLimits {
                    memory_mib: l.memory_mib,
                    fuel: l.fuel,
                    timeout_ms: l.timeout_ms,
                },
                host.caps(),
            )),
            _ => None,
        };
        invalid.into_result()?;
        let tenant = &auth.allowed(ApiAction::ManagePlugins)?.id;
        if let Some(version) = body.live_version {
            match self
                .0
                .store
                .make_plugin_version_live(tenant, &id, version)
                .await
            {
                Err(StoreError::NotFound) => {
                    return Err(self.no_version(tenant, &id, "live_version", version).await);
                }
                other => other.map_err(ApiError::from_store("plugin"))?,
            };
        }
        let changes = PluginChanges {
            name,
            config: body.config,
            secrets: body.secrets.map(|s| {
                s.into_iter()
                    .map(|(name, value)| (name, value.map(Secret::from)))
                    .collect()
            }),
            allowed_hosts: hosts,
            limits,
        };
        let record = self
            .0
            .store
            .update_plugin(tenant, &id, &changes)
            .await
            .map_err(ApiError::from_store("plugin"))?;
        Ok(Json(out(record, self.0.plugins.as_deref())))
    }

    /// Run the plugin on a sample order
    ///
    /// Shows what it returns and logs. Nothing is stored or delivered; keys it asks
    /// from a pool are samples, not taken from the pool.
    #[oai(path = "/:id/test-run", method = "post")]
    async fn test_run(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<TestRunIn>,
    ) -> Result<Json<TestRunOut>, ApiError> {
        let id = plugin_id(&id)?;
        let tenant = &auth.allowed(ApiAction::ManagePlugins)?.id;
        let quantity = parse_quantity("quantity", body.quantity.unwrap_or(1))?;
        let plugin = self
            .0
            .store
            .runnable_plugin_version(tenant, &id, body.version)
            .await;
        let plugin = match (plugin, body.version) {
            (Err(StoreError::NotFound), Some(version)) => {
                Err(self.no_version(tenant, &id, "version", version).await)
            }
            (plugin, _) => plugin.map_err(ApiError::from_store("plugin")),
        }?;
        let host = self.host()?;
        let compiled = compiled(host, &self.0.store, tenant, &plugin).await?;
        let context = kassa_plugins::CallContext {
            tenant: tenant.to_string(),
            secrets: plugin.secrets.into_iter().collect(),
            allowed_hosts: plugin.allowed_hosts,
            pool_keys: std::sync::Arc::new(|_, _| Box::pin(async { Ok(Vec::new()) })),
            limits: Some(host.limits_for(&plugin.limits)),
        };
        let run = host
            .test_run(
                &compiled,
                u32::try_from(quantity).unwrap_or(1),
                plugin.config.into_iter().collect(),
                context,
            )
            .await
            .map_err(|busy| {
                ApiError::TooManyRequests(
                    Json(Problem::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        Some(busy.to_string()),
                    )),
                    1,
                )
            })?;
        let outcome = run.outcome;
        let (licenses, error, retryable) = match outcome.result {
            Ok(l) => (Some(l), None, None),
            Err(PluginError::Failed { message, retryable }) => {
                (None, Some(message), Some(retryable))
            }
            Err(PluginError::Invalid(message)) => (None, Some(message), Some(false)),
        };
        Ok(Json(TestRunOut {
            licenses,
            error,
            retryable,
            logs: outcome.logs,
            duration_ms: run.duration_ms,
            limit: outcome.limit.map(|l| l.to_string()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RETRY_AFTER_UNAVAILABLE_SECS;

    /// A body already in memory (as the `Idempotency-Key` layer hands it on) becomes
    /// the upload's bytes without a copy: the component is held once.
    #[tokio::test]
    async fn an_upload_already_in_memory_is_not_copied() {
        let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
        wasm.resize(3 * 1024 * 1024, 7);
        let (at, len) = (wasm.as_ptr(), wasm.len());
        let (read, sha) = read_component(Body::from_vec(wasm), Some(len), 64 << 20)
            .await
            .unwrap();
        assert_eq!(read.len(), len);
        assert_eq!(read.as_ptr(), at, "the same allocation, not a copy");
        assert_eq!(
            sha,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&read))
        );
    }

    #[tokio::test]
    async fn an_upload_in_many_chunks_is_checked_as_it_arrives() {
        use sha2::Digest;
        let header = bytes_chunk(b"\0asm\x0d\0\x01\0");
        let rest = (0..40).map(|_| bytes_chunk(&[1; 1000]));
        let body = Body::from_bytes_stream(futures::stream::iter(
            std::iter::once(header)
                .chain(rest)
                .map(Ok::<_, std::io::Error>),
        ));
        let (read, sha) = read_component(body, None, 64 << 20).await.unwrap();
        assert_eq!(read.len(), 8 + 40_000);
        assert_eq!(sha, hex::encode(sha2::Sha256::digest(&read)));
        let too_big = Body::from_bytes_stream(futures::stream::iter(
            (0..40).map(|_| Ok::<_, std::io::Error>(bytes_chunk(b"\0asm\x0d\0\x01\0"))),
        ));
        assert!(matches!(
            read_component(too_big, None, 100).await,
            Err(Uploaded::TooLarge(_))
        ));
        let text = Body::from_vec(b"<html>not wasm</html>".to_vec());
        assert!(matches!(
            read_component(text, None, 100).await,
            Err(Uploaded::Invalid(_))
        ));
    }

    fn bytes_chunk(b: &[u8]) -> Vec<u8> {
        b.to_vec()
    }

    /// A database out of reach during an upload or a version's deletion is the 503
    /// every endpoint gives, not a 500.
    #[test]
    fn the_plugin_answers_keep_the_503_of_a_database_out_of_reach() {
        let unavailable = || {
            let problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
            ApiError::Unavailable(Json(problem), RETRY_AFTER_UNAVAILABLE_SECS)
        };
        assert!(matches!(
            Uploaded::from(unavailable()),
            Uploaded::Unavailable(_, RETRY_AFTER_UNAVAILABLE_SECS)
        ));
        assert!(matches!(
            VersionDeleted::from(unavailable()),
            VersionDeleted::Unavailable(_, RETRY_AFTER_UNAVAILABLE_SECS)
        ));
    }
}
