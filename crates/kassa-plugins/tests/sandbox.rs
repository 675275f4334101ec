//! Real components in wasmtime: the example key generator, and a plugin that
//! misbehaves in every way the sandbox must contain. The components are built from
//! `plugins/` for wasm32-wasip2 (`bash tests/run.sh` builds them first).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_plugins::{CallContext, Customer, HostPolicy, Limit, PluginError, PluginHost, Request};

fn component(name: &str) -> Vec<u8> {
    // The Rust plugins are built by cargo, the Python, JavaScript and Go examples by
    // their own tools (tests/run.sh builds them all).
    let (var, default) = if ["python_", "js_", "go_"]
        .iter()
        .any(|l| name.starts_with(l))
    {
        ("KASSA_LANG_PLUGINS_DIR", "target/plugin-langs")
    } else {
        ("KASSA_PLUGINS_DIR", "plugins/target/wasm32-wasip2/release")
    };
    let dir = std::env::var(var)
        .unwrap_or_else(|_| format!("{}/../../{default}", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}; build the plugins first: cargo build --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release")
    })
}

fn host() -> PluginHost {
    // Compiled components are kept across tests and runs (keyed by content and engine),
    // so each component is compiled once.
    PluginHost::new(HostPolicy {
        cache_dir: Some(format!("{}/plugin-cache", env!("CARGO_TARGET_TMPDIR")).into()),
        ..HostPolicy::default()
    })
    .expect("a plugin host")
}

fn prepared(host: &PluginHost, name: &str) -> kassa_plugins::Compiled {
    let bytes = component(name);
    host.prepare(&kassa_plugins::sha256_hex(&bytes), &bytes)
        .expect("the component compiles")
}

fn request(config: &[(&str, &str)], quantity: u32) -> Request {
    Request {
        order_id: "ord_01jz0000000000000000000000".into(),
        line_no: 1,
        product_id: "prd_01jz0000000000000000000000".into(),
        product_name: "Pro".into(),
        quantity,
        customer: Customer {
            email: "buyer@example.com".into(),
            name: Some("Ada".into()),
        },
        test_mode: true,
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        idempotency_key: "ord_01jz0000000000000000000000:1".into(),
    }
}

fn context(secrets: &[(&str, &str)], hosts: &[&str]) -> CallContext {
    CallContext {
        tenant: "ten_test".into(),
        secrets: secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), kassa_domain::Secret::from(*v)))
            .collect::<HashMap<_, _>>(),
        allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        pool_keys: Arc::new(|pool, count| {
            Box::pin(async move { Ok((1..=count).map(|i| format!("{pool}-KEY-{i}")).collect()) })
        }),
        limits: None,
    }
}

