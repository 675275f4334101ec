//! Signed buy links: a merchant fixes what a customer must not change (a price
//! override, a fixed discount, an expiry) and signs the link with the store's secret.
//!
//! The signature is `sig` = hex(HMAC-SHA256(secret, path + "?" + canonical)), where
//! `canonical` is every other query parameter as `key=value`, sorted by key and joined
//! with `&`, keys and values exactly as decoded from the URL. `expires` is a Unix time
//! in seconds.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Parameters only a signed link may carry.
pub const SIGNED_ONLY: &[&str] = &["price", "discount"];

fn canonical(path: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{path}?{}", query.join("&"))
}

fn mac(secret: &str, message: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac
}

/// The `sig` for a link with these parameters.
pub fn sign(secret: &str, path: &str, params: &[(String, String)]) -> String {
    hex::encode(
        mac(secret, &canonical(path, params))
            .finalize()
            .into_bytes(),
    )
}

/// Why a signed link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// The link was changed after it was signed, or signed with another secret.
    Tampered,
    /// The link's `expires` has passed.
    Expired,
    /// A price or discount without a signature.
    Unsigned,
}

/// Checks a link's signature and expiry. A link without `sig` passes only when it
/// carries none of the signed-only parameters and no `expires`.
pub fn verify(
    secret: &str,
    path: &str,
    params: &[(String, String)],
    now_unix: i64,
) -> Result<bool, LinkProblem> {
    let sig = params.iter().find(|(k, _)| k == "sig").map(|(_, v)| v);
    let Some(sig) = sig else {
        let needs_sig = params
            .iter()
            .any(|(k, _)| SIGNED_ONLY.contains(&k.as_str()) || k == "expires");
        return if needs_sig {
            Err(LinkProblem::Unsigned)
        } else {
            Ok(false)
        };
    };
    let given = hex::decode(sig).map_err(|_| LinkProblem::Tampered)?;
    mac(secret, &canonical(path, params))
        .verify_slice(&given)
        .map_err(|_| LinkProblem::Tampered)?;
    if let Some((_, expires)) = params.iter().find(|(k, _)| k == "expires") {
        let at: i64 = expires.parse().map_err(|_| LinkProblem::Tampered)?;
        if at <= now_unix {
            return Err(LinkProblem::Expired);
        }
    }
    Ok(true)
}

/// [`verify`] against each of `secrets` (the store's current secret and, while a
/// rotation's overlap lasts, the one it replaced): a link signed with any of them holds.
pub fn verify_any(
    secrets: &[&str],
    path: &str,
    params: &[(String, String)],
    now_unix: i64,
) -> Result<bool, LinkProblem> {
    let mut answer = Err(LinkProblem::Tampered);
    for secret in secrets {
        answer = verify(secret, path, params, now_unix);
        if answer != Err(LinkProblem::Tampered) {
            break;
        }
    }
    answer
}

/// A new secret for signing a store's links.
pub fn generate_secret() -> crate::Secret {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    let secret: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    crate::Secret::from(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_current_secret_verifies() {
        let params = vec![("price".to_owned(), "999".to_owned())];
        let sig = sign("old", "/acme/buy/p", &params);
        let mut signed = params.clone();
        signed.push(("sig".to_owned(), sig));
        assert_eq!(
            verify_any(&["new", "old"], "/acme/buy/p", &signed, 0),
            Ok(true)
        );
        assert_eq!(
            verify_any(&["new"], "/acme/buy/p", &signed, 0),
            Err(LinkProblem::Tampered)
        );
        assert_eq!(
            verify_any(&["new", "old"], "/acme/buy/p", &params, 0),
            Err(LinkProblem::Unsigned)
        );
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_signed_link_verifies_and_any_change_breaks_it() {
        let path = "/acme/buy/prd_x";
        let mut p = params(&[("price", "500"), ("currency", "USD"), ("expires", "2000")]);
        let sig = sign("s3cret", path, &p);
        p.push(("sig".into(), sig.clone()));
        assert_eq!(verify("s3cret", path, &p, 1000), Ok(true));
        assert_eq!(verify("s3cret", path, &p, 2000), Err(LinkProblem::Expired));
        assert_eq!(verify("other", path, &p, 1000), Err(LinkProblem::Tampered));
        let mut changed = p.clone();
        changed[0].1 = "1".into();
        assert_eq!(
            verify("s3cret", path, &changed, 1000),
            Err(LinkProblem::Tampered)
        );
        assert_eq!(
            verify("s3cret", "/acme/buy/prd_y", &p, 1000),
            Err(LinkProblem::Tampered)
        );
    }

    #[test]
    fn prices_need_a_signature() {
        let p = params(&[("price", "1")]);
        assert_eq!(verify("s", "/a", &p, 0), Err(LinkProblem::Unsigned));
        assert_eq!(
            verify("s", "/a", &params(&[("quantity", "2")]), 0),
            Ok(false)
        );
    }
}
