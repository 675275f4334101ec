//! Gets a paid line's licenses by its product's delivery method: keys from a license
//! pool, an answer from the merchant's license service, or the merchant's plugin run
//! in the sandbox. A failed try is recorded on the line with its next try, if any; a
//! plugin version on trial that crashes is taken off and the line tried again at once
//! with the version before it.
//!
//! The paid lines are their own queue: a dispatcher (`dispatch.rs`, as for webhooks)
//! claims due lines in batches and delivers them side by side, at most [`IN_FLIGHT`]
//! at once on a node (so plugin instances and license service calls stay bounded).
//! Each line's delivery is one transaction with what follows it; a line whose
//! delivery could not be recorded (the database failed) is claimed again once its
//! claim runs out, and a line delivered meanwhile is never delivered again.

use std::sync::Arc;

use kassa_domain::catalog::Delivery;
use kassa_domain::workflow::Refused;
use kassa_orders::OrdersError;
use kassa_store::{DueLine, Queue, Timestamp, Withdrawal};
use tokio::sync::watch;

use crate::dispatch::Dispatch;
use crate::workers::Workers;

/// Lines claimed at once, at most.
const BATCH: usize = 16;
/// Lines delivered at once on one node (as many as there were `deliver_line` workers).
const IN_FLIGHT: usize = 16;

/// The most of a license service's answer Kassa reads.
const MAX_SERVICE_RESPONSE: usize = 256 * 1024;

/// Reads `{"licenses": ["…"]}`: 1 to 1000 non-empty strings of at most 10 000
/// characters each.
fn parse_licenses(body: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        licenses: Vec<String>,
    }
    let answer: Answer = serde_json::from_str(body)
        .map_err(|e| format!("the license service's answer is not {{\"licenses\": [...]}}: {e}"))?;
    let licenses: Vec<String> = answer
        .licenses
        .into_iter()
        .map(|l| l.trim().to_owned())
        .collect();
    if licenses.is_empty() || licenses.len() > 1000 {
        return Err("the license service must answer 1 to 1000 licenses".into());
    }
    if licenses
        .iter()
        .any(|l| l.is_empty() || l.chars().count() > 10_000)
    {
        return Err("the license service answered an empty or oversized license".into());
    }
    Ok(licenses)
}

/// Delivers due lines until `stop` says so (or its sender goes), then finishes the
/// lines in flight.
pub(crate) async fn run(workers: Workers, stop: watch::Receiver<bool>) {
    Dispatch::new(Queue::Lines, BATCH, IN_FLIGHT)
        .run(
            workers.store.clone(),
            workers.heartbeat,
            stop,
            |store, claim, limit, lease| async move {
                store.claim_lines(&claim, limit, lease).await
            },
            |line: DueLine, taken| {
                let workers = workers.clone();
                tokio::spawn(async move {
                    let (tenant, order, line_no) =
                        (line.tenant_id.clone(), line.order_id.clone(), line.line_no);
                    let delivered =
                        crate::workers::in_scope_of(line.request_id.clone(), deliver(&workers, line))
                            .await;
                    if let Err(e) = delivered {
                        tracing::warn!(tenant = %tenant, order = %order, line = line_no, error = %e,
                            "a delivery was not recorded; the line is tried again once its claim runs out");
                    }
                    drop(taken);
                });
            },
        )
        .await;
}

/// Gets a paid line's license information by its product's delivery method.
async fn deliver(workers: &Workers, line: DueLine) -> Result<(), OrdersError> {
    let retry_in = |ms: i64| Some(Timestamp::now().millis() + ms);
    let mut counted = "delivered";
    let result = match &line.delivery {
        Delivery::LicensePool { .. } => {
            match kassa_orders::deliver_from_pool(&workers.store, &line).await {
                Ok(outcome) => {
                    tracing::info!(tenant = %line.tenant_id, order = %line.order_id, line = line.line_no, outcome = ?outcome, "pool delivery");
                    counted = match outcome {
                        kassa_orders::PoolDelivery::Delivered { .. } => "delivered",
                        kassa_orders::PoolDelivery::WaitingStock => "waiting_stock",
                        kassa_orders::PoolDelivery::AlreadyDelivered => "already_delivered",
                    };
                    Ok(())
                }
                // A key taken by a concurrent delivery: soon again, with other keys.
                Err(OrdersError::Conflict(why)) => Err((why, retry_in(200))),
                // A pool of the other mode never will do: failed, the owners told why.
                Err(OrdersError::Refused(why @ Refused::PoolOfOtherMode { .. })) => {
                    Err((why.to_string(), None))
                }
                Err(e) => Err((e.to_string(), retry_in(5_000))),
            }
        }
        Delivery::WebService { url, .. } => deliver_from_service(workers, &line, url).await,
        Delivery::Plugin { plugin_id, .. } => deliver_from_plugin(workers, &line, plugin_id).await,
    };
    let method = match &line.delivery {
        Delivery::LicensePool { .. } => "license_pool",
        Delivery::WebService { .. } => "web_service",
        Delivery::Plugin { .. } => "plugin",
    };
    let outcome = match (&result, retry_at_of(&result)) {
        (Ok(()), _) => counted,
        (Err(_), Some(_)) => "retrying",
        (Err(_), None) => "failed",
    };
    metrics::counter!("kassa_deliveries_total", "method" => method, "outcome" => outcome)
        .increment(1);
    if let Err((error, retry_at)) = result {
        tracing::warn!(tenant = %line.tenant_id, order = %line.order_id, line = line.line_no, error = %error, "delivery did not happen");
        let retry_at = retry_at.map(Timestamp::from);
        kassa_orders::delivery_failed(&workers.store, &line, &error, retry_at).await?;
    }
    Ok(())
}

