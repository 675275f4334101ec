//! The `kassa` binary as an operator uses it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kassa_testkit::{Backend, TestDatabase, on_both_backends};

on_both_backends!(
    a_node_with_another_secrets_key_refuses_to_start_and_a_rotation_reseals,
    tenant_create_prints_a_key_that_the_server_accepts,
    a_webhook_survives_kill_9_mid_delivery,
    paid_orders_survive_kill_9_mid_stream,
);

pub(crate) fn kassa(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kassa"));
    cmd.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

/// `kassa tenant create --slug acme …` on the database at `url`.
fn create_acme(dir: &std::path::Path, url: &str) -> std::process::Output {
    kassa(dir)
        .env("KASSA_DATABASE_URL", url)
        .args([
            "tenant",
            "create",
            "--slug",
            "acme",
            "--name",
            "Acme",
            "--owner-email",
            "o@acme.test",
        ])
        .output()
        .unwrap()
}

/// The API key `kassa tenant create` prints for `acme`.
pub(crate) fn acme_key(dir: &std::path::Path, url: &str) -> String {
    let out = create_acme(dir, url);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `kassa serve` as the `kill -9` tests start it: webhooks may reach loopback, retried
/// on `schedule`, and a heartbeat a second, so a killed worker's jobs are taken over
/// within seconds of the restart.
fn serve_recovering_fast(dir: &std::path::Path, url: &str, schedule: &str) -> Running {
    let mut cmd = kassa(dir);
    cmd.env("KASSA_DATABASE_URL", url)
        .env("KASSA_ALLOW_PRIVATE_NETWORK", "true")
        .env("KASSA_WEBHOOK_RETRY_SCHEDULE", schedule)
        .env("KASSA_JOB_HEARTBEAT", "1s");
    serve(cmd)
}

/// A `kassa serve` process, killed when dropped.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// What it logged so far, a line each.
    pub(crate) log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Starts `kassa serve` on a free port and waits until it says where it listens.
pub(crate) fn serve(mut cmd: Command) -> Running {
    let mut child = cmd
        .args(["serve"])
        .env("KASSA_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .expect("kassa serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let logged = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            logged.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                tx.send(addr).ok();
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("kassa serve says where it listens");
    Running {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

async fn tenant_create_prints_a_key_that_the_server_accepts(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let out = create_acme(dir.path(), &db.url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(printed["tenant_id"].as_str().unwrap().starts_with("ten_"));
    assert_eq!(printed["slug"], "acme");
    let key = printed["api_key"].as_str().unwrap().to_owned();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        !logs.contains(&key),
        "the key is printed once, never logged"
    );

    let again = create_acme(dir.path(), &db.url);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = kassa(dir.path())
        .env("KASSA_DATABASE_URL", &db.url)
        .args([
            "tenant",
            "create",
            "--slug",
            "Not A Slug",
            "--name",
            "X",
            "--owner-email",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("slug"));

    let set_password = |email: &str, password: &str| {
        let mut child = kassa(dir.path())
            .env("KASSA_DATABASE_URL", &db.url)
            .args(["user", "set-password", "--email", email])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let set = set_password("o@acme.test", "a long enough secret");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(!String::from_utf8_lossy(&set.stderr).contains("a long enough secret"));
    let store = kassa_store::Store::connect(&db.url, 1).await.unwrap();
    let hash = store
        .user_password_hash("o@acme.test")
        .await
        .unwrap()
        .expect("a hash");
    store.close().await;
    assert!(hash.starts_with("$argon2id$"));
    assert!(kassa_domain::tenant::verify_password(
        "a long enough secret",
        &hash
    ));
    assert!(
        !set_password("nobody@acme.test", "a long enough secret")
            .status
            .success()
    );
    assert!(!set_password("o@acme.test", "short").status.success());

    let migrate = kassa(dir.path())
        .env("KASSA_DATABASE_URL", &db.url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(migrate.status.success(), "migrate is repeatable");

    let mut cmd = kassa(dir.path());
    cmd.env("KASSA_DATABASE_URL", &db.url);
    let server = serve(cmd);
    let client = reqwest::Client::new();
    let products = client
        .get(format!("{}/api/v1/products", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(products.status(), 200);
    let docs = client
        .get(format!("{}/api/docs", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let spec = client
        .get(format!("{}/api/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(spec.status(), 200);
    let spec: serde_json::Value = spec.json().await.unwrap();
    assert!(spec["paths"]["/products"].is_object());
}

#[tokio::test]
async fn with_no_configuration_kassa_serve_creates_its_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(kassa(dir.path()));
    let health = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(dir.path().join("data/kassa.db").exists());
    // The secrets key was made beside it, readable by its owner alone, and logged by
    // its path only.
    let key_file = dir.path().join("data/secrets.key");
    let key = std::fs::read_to_string(&key_file).expect("a secrets key file");
    assert!(kassa_store::Keyring::new(&key, &[]).is_ok(), "a valid key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let logs = server.log.lock().unwrap().join("\n");
    assert!(logs.contains("data/secrets.key"), "{logs}");
    assert!(!logs.contains(key.trim()), "the key is never logged");
}

/// `kassa <args>` on `url` with the secrets key `key` (and `previous` keys).
fn kassa_keyed(dir: &std::path::Path, url: &str, key: &str, previous: &str) -> Command {
    let mut cmd = kassa(dir);
    cmd.env("KASSA_DATABASE_URL", url)
        .env("KASSA_SECRETS_KEY", key)
        .env("KASSA_SECRETS_PREVIOUS_KEYS", previous);
    cmd
}

/// Nodes on one database share one secrets key: started with another one, `kassa`
/// refuses with a message that says what to do (and neither key). A rotation (the new
/// key, the old one as previous, `kassa secrets reseal`) leaves every secret openable
/// with the new key alone, and the old key alone is refused from then on.
async fn a_node_with_another_secrets_key_refuses_to_start_and_a_rotation_reseals(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let old = kassa_store::Keyring::generate_key();
    let new = kassa_store::Keyring::generate_key();
    let (old, new) = (old.expose_secret(), new.expose_secret());
    let created = kassa_keyed(dir.path(), &db.url, old, "")
        .args(["tenant", "create", "--slug", "acme", "--name", "Acme"])
        .args(["--owner-email", "o@acme.test"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let api_key = serde_json::from_slice::<serde_json::Value>(&created.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let settings = async |base: &str| -> serde_json::Value {
        let got = client
            .get(format!("{base}/api/v1/settings"))
            .bearer_auth(&api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        got.json().await.unwrap()
    };
    let before = {
        let server = serve(kassa_keyed(dir.path(), &db.url, old, ""));
        let put = client
            .put(format!("{}/api/v1/settings/stripe/live", server.base))
            .bearer_auth(&api_key)
            .json(
                &serde_json::json!({"secret_key": "sk_live_51CliSecretKey9876",
                "publishable_key": "pk_live_51CliPublishable", "webhook_secret": "whsec_CliStripeSecret5432"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
        settings(&server.base).await
    };
    assert_eq!(before["stripe"]["live"]["secret_key_last4"], "9876");
    let link_secret = before["link_signing_secret"].as_str().unwrap().to_owned();

    for refused in [
        kassa_keyed(dir.path(), &db.url, new, "")
            .arg("migrate")
            .output()
            .unwrap(),
        kassa_keyed(dir.path(), &db.url, new, "")
            .arg("serve")
            .env("KASSA_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap(),
    ] {
        assert!(!refused.status.success());
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains("Every node on one database must use the same secrets key"),
            "{said}"
        );
        assert!(said.contains("KASSA_SECRETS_KEY"), "{said}");
        assert!(
            !said.contains(new) && !said.contains(old),
            "no key is printed: {said}"
        );
    }

    let resealed = kassa_keyed(dir.path(), &db.url, new, old)
        .args(["secrets", "reseal"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&resealed.stderr);
    assert!(resealed.status.success(), "{said}");
    assert!(said.contains("Resealed 4 secrets"), "{said}");
    let stale = kassa_keyed(dir.path(), &db.url, old, "")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!stale.status.success(), "the old key alone no longer fits");

    let server = serve(kassa_keyed(dir.path(), &db.url, new, ""));
    let after = settings(&server.base).await;
    assert_eq!(after["link_signing_secret"], link_secret.as_str());
    assert_eq!(after["stripe"]["live"]["secret_key_last4"], "9876");
    assert_eq!(after["stripe"]["live"]["webhook_secret_last4"], "5432");
}

/// What `kassa <command>` logs when its database, a PostgreSQL URL with a password on
/// port 1 where nothing listens, cannot be reached.
fn log_of_unreachable_database(command: &str, smtp_url: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = kassa(dir.path());
    cmd.env(
        "KASSA_DATABASE_URL",
        "postgres://kassa:s3cret-pw@127.0.0.1:1/kassa",
    );
    if let Some(url) = smtp_url {
        cmd.env("KASSA_SMTP_URL", url);
    }
    let out = cmd.arg(command).output().unwrap();
    assert!(!out.status.success(), "nothing listens on port 1");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn database_passwords_do_not_reach_the_logs() {
    let logs = log_of_unreachable_database("migrate", None);
    assert!(
        logs.contains("postgres://kassa:***@127.0.0.1:1/kassa"),
        "{logs}"
    );
    assert!(!logs.contains("s3cret-pw"), "{logs}");
}

#[tokio::test]
async fn the_startup_log_holds_no_smtp_or_database_password() {
    let logs = log_of_unreachable_database("serve", Some("smtp://user:hunter2@127.0.0.1:1"));
    assert!(logs.contains("starting"), "{logs}");
    assert!(logs.contains("smtp://user:***@127.0.0.1:1"), "{logs}");
    for password in ["hunter2", "s3cret-pw"] {
        assert!(
            !logs.contains(password),
            "the log holds {password}:\n{logs}"
        );
    }
}

/// `kassa serve` is killed (SIGKILL) while a receiver holds the first delivery; after a
/// restart the dead worker's heartbeats are missed, its job is taken over, and the
/// event arrives.
async fn a_webhook_survives_kill_9_mid_delivery(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = acme_key(dir.path(), &db.url);
    let start = || serve_recovering_fast(dir.path(), &db.url, "1s,1s,1s");
    let client = reqwest::Client::new();
    let api = |server: &Running, path: &str| format!("{}/api/v1{path}", server.base);
    let mut server = start();
    let endpoint: serde_json::Value = client
        .post(api(&server, "/webhook-endpoints"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"url": "https://placeholder.example/", "disabled": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let receiver = crate::webhooks::Receiver::start(endpoint["secret"].as_str().unwrap(), "", 6.0);
    let endpoint_id = endpoint["id"].as_str().unwrap();
    client
        .patch(api(&server, &format!("/webhook-endpoints/{endpoint_id}")))
        .bearer_auth(&key)
        .json(&serde_json::json!({"url": receiver.url, "disabled": false}))
        .send()
        .await
        .unwrap();
    let pool: serde_json::Value = client
        .post(api(&server, "/license-pools"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "P"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let product: serde_json::Value = client
        .post(api(&server, "/products"))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"name": "P", "prices": [{"currency": "USD", "amount": 100}],
                                  "delivery": {"method": "license_pool", "pool_id": pool["id"]}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = client
        .post(api(&server, "/orders"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"lines": [{"product_id": product["id"], "quantity": 1}], "currency": "USD",
               "customer": {"email": "c@example.com"}, "payment_method": "bank_transfer",
               "consents": {"terms": true, "personal_data": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 200);
    // The receiver now holds the first delivery for 6 s; kill Kassa meanwhile.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    server = start();
    let got = receiver.wait_for(2).await;
    let got = if got.len() < 2 {
        // Three heartbeats of the dead worker have to be missed first.
        tokio::time::sleep(Duration::from_secs(5)).await;
        receiver.wait_for(2).await
    } else {
        got
    };
    assert!(got.len() >= 2, "delivered again after the restart: {got:?}");
    assert!(got.iter().all(|r| r["verified"] == true));
    assert_eq!(got[0]["webhook_id"], got[1]["webhook_id"], "the same event");
    // The receiver logs a request before it answers; Kassa records the attempt after.
    let mut deliveries = serde_json::Value::Null;
    for _ in 0..100 {
        deliveries = client
            .get(api(
                &server,
                &format!("/webhook-endpoints/{endpoint_id}/deliveries"),
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if deliveries["data"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(deliveries["data"][0]["status"], "succeeded", "{deliveries}");
}

/// `kassa serve` is killed (SIGKILL) while payments of a stream of orders are in
/// flight, then started again and the stream goes on: every order that ended paid is
/// delivered exactly once (no line twice, no key twice), its `product.delivered`
/// reaches the receiver (verified, with the event's id as `webhook-id` on every try),
/// and its licenses email is in the outbox.
async fn paid_orders_survive_kill_9_mid_stream(backend: Backend) {
    use serde_json::{Value, json};
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = acme_key(dir.path(), &db.url);
    let start = || serve_recovering_fast(dir.path(), &db.url, "0s,1s,1s,1s,1s");
    let client = reqwest::Client::new();
    let post = |base: String, path: String, body: Value| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            let r = client
                .post(format!("{base}/api/v1{path}"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await?;
            let ok = r.status().is_success();
            let v: Value = r.json().await?;
            Ok::<_, reqwest::Error>(ok.then_some(v))
        }
    };
    let mut server = start();
    let base = server.base.clone();
    let endpoint = post(
        base.clone(),
        "/webhook-endpoints".into(),
        json!({"url": "https://placeholder.example/", "disabled": true,
               "event_types": ["product.delivered"]}),
    )
    .await
    .unwrap()
    .expect("an endpoint");
    let receiver = crate::webhooks::Receiver::start(endpoint["secret"].as_str().unwrap(), "", 0.0);
    client
        .patch(format!(
            "{base}/api/v1/webhook-endpoints/{}",
            endpoint["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "disabled": false}))
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = (0..40).map(|i| format!("K9-{i:03}")).collect();
    let pool = post(base.clone(), "/license-pools".into(), json!({"name": "P"}))
        .await
        .unwrap()
        .expect("a pool");
    let pool_id = pool["id"].as_str().unwrap().to_owned();
    post(
        base.clone(),
        format!("/license-pools/{pool_id}/keys"),
        json!({"keys": keys}),
    )
    .await
    .unwrap()
    .expect("keys");
    let product = post(
        base.clone(),
        "/products".into(),
        json!({"name": "P", "prices": [{"currency": "USD", "amount": 100}],
               "delivery": {"method": "license_pool", "pool_id": pool_id}}),
    )
    .await
    .unwrap()
    .expect("a product");
    let product = product["id"].as_str().unwrap().to_owned();
    let place = |base: String, n: usize| {
        let post = &post;
        let product = product.clone();
        async move {
            let order = post(
                base.clone(),
                "/orders".into(),
                json!({"lines": [{"product_id": product, "quantity": 1}], "currency": "USD",
                       "customer": {"email": format!("c{n}@example.com")}, "payment_method": "bank_transfer",
                       "consents": {"terms": true, "personal_data": true}}),
            )
            .await
            .ok()
            .flatten()?;
            let id = order["id"].as_str()?.to_owned();
            // Paid or not (the server may die first): the order's status says.
            post(
                base,
                format!("/orders/{id}/payments"),
                json!({"method": "bank_transfer", "amount": 100, "currency": "USD"}),
            )
            .await
            .ok();
            Some(id)
        }
    };
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.extend(place(base.clone(), n).await);
    }
    // Ten more at once, and the server killed while they are in flight.
    let burst = futures::future::join_all((10..20).map(|n| place(base.clone(), n)));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    };
    let (placed, ()) = tokio::join!(burst, kill);
    ids.extend(placed.into_iter().flatten());
    server = start();
    let base = server.base.clone();
    for n in 20..30 {
        ids.extend(place(base.clone(), n).await);
    }

    let get = |path: String| {
        let (client, key, base) = (client.clone(), key.clone(), base.clone());
        async move {
            client
                .get(format!("{base}/api/v1{path}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Every order that ended paid is delivered.
    let mut paid = Vec::new();
    for _ in 0..600 {
        paid.clear();
        let mut waiting = 0;
        for id in &ids {
            let o = get(format!("/orders/{id}")).await;
            if o["status"] == "paid" {
                if o["delivery_status"] != "delivered" {
                    waiting += 1;
                }
                paid.push(o);
            }
        }
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        paid.len() >= 20,
        "the orders before and after the kill were paid: {}",
        paid.len()
    );
    let mut licenses = Vec::new();
    for o in &paid {
        assert_eq!(o["delivery_status"], "delivered", "{o}");
        let line: Vec<String> = serde_json::from_value(o["lines"][0]["licenses"].clone()).unwrap();
        assert_eq!(line.len(), 1, "one key for one unit: {o}");
        licenses.extend(line);
    }
    let mut distinct = licenses.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), paid.len(), "no key went to two lines");
    let stock = get(format!("/license-pools/{pool_id}")).await;
    assert_eq!(stock["assigned"], paid.len(), "{stock}");

    // Each paid order's product.delivered reached the receiver, verified; one event per
    // order, and every try of an event carries its id as webhook-id.
    let mut events: std::collections::BTreeMap<String, String> = Default::default();
    for _ in 0..600 {
        events.clear();
        for r in receiver.received() {
            assert_eq!(r["verified"], true, "{r}");
            let event = r["event"]["id"].as_str().unwrap().to_owned();
            assert_eq!(r["webhook_id"].as_str(), Some(event.as_str()), "{r}");
            let order = r["event"]["data"]["order"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            if let Some(before) = events.insert(event.clone(), order.clone()) {
                assert_eq!(before, order, "one event, one order");
            }
        }
        if events.len() >= paid.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut orders: Vec<&String> = events.values().collect();
    orders.sort();
    orders.dedup();
    assert_eq!(
        events.len(),
        paid.len(),
        "one product.delivered per paid order"
    );
    assert_eq!(orders.len(), paid.len());

    // No email lost: each paid order's licenses email is in the outbox, once.
    let mut emails = Vec::new();
    let mut page = "/emails?limit=100".to_owned();
    loop {
        let body = get(page.clone()).await;
        emails.extend(body["data"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(cursor) => page = format!("/emails?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    for o in &paid {
        let sent = emails
            .iter()
            .filter(|e| e["kind"] == "licenses" && e["order_id"] == o["id"])
            .count();
        assert_eq!(sent, 1, "the licenses email of {}", o["id"]);
    }
}
