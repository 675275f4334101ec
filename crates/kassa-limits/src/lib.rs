//! Rate limits on what anonymous visitors can make Kassa do: open buy links and post
//! forms (each may write a cart), place orders, try cards, make Kassa email an
//! address, and guess a dashboard password. Each action is counted per visitor IP address, per store, per email
//! address or per order, as [`Limits::check`] lists in one place. The merchant API is
//! no visitor: its orders count only toward their store's limit.
//!
//! Counting is in memory, per node (governor's GCRA: a burst of `N`, then one more
//! every `period / N`). Keys not seen for a while are dropped every minute, so memory
//! stays bounded by the traffic of the last period. No storage, no HTTP here: the edges
//! turn a [`TooMany`] into a 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

/// `N` actions per `period`: a burst of `N`, refilled evenly over the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
}

/// A rate that does not read as `N/period` (`20/1h`) or `off`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a rate: write `N/period` (e.g. `20/1h`) or `off`")]
pub struct BadRate(String);

impl Rate {
    /// `20/1h`, `300/1m`; `off` is `None`.
    pub fn parse(raw: &str) -> Result<Option<Rate>, BadRate> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || BadRate(raw.to_owned());
        let (count, period) = raw.split_once('/').ok_or_else(bad)?;
        let count = count.trim().parse::<NonZeroU32>().map_err(|_| bad())?;
        let period = humantime::parse_duration(period.trim()).map_err(|_| bad())?;
        if period.is_zero() {
            return Err(bad());
        }
        Ok(Some(Rate { count, period }))
    }

    fn quota(self) -> Quota {
        let every = (self.period / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(every)
            .expect("a period above zero")
            .allow_burst(self.count)
    }
}

/// The limits, as the operator sets them (`KASSA_RATE_LIMIT_*`), each `N/period` or
/// `off`. The defaults let any real customer through and stop floods.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Buy links opened and checkout or payment forms posted, per visitor IP.
    pub forms_per_ip: String,
    /// Orders placed on the checkout page, per visitor IP.
    pub orders_per_ip: String,
    /// Orders placed in one store (pages and API), for all visitors together.
    pub orders_per_store: String,
    /// What visitors do that makes Kassa email one address (an order placed, a card
    /// tried, a payment method switched), per address.
    pub emails_per_address: String,
    /// Card payment attempts, per visitor IP.
    pub card_tries_per_ip: String,
    /// Card payment attempts on one order.
    pub card_tries_per_order: String,
    /// Card payment attempts in one store, for all visitors together.
    pub card_tries_per_store: String,
    /// Dashboard sign-in attempts, per visitor IP.
    pub sign_ins_per_ip: String,
    /// Dashboard sign-in attempts on one account, whoever tries.
    pub sign_ins_per_account: String,
    /// Account emails (sign-up, verification and reset links, invitations) a visitor
    /// makes Kassa send, per visitor IP; per address they count as `emails_per_address`.
    pub account_emails_per_ip: String,
    /// Payment provider webhooks (Stripe's) refused for their signature, or sent to a
    /// store or mode that takes none, per sender IP. Deliveries that verify are never
    /// counted nor refused.
    pub bad_provider_webhooks_per_ip: String,
}

