//! Stripe's webhook signature (`Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=…]`):
//! `v1` is HMAC-SHA256, keyed with the endpoint's signing secret (`whsec_…`, used
//! whole), of `"{t}.{body}"`. Any one `v1` may match (Stripe sends two while a secret
//! rolls); `t` must be within the tolerance of now, so an old event replayed is
//! refused even with its genuine signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::provider::WebhookError;

/// Stripe's libraries' default: five minutes.
pub const TOLERANCE_SECS: i64 = 300;

/// Checks `header` against `body` at `now` (Unix seconds).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.extend(hex::decode(sig).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return Err(WebhookError::BadSignature);
    };
    let matches = signatures.iter().any(|sig| {
        // Constant time, whatever the signature's length.
        mac(secret, t, body).verify_slice(sig).is_ok()
    });
    if !matches {
        return Err(WebhookError::BadSignature);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

/// The header Stripe would send for `body` signed at `t`: for tests and stand-ins,
/// which must sign exactly as Stripe does.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let sig = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(sig))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;

    /// The worked example computed independently of this module: Python's
    /// `hmac.new(b"whsec_test_secret", b"1700000000." + body, sha256).hexdigest()`.
    #[test]
    fn signs_as_stripe_does() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            header,
            "t=1700000000,v1=a13d4b1f9003bc2fb6c06224e878b6056185eaa50d40e1e7dc05517f8af41d7b"
        );
        assert_eq!(verify(SECRET, &header, BODY, 1_700_000_010), Ok(()));
    }

    #[test]
    fn a_wrong_secret_body_or_header_is_refused() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        let now = 1_700_000_000;
        assert_eq!(
            verify("whsec_other", &header, BODY, now),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &header, b"{}", now),
            Err(WebhookError::BadSignature)
        );
        for bad in ["", "t=1700000000", "v1=00", "t=x,v1=zz", "garbage"] {
            assert_eq!(
                verify(SECRET, bad, BODY, now),
                Err(WebhookError::BadSignature),
                "{bad}"
            );
        }
        // A v0 (Stripe's test-only scheme) is never taken for a v1.
        let v0 = header.replace("v1=", "v0=");
        assert_eq!(
            verify(SECRET, &v0, BODY, now),
            Err(WebhookError::BadSignature)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replace("t=1700000000", "t=1700000100");
        assert_eq!(
            verify(SECRET, &moved, BODY, now + 100),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match_while_a_secret_rolls() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        let both = format!("t=1700000000,v1={},{}", "00".repeat(32), &header[13..]);
        assert_eq!(verify(SECRET, &both, BODY, 1_700_000_000), Ok(()));
    }

    #[test]
    fn an_old_event_replayed_is_refused() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_000 + TOLERANCE_SECS),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_001 + TOLERANCE_SECS),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_000 - TOLERANCE_SECS - 1),
            Err(WebhookError::Stale)
        );
    }
}
