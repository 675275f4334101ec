//! An operator's `HTTP_PROXY` does not carry requests made on merchants' behalf past
//! the deny-list: the guard checks the address Kassa connects to, and a proxy would
//! resolve and connect in its stead (issue 14). The proxy setting is the process's
//! environment, so the test runs itself again as a child with `HTTP_PROXY` set, and
//! counts who connects to the "proxy".

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use kassa_webhooks::{NetworkPolicy, Sender};

const CHILD: &str = "KASSA_PROXY_TEST_CHILD";

#[test]
fn a_proxy_in_the_environment_does_not_bypass_the_deny_list() {
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        return runtime.block_on(send_a_webhook_to_a_private_host());
    }
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_proxy_in_the_environment_does_not_bypass_the_deny_list",
        ])
        .env(CHILD, "1")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(out.contains("1 passed"), "{out}");
    let mut connections = 0;
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        match proxy.accept() {
            Ok(_) => connections += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(connections, 0, "the webhook went to the proxy");
}

/// In the child: a webhook to a name that resolves to loopback is refused by the
/// guard, as it is without a proxy.
async fn send_a_webhook_to_a_private_host() {
    assert!(std::env::var("HTTP_PROXY").is_ok());
    let sender = Sender::new(NetworkPolicy {
        allow_private: false,
    })
    .unwrap();
    let attempt = sender
        .send(
            "http://localhost:9/hook",
            "msg_1",
            1,
            b"{}",
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        )
        .await;
    assert_eq!(attempt.status, None, "{}", attempt.response);
    assert!(
        attempt.response.contains("could not be reached"),
        "{}",
        attempt.response
    );
}