impl LimitsConfig {
    /// Every limit off (tests set the one they try).
    pub fn off() -> Self {
        let off = || "off".to_owned();
        Self {
            forms_per_ip: off(),
            orders_per_ip: off(),
            orders_per_store: off(),
            emails_per_address: off(),
            card_tries_per_ip: off(),
            card_tries_per_order: off(),
            card_tries_per_store: off(),
            sign_ins_per_ip: off(),
            sign_ins_per_account: off(),
            account_emails_per_ip: off(),
            bad_provider_webhooks_per_ip: off(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            forms_per_ip: "120/1m".into(),
            orders_per_ip: "30/1h".into(),
            orders_per_store: "3000/1m".into(),
            emails_per_address: "20/1h".into(),
            card_tries_per_ip: "30/1h".into(),
            card_tries_per_order: "10/1h".into(),
            card_tries_per_store: "3000/1m".into(),
            sign_ins_per_ip: "10/1m".into(),
            sign_ins_per_account: "5/1m".into(),
            account_emails_per_ip: "20/1h".into(),
            bad_provider_webhooks_per_ip: "30/1m".into(),
        }
    }
}

/// The client's address, when the server found it (behind a trusted proxy, from
/// `X-Forwarded-For`); set on each request before the pages and the API see it, for
/// the limits counted per IP.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

/// Refused: the action may be tried again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry after {retry_after:?}")]
pub struct TooMany {
    pub retry_after: Duration,
}

impl TooMany {
    /// Whole seconds, at least one, for a `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

/// What a visitor (or the API on a customer's behalf) asks Kassa to do, with what it
/// is counted by. `ip` is `None` for the API: the merchant's server is no visitor.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// A buy link opened or a checkout or payment page form posted.
    Form { ip: Option<IpAddr> },
    /// An order placed: it is written, and its customer may be emailed. The API
    /// (the merchant's own server) gives neither `ip` nor `email`: only the store's
    /// limit applies to it.
    PlaceOrder {
        ip: Option<IpAddr>,
        store: &'a str,
        email: Option<&'a str>,
    },
    /// A card tried on an order: the gateway is called, and the customer is emailed a
    /// receipt or a failure.
    CardTry {
        ip: Option<IpAddr>,
        store: &'a str,
        order: &'a str,
        email: Option<&'a str>,
    },
    /// Something else a visitor does that emails the customer (a method switched).
    EmailCustomer { email: Option<&'a str> },
    /// A dashboard sign-in attempt: a password is checked.
    SignIn {
        ip: Option<IpAddr>,
        account: &'a str,
    },
    /// A dashboard form that makes Kassa email an address (sign up, a new link, a
    /// password reset, an invitation).
    EmailAccount { ip: Option<IpAddr>, email: &'a str },
    /// A payment provider's webhook refused: its signature did not verify, or its
    /// store or mode takes none. Counted only when refused, so a sender's genuine
    /// deliveries never are, and other senders' failures never limit them.
    BadProviderWebhook { ip: Option<IpAddr> },
}

/// What a limit counts by. IPv6 addresses count by their /64: one host usually holds
/// a whole /64, so single addresses would let it walk past the limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Name(String),
}

fn ip_key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::Ip(v4.into()),
            None => Key::Ip(IpAddr::V6((u128::from(v6) & !(u64::MAX as u128)).into())),
        },
        v4 => Key::Ip(v4),
    }
}

fn name_key(name: &str) -> Key {
    Key::Name(name.trim().to_lowercase())
}

/// One limit: `None` when the operator turned it off.
struct Limit(Option<DefaultKeyedRateLimiter<Key>>);

impl Limit {
    fn new(raw: &str) -> Result<Self, BadRate> {
        Ok(Self(
            Rate::parse(raw)?.map(|rate| RateLimiter::keyed(rate.quota())),
        ))
    }

    fn check(&self, key: Key) -> Result<(), TooMany> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| TooMany {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }

    fn tidy(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn keys(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.len())
    }
}

/// How often keys that are back to a full burst are dropped.
const TIDY_EVERY: Duration = Duration::from_secs(60);

/// Every limit of one node.
pub struct Limits {
    forms_per_ip: Limit,
    orders_per_ip: Limit,
    orders_per_store: Limit,
    emails_per_address: Limit,
    card_tries_per_ip: Limit,
    card_tries_per_order: Limit,
    card_tries_per_store: Limit,
    sign_ins_per_ip: Limit,
    sign_ins_per_account: Limit,
    account_emails_per_ip: Limit,
    bad_provider_webhooks_per_ip: Limit,
    tidied: Mutex<Instant>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Result<Self, BadRate> {
        Ok(Self {
            forms_per_ip: Limit::new(&config.forms_per_ip)?,
            orders_per_ip: Limit::new(&config.orders_per_ip)?,
            orders_per_store: Limit::new(&config.orders_per_store)?,
            emails_per_address: Limit::new(&config.emails_per_address)?,
            card_tries_per_ip: Limit::new(&config.card_tries_per_ip)?,
            card_tries_per_order: Limit::new(&config.card_tries_per_order)?,
            card_tries_per_store: Limit::new(&config.card_tries_per_store)?,
            sign_ins_per_ip: Limit::new(&config.sign_ins_per_ip)?,
            sign_ins_per_account: Limit::new(&config.sign_ins_per_account)?,
            account_emails_per_ip: Limit::new(&config.account_emails_per_ip)?,
            bad_provider_webhooks_per_ip: Limit::new(&config.bad_provider_webhooks_per_ip)?,
            tidied: Mutex::new(Instant::now()),
        })
    }

