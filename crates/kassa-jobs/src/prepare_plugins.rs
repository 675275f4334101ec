//! At start, prepares the live version of every store's plugins: read back compiled
//! from the host's disk cache, or compiled (one at a time, on a blocking thread) when
//! this node has never seen it, so deliveries find them ready and never wait on a
//! compiler.

use std::sync::Arc;

use kassa_plugins::PluginHost;
use kassa_store::Store;

pub(crate) async fn run(store: Store, host: Arc<PluginHost>) {
    let versions = match store.live_plugin_versions().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "the plugins to prepare could not be listed");
            return;
        }
    };
    let started = std::time::Instant::now();
    let mut compiled = 0;
    for v in &versions {
        if host.ready(&v.sha256).await.is_some() {
            continue;
        }
        match store.plugin_version_wasm(&v.tenant, &v.id, v.version).await {
            Ok(wasm) => {
                host.prepare_once(v.sha256.clone(), wasm).await;
                compiled += 1;
            }
            Err(e) => {
                tracing::warn!(plugin = %v.id, version = v.version, error = %e, "a plugin version could not be read");
            }
        }
    }
    tracing::info!(
        plugins = versions.len(),
        compiled,
        ms = started.elapsed().as_millis() as u64,
        "plugins ready"
    );
}
