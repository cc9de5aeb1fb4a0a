//! Connections that survive a failover: each host of the URL gets a bounded turn,
//! and a connection whose operation was cut off never goes back to the pool.
//!
//! Both matter when a primary goes without closing its connections (a hung server,
//! a machine or a network that is gone without a word); a primary that is killed on
//! a machine that stays up closes them itself, and the pool's check for closed
//! connections is enough there.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use rand::seq::SliceRandom;
use tokio_postgres::config::{Host, LoadBalanceHosts};
use tokio_postgres::{Client, Config, NoTls};

use crate::storage::StorageError;

/// Opens a connection to the first host of the URL that takes it (and, with
/// `target_session_attrs=read-write`, takes writes), giving every host but the last
/// at most `per_host` for the whole attempt: TCP, start-up, login and the
/// read-write check, as libpq's `connect_timeout` does. tokio-postgres bounds only
/// the TCP connect, so a host that accepts connections and then never answers would
/// hold every attempt until the pool gave up, and the host after it (the promoted
/// standby) would never be tried. The last host has what is left of the pool's
/// create timeout.
pub(super) struct HostByHost {
    hosts: Vec<Config>,
    per_host: Duration,
    shuffle: bool,
}

impl HostByHost {
    /// One turn per host of `config`, `per_host` long.
    pub(super) fn new(config: &Config, per_host: Duration) -> Self {
        Self {
            hosts: one_per_host(config),
            per_host,
            shuffle: config.get_load_balance_hosts() == LoadBalanceHosts::Random,
        }
    }

    /// How long the pool should let one connection attempt take: every host's
    /// turn, and a second to spare.
    pub(super) fn create_timeout(&self) -> Duration {
        let turns = u32::try_from(self.hosts.len()).unwrap_or(u32::MAX);
        self.per_host
            .saturating_mul(turns)
            .saturating_add(Duration::from_secs(1))
    }
}

/// What [`deadpool_postgres::Connect`] returns.
type Connecting<'a> = Pin<
    Box<
        dyn Future<Output = Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>>
            + Send
            + 'a,
    >,
>;

impl deadpool_postgres::Connect for HostByHost {
    fn connect(&self, _all_hosts: &Config) -> Connecting<'_> {
        Box::pin(async move {
            let mut order: Vec<&Config> = self.hosts.iter().collect();
            if self.shuffle {
                order.shuffle(&mut rand::thread_rng());
            }
            let Some((last, before)) = order.split_last() else {
                unreachable!("one_per_host gives every URL at least one turn")
            };
            for host in before {
                match tokio::time::timeout(self.per_host, host.connect(NoTls)).await {
                    Ok(Ok(opened)) => return Ok(driven(opened)),
                    Ok(Err(e)) => log::debug!("PostgreSQL host {:?}: {e}", host.get_hosts()),
                    Err(_) => log::warn!(
                        "PostgreSQL host {:?} did not answer within {:?}; trying the next",
                        host.get_hosts(),
                        self.per_host
                    ),
                }
            }
            // As the driver does, the last host's refusal is the one reported.
            last.connect(NoTls).await.map(driven)
        })
    }
}

/// The client of a new connection, and the task that drives the connection.
fn driven(
    (client, connection): (
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
) -> (Client, tokio::task::JoinHandle<()>) {
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::warn!("PostgreSQL connection ended: {e}");
        }
    });
    (client, task)
}

