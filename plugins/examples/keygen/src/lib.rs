//! A key generator: for each unit it derives a license key
//! `PREFIX-XXXXX-XXXXX-XXXXX-XXXXX` where the last groups are an HMAC-SHA256 signature
//! (keyed with the plugin's secret `signing-key`) of the prefix, the order, the line
//! and the unit number, in Crockford base32. The merchant's app verifies a key offline
//! by recomputing the HMAC (see plugins/README.md); keys are the same on every retry.

use hmac::{Hmac, Mac};
use kassa_plugin_sdk::{FulfillError, Plugin, Request, config, export, host};
use sha2::Sha256;

struct Keygen;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Crockford base32 of the first `len` 5-bit groups of `bytes`.
fn base32(bytes: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 && out.len() < len {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    out
}

/// The key for one unit: `PREFIX-` and four groups of five signature characters.
pub fn key(secret: &[u8], prefix: &str, order: &str, line: u32, unit: u32) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{prefix}|{order}|{line}|{unit}").as_bytes());
    let sig = base32(&mac.finalize().into_bytes(), 20);
    format!(
        "{prefix}-{}-{}-{}-{}",
        &sig[0..5],
        &sig[5..10],
        &sig[10..15],
        &sig[15..20]
    )
}

impl Plugin for Keygen {
    fn fulfill(request: Request) -> Result<Vec<String>, FulfillError> {
        let secret = host::secret("signing-key")
            .ok_or_else(|| FulfillError::Permanent("the secret signing-key is not set".into()))?;
        let prefix = config(&request, "prefix").unwrap_or("KEY");
        host::log(&format!(
            "generating {} key(s) for {} line {}",
            request.quantity, request.order_id, request.line_no
        ));
        Ok((1..=request.quantity)
            .map(|unit| {
                key(
                    secret.as_bytes(),
                    prefix,
                    &request.order_id,
                    request.line_no,
                    unit,
                )
            })
            .collect())
    }
}

export!(Keygen);