    /// No limits at all.
    pub fn off() -> Self {
        Self::new(&LimitsConfig::off()).expect("`off` is a rate")
    }

    fn all(&self) -> [&Limit; 11] {
        [
            &self.forms_per_ip,
            &self.orders_per_ip,
            &self.orders_per_store,
            &self.emails_per_address,
            &self.card_tries_per_ip,
            &self.card_tries_per_order,
            &self.card_tries_per_store,
            &self.sign_ins_per_ip,
            &self.sign_ins_per_account,
            &self.account_emails_per_ip,
            &self.bad_provider_webhooks_per_ip,
        ]
    }

    /// How many keys the limits remember now.
    pub fn keys(&self) -> usize {
        self.all().iter().map(|l| l.keys()).sum()
    }

    /// Counts `action` against every limit it falls under, or says when to come back.
    /// The one place that says which limits apply to what.
    pub fn check(&self, action: Action<'_>) -> Result<(), TooMany> {
        self.tidy_now_and_then();
        let ip =
            |limit: &Limit, ip: Option<IpAddr>| ip.map_or(Ok(()), |ip| limit.check(ip_key(ip)));
        let email = |email: Option<&str>| {
            email
                .filter(|e| !e.trim().is_empty())
                .map_or(Ok(()), |e| self.emails_per_address.check(name_key(e)))
        };
        match action {
            Action::Form { ip: from } => ip(&self.forms_per_ip, from),
            Action::PlaceOrder {
                ip: from,
                store,
                email: to,
            } => {
                ip(&self.orders_per_ip, from)?;
                self.orders_per_store.check(name_key(store))?;
                email(to)
            }
            Action::CardTry {
                ip: from,
                store,
                order,
                email: to,
            } => {
                ip(&self.card_tries_per_ip, from)?;
                self.card_tries_per_order.check(name_key(order))?;
                self.card_tries_per_store.check(name_key(store))?;
                email(to)
            }
            Action::EmailCustomer { email: to } => email(to),
            Action::SignIn { ip: from, account } => {
                ip(&self.sign_ins_per_ip, from)?;
                self.sign_ins_per_account.check(name_key(account))
            }
            Action::EmailAccount {
                ip: from,
                email: to,
            } => {
                ip(&self.account_emails_per_ip, from)?;
                email(Some(to))
            }
            Action::BadProviderWebhook { ip: from } => ip(&self.bad_provider_webhooks_per_ip, from),
        }
    }

    /// Drops keys whose burst is full again, once a minute.
    fn tidy_now_and_then(&self) {
        let Ok(mut tidied) = self.tidied.try_lock() else {
            return;
        };
        if tidied.elapsed() < TIDY_EVERY {
            return;
        }
        *tidied = Instant::now();
        drop(tidied);
        self.tidy();
    }

