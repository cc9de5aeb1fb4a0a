//! Rate limits: the `[rate_limits]` settings, in-memory counters (GCRA, one number
//! per key) and the client address behind trusted proxies.
//!
//! A [`Limiter`] allows `limit` hits at once and then one every `window / limit`: a
//! token bucket of `limit` tokens refilled over `window`, kept as the "theoretical
//! arrival time" of the next hit (the generic cell rate algorithm). No window edge
//! lets twice the limit through, and a quiet key costs nothing until swept.
//!
//! Several instances on one database (PostgreSQL) share the failed-look-up counts.
//! The in-memory limiter stays the check before a look-up (a found key costs no
//! round trip); a look-up that found nothing is then charged to the shared counter
//! of its address and /48 ([`PublicLimits::not_found`]) with this limiter's
//! arithmetic, in one atomic statement, and the shared count is merged into ours
//! (ours = the later of the two, and no give-back goes below what was merged). A
//! failure the shared counter refuses answers 429 instead of its 404. Each instance
//! also polls the counters the others changed ([`super::limit_sync`]).
//!
//! What that bounds, across N instances: failures answered as not found, at most
//! the limit in any order or concurrency (each was charged first). Look-ups made
//! past the limit, whose answer a guesser learns for a genuine key: those already
//! admitted on the other instances when the limit is reached (their in-flight
//! look-ups, at most each one's own remaining count in a burst sent to all at
//! once), and a genuine key asked of another instance before its next poll (200
//! ms) or its next failure merges the block. Guesses sent one after another get
//! past the limit on another instance only until their first failure there (429,
//! and the block merged) or its next poll; on one instance, never.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::domain::time::Timestamp;
use crate::storage::shared_limits::{LimitChange, LimitCharge, SharedLimits};

/// Counters the clean-up looks at per hit: a few, so that a hit costs the same with
/// ten counters or a million, and always more than the one a hit may add, so that
/// the map shrinks back once its keys go quiet.
pub const SWEEP_STEP: usize = 4;

/// At most `limit` hits at once, refilled at `limit` per `window_secs`, for each key.
#[derive(Debug)]
pub struct Limiter {
    /// Milliseconds one hit costs.
    cost_ms: i64,
    /// How far ahead of now the next-hit time may run (the burst).
    burst_ms: i64,
    counters: Mutex<Counters>,
}

/// The next-hit time of each key, in a vector the clean-up walks a few slots per hit
/// (a `HashMap` cannot be walked from where the last step stopped), with an index.
#[derive(Debug, Default)]
struct Counters {
    slots: Vec<Slot>,
    index: HashMap<String, usize>,
    /// Where the clean-up goes on.
    cursor: usize,
    /// Slots the clean-up has looked at, ever.
    examined: u64,
}

/// The counter of one key.
#[derive(Debug)]
struct Slot {
    key: String,
    /// The next-hit time (ms).
    next: i64,
    /// The latest next-hit time merged from the shared counters: hits counted
    /// there, which no give-back of ours takes away (`floor <= next`).
    floor: i64,
}

impl Counters {
    fn get(&self, key: &str) -> Option<i64> {
        self.index.get(key).map(|&i| self.slots[i].next)
    }

    /// Looks at up to `steps` slots from the cursor on and drops those whose next-hit
    /// time has passed (a key in that state is as good as new).
    fn sweep(&mut self, now: i64, steps: usize) {
        for _ in 0..steps {
            if self.slots.is_empty() {
                return;
            }
            if self.cursor >= self.slots.len() {
                self.cursor = 0;
            }
            self.examined += 1;
            if self.slots[self.cursor].next > now {
                self.cursor += 1;
                continue;
            }
            let gone = self.slots.swap_remove(self.cursor);
            self.index.remove(&gone.key);
            if let Some(moved) = self.slots.get(self.cursor) {
                if let Some(i) = self.index.get_mut(&moved.key) {
                    *i = self.cursor;
                }
            }
        }
    }

