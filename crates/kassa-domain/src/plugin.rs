//! Fulfillment plugins as a merchant sets them up: a name, the hosts its
//! `http-fetch` may reach, and the names of its config entries and secrets.

use crate::Invalid;
use crate::error::parse_text;

pub fn parse_plugin_name(raw: &str) -> Result<String, Invalid> {
    parse_text("name", raw, 100)
}

/// The hosts a plugin's `http-fetch` may reach, lower-cased: names like
/// `api.example.com`, with a port if one is needed.
pub fn parse_allowed_hosts(hosts: &[String]) -> Result<Vec<String>, Invalid> {
    let mut invalid = Invalid::default();
    let mut out = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let host = h.trim().to_ascii_lowercase();
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
        if ok {
            out.push(host);
        } else {
            invalid.push(
                format!("allowed_hosts[{i}]"),
                "must be a host name like api.example.com",
            );
        }
    }
    invalid.into_result().map(|()| out)
}

/// The name of a config entry or a secret, as the plugin asks for it: at most 100
/// characters, no spaces.
pub fn parse_setting_name(field: &str, raw: &str) -> Result<String, Invalid> {
    let name = parse_text(field, raw, 100)?;
    if name.chars().any(char::is_whitespace) {
        return Err(Invalid::field(field, "must not contain spaces"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_lower_cased() {
        assert_eq!(
            parse_allowed_hosts(&[" API.Example.com ".into(), "127.0.0.1:8443".into()]).unwrap(),
            ["api.example.com", "127.0.0.1:8443"]
        );
        let bad = parse_allowed_hosts(&["ok.example".into(), "https://x/".into()]).unwrap_err();
        assert_eq!(bad.errors[0].field, "allowed_hosts[1]");
    }

    #[test]
    fn setting_names_have_no_spaces() {
        assert_eq!(
            parse_setting_name("k", " signing-key ").unwrap(),
            "signing-key"
        );
        assert!(parse_setting_name("k", "two words").is_err());
        assert!(parse_setting_name("k", "").is_err());
    }
}
