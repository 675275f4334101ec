//! What the server log keeps of a request: the route, never the tokens, signatures or
//! personal data its path and query carry.

use std::sync::{Arc, Mutex, OnceLock};

use kassa_domain::signed_link;
use kassa_testkit::{Backend, on_both_backends};

use crate::harness::TestApp;
use crate::pages::{Browser, details, product};

on_both_backends!(request_logs_keep_no_tokens_signatures_or_emails);

/// Everything the test binary logs at INFO, as an operator's log file would hold it.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        log
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn request_logs_keep_no_tokens_signatures_or_emails(backend: Backend) {
    let log = captured_log();
    let app = TestApp::spawn(backend).await;
    let prd = product(&app, 1999).await;
    let tenant = app.store.tenant_by_slug("acme").await.unwrap();
    let secret = app.store.link_secret(&tenant.id).await.unwrap();
    let path = format!("/acme/test/buy/{prd}");
    let email = format!("leak-{}@example.com", &prd[4..]);
    let custom = format!("private-ref-{}", &prd[4..]);
    let params = vec![
        ("currency".to_owned(), "USD".to_owned()),
        ("custom[ref]".to_owned(), custom.clone()),
        ("email".to_owned(), email.clone()),
        ("price".to_owned(), "999".to_owned()),
        ("max_quantity".to_owned(), "10".to_owned()),
    ];
    let sig = signed_link::sign(secret.expose_secret(), "acme", &prd, &params).unwrap();
    let b = Browser::new(&app);
    let checkout = b
        .open(&format!(
            "{path}?currency=USD&email={email}&price=999&max_quantity=10&sig={sig}&custom[ref]={custom}"
        ))
        .await;
    assert!(checkout.html.contains("9.99 USD"), "the signed link worked");
    let paid = b
        .submit(
            &checkout,
            "/acme/test/checkout",
            &details(&checkout.csrf(), "test_card"),
        )
        .await;
    let pay_path = paid
        .location
        .expect("Continue redirects to the payment page");
    let token = pay_path
        .trim_start_matches("/acme/orders/")
        .trim_end_matches("/pay");
    let order_path = format!("/acme/orders/{token}");
    assert_eq!(b.get(&order_path).await.status, 200, "the order page opens");

    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    for secret in [token, &sig, &email, &custom, "buyer@example.com"] {
        assert!(!text.contains(secret), "the log holds {secret}:\n{text}");
    }
    for logged in ["/:tenant/test/buy/:product", "/:tenant/orders/:token"] {
        assert!(text.contains(logged), "the log names the route {logged}");
    }
}
