//! Prints the median cost of one plugin fulfillment (instantiate + call) of the
//! example key generator in Kassa's sandbox (fuel, epoch deadline, memory limits,
//! pooling allocator, cached `InstancePre`), next to a bare wasmtime
//! instantiate-and-call of the same component with default settings.
//!
//!     cargo build --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release
//!     cargo run --release -p kassa-plugins --example plugin-bench
//!
//! Targets: within 2x of the bare figure, and under 100 µs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_plugins::{CallContext, Customer, HostPolicy, PluginHost, Request};

const RUNS: usize = 3_000;
const WARM_UP: usize = 300;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::var("KASSA_PLUGINS_DIR").unwrap_or_else(|_| {
        format!(
            "{}/../../plugins/target/wasm32-wasip2/release",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let bytes = std::fs::read(format!("{dir}/kassa_keygen.wasm"))
        .expect("build the plugins first (see this file's header)");
    let request = Request {
        order_id: "ord_01jz0000000000000000000000".into(),
        line_no: 1,
        product_id: "prd_01jz0000000000000000000000".into(),
        product_name: "Pro".into(),
        quantity: 1,
        customer: Customer {
            email: "buyer@example.com".into(),
            name: None,
        },
        test_mode: false,
        config: vec![("prefix".into(), "ACME".into())],
        idempotency_key: "k".into(),
    };
    let context = || CallContext {
        tenant: "ten_bench".into(),
        secrets: HashMap::from([("signing-key".to_owned(), "s3cret".into())]),
        allowed_hosts: vec![],
        pool_keys: Arc::new(|_, _| Box::pin(async { Err("no pools in the benchmark".to_owned()) })),
    };

    let host = PluginHost::new(HostPolicy::default()).expect("a plugin host");
    let compiled = host
        .prepare(&kassa_plugins::sha256_hex(&bytes), &bytes)
        .expect("the key generator compiles");
    let mut kassa = Vec::with_capacity(RUNS);
    for i in 0..RUNS + WARM_UP {
        let started = Instant::now();
        let outcome = host.call(&compiled, &request, context()).await;
        let took = started.elapsed();
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        if i >= WARM_UP {
            kassa.push(took);
        }
    }

    let bare_host = kassa_plugins::bare::Bare::new(&bytes).expect("bare wasmtime");
    let mut bare = Vec::with_capacity(RUNS);
    for i in 0..RUNS + WARM_UP {
        let started = Instant::now();
        let result = bare_host.call(&request, context()).await;
        let took = started.elapsed();
        assert!(result.is_ok(), "{result:?}");
        if i >= WARM_UP {
            bare.push(took);
        }
    }

    let (k, b) = (median(kassa), median(bare));
    println!("plugin fulfillment, key generator, median of {RUNS} (after {WARM_UP} warm-up):");
    println!(
        "  kassa sandbox (instantiate + call): {:>8.1} µs",
        k.as_secs_f64() * 1e6
    );
    println!(
        "  bare wasmtime (instantiate + call): {:>8.1} µs",
        b.as_secs_f64() * 1e6
    );
    println!(
        "  ratio: {:.2}x (target within 2x, and under 100 µs)",
        k.as_secs_f64() / b.as_secs_f64()
    );
}
