//! Plugins: the list with each plugin's live version, uploading a plugin or a new
//! version of one (a `.wasm` component, checked against Kassa's world before it is
//! stored), a plugin's page with its versions, config, secrets (their values are
//! written, never shown), allowed hosts, and a test run on a sample order showing the
//! keys, the logs, the time taken and the limit hit if any.

use std::collections::BTreeMap;
use std::sync::Arc;

use kassa_domain::account::Permission;
use kassa_domain::catalog::parse_quantity;
use kassa_domain::ids::PluginId;
use kassa_domain::plugin::{parse_allowed_hosts, parse_plugin_name, parse_setting_name};
use kassa_domain::{Invalid, Secret};
use kassa_plugins::{PluginError, PluginHost};
use kassa_store::{PluginChanges, PluginRecord, StoreError};
use minijinja::{Value, context};
use poem::http::StatusCode;
use poem::web::{Data, Multipart, Path};
use poem::{Body, Request, Response, handler};

use crate::page::{
    Ctx, Errors, Staff, Upload, all, errors_of, failure, field, multipart, not_found, one_error,
    page, query, redirect, size, staff, staff_form, staff_posting, when, with_notice,
};

/// Empty config rows offered below the plugin's entries.
const BLANK_ROWS: usize = 3;
/// Versions listed on a plugin's page.
const VERSIONS_SHOWN: i64 = 50;
fn host(ctx: &Ctx) -> Result<&Arc<PluginHost>, Response> {
    ctx.plugins
        .as_ref()
        .ok_or_else(|| failure("no plugin host in this process"))
}

/// What the upload forms need to say about the size limit.
fn upload_limit(ctx: &Ctx) -> Value {
    context! {
        max_file_bytes => ctx.max_component_bytes,
        max_size => size(i64::try_from(ctx.max_component_bytes).unwrap_or(i64::MAX)),
    }
}

fn view(p: &PluginRecord) -> Value {
    context! {
        id => p.id.as_str(), name => p.name.clone(), version => p.version,
        on_trial => !p.live.proven, fallback_version => p.live.fallback,
        sha256 => p.sha256.clone(), size => size(p.size),
        secret_names => p.secret_names.clone(), allowed_hosts => p.allowed_hosts.clone(),
        created_at => when(&p.created_at), updated_at => when(&p.updated_at),
    }
}

async fn list_page(
    ctx: &Ctx,
    staff: &Staff,
    status: StatusCode,
    name: &str,
    errors: Errors,
    notice: Option<String>,
) -> Response {
    let plugins = match ctx.web.store.list_plugins(&staff.tenant.id, &all()).await {
        Ok(p) => p.data,
        Err(e) => return failure(e),
    };
    let plugins: Vec<_> = plugins.iter().map(view).collect();
    page(
        staff,
        status,
        "plugins.html",
        "plugins",
        context! { plugins, name, errors, notice, upload => upload_limit(ctx) },
    )
}

