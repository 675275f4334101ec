//! Configuration: defaults, then `kassa.toml` (or `--config`), then `KASSA_*`
//! environment variables, each overriding the one before (`KASSA_RATE_LIMIT_<NAME>`
//! sets `<name>` of `[rate_limits]`). `deploy/kassa.toml` documents every setting; a
//! test loads it so it cannot drift from this file.

use std::net::SocketAddr;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Every setting, as read from the file or the environment.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    #[serde(serialize_with = "expose")]
    pub database_url: SecretString,
    /// The key secrets are sealed with in the database (Stripe keys, signing secrets,
    /// plugins' secrets): base64 of 32 random bytes (`openssl rand -base64 32`). Every
    /// node on one database uses the same. Without it, `secrets_key_file` is used.
    #[serde(serialize_with = "expose_opt")]
    pub secrets_key: Option<SecretString>,
    /// Keys that still open secrets during a rotation, comma-separated; drop them
    /// after `kassa secrets reseal`.
    #[serde(serialize_with = "expose_opt")]
    pub secrets_previous_keys: Option<SecretString>,
    /// Where the secrets key is kept when `secrets_key` is not set: read, or created
    /// (mode 0600) on first start. Back it up with the database: without it the
    /// stored secrets cannot be read.
    pub secrets_key_file: String,
    /// Connections in the database pool.
    pub database_max_connections: u32,
    /// How long a request waits for a database connection (`10s`) before it gets a
    /// 503 with `Retry-After`: while the database restarts or every connection is busy.
    pub database_acquire_timeout: String,
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The most requests served at once; more are answered 503 with `Retry-After`
    /// at once instead of waiting in memory (health checks and `/metrics` always
    /// pass).
    pub http_max_in_flight: usize,
    /// The address customers and merchants reach Kassa at; links are built from it.
    /// Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Let outgoing requests (webhooks) reach loopback and private addresses.
    pub allow_private_network: bool,
    /// The proxies in front of Kassa whose `X-Forwarded-For` is believed: addresses
    /// or networks, comma-separated (`10.0.0.0/8, 127.0.0.1`). Empty: none.
    pub trusted_proxies: String,
    /// Let plugins' `http-fetch` use plain `http://` (development, tests).
    pub plugins_allow_plain_http: bool,
    /// The largest plugin component accepted, in MiB (uploads stream up to it).
    pub plugins_max_component_mib: u32,
    /// Linear memory of one plugin call, in MiB.
    pub plugins_memory_mib: u32,
    /// Units of computation (fuel) of one plugin call.
    pub plugins_fuel: u64,
    /// Wall-clock time of one plugin call, host calls included (`5s`).
    pub plugins_timeout: String,
    /// The most memory (MiB), fuel and time a merchant may set for one of their
    /// plugins (its own limits); the defaults above apply where it sets none.
    pub plugins_max_memory_mib: u32,
    pub plugins_max_fuel: u64,
    pub plugins_max_timeout: String,
    /// Where compiled plugins are kept, so a restart does not compile them again;
    /// empty: memory only.
    pub plugins_cache_dir: String,
    /// Compiled plugin code kept in memory at most, in MiB.
    pub plugins_cache_memory_mib: u32,
    /// Plugin calls running at once on this node, all stores together.
    pub plugins_instances: u32,
    /// Plugin calls running at once for one store.
    pub plugins_instances_per_store: u32,
    /// Test runs running at once on this node.
    pub plugins_test_runs: u32,
    /// Delays before each webhook attempt, e.g. `0s,5s,5m`; ±20 % jitter is added.
    pub webhook_retry_schedule: String,
    /// `smtp://user:pass@host:587` or `smtps://…`; without it emails stay in the outbox.
    #[serde(serialize_with = "expose_opt")]
    pub smtp_url: Option<SecretString>,
    /// The address emails are sent from; the store's name is shown as the sender.
    pub email_from: String,
    /// When to remind customers of unpaid orders (`24h`), or `off`; stores may change it.
    pub unpaid_reminder_after: String,
    /// When unpaid orders are deleted with their personal data (`90d`); stores may
    /// only shorten it.
    pub unpaid_delete_after: String,
    /// How often a worker sends its heartbeat (`10s`); after three missed heartbeats
    /// another worker takes over its jobs.
    pub job_heartbeat: String,
    /// The bearer token a scrape of `/metrics` must send; without it `/metrics` is off.
    #[serde(serialize_with = "expose_opt")]
    pub metrics_token: Option<SecretString>,
    /// Stripe's API (`https://api.stripe.com`); another URL only for a local stand-in.
    pub stripe_api_base: String,
    /// Stripe.js, which the payment page loads (`https://js.stripe.com/v3/`); another
    /// URL only for a local stand-in. The page's Content-Security-Policy lets in its
    /// origin and `stripe_api_base`'s.
    pub stripe_js_url: String,
    /// How long a call to a payment provider may take before the customer is told to
    /// try again (`10s`).
    pub provider_timeout: String,
    /// Rate limits on what anonymous visitors can make Kassa do (`[rate_limits]`, or
    /// `KASSA_RATE_LIMIT_<NAME>`), each `N/period` or `off`.
    pub rate_limits: kassa_limits::LimitsConfig,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The keys `KASSA_*` variables may set; other `KASSA_` variables are not settings.