fn failure(outcome: &Result<Vec<String>, PluginError>) -> String {
    match outcome {
        Err(PluginError::Failed { message, .. }) => message.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn the_key_generator_derives_the_same_signed_keys_every_time() {
    let host = host();
    let keygen = prepared(&host, "kassa_keygen");
    let ctx = context(&[("signing-key", "s3cret")], &[]);
    let req = request(&[("prefix", "ACME")], 3);
    let first = host.call(&keygen, &req, ctx.clone()).await;
    let keys = first.result.unwrap();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter()
            .all(|k| k.starts_with("ACME-") && k.len() == "ACME-".len() + 23),
        "{keys:?}"
    );
    assert_eq!(first.logs.len(), 1, "the plugin's log line is kept");
    let again = host.call(&keygen, &req, ctx).await.result.unwrap();
    assert_eq!(keys, again, "deterministic: a retry gives the same keys");
    let other_secret = host
        .call(&keygen, &req, context(&[("signing-key", "other")], &[]))
        .await;
    assert_ne!(keys, other_secret.result.unwrap());
    let no_secret = host.call(&keygen, &req, context(&[], &[])).await;
    assert!(failure(&no_secret.result).contains("signing-key is not set"));
}

#[tokio::test]
async fn uploads_that_are_not_plugins_are_refused() {
    let host = host();
    for bytes in [
        b"not wasm at all".to_vec(),
        vec![0, 97, 115, 109, 1, 0, 0, 0],
    ] {
        assert!(matches!(host.compile(&bytes), Err(PluginError::Invalid(_))));
    }
}

#[tokio::test]
async fn a_plugin_that_loops_forever_is_stopped_and_others_go_on() {
    let host = Arc::new(host());
    let hostile = prepared(&host, "kassa_hostile");
    let started = Instant::now();
    let looping = {
        let (host, hostile) = (host.clone(), hostile.clone());
        tokio::spawn(async move {
            host.call(
                &hostile,
                &request(&[("mode", "loop")], 1),
                context(&[], &[]),
            )
            .await
        })
    };
    // Meanwhile another delivery runs normally.
    let fine = host
        .call(&hostile, &request(&[("mode", "ok")], 1), context(&[], &[]))
        .await;
    assert_eq!(
        fine.result.unwrap(),
        ["OK-ord_01jz0000000000000000000000:1"]
    );
    let looped = looping.await.unwrap();
    let reason = failure(&looped.result);
    assert!(
        reason.contains("fuel") || reason.contains("deadline"),
        "{reason}"
    );
    assert!(
        matches!(looped.limit, Some(Limit::Fuel(_) | Limit::Deadline(_))),
        "{:?}",
        looped.limit
    );
    assert_eq!(fine.limit, None);
    assert!(looped.crashed && !fine.crashed);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped within the deadline"
    );
}

#[tokio::test]
async fn memory_output_and_traps_fail_only_their_call() {
    let host = host();
    let hostile = prepared(&host, "kassa_hostile");
    let memory = host
        .call(
            &hostile,
            &request(&[("mode", "memory")], 1),
            context(&[], &[]),
        )
        .await;
    assert!(
        failure(&memory.result).contains("memory"),
        "{:?}",
        memory.result
    );
    assert!(
        matches!(memory.limit, Some(Limit::Memory(_))),
        "{:?}",
        memory.limit
    );
    let big = host
        .call(
            &hostile,
            &request(&[("mode", "big-output")], 1),
            context(&[], &[]),
        )
        .await;
    let reason = failure(&big.result);
    assert!(
        reason.contains("memory") || reason.contains("bytes"),
        "{reason}"
    );
    let trap = host
        .call(
            &hostile,
            &request(&[("mode", "trap")], 1),
            context(&[], &[]),
        )
        .await;
    assert!(
        failure(&trap.result).contains("trapped"),
        "{:?}",
        trap.result
    );
    assert_eq!(trap.limit, None, "a panic is no limit");
    assert!(memory.crashed && big.crashed && trap.crashed);
    let fine = host
        .call(&hostile, &request(&[("mode", "ok")], 1), context(&[], &[]))
        .await;
    assert!(fine.result.is_ok(), "the host goes on");
}

#[tokio::test]
async fn http_fetch_reaches_only_allowed_public_hosts() {
    let host = host();
    let hostile = prepared(&host, "kassa_hostile");
    for (url, hosts, expected) in [
        (
            "https://127.0.0.1/",
            vec!["127.0.0.1"],
            "the address is not allowed",
        ),
        (
            "https://169.254.169.254/latest/meta-data/",
            vec!["169.254.169.254"],
            "the address is not allowed",
        ),
        (
            "https://[::127.0.0.1]/",
            vec!["[::7f00:1]"],
            "the address is not allowed",
        ),
        (
            "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
            vec!["[64:ff9b::a9fe:a9fe]"],
            "the address is not allowed",
        ),
        (
            "https://api.example.com/keys",
            vec!["other.example.com"],
            "not on this plugin's list",
        ),
        (
            "http://api.example.com/keys",
            vec!["api.example.com"],
            "use https",
        ),
        (
            "https://localhost/",
            vec!["localhost"],
            "the host could not be reached",
        ),
    ] {
        let outcome = host
            .call(
                &hostile,
                &request(&[("mode", "fetch"), ("url", url)], 1),
                context(&[], &hosts),
            )
            .await;
        let reason = failure(&outcome.result);
        assert!(reason.contains(expected), "{url}: {reason}");
    }
}