#[handler]
pub async fn list(ctx: Data<&Ctx>, req: &Request) -> Response {
    let staff = match staff(&ctx, req, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    list_page(
        &ctx,
        &staff,
        StatusCode::OK,
        "",
        Errors::new(),
        query(req, "notice"),
    )
    .await
}

/// The uploaded component with its SHA-256 when it is one Kassa can run (checked and
/// compiled on a blocking thread, so it is ready to run); otherwise what is wrong with
/// it, for the `file` field.
async fn check_upload(
    host: &Arc<PluginHost>,
    file: Option<Upload>,
) -> Result<(Vec<u8>, String), Errors> {
    let Some(file) = file else {
        return Err(one_error(
            "file",
            "Choose a plugin file: a .wasm component built for wasm32-wasip2.",
        ));
    };
    let refused = |why: String| {
        one_error(
            "file",
            format!("This file is not a plugin Kassa can run: {why}."),
        )
    };
    if file.bytes.len() > host.policy().max_component_bytes {
        return Err(refused(format!(
            "it is larger than {}, the most this Kassa accepts",
            size(i64::try_from(host.policy().max_component_bytes).unwrap_or(i64::MAX))
        )));
    }
    let sha = kassa_plugins::sha256_hex(&file.bytes);
    match host.prepare_async(sha.clone(), file.bytes).await {
        (bytes, Ok(_)) => Ok((bytes, sha)),
        (_, Err(PluginError::Invalid(why))) => Err(refused(why)),
        (_, Err(e)) => Err(refused(format!("it could not be compiled: {e}"))),
    }
}

#[handler]
pub async fn create(ctx: Data<&Ctx>, req: &Request, parts: Multipart) -> Response {
    let (form, file) = multipart(parts, "file").await;
    let staff = match staff_posting(&ctx, req, &form, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let host = match host(&ctx) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let typed = field(&form, "name");
    // Without a name, the file's (`keygen.wasm` → `keygen`).
    let stem = file.as_ref().map_or("", |f| {
        f.file_name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or_default()
            .trim_end_matches(".wasm")
    });
    let mut errors = Errors::new();
    let name = match parse_plugin_name(if typed.is_empty() { stem } else { typed }) {
        Ok(n) => Some(n),
        Err(invalid) => {
            errors.extend(errors_of(&invalid));
            None
        }
    };
    let checked = match check_upload(host, file).await {
        Ok(checked) => Some(checked),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let (Some(name), Some((bytes, sha))) = (name, checked) else {
        return list_page(
            &ctx,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            typed,
            errors,
            None,
        )
        .await;
    };
    match ctx
        .web
        .store
        .create_plugin(&staff.tenant.id, &name, bytes, &sha)
        .await
    {
        Ok(p) => redirect(&with_notice(
            &format!("/dashboard/plugins/{}", p.id),
            "Plugin uploaded. Set its config and secrets, then try it with a test run.",
        )),
        Err(e) => failure(e),
    }
}

/// What was typed in the config rows, in order: (key, value).
fn typed_config(form: &[(String, String)]) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for i in 0.. {
        let Some(key) = kassa_web::page::form_value(form, &format!("config[{i}].key")) else {
            break;
        };
        let value = kassa_web::page::form_value(form, &format!("config[{i}].value"));
        rows.push((key.trim().to_owned(), value.unwrap_or_default().to_owned()));
    }
    rows
}

/// The plugin's page. `extra` may carry errors, what was typed (`config_rows`,
/// `hosts`), and a test run's result.
async fn plugin_page(
    ctx: &Ctx,
    staff: &Staff,
    req: &Request,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let Ok(id) = PluginId::parse(id) else {
        return not_found(staff);
    };
    let tenant = &staff.tenant.id;
    let plugin = match ctx.web.store.plugin(tenant, &id).await {
        Ok(p) => p,
        Err(StoreError::NotFound) => return not_found(staff),
        Err(e) => return failure(e),
    };
    let versions = match ctx
        .web
        .store
        .list_plugin_versions(tenant, &id, None, VERSIONS_SHOWN)
        .await
    {
        Ok(v) => v.data,
        Err(e) => return failure(e),
    };
    let versions: Vec<_> = versions
        .iter()
        .map(|v| {
            context! {
                version => v.version, sha256 => v.sha256.clone(), size => size(v.size),
                live => v.live, delivered => v.proven, withdrawn => v.withdrawn.clone(),
                withdrawn_at => v.withdrawn_at.as_ref().map(when),
                created_at => when(&v.created_at),
            }
        })
        .collect();
    let mut rows: Vec<(String, String)> = plugin.config.clone().into_iter().collect();
    rows.extend(std::iter::repeat_n(
        (String::new(), String::new()),
        BLANK_ROWS,
    ));
    let config_rows: Vec<_> = rows
        .into_iter()
        .map(|(key, value)| context! { key, value })
        .collect();
    // What `extra` does not say, the stored plugin does (the first map merged wins).
    let shown = context! {
        plugin => view(&plugin), versions, notice => query(req, "notice"),
        upload => upload_limit(ctx),
    };
    let stored = context! {
        config_rows, hosts => plugin.allowed_hosts.join("\n"), quantity => 1,
        errors => Errors::new(),
    };
    page(
        staff,
        status,
        "plugin.html",
        "plugins",
        context! { ..shown, ..extra, ..stored },
    )
}

/// The plugin's page again, with what was wrong in a form.
async fn refused(ctx: &Ctx, staff: &Staff, req: &Request, id: &str, extra: Value) -> Response {
    plugin_page(ctx, staff, req, id, StatusCode::UNPROCESSABLE_ENTITY, extra).await
}

#[handler]
pub async fn show(ctx: Data<&Ctx>, req: &Request, Path(id): Path<String>) -> Response {
    let staff = match staff(&ctx, req, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    plugin_page(&ctx, &staff, req, &id, StatusCode::OK, context! {}).await
}

#[handler]
pub async fn add_version(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    parts: Multipart,
) -> Response {
    let (form, file) = multipart(parts, "file").await;
    let staff = match staff_posting(&ctx, req, &form, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let host = match host(&ctx) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let Ok(plugin) = PluginId::parse(&id) else {
        return not_found(&staff);
    };
    match ctx.web.store.plugin(&staff.tenant.id, &plugin).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return not_found(&staff),
        Err(e) => return failure(e),
    }
    let (bytes, sha) = match check_upload(host, file).await {
        Ok(checked) => checked,
        Err(errors) => {
            let extra = context! { errors };
            return refused(&ctx, &staff, req, &id, extra).await;
        }
    };
    match ctx
        .web
        .store
        .add_plugin_version(&staff.tenant.id, &plugin, bytes, &sha, true)
        .await
    {
        Ok((_, version)) => redirect(&with_notice(
            &format!("/dashboard/plugins/{id}"),
            &format!("Version {version} uploaded: it runs from now on."),
        )),
        Err(StoreError::NotFound) => not_found(&staff),
        Err(e) => failure(e),
    }
}

/// Makes a stored version the one that runs (a rollback, or a version taken off
/// tried again).
#[handler]
pub async fn make_live(
    ctx: Data<&Ctx>,
    req: &Request,
    Path((id, version)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (staff, _) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (Ok(plugin), Ok(version)) = (PluginId::parse(&id), version.parse::<i64>()) else {
        return not_found(&staff);
    };
    match ctx
        .web
        .store
        .make_plugin_version_live(&staff.tenant.id, &plugin, version)
        .await
    {
        Ok(p) => {
            let notice = if p.live.proven {
                format!("Version {version} runs from now on.")
            } else {
                format!("Version {version} runs from now on, on trial until it delivers a line.")
            };
            redirect(&with_notice(&format!("/dashboard/plugins/{id}"), &notice))
        }
        Err(StoreError::NotFound) => not_found(&staff),
        Err(e) => failure(e),
    }
}

/// Saves `changes`, then back to the plugin's page with `notice`; a 404 for another
/// store's plugin.
async fn save(
    ctx: &Ctx,
    staff: &Staff,
    id: &str,
    changes: PluginChanges,
    notice: &str,
) -> Response {
    let Ok(plugin) = PluginId::parse(id) else {
        return not_found(staff);
    };
    match ctx
        .web
        .store
        .update_plugin(&staff.tenant.id, &plugin, &changes)
        .await
    {
        Ok(_) => redirect(&with_notice(&format!("/dashboard/plugins/{id}"), notice)),
        Err(StoreError::NotFound) => not_found(staff),
        Err(e) => failure(e),
    }
}

/// The config rows as entries: empty rows are skipped, every key named once.
fn parse_config(rows: &[(String, String)]) -> Result<BTreeMap<String, String>, Invalid> {
    let mut invalid = Invalid::default();
    let mut config = BTreeMap::new();
    for (i, (key, value)) in rows.iter().enumerate() {
        let field = format!("config[{i}].key");
        if key.is_empty() && value.is_empty() {
            continue;
        }
        if key.is_empty() {
            invalid.push(field, "Give this value a name.");
            continue;
        }
        if let Some(key) = invalid.check(parse_setting_name(&field, key))
            && config.insert(key, value.clone()).is_some()
        {
            invalid.push(field, "This name is already used above.");
        }
    }
    invalid.into_result().map(|()| config)
}

#[handler]
pub async fn save_config(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let rows = typed_config(&form);
    match parse_config(&rows) {
        Ok(config) => {
            let changes = PluginChanges {
                config: Some(config),
                ..PluginChanges::default()
            };
            save(&ctx, &staff, &id, changes, "Config saved.").await
        }
        Err(invalid) => {
            let config_rows: Vec<_> = rows
                .into_iter()
                .map(|(key, value)| context! { key, value })
                .collect();
            let extra = context! { errors => errors_of(&invalid), config_rows };
            refused(&ctx, &staff, req, &id, extra).await
        }
    }
}

#[handler]
pub async fn set_secret(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let typed = field(&form, "secret_name");
    // The value as typed: a secret may well begin or end with a space.
    let value = kassa_web::page::form_value(&form, "secret_value").unwrap_or_default();
    let mut invalid = Invalid::default();
    let name = invalid.check(parse_setting_name("secret_name", typed));
    if value.is_empty() {
        invalid.push("secret_value", "Type the value of the secret.");
    }
    let Some(name) = name.filter(|_| invalid.errors.is_empty()) else {
        // The value is not sent back to the page.
        let extra = context! { errors => errors_of(&invalid), secret_name => typed };
        return refused(&ctx, &staff, req, &id, extra).await;
    };
    let notice = format!("Secret {name} saved.");
    let changes = PluginChanges {
        secrets: Some(BTreeMap::from([(
            name,
            Some(Secret::from(value.to_owned())),
        )])),
        ..PluginChanges::default()
    };
    save(&ctx, &staff, &id, changes, &notice).await
}

#[handler]
pub async fn remove_secret(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let name = field(&form, "name").to_owned();
    let notice = format!("Secret {name} removed.");
    let changes = PluginChanges {
        secrets: Some(BTreeMap::from([(name, None)])),
        ..PluginChanges::default()
    };
    save(&ctx, &staff, &id, changes, &notice).await
}

#[handler]
pub async fn save_hosts(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let typed = field(&form, "allowed_hosts");
    let lines: Vec<String> = typed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    match parse_allowed_hosts(&lines) {
        Ok(hosts) => {
            let changes = PluginChanges {
                allowed_hosts: Some(hosts),
                ..PluginChanges::default()
            };
            save(&ctx, &staff, &id, changes, "Allowed hosts saved.").await
        }
        Err(invalid) => {
            let wrong: Vec<String> = invalid
                .errors
                .iter()
                .filter_map(|e| {
                    let i: usize = e
                        .field
                        .strip_prefix("allowed_hosts[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()?;
                    Some(format!("{:?} {}", lines.get(i)?, e.message))
                })
                .collect();
            let extra = context! {
                errors => one_error("allowed_hosts", wrong.join("; ")), hosts => typed,
            };
            refused(&ctx, &staff, req, &id, extra).await
        }
    }
}

/// Runs the live version on a sample order and shows what it did, on this answer.
#[handler]
pub async fn test_run(
    ctx: Data<&Ctx>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (staff, form) = match staff_form(&ctx, req, body, Permission::Develop).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let host = match host(&ctx) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let Ok(plugin_id) = PluginId::parse(&id) else {
        return not_found(&staff);
    };
    let typed = field(&form, "quantity");
    let quantity = match typed.parse::<i64>() {
        Ok(n) => parse_quantity("quantity", n),
        Err(_) => Err(Invalid::field("quantity", "must be a whole number")),
    };
    let quantity = match quantity {
        Ok(q) => u32::try_from(q).unwrap_or(1),
        Err(invalid) => {
            let extra = context! { errors => errors_of(&invalid), quantity => typed };
            return refused(&ctx, &staff, req, &id, extra).await;
        }
    };
    let plugin = match ctx
        .web
        .store
        .runnable_plugin(&staff.tenant.id, &plugin_id)
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound) => return not_found(&staff),
        Err(e) => return failure(e),
    };
    let compiled = match host.ready(&plugin.sha256).await {
        Some(c) => c,
        None => {
            let wasm = match ctx
                .web
                .store
                .plugin_version_wasm(&staff.tenant.id, &plugin.id, plugin.version)
                .await
            {
                Ok(wasm) => wasm,
                Err(e) => return failure(e),
            };
            match host.prepare_async(plugin.sha256.clone(), wasm).await.1 {
                Ok(c) => c,
                Err(e) => return failure(e),
            }
        }
    };
    let context = kassa_plugins::CallContext {
        tenant: staff.tenant.id.to_string(),
        secrets: plugin.secrets.into_iter().collect(),
        allowed_hosts: plugin.allowed_hosts,
        pool_keys: Arc::new(|_, _| Box::pin(async { Ok(Vec::new()) })),
        limits: Some(host.limits_for(&plugin.limits)),
    };
    let run = match host
        .test_run(
            &compiled,
            quantity,
            plugin.config.into_iter().collect(),
            context,
        )
        .await
    {
        Ok(run) => run,
        Err(busy) => {
            let extra = context! {
                errors => one_error("quantity", format!("{busy}.")), quantity
            };
            return refused(&ctx, &staff, req, &id, extra).await;
        }
    };
    let (licenses, error, retryable) = match run.outcome.result {
        Ok(l) => (Some(l), None, None),
        Err(PluginError::Failed { message, retryable }) => (None, Some(message), Some(retryable)),
        Err(PluginError::Invalid(message)) => (None, Some(message), Some(false)),
    };
    let result = context! {
        version => plugin.version, quantity, licenses, error, retryable,
        logs => run.outcome.logs, duration_ms => run.duration_ms,
        limit => run.outcome.limit.map(|l| l.to_string()),
    };
    plugin_page(
        &ctx,
        &staff,
        req,
        &id,
        StatusCode::OK,
        context! { result, quantity },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn config_rows_become_entries() {
        let config = parse_config(&rows(&[("prefix", "ACME"), ("", ""), ("mode", "")])).unwrap();
        assert_eq!(
            config,
            BTreeMap::from([
                ("mode".to_owned(), String::new()),
                ("prefix".to_owned(), "ACME".to_owned())
            ])
        );
    }

    #[test]
    fn config_rows_say_which_row_is_wrong() {
        let invalid = parse_config(&rows(&[
            ("a", "1"),
            ("", "orphan"),
            ("a", "2"),
            ("b c", ""),
        ]))
        .unwrap_err();
        let fields: Vec<_> = invalid.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["config[1].key", "config[2].key", "config[3].key"]);
    }
}
