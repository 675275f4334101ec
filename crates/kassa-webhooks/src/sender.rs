//! Sends one signed webhook and reports what happened, never more than the timeout.

use std::time::{Duration, Instant};

use crate::network::{NetworkPolicy, explain, resolver};
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
/// refused (IP literals must be checked by the caller with [`NetworkPolicy::check_url`]).
/// It never goes through a proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
/// `ALL_PROXY`): a proxy resolves and connects in Kassa's stead, past the guard.
pub fn guarded_client(
    policy: NetworkPolicy,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
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
        if let Err(blocked) = self.policy.check_url(&parsed) {
            return refused(blocked.to_string());
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
                let mut attempt = refused(explain(&e, TIMEOUT));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a merchant reads of a refused request names neither the host nor the
    /// address it resolved to.
    #[tokio::test]
    async fn refusals_name_no_internal_host_or_address() {
        let sender = Sender::new(NetworkPolicy {
            allow_private: false,
        })
        .unwrap();
        for (url, told) in [
            ("http://[::127.0.0.1]:9/", "the address is not allowed"),
            ("http://[::ffff:127.0.0.1]:9/", "the address is not allowed"),
            ("http://[64:ff9b::7f00:1]:9/", "the address is not allowed"),
            ("http://198.18.0.1:9/", "the address is not allowed"),
            ("http://localhost:9/", "the host could not be reached"),
            ("http://localhost.:9/", "the host could not be reached"),
            (
                "http://no-such-host.invalid:9/",
                "the host could not be reached",
            ),
        ] {
            let attempt = sender.send(url, "msg_1", 0, b"{}", &["whsec_AAAA"]).await;
            assert_eq!(attempt.status, None, "{url}");
            assert_eq!(attempt.response, told, "{url}");
        }
    }
}
