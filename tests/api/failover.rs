//! Failover: two keyclerk instances on a PostgreSQL primary with a synchronous
//! standby. Clients mint, activate and deactivate; the primary goes, and the standby
//! is promoted. keyclerk serves again by itself, answering 503
//! `database_unavailable` meanwhile (never a 500, never slower than the engine's
//! deadline); every write it acknowledged is on the promoted server, no license
//! holds more seats than it has, and the audit chain verifies. The primary goes in
//! two ways: killed (SIGKILL of every one of its processes at once: its kernel
//! closes its connections), and hung (SIGSTOP of them all: its connections stay
//! open and silent, and new ones are accepted and never answered, as when a server
//! hangs or a machine or a network goes without a word).
//!
//! What makes "acknowledged" mean "on the standby" is synchronous replication:
//! with `synchronous_commit = on` and the standby named in
//! `synchronous_standby_names`, the primary answers a COMMIT only once the standby
//! has flushed the commit's WAL, and keyclerk answers 2xx only after its COMMIT
//! returned. The test checks that the standby is `sync` just before the primary goes. fsync
//! is off on both servers: the test kills processes, not the machine, so whatever a
//! server wrote outlives it in the page cache whether it was fsynced or not (fsync
//! decides what outlives a power cut, which no test here makes).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use keyclerk::config::EMBEDDED_CONFIG;

use crate::helpers::{into_resp, stderr, stdout, Dirs, Resp};
use crate::pg;
use crate::process::{admin_token, ServerProcess};

/// The standby's name, which the primary's `synchronous_standby_names` asks for.
const STANDBY_NAME: &str = "standby1";
/// The primary's `postgresql.conf` for one synchronous standby (README, "Failover").
const PRIMARY_CONF: &str = "\
wal_level = replica
max_wal_senders = 10
synchronous_commit = on
synchronous_standby_names = 'FIRST 1 (standby1)'
";
/// The standby's own line: promoted, it has no standby of its own, and with the
/// primary's `synchronous_standby_names` every commit would wait for one.
const STANDBY_CONF: &str = "synchronous_standby_names = ''\n";

const SEATS: u64 = 3;
const SEAT_LICENSES: usize = 4;
/// Two clients mint, four activate and deactivate; they alternate between the
/// two instances.
const MINTERS: usize = 2;
const ACTIVATORS: usize = 4;
/// Acknowledged writes before the primary goes, and after service resumes.
const WRITES_BEFORE: usize = 150;
const WRITES_AFTER: usize = 60;
/// The longest any request may take, during the failover too: the engine's
/// deadline is 10 s.
const BOUNDED: Duration = Duration::from_secs(15);
/// How soon after the promotion every instance must serve again.
const RECOVERY: Duration = Duration::from_secs(30);
/// How long the primary stays dead before the standby is promoted (an operator's,
/// or a tool's, reaction time): the clients meet the outage.
const DEAD_FOR: Duration = Duration::from_secs(1);

/// The shipped catalog plus a product of few seats and no churn limit.
fn config() -> String {
    format!(
        "{EMBEDDED_CONFIG}\n[products.failover-seats]\nname = \"Failover seats\"\n\
         price = {{ amount = 100, currency = \"EUR\" }}\nseats = {SEATS}\n\
         max_deactivations_per_30_days = 1000000\nkey_format = \"signed\"\n"
    )
}

/// A primary and its synchronous standby, in one directory of the test's own;
/// both stopped (and the directory removed) when dropped, whatever happened.
struct Replicated {
    dir: tempfile::TempDir,
    bin: PathBuf,
    primary_port: u16,
    standby_port: u16,
    /// The primary's processes once it was ended.
    primary_processes: Mutex<Vec<i32>>,
}

/// How the primary goes.
#[derive(Clone, Copy, Debug)]
enum Death {
    /// SIGKILL: its connections are closed by its machine's kernel, at once.
    Killed,
    /// SIGSTOP, for good: its connections stay open and go silent, and new ones
    /// are accepted (by its kernel) and never answered, as when a server hangs or
    /// its machine or network goes without a word.
    Hung,
}