/// The settings of `config` once per host: the same connection, each to one host.
/// (A URL without a host gives itself back: the driver then says what is missing.)
fn one_per_host(config: &Config) -> Vec<Config> {
    let count = config.get_hosts().len().max(config.get_hostaddrs().len());
    if count <= 1 {
        return vec![config.clone()];
    }
    (0..count)
        .map(|i| {
            let mut one = Config::new();
            if let Some(user) = config.get_user() {
                one.user(user);
            }
            if let Some(password) = config.get_password() {
                one.password(password);
            }
            if let Some(dbname) = config.get_dbname() {
                one.dbname(dbname);
            }
            if let Some(options) = config.get_options() {
                one.options(options);
            }
            if let Some(name) = config.get_application_name() {
                one.application_name(name);
            }
            match config.get_hosts().get(i) {
                Some(Host::Tcp(host)) => {
                    one.host(host);
                }
                Some(Host::Unix(path)) => {
                    one.host_path(path);
                }
                None => {}
            }
            if let Some(addr) = config.get_hostaddrs().get(i) {
                one.hostaddr(*addr);
            }
            // One port for every host, or one each (as the driver reads them).
            if let Some(port) = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
            {
                one.port(*port);
            }
            if let Some(timeout) = config.get_connect_timeout() {
                one.connect_timeout(*timeout);
            }
            if let Some(timeout) = config.get_tcp_user_timeout() {
                one.tcp_user_timeout(*timeout);
            }
            one.keepalives(config.get_keepalives())
                .keepalives_idle(config.get_keepalives_idle());
            if let Some(interval) = config.get_keepalives_interval() {
                one.keepalives_interval(interval);
            }
            if let Some(retries) = config.get_keepalives_retries() {
                one.keepalives_retries(retries);
            }
            one.ssl_mode(config.get_ssl_mode())
                .ssl_negotiation(config.get_ssl_negotiation())
                .target_session_attrs(config.get_target_session_attrs())
                .channel_binding(config.get_channel_binding())
                .load_balance_hosts(config.get_load_balance_hosts());
            one
        })
        .collect()
}

/// A pooled connection that goes back to the pool only when its operation ran to
/// its end. An operation cut off by the deadline (or a panic) leaves its connection
/// waiting for an answer, perhaps from a server that hung or a host that went
/// without a word: pooled again, it would hold up every operation given it next,
/// and nothing tells it from a slow one. It is closed instead.
pub(super) struct Lease(Option<Object>);

impl Lease {
    /// A connection from the pool (a new one if none is idle).
    pub(super) async fn get(pool: &Pool) -> Result<Self, StorageError> {
        Ok(Self(Some(pool.get().await.map_err(super::pool_error)?)))
    }

    /// The operation ran to its end, whatever its outcome: back to the pool.
    pub(super) fn release(mut self) {
        drop(self.0.take());
    }
}

impl std::ops::Deref for Lease {
    type Target = Object;

    fn deref(&self) -> &Object {
        // Some until `release` (which consumes the lease) or the drop.
        self.0
            .as_ref()
            .expect("a lease holds its connection until released")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Object {
        // Some until `release` (which consumes the lease) or the drop.
        self.0
            .as_mut()
            .expect("a lease holds its connection until released")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            log::warn!("closing a PostgreSQL connection whose operation did not finish");
            // Taken from the pool and dropped: its connection task ends, its socket closes.
            drop(Object::take(object));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_gets_the_whole_connection_of_a_multi_host_url() {
        let all: Config = "postgres://kc:pw@db1:5432,db2:6543/keyclerk?target_session_attrs=read-write\
                           &connect_timeout=4&application_name=kc&options=-c%20x%3Dy&sslmode=disable\
                           &keepalives_idle=30&tcp_user_timeout=7&load_balance_hosts=random"
            .parse()
            .unwrap();
        let each = one_per_host(&all);
        let expected: Vec<Config> = ["db1:5432", "db2:6543"]
            .iter()
            .map(|host| {
                format!(
                    "postgres://kc:pw@{host}/keyclerk?target_session_attrs=read-write\
                     &connect_timeout=4&application_name=kc&options=-c%20x%3Dy&sslmode=disable\
                     &keepalives_idle=30&tcp_user_timeout=7&load_balance_hosts=random"
                )
                .parse()
                .unwrap()
            })
            .collect();
        assert_eq!(each, expected);
    }

    #[test]
    fn one_port_serves_every_host() {
        let all: Config = "host=db1,db2 port=5433 user=kc dbname=keyclerk"
            .parse()
            .unwrap();
        let ports: Vec<_> = one_per_host(&all)
            .iter()
            .map(|c| c.get_ports().to_vec())
            .collect();
        assert_eq!(ports, [[5433], [5433]]);
    }

    #[test]
    fn a_single_host_url_is_its_own_turn() {
        let one: Config = "postgres://kc@db1/keyclerk".parse().unwrap();
        assert_eq!(one_per_host(&one), [one]);
    }
}