#[tokio::test]
async fn plugins_take_keys_from_the_stores_pools_through_the_host() {
    let host = host();
    let hostile = prepared(&host, "kassa_hostile");
    let outcome = host
        .call(
            &hostile,
            &request(&[("mode", "pool"), ("pool", "lpl_x")], 2),
            context(&[], &[]),
        )
        .await;
    assert_eq!(outcome.result.unwrap(), ["lpl_x-KEY-1", "lpl_x-KEY-2"]);
}

#[tokio::test]
async fn a_python_plugin_signs_the_same_keys_as_the_rust_one() {
    signs_the_same_keys_as_the_rust_one("python_keygen").await;
}

#[tokio::test]
async fn a_go_plugin_signs_the_same_keys_as_the_rust_one() {
    signs_the_same_keys_as_the_rust_one("go_keygen").await;
}

/// The key generator of another language (`name`) signs what the Rust one signs, and
/// says what it lacks.
async fn signs_the_same_keys_as_the_rust_one(name: &str) {
    let host = host();
    let other = prepared(&host, name);
    let rust = prepared(&host, "kassa_keygen");
    let req = request(&[("prefix", "ACME")], 2);
    let ctx = context(&[("signing-key", "s3cret")], &[]);
    let from_other = host.call(&other, &req, ctx.clone()).await;
    assert_eq!(from_other.limit, None);
    let logs = from_other.logs.clone();
    let keys = from_other
        .result
        .unwrap_or_else(|e| panic!("{e:?} {logs:?}"));
    assert_eq!(keys, host.call(&rust, &req, ctx).await.result.unwrap());
    assert_eq!(from_other.logs.len(), 1, "{:?}", from_other.logs);
    let no_secret = host.call(&other, &req, context(&[], &[])).await;
    assert!(failure(&no_secret.result).contains("signing-key is not set"));
}

#[tokio::test]
async fn a_javascript_plugin_is_refused_hosts_off_its_list() {
    let host = host();
    let js = prepared(&host, "js_license_client");
    let outcome = host
        .call(
            &js,
            &request(&[("url", "https://licenses.example.com/keys")], 1),
            context(&[("api-token", "tok")], &["other.example.com"]),
        )
        .await;
    let reason = failure(&outcome.result);
    assert!(
        reason.contains("unreachable") && reason.contains("allowed hosts"),
        "{reason}"
    );
    let unset = host.call(&js, &request(&[], 1), context(&[], &[])).await;
    assert!(failure(&unset.result).contains("set the config `url`"));
}

/// A host whose calls may last `deadline`, with `instances` at once (`per_store` for
/// one store) and one test run at a time, reaching loopback over plain HTTP.
fn small_host(deadline: Duration, instances: u32, per_store: u32) -> PluginHost {
    PluginHost::new(HostPolicy {
        allow_private_network: true,
        allow_plain_http: true,
        limits: kassa_plugins::CallLimits {
            deadline,
            ..kassa_plugins::CallLimits::default()
        },
        cache_dir: Some(format!("{}/plugin-cache", env!("CARGO_TARGET_TMPDIR")).into()),
        instances,
        instances_per_store: per_store,
        test_runs: 1,
        ..HostPolicy::default()
    })
    .expect("a plugin host")
}

