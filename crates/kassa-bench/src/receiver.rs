//! A webhook receiver on loopback: it answers 204 at once (or, while its gate is
//! closed, once the gate opens) and notes when each event was answered, by type, and
//! when each order's `product.delivered` came.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Route, handler, post};

#[derive(Default)]
pub struct Received {
    /// Arrival times of every message, by event type.
    pub by_type: HashMap<String, Vec<Instant>>,
    /// When the first `product.delivered` of each order arrived.
    pub delivered: HashMap<String, Instant>,
}

pub type Shared = Arc<Mutex<Received>>;

/// Holds every request while closed (`false`): a backlog builds up in Kassa.
pub type Gate = Arc<tokio::sync::watch::Sender<bool>>;

#[handler]
async fn hook(
    body: String,
    Data(seen): Data<&Shared>,
    Data(gate): Data<&Gate>,
) -> poem::http::StatusCode {
    let _ = gate.subscribe().wait_for(|open| *open).await;
    let now = Instant::now();
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(&body) {
        let kind = event["type"].as_str().unwrap_or("?").to_owned();
        let order = event["data"]["order"]["id"].as_str().map(str::to_owned);
        let mut seen = seen.lock().expect("receiver");
        if kind == "product.delivered"
            && let Some(order) = order
        {
            seen.delivered.entry(order).or_insert(now);
        }
        seen.by_type.entry(kind).or_default().push(now);
    }
    poem::http::StatusCode::NO_CONTENT
}

/// Starts the receiver, its gate open; returns its URL, what it saw and its gate.
pub async fn start() -> anyhow::Result<(String, Shared, Gate)> {
    let seen: Shared = Arc::default();
    let gate: Gate = Arc::new(tokio::sync::watch::channel(true).0);
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("receiver has no address"))?;
    let app = Route::new()
        .at("/hook", post(hook))
        .data(seen.clone())
        .data(gate.clone());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    Ok((format!("http://{addr}/hook"), seen, gate))
}

/// When the messages of `kind` were answered.
pub fn arrivals(seen: &Shared, kind: &str) -> Vec<Instant> {
    seen.lock()
        .expect("receiver")
        .by_type
        .get(kind)
        .cloned()
        .unwrap_or_default()
}

/// How many messages of `kind` arrived.
pub fn count(seen: &Shared, kind: &str) -> usize {
    seen.lock()
        .expect("receiver")
        .by_type
        .get(kind)
        .map_or(0, Vec::len)
}