impl Replicated {
    /// `initdb` of the primary, `pg_basebackup -R` of the standby, both started;
    /// returns once the standby streams synchronously.
    fn start() -> Self {
        let primary_port = pg::free_port();
        let standby_port = loop {
            let p = pg::free_port();
            if p != primary_port {
                break p;
            }
        };
        let pair = Self {
            dir: pg::cluster_dir(),
            bin: pg::server_bin(),
            primary_port,
            standby_port,
            primary_processes: Mutex::new(Vec::new()),
        };
        let primary = pair.data("primary");
        pair.run(
            "initdb",
            &[
                "-D",
                &primary,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        // initdb's pg_hba.conf lets 127.0.0.1 in for replication (trust).
        pair.append_conf("primary", PRIMARY_CONF);
        pair.pg_ctl_start("primary", primary_port);
        let standby = pair.data("standby");
        let port = primary_port.to_string();
        pair.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                &standby,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "-d",
                &format!("application_name={STANDBY_NAME}"),
            ],
        );
        pair.append_conf("standby", STANDBY_CONF);
        pair.pg_ctl_start("standby", standby_port);
        pair.wait_until_synchronous();
        pair
    }

    fn data(&self, which: &str) -> String {
        self.dir.path().join(which).display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        pg::run_server_program(&self.bin, program, args);
    }

    fn append_conf(&self, which: &str, lines: &str) {
        let path = self.dir.path().join(which).join("postgresql.conf");
        let mut conf = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        conf.write_all(format!("\n{lines}").as_bytes()).unwrap();
    }

