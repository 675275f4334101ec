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

/// A plugin's own limits, as its merchant set them; `None` takes the operator's
/// default. Each must stay within the operator's cap (`limits_within`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginLimits {
    /// Linear memory of one call, in MiB.
    pub memory_mib: Option<u32>,
    /// Units of computation of one call.
    pub fuel: Option<u64>,
    /// Wall-clock time of one call, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The operator's caps on what a merchant may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCaps {
    pub memory_mib: u32,
    pub fuel: u64,
    pub timeout_ms: u64,
}

/// Checks a merchant's limits against the operator's caps: each more than 0 and at
/// most its cap.
pub fn limits_within(limits: PluginLimits, caps: LimitCaps) -> Result<PluginLimits, Invalid> {
    let mut invalid = Invalid::default();
    let mut check = |field: &str, value: Option<u64>, cap: u64| {
        if let Some(v) = value
            && (v == 0 || v > cap)
        {
            invalid.push(
                format!("limits.{field}"),
                format!("must be between 1 and {cap} (the most this Kassa allows)"),
            );
        }
    };
    check(
        "memory_mib",
        limits.memory_mib.map(u64::from),
        u64::from(caps.memory_mib),
    );
    check("fuel", limits.fuel, caps.fuel);
    check("timeout_ms", limits.timeout_ms, caps.timeout_ms);
    invalid.into_result().map(|()| limits)
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn limits_above_the_operators_cap_are_refused() {
        let caps = LimitCaps {
            memory_mib: 1024,
            fuel: 10,
            timeout_ms: 30_000,
        };
        let fine = PluginLimits {
            memory_mib: Some(512),
            fuel: None,
            timeout_ms: Some(30_000),
        };
        assert_eq!(limits_within(fine, caps), Ok(fine));
        let over = PluginLimits {
            memory_mib: Some(2048),
            fuel: Some(0),
            timeout_ms: None,
        };
        let fields: Vec<_> = limits_within(over, caps)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["limits.memory_mib", "limits.fuel"]);
    }
}

/// Where a plugin's live version stands: a version made live is on trial until it
/// delivers a line for a real order, and while it is, Kassa knows which version to go
/// back to (the last one that delivered) if it fails in the sandbox first. A test run
/// proves nothing: it runs a sample order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub version: i64,
    /// The live version has delivered a line.
    pub proven: bool,
    /// What Kassa goes back to if the live version fails before it delivers.
    pub fallback: Option<i64>,
}

impl Live {
    /// The plugin once `version` is made live (uploaded, or chosen by the merchant):
    /// on trial unless it has delivered before, falling back to the version that
    /// delivered last (the live one if it has, else the one it falls back to).
    pub fn make_live(self, version: i64, proven: bool) -> Live {
        let fallback = if proven {
            None
        } else if self.proven && self.version != version {
            Some(self.version)
        } else {
            self.fallback.filter(|f| *f != version)
        };
        Live {
            version,
            proven,
            fallback,
        }
    }

    /// The plugin once `version` failed a delivery in the sandbox (it trapped or ran
    /// past a limit, not answered an error): its fallback live again, proven and with
    /// nothing to fall back to, if `version` is the live one and still on trial.
    /// `None`: it stays, and the failure is the delivery's alone.
    pub fn after_crash(self, version: i64) -> Option<Live> {
        let back_to = (self.version == version && !self.proven)
            .then_some(self.fallback)
            .flatten()?;
        Some(Live {
            version: back_to,
            proven: true,
            fallback: None,
        })
    }

    /// The plugin once version `deleted` is gone: it no longer is anything's fallback.
    pub fn without(self, deleted: i64) -> Live {
        Live {
            fallback: self.fallback.filter(|f| *f != deleted),
            ..self
        }
    }
}

#[cfg(test)]
mod trial_tests {
    use super::Live;

    const SERVING: Live = Live {
        version: 1,
        proven: true,
        fallback: None,
    };

    #[test]
    fn a_new_version_is_on_trial_falling_back_to_the_one_that_served() {
        let v2 = SERVING.make_live(2, false);
        assert_eq!(v2.fallback, Some(1));
        assert_eq!(v2.after_crash(2), Some(SERVING));
        // A failure of another version (an older call finishing late) changes nothing.
        assert_eq!(v2.after_crash(1), None);
    }

    #[test]
    fn a_second_upload_on_trial_still_falls_back_to_the_version_that_delivered() {
        let v3 = SERVING.make_live(2, false).make_live(3, false);
        assert_eq!(v3.fallback, Some(1));
        assert_eq!(v3.after_crash(3).map(|l| l.version), Some(1));
    }

    #[test]
    fn a_proven_version_stays_whatever_fails() {
        let back = SERVING.make_live(2, false).make_live(1, true);
        assert_eq!(back.fallback, None);
        assert_eq!(SERVING.after_crash(1), None);
    }

    #[test]
    fn the_first_version_has_nothing_to_fall_back_to() {
        let first = Live {
            version: 1,
            proven: false,
            fallback: None,
        };
        assert_eq!(first.make_live(2, false).fallback, None);
        assert_eq!(first.after_crash(1), None);
    }

    #[test]
    fn making_the_fallback_live_again_leaves_no_fallback_to_itself() {
        let trial = SERVING.make_live(2, false);
        let unproven_fallback = Live {
            proven: false,
            ..trial
        };
        assert_eq!(unproven_fallback.make_live(1, false).fallback, None);
        assert_eq!(trial.without(1).fallback, None);
        assert_eq!(trial.without(2).fallback, Some(1));
    }
}
