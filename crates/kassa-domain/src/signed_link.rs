//! Signed buy links: the one format in which a merchant fixes an [`Offer`] (a price,
//! a fixed discount, the currency, the quantities, an expiry) that a customer must not
//! change, signed with the store's link-signing secret. `docs/signed-links.md` gives
//! the same algorithm for merchants, with a worked example this module's tests check.
//!
//! The signature covers the whole link, in one canonical, unambiguous encoding:
//!
//! ```text
//! message   = "KASSA-LINK-V2" LF "/" enc(store) "/buy/" enc(product) LF canonical
//! canonical = every parameter but `sig`, as enc(key) "=" enc(value),
//!             sorted by enc(key) (byte order), joined by "&"
//! enc       = UTF-8 bytes, each byte except A-Z a-z 0-9 - . _ ~ written %XX (upper-case hex)
//! sig       = hex(HMAC-SHA256(key = the secret's UTF-8 bytes, message)), lower case
//! ```
//!
//! Keys and values are those of the link as decoded from its URL. A signed link
//! carries only the buy link's own parameters ([`PARAMETERS`] and `custom[NAME]`),
//! each at most once: a duplicate or an unknown key refuses the link, so no two links
//! read differently share a message. Links signed in the first format (unencoded
//! pairs, no version line) are refused as changed.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Invalid;
use crate::offer::{Offer, OfferTerms};

/// The version line every signed message starts with.
pub const VERSION: &str = "KASSA-LINK-V2";

/// The parameters a buy link may carry, besides `custom[NAME]` and `sig`.
pub const PARAMETERS: &[&str] = &[
    "quantity",
    "currency",
    "coupon",
    "email",
    "name",
    "locale",
    "return_url",
    "price",
    "discount",
    "min_quantity",
    "max_quantity",
    "expires",
];

/// Parameters only a signed link may carry.
pub const SIGNED_ONLY: &[&str] = &[
    "price",
    "discount",
    "min_quantity",
    "max_quantity",
    "expires",
];

/// Why a link is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// The link was changed after it was signed, or signed with another secret or in
    /// the first format.
    Tampered,
    /// The link's `expires` (Unix seconds) has passed.
    Expired(i64),
    /// A price, discount, quantity bounds or expiry without a signature.
    Unsigned,
    /// A signed link carries this key more than once.
    Duplicate(String),
    /// A signed link carries a key buy links do not have.
    Unknown(String),
    /// The merchant signed terms that are not valid (a negative price, a price
    /// without a currency), named by the link's parameter.
    Invalid(Invalid),
}

/// A link whose signature checked out: its offer, and the quantity it opens with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOffer {
    pub offer: Offer,
    pub quantity: i64,
}

/// The decoded pairs of a URL's query string (`+` is a space), in order, duplicates
/// kept; bytes that are not UTF-8 read as U+FFFD.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// `enc` above: RFC 3986 percent-encoding of everything but the unreserved bytes.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn known(key: &str) -> bool {
    PARAMETERS.contains(&key) || key.starts_with("custom[") && key.ends_with(']')
}

/// The canonical query of a link: every parameter but `sig`, encoded and sorted. A
/// duplicate or unknown key is refused.
pub fn canonical_query(params: &[(String, String)]) -> Result<String, LinkProblem> {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(params.len());
    for (key, value) in params {
        if key == "sig" {
            continue;
        }
        if !known(key) {
            return Err(LinkProblem::Unknown(key.clone()));
        }
        let key = encode(key);
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(LinkProblem::Duplicate(
                params
                    .iter()
                    .find(|(k, _)| encode(k) == key)
                    .map(|(k, _)| k.clone())
                    .unwrap_or(key),
            ));
        }
        pairs.push((key, encode(value)));
    }
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(query.join("&"))
}

/// The message signed for a link to `product` in the store `store`.
pub fn message(
    store: &str,
    product: &str,
    params: &[(String, String)],
) -> Result<String, LinkProblem> {
    Ok(format!(
        "{VERSION}\n/{}/buy/{}\n{}",
        encode(store),
        encode(product),
        canonical_query(params)?
    ))
}

fn mac(secret: &str, message: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac
}

/// The `sig` of a link with these parameters.
pub fn sign(
    secret: &str,
    store: &str,
    product: &str,
    params: &[(String, String)],
) -> Result<String, LinkProblem> {
    let message = message(store, product, params)?;
    Ok(hex::encode(mac(secret, &message).finalize().into_bytes()))
}