/// A plugin computing without end does not hold its thread: it yields to the
/// executor at every epoch tick (the epoch advances on its own thread), so even on a
/// runtime with one thread, the other tasks run while it loops until its deadline.
#[tokio::test(flavor = "current_thread")]
async fn a_looping_plugin_leaves_a_single_threaded_runtime_to_its_other_tasks() {
    let host = small_host(Duration::from_millis(1_500), 4, 2);
    let hostile = prepared(&host, "kassa_hostile");
    let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let ticking = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let outcome = host
        .call(
            &hostile,
            &request(&[("mode", "loop")], 1),
            context(&[], &[]),
        )
        .await;
    let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed);
    ticking.abort();
    assert!(
        matches!(outcome.limit, Some(Limit::Deadline(_) | Limit::Fuel(_))),
        "{:?}",
        outcome.limit
    );
    // Held for the whole loop, the other task could not have ticked at all.
    assert!(
        ticked >= 5,
        "the other task ran {ticked} times during the loop"
    );
}

/// The attack: a plugin waiting on a service that never answers used to hold its
/// instance for the whole fetch timeout, past the call's deadline. The deadline
/// covers host calls too, and the merchant is told which limit, at what value.
#[tokio::test]
async fn a_host_call_that_hangs_ends_at_the_deadline() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        // Accepts and never answers.
        let mut kept = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            kept.push(socket);
        }
    });
    let host = small_host(Duration::from_millis(500), 4, 2);
    let hostile = prepared(&host, "kassa_hostile");
    let outcome = host
        .call(
            &hostile,
            &request(&[("mode", "fetch"), ("url", &url)], 1),
            context(&[], &["127.0.0.1"]),
        )
        .await;
    assert_eq!(
        outcome.limit,
        Some(Limit::Deadline(Duration::from_millis(500)))
    );
    let reason = failure(&outcome.result);
    assert!(
        reason.contains("deadline (limit: time (500 ms per call))"),
        "{reason}"
    );
    held.abort();
}

