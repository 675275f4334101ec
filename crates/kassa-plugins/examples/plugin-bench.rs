//! Prints what a plugin costs, per language: upload-to-ready (check and compile), ready
//! again after a restart (compiled code read back from disk), the cold first call,
//! warm calls (instantiate + call, p50 and p99), and the linear memory of one instance;
//! each beside a bare wasmtime set-up (default engine, no limits, no pooling) running
//! the same component.
//!
//!     bash tests/run.sh --no-run   # builds the Rust, Python and JavaScript examples
//!     cargo run --release -p kassa-plugins --example plugin-bench
//!
//! Components are read from `KASSA_PLUGINS_DIR` (Rust, default
//! `plugins/target/wasm32-wasip2/release`) and `KASSA_LANG_PLUGINS_DIR` (Python and
//! JavaScript, default `target/plugin-langs`); a missing one is skipped. The
//! JavaScript example calls a license service, answered by a tiny server on loopback.
//! Targets (issue 13): warm p99 under 10 ms for Python and JavaScript; Rust under
//! 100 µs and within 2x of bare wasmtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_plugins::{CallContext, Customer, HostPolicy, PluginHost, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Case {
    language: &'static str,
    file: &'static str,
    config: Vec<(String, String)>,
    secrets: Vec<(&'static str, &'static str)>,
    hosts: Vec<String>,
    runs: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

/// A license service on loopback answering every POST with one key.
async fn license_service() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!(
        "http://{}/licenses",
        listener.local_addr().expect("an address")
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = r#"{"licenses":["BENCH-KEY"]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(answer.as_bytes()).await.ok();
            });
        }
    });
    url
}

fn component(case: &Case) -> Option<Vec<u8>> {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = if case.file.starts_with("kassa_") {
        std::env::var("KASSA_PLUGINS_DIR")
            .unwrap_or_else(|_| format!("{root}/../../plugins/target/wasm32-wasip2/release"))
    } else {
        std::env::var("KASSA_LANG_PLUGINS_DIR")
            .unwrap_or_else(|_| format!("{root}/../../target/plugin-langs"))
    };
    std::fs::read(format!("{dir}/{}.wasm", case.file)).ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let service = license_service().await;
    let cases = [
        Case {
            language: "Rust (keygen)",
            file: "kassa_keygen",
            config: vec![("prefix".into(), "ACME".into())],
            secrets: vec![("signing-key", "s3cret")],
            hosts: vec![],
            runs: 3_000,
        },
        Case {
            language: "Python (python-keygen)",
            file: "python_keygen",
            config: vec![("prefix".into(), "ACME".into())],
            secrets: vec![("signing-key", "s3cret")],
            hosts: vec![],
            runs: 300,
        },
        Case {
            language: "Go (go-keygen)",
            file: "go_keygen",
            config: vec![("prefix".into(), "ACME".into())],
            secrets: vec![("signing-key", "s3cret")],
            hosts: vec![],
            runs: 1_000,
        },
        Case {
            language: "JavaScript (js-license-client)",
            file: "js_license_client",
            config: vec![("url".into(), service.clone())],
            secrets: vec![("api-token", "tok")],
            hosts: vec!["127.0.0.1".into()],
            runs: 300,
        },
    ];
    let cache = tempfile::tempdir().expect("a temporary directory");
    let policy = HostPolicy {
        allow_private_network: true,
        allow_plain_http: true,
        cache_dir: Some(cache.path().to_owned()),
        ..HostPolicy::default()
    };
    let host = PluginHost::new(policy.clone()).expect("a plugin host");
    println!(
        "plugin bench: one fulfillment = instantiate + call; warm figures after 10% warm-up\n"
    );
    for case in &cases {
        let Some(bytes) = component(case) else {
            println!("{}: {}.wasm not built, skipped\n", case.language, case.file);
            continue;
        };
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
            config: case.config.clone(),
            idempotency_key: "k".into(),
        };
        let context = || CallContext {
            tenant: "ten_bench".into(),
            secrets: case
                .secrets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                .collect::<HashMap<_, _>>(),
            allowed_hosts: case.hosts.clone(),
            pool_keys: Arc::new(|_, _| {
                Box::pin(async { Err("no pools in the benchmark".to_owned()) })
            }),
            limits: None,
        };
        let sha = kassa_plugins::sha256_hex(&bytes);

        let started = Instant::now();
        let compiled = host.prepare(&sha, &bytes).expect("the component compiles");
        let ready = started.elapsed();
        let restarted = PluginHost::new(policy.clone()).expect("a second host");
        let started = Instant::now();
        restarted.load(&sha).expect("read back from disk");
        let ready_again = started.elapsed();

        let started = Instant::now();
        let first = host.call(&compiled, &request, context()).await;
        let cold = started.elapsed();
        assert!(first.result.is_ok(), "{:?} {:?}", first.result, first.logs);
        let mut warm = Vec::with_capacity(case.runs);
        for i in 0..case.runs + case.runs / 10 {
            let started = Instant::now();
            let outcome = host.call(&compiled, &request, context()).await;
            let took = started.elapsed();
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            if i >= case.runs / 10 {
                warm.push(took);
            }
        }
        warm.sort();

        let started = Instant::now();
        let bare_host = kassa_plugins::bare::Bare::new(&bytes).expect("bare wasmtime");
        let bare_ready = started.elapsed();
        let started = Instant::now();
        bare_host
            .call(&request, context())
            .await
            .expect("a bare call");
        let bare_cold = started.elapsed();
        let mut bare = Vec::with_capacity(case.runs);
        for i in 0..case.runs + case.runs / 10 {
            let started = Instant::now();
            let result = bare_host.call(&request, context()).await;
            let took = started.elapsed();
            assert!(result.is_ok(), "{result:?}");
            if i >= case.runs / 10 {
                bare.push(took);
            }
        }
        bare.sort();

        println!(
            "{} — {:.1} MiB component, {} warm runs",
            case.language,
            bytes.len() as f64 / (1024.0 * 1024.0),
            case.runs
        );
        println!("                      kassa sandbox      bare wasmtime");
        println!(
            "  upload to ready     {:>12}      {:>12}",
            ms(ready),
            ms(bare_ready)
        );
        println!(
            "  ready after restart {:>12}      (compiles again)",
            ms(ready_again)
        );
        println!(
            "  cold first call     {:>12}      {:>12}",
            ms(cold),
            ms(bare_cold)
        );
        println!(
            "  warm p50            {:>12}      {:>12}",
            ms(percentile(&warm, 0.5)),
            ms(percentile(&bare, 0.5))
        );
        println!(
            "  warm p99            {:>12}      {:>12}",
            ms(percentile(&warm, 0.99)),
            ms(percentile(&bare, 0.99))
        );
        println!(
            "  memory per instance {:>9.1} MiB (linear memory)",
            first.memory_bytes as f64 / (1024.0 * 1024.0)
        );
        println!(
            "  warm p50 ratio      {:>11.2}x\n",
            percentile(&warm, 0.5).as_secs_f64() / percentile(&bare, 0.5).as_secs_f64()
        );
    }
}
