//! Kassa's Stripe refunds against a local stand-in of Stripe's API written by others
//! (`stripe-stateful-mock` from npm, installed by `tests/run.sh`), and against a
//! Stripe that is down or slow. This stand-in, unlike localstripe (which the
//! integration tests pay and refund through), keeps Stripe's idempotency keys and
//! refuses a refund above what was paid: a payment is made there as a Charge, and
//! refunded by Kassa.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kassa_domain::Secret;
use kassa_payments::provider::{PaymentProvider, ProviderError};
use kassa_payments::stripe::Stripe;

const KEY: &str = "sk_test_kassa";

/// The stand-in, on a free port, stopped when dropped.
struct StandIn {
    child: Child,
    base: String,
}

impl StandIn {
    async fn start() -> Self {
        let cli = std::env::var("KASSA_STRIPE_STAND_IN").expect(
            "KASSA_STRIPE_STAND_IN is not set: run the suite with `bash tests/run.sh`, which \
             installs stripe-stateful-mock",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("node")
            .arg(cli)
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("node runs the stand-in");
        // Stopped by `Drop` whatever happens next.
        let stand_in = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if reqwest::get(&stand_in.base).await.is_ok() {
                return stand_in;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the Stripe stand-in did not start");
    }

    /// A card payment of `amount` USD cents made at "Stripe" by a customer.
    async fn charge(&self, amount: i64) -> String {
        let charge: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/v1/charges", self.base))
            .bearer_auth(KEY)
            .form(&[
                ("amount", amount.to_string()),
                ("currency", "usd".into()),
                ("source", "tok_visa".into()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        charge["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stripe(base: &str, timeout: Duration) -> Stripe {
    Stripe::new(
        base,
        Secret::from(KEY),
        Secret::from("whsec_kassa"),
        timeout,
    )
    .unwrap()
}

#[tokio::test]
async fn refunds_full_and_partial_once_each_and_never_above_what_was_paid() {
    let stand_in = StandIn::start().await;
    let stripe = stripe(&stand_in.base, Duration::from_secs(10));
    let charge = stand_in.charge(3998).await;

    let partial = stripe.refund(&charge, 1000, "refund-1").await.unwrap();
    assert_eq!(partial.amount, 1000);
    assert!(partial.succeeded);
    assert!(partial.reference.starts_with("re_"));
    // The same request again (a retry after a timeout): the same refund, not two.
    let again = stripe.refund(&charge, 1000, "refund-1").await.unwrap();
    assert_eq!(again, partial);

    // Above what is left: Stripe's reason comes back.
    match stripe.refund(&charge, 5000, "refund-2").await {
        Err(ProviderError::Refused { code, message }) => {
            assert_eq!(code, "invalid_request_error");
            assert!(
                message.contains("greater than unrefunded amount"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The rest: the charge is refunded in full; nothing more can be.
    let rest = stripe.refund(&charge, 2998, "refund-3").await.unwrap();
    assert_eq!(rest.amount, 2998);
    assert!(matches!(
        stripe.refund(&charge, 1, "refund-4").await,
        Err(ProviderError::Refused { .. })
    ));
}

#[tokio::test]
async fn a_bad_key_is_refused_with_stripes_reason() {
    let stand_in = StandIn::start().await;
    let charge = stand_in.charge(500).await;
    let wrong = Stripe::new(
        &stand_in.base,
        Secret::from("not-a-key"),
        Secret::from("whsec_kassa"),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(matches!(
        wrong.refund(&charge, 100, "refund-1").await,
        Err(ProviderError::Refused { .. })
    ));
}

#[tokio::test]
async fn stripe_down_or_slow_is_unavailable_not_refused() {
    // Down: nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = stripe(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
    assert!(matches!(
        down.refund("pi_1", 100, "k").await,
        Err(ProviderError::Unavailable(_))
    ));
    // Slow: a server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let slow = stripe(&format!("http://{addr}"), Duration::from_millis(300));
    match slow.refund("pi_1", 100, "k").await {
        Err(ProviderError::Unavailable(why)) => assert_eq!(why, "Stripe did not answer in time"),
        other => panic!("{other:?}"),
    }
    hold.abort();
}
