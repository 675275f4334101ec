//! Webhook endpoints: where a merchant receives events, which events, and the
//! `whsec_` secret Kassa signs them with (Standard Webhooks).

use base64::Engine;
use rand::RngCore;

use crate::event::EventKind;
use crate::{Invalid, Secret};

/// An endpoint's filter: the listed types only, or every type when empty.
pub fn parse_event_types(raw: &[String]) -> Result<Vec<String>, Invalid> {
    let mut invalid = Invalid::default();
    let mut out: Vec<String> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        if EventKind::from_name(t).is_none() {
            invalid.push(
                format!("event_types[{i}]"),
                format!("{t:?} is not an event type; known: {}", EventKind::names()),
            );
        } else if !out.contains(t) {
            out.push(t.clone());
        }
    }
    invalid.into_result().map(|()| out)
}

/// A new signing secret: `whsec_` and 24 random bytes in base64, as Standard
/// Webhooks libraries expect.
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    Secret::from(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_filters_accept_known_types_only() {
        assert_eq!(
            parse_event_types(&["order.created".into(), "order.created".into()]).unwrap(),
            ["order.created"]
        );
        assert!(parse_event_types(&["order.paid".into()]).is_err());
    }

    #[test]
    fn secrets_are_standard_webhooks_shaped() {
        let secret = generate_secret();
        let body = secret.expose_secret().strip_prefix("whsec_").unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
                .len(),
            24
        );
        assert_ne!(secret.expose_secret(), generate_secret().expose_secret());
    }
}
