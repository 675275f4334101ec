//! Rate limits on what an anonymous visitor can make the dashboard do: guess
//! passwords (per IP address and per account) and make Kassa email someone (sign-up,
//! new links, password resets). `governor`'s keyed limiters, pruned as they are used
//! so their memory stays bounded.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The dashboard's limiters.
pub struct Limits {
    /// Sign-in attempts per client address.
    login_per_ip: DefaultKeyedRateLimiter<String>,
    /// Sign-in attempts per account email, whoever tries.
    login_per_email: DefaultKeyedRateLimiter<String>,
    /// Emails Kassa is asked to send to one address (sign-up, links, resets).
    mail_per_address: DefaultKeyedRateLimiter<String>,
    /// Emails one client may make Kassa send.
    mail_per_ip: DefaultKeyedRateLimiter<String>,
}

fn per(count: u32, every: Duration) -> Quota {
    let burst = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(every / burst.get())
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

impl Default for Limits {
    /// Ten sign-ins a minute per address, five per account; five emails an hour to
    /// one address, twenty per client.
    fn default() -> Self {
        Self {
            login_per_ip: RateLimiter::keyed(per(10, Duration::from_secs(60))),
            login_per_email: RateLimiter::keyed(per(5, Duration::from_secs(60))),
            mail_per_address: RateLimiter::keyed(per(5, Duration::from_secs(3600))),
            mail_per_ip: RateLimiter::keyed(per(20, Duration::from_secs(3600))),
        }
    }
}

impl Limits {
    /// May this client try to sign in to this account now?
    pub fn login(&self, ip: &str, email: &str) -> bool {
        self.prune();
        self.login_per_ip.check_key(&ip.to_owned()).is_ok()
            && self
                .login_per_email
                .check_key(&email.to_lowercase())
                .is_ok()
    }

    /// May this client make Kassa email this address now?
    pub fn mail(&self, ip: &str, to: &str) -> bool {
        self.prune();
        self.mail_per_ip.check_key(&ip.to_owned()).is_ok()
            && self.mail_per_address.check_key(&to.to_lowercase()).is_ok()
    }

    fn prune(&self) {
        for limiter in [
            &self.login_per_ip,
            &self.login_per_email,
            &self.mail_per_address,
            &self.mail_per_ip,
        ] {
            if limiter.len() > 10_000 {
                limiter.retain_recent();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessing_passwords_is_slowed_per_account() {
        let limits = Limits::default();
        for _ in 0..5 {
            assert!(limits.login("10.0.0.1", "o@acme.test"));
        }
        assert!(!limits.login("10.0.0.2", "O@acme.test"));
        assert!(limits.login("10.0.0.3", "other@acme.test"));
    }

    #[test]
    fn guessing_passwords_is_slowed_per_address() {
        let limits = Limits::default();
        for i in 0..10 {
            assert!(limits.login("10.0.0.1", &format!("u{i}@acme.test")));
        }
        assert!(!limits.login("10.0.0.1", "u99@acme.test"));
        assert!(limits.login("10.0.0.2", "u99@acme.test"));
    }

    #[test]
    fn one_address_gets_few_emails() {
        let limits = Limits::default();
        for i in 0..5 {
            assert!(limits.mail(&format!("10.0.1.{i}"), "victim@example.com"));
        }
        assert!(!limits.mail("10.0.2.1", "victim@example.com"));
    }
}