const KEYS: &[&str] = &[
    "database_url",
    "secrets_key",
    "secrets_previous_keys",
    "secrets_key_file",
    "database_max_connections",
    "database_acquire_timeout",
    "listen",
    "http_max_in_flight",
    "public_url",
    "log_format",
    "allow_private_network",
    "trusted_proxies",
    "webhook_retry_schedule",
    "plugins_allow_plain_http",
    "plugins_max_component_mib",
    "plugins_memory_mib",
    "plugins_fuel",
    "plugins_timeout",
    "plugins_max_memory_mib",
    "plugins_max_fuel",
    "plugins_max_timeout",
    "plugins_cache_dir",
    "plugins_cache_memory_mib",
    "plugins_instances",
    "plugins_instances_per_store",
    "plugins_test_runs",
    "smtp_url",
    "email_from",
    "unpaid_reminder_after",
    "unpaid_delete_after",
    "job_heartbeat",
    "metrics_token",
    "stripe_api_base",
    "stripe_js_url",
    "provider_timeout",
];

fn expose_opt<S: serde::Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: SecretString::from("sqlite://data/kassa.db"),
            secrets_key: None,
            secrets_previous_keys: None,
            secrets_key_file: "data/secrets.key".to_owned(),
            database_max_connections: 10,
            database_acquire_timeout: "10s".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http_max_in_flight: crate::DEFAULT_MAX_IN_FLIGHT,
            public_url: None,
            log_format: LogFormat::Text,
            allow_private_network: false,
            trusted_proxies: String::new(),
            webhook_retry_schedule: "0s,5s,5m,30m,2h,5h,10h,14h,20h,24h".to_owned(),
            plugins_allow_plain_http: false,
            plugins_max_component_mib: 64,
            plugins_memory_mib: 256,
            plugins_fuel: 5_000_000_000,
            plugins_timeout: "5s".to_owned(),
            plugins_max_memory_mib: 1024,
            plugins_max_fuel: 50_000_000_000,
            plugins_max_timeout: "30s".to_owned(),
            plugins_cache_dir: "data/plugin-cache".to_owned(),
            plugins_cache_memory_mib: 1024,
            plugins_instances: 32,
            plugins_instances_per_store: 4,
            plugins_test_runs: 4,
            smtp_url: None,
            email_from: "kassa@localhost".to_owned(),
            unpaid_reminder_after: "24h".to_owned(),
            unpaid_delete_after: "90d".to_owned(),
            job_heartbeat: "10s".to_owned(),
            metrics_token: None,
            stripe_api_base: "https://api.stripe.com".to_owned(),
            stripe_js_url: "https://js.stripe.com/v3/".to_owned(),
            provider_timeout: "10s".to_owned(),
            rate_limits: kassa_limits::LimitsConfig::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &redact_url(self.database_url.expose_secret()),
            )
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| "***"))
            .field(
                "secrets_previous_keys",
                &self.secrets_previous_keys.as_ref().map(|_| "***"),
            )
            .field("secrets_key_file", &self.secrets_key_file)
            .field("database_max_connections", &self.database_max_connections)
            .field("database_acquire_timeout", &self.database_acquire_timeout)
            .field("listen", &self.listen)
            .field("http_max_in_flight", &self.http_max_in_flight)
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("allow_private_network", &self.allow_private_network)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("webhook_retry_schedule", &self.webhook_retry_schedule)
            .field("plugins_allow_plain_http", &self.plugins_allow_plain_http)
            .field("plugins_max_component_mib", &self.plugins_max_component_mib)
            .field("plugins_memory_mib", &self.plugins_memory_mib)
            .field("plugins_fuel", &self.plugins_fuel)
            .field("plugins_timeout", &self.plugins_timeout)
            .field("plugins_max_memory_mib", &self.plugins_max_memory_mib)
            .field("plugins_max_fuel", &self.plugins_max_fuel)
            .field("plugins_max_timeout", &self.plugins_max_timeout)
            .field("plugins_cache_dir", &self.plugins_cache_dir)
            .field("plugins_cache_memory_mib", &self.plugins_cache_memory_mib)
            .field("plugins_instances", &self.plugins_instances)
            .field(
                "plugins_instances_per_store",
                &self.plugins_instances_per_store,
            )
            .field("plugins_test_runs", &self.plugins_test_runs)
            .field(
                "smtp_url",
                &self
                    .smtp_url
                    .as_ref()
                    .map(|u| redact_url(u.expose_secret())),
            )
            .field("email_from", &self.email_from)
            .field("unpaid_reminder_after", &self.unpaid_reminder_after)
            .field("unpaid_delete_after", &self.unpaid_delete_after)
            .field("job_heartbeat", &self.job_heartbeat)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("stripe_api_base", &self.stripe_api_base)
            .field("stripe_js_url", &self.stripe_js_url)
            .field("provider_timeout", &self.provider_timeout)
            .field("rate_limits", &self.rate_limits)
            .finish()
    }
}

