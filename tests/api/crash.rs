//! Crash safety: SIGKILL at random moments, ten times, under concurrent mints,
//! activations and deactivations on seat-limited licenses, activations on a license
//! with a seat for each of them, and grace extensions. The first kill comes after a
//! few hundred acknowledged writes. After each kill the database is intact and the
//! server restarts on the same files; at the end every acknowledged write is there,
//! no license holds more seats than it has and the audit chain verifies.
//!
//! On PostgreSQL two instances serve one database and each round kills one of them.
//!
//! Every random choice (which license, whether to deactivate, when to kill) comes
//! from one seed, printed at the start; `KC_CRASH_SEED=<seed>` repeats those choices.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use keyclerk::config::EMBEDDED_CONFIG;

use crate::helpers::{stderr, Dirs};
use crate::process::{admin_token, agent, ServerProcess};

const ROUNDS: usize = 10;
const SEAT_LICENSES: usize = 4;
const SEATS: u64 = 2;
/// Seats of the license every activation fits on.
const MANY_SEATS: u64 = 100_000;
/// Acknowledged writes (2xx) before the first kill, and before each later one.
const FIRST_KILL_AFTER: usize = 400;
const KILL_AFTER: usize = 20;
/// Clients per round, two of each kind of write.
const CLIENTS: usize = 8;

/// The shipped catalog plus a product for churn: two seats, no churn limit.
fn config() -> String {
    format!(
        "{EMBEDDED_CONFIG}\n[products.crash-seats]\nname = \"Crash seats\"\n\
         price = {{ amount = 100, currency = \"EUR\" }}\nseats = {SEATS}\n\
         max_deactivations_per_30_days = 1000000\nkey_format = \"signed\"\n"
    )
}

/// The seed of this run: `KC_CRASH_SEED`, or a new one.
fn seed() -> u64 {
    let seed = match std::env::var("KC_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("KC_CRASH_SEED={s} is not a u64")),
        Err(_) => rand::random(),
    };
    eprintln!("crash test seed {seed}: KC_CRASH_SEED={seed} repeats its random choices");
    seed
}

#[derive(Default)]
struct Acked {
    orders: Vec<String>,
    activations: Vec<(String, String)>,
    deactivations: Vec<(String, String)>,
    /// Activations of the license with a seat for each.
    many: Vec<String>,
    /// (license id, idempotency key, decision id)
    decisions: Vec<(String, String, String)>,
}

/// An HTTP client that knows whether the server was killed: only then may a request
/// go unanswered.
#[derive(Clone)]
struct Client {
    agent: ureq::Agent,
    killed: Arc<AtomicBool>,
}

impl Client {
    fn new(killed: &Arc<AtomicBool>) -> Self {
        Self {
            agent: agent(),
            killed: Arc::clone(killed),
        }
    }

    /// The status and body, or `None` when the server was killed under the request
    /// (not acknowledged). No answer while the server is up fails the test.
    fn post(
        &self,
        url: &str,
        token: Option<&str>,
        body: Value,
        idem: Option<&str>,
    ) -> Option<(u16, Value)> {
        let mut r = self.agent.post(url);
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        if let Some(k) = idem {
            r = r.set("Idempotency-Key", k);
        }
        let (status, body) = match r.send_json(body) {
            Ok(res) => (res.status(), res.into_json::<Value>()),
            Err(ureq::Error::Status(code, res)) => (code, res.into_json()),
            Err(ureq::Error::Transport(e)) => {
                assert!(
                    self.killed.load(Ordering::SeqCst),
                    "POST {url}: no answer while the server was up: {e}"
                );
                return None;
            }
        };
        match body {
            Ok(body) => Some((status, body)),
            Err(e) => {
                assert!(
                    self.killed.load(Ordering::SeqCst),
                    "POST {url}: {status} with a body that is not JSON while the server was up: {e}"
                );
                None
            }
        }
    }

    fn get(&self, url: &str, token: &str) -> Value {
        self.agent
            .get(url)
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }
}

