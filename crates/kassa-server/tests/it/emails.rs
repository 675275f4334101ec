//! Customer emails: rendered, branded, sent to a real SMTP server on loopback, retried
//! when it is down, and kept in the outbox without one. Both databases.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kassa_domain::tenant::{BankDetails, TenantSettings};
use kassa_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::pages::{Browser, details, product};

on_both_backends!(
    without_smtp_emails_are_kept_in_the_outbox,
    a_purchase_sends_the_failure_notice_and_the_receipt,
    bank_transfer_sends_instructions_then_a_receipt_with_the_invoice,
    emails_wait_for_a_down_smtp_server,
);

/// The SMTP sink, killed when dropped.
pub(crate) struct Sink {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Sink {
    pub(crate) fn start(port: Option<u16>) -> Self {
        let script = std::env::var("KASSA_SMTP_SINK").expect(
            "KASSA_SMTP_SINK is not set: run the suite with `bash tests/run.sh`, which installs aiosmtpd",
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mails.jsonl");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::piped());
        if let Some(p) = port {
            cmd.args(["--port", &p.to_string()]);
        }
        let mut child = cmd.spawn().expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .expect("the sink's port")
            .parse()
            .unwrap();
        Self {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The file it appends each mail to, one JSON object a line.
    pub(crate) fn file(&self) -> &Path {
        &self.out
    }

    pub(crate) fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            if self.mails().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.mails()
    }
}

async fn brand(app: &TestApp) {
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let settings = TenantSettings {
        support_email: Some("help@acme.test".into()),
        bank: Some(BankDetails {
            account_holder: "Acme GmbH".into(),
            bank_name: "Test Bank".into(),
            iban: "DE89370400440532013000".into(),
            bic: "COBADEFFXXX".into(),
        }),
        ..TenantSettings::default()
    };
    app.store
        .update_tenant_settings(&tenant.id, &settings)
        .await
        .unwrap();
}

async fn bank_order(app: &TestApp, prd: &str) -> Value {
    app.post(
        "/api/v1/orders",
        json!({"lines": [{"product_id": prd, "quantity": 2}], "currency": "USD",
               "customer": {"email": "buyer@example.com", "name": "Ada Buyer"}, "payment_method": "bank_transfer",
               "consents": {"terms": true, "personal_data": true}}),
    )
    .await
    .ok()
    .clone()
}

async fn outbox(app: &TestApp, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut emails = Vec::new();
    for _ in 0..100 {
        emails = app.get("/api/v1/emails").await.ok()["data"]
            .as_array()
            .unwrap()
            .clone();
        if until(&emails) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emails
}

async fn without_smtp_emails_are_kept_in_the_outbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    brand(&app).await;
    let prd = product(&app, 1999).await;
    let order = bank_order(&app, &prd).await;
    let emails = outbox(&app, |e| e.first().is_some_and(|m| m["status"] == "kept")).await;
    assert_eq!(emails.len(), 1);
    let mail = &emails[0];
    assert_eq!(mail["kind"], "payment_instructions");
    assert_eq!(mail["to"], "buyer@example.com");
    assert_eq!(mail["status"], "kept", "{mail}");
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .starts_with("Test store: how to pay for order #1")
    );
    let text = mail["text_body"].as_str().unwrap();
    assert!(text.contains(order["payment_reference"].as_str().unwrap()));
    assert!(text.contains("DE89370400440532013000"));
    assert!(text.contains("39.98 USD"));
    assert!(mail["html_body"].as_str().unwrap().contains("<strong>"));
}

async fn a_purchase_sends_the_failure_notice_and_the_receipt(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    brand(&app).await;
    let prd = product(&app, 1999).await;
    let b = Browser::new(&app);
    let checkout = b.open(&format!("/acme/test/buy/{prd}?quantity=2")).await;
    let placed = b
        .submit(
            &checkout,
            "/acme/test/checkout",
            &details(&checkout.csrf(), "test_card"),
        )
        .await;
    let pay_path = placed.location.unwrap();
    let pay = b.get(&pay_path).await;
    for card in ["4000 0000 0000 0002", "4242 4242 4242 4242"] {
        b.post(
            &pay_path,
            &[
                ("csrf", &pay.csrf()),
                ("card_number", card),
                ("expiry", "12/34"),
                ("cvc", "123"),
            ],
        )
        .await;
    }
    // The customer gets the failure notice, the receipt and the licenses.
    let mails = sink.wait_for(3).await;
    assert!(
        mails
            .iter()
            .all(|m| m["rcpt_tos"] == json!(["buyer@example.com"]))
    );
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert!(
        mails
            .iter()
            .any(|m| m["subject"].as_str().unwrap().contains("your licenses"))
    );
    let failed = mails
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("did not go through")
        })
        .unwrap();
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .contains("Your card was declined")
    );
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{}{pay_path}", app.base)),
        "a link back"
    );
    let receipt = mails
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("receipt"))
        .unwrap();
    assert_eq!(receipt["rcpt_tos"], json!(["buyer@example.com"]));
    assert!(receipt["from"].as_str().unwrap().contains("Test store"));
    assert!(
        receipt["from"]
            .as_str()
            .unwrap()
            .contains("shop@kassa.test")
    );
    assert_eq!(receipt["reply_to"], "help@acme.test");
    let text = receipt["text"].as_str().unwrap();
    assert!(text.contains("Hello Ada Buyer"));
    assert!(text.contains("Pro License × 2: 39.98 USD"));
    assert!(receipt["html"].as_str().unwrap().contains("39.98 USD"));
    let emails = outbox(&app, |e| e.iter().all(|m| m["status"] == "sent")).await;
    assert!(emails.iter().all(|m| m["status"] == "sent"), "{emails:?}");
}