/// A URL with its password replaced, fit for logs.
pub fn redact_url(raw: &str) -> String {
    match url_password_span(raw) {
        Some((start, end)) => format!("{}***{}", &raw[..start], &raw[end..]),
        None => raw.to_owned(),
    }
}

/// Where the password of `scheme://user:password@host` sits, if there is one.
fn url_password_span(raw: &str) -> Option<(usize, usize)> {
    let authority_start = raw.find("://")? + 3;
    let rest = &raw[authority_start..];
    let at = rest.find('@')?;
    let colon = rest[..at].find(':')?;
    Some((authority_start + colon + 1, authority_start + at))
}

impl Config {
    /// Loads the configuration. `file` is `--config`; without it `kassa.toml` in the
    /// working directory is read when present.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::new().merge(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("kassa.toml")),
        }
        figment
            .merge(Env::prefixed("KASSA_").only(KEYS))
            .merge(
                Env::prefixed("KASSA_RATE_LIMIT_").map(|name| format!("rate_limits.{name}").into()),
            )
            .extract()
            .map_err(Box::new)
    }

    /// [`Config::trusted_proxies`], parsed.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{s:?} is not an IP address or network (CIDR)"))
            })
            .collect()
    }

    /// The plugin host's settings.
    pub fn plugin_policy(&self) -> Result<kassa_plugins::HostPolicy, String> {
        const MIB: usize = 1024 * 1024;
        let deadline = humantime::parse_duration(&self.plugins_timeout)
            .map_err(|e| format!("plugins_timeout: {e}"))?;
        if deadline.is_zero() {
            return Err("plugins_timeout: must be more than 0s".into());
        }
        let max_deadline = humantime::parse_duration(&self.plugins_max_timeout)
            .map_err(|e| format!("plugins_max_timeout: {e}"))?;
        Ok(kassa_plugins::HostPolicy {
            allow_private_network: self.allow_private_network,
            allow_plain_http: self.plugins_allow_plain_http,
            max_component_bytes: self.plugins_max_component_mib as usize * MIB,
            limits: kassa_plugins::CallLimits {
                memory_bytes: self.plugins_memory_mib as usize * MIB,
                fuel: self.plugins_fuel,
                deadline,
            },
            max_limits: kassa_plugins::CallLimits {
                memory_bytes: self.plugins_max_memory_mib as usize * MIB,
                fuel: self.plugins_max_fuel,
                deadline: max_deadline,
            },
            cache_dir: (!self.plugins_cache_dir.is_empty())
                .then(|| self.plugins_cache_dir.clone().into()),
            cache_memory_bytes: self.plugins_cache_memory_mib as usize * MIB,
            instances: self.plugins_instances,
            instances_per_store: self.plugins_instances_per_store,
            test_runs: self.plugins_test_runs,
        })
    }

    /// Where the payment providers are reached, and for how long.
    pub fn providers(&self) -> Result<kassa_orders::Providers, String> {
        let timeout = humantime::parse_duration(&self.provider_timeout)
            .map_err(|e| format!("provider_timeout: {e}"))?;
        if timeout.is_zero() {
            return Err("provider_timeout: must be more than 0s".into());
        }
        for (name, url) in [
            ("stripe_api_base", &self.stripe_api_base),
            ("stripe_js_url", &self.stripe_js_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("{name}: must be an http(s) URL"));
            }
        }
        Ok(kassa_orders::Providers {
            stripe_api_base: self.stripe_api_base.trim_end_matches('/').to_owned(),
            stripe_js_url: self.stripe_js_url.clone(),
            timeout,
        })
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_debug_output() {
        let config = Config {
            database_url: SecretString::from("postgres://kassa:hunter2@db/kassa"),
            ..Config::default()
        };
        let key = kassa_store::Keyring::generate_key();
        let config = Config {
            secrets_key: Some(SecretString::from(key.expose_secret())),
            secrets_previous_keys: Some(SecretString::from("b2xkLWtleQ==")),
            ..config
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(key.expose_secret()), "{shown}");
        assert!(!shown.contains("b2xkLWtleQ=="), "{shown}");
        assert!(shown.contains("postgres://kassa:***@db/kassa"), "{shown}");
        assert_eq!(
            redact_url("sqlite://data/kassa.db"),
            "sqlite://data/kassa.db"
        );
    }
}
