//! localstripe (https://github.com/adrienverge/localstripe, PyPI, pinned in
//! `tests/stripe/requirements.txt` and installed by `tests/run.sh`): a stateful
//! stand-in of Stripe's API written by others, serving PaymentIntents, PaymentMethods,
//! Charges and Refunds, and sending webhooks itself, signed as Stripe signs them. One
//! per test (it keeps its state in memory and sends every event to every webhook it
//! was given), on a free port, stopped when dropped.
//!
//! What it does not do, and the tests do instead: it sends no
//! `payment_intent.canceled` (the test signs that event itself, with the store's
//! secret), never says `livemode: true` (a live mode event is signed by the test), and
//! takes no `Idempotency-Key` (a retried request makes a second object).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::web::Data;
use poem::{EndpointExt, Request, Route, handler, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The secret key the tests give Kassa for localstripe's test mode (localstripe takes
/// any `sk_…`, and no restricted `rk_…` key).
pub(crate) const SECRET_KEY: &str = "sk_test_51KassaSecretKey0001";

pub(crate) struct LocalStripe {
    child: Child,
    /// `http://127.0.0.1:PORT`: its API under `/v1`, its Stripe.js at
    /// `/js.stripe.com/v3/`.
    pub(crate) base: String,
    http: reqwest::Client,
}

impl LocalStripe {
    pub(crate) async fn start() -> Self {
        let python = std::env::var("KASSA_LOCALSTRIPE_PYTHON").expect(
            "KASSA_LOCALSTRIPE_PYTHON is not set: run the suite with `bash tests/run.sh`, \
             which installs localstripe",
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/stripe/localstripe_server.py"
        );
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(&python)
                .arg(script)
                .args(["--port", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python runs localstripe");
            // Stopped by `Drop` whatever happens next.
            let mut stand_in = Self {
                child,
                base: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
            };
            for _ in 0..200 {
                if let Ok(r) = reqwest::get(stand_in.js_url()).await
                    && r.status().is_success()
                {
                    return stand_in;
                }
                if stand_in.child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("localstripe did not start");
    }

    /// Its Stripe.js, for Kassa's `stripe_js_url`.
    pub(crate) fn js_url(&self) -> String {
        format!("{}/js.stripe.com/v3/", self.base)
    }

    /// Makes it send the PaymentIntent events Kassa takes to `url`, signed with
    /// `secret` (`id` names the webhook: another call with the same id replaces it).
    pub(crate) async fn send_webhooks(&self, id: &str, url: &str, secret: &str) {
        let resp = self
            .http
            .post(format!("{}/_config/webhooks/{id}", self.base))
            .json(&json!({"url": url, "secret": secret, "events": [
                "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"]}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.bearer_auth(SECRET_KEY).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.call(self.http.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
            .1
    }

    /// Every PaymentIntent made, oldest first.
    pub(crate) async fn payment_intents(&self) -> Vec<Value> {
        let mut all = self.get("/v1/payment_intents?limit=100").await["data"]
            .as_array()
            .unwrap()
            .clone();
        all.sort_by_key(|pi| pi["created"].as_i64());
        all
    }

    /// A PaymentIntent made at "Stripe" by someone other than Kassa (an attacker who
    /// knows an order's id, say).
    pub(crate) async fn create_payment_intent(&self, form: &[(&str, &str)]) -> Value {
        let (status, pi) = self.post("/v1/payment_intents", form).await;
        assert_eq!(status, 200, "{pi}");
        pi
    }

    /// What Stripe.js does for the customer on the pay page: the card becomes a
    /// PaymentMethod and confirms the PaymentIntent. Returns Stripe's answer (402 with
    /// the reason for a declined card).
    pub(crate) async fn pay(&self, payment_intent: &str, card: &str) -> (u16, Value) {
        let (status, pm) = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", card),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2030"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{pm}");
        let path = format!("/v1/payment_intents/{payment_intent}");
        let (status, pi) = self
            .post(&path, &[("payment_method", pm["id"].as_str().unwrap())])
            .await;
        assert_eq!(status, 200, "{pi}");
        self.post(&format!("{path}/confirm"), &[]).await
    }

    pub(crate) async fn cancel(&self, payment_intent: &str) -> Value {
        let (status, pi) = self
            .post(&format!("/v1/payment_intents/{payment_intent}/cancel"), &[])
            .await;
        assert_eq!(status, 200, "{pi}");
        pi
    }

    /// What Stripe.js does once the customer passed the bank's 3-D Secure challenge.
    pub(crate) async fn authenticate(&self, payment_intent: &str, client_secret: &str) -> Value {
        let (status, pi) = self
            .post(
                &format!("/v1/payment_intents/{payment_intent}/_authenticate"),
                &[("client_secret", client_secret), ("success", "true")],
            )
            .await;
        assert_eq!(status, 200, "{pi}");
        pi
    }

    /// What the merchant does in Stripe's dashboard: refunds `amount` of a
    /// PaymentIntent. Returns the Refund.
    pub(crate) async fn refund(&self, payment_intent: &str, amount: i64) -> Value {
        let amount = amount.to_string();
        let (status, refund) = self
            .post(
                "/v1/refunds",
                &[("payment_intent", payment_intent), ("amount", &amount)],
            )
            .await;
        assert_eq!(status, 200, "{refund}");
        refund
    }

    /// The refunds made of a PaymentIntent, newest first.
    pub(crate) async fn refunds(&self, payment_intent: &str) -> Vec<Value> {
        self.get(&format!("/v1/refunds?payment_intent={payment_intent}"))
            .await["data"]
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook as localstripe sent it: its `Stripe-Signature` and body, to replay.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    pub(crate) signature: String,
    pub(crate) body: String,
}

impl Sent {
    pub(crate) fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Receives what localstripe sends (beside Kassa, or instead of it), to look at and
/// to send to Kassa again as an attacker who captured it would.
pub(crate) struct Recorder {
    pub(crate) url: String,
    got: Arc<Mutex<Vec<Sent>>>,
    _stop: oneshot::Sender<()>,
}

#[handler]
fn record(req: &Request, body: String, Data(got): Data<&Arc<Mutex<Vec<Sent>>>>) -> &'static str {
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    got.lock().unwrap().push(Sent { signature, body });
    "ok"
}

impl Recorder {
    pub(crate) async fn start() -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let app = Route::new().at("/", post(record)).data(got.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = poem::Server::new(poem::listener::TcpListener::bind(addr.to_string()));
        tokio::spawn(async move {
            server
                .run_with_graceful_shutdown(
                    app,
                    async {
                        stopped.await.ok();
                    },
                    None,
                )
                .await
                .ok();
        });
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            url: format!("http://{addr}/"),
            got,
            _stop: stop,
        }
    }

    /// The first event of type `kind` received, waiting for it up to 30 s.
    pub(crate) async fn wait_for(&self, kind: &str) -> Sent {
        self.wait_until(kind, |_| true).await
    }

    /// The first event of type `kind` about the PaymentIntent `id`, waiting for it up
    /// to 30 s.
    pub(crate) async fn wait_for_payment(&self, kind: &str, id: &str) -> Sent {
        self.wait_until(kind, |e| e["data"]["object"]["id"] == id)
            .await
    }

    async fn wait_until(&self, kind: &str, about: impl Fn(&Value) -> bool) -> Sent {
        for _ in 0..300 {
            let found = self
                .got
                .lock()
                .unwrap()
                .iter()
                .find(|s| {
                    let event = s.event();
                    event["type"] == kind && about(&event)
                })
                .cloned();
            if let Some(sent) = found {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("localstripe sent no {kind}");
    }
}