    /// Starts a server on `port` of 127.0.0.1 and waits until it accepts connections.
    fn pg_ctl_start(&self, which: &str, port: u16) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
            self.dir.path().display()
        );
        let log = self
            .dir
            .path()
            .join(format!("{which}.log"))
            .display()
            .to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(which),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn url(port: u16, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{database}")
    }

    /// keyclerk's URL: both servers, the one that takes writes.
    fn multi_host_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
            self.primary_port, self.standby_port
        )
    }

    /// The primary's standbys: (name, state, sync_state).
    fn standbys(&self) -> Vec<Vec<Option<String>>> {
        pg::simple_query(
            &Self::url(self.primary_port, "postgres"),
            "SELECT application_name, state, sync_state FROM pg_stat_replication",
        )
        .unwrap()
    }

    fn wait_until_synchronous(&self) {
        let synchronous = vec![vec![
            Some(STANDBY_NAME.to_owned()),
            Some("streaming".to_owned()),
            Some("sync".to_owned()),
        ]];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let standbys = self.standbys();
            if standbys == synchronous {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby is not synchronous after 30 s: {standbys:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends the primary as `death` says, every one of its processes at once.
    fn end_primary(&self, death: Death) {
        let pid_file = self.dir.path().join("primary").join("postmaster.pid");
        let postmaster: i32 = std::fs::read_to_string(pid_file)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Stopped, the postmaster starts no process while its children are listed.
        signal(postmaster, rustix::process::Signal::STOP);
        let mut processes = children_of(postmaster);
        processes.push(postmaster);
        *self.primary_processes.lock().unwrap() = processes.clone();
        match death {
            Death::Killed => {
                for p in processes {
                    signal(p, rustix::process::Signal::KILL);
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while std::net::TcpStream::connect(("127.0.0.1", self.primary_port)).is_ok() {
                    assert!(Instant::now() < deadline, "the primary still listens");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Death::Hung => {
                for p in processes {
                    signal(p, rustix::process::Signal::STOP);
                }
            }
        }
    }

    fn promote(&self) {
        self.run("pg_ctl", &["-D", &self.data("standby"), "-w", "promote"]);
    }
}

impl Drop for Replicated {
    fn drop(&mut self) {
        // A hung primary's processes heed no signal but this one.
        for p in self.primary_processes.lock().unwrap().iter() {
            signal(*p, rustix::process::Signal::KILL);
        }
        pg::stop_immediately(&self.bin, &self.data("primary"));
        pg::stop_immediately(&self.bin, &self.data("standby"));
    }
}

/// Sends `signal` to process `pid`; one that has ended meanwhile is no error.
fn signal(pid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The processes whose parent is `parent` (from /proc).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid …": comm may hold spaces and parentheses.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let ppid: i32 = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// What the clients had acknowledged (2xx).
#[derive(Default)]
struct Acked {
    /// (order id, license id)
    mints: Vec<(String, String)>,
    /// (license id, activation id)
    activations: Vec<(String, String)>,
    /// (license id, activation id)
    deactivations: Vec<(String, String)>,
}

/// One answer: its status, when it was sent and how long it took.
struct Seen {
    status: u16,
    sent: Instant,
    took: Duration,
    /// Which client sent it.
    client: usize,
}

/// What the clients share.
#[derive(Default)]
struct Traffic {
    acked: Mutex<Acked>,
    /// Acknowledged writes.
    count: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Everything that must not happen: an answer other than 2xx, 409
    /// seat_limit_reached or 503 database_unavailable; no answer; a slow answer.
    problems: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Traffic {
    fn problem(&self, what: String) {
        self.problems.lock().unwrap().push(what);
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }
}

/// Stops the clients when the test ends, failing or not.
struct StopClients(Arc<Traffic>);

impl Drop for StopClients {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// A client of one instance.
struct Client {
    id: usize,
    base: String,
    admin: String,
    agent: ureq::Agent,
    traffic: Arc<Traffic>,
}

impl Client {
    /// One POST, bounded by the agent's timeout; the answer, or `None` (noted as a
    /// problem) when none came.
    fn post(&self, path: &str, token: bool, body: &Value) -> Option<Resp> {
        let sent = Instant::now();
        let mut r = self.agent.post(&format!("{}{path}", self.base));
        if token {
            r = r.set("Authorization", &format!("Bearer {}", self.admin));
        }
        let result = r.send_json(body.clone());
        let took = sent.elapsed();
        let resp = match result {
            Err(ureq::Error::Transport(e)) => {
                self.traffic
                    .problem(format!("POST {path}: no answer after {took:?}: {e}"));
                return None;
            }
            other => into_resp(other),
        };
        if took > BOUNDED {
            self.traffic
                .problem(format!("POST {path} took {took:?}: {}", resp.status));
        }
        if resp.status == 503 {
            let retry_after = resp
                .header("Retry-After")
                .is_some_and(|v| v.parse::<u64>().is_ok());
            if resp.code() != "database_unavailable"
                || resp.content_type != "application/problem+json"
                || !retry_after
            {
                self.traffic
                    .problem(format!("POST {path}: a 503 that is not database_unavailable with Retry-After: {resp:?}"));
            }
        }
        self.traffic.seen.lock().unwrap().push(Seen {
            status: resp.status,
            sent,
            took,
            client: self.id,
        });
        Some(resp)
    }

    /// The request again while the database is unavailable (as a client that
    /// honours Retry-After would, only sooner); the first other answer, or `None`
    /// when there was none or the test stops.
    fn until_answered(&self, path: &str, token: bool, body: &Value) -> Option<Resp> {
        loop {
            let resp = self.post(path, token, body)?;
            if resp.status != 503 {
                return Some(resp);
            }
            if self.traffic.stop.load(Ordering::SeqCst) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn unexpected(&self, what: &str, resp: &Resp) {
        self.traffic.problem(format!(
            "client {}: {what}: {} {}",
            self.id, resp.status, resp.body
        ));
    }

    /// Mints licenses of new order ids until the test stops.
    fn mint(&self) {
        for i in 0.. {
            if self.traffic.stop.load(Ordering::SeqCst) {
                return;
            }
            let order = format!("fo-{}-{i}", self.id);
            let body = json!({"product": "photo-basic", "order_id": order});
            let Some(resp) = self.until_answered("/v1/licenses", true, &body) else {
                return;
            };
            if !matches!(resp.status, 200 | 201) {
                return self.unexpected("mint", &resp);
            }
            let id = resp.body["license"]["id"].as_str().unwrap().to_owned();
            self.traffic.acked.lock().unwrap().mints.push((order, id));
            self.traffic.count.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Activates new fingerprints on the seat licenses until the test stops; frees
    /// a seat of its own when a license is full, and half of its activations at once.
    fn activate(&self, licenses: &[(String, String)], seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        // Live activations of this client: (license index, activation id).
        let mut live: Vec<(usize, String)> = Vec::new();
        for i in 0.. {
            if self.traffic.stop.load(Ordering::SeqCst) {
                return;
            }
            let l = rng.gen_range(0..licenses.len());
            let (license, key) = &licenses[l];
            let body = json!({"license_key": key, "fingerprint": format!("fp-{}-{i}", self.id)});
            let Some(resp) = self.until_answered("/v1/activations", false, &body) else {
                return;
            };
            let free = match resp.status {
                200 | 201 => {
                    let act = resp.body["activation"]["id"].as_str().unwrap().to_owned();
                    let mut acked = self.traffic.acked.lock().unwrap();
                    acked.activations.push((license.clone(), act.clone()));
                    drop(acked);
                    self.traffic.count.fetch_add(1, Ordering::SeqCst);
                    live.push((l, act));
                    rng.gen_bool(0.5).then(|| live.len() - 1)
                }
                409 if resp.code() == "seat_limit_reached" => {
                    live.iter().position(|(x, _)| *x == l)
                }
                _ => return self.unexpected("activation", &resp),
            };
            let Some(at) = free else {
                continue;
            };
            let (l, act) = live.swap_remove(at);
            let body = json!({"license_key": licenses[l].1});
            let path = format!("/v1/activations/{act}/deactivate");
            let Some(resp) = self.until_answered(&path, false, &body) else {
                return;
            };
            if resp.status != 200 {
                return self.unexpected("deactivation", &resp);
            }
            let mut acked = self.traffic.acked.lock().unwrap();
            acked.deactivations.push((licenses[l].0.clone(), act));
            drop(acked);
            self.traffic.count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Waits until `count` acknowledged writes, at most `within`; a client that ended
/// before that ended on a problem.
fn wait_for_writes(
    traffic: &Traffic,
    count: usize,
    within: Duration,
    clients: &[std::thread::JoinHandle<()>],
) {
    let deadline = Instant::now() + within;
    while traffic.count.load(Ordering::SeqCst) < count {
        assert!(
            clients.iter().all(|c| !c.is_finished()),
            "a client ended: {:?}",
            traffic.problems()
        );
        assert!(
            Instant::now() < deadline,
            "{} acknowledged writes after {within:?}, waiting for {count}: {:?}",
            traffic.count.load(Ordering::SeqCst),
            traffic.problems()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_killed_primary_and_a_promoted_synchronous_standby_lose_no_acknowledged_write() {
    failover(Death::Killed);
}

#[test]
fn a_hung_primary_and_a_promoted_synchronous_standby_lose_no_acknowledged_write() {
    failover(Death::Hung);
}

/// Traffic, the primary's end, the promotion, and the checks.
fn failover(death: Death) {
    let pair = Replicated::start();
    pg::execute_on(
        &Replicated::url(pair.primary_port, "postgres"),
        &["CREATE DATABASE keyclerk".to_owned()],
    )
    .unwrap();
    let url = pair.multi_host_url("keyclerk");
    let dirs = Dirs::new();
    std::fs::write(dirs.root.path().join("config.toml"), config()).unwrap();
    // Hundreds of activations of a few keys a second: far past the per-key limits.
    let env = [
        ("KEYCLERK_DATABASE__URL", url.as_str()),
        ("KEYCLERK_RATE_LIMITS__ENABLED", "false"),
    ];
    let servers = [
        ServerProcess::spawn(&dirs, &env),
        ServerProcess::spawn(&dirs, &env),
    ];
    let admin = admin_token(&dirs);
    let traffic = Arc::new(Traffic::default());
    let _stop = StopClients(Arc::clone(&traffic));
    let agent = ureq::AgentBuilder::new()
        .timeout(BOUNDED + Duration::from_secs(5))
        .build();
    let client = |id: usize| Client {
        id,
        base: servers[id % 2].url(),
        admin: admin.clone(),
        agent: agent.clone(),
        traffic: Arc::clone(&traffic),
    };
    let licenses: Vec<(String, String)> = (0..SEAT_LICENSES)
        .map(|i| {
            let body = json!({"product": "failover-seats", "order_id": format!("fo-seats-{i}")});
            let minted = client(i)
                .post("/v1/licenses", true, &body)
                .unwrap()
                .expect(201);
            (
                minted["license"]["id"].as_str().unwrap().to_owned(),
                minted["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let licenses = Arc::new(licenses);
    let clients: Vec<_> = (0..MINTERS + ACTIVATORS)
        .map(|id| {
            let (client, licenses) = (client(id), Arc::clone(&licenses));
            let seed = rand::random();
            std::thread::spawn(move || {
                if id < MINTERS {
                    client.mint();
                } else {
                    client.activate(&licenses, seed);
                }
            })
        })
        .collect();

    wait_for_writes(&traffic, WRITES_BEFORE, Duration::from_secs(60), &clients);
    assert_eq!(
        pg::simple_query(
            &Replicated::url(pair.primary_port, "keyclerk"),
            "SHOW synchronous_commit"
        )
        .unwrap(),
        [[Some("on".to_owned())]]
    );
    assert_eq!(
        pair.standbys(),
        [[
            Some(STANDBY_NAME.to_owned()),
            Some("streaming".to_owned()),
            Some("sync".to_owned())
        ]],
        "the standby is synchronous when the primary dies"
    );
    let ended = Instant::now();
    pair.end_primary(death);
    let written_before_end = traffic.count.load(Ordering::SeqCst);
    std::thread::sleep(DEAD_FOR);
    pair.promote();
    let promoted = Instant::now();

    // Each instance serves a write again, without a restart.
    let served_after: Vec<Duration> = std::thread::scope(|scope| {
        let probes: Vec<_> = (0..servers.len())
            .map(|i| {
                let probe = client(i);
                scope.spawn(move || {
                    let body =
                        json!({"product": "photo-basic", "order_id": format!("fo-probe-{i}")});
                    loop {
                        let resp = probe.post("/v1/licenses", true, &body).unwrap_or_else(|| {
                            panic!("instance {i}: {:?}", probe.traffic.problems())
                        });
                        if resp.status != 503 {
                            // 200: an earlier attempt that answered 503 had committed.
                            assert!(
                                matches!(resp.status, 200 | 201),
                                "instance {i} after the promotion: {resp:?}"
                            );
                            return promoted.elapsed();
                        }
                        assert!(
                            promoted.elapsed() < RECOVERY,
                            "instance {i} still answers 503 {RECOVERY:?} after the promotion"
                        );
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
            })
            .collect();
        probes.into_iter().map(|p| p.join().unwrap()).collect()
    });
    eprintln!(
        "failover ({death:?}): standby promoted {:?} after the primary's end; the \
         instances served a mint again {served_after:?} after the promotion",
        promoted - ended
    );
    for (i, took) in served_after.iter().enumerate() {
        assert!(
            *took < RECOVERY,
            "instance {i} served again only {took:?} after the promotion"
        );
    }
    let written_after_recovery = traffic.count.load(Ordering::SeqCst);
    wait_for_writes(
        &traffic,
        written_after_recovery + WRITES_AFTER,
        Duration::from_secs(30),
        &clients,
    );
    // Every client, too, is served again before the traffic stops: one may still be
    // waiting out the request deadline on a connection to the hung server when the
    // others have made the writes above (a slow machine), which is no failure.
    let every_client_served = || {
        let seen = traffic.seen.lock().unwrap();
        (0..MINTERS + ACTIVATORS).all(|id| {
            seen.iter()
                .any(|s| s.client == id && s.sent > promoted && matches!(s.status, 200 | 201))
        })
    };
    let deadline = Instant::now() + RECOVERY;
    while !every_client_served() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    traffic.stop.store(true, Ordering::SeqCst);
    for c in clients {
        if let Err(panic) = c.join() {
            std::panic::resume_unwind(panic);
        }
    }

    let problems = traffic.problems();
    assert!(problems.is_empty(), "{problems:#?}");
    let seen = traffic.seen.lock().unwrap();
    let unavailable = seen.iter().filter(|s| s.status == 503).count();
    assert!(unavailable > 0, "the clients met the outage");
    for id in 0..MINTERS + ACTIVATORS {
        assert!(
            seen.iter()
                .any(|s| s.client == id && s.sent > promoted && matches!(s.status, 200 | 201)),
            "client {id} was served after the promotion"
        );
    }
    let slowest = seen.iter().map(|s| s.took).max().unwrap();
    eprintln!(
        "failover ({death:?}): {} answers, {unavailable} of them 503, the slowest {slowest:?}; {} \
         writes acknowledged before the primary's end, {} in all",
        seen.len(),
        written_before_end,
        traffic.count.load(Ordering::SeqCst)
    );

    // On the promoted server itself: every acknowledged write.
    let promoted_url = Replicated::url(pair.standby_port, "keyclerk");
    assert_eq!(
        pg::simple_query(&promoted_url, "SELECT pg_is_in_recovery()").unwrap(),
        [[Some("f".to_owned())]]
    );
    let licenses_there: std::collections::HashMap<String, String> =
        pg::simple_query(&promoted_url, "SELECT order_id, id FROM licenses")
            .unwrap()
            .into_iter()
            .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
            .collect();
    let activations_there: std::collections::HashMap<String, (String, bool)> = pg::simple_query(
        &promoted_url,
        "SELECT id, license_id, deactivated_at IS NOT NULL FROM activations",
    )
    .unwrap()
    .into_iter()
    .map(|row| {
        (
            row[0].clone().unwrap(),
            (row[1].clone().unwrap(), row[2].as_deref() == Some("t")),
        )
    })
    .collect();
    let acked = traffic.acked.lock().unwrap();
    for (order, id) in &acked.mints {
        assert_eq!(
            licenses_there.get(order),
            Some(id),
            "the acknowledged mint of {order} is not on the promoted server"
        );
    }
    for (license, act) in &acked.activations {
        assert_eq!(
            activations_there.get(act).map(|(l, _)| l),
            Some(license),
            "the acknowledged activation {act} is not on the promoted server"
        );
    }
    for (_, act) in &acked.deactivations {
        assert_eq!(
            activations_there.get(act).map(|(_, gone)| *gone),
            Some(true),
            "the acknowledged deactivation of {act} is not on the promoted server"
        );
    }
    // And as keyclerk tells it: no license holds more seats than it has.
    for (license, _) in licenses.iter() {
        let machines = into_resp(
            agent
                .get(&format!(
                    "{}/v1/licenses/{license}/activations",
                    servers[1].url()
                ))
                .set("Authorization", &format!("Bearer {admin}"))
                .call(),
        )
        .expect(200);
        let live = machines["activations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["deactivated_at"].is_null())
            .count() as u64;
        assert!(live <= SEATS, "{license} holds {live} seats of {SEATS}");
        assert_eq!(machines["seats_in_use"], live, "{license}");
    }
    drop(acked);

    for server in servers {
        drop(server.stop());
    }
    let verified = Command::new(env!("CARGO_BIN_EXE_keyclerk"))
        .args(["audit", "verify"])
        .current_dir(dirs.root.path())
        .env("KEYCLERK_DATA_DIR", dirs.data())
        .env("KEYCLERK_KEYS_DIR", dirs.keys())
        .env("KEYCLERK_DATABASE__URL", &url)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        stdout(&verified).contains("intact"),
        "{}",
        stdout(&verified)
    );
}

/// A first host that takes connections and never answers (a hung server) gives way
/// to the next one: each host of the URL has a bounded turn, start-up and login
/// included, not the TCP connect alone.
#[test]
fn a_first_host_that_accepts_and_never_answers_gives_way_to_the_next() {
    let db = pg::Database::create();
    // Its kernel completes the handshakes (into the backlog); nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let url = db
        .url
        .replacen('@', &format!("@127.0.0.1:{silent_port},"), 1);
    let opened = keyclerk::storage::postgres::PostgresStore::open(&url)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(keyclerk::storage::Storage::ready(&opened))
        .unwrap();
    drop(silent);
}
