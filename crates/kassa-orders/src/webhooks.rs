//! The rules of a webhook endpoint that need the operator's policy: a URL Kassa may
//! send to, the event types it takes, a description.

use kassa_domain::Invalid;
use kassa_domain::catalog::{parse_description, parse_outgoing_url};
use kassa_domain::webhook::parse_event_types;
use kassa_store::WebhookEndpointFields;
use kassa_webhooks::NetworkPolicy;

/// An endpoint as typed on a form or sent to the API, not yet checked.
#[derive(Debug, Clone, Copy)]
pub struct EndpointInput<'a> {
    pub url: &'a str,
    pub description: Option<&'a str>,
    /// Empty: every event type.
    pub event_types: &'a [String],
    pub disabled: bool,
}

/// The endpoint's fields, or what is wrong with them by field (`url`, `description`,
/// `event_types[i]`). A URL whose host is an address outgoing requests may not reach
/// (loopback, private, metadata) is refused here unless `network` allows it; a name
/// that resolves to one is refused when a webhook is sent.
pub fn endpoint_fields(
    input: EndpointInput<'_>,
    network: NetworkPolicy,
) -> Result<WebhookEndpointFields, Invalid> {
    let mut invalid = Invalid::default();
    let url = invalid
        .check(parse_outgoing_url("url", input.url))
        .and_then(|url| invalid.check(reachable("url", &url, network)).map(|()| url));
    let description = invalid.check(parse_description(input.description));
    let event_types = invalid.check(parse_event_types(input.event_types));
    match (url, description, event_types) {
        (Some(url), Some(description), Some(event_types)) => Ok(WebhookEndpointFields {
            url,
            description,
            event_types,
            disabled: input.disabled,
        }),
        _ => Err(invalid),
    }
}

fn reachable(field: &str, url: &str, network: NetworkPolicy) -> Result<(), Invalid> {
    let parsed = url::Url::parse(url).map_err(|e| Invalid::field(field, e.to_string()))?;
    network.check_url(&parsed).map_err(|blocked| {
        Invalid::field(
            field,
            format!("{blocked}: Kassa does not send to loopback, private or metadata addresses"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> EndpointInput<'_> {
        EndpointInput {
            url,
            description: None,
            event_types: &[],
            disabled: false,
        }
    }

    const CLOSED: NetworkPolicy = NetworkPolicy {
        allow_private: false,
    };

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://169.254.169.254/latest",
            "https://[::1]/",
            "http://10.1.2.3/",
        ] {
            let refused = endpoint_fields(input(url), CLOSED).unwrap_err();
            assert_eq!(refused.errors[0].field, "url", "{url}");
        }
        let open = NetworkPolicy {
            allow_private: true,
        };
        assert!(endpoint_fields(input("http://127.0.0.1:8080/hook"), open).is_ok());
        assert!(endpoint_fields(input("https://hooks.example.com/k"), CLOSED).is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let refused = endpoint_fields(
            EndpointInput {
                url: "ftp://x",
                description: Some(""),
                event_types: &["order.paid".into()],
                disabled: false,
            },
            CLOSED,
        )
        .unwrap_err();
        let fields: Vec<_> = refused.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "event_types[0]"]);
    }
}