/// Waits for a client thread; its panic becomes the test's.
fn join(client: JoinHandle<()>) {
    if let Err(panic) = client.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn ten_random_sigkills_under_load_lose_no_acknowledged_write() {
    crash_test(None);
}

/// The same on PostgreSQL with two instances on one database: each round kills one
/// of them (at random), while the other goes on serving its clients.
#[test]
fn ten_random_sigkills_of_one_of_two_instances_on_postgres_lose_no_acknowledged_write() {
    let db = crate::pg::Database::create();
    crash_test(Some(&db.url));
}

/// `keyclerk audit verify` on the test's database.
fn audit_verify(dirs: &Dirs, database_url: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyclerk"));
    cmd.args(["audit", "verify"])
        .current_dir(dirs.root.path())
        .env("KEYCLERK_DATA_DIR", dirs.data())
        .env("KEYCLERK_KEYS_DIR", dirs.keys());
    if let Some(url) = database_url {
        cmd.env("KEYCLERK_DATABASE__URL", url);
    }
    cmd.output().unwrap()
}

/// The crash test on SQLite (one instance), or on the PostgreSQL database of
/// `database_url` (two instances).
fn crash_test(database_url: Option<&str>) {
    let mut rng = StdRng::seed_from_u64(seed());
    let dirs = Dirs::new();
    std::fs::write(dirs.root.path().join("config.toml"), config()).unwrap();
    // Hundreds of activations of one key a second: far past the per-key limit.
    let mut env = vec![("KEYCLERK_RATE_LIMITS__ENABLED", "false")];
    if let Some(url) = database_url {
        env.push(("KEYCLERK_DATABASE__URL", url));
    }
    let instances = if database_url.is_some() { 2 } else { 1 };
    let server = ServerProcess::spawn(&dirs, &env);
    let admin = admin_token(&dirs);
    let up = Client::new(&Arc::new(AtomicBool::new(false)));
    let mint = |body: Value| {
        let (status, m) = up
            .post(
                &format!("{}/v1/licenses", server.url()),
                Some(&admin),
                body,
                None,
            )
            .unwrap();
        assert_eq!(status, 201, "{m}");
        (
            m["license"]["id"].as_str().unwrap().to_owned(),
            m["key"].as_str().unwrap().to_owned(),
        )
    };
    let seat_licenses: Vec<_> = (0..SEAT_LICENSES)
        .map(|i| mint(json!({"product": "crash-seats", "order_id": format!("crash-seats-{i}")})))
        .collect();
    let many_seats = mint(
        json!({"product": "studio-suite", "order_id": "crash-many-seats", "seats": MANY_SEATS}),
    );
    let late: Vec<_> = (0..8)
        .map(|i| {
            mint(
                json!({"product": "photo-pro", "order_id": format!("crash-late-{i}"),
                        "purchased_at": "2025-06-01T00:00:00Z"}),
            )
            .0
        })
        .collect();
    server.kill();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let (seat_licenses, many_seats, late) = (
        Arc::new(seat_licenses),
        Arc::new(many_seats),
        Arc::new(late),
    );
    let mut writes_before_kill = Vec::new();
    for round in 0..ROUNDS {
        let servers: Vec<_> = (0..instances)
            .map(|_| ServerProcess::spawn(&dirs, &env))
            .collect();
        let killed: Vec<_> = servers
            .iter()
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let mut clients: Vec<_> = (0..CLIENTS)
            .map(|t| {
                // Client t talks to instance t / 4 % instances: each kind of write
                // goes to every instance.
                let to = t / 4 % instances;
                let (client, url, admin) = (Client::new(&killed[to]), servers[to].url(), admin.clone());
                let (acked, stop, count) = (Arc::clone(&acked), Arc::clone(&stop), Arc::clone(&count));
                let (seats, many, late) = (Arc::clone(&seat_licenses), Arc::clone(&many_seats), Arc::clone(&late));
                let mut rng = StdRng::seed_from_u64(rng.gen());
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let tag = format!("{round}-{t}-{i}");
                        let done = match t % 4 {
                            0 => client.post(&format!("{url}/v1/licenses"), Some(&admin),
                                json!({"product": "photo-basic", "order_id": format!("crash-{tag}")}), None)
                                .map(|(status, body)| {
                                    assert!(status == 201, "mint: {status} {body}");
                                    acked.lock().unwrap().orders.push(format!("crash-{tag}"));
                                    1
                                }),
                            1 => {
                                let (lic, key) = &seats[rng.gen_range(0..seats.len())];
                                client.post(&format!("{url}/v1/activations"), None,
                                    json!({"license_key": key, "fingerprint": format!("fp-{tag}")}), None)
                                    .and_then(|(status, body)| {
                                        if status == 409 {
                                            assert_eq!(body["code"], "seat_limit_reached");
                                            return Some(0);
                                        }
                                        assert_eq!(status, 201, "activate: {body}");
                                        let act = body["activation"]["id"].as_str().unwrap().to_owned();
                                        acked.lock().unwrap().activations.push((lic.clone(), act.clone()));
                                        if rng.gen_bool(0.7) {
                                            let (status, body) = client.post(&format!("{url}/v1/activations/{act}/deactivate"), None,
                                                json!({"license_key": key}), None)?;
                                            assert_eq!(status, 200, "deactivate: {body}");
                                            acked.lock().unwrap().deactivations.push((lic.clone(), act));
                                            return Some(2);
                                        }
                                        Some(1)
                                    })
                            }
                            2 => {
                                let (_, key) = &*many;
                                client.post(&format!("{url}/v1/activations"), None,
                                    json!({"license_key": key, "fingerprint": format!("fp-many-{tag}")}), None)
                                    .map(|(status, body)| {
                                        assert_eq!(status, 201, "activate on many seats: {body}");
                                        let act = body["activation"]["id"].as_str().unwrap().to_owned();
                                        acked.lock().unwrap().many.push(act);
                                        1
                                    })
                            }
                            _ => {
                                let lic = &late[rng.gen_range(0..late.len())];
                                let idem = format!("crash-{tag}");
                                client.post(&format!("{url}/v1/licenses/{lic}/grace-extension"), Some(&admin),
                                    json!({"remedy": "extend", "reason": "crash test", "days": 30}), Some(&idem))
                                    .map(|(status, body)| {
                                        assert_eq!(status, 201, "grace: {body}");
                                        let d = body["decision"]["id"].as_str().unwrap().to_owned();
                                        acked.lock().unwrap().decisions.push((lic.clone(), idem, d));
                                        1
                                    })
                            }
                        };
                        let Some(writes) = done else {
                            return;
                        };
                        count.fetch_add(writes, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // A random moment: after some acknowledged writes, at a random time. Before
        // the kill a client only ends by failing.
        let kill_after = if round == 0 {
            FIRST_KILL_AFTER
        } else {
            KILL_AFTER
        };
        let pause = Duration::from_millis(rng.gen_range(0..400));
        while count.load(Ordering::SeqCst) < kill_after {
            if let Some(i) = clients.iter().position(|c| c.is_finished()) {
                join(clients.swap_remove(i));
                panic!("a client stopped before the kill");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(pause);
        writes_before_kill.push(count.load(Ordering::SeqCst));
        // One instance dies; the clients of another must still get every answer.
        let victim = rng.gen_range(0..instances);
        killed[victim].store(true, Ordering::SeqCst);
        let mut servers = servers;
        servers.swap_remove(victim).kill();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            join(c);
        }
        for survivor in servers {
            survivor.kill();
        }
        if database_url.is_none() {
            let db = rusqlite::Connection::open(dirs.data().join("keyclerk.db")).unwrap();
            let integrity: String = db
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(integrity, "ok", "after kill {round}");
        }
    }

    let server = ServerProcess::spawn(&dirs, &env);
    let url = server.url();
    let acked = acked.lock().unwrap();
    assert!(
        acked.orders.len() >= ROUNDS
            && acked.activations.len() >= ROUNDS
            && acked.many.len() >= ROUNDS
            && acked.decisions.len() >= ROUNDS,
        "too little traffic: {writes_before_kill:?}"
    );
    for order in &acked.orders {
        let found = up.get(&format!("{url}/v1/licenses?order_id={order}"), &admin);
        assert_eq!(
            found["items"].as_array().unwrap().len(),
            1,
            "order {order} lost"
        );
    }
    for (lic, _) in seat_licenses.iter() {
        let m = up.get(&format!("{url}/v1/licenses/{lic}/activations"), &admin);
        let live = m["activations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["deactivated_at"].is_null())
            .count() as u64;
        assert!(live <= SEATS, "{lic} holds {live} seats of {SEATS}");
        assert_eq!(m["seats_in_use"], live);
        let ids: Vec<&str> = m["activations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap())
            .collect();
        for (l, act) in acked.activations.iter().filter(|(l, _)| l == lic) {
            assert!(ids.contains(&act.as_str()), "activation {act} of {l} lost");
        }
        for (_, act) in acked.deactivations.iter().filter(|(l, _)| l == lic) {
            let row = m["activations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == act.as_str())
                .unwrap();
            assert!(
                !row["deactivated_at"].is_null(),
                "deactivation of {act} lost"
            );
        }
    }
    let (many_id, _) = &*many_seats;
    let m = up.get(&format!("{url}/v1/licenses/{many_id}/activations"), &admin);
    let ids: Vec<&str> = m["activations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    for act in &acked.many {
        assert!(
            ids.contains(&act.as_str()),
            "activation {act} of {many_id} lost"
        );
    }
    for (lic, idem, decision) in &acked.decisions {
        // The same Idempotency-Key again: the decision that was acknowledged, replayed.
        let (status, body) = up
            .post(
                &format!("{url}/v1/licenses/{lic}/grace-extension"),
                Some(&admin),
                json!({"remedy": "extend", "reason": "crash test", "days": 30}),
                Some(idem),
            )
            .unwrap();
        assert_eq!(status, 200, "decision {decision} lost: {body}");
        assert_eq!(body["decision"]["id"], decision.as_str());
    }
    drop(server.stop());
    let out = audit_verify(&dirs, database_url);
    assert!(out.status.success(), "{}", stderr(&out));
}
