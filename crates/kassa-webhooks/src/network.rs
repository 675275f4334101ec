//! Which addresses outgoing requests may reach. By default only addresses on the
//! public internet: not loopback, private, link-local (cloud metadata lives at
//! 169.254.169.254), shared, documentation, benchmarking, reserved, multicast, nor
//! an IPv6 address that carries one of those inside it (IPv4-mapped, IPv4-compatible,
//! NAT64, 6to4, Teredo). The operator can allow them all
//! (`KASSA_ALLOW_PRIVATE_NETWORK=true`, for development and tests).
//!
//! The ranges are the IANA special-purpose registries' entries that are not globally
//! reachable, in one table each for IPv4 and IPv6 below. What a merchant is told never
//! names a resolved address: only "the address is not allowed" or "the host could not
//! be reached", so the guard is no probe of the internal network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether private addresses are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub allow_private: bool,
}

/// Why a request was not sent; the text is what the merchant sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    /// The URL names an address outgoing requests may not reach.
    #[error("the address is not allowed")]
    Address,
    /// The name does not resolve, or resolves only to addresses that are not allowed
    /// (one answer for both, so it tells nothing about internal names).
    #[error("the host could not be reached")]
    Unreachable,
}

impl NetworkPolicy {
    /// Checks a URL's host when it is an IP literal (names are checked when they are
    /// resolved, by the guarded client's resolver).
    pub fn check_url(&self, url: &url::Url) -> Result<(), Blocked> {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if !self.allow_private && is_forbidden_ip(literal) {
            return Err(Blocked::Address);
        }
        Ok(())
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 ranges that are not on the public internet (IANA IPv4 Special-Purpose
/// Address Registry, plus multicast and the retired 6to4 relay anycast).
const FORBIDDEN_V4: &[Ipv4Net] = &[
    v4(0, 0, 0, 0, 8),       // "this network"
    v4(10, 0, 0, 0, 8),      // private
    v4(100, 64, 0, 0, 10),   // shared address space (carrier-grade NAT)
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local, cloud metadata
    v4(172, 16, 0, 0, 12),   // private
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // documentation (TEST-NET-1)
    v4(192, 88, 99, 0, 24),  // 6to4 relay anycast (retired)
    v4(192, 168, 0, 0, 16),  // private
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // documentation (TEST-NET-2)
    v4(203, 0, 113, 0, 24),  // documentation (TEST-NET-3)
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, and 255.255.255.255 broadcast
];

/// IPv6 ranges that are not on the public internet (IANA IPv6 Special-Purpose
/// Address Registry). Anything outside global unicast `2000::/3` is refused before
/// this table is read, which covers `::`, `::1`, IPv4-compatible `::/96`, discard
/// `100::/64`, local-use NAT64 `64:ff9b:1::/48`, ULA `fc00::/7`, link-local
/// `fe80::/10`, site-local `fec0::/10` and multicast `ff00::/8`.
const FORBIDDEN_V6: &[Ipv6Net] = &[
    v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), // IETF protocol assignments, Teredo 2001::/32
    v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), // documentation
    v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16), // 6to4 (tunnels to any IPv4 address)
    v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), // documentation
];

const GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);
/// Well-known NAT64: reaches the IPv4 address in its last 32 bits.
const NAT64: Ipv6Net = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);

/// True for an address outgoing requests must not reach by default.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => FORBIDDEN_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => {
            // Addresses that reach an IPv4 host are judged by that host.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_ip(IpAddr::V4(v4));
            }
            if NAT64.contains(&v6) {
                let [.., a, b, c, d] = v6.octets();
                return is_forbidden_ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
            }
            !GLOBAL_UNICAST.contains(&v6) || FORBIDDEN_V6.iter().any(|net| net.contains(&v6))
        }
    }
}

/// A DNS resolver that drops forbidden addresses, so a name that points inside the
/// network cannot be reached either.
pub(crate) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| Blocked::Unreachable)?
                .filter(|a| !is_forbidden_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Blocked::Unreachable.into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

pub(crate) fn resolver() -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver)
}

/// What a merchant is told about a failed request: the timeout, the guard's answer,
/// or the failure's chain of causes (which never holds a resolved address).
pub fn explain(e: &reqwest::Error, timeout: std::time::Duration) -> String {
    use std::error::Error;
    let mut causes = std::iter::successors(e.source(), |&s| s.source());
    if let Some(blocked) = causes
        .clone()
        .find_map(|s| s.downcast_ref::<Blocked>().copied())
    {
        return blocked.to_string();
    }
    let mut text = if e.is_timeout() {
        format!("timed out after {} s", timeout.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    for s in causes.by_ref() {
        text.push_str(": ");
        text.push_str(&s.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_off_the_public_internet_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:808:808::",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "198.20.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82a::200e",
            "::ffff:1.1.1.1",
            "64:ff9b::1.1.1.1",
        ] {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ip_literals_are_refused_without_naming_them() {
        let policy = NetworkPolicy {
            allow_private: false,
        };
        for url in [
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
            "https://198.18.0.1/",
            "http://0x7f.1/",
        ] {
            let blocked = policy
                .check_url(&url::Url::parse(url).unwrap())
                .unwrap_err();
            assert_eq!(blocked.to_string(), "the address is not allowed", "{url}");
        }
        let open = NetworkPolicy {
            allow_private: true,
        };
        assert!(
            open.check_url(&url::Url::parse("http://127.0.0.1/").unwrap())
                .is_ok()
        );
    }
}
