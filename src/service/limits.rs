//! Rate limits: the `[rate_limits]` settings, in-memory counters (GCRA, one number
//! per key) and the client address behind trusted proxies.
//!
//! A [`Limiter`] allows `limit` hits at once and then one every `window / limit`: a
//! token bucket of `limit` tokens refilled over `window`, kept as the "theoretical
//! arrival time" of the next hit (the generic cell rate algorithm). No window edge
//! lets twice the limit through, and a quiet key costs nothing until swept.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::domain::time::Timestamp;

/// Counters beyond this many trigger a sweep of the ones that are full again.
const SWEEP_AT: usize = 100_000;

/// At most `limit` hits at once, refilled at `limit` per `window_secs`, for each key.
#[derive(Debug)]
pub struct Limiter {
    /// Milliseconds one hit costs.
    cost_ms: i64,
    /// How far ahead of now the next-hit time may run (the burst).
    burst_ms: i64,
    next: Mutex<HashMap<String, i64>>,
}

impl Limiter {
    /// A limiter of `limit` hits per `window_secs` (a `limit` of 0 refuses everything).
    pub fn new(limit: u32, window_secs: i64) -> Self {
        let window_ms = window_secs.max(1) * 1000;
        let limit = i64::from(limit);
        let (cost_ms, burst_ms) = if limit == 0 {
            (window_ms, -1)
        } else {
            let cost = (window_ms / limit).max(1);
            (cost, window_ms - cost)
        };
        Self {
            cost_ms,
            burst_ms,
            next: Mutex::new(HashMap::new()),
        }
    }

    fn wait_ms(&self, next: i64, now: i64) -> i64 {
        next.max(now) - now - self.burst_ms
    }

    fn seconds(ms: i64) -> u64 {
        u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
    }

    /// Whether a hit for `key` would be refused now; if so, the seconds to wait.
    pub fn blocked(&self, key: &str, now: Timestamp) -> Option<u64> {
        let now = now.timestamp_millis();
        // A poisoned lock only means a panic elsewhere mid-update; counts stay counts.
        let map = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let wait = self.wait_ms(map.get(key).copied().unwrap_or(now), now);
        (wait > 0).then(|| Self::seconds(wait))
    }

    /// Counts a hit for `key` at `now`; past the limit, the seconds until one more fits.
    pub fn hit(&self, key: &str, now: Timestamp) -> Result<(), u64> {
        let now = now.timestamp_millis();
        let mut map = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            // A key whose next-hit time has passed is as good as new.
            map.retain(|_, next| *next > now);
        }
        let next = map.entry(key.to_owned()).or_insert(now);
        let wait = self.wait_ms(*next, now);
        if wait > 0 {
            return Err(Self::seconds(wait));
        }
        *next = (*next).max(now) + self.cost_ms;
        Ok(())
    }
}

