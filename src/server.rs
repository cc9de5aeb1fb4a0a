//! Limits of the HTTP server itself, below the routes: the `[server]` settings, a
//! cap on the connections one client address holds open, and the deadline on
//! reading a request body.
//!
//! Headers that arrive slowly are cut off by actix (`client_request_timeout`, 5 s);
//! a body that arrives slowly is cut off by [`BodyDeadline`] (408); and a client that
//! opens many connections gets no more than [`ServerSettings::max_connections_per_address`]
//! of them, so one machine cannot take every file descriptor of the server.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Extensions;
use serde::{Deserialize, Serialize};

use crate::service::limits::{address_bucket, Network};

/// Connections the kernel queues for accept. `std`'s `TcpListener::bind` listens
/// with 128, which a burst of clients from behind one office NAT (or a load balancer
/// opening connections) overflows: the overflow is reset, not queued.
pub const LISTEN_BACKLOG: i32 = 1024;

/// A listener on `addr` (`host:port`, port 0 for any) with [`LISTEN_BACKLOG`].
pub fn listen(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(a),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket
            .bind(&a.into())
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(()) => return Ok(socket.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// The `[server]` section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Seconds a client has to send a whole request body once its headers are in.
    pub body_timeout_seconds: u64,
    /// Connections one client address (IPv6: its /64) may hold open at once; 0: no cap.
    /// Trusted proxies are not capped.
    pub max_connections_per_address: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            body_timeout_seconds: 10,
            max_connections_per_address: 128,
        }
    }
}

impl ServerSettings {
    /// The first setting that cannot work, with its message.
    pub fn problem(&self) -> Option<(String, String)> {
        if !(1..=3600).contains(&self.body_timeout_seconds) {
            return Some((
                "body_timeout_seconds".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        None
    }

    /// The body deadline these settings give.
    pub fn body_deadline(&self) -> BodyDeadline {
        BodyDeadline(Duration::from_secs(self.body_timeout_seconds))
    }
}

/// How long reading a whole request body may take (app data of every worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline(pub Duration);

impl Default for BodyDeadline {
    fn default() -> Self {
        ServerSettings::default().body_deadline()
    }
}

/// Counts the open connections of each client address and closes, as soon as it is
/// accepted, a connection beyond the cap.
#[derive(Debug)]
pub struct ConnectionCap {
    limit: u32,
    trusted: Vec<Network>,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

/// The answer of [`ConnectionCap::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Admitted and counted; the guard frees the place when dropped.
    Counted(ConnectionGuard),
    /// Admitted without counting (no cap, or a trusted proxy).
    Uncounted,
    /// The address holds its cap already.
    Refused,
}

impl Admission {
    /// Whether the connection may stay.
    pub fn admitted(&self) -> bool {
        !matches!(self, Self::Refused)
    }
}

/// One admitted connection; dropped with the connection, it frees its place.
#[derive(Debug)]
pub struct ConnectionGuard {
    open: Arc<Mutex<HashMap<String, u32>>>,
    key: String,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        // A poisoned lock only means a panic elsewhere mid-update; counts stay counts.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl ConnectionCap {
    /// A cap of `limit` connections per address (0: none); `trusted` proxies are exempt.
    pub fn new(limit: u32, trusted: Vec<Network>) -> Self {
        Self {
            limit,
            trusted,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The cap of `settings`: `[server] max_connections_per_address`, the trusted
    /// proxies of `[rate_limits]` exempt.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self::new(
            settings.server.max_connections_per_address,
            settings
                .rate_limits
                .trusted_proxies
                .iter()
                .filter_map(|p| Network::parse(p))
                .collect(),
        )
    }

    /// Whether one more connection from `peer` fits.
    pub fn admit(&self, peer: IpAddr) -> Admission {
        if self.limit == 0 || self.trusted.iter().any(|n| n.contains(peer)) {
            return Admission::Uncounted;
        }
        let key = address_bucket(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.limit {
            return Admission::Refused;
        }
        *n += 1;
        Admission::Counted(ConnectionGuard {
            open: Arc::clone(&self.open),
            key,
        })
    }

    /// How many connections `peer`'s address holds now (counted ones only).
    pub fn open_from(&self, peer: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&address_bucket(peer)).copied().unwrap_or(0)
    }

    /// The `HttpServer::on_connect` hook: runs once per accepted connection, before
    /// any byte of it is read. A connection over the cap is shut down there, so it
    /// holds its file descriptor only for as long as the server takes to notice.
    pub fn on_connect(&self, io: &dyn Any, ext: &mut Extensions) {
        let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        match self.admit(peer.ip()) {
            Admission::Counted(guard) => {
                ext.insert(guard);
            }
            Admission::Uncounted => {}
            Admission::Refused => {
                log::debug!(
                    "closed a connection from {}: it holds {} already",
                    address_bucket(peer.ip()),
                    self.limit
                );
                let _ = socket2::SockRef::from(stream).shutdown(Shutdown::Both);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_queues_a_burst_beyond_stds_128_without_accepting() {
        let listener = listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Nobody accepts: every connection below completes its handshake only
        // because the kernel queues it (std's backlog of 128 would not).
        let clients: Vec<_> = (0..600)
            .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(clients.len(), 600);
        let (accepted, _) = listener.accept().unwrap();
        drop(accepted);
    }

    #[test]
    fn an_address_gets_its_cap_and_a_place_comes_back_when_a_connection_ends() {
        let cap = ConnectionCap::new(2, vec![Network::parse("10.0.0.0/8").unwrap()]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = cap.admit(ip);
        let b = cap.admit(ip);
        assert!(a.admitted() && b.admitted());
        assert!(!cap.admit(ip).admitted(), "the third is over the cap");
        assert!(
            cap.admit("192.0.2.8".parse().unwrap()).admitted(),
            "another address is not touched"
        );
        assert_eq!(cap.open_from(ip), 2);
        drop(a);
        assert_eq!(cap.open_from(ip), 1);
        let c = cap.admit(ip);
        assert!(c.admitted(), "a place came back");
        drop((b, c));
        assert_eq!(cap.open_from(ip), 0);
        // A trusted proxy carries everybody's connections: it is not capped.
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| cap.admit(proxy)).collect();
        assert!(held.iter().all(Admission::admitted));
        assert_eq!(cap.open_from(proxy), 0);
    }

    #[test]
    fn ipv6_connections_are_counted_by_their_64() {
        let cap = ConnectionCap::new(1, Vec::new());
        let one = cap.admit("2001:db8:1:2::1".parse().unwrap());
        assert!(one.admitted());
        assert!(!cap.admit("2001:db8:1:2::ffff".parse().unwrap()).admitted());
        assert!(cap.admit("2001:db8:1:3::1".parse().unwrap()).admitted());
    }

    #[test]
    fn no_cap_admits_everything() {
        let cap = ConnectionCap::new(0, Vec::new());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!((0..1000).all(|_| cap.admit(ip).admitted()));
    }

    #[test]
    fn a_body_deadline_outside_one_second_to_an_hour_is_refused() {
        for bad in [0, 3601] {
            let s = ServerSettings {
                body_timeout_seconds: bad,
                ..ServerSettings::default()
            };
            assert!(s.problem().is_some(), "{bad}");
        }
        assert_eq!(ServerSettings::default().problem(), None);
    }
}