    /// Drops every key whose burst is full again.
    pub fn tidy(&self) {
        for limit in self.all() {
            limit.tidy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessing_a_dashboard_password_is_slowed_per_account_and_per_address() {
        let limits = Limits::new(&LimitsConfig::default()).unwrap();
        let ip = |n: u8| Some(IpAddr::from([10, 0, 0, n]));
        for _ in 0..5 {
            assert!(
                limits
                    .check(Action::SignIn {
                        ip: ip(1),
                        account: "o@acme.test"
                    })
                    .is_ok()
            );
        }
        let refused = limits.check(Action::SignIn {
            ip: ip(2),
            account: "O@acme.test",
        });
        assert!(refused.unwrap_err().retry_after_secs() >= 1);
        assert!(
            limits
                .check(Action::SignIn {
                    ip: ip(3),
                    account: "x@acme.test"
                })
                .is_ok()
        );
        for i in 0..9 {
            let account = format!("u{i}@acme.test");
            assert!(
                limits
                    .check(Action::SignIn {
                        ip: ip(4),
                        account: &account
                    })
                    .is_ok()
            );
        }
        assert!(
            limits
                .check(Action::SignIn {
                    ip: ip(4),
                    account: "u9@acme.test"
                })
                .is_ok()
        );
        assert!(
            limits
                .check(Action::SignIn {
                    ip: ip(4),
                    account: "u10@acme.test"
                })
                .is_err()
        );
    }

    fn limits(f: impl FnOnce(&mut LimitsConfig)) -> Limits {
        let mut config = LimitsConfig::off();
        f(&mut config);
        Limits::new(&config).unwrap()
    }

    #[test]
    fn rates_read_as_count_per_period() {
        let rate = Rate::parse("20/1h").unwrap().unwrap();
        assert_eq!(
            (rate.count.get(), rate.period),
            (20, Duration::from_secs(3600))
        );
        assert_eq!(Rate::parse(" OFF ").unwrap(), None);
        for bad in ["", "20", "0/1h", "20/0s", "x/1h", "20/soon", "-1/1h"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        assert!(LimitsConfig::default().orders_per_ip.contains('/'));
        Limits::new(&LimitsConfig::default()).unwrap();
    }

    #[test]
    fn a_burst_then_a_wait_per_key() {
        let l = limits(|c| c.orders_per_ip = "2/1h".into());
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        let order = |ip| Action::PlaceOrder {
            ip: Some(ip),
            store: "ten_1",
            email: Some("a@example.com"),
        };
        l.check(order(a)).unwrap();
        l.check(order(a)).unwrap();
        let refused = l.check(order(a)).unwrap_err();
        assert!(refused.retry_after <= Duration::from_secs(1800));
        assert!(refused.retry_after_secs() > 1700, "{refused:?}");
        l.check(order(b)).unwrap();
    }

    #[test]
    fn ipv6_counts_by_its_64_and_addresses_case_insensitively() {
        let l = limits(|c| {
            c.forms_per_ip = "1/1h".into();
            c.emails_per_address = "1/1h".into();
        });
        let form = |ip: &str| Action::Form {
            ip: Some(ip.parse().unwrap()),
        };
        l.check(form("2001:db8:1:2::1")).unwrap();
        l.check(form("2001:db8:1:2::ffff")).unwrap_err();
        l.check(form("2001:db8:1:3::1")).unwrap();
        l.check(form("::ffff:192.0.2.1")).unwrap();
        l.check(form("192.0.2.1")).unwrap_err();
        let mail = |email| Action::EmailCustomer { email: Some(email) };
        l.check(mail("Ann@Example.com")).unwrap();
        l.check(mail(" ann@example.com")).unwrap_err();
        l.check(mail("bob@example.com")).unwrap();
    }

    #[test]
    fn card_tries_count_per_order_and_store() {
        let l = limits(|c| {
            c.card_tries_per_order = "2/1h".into();
            c.card_tries_per_store = "3/1h".into();
        });
        let card = |store, order| Action::CardTry {
            ip: None,
            store,
            order,
            email: None,
        };
        l.check(card("s1", "o1")).unwrap();
        l.check(card("s1", "o1")).unwrap();
        l.check(card("s1", "o1")).unwrap_err();
        l.check(card("s1", "o2")).unwrap();
        l.check(card("s1", "o3")).unwrap_err();
        l.check(card("s2", "o4")).unwrap();
    }

    #[test]
    fn memory_is_given_back() {
        let l = limits(|c| c.forms_per_ip = "100/1ms".into());
        for i in 0..200u8 {
            l.check(Action::Form {
                ip: Some(IpAddr::from([198, 51, 100, i])),
            })
            .unwrap();
        }
        assert_eq!(l.keys(), 200);
        std::thread::sleep(Duration::from_millis(5));
        l.tidy();
        assert_eq!(l.keys(), 0);
    }
}
