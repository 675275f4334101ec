//! Faults an operator meets in production, on the real `kassa serve` binary: two
//! nodes sharing one PostgreSQL, and PostgreSQL restarted under load.
//!
//! **PostgreSQL only**: SQLite is one node's database (several nodes need PostgreSQL,
//! see the README), and restarting it is not a thing. Each test still runs in the
//! default suite (`bash tests/run.sh`), in a few seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use kassa_testkit::{Backend, TestDatabase};
use serde_json::{Value, json};

use crate::cli::{Running, acme_key, kassa, serve};
use crate::emails::Sink;
use crate::webhooks::Receiver;

/// A merchant's client of one node's API.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

/// One answer, as a client sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    request_id: Option<String>,
    body: Value,
}

impl Api {
    fn of(node: &Running, key: &str) -> Self {
        Self {
            // A request that hangs fails the test (the server must answer, even 503).
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: node.base.clone(),
            key: key.to_owned(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("Kassa answers within 30 s");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (status, content_type) = (resp.status().as_u16(), header("content-type"));
        let (retry_after, request_id) = (header("retry-after"), header("x-request-id"));
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            content_type: content_type.unwrap_or_default(),
            retry_after,
            request_id,
            body,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        let url = format!("{}/api/v1{path}", self.base);
        self.send(self.client.post(url).json(&body)).await
    }

    async fn get(&self, path: &str) -> Answer {
        let url = format!("{}/api/v1{path}", self.base);
        self.send(self.client.get(url)).await
    }

    /// `POST`, expecting a 2xx; its body.
    async fn made(&self, path: &str, body: Value) -> Value {
        let a = self.post(path, body).await;
        assert!((200..300).contains(&a.status), "{path}: {a:?}");
        a.body
    }

    /// Every item of a list endpoint, following its cursors.
    async fn all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut page = format!("{path}?limit=100");
        loop {
            let body = self.get(&page).await.body;
            items.extend(body["data"].as_array().expect("a list").iter().cloned());
            match body["next_cursor"].as_str() {
                Some(cursor) => page = format!("{path}?limit=100&cursor={cursor}"),
                None => return items,
            }
        }
    }
}

/// An order of one unit of `product`, paid by bank transfer, for customer `n`.
fn order_body(product: &str, n: usize) -> Value {
    json!({"lines": [{"product_id": product, "quantity": 1}], "currency": "USD",
           "customer": {"email": format!("c{n}@example.com")}, "payment_method": "bank_transfer",
           "consents": {"terms": true, "personal_data": true}})
}

fn payment_body() -> Value {
    json!({"method": "bank_transfer", "amount": 100, "currency": "USD"})
}

/// A store set up through `api`: a webhook endpoint at a real receiver (taking
/// `events`, all when empty), a pool of `keys` keys and a product of 1.00 USD from it.
async fn store_with_receiver(
    api: &Api,
    events: &[&str],
    keys: usize,
) -> (Receiver, String, String) {
    let endpoint = api
        .made(
            "/webhook-endpoints",
            json!({"url": "https://placeholder.example/", "disabled": true, "event_types": events}),
        )
        .await;
    let receiver = Receiver::start(endpoint["secret"].as_str().unwrap(), "", 0.0);
    let url = format!(
        "{}/api/v1/webhook-endpoints/{}",
        api.base,
        endpoint["id"].as_str().unwrap()
    );
    let patched = api
        .send(
            api.client
                .patch(url)
                .json(&json!({"url": receiver.url, "disabled": false})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let pool = api.made("/license-pools", json!({"name": "P"})).await;
    let pool_id = pool["id"].as_str().unwrap().to_owned();
    let keys: Vec<String> = (0..keys).map(|i| format!("KEY-{i:04}")).collect();
    api.made(
        &format!("/license-pools/{pool_id}/keys"),
        json!({ "keys": keys }),
    )
    .await;
    let product = api
        .made(
            "/products",
            json!({"name": "P", "prices": [{"currency": "USD", "amount": 100}],
                   "delivery": {"method": "license_pool", "pool_id": pool_id}}),
        )
        .await;
    let product = product["id"].as_str().unwrap().to_owned();
    (receiver, product, pool_id)
}

/// Waits (up to 60 s) until every order of `ids` that is paid is delivered; returns
/// the paid ones.
async fn paid_and_delivered(api: &Api, ids: &[String]) -> Vec<Value> {
    let mut paid = Vec::new();
    for _ in 0..600 {
        paid.clear();
        let mut waiting = 0;
        for id in ids {
            let o = api.get(&format!("/orders/{id}")).await.body;
            if o["status"] == "paid" {
                waiting += usize::from(o["delivery_status"] != "delivered");
                paid.push(o);
            }
        }
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    paid
}

/// Asserts each paid order delivered with one key, and no key given twice.
fn each_delivered_once(paid: &[Value]) {
    let mut keys = BTreeSet::new();
    for o in paid {
        assert_eq!(o["delivery_status"], "delivered", "{o}");
        let licenses: Vec<String> =
            serde_json::from_value(o["lines"][0]["licenses"].clone()).unwrap();
        assert_eq!(licenses.len(), 1, "one key for one unit: {o}");
        assert!(keys.insert(licenses[0].clone()), "a key given twice: {o}");
    }
}

/// Waits (up to 60 s) until the receiver got every event of `events` (ids); asserts
/// every request verified, with the event's id as `webhook-id`. Returns the events
/// received, by id, with how many times each came.
async fn received_every(receiver: &Receiver, events: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut got = BTreeMap::new();
    for _ in 0..600 {
        got.clear();
        for r in receiver.received() {
            assert_eq!(r["verified"], true, "{r}");
            let id = r["event"]["id"].as_str().unwrap().to_owned();
            assert_eq!(
                r["webhook_id"].as_str(),
                Some(id.as_str()),
                "stable webhook-id: {r}"
            );
            *got.entry(id).or_insert(0) += 1;
        }
        if events.iter().all(|e| got.contains_key(e)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<&String> = events.iter().filter(|e| !got.contains_key(*e)).collect();
    assert!(missing.is_empty(), "events never received: {missing:?}");
    got
}

/// A `kassa serve` node as an operator runs several: on `url`, sending mail to `smtp`,
/// reminding unpaid orders after 3 s, with a heartbeat a second (a dead node's jobs
/// are taken over within seconds) and webhooks to loopback retried every second.
fn node(dir: &std::path::Path, url: &str, smtp: &str, extra: &[(&str, &str)]) -> Running {
    let mut cmd = kassa(dir);
    cmd.env("KASSA_DATABASE_URL", url)
        .env("KASSA_ALLOW_PRIVATE_NETWORK", "true")
        .env("KASSA_WEBHOOK_RETRY_SCHEDULE", "0s,1s,1s,1s,1s")
        .env("KASSA_JOB_HEARTBEAT", "1s")
        .env("KASSA_SMTP_URL", smtp)
        .env("KASSA_UNPAID_REMINDER_AFTER", "3s");
    for (name, value) in extra {
        cmd.env(name, value);
    }
    serve(cmd)
}

/// Two `kassa serve` nodes on one PostgreSQL database, orders placed and paid on both
/// (each paid on the other node than the one that placed it), one webhook endpoint
/// (the real receiver checking signatures) and one SMTP server: every paid order is
/// delivered exactly once from the pool both share (no line twice, no key twice),
/// every event reaches the receiver with its id as a stable `webhook-id`, every email
/// leaves once, and each unpaid order is reminded once. PostgreSQL only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_share_the_work_once() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let key = acme_key(dir.path(), &db.url);
    let sink = Sink::start(None);
    let nodes = [
        node(dir.path(), &db.url, &sink.url(), &[]),
        node(dir.path(), &db.url, &sink.url(), &[]),
    ];
    let apis = [Api::of(&nodes[0], &key), Api::of(&nodes[1], &key)];
    let (receiver, product, pool_id) = store_with_receiver(&apis[0], &[], 40).await;

    // 24 orders, placed on alternate nodes, two at a time; 18 paid on the other node.
    let mut ids = Vec::new();
    let mut unpaid = Vec::new();
    for pair in 0..12 {
        let placed = futures::future::join_all((0..2).map(|i| {
            let n = pair * 2 + i;
            let api = apis[n % 2].clone();
            let body = order_body(&product, n);
            async move { (n, api.made("/orders", body).await) }
        }))
        .await;
        let pay = placed.iter().filter(|(n, _)| n % 4 != 3).map(|(n, o)| {
            let api = apis[(n + 1) % 2].clone();
            let path = format!("/orders/{}/payments", o["id"].as_str().unwrap());
            async move { api.made(&path, payment_body()).await }
        });
        futures::future::join_all(pay).await;
        for (n, o) in placed {
            let id = o["id"].as_str().unwrap().to_owned();
            if n % 4 == 3 {
                unpaid.push(id.clone());
            }
            ids.push(id);
        }
    }

    let paid = paid_and_delivered(&apis[1], &ids).await;
    assert_eq!(paid.len(), 18, "every payment was acknowledged");
    each_delivered_once(&paid);
    let pool = apis[0].get(&format!("/license-pools/{pool_id}")).await.body;
    assert_eq!(
        pool["assigned"], 18,
        "the pool counts 18 keys given: {pool}"
    );

    // Each unpaid order reminded once (3 s after it was placed; the sweep runs every
    // second on both nodes).
    let mut reminders = Vec::new();
    for _ in 0..200 {
        reminders = apis[0]
            .all("/emails")
            .await
            .into_iter()
            .filter(|e| e["kind"] == "unpaid_reminder")
            .collect();
        let sent = reminders.iter().filter(|e| e["status"] == "sent").count();
        if sent >= unpaid.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &unpaid {
        let of_order = reminders.iter().filter(|e| e["order_id"] == *id).count();
        assert_eq!(of_order, 1, "one reminder for {id}: {reminders:?}");
    }
    for o in &paid {
        let of_order = reminders
            .iter()
            .filter(|e| e["order_id"] == o["id"])
            .count();
        assert_eq!(of_order, 0, "no reminder for a paid order");
    }

    // Every event reached the receiver, verified, with its id as webhook-id; one
    // product.delivered per paid order.
    let events = apis[1].all("/events").await;
    let delivered: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "product.delivered")
        .collect();
    assert_eq!(delivered.len(), 18, "one product.delivered per paid order");
    let ids_of_events: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    received_every(&receiver, &ids_of_events).await;

    // Every email of the outbox left once: the SMTP server got each one time.
    let mut outbox = Vec::new();
    for _ in 0..200 {
        outbox = apis[0].all("/emails").await;
        if outbox.iter().all(|e| e["status"] == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        outbox.iter().all(|e| e["status"] == "sent"),
        "every email sent: {outbox:?}"
    );
    let mails = sink.wait_for(outbox.len()).await;
    let mut received: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in &mails {
        let to = m["rcpt_tos"][0].as_str().unwrap_or_default().to_owned();
        let subject = m["subject"].as_str().unwrap_or_default().to_owned();
        *received.entry((to, subject)).or_insert(0) += 1;
    }
    for e in &outbox {
        let to = e["to"].as_str().unwrap().to_owned();
        let subject = e["subject"].as_str().unwrap().to_owned();
        assert_eq!(
            received.get(&(to.clone(), subject.clone())),
            Some(&1),
            "{to} got {subject:?} once"
        );
    }
    assert_eq!(mails.len(), outbox.len(), "no email sent twice");
}

/// A PostgreSQL server of this test's own (its own directory and port), so restarting
/// it disturbs no other test. Stopped when dropped.
struct ThrowawayPostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl ThrowawayPostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries (tests/run.sh installs them)")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self { bin, dir, port };
        if pg.as_root() {
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(pg.dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let data = pg.dir.path().join("data");
        let init = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "kassa", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        pg.pg_ctl("start");
        pg
    }

    fn as_root(&self) -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    }

    /// A PostgreSQL program, as the `postgres` user when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, action: &str) {
        let dir = self.dir.path();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            dir.display()
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-m", "fast", "-o", &options, action]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://kassa@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// What the load saw: the orders Kassa acknowledged as paid, and every answer that
/// was not a 2xx.
#[derive(Default)]
struct Load {
    paid: Vec<String>,
    refused: Vec<Answer>,
}

/// Orders one buyer places at most.
const ORDERS_PER_BUYER: usize = 50;

/// A buyer placing and paying orders one after the other until `until`. A 503 is
/// retried after its `Retry-After`, as a client should; any other failure is kept.
async fn buyer(api: Api, product: String, first: usize, until: Instant) -> Load {
    let mut load = Load::default();
    let mut n = first;
    while Instant::now() < until && n < first + 1000 * ORDERS_PER_BUYER {
        n += 1000;
        let placed = api.post("/orders", order_body(&product, n)).await;
        if placed.status != 200 {
            let wait = placed.status == 503;
            load.refused.push(placed);
            if wait {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            continue;
        }
        let id = placed.body["id"].as_str().unwrap().to_owned();
        let mut retried = false;
        loop {
            let paid = api
                .post(&format!("/orders/{id}/payments"), payment_body())
                .await;
            if (200..300).contains(&paid.status) {
                load.paid.push(id);
                break;
            }
            // A commit whose answer was lost with the connection: the retry finds the
            // order paid (409), which the order itself confirms.
            if retried && paid.status == 409 {
                let order = api.get(&format!("/orders/{id}")).await;
                if order.body["status"] == "paid" {
                    load.paid.push(id);
                    break;
                }
            }
            let again = paid.status == 503;
            load.refused.push(paid);
            if !again {
                break;
            }
            retried = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    load
}

/// PostgreSQL stops (a fast shutdown, as a restart does) while orders are placed and
/// paid through one `kassa serve`, and starts again 4 s later. Requests meanwhile get
/// a 503 problem+json with `Retry-After` (after the 1 s acquire timeout), never a 500
/// or a hang; Kassa recovers by itself (`/readyz` back, jobs running again) and every
/// order it acknowledged as paid is delivered exactly once, its `product.delivered`
/// received. PostgreSQL only, on a server of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_mid_load_loses_nothing_acknowledged() {
    let pg = ThrowawayPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let key = acme_key(dir.path(), &pg.url());
    let sink = Sink::start(None);
    let server = node(
        dir.path(),
        &pg.url(),
        &sink.url(),
        &[("KASSA_DATABASE_ACQUIRE_TIMEOUT", "1s")],
    );
    let api = Api::of(&server, &key);
    let (receiver, product, _) = store_with_receiver(&api, &["product.delivered"], 200).await;

    let until = Instant::now() + Duration::from_secs(9);
    let buyers = futures::future::join_all(
        (0..3).map(|b| tokio::spawn(buyer(api.clone(), product.clone(), b, until))),
    );
    let restart = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pg = &pg;
        tokio::task::block_in_place(|| pg.pg_ctl("stop"));
        // While it is down: not ready, and a clear 503.
        let client = reqwest::Client::new();
        let ready = client
            .get(format!("{}/readyz", server.base))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("readyz answers while the database is down");
        assert_eq!(ready.status(), 503);
        let during = api.get("/orders").await;
        // The customer's pages too: a page saying to try again, never a 500.
        let page = client
            .get(format!("{}/acme/buy/{product}", server.base))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the buy page answers while the database is down");
        assert_eq!(page.status(), 503);
        assert!(page.headers().contains_key("retry-after"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| pg.pg_ctl("start"));
        during
    };
    let (loads, during) = tokio::join!(buyers, restart);
    assert_eq!(during.status, 503, "{during:?}");
    let mut paid = Vec::new();
    let mut refused = Vec::new();
    for load in loads {
        let load = load.unwrap();
        paid.extend(load.paid);
        refused.extend(load.refused);
    }
    refused.push(during);
    for a in &refused {
        assert_eq!(
            a.status, 503,
            "only 503s while the database was away: {a:?}"
        );
        assert_eq!(a.content_type, "application/problem+json", "{a:?}");
        assert_eq!(a.body["type"], "unavailable", "{a:?}");
        assert!(
            a.retry_after
                .as_deref()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some(),
            "Retry-After: {a:?}"
        );
    }

    // Back without anyone doing anything.
    let mut ready = 0;
    for _ in 0..300 {
        ready = reqwest::get(format!("{}/readyz", server.base))
            .await
            .map_or(0, |r| r.status().as_u16());
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "ready again");
    // And the work goes on: one more order after the restart.
    let after = api.made("/orders", order_body(&product, 1)).await;
    let after = after["id"].as_str().unwrap().to_owned();
    api.made(&format!("/orders/{after}/payments"), payment_body())
        .await;
    paid.push(after);
    assert!(
        paid.len() >= 5,
        "orders were paid around the restart: {}",
        paid.len()
    );

    let delivered = paid_and_delivered(&api, &paid).await;
    assert_eq!(
        delivered.len(),
        paid.len(),
        "every acknowledged payment is there"
    );
    each_delivered_once(&delivered);
    let events: BTreeSet<String> = api
        .all("/events")
        .await
        .into_iter()
        .filter(|e| e["type"] == "product.delivered")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events.len(),
        paid.len(),
        "one product.delivered per paid order"
    );
    received_every(&receiver, &events).await;
}

/// The request id a response carries (`X-Request-Id`) is logged with the request and
/// with the webhook attempt its job made, and no more: no path, no customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_follows_its_order_into_the_webhook_attempt() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let key = acme_key(dir.path(), &db.url);
    let sink = Sink::start(None);
    let server = node(dir.path(), &db.url, &sink.url(), &[]);
    let api = Api::of(&server, &key);
    let (receiver, product, _) = store_with_receiver(&api, &["order.created"], 1).await;
    let placed = api.post("/orders", order_body(&product, 7)).await;
    assert_eq!(placed.status, 200, "{placed:?}");
    let id = placed.request_id.clone().expect("X-Request-Id");
    assert!(id.starts_with("req_"), "{id}");
    assert_eq!(receiver.wait_for(1).await.len(), 1);
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&id))
            .cloned()
            .collect();
        if lines.iter().any(|l| l.contains("webhook attempt")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lines.iter().any(|l| l.contains("webhook attempt")),
        "the attempt is logged with {id}: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("POST") && l.contains("request"))
    );
    for l in &lines {
        assert!(!l.contains("c7@example.com"), "no customer in the log: {l}");
    }
}
