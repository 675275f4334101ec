//! Any query string read as a buy link: parsed, canonicalised and checked against a
//! signature without a panic; and a link signed from what was read verifies.
#![no_main]

use chrono::{TimeZone, Utc};
use kassa_domain::signed_link::{self, LinkProblem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let params = signed_link::parse_query(&query);
    let _ = signed_link::verify("secret", "acme", "prd_x", &params, now);
    let unsigned: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k != "sig").collect();
    if let Ok(signed) = signed_link::signed_query("secret", "acme", "prd_x", &unsigned) {
        let back = signed_link::parse_query(&signed);
        match signed_link::verify("secret", "acme", "prd_x", &back, now) {
            Ok(_) | Err(LinkProblem::Invalid(_) | LinkProblem::Expired(_)) => {}
            Err(other) => panic!("a link Kassa signed reads as {other:?}: {signed}"),
        }
    }
});