    /// The counter of `key`, made at `now` if it has none.
    fn entry(&mut self, key: &str, now: i64) -> &mut Slot {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.slots.push(Slot {
                    key: key.to_owned(),
                    next: now,
                    floor: now,
                });
                self.index.insert(key.to_owned(), self.slots.len() - 1);
                self.slots.len() - 1
            }
        };
        &mut self.slots[i]
    }
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
            counters: Mutex::new(Counters::default()),
        }
    }

    fn wait_ms(&self, next: i64, now: i64) -> i64 {
        next.max(now) - now - self.burst_ms
    }

    fn seconds(ms: i64) -> u64 {
        u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A poisoned lock only means a panic elsewhere mid-update; counts stay counts.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a hit for `key` would be refused now; if so, the seconds to wait.
    pub fn blocked(&self, key: &str, now: Timestamp) -> Option<u64> {
        let now = now.timestamp_millis();
        let counters = self.lock();
        let wait = self.wait_ms(counters.get(key).unwrap_or(now), now);
        (wait > 0).then(|| Self::seconds(wait))
    }

    /// Counts a hit for `key` at `now`; past the limit, the seconds until one more fits
    /// (a refused hit is not counted).
    pub fn hit(&self, key: &str, now: Timestamp) -> Result<(), u64> {
        let now = now.timestamp_millis();
        let mut counters = self.lock();
        counters.sweep(now, SWEEP_STEP);
        let slot = counters.entry(key, now);
        let wait = self.wait_ms(slot.next, now);
        if wait > 0 {
            return Err(Self::seconds(wait));
        }
        slot.next = slot.next.max(now) + self.cost_ms;
        Ok(())
    }

    /// Takes back one hit of `key` counted by [`Limiter::hit`] (a reservation that
    /// was not used).
    pub fn give_back(&self, key: &str, now: Timestamp) {
        let now = now.timestamp_millis();
        let mut counters = self.lock();
        if let Some(&i) = counters.index.get(key) {
            let slot = &mut counters.slots[i];
            slot.next = (slot.next - self.cost_ms).max(now).max(slot.floor);
        }
    }

    /// A hit charged to the shared counter `bucket`, with this limiter's
    /// arithmetic for the store to apply.
    pub fn charge(&self, bucket: String) -> LimitCharge {
        LimitCharge {
            bucket,
            cost_ms: self.cost_ms,
            burst_ms: self.burst_ms,
        }
    }

    /// Takes in the next-hit time another instance left for `key` (a shared
    /// counter): the later of the two stands, so hits counted anywhere count here.
    /// A time already past adds nothing; one further ahead than a full bucket (a
    /// clock ahead of ours, an instance with a smaller limit) counts as a full one.
    pub fn merge(&self, key: &str, tat_ms: i64, now: Timestamp) {
        let now = now.timestamp_millis();
        let tat_ms = tat_ms.min(now + self.burst_ms + self.cost_ms);
        if tat_ms <= now {
            return;
        }
        let mut counters = self.lock();
        counters.sweep(now, SWEEP_STEP);
        let slot = counters.entry(key, now);
        slot.next = slot.next.max(tat_ms);
        slot.floor = slot.floor.max(tat_ms);
    }

    /// How many keys have a counter now.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether no key has a counter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters the clean-up has looked at since the limiter was made.
    pub fn examined(&self) -> u64 {
        self.lock().examined
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
    /// Failed look-ups per IPv6 /48 per hour (a site's whole network, 65,536 /64s),
    /// on top of the limit of each /64.
    pub failed_lookups_per_ipv6_48_per_hour: u32,
    /// Requests per license key per minute on those endpoints.
    pub requests_per_key_per_minute: u32,
    /// Addresses or networks (`10.0.0.0/8`, `::1`) of reverse proxies whose
    /// `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    /// Only that one is read: the other may come from the client unchanged.
    pub forwarded_header: ForwardedHeader,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failed_lookups_per_address_per_hour: 60,
            failed_lookups_per_ipv6_48_per_hour: 240,
            requests_per_key_per_minute: 120,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
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

/// The header a trusted proxy names the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client;proto=https, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// Who a request came from, as the rate limits count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// An address.
    Addr(IpAddr),
    /// A hop a trusted proxy wrote that is no address (`unknown`, `_hidden`,
    /// garbage): a client of its own, never the proxy.
    Opaque(String),
}

impl Client {
    /// The counting key: [`address_bucket`] of an address, the hop's text (short,
    /// printable) otherwise.
    pub fn bucket(&self) -> String {
        match self {
            Self::Addr(ip) => address_bucket(*ip),
            Self::Opaque(hop) => {
                let text: String = hop
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(64)
                    .collect();
                format!("hop:{text}")
            }
        }
    }
}

/// One hop of a forwarding header as an address: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
/// `[::1]`, `[::1]:5678`, quoted or not.
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let hop = hop
        .strip_prefix('"')
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or(hop);
    let is_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = hop.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return ok
            .then(|| addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    let (addr, port) = hop.split_once(':')?;
    is_port(port)
        .then(|| addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

/// The `for=` of each element of `Forwarded` header values (RFC 7239), in order;
/// an element without one gives an empty hop (which is no address).
pub fn forwarded_for_of(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .map(|(_, value)| value.trim().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// The client of a request: the socket's peer, or, when that peer is a trusted
/// proxy, the right-most hop of the forwarding `header` that is not one (each proxy
/// appends the address it saw, so the entries to its left are the client's word).
/// A hop that is no address is a client of its own.
pub fn client_address(
    peer: Option<IpAddr>,
    values: &[&str],
    header: ForwardedHeader,
    trusted: &[Network],
) -> Option<Client> {
    let peer = canonical(peer?);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(Client::Addr(peer));
    }
    let hops: Vec<String> = match header {
        ForwardedHeader::XForwardedFor => values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::to_owned)
            .collect(),
        ForwardedHeader::Forwarded => forwarded_for_of(values),
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            None => return Some(Client::Opaque(hop.trim().to_owned())),
        }
    }
    Some(Client::Addr(client))
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

/// The counting key of the /48 around an IPv6 client's /64 bucket (as made by
/// [`address_bucket`]); none for an IPv4 client.
pub fn network_bucket(bucket: &str) -> Option<String> {
    let prefix = bucket.strip_suffix("::/64")?;
    let mut segments = prefix.split(':');
    let (a, b, c) = (segments.next()?, segments.next()?, segments.next()?);
    Some(format!("{a}:{b}:{c}::/48"))
}

/// The limits of the public, key-authenticated endpoints.
#[derive(Debug)]
pub struct PublicLimits {
    enabled: bool,
    failed_lookups: Limiter,
    failed_lookups_per_48: Limiter,
    per_key: Limiter,
    trusted: Vec<Network>,
    forwarded_header: ForwardedHeader,
    /// Look-ups admitted and not yet finished, per address.
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Woken whenever a look-up in flight finishes.
    finished: tokio::sync::Notify,
    /// The failed-look-up counters of every instance on the database, if it is
    /// shared (PostgreSQL).
    shared: Option<Arc<dyn SharedLimits>>,
}

/// Names of the shared counters of [`PublicLimits`]: the limiter, then the bucket.
const SHARED_ADDRESS: &str = "failed_lookups/";
const SHARED_48: &str = "failed_lookups_per_48/";

/// How long a failed look-up waits for the shared counter before it is counted
/// here only (a slow database must not hold up a 404).
const SHARED_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// The look-ups of one address between [`PublicLimits::admit`] and their end.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    count: u32,
    /// When the latest began (ms); a count older than [`IN_FLIGHT_TTL_MS`] is taken
    /// as lost (a request that ended without saying how).
    since_ms: i64,
}

/// How long a look-up may be in flight before it no longer makes others wait.
const IN_FLIGHT_TTL_MS: i64 = 10_000;
/// How long a request waits for look-ups in flight before it is refused.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why [`PublicLimits::reserve`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refused {
    /// Seconds until one more fits.
    secs: u64,
    /// The failures left are all reserved by look-ups still in flight: worth waiting.
    busy: bool,
}

impl PublicLimits {
    /// Counters for `settings` (checked at load: bad proxies were refused there).
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            enabled: settings.enabled,
            failed_lookups: Limiter::new(settings.failed_lookups_per_address_per_hour, 3600),
            failed_lookups_per_48: Limiter::new(settings.failed_lookups_per_ipv6_48_per_hour, 3600),
            per_key: Limiter::new(settings.requests_per_key_per_minute, 60),
            trusted: settings
                .trusted_proxies
                .iter()
                .filter_map(|p| Network::parse(p))
                .collect(),
            forwarded_header: settings.forwarded_header,
            in_flight: Mutex::new(HashMap::new()),
            finished: tokio::sync::Notify::new(),
            shared: None,
        }
    }

    /// These limits, with failed look-ups also counted in `shared` (the counters of
    /// every instance on one database).
    pub fn shared_with(self, shared: Option<Arc<dyn SharedLimits>>) -> Self {
        Self { shared, ..self }
    }

    /// The shared counters, when failures are counted there too.
    pub fn shared(&self) -> Option<&Arc<dyn SharedLimits>> {
        self.shared.as_ref().filter(|_| self.enabled)
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &[Network] {
        &self.trusted
    }

    /// The header the trusted proxies write.
    pub fn forwarded_header(&self) -> ForwardedHeader {
        self.forwarded_header
    }

    /// Before a look-up: reserves one failed look-up for the address (and its IPv6
    /// /48) and counts a request for the key; refused (the seconds to wait) when
    /// either is used up. The reservation is the check: concurrent look-ups from one
    /// address can never pass more failures than the limit, however many are in
    /// flight. Every admitted look-up ends with [`PublicLimits::found`] (the
    /// reservation is given back) or [`PublicLimits::failed`] (it stands).
    pub fn admit(&self, client: &str, key: Option<&str>, now: Timestamp) -> Result<(), u64> {
        self.reserve(client, key, now).map_err(|r| r.secs)
    }

    /// Like [`PublicLimits::admit`], but while the address's remaining failures are
    /// all reserved by look-ups in flight (a burst of honest requests from one
    /// office), waits for those to finish, up to a few seconds, instead of refusing.
    pub async fn admit_waiting(
        &self,
        client: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<(), u64> {
        let deadline = std::time::Instant::now() + MAX_WAIT;
        loop {
            // Made before the attempt, so that a look-up finishing in between wakes it.
            let finished = self.finished.notified();
            match self.reserve(client, key, now) {
                Ok(()) => return Ok(()),
                Err(r) if r.busy && std::time::Instant::now() < deadline => {
                    let wait = std::time::Duration::from_millis(50);
                    let _ = actix_web::rt::time::timeout(wait, finished).await;
                }
                Err(r) => return Err(r.secs),
            }
        }
    }

    fn reserve(&self, client: &str, key: Option<&str>, now: Timestamp) -> Result<(), Refused> {
        if !self.enabled {
            return Ok(());
        }
        // Held across the check and the count, so that a request refused meanwhile
        // sees every look-up that holds a reservation.
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let now_ms = now.timestamp_millis();
        let others = in_flight
            .get(client)
            .filter(|f| now_ms - f.since_ms <= IN_FLIGHT_TTL_MS)
            .map_or(0, |f| f.count);
        let refused = |secs| Refused {
            secs,
            busy: others > 0,
        };
        self.failed_lookups.hit(client, now).map_err(refused)?;
        if let Some(network) = network_bucket(client) {
            if let Err(secs) = self.failed_lookups_per_48.hit(&network, now) {
                self.failed_lookups.give_back(client, now);
                return Err(refused(secs));
            }
        }
        if let Some(key) = key {
            if let Err(secs) = self.per_key.hit(key, now) {
                self.give_back(client, now);
                return Err(Refused { secs, busy: false });
            }
        }
        in_flight.insert(
            client.to_owned(),
            InFlight {
                count: others + 1,
                since_ms: now_ms,
            },
        );
        Ok(())
    }

    fn give_back(&self, client: &str, now: Timestamp) {
        self.failed_lookups.give_back(client, now);
        if let Some(network) = network_bucket(client) {
            self.failed_lookups_per_48.give_back(&network, now);
        }
    }

    /// A look-up from `client` has finished: tell those waiting.
    fn end(&self, client: &str) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = map.get_mut(client) {
            entry.count = entry.count.saturating_sub(1);
            if entry.count == 0 {
                map.remove(client);
            }
        }
        drop(map);
        self.finished.notify_waiters();
    }

    /// After a look-up that found its key: the failure reserved by
    /// [`PublicLimits::admit`] is given back.
    pub fn found(&self, client: &str, now: Timestamp) {
        if !self.enabled {
            return;
        }
        self.give_back(client, now);
        self.end(client);
    }

    /// After a look-up that ended without an answer (the database failed, or it was
    /// not made): the failure reserved by [`PublicLimits::admit`] stands, here only.
    pub fn failed(&self, client: &str, _now: Timestamp) {
        if self.enabled {
            self.end(client);
        }
    }

    /// After a look-up that found nothing: the failure reserved by
    /// [`PublicLimits::admit`] stands, and is counted in the shared counters too,
    /// whose count comes back into ours. Refused (the seconds to wait) when the
    /// shared counter was used up by other instances' failures: this request
    /// answers 429 then, as it would have on one instance, and its failure is not
    /// counted (a refused hit never is). When the shared counter cannot be reached,
    /// the failure is counted here only.
    pub async fn not_found(&self, client: &str, now: Timestamp) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        let counted = match &self.shared {
            Some(shared) => self.count_shared(&**shared, client, now).await,
            None => Ok(()),
        };
        // Only now, so that a request waiting for this one sees the merged count.
        self.end(client);
        counted
    }

    async fn count_shared(
        &self,
        shared: &dyn SharedLimits,
        client: &str,
        now: Timestamp,
    ) -> Result<(), u64> {
        let network = network_bucket(client);
        let mut levels = vec![(&self.failed_lookups, SHARED_ADDRESS, client)];
        if let Some(network) = network.as_deref() {
            levels.push((&self.failed_lookups_per_48, SHARED_48, network));
        }
        let charges = levels
            .iter()
            .map(|(limiter, prefix, key)| limiter.charge(format!("{prefix}{key}")))
            .collect();
        let charged = match actix_web::rt::time::timeout(
            SHARED_DEADLINE,
            shared.charge(charges, now),
        )
        .await
        {
            Ok(Ok(charged)) if charged.len() == levels.len() => charged,
            Ok(Ok(_)) => {
                log::warn!("the shared rate-limit counters answered for other buckets; a failed look-up was counted on this instance only");
                return Ok(());
            }
            Ok(Err(e)) => {
                log::warn!("a failed look-up was counted on this instance only: the shared rate-limit counters failed: {e}");
                return Ok(());
            }
            Err(_) => {
                log::warn!("a failed look-up was counted on this instance only: the shared rate-limit counters did not answer within {SHARED_DEADLINE:?}");
                return Ok(());
            }
        };
        let mut wait = None;
        for ((limiter, _, key), charged) in levels.iter().zip(charged) {
            if !charged.allowed {
                limiter.give_back(key, now);
            }
            limiter.merge(key, charged.tat_ms, now);
            if !charged.allowed {
                let secs = limiter.blocked(key, now).unwrap_or(1);
                wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Takes in counters other instances changed (as read from the shared
    /// counters): each raises ours to its count, never lowers it.
    pub fn merge(&self, changes: &[LimitChange], now: Timestamp) {
        for change in changes {
            if let Some(key) = change.bucket.strip_prefix(SHARED_ADDRESS) {
                self.failed_lookups.merge(key, change.tat_ms, now);
            } else if let Some(key) = change.bucket.strip_prefix(SHARED_48) {
                self.failed_lookups_per_48.merge(key, change.tat_ms, now);
            }
        }
    }

    /// The failed-look-up counter of single addresses (for tests and measurements).
    pub fn failed_lookups(&self) -> &Limiter {
        &self.failed_lookups
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
        let xff = ForwardedHeader::XForwardedFor;
        let ip = |s: &str| Some(Client::Addr(s.parse::<IpAddr>().unwrap()));
        // Straight from the internet: the header is the client's word, ignored.
        assert_eq!(
            client_address(
                Some("203.0.113.9".parse().unwrap()),
                &["1.2.3.4"],
                xff,
                &trusted
            ),
            ip("203.0.113.9")
        );
        let proxy = Some("10.0.0.2".parse().unwrap());
        // Through our proxy: the right-most address that is not a proxy of ours.
        assert_eq!(
            client_address(proxy, &["6.6.6.6, 198.51.100.7, 10.0.0.3"], xff, &trusted),
            ip("198.51.100.7")
        );
        // Two header lines count as one list, in order.
        assert_eq!(
            client_address(proxy, &["6.6.6.6", "198.51.100.7"], xff, &trusted),
            ip("198.51.100.7")
        );
        // A proxy that sent no header: the proxy itself.
        assert_eq!(client_address(proxy, &[], xff, &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(None, &[], xff, &trusted), None);
    }

    #[test]
    fn a_forwarded_hop_with_a_port_is_its_address() {
        let trusted = [Network::parse("10.0.0.0/8").unwrap()];
        let proxy = Some("10.0.0.2".parse().unwrap());
        let ip = |s: &str| Some(Client::Addr(s.parse::<IpAddr>().unwrap()));
        for (hop, expected) in [
            ("7.7.7.7:1234", "7.7.7.7"),
            ("[2001:db8::7]:4711", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
            ("\"7.7.7.7:1234\"", "7.7.7.7"),
        ] {
            assert_eq!(
                client_address(proxy, &[hop], ForwardedHeader::XForwardedFor, &trusted),
                ip(expected),
                "{hop}"
            );
        }
        // Two clients behind one proxy stay two clients.
        let a = client_address(
            proxy,
            &["7.7.7.7:1234"],
            ForwardedHeader::XForwardedFor,
            &trusted,
        );
        let b = client_address(
            proxy,
            &["6.6.6.6:4321"],
            ForwardedHeader::XForwardedFor,
            &trusted,
        );
        assert_ne!(a.unwrap().bucket(), b.unwrap().bucket());
    }

    #[test]
    fn a_hop_that_is_no_address_is_a_client_of_its_own_never_the_proxy() {
        let trusted = [Network::parse("10.0.0.0/8").unwrap()];
        let proxy = Some("10.0.0.2".parse().unwrap());
        for garbage in [
            "junk",
            "1.2.3.4:port",
            "[::1]x",
            "1.2.3.4:123456",
            "unknown",
            "",
        ] {
            let c = client_address(
                proxy,
                &[&format!("1.1.1.1, {garbage}")],
                ForwardedHeader::XForwardedFor,
                &trusted,
            )
            .unwrap();
            assert!(matches!(c, Client::Opaque(_)), "{garbage}: {c:?}");
            assert_ne!(c.bucket(), address_bucket("10.0.0.2".parse().unwrap()));
        }
        for bad in ["1.2.3.4:", "[::1", "[1.2.3.4]", "::1:80:x"] {
            assert_eq!(parse_hop(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_forwarded_header_is_read_when_the_proxies_write_it() {
        let trusted = [Network::parse("10.0.0.0/8").unwrap()];
        let proxy = Some("10.0.0.2".parse().unwrap());
        let fwd = ForwardedHeader::Forwarded;
        let ip = |s: &str| Some(Client::Addr(s.parse::<IpAddr>().unwrap()));
        assert_eq!(
            client_address(
                proxy,
                &["for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.2"],
                fwd,
                &trusted
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            client_address(
                proxy,
                &["proto=https;For=192.0.2.60", "for=10.0.0.9"],
                fwd,
                &trusted
            ),
            ip("192.0.2.60")
        );
        // An obfuscated or unknown client is a client of its own.
        let hidden = client_address(proxy, &["for=_hidden"], fwd, &trusted).unwrap();
        assert_eq!(hidden, Client::Opaque("_hidden".into()));
        // With X-Forwarded-For configured, a Forwarded header is not read (it may be
        // the client's own): the caller passes only the configured header's values.
        assert_eq!(
            forwarded_for_of(&["by=1.2.3.4", "for=\"_x\""]),
            vec![String::new(), "\"_x\"".to_owned()]
        );
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
    fn a_hit_looks_at_a_few_counters_however_many_there_are_and_quiet_ones_are_cleaned_up() {
        let l = Limiter::new(60, 3600);
        let t = from_unix(1_000_000);
        let started = std::time::Instant::now();
        for i in 0..200_000u32 {
            let bucket = address_bucket(std::net::Ipv6Addr::from(u128::from(i) << 64).into());
            assert!(l.hit(&bucket, t).is_ok());
        }
        let fill = started.elapsed();
        // Every counter is live (each key failed just now): nothing can be dropped.
        assert_eq!(l.len(), 200_000);
        let before = l.examined();
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            let _ = l.hit("203.0.113.1", t);
        }
        let hits = started.elapsed();
        let examined = l.examined() - before;
        assert!(
            examined <= 10_000 * SWEEP_STEP as u64,
            "{examined} counters examined by 10,000 hits"
        );
        // An hour later they are all quiet: hits drop them a few at a time.
        let later = from_unix(1_000_000 + 3600);
        let started = std::time::Instant::now();
        for _ in 0..(200_000 / SWEEP_STEP + 1) {
            let _ = l.hit("203.0.113.1", later);
        }
        let cleanup = started.elapsed();
        assert!(l.len() <= 2, "{} counters left", l.len());
        println!(
            "200,000 buckets filled in {fill:?}; 10,000 hits beside them in {hits:?} ({:?} each), examining {examined} counters; the clean-up of all of them spread over 50,001 hits took {cleanup:?}",
            hits / 10_000
        );
    }

    #[test]
    fn a_reservation_given_back_leaves_the_count_as_it_was() {
        let l = Limiter::new(2, 3600);
        let t = from_unix(10_000);
        assert!(l.hit("a", t).is_ok());
        l.give_back("a", t);
        assert!(l.hit("a", t).is_ok());
        assert!(l.hit("a", t).is_ok());
        assert!(
            l.hit("a", t).is_err(),
            "two counted, the given-back one not"
        );
        l.give_back("nobody", t);
        assert_eq!(l.blocked("nobody", t), None);
    }

    #[test]
    fn concurrent_reservations_never_pass_more_than_the_limit() {
        let l = std::sync::Arc::new(PublicLimits::new(&RateLimitSettings {
            failed_lookups_per_address_per_hour: 10,
            ..RateLimitSettings::default()
        }));
        let t = from_unix(1_000_000);
        let admitted: usize = (0..8)
            .map(|_| {
                let l = std::sync::Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| l.admit("192.0.2.1", None, t).is_ok())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn ipv6_failures_are_counted_by_the_48_too() {
        assert_eq!(
            network_bucket(&address_bucket("2001:db8:7:1::1".parse().unwrap())).as_deref(),
            Some("2001:db8:7::/48")
        );
        assert_eq!(network_bucket("192.0.2.1"), None);
        let l = PublicLimits::new(&RateLimitSettings {
            failed_lookups_per_address_per_hour: 60,
            failed_lookups_per_ipv6_48_per_hour: 5,
            ..RateLimitSettings::default()
        });
        let t = from_unix(1_000_000);
        // Five /64s of one /48, one failure each: then the whole /48 waits.
        for i in 1..=5 {
            let b = address_bucket(format!("2001:db8:7:{i}::1").parse().unwrap());
            assert!(l.admit(&b, None, t).is_ok(), "{b}");
        }
        let sixth = address_bucket("2001:db8:7:6::1".parse().unwrap());
        assert!(l.admit(&sixth, None, t).is_err());
        // The refused one did not use up its /64's own count.
        assert_eq!(l.failed_lookups().blocked(&sixth, t), None);
        let elsewhere = address_bucket("2001:db8:8:1::1".parse().unwrap());
        assert!(l.admit(&elsewhere, None, t).is_ok());
        // A found key gives its reservation back at both levels.
        let b = address_bucket("2001:db8:9:1::1".parse().unwrap());
        for _ in 0..100 {
            assert!(l.admit(&b, None, t).is_ok());
            l.found(&b, t);
        }
    }

    #[test]
    fn a_count_merged_from_another_instance_raises_ours_and_never_lowers_it() {
        // 4 an hour: each hit costs 900 s, a full bucket runs 3600 s ahead.
        let l = Limiter::new(4, 3600);
        let t = from_unix(1_000_000);
        let ms = |s: i64| (1_000_000 + s) * 1000;
        assert!(l.hit("a", t).is_ok());
        // Another instance counted three: ours becomes theirs.
        l.merge("a", ms(2700), t);
        assert!(l.hit("a", t).is_ok(), "the fourth fits");
        assert_eq!(l.hit("a", t), Err(900));
        // An older count (theirs before our hits) lowers nothing.
        l.merge("a", ms(900), t);
        assert_eq!(l.blocked("a", t), Some(900));
        // A reservation given back after a merge leaves the merged count: those
        // hits were counted elsewhere.
        let g = Limiter::new(4, 3600);
        assert!(g.hit("g", t).is_ok());
        g.merge("g", ms(3600), t);
        g.give_back("g", t);
        assert_eq!(g.blocked("g", t), Some(900));
        // A count already past adds no counter; one beyond a full bucket is a full one.
        l.merge("b", ms(-5), t);
        assert_eq!(l.len(), 1);
        l.merge("c", ms(1_000_000), t);
        assert_eq!(l.blocked("c", t), Some(900));
        assert_eq!(l.blocked("c", from_unix(1_000_000 + 900)), None);
    }

    /// The shared counters of a database, in memory: the arithmetic the engines
    /// apply, a change number per write, and a switch that makes them fail.
    #[derive(Default)]
    struct FakeShared {
        counters: Mutex<HashMap<String, (i64, i64)>>,
        failing: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl SharedLimits for FakeShared {
        async fn charge(
            &self,
            charges: Vec<LimitCharge>,
            now: Timestamp,
        ) -> Result<Vec<crate::storage::shared_limits::Charged>, crate::storage::StorageError>
        {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(crate::storage::StorageError::Unavailable("test"));
            }
            let now = now.timestamp_millis();
            let mut counters = self.counters.lock().unwrap();
            let seq = counters.values().map(|(_, s)| *s).max().unwrap_or(0) + 1;
            Ok(charges
                .into_iter()
                .map(|c| {
                    let tat = counters.get(&c.bucket).map_or(now, |(t, _)| *t);
                    let allowed = tat.max(now) <= now + c.burst_ms;
                    if allowed {
                        counters.insert(c.bucket, (tat.max(now) + c.cost_ms, seq));
                    }
                    crate::storage::shared_limits::Charged {
                        tat_ms: if allowed {
                            tat.max(now) + c.cost_ms
                        } else {
                            tat
                        },
                        allowed,
                    }
                })
                .collect())
        }

        async fn changes(
            &self,
            since: crate::storage::shared_limits::ChangeCursor,
            _now: Timestamp,
            _max: u32,
        ) -> Result<crate::storage::shared_limits::LimitChanges, crate::storage::StorageError>
        {
            let counters = self.counters.lock().unwrap();
            Ok(crate::storage::shared_limits::LimitChanges {
                counters: counters
                    .iter()
                    .filter(|(_, (_, seq))| *seq > since.from)
                    .map(|(bucket, (tat_ms, _))| LimitChange {
                        bucket: bucket.clone(),
                        tat_ms: *tat_ms,
                    })
                    .collect(),
                next: crate::storage::shared_limits::ChangeCursor {
                    from: counters.values().map(|(_, s)| *s).max().unwrap_or(0),
                    page: None,
                },
                more: false,
            })
        }

        async fn forget_quiet(
            &self,
            _now: Timestamp,
            _max: u32,
        ) -> Result<u64, crate::storage::StorageError> {
            Ok(0)
        }
    }

    /// Two instances' limits on one set of shared counters.
    fn two_instances(limit: u32) -> (Arc<FakeShared>, [PublicLimits; 2]) {
        let shared = Arc::new(FakeShared::default());
        let settings = RateLimitSettings {
            failed_lookups_per_address_per_hour: limit,
            ..RateLimitSettings::default()
        };
        let one = || {
            PublicLimits::new(&settings)
                .shared_with(Some(Arc::clone(&shared) as Arc<dyn SharedLimits>))
        };
        (Arc::clone(&shared), [one(), one()])
    }

    /// A look-up from `client` on `instance` that finds nothing: its answer (Ok is
    /// the 404, Err the 429 and its seconds).
    async fn guess(instance: &PublicLimits, client: &str, now: Timestamp) -> Result<(), u64> {
        instance.admit(client, None, now)?;
        instance.not_found(client, now).await
    }

    #[test]
    fn failures_spread_over_two_instances_meet_the_limit_at_the_count_of_one() {
        actix_web::rt::System::new().block_on(async {
            let (shared, instances) = two_instances(5);
            let t = from_unix(1_000_000);
            let answers: Vec<Result<(), u64>> = {
                let mut out = Vec::new();
                for i in 0..8 {
                    out.push(guess(&instances[i % 2], "192.0.2.7", t).await);
                }
                out
            };
            // No poll yet: the sixth, on an instance that counted only two of its
            // own, is refused by the shared count (720 s: one failure's cost).
            assert_eq!(
                answers,
                [
                    Ok(()),
                    Ok(()),
                    Ok(()),
                    Ok(()),
                    Ok(()),
                    Err(720),
                    Err(720),
                    Err(720)
                ]
            );
            // Every instance knows the address is blocked: a genuine key waits too.
            for instance in &instances {
                assert_eq!(instance.admit("192.0.2.7", Some("k"), t), Err(720));
            }
            // A poll brings another instance's failures to one that saw none of them.
            let third = PublicLimits::new(&RateLimitSettings {
                failed_lookups_per_address_per_hour: 5,
                ..RateLimitSettings::default()
            });
            assert!(third.admit("192.0.2.7", Some("k"), t).is_ok());
            third.found("192.0.2.7", t);
            let changes = shared
                .changes(Default::default(), t, 100)
                .await
                .unwrap()
                .counters;
            third.merge(&changes, t);
            assert_eq!(third.admit("192.0.2.7", Some("k"), t), Err(720));
            // Another address is untouched.
            assert!(guess(&instances[0], "192.0.2.8", t).await.is_ok());
        });
    }

    #[test]
    fn a_shared_counter_that_fails_leaves_the_404_and_the_count_here() {
        actix_web::rt::System::new().block_on(async {
            let (shared, instances) = two_instances(2);
            shared
                .failing
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let t = from_unix(1_000_000);
            assert!(guess(&instances[0], "192.0.2.7", t).await.is_ok());
            assert!(guess(&instances[0], "192.0.2.7", t).await.is_ok());
            assert_eq!(guess(&instances[0], "192.0.2.7", t).await, Err(1800));
        });
    }

    #[test]
    fn ipv6_failures_are_shared_per_64_and_per_48() {
        actix_web::rt::System::new().block_on(async {
            let shared = Arc::new(FakeShared::default());
            let settings = RateLimitSettings {
                failed_lookups_per_address_per_hour: 60,
                failed_lookups_per_ipv6_48_per_hour: 3,
                ..RateLimitSettings::default()
            };
            let [a, b] = [(); 2].map(|()| {
                PublicLimits::new(&settings)
                    .shared_with(Some(Arc::clone(&shared) as Arc<dyn SharedLimits>))
            });
            let t = from_unix(1_000_000);
            let client = |i: u32| address_bucket(format!("2001:db8:7:{i}::1").parse().unwrap());
            assert!(guess(&a, &client(1), t).await.is_ok());
            assert!(guess(&b, &client(2), t).await.is_ok());
            assert!(guess(&a, &client(3), t).await.is_ok());
            // The /48 is used up across both: a fourth /64 of it is refused by b.
            assert_eq!(guess(&b, &client(4), t).await, Err(1200));
            assert!(shared
                .counters
                .lock()
                .unwrap()
                .contains_key("failed_lookups_per_48/2001:db8:7::/48"));
        });
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
            l.found("192.0.2.1", t);
        }
        for _ in 0..3 {
            // Not found: the reservation stands.
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