/// A link's whole query string, signed: the canonical query and its `sig`.
pub fn signed_query(
    secret: &str,
    store: &str,
    product: &str,
    params: &[(String, String)],
) -> Result<String, LinkProblem> {
    let sig = sign(secret, store, product, params)?;
    let query = canonical_query(params)?;
    Ok(if query.is_empty() {
        format!("sig={sig}")
    } else {
        format!("{query}&sig={sig}")
    })
}

/// Checks a buy link. A link without `sig` is plain (`None`) unless it carries one of
/// [`SIGNED_ONLY`]; a signed one must carry known keys once each, match its signature,
/// hold valid terms and not have expired at `now`.
pub fn verify(
    secret: &str,
    store: &str,
    product: &str,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Option<SignedOffer>, LinkProblem> {
    let sig = params.iter().find(|(k, _)| k == "sig").map(|(_, v)| v);
    let Some(sig) = sig else {
        return if params
            .iter()
            .any(|(k, _)| SIGNED_ONLY.contains(&k.as_str()))
        {
            Err(LinkProblem::Unsigned)
        } else {
            Ok(None)
        };
    };
    if params.iter().filter(|(k, _)| k == "sig").count() > 1 {
        return Err(LinkProblem::Duplicate("sig".into()));
    }
    let message = message(store, product, params)?;
    let given = hex::decode(sig.trim()).map_err(|_| LinkProblem::Tampered)?;
    mac(secret, &message)
        .verify_slice(&given)
        .map_err(|_| LinkProblem::Tampered)?;
    let term = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let (offer, quantity) = Offer::parse(&OfferTerms {
        price: term("price"),
        discount: term("discount"),
        currency: term("currency"),
        quantity: term("quantity"),
        min_quantity: term("min_quantity"),
        max_quantity: term("max_quantity"),
        expires: term("expires"),
    })
    .map_err(LinkProblem::Invalid)?;
    if let (Err(_), Some(at)) = (offer.open_at(now), offer.expires) {
        return Err(LinkProblem::Expired(at));
    }
    Ok(Some(SignedOffer { offer, quantity }))
}

/// The name a link of the store `slug` is signed under in `mode`: the store's slug for
/// live mode (and for the links merchants sign themselves, in either mode), and
/// `{slug}/test` for the test mode links Kassa makes (a test key's checkout links), so
/// that a test link's offer, rewritten to the live checkout's path, does not hold
/// there. The test checkout takes links signed under either name.
pub fn signing_name(slug: &str, mode: crate::mode::Mode) -> String {
    match mode {
        crate::mode::Mode::Live => slug.to_owned(),
        crate::mode::Mode::Test => format!("{slug}/test"),
    }
}

/// [`verify`] against each of `secrets` (the store's current secret and, while a
/// rotation's overlap lasts, the one it replaced): a link signed with any of them holds.
pub fn verify_any(
    secrets: &[&str],
    store: &str,
    product: &str,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Option<SignedOffer>, LinkProblem> {
    let mut answer = Err(LinkProblem::Tampered);
    for secret in secrets {
        answer = verify(secret, store, product, params, now);
        if !matches!(answer, Err(LinkProblem::Tampered)) {
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
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn any_current_secret_verifies() {
        let params = params(&[("price", "999"), ("currency", "USD")]);
        let sig = sign("old", "acme", "p", &params).unwrap();
        let mut signed = params.clone();
        signed.push(("sig".to_owned(), sig));
        let now = at(0);
        assert!(matches!(
            verify_any(&["new", "old"], "acme", "p", &signed, now),
            Ok(Some(_))
        ));
        assert_eq!(
            verify_any(&["new"], "acme", "p", &signed, now),
            Err(LinkProblem::Tampered)
        );
        assert_eq!(
            verify_any(&["new", "old"], "acme", "p", &params, now),
            Err(LinkProblem::Unsigned)
        );
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn at(unix: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(unix, 0).unwrap()
    }

    fn signed(secret: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p = params(pairs);
        let sig = sign(secret, "acme", "prd_x", &p).unwrap();
        p.push(("sig".into(), sig));
        p
    }

    /// The worked example of `docs/signed-links.md`, to the byte.
    #[test]
    fn the_documented_example_signs_as_documented() {
        let secret = "k7Gm2pQx9VbR4tLz8NcW1sYe6HjA3dFu5KoT0iMq";
        let p = params(&[
            ("price", "900"),
            ("currency", "USD"),
            ("quantity", "1"),
            ("expires", "1767225600"),
            ("custom[ref]", "Spring sale & more"),
        ]);
        assert_eq!(
            message("acme", "prd_01jz8k5c2v3n4m5p6q7r8s9t0v", &p).unwrap(),
            "KASSA-LINK-V2\n/acme/buy/prd_01jz8k5c2v3n4m5p6q7r8s9t0v\n\
             currency=USD&custom%5Bref%5D=Spring%20sale%20%26%20more&expires=1767225600&price=900&quantity=1"
        );
        assert_eq!(
            sign(secret, "acme", "prd_01jz8k5c2v3n4m5p6q7r8s9t0v", &p).unwrap(),
            "fd5e77ad637f725617a6287d4f26862ae69b84b9f936b467148cbdcce849aa16"
        );
    }

    #[test]
    fn a_signed_link_verifies_and_any_change_breaks_it() {
        let p = signed(
            "s3cret",
            &[("price", "500"), ("currency", "USD"), ("expires", "2000")],
        );
        let ok = verify("s3cret", "acme", "prd_x", &p, at(1000))
            .unwrap()
            .unwrap();
        assert_eq!(ok.offer.unit_amount, Some(500));
        assert_eq!(ok.quantity, 1);
        assert_eq!(
            verify("s3cret", "acme", "prd_x", &p, at(2000)),
            Err(LinkProblem::Expired(2000))
        );
        assert_eq!(
            verify("other", "acme", "prd_x", &p, at(1000)),
            Err(LinkProblem::Tampered)
        );
        let mut changed = p.clone();
        changed[0].1 = "1".into();
        assert_eq!(
            verify("s3cret", "acme", "prd_x", &changed, at(1000)),
            Err(LinkProblem::Tampered)
        );
        for (store, product) in [("acme", "prd_y"), ("other", "prd_x")] {
            assert_eq!(
                verify("s3cret", store, product, &p, at(1000)),
                Err(LinkProblem::Tampered)
            );
        }
        let mut added = p.clone();
        added.push(("quantity".into(), "1000".into()));
        assert_eq!(
            verify("s3cret", "acme", "prd_x", &added, at(1000)),
            Err(LinkProblem::Tampered),
            "nothing can be added to a signed link"
        );
    }

    /// The attack: pairs joined without encoding let a value a customer influences
    /// (`custom[ref]=x&price=1`) read as another price; duplicates let the first win.
    #[test]
    fn the_message_is_unambiguous() {
        let injected = params(&[("custom[ref]", "x&price=1"), ("currency", "USD")]);
        let split = params(&[("custom[ref]", "x"), ("price", "1"), ("currency", "USD")]);
        assert_ne!(
            message("acme", "prd_x", &injected).unwrap(),
            message("acme", "prd_x", &split).unwrap()
        );
        assert_ne!(
            canonical_query(&params(&[("email", "a=b")])).unwrap(),
            canonical_query(&params(&[("email", "a"), ("b", "")])).unwrap_or_default()
        );
        let twice = params(&[("price", "1"), ("currency", "USD"), ("price", "9999")]);
        assert_eq!(
            sign("s", "acme", "prd_x", &twice),
            Err(LinkProblem::Duplicate("price".into()))
        );
        let mut p = signed("s", &[("price", "1"), ("currency", "USD")]);
        p.push(("price".into(), "9999".into()));
        assert_eq!(
            verify("s", "acme", "prd_x", &p, at(0)),
            Err(LinkProblem::Duplicate("price".into()))
        );
        let mut p = signed("s", &[("price", "1"), ("currency", "USD")]);
        p.push(("sig".into(), "00".into()));
        assert_eq!(
            verify("s", "acme", "prd_x", &p, at(0)),
            Err(LinkProblem::Duplicate("sig".into()))
        );
        assert_eq!(
            sign("s", "acme", "prd_x", &params(&[("utm_source", "x")])),
            Err(LinkProblem::Unknown("utm_source".into()))
        );
    }

    #[test]
    fn signed_terms_must_be_valid() {
        let p = signed("s", &[("price", "-5"), ("currency", "USD")]);
        let Err(LinkProblem::Invalid(invalid)) = verify("s", "acme", "prd_x", &p, at(0)) else {
            panic!("a negative price is refused");
        };
        assert_eq!(invalid.errors[0].field, "price");
        let p = signed("s", &[("price", "500")]);
        assert!(matches!(
            verify("s", "acme", "prd_x", &p, at(0)),
            Err(LinkProblem::Invalid(_))
        ));
    }

    #[test]
    fn plain_links_carry_no_offer_terms() {
        for key in SIGNED_ONLY {
            assert_eq!(
                verify("s", "a", "p", &params(&[(key, "1")]), at(0)),
                Err(LinkProblem::Unsigned)
            );
        }
        assert_eq!(
            verify(
                "s",
                "a",
                "p",
                &params(&[("quantity", "2"), ("utm_x", "y")]),
                at(0)
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_signed_query_reads_back() {
        let p = params(&[
            ("price", "900"),
            ("currency", "USD"),
            ("email", "a+b@x.test"),
        ]);
        let query = signed_query("s", "acme", "prd_x", &p).unwrap();
        assert!(query.contains("email=a%2Bb%40x.test"), "{query}");
        let back = parse_query(&query);
        assert!(
            verify("s", "acme", "prd_x", &back, at(0))
                .unwrap()
                .is_some()
        );
        assert_eq!(encode("é ~"), "%C3%A9%20~");
    }

    #[test]
    fn a_test_mode_link_does_not_hold_in_live_mode() {
        use crate::mode::Mode;
        let params = vec![
            ("price".to_owned(), "1".to_owned()),
            ("currency".to_owned(), "USD".to_owned()),
        ];
        let test = signing_name("acme", Mode::Test);
        let query = signed_query("secret", &test, "prd_1", &params).unwrap();
        let parsed = parse_query(&query);
        let now = Utc::now();
        assert!(matches!(
            verify("secret", &test, "prd_1", &parsed, now),
            Ok(Some(_))
        ));
        let live = signing_name("acme", Mode::Live);
        assert_eq!(live, "acme");
        assert!(matches!(
            verify("secret", &live, "prd_1", &parsed, now),
            Err(LinkProblem::Tampered)
        ));
    }
}

/// Property tests: the parser and the signature check take any query without a panic,
/// and the canonical encoding is one-to-one. `fuzz/` runs the same checks under
/// cargo-fuzz for longer.
#[cfg(test)]
mod properties {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(PARAMETERS).prop_map(str::to_owned),
            "custom\\[[a-z&=%\\]]{0,6}\\]",
            ".{0,8}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_query_is_read_without_a_panic(query in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
            for q in [query, String::from_utf8_lossy(&bytes).into_owned()] {
                let params = parse_query(&q);
                let _ = verify("secret", "acme", "prd_x", &params, now);
                let _ = canonical_query(&params);
            }
        }

        #[test]
        fn what_is_signed_verifies_and_reads_back_from_its_url(
            pairs in proptest::collection::btree_map(key(), ".{0,12}", 0..8),
        ) {
            let params: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "sig").collect();
            let now = Utc.timestamp_opt(0, 0).unwrap();
            match signed_query("s", "acme", "prd_x", &params) {
                Ok(query) => {
                    let back = parse_query(&query);
                    prop_assert_eq!(back.len(), params.len() + 1, "{}", query);
                    // The signature holds; only the offer's own rules may refuse it.
                    let read = verify("s", "acme", "prd_x", &back, now);
                    prop_assert!(
                        matches!(read, Ok(Some(_)) | Err(LinkProblem::Invalid(_) | LinkProblem::Expired(_))),
                        "{:?} for {}", read, query
                    );
                }
                Err(problem) => prop_assert!(
                    matches!(problem, LinkProblem::Unknown(_)),
                    "{:?}", problem
                ),
            }
        }

        #[test]
        fn different_links_have_different_messages(
            a in proptest::collection::btree_map(key(), ".{0,6}", 0..5),
            b in proptest::collection::btree_map(key(), ".{0,6}", 0..5),
        ) {
            let a: Vec<(String, String)> = a.into_iter().filter(|(k, _)| k != "sig").collect();
            let b: Vec<(String, String)> = b.into_iter().filter(|(k, _)| k != "sig").collect();
            if let (Ok(ma), Ok(mb)) = (message("acme", "prd_x", &a), message("acme", "prd_x", &b)) {
                prop_assert_eq!(ma == mb, a == b);
            }
        }
    }
}