/// The attack: one store's slow plugin used to take every instance of the shared
/// pool, and other stores' deliveries failed for good. A store now runs at most its
/// quota of calls at once (the rest wait their turn, then are retried), and another
/// store's call finds an instance.
#[tokio::test]
async fn one_stores_slow_plugin_leaves_room_for_the_others() {
    let host = Arc::new(small_host(Duration::from_millis(800), 4, 2));
    let hostile = prepared(&host, "kassa_hostile");
    let slow_calls: Vec<_> = (0..6)
        .map(|_| {
            let (host, hostile) = (host.clone(), hostile.clone());
            tokio::spawn(async move {
                host.call(
                    &hostile,
                    &request(&[("mode", "loop")], 1),
                    context(&[], &[]),
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other_store = CallContext {
        tenant: "ten_other".into(),
        ..context(&[], &[])
    };
    let fine = host
        .call(&hostile, &request(&[("mode", "ok")], 1), other_store)
        .await;
    assert_eq!(
        fine.result.unwrap(),
        ["OK-ord_01jz0000000000000000000000:1"]
    );
    let mut waited = 0;
    for call in slow_calls {
        let outcome = call.await.unwrap();
        match outcome.limit {
            Some(Limit::Concurrency(2)) => {
                waited += 1;
                assert!(
                    matches!(
                        outcome.result,
                        Err(PluginError::Failed {
                            retryable: true,
                            ..
                        })
                    ),
                    "{:?}",
                    outcome.result
                );
            }
            Some(Limit::Deadline(_) | Limit::Fuel(_)) => {}
            other => panic!("{other:?} {:?}", outcome.result),
        }
    }
    assert!(
        waited > 0,
        "the store's calls beyond its quota waited their turn"
    );
}

// Two worker threads: the looping run holds one while the second asks on the other
// (on one thread the loop would hold it until its fuel runs out, ~0.5 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_runs_beyond_the_limit_are_refused() {
    let host = Arc::new(small_host(Duration::from_millis(800), 4, 2));
    let hostile = prepared(&host, "kassa_hostile");
    let first = {
        let (host, hostile) = (host.clone(), hostile.clone());
        tokio::spawn(async move {
            host.test_run(
                &hostile,
                1,
                vec![("mode".into(), "loop".into())],
                context(&[], &[]),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = host.test_run(&hostile, 1, vec![], context(&[], &[])).await;
    assert_eq!(second.unwrap_err(), kassa_plugins::Busy { running: 1 });
    let first = first.await.unwrap().expect("the first one ran");
    assert!(first.outcome.limit.is_some());
    let again = host.test_run(&hostile, 1, vec![], context(&[], &[])).await;
    assert!(again.expect("room again").outcome.result.is_ok());
}

#[tokio::test]
async fn a_plugins_own_limits_apply_within_the_operators_cap() {
    let host = host();
    let hostile = prepared(&host, "kassa_hostile");
    let own = host.limits_for(&kassa_domain::plugin::PluginLimits {
        memory_mib: Some(64),
        fuel: None,
        timeout_ms: Some(600_000),
    });
    assert_eq!(
        own.deadline,
        Duration::from_secs(30),
        "capped by the operator"
    );
    let outcome = host
        .call(
            &hostile,
            &request(&[("mode", "memory")], 1),
            CallContext {
                limits: Some(own),
                ..context(&[], &[])
            },
        )
        .await;
    assert_eq!(outcome.limit, Some(Limit::Memory(64 * 1024 * 1024)));
    let reason = failure(&outcome.result);
    assert!(reason.contains("(limit: memory (64 MiB))"), "{reason}");
}

#[tokio::test]
async fn a_component_asking_for_wasi_http_is_refused_naming_it() {
    let host = host();
    let bytes = component("kassa_wants_http");
    match host.compile(&bytes) {
        Err(PluginError::Invalid(why)) => {
            assert!(
                why.contains("needs imports Kassa does not give") && why.contains("wasi:http"),
                "{why}"
            );
        }
        Ok(_) => panic!("a component importing wasi:http was accepted"),
        Err(other) => panic!("{other:?}"),
    }
}

/// A Rust plugin's constructors run when it is first called (wit-bindgen runs them
/// before the export), so a plugin whose start traps fails each call, and says so.
#[tokio::test]
async fn a_plugin_that_traps_at_start_fails_its_call_and_says_so() {
    let host = host();
    let broken = prepared(&host, "kassa_traps_at_start");
    let outcome = host
        .call(&broken, &request(&[], 1), context(&[], &[]))
        .await;
    let why = failure(&outcome.result);
    assert!(why.contains("trapped"), "{why}");
    assert_eq!(outcome.limit, None);
    assert!(outcome.crashed, "a trap is the component's own failure");
    let fine = prepared(&host, "kassa_keygen");
    // Answering an error (here: its secret is not set) is not crashing.
    let answered = host
        .call(&fine, &request(&[("prefix", "ACME")], 1), context(&[], &[]))
        .await;
    assert!(failure(&answered.result).contains("signing-key"));
    assert!(!answered.crashed);
    let keys = host
        .call(
            &fine,
            &request(&[("prefix", "ACME")], 1),
            context(&[("signing-key", "s3cret")], &[]),
        )
        .await;
    assert!(keys.result.is_ok(), "other plugins go on");
}

/// A plugin built against an older, smaller copy of the WIT (its host gives only
/// `log`) keeps working in today's Kassa: a component names only what it imports.
#[tokio::test]
async fn a_plugin_built_against_an_older_wit_still_runs() {
    let host = host();
    let older = prepared(&host, "kassa_older_wit");
    let outcome = host.call(&older, &request(&[], 1), context(&[], &[])).await;
    assert_eq!(
        outcome.result.unwrap(),
        ["OLD-ord_01jz0000000000000000000000:1"]
    );
    assert_eq!(outcome.logs, ["built against an older WIT"]);
}