async fn bank_transfer_sends_instructions_then_a_receipt_with_the_invoice(backend: Backend) {
    let sink = Sink::start(None);
    let app = TestApp::spawn_with_smtp(backend, Some(&sink.url())).await;
    brand(&app).await;
    let prd = product(&app, 1999).await;
    let order = bank_order(&app, &prd).await;
    let mails = sink.wait_for(1).await;
    assert!(mails[0]["subject"].as_str().unwrap().contains("how to pay"));
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap()
            .contains(order["payment_reference"].as_str().unwrap())
    );
    app.post(
        &format!("/api/v1/orders/{}/payments", order["id"].as_str().unwrap()),
        json!({"method": "bank_transfer", "amount": 3998, "currency": "USD"}),
    )
    .await
    .ok();
    // The receipt, then the licenses (the pool holds enough keys).
    let mails = sink.wait_for(3).await;
    let subjects: Vec<&str> = mails
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(mails.len(), 3, "{subjects:?}");
    let receipt = mails
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("receipt"))
        .unwrap();
    let licenses = mails
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("your licenses"))
        .unwrap();
    assert!(
        licenses["text"].as_str().unwrap().contains("K-"),
        "the keys themselves"
    );
    assert!(
        receipt["text"].as_str().unwrap().contains("/invoice"),
        "the invoice for a bank transfer"
    );
}

async fn emails_wait_for_a_down_smtp_server(backend: Backend) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with_smtp(backend, Some(&format!("smtp://127.0.0.1:{port}"))).await;
    brand(&app).await;
    let prd = product(&app, 1999).await;
    bank_order(&app, &prd).await;
    let emails = outbox(&app, |e| {
        e.first()
            .is_some_and(|m| m["attempts"].as_i64().unwrap() >= 2)
    })
    .await;
    assert_eq!(emails[0]["status"], "queued", "{emails:?}");
    assert!(emails[0]["last_error"].as_str().is_some());
    let sink = Sink::start(Some(port));
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1, "delivered once the server is up");
    let emails = outbox(&app, |e| e[0]["status"] == "sent").await;
    assert_eq!(emails[0]["status"], "sent");
}
