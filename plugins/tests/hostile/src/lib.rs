//! Misbehaves on purpose, as its config `mode` says: `loop` (never returns), `memory`
//! (grows without end), `big-output` (returns a 100 MB string), `trap` (panics),
//! `fetch` (calls http-fetch on the config's `url`), `pool` (takes keys from the
//! config's `pool`), anything else: one key.

use kassa_plugin_sdk::{FulfillError, HttpRequest, Plugin, Request, config, export, host};

struct Hostile;

impl Plugin for Hostile {
    fn fulfill(request: Request) -> Result<Vec<String>, FulfillError> {
        match config(&request, "mode").unwrap_or("ok") {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = n.wrapping_add(std::hint::black_box(1));
                    if n == u64::MAX {
                        break;
                    }
                }
                Ok(vec![n.to_string()])
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "big-output" => Ok(vec!["x".repeat(100 * 1024 * 1024)]),
            "trap" => panic!("this plugin panics"),
            "fetch" => {
                let url = config(&request, "url").unwrap_or_default().to_owned();
                match host::http_fetch(&HttpRequest {
                    method: "GET".into(),
                    url,
                    headers: vec![],
                    body: vec![],
                }) {
                    Ok(response) => Ok(vec![String::from_utf8_lossy(&response.body).into_owned()]),
                    Err(e) => Err(FulfillError::Permanent(format!("fetch refused: {e}"))),
                }
            }
            "pool" => {
                let pool = config(&request, "pool").unwrap_or_default().to_owned();
                host::take_pool_keys(&pool, request.quantity).map_err(FulfillError::Retryable)
            }
            _ => {
                host::log("all good");
                Ok(vec![format!("OK-{}", request.idempotency_key)])
            }
        }
    }
}

export!(Hostile);