/// When a failed try is tried again, if it is.
fn retry_at_of(result: &Result<(), (String, Option<i64>)>) -> Option<i64> {
    result.as_ref().err().and_then(|(_, at)| *at)
}

/// When a line's delivery from a service or plugin is tried next, on the webhook
/// retry schedule; `None` once the schedule is used up.
fn next_try(workers: &Workers, line: &DueLine) -> Option<i64> {
    let next = usize::try_from(line.attempts + 1).unwrap_or(usize::MAX);
    workers.schedule.delay_before(next).map(|d| {
        Timestamp::now()
            .millis()
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// Asks the merchant's license service for the line's licenses: a POST signed like
/// webhooks (with the store's `web_service_signing_secret`), answered with
/// `{"licenses": ["…"]}`. Retried on the webhook schedule, then failed.
async fn deliver_from_service(
    workers: &Workers,
    line: &DueLine,
    url: &str,
) -> Result<(), (String, Option<i64>)> {
    let next_try = || next_try(workers, line);
    let order = workers
        .store
        .order(&line.tenant_id, &line.order_id)
        .await
        .map_err(|e| (e.to_string(), next_try()))?;
    // Both secrets while a rotation's overlap lasts: `v1,<new> v1,<previous>`.
    let secrets = workers
        .store
        .service_secrets(&line.tenant_id)
        .await
        .map_err(|e| (e.to_string(), next_try()))?;
    let key = format!("ful_{}_{}", line.order_id, line.line_no);
    let body = serde_json::json!({
        "type": "license.request",
        "idempotency_key": key,
        "quantity": line.quantity,
        "product_id": line.product_id,
        "line": order.lines.iter().find(|l| l.line_no == line.line_no),
        "customer": order.customer,
        "test_mode": order.test_mode,
        "order": order,
    });
    let attempt = workers
        .sender
        .send_reading(
            url,
            &key,
            Timestamp::now().0.timestamp(),
            body.to_string().as_bytes(),
            &secrets.valid(),
            MAX_SERVICE_RESPONSE,
        )
        .await;
    if !attempt.succeeded() {
        let status = attempt
            .status
            .map_or("no response".to_owned(), |s| format!("HTTP {s}"));
        let said: String = attempt.response.chars().take(300).collect();
        return Err((
            format!("the license service answered {status}: {said}"),
            next_try(),
        ));
    }
    let licenses = parse_licenses(&attempt.response).map_err(|e| (e, next_try()))?;
    match kassa_orders::deliver_with(&workers.store, line, &licenses).await {
        Ok(_) => {
            tracing::info!(tenant = %line.tenant_id, order = %line.order_id, line = line.line_no, "web service delivery");
            Ok(())
        }
        Err(e) => Err((e.to_string(), next_try())),
    }
}

/// Runs the product's plugin for the line, in the sandbox.
async fn deliver_from_plugin(
    workers: &Workers,
    line: &DueLine,
    plugin_id: &kassa_domain::ids::PluginId,
) -> Result<(), (String, Option<i64>)> {
    let next_try = || next_try(workers, line);
    let Some(host) = &workers.plugins else {
        return Err(("this worker runs no plugins".to_owned(), next_try()));
    };
    let plugin = workers
        .store
        .runnable_plugin(&line.tenant_id, plugin_id)
        .await
        .map_err(|e| (format!("the plugin cannot be loaded: {e}"), None))?;
    // A delivery never waits on a compiler: a version this node has not compiled yet
    // is prepared in the background and the delivery tried again shortly.
    let Some(compiled) = host.ready(&plugin.sha256).await else {
        if !host.is_preparing(&plugin.sha256) {
            let wasm = workers
                .store
                .plugin_version_wasm(&line.tenant_id, plugin_id, plugin.version)
                .await
                .map_err(|e| (format!("the plugin cannot be loaded: {e}"), next_try()))?;
            host.prepare_in_background(plugin.sha256.clone(), wasm);
        }
        return Err((
            "the plugin is being prepared on this node; the delivery is tried again shortly"
                .to_owned(),
            Some(Timestamp::now().millis() + 1_000),
        ));
    };
    let order = workers
        .store
        .order(&line.tenant_id, &line.order_id)
        .await
        .map_err(|e| (e.to_string(), next_try()))?;
    let name = order
        .lines
        .iter()
        .find(|l| l.line_no == line.line_no)
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let request = kassa_plugins::Request {
        order_id: line.order_id.clone(),
        line_no: u32::try_from(line.line_no).unwrap_or(0),
        product_id: line.product_id.clone(),
        product_name: name,
        quantity: u32::try_from(line.quantity).unwrap_or(0),
        customer: kassa_plugins::Customer {
            email: order.customer.email.clone().unwrap_or_default(),
            name: order.customer.name.clone(),
        },
        test_mode: order.test_mode,
        config: plugin.config.into_iter().collect(),
        idempotency_key: format!("ful_{}_{}", line.order_id, line.line_no),
    };
    let (store, tenant, order_id, line_no) = (
        workers.store.clone(),
        line.tenant_id.clone(),
        line.order_id.clone(),
        line.line_no,
    );
    let context = kassa_plugins::CallContext {
        limits: Some(host.limits_for(&plugin.limits)),
        tenant: line.tenant_id.to_string(),
        secrets: plugin.secrets.into_iter().collect(),
        allowed_hosts: plugin.allowed_hosts,
        pool_keys: Arc::new(move |pool, count| {
            let (store, tenant, order_id) = (store.clone(), tenant.clone(), order_id.clone());
            Box::pin(async move {
                store
                    .take_keys_for_line(&tenant, &order_id, line_no, &pool, i64::from(count))
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
    };
    let started = std::time::Instant::now();
    let outcome = host.call(&compiled, &request, context).await;
    metrics::histogram!("kassa_plugin_call_seconds").record(started.elapsed().as_secs_f64());
    for log in &outcome.logs {
        tracing::info!(tenant = %line.tenant_id, order = %line.order_id, plugin = %plugin_id, "plugin log: {log}");
    }
    let (message, retry_at) = match outcome.result {
        Ok(licenses) => {
            kassa_orders::deliver_with(&workers.store, line, &licenses)
                .await
                .map_err(|e| (e.to_string(), next_try()))?;
            if !plugin.proven {
                // Off trial from now on; a failure to say so only keeps it on trial.
                if let Err(e) = (workers.store)
                    .plugin_version_delivered(&line.tenant_id, plugin_id, plugin.version)
                    .await
                {
                    tracing::warn!(tenant = %line.tenant_id, plugin = %plugin_id, error = %e, "a plugin version's first delivery was not recorded");
                }
            }
            return Ok(());
        }
        Err(kassa_plugins::PluginError::Failed { message, retryable }) => {
            (message, if retryable { next_try() } else { None })
        }
        Err(kassa_plugins::PluginError::Invalid(message)) => (message, None),
    };
    if !outcome.crashed {
        return Err((message, retry_at));
    }
    // A version that breaks before it ever delivered does not take orders down with it.
    let withdrawal = (workers.store)
        .withdraw_plugin_version(&line.tenant_id, plugin_id, plugin.version, &message)
        .await
        .map_err(|e| (e.to_string(), next_try()))?;
    let again = Some(Timestamp::now().millis());
    let version = plugin.version;
    Err(match withdrawal {
        Withdrawal::TookOff { back_to } => {
            tracing::warn!(tenant = %line.tenant_id, plugin = %plugin_id, version, back_to, "a plugin version on trial failed and was taken off");
            (
                format!(
                    "{message} (version {version} had not delivered yet: Kassa took it off \
                     and made version {back_to} live again, which delivers this line next)"
                ),
                again,
            )
        }
        Withdrawal::Replaced { live } => (
            format!(
                "{message} (version {version} is no longer live; version {live} delivers this line next)"
            ),
            again,
        ),
        Withdrawal::Stays => (message, retry_at),
    })
}
