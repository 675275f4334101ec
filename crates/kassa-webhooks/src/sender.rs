//! Sends one signed webhook and reports what happened, never more than the timeout.

use std::time::{Duration, Instant};

use crate::network::{NetworkPolicy, is_forbidden_ip, resolver};
use crate::signature::signature_header;

/// How much of a response body is kept in the attempt log.
pub const RESPONSE_LOG_BYTES: usize = 1024;
/// The longest Kassa waits for a receiver.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// The start of the response body, or why there was none.
    pub response: String,
    /// A `Retry-After` in seconds, when the receiver asked for one.
    pub retry_after: Option<Duration>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// 410 Gone: the receiver wants no more webhooks at this URL.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// Sends webhooks; cheap to clone, shares its connection pool.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    policy: NetworkPolicy,
}

/// An HTTP client for requests on merchants' behalf: no redirects followed, and
/// unless `policy` allows them, names that resolve to private or reserved addresses
/// refused (IP literals must be checked by the caller with [`is_forbidden_ip`]).
pub fn guarded_client(
    policy: NetworkPolicy,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Kassa/", env!("CARGO_PKG_VERSION")));
    if !policy.allow_private {
        builder = builder.dns_resolver(resolver());
    }
    builder.build()
}

impl Sender {
    pub fn new(policy: NetworkPolicy) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: guarded_client(policy, TIMEOUT)?,
            policy,
        })
    }

    /// POSTs `body` to `url` with the Standard Webhooks headers, signed with every
    /// secret in `secrets`; keeps the first KiB of the answer for the log.
    pub async fn send(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        secrets: &[&str],
    ) -> Attempt {
        self.send_reading(url, msg_id, timestamp, body, secrets, RESPONSE_LOG_BYTES)
            .await
    }

    /// Like [`Sender::send`], keeping up to `max_response` bytes of the answer (for
    /// requests whose answer carries data, such as a license service's).
    pub async fn send_reading(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        secrets: &[&str],
        max_response: usize,
    ) -> Attempt {
        let started = Instant::now();
        let refused = |why: String| Attempt {
            status: None,
            latency_ms: 0,
            response: why,
            retry_after: None,
        };
        let parsed = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return refused(format!("invalid URL: {e}")),
        };
        if !self.policy.allow_private {
            let literal = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(is_forbidden_ip) {
                return refused("refused: the URL points at a private or reserved address".into());
            }
        }
        let result = self
            .client
            .post(parsed)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature_header(secrets, msg_id, timestamp, body),
            )
            .body(body.to_vec())
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let mut attempt = refused(describe(&e));
                attempt.latency_ms = elapsed_ms(started);
                return attempt;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = read_prefix(response, max_response).await;
        Attempt {
            status: Some(status),
            latency_ms: elapsed_ms(started),
            response: text,
            retry_after,
        }
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// The start of a body, without reading more than needed.
async fn read_prefix(mut response: reqwest::Response, max: usize) -> String {
    let mut kept = Vec::new();
    while kept.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(max);
    String::from_utf8_lossy(&kept).into_owned()
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        format!("timed out after {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
