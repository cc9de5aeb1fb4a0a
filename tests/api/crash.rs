//! Crash safety: SIGKILL at random moments, ten times, under concurrent mints,
//! activations and deactivations on seat-limited licenses, and grace extensions.
//! After each kill the server restarts on the same files; at the end every
//! acknowledged write is there, no license holds more seats than it has, the
//! database is intact and the audit chain verifies.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use keyclerk::config::EMBEDDED_CONFIG;

use crate::helpers::{cli_in, stderr, Dirs};
use crate::process::{admin_token, agent, ServerProcess};

const ROUNDS: usize = 10;
const SEAT_LICENSES: usize = 4;
const SEATS: u64 = 2;

/// The shipped catalog plus a product for churn: two seats, no churn limit.
fn config() -> String {
    format!(
        "{EMBEDDED_CONFIG}\n[products.crash-seats]\nname = \"Crash seats\"\n\
         price = {{ amount = 100, currency = \"EUR\" }}\nseats = {SEATS}\n\
         max_deactivations_per_30_days = 1000000\nkey_format = \"signed\"\n"
    )
}

#[derive(Default)]
struct Acked {
    orders: Vec<String>,
    activations: Vec<(String, String)>,
    deactivations: Vec<(String, String)>,
    /// (license id, idempotency key, decision id)
    decisions: Vec<(String, String, String)>,
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: Value,
    idem: Option<&str>,
) -> Option<(u16, Value)> {
    let mut r = agent.post(url);
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(k) = idem {
        r = r.set("Idempotency-Key", k);
    }
    match r.send_json(body) {
        Ok(res) => Some((res.status(), res.into_json().ok()?)),
        Err(ureq::Error::Status(code, res)) => Some((code, res.into_json().ok()?)),
        // The server died under us: not acknowledged.
        Err(ureq::Error::Transport(_)) => None,
    }
}

fn get(agent: &ureq::Agent, url: &str, token: &str) -> Value {
    agent
        .get(url)
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

#[test]
fn ten_random_sigkills_under_load_lose_no_acknowledged_write() {
    let dirs = Dirs::new();
    std::fs::write(dirs.root.path().join("config.toml"), config()).unwrap();
    let env = [("KEYCLERK_RATE_LIMITS__ENABLED", "false")];
    let server = ServerProcess::spawn(&dirs, &env);
    let admin = admin_token(&dirs);
    let a = agent();
    let mut seat_licenses = Vec::new();
    for i in 0..SEAT_LICENSES {
        let (status, m) = post(
            &a,
            &format!("{}/v1/licenses", server.url()),
            Some(&admin),
            json!({"product": "crash-seats", "order_id": format!("crash-seats-{i}")}),
            None,
        )
        .unwrap();
        assert_eq!(status, 201, "{m}");
        seat_licenses.push((
            m["license"]["id"].as_str().unwrap().to_owned(),
            m["key"].as_str().unwrap().to_owned(),
        ));
    }
    let mut late = Vec::new();
    for i in 0..8 {
        let (status, m) = post(&a, &format!("{}/v1/licenses", server.url()), Some(&admin),
            json!({"product": "photo-pro", "order_id": format!("crash-late-{i}"), "purchased_at": "2025-06-01T00:00:00Z"}), None).unwrap();
        assert_eq!(status, 201, "{m}");
        late.push(m["license"]["id"].as_str().unwrap().to_owned());
    }
    server.kill();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let (seat_licenses, late) = (Arc::new(seat_licenses), Arc::new(late));
    let mut rng = rand::thread_rng();
    let mut writes_before_kill = Vec::new();
    for round in 0..ROUNDS {
        let server = ServerProcess::spawn(&dirs, &env);
        let url = server.url();
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..6)
            .map(|t| {
                let (url, admin, acked, stop, count) = (url.clone(), admin.clone(), Arc::clone(&acked), Arc::clone(&stop), Arc::clone(&count));
                let (seats, late) = (Arc::clone(&seat_licenses), Arc::clone(&late));
                std::thread::spawn(move || {
                    let a = agent();
                    let mut rng = rand::thread_rng();
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let tag = format!("{round}-{t}-{i}");
                        let done = match t % 3 {
                            0 => post(&a, &format!("{url}/v1/licenses"), Some(&admin),
                                json!({"product": "photo-basic", "order_id": format!("crash-{tag}")}), None)
                                .map(|(status, body)| {
                                    assert!(status == 201, "mint: {status} {body}");
                                    acked.lock().unwrap().orders.push(format!("crash-{tag}"));
                                }),
                            1 => {
                                let (lic, key) = &seats[rng.gen_range(0..seats.len())];
                                post(&a, &format!("{url}/v1/activations"), None,
                                    json!({"license_key": key, "fingerprint": format!("fp-{tag}")}), None)
                                    .and_then(|(status, body)| {
                                        if status == 409 {
                                            assert_eq!(body["code"], "seat_limit_reached");
                                            return Some(());
                                        }
                                        assert_eq!(status, 201, "activate: {body}");
                                        let act = body["activation"]["id"].as_str().unwrap().to_owned();
                                        acked.lock().unwrap().activations.push((lic.clone(), act.clone()));
                                        if rng.gen_bool(0.7) {
                                            let (status, body) = post(&a, &format!("{url}/v1/activations/{act}/deactivate"), None,
                                                json!({"license_key": key}), None)?;
                                            assert_eq!(status, 200, "deactivate: {body}");
                                            acked.lock().unwrap().deactivations.push((lic.clone(), act));
                                        }
                                        Some(())
                                    })
                            }
                            _ => {
                                let lic = &late[rng.gen_range(0..late.len())];
                                let idem = format!("crash-{tag}");
                                post(&a, &format!("{url}/v1/licenses/{lic}/grace-extension"), Some(&admin),
                                    json!({"remedy": "extend", "reason": "crash test", "days": 30}), Some(&idem))
                                    .map(|(status, body)| {
                                        assert_eq!(status, 201, "grace: {body}");
                                        let d = body["decision"]["id"].as_str().unwrap().to_owned();
                                        acked.lock().unwrap().decisions.push((lic.clone(), idem, d));
                                    })
                            }
                        };
                        if done.is_none() {
                            return;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // A random moment: after some writes, at a random time.
        while count.load(Ordering::SeqCst) < 20 {
            assert!(
                !clients.iter().all(|c| c.is_finished()),
                "every client stopped"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
        writes_before_kill.push(count.load(Ordering::SeqCst));
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        let db = rusqlite::Connection::open(dirs.data().join("keyclerk.db")).unwrap();
        let integrity: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "after kill {round}");
    }

    let server = ServerProcess::spawn(&dirs, &env);
    let url = server.url();
    let acked = acked.lock().unwrap();
    assert!(
        acked.orders.len() >= ROUNDS
            && acked.activations.len() >= ROUNDS
            && acked.decisions.len() >= ROUNDS,
        "too little traffic: {writes_before_kill:?}"
    );
    for order in &acked.orders {
        let found = get(&a, &format!("{url}/v1/licenses?order_id={order}"), &admin);
        assert_eq!(
            found["items"].as_array().unwrap().len(),
            1,
            "order {order} lost"
        );
    }
    for (lic, _) in seat_licenses.iter() {
        let m = get(&a, &format!("{url}/v1/licenses/{lic}/activations"), &admin);
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
    for (lic, idem, decision) in &acked.decisions {
        // The same Idempotency-Key again: the decision that was acknowledged, replayed.
        let (status, body) = post(
            &a,
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
    let out = cli_in(&dirs, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