/// The `[rate_limits]` section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Off only for benchmarks and trusted networks.
    pub enabled: bool,
    /// Look-ups of keys that match no license (unknown, malformed, forged) per client
    /// address per hour, on activate, validate, deactivate and claims.
    pub failed_lookups_per_address_per_hour: u32,
    /// Requests per license key per minute on those endpoints.
    pub requests_per_key_per_minute: u32,
    /// Addresses or networks (`10.0.0.0/8`, `::1`) of reverse proxies whose
    /// `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failed_lookups_per_address_per_hour: 60,
            requests_per_key_per_minute: 120,
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimitSettings {
    /// The first setting that cannot work, with its message.
    pub fn problem(&self) -> Option<(String, String)> {
        if let Some(p) = self
            .trusted_proxies
            .iter()
            .find(|p| Network::parse(p).is_none())
        {
            return Some((
                "trusted_proxies".into(),
                format!("`{p}` is not an IP address or network (a.b.c.d/n, x:y::/n)"),
            ));
        }
        None
    }
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`, `::1`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            let keep = u32::from(prefix);
            if keep == 0 {
                0
            } else {
                bits >> (u32::from(width) - keep)
            }
        }
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client of a request: the socket's peer, or, when that peer is a trusted
/// proxy, the right-most address of `X-Forwarded-For` that is not one (each proxy
/// appends the address it saw, so the entries to its left are the client's word).
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &[Network],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')) {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            // Garbage from the client's side: stop at the last address we trust.
            Err(_) => break,
        }
    }
    Some(client)
}

/// The counting key of an address: IPv4 as it is, IPv6 by its /64 (one
/// subscriber's network, which an attacker gets whole).
pub fn address_bucket(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The limits of the public, key-authenticated endpoints.
#[derive(Debug)]
pub struct PublicLimits {
    enabled: bool,
    failed_lookups: Limiter,
    per_key: Limiter,
    trusted: Vec<Network>,
}

impl PublicLimits {
    /// Counters for `settings` (checked at load: bad proxies were refused there).
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            enabled: settings.enabled,
            failed_lookups: Limiter::new(settings.failed_lookups_per_address_per_hour, 3600),
            per_key: Limiter::new(settings.requests_per_key_per_minute, 60),
            trusted: settings
                .trusted_proxies
                .iter()
                .filter_map(|p| Network::parse(p))
                .collect(),
        }
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &[Network] {
        &self.trusted
    }

    /// Before a look-up: refused while the address has used up its failures, or the
    /// key its requests.
    pub fn admit(&self, client: &str, key: Option<&str>, now: Timestamp) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(secs) = self.failed_lookups.blocked(client, now) {
            return Err(secs);
        }
        match key {
            Some(key) => self.per_key.hit(key, now),
            None => Ok(()),
        }
    }

    /// After a look-up that found nothing.
    pub fn failed(&self, client: &str, now: Timestamp) {
        if self.enabled {
            // Refused or not, the failure is counted; the next request is the one refused.
            let _ = self.failed_lookups.hit(client, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_unix;

    #[test]
    fn a_key_gets_its_burst_then_one_hit_per_interval_and_others_are_not_touched() {
        let l = Limiter::new(2, 3600);
        let t = from_unix(7200 + 100);
        assert!(l.hit("a", t).is_ok());
        assert!(l.hit("a", t).is_ok());
        assert_eq!(l.hit("a", t), Err(1800), "one more fits half an hour later");
        assert_eq!(l.blocked("a", t), Some(1800));
        assert!(l.hit("b", t).is_ok());
        assert!(l.hit("a", from_unix(7200 + 100 + 1799)).is_err());
        assert!(l.hit("a", from_unix(7200 + 100 + 1800)).is_ok());
        assert!(l.hit("a", from_unix(7200 + 100 + 1800)).is_err());
        assert_eq!(l.blocked("c", t), None);
    }

    #[test]
    fn no_window_edge_lets_twice_the_limit_through() {
        let l = Limiter::new(10, 60);
        let mut ok = 0;
        for s in 50..70 {
            for _ in 0..10 {
                ok += u32::from(l.hit("k", from_unix(s)).is_ok());
            }
        }
        // 10 at once, then one every 6 s over the next 19 s: 13, never 20.
        assert_eq!(ok, 13);
    }

    #[test]
    fn a_zero_limit_refuses_everything() {
        let l = Limiter::new(0, 60);
        assert!(l.hit("k", from_unix(0)).is_err());
    }

    #[test]
    fn networks_parse_and_contain() {
        let n = Network::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        let one = Network::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [Network::parse("10.0.0.0/8").unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Straight from the internet: the header is the client's word, ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        // Through our proxy: the right-most address that is not a proxy of ours.
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &["6.6.6.6, 198.51.100.7, 10.0.0.3"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Two header lines count as one list, in order.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["6.6.6.6", "198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // A proxy that sent no header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), &[], &trusted),
            ip("10.0.0.2")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["1.1.1.1, junk"], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(client_address(None, &[], &trusted), None);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = address_bucket("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_bucket("2001:db8:1:2:ffff::9".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, address_bucket("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            address_bucket("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1"
        );
    }

    #[test]
    fn failures_block_an_address_and_successes_do_not_count() {
        let l = PublicLimits::new(&RateLimitSettings {
            failed_lookups_per_address_per_hour: 3,
            ..RateLimitSettings::default()
        });
        let t = from_unix(1_000_000);
        for i in 0..1000 {
            // An office: a thousand apps, each its own key, all found.
            assert!(l.admit("192.0.2.1", Some(&format!("key-{i}")), t).is_ok());
        }
        for _ in 0..3 {
            assert!(l.admit("198.51.100.1", None, t).is_ok());
            l.failed("198.51.100.1", t);
        }
        assert_eq!(l.admit("198.51.100.1", Some("k"), t), Err(1200));
        assert!(l.admit("192.0.2.1", Some("k"), t).is_ok());
        let off = PublicLimits::new(&RateLimitSettings {
            enabled: false,
            failed_lookups_per_address_per_hour: 0,
            requests_per_key_per_minute: 0,
            ..RateLimitSettings::default()
        });
        assert!(off.admit("x", Some("k"), t).is_ok());
    }
}
