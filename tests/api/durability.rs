//! Durability: the server process is killed (SIGKILL) while clients write; after a
//! restart every write that was answered with a 2xx is there, the database is intact
//! and the audit chain verifies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{stdout, Dirs, TestServer};
use crate::process::{admin_token, agent, ServerProcess};

#[test]
fn every_acknowledged_write_survives_a_sigkill() {
    let dirs = Dirs::new();
    // Hundreds of activations of one key a second: far past the per-key limit.
    let server = ServerProcess::spawn(&dirs, &[("KEYCLERK_RATE_LIMITS__ENABLED", "false")]);
    let url = server.url();
    let admin = admin_token(&dirs);
    let agent = agent();
    let seat_license: serde_json::Value = agent
        .post(&format!("{url}/v1/licenses"))
        .set("Authorization", &format!("Bearer {admin}"))
        .send_json(json!({"product": "studio-suite", "order_id": "dur-seats", "seats": 100000}))
        .unwrap()
        .into_json()
        .unwrap();
    let seat_key = seat_license["key"].as_str().unwrap().to_owned();
    let seat_id = seat_license["license"]["id"].as_str().unwrap().to_owned();

    let acked_orders = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_activations = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|t| {
            let (agent, url, admin, key) =
                (agent.clone(), url.clone(), admin.clone(), seat_key.clone());
            let (orders, acts, count) = (
                Arc::clone(&acked_orders),
                Arc::clone(&acked_activations),
                Arc::clone(&count),
            );
            std::thread::spawn(move || {
                for i in 0.. {
                    let ok = if t % 2 == 0 {
                        let order = format!("dur-{t}-{i}");
                        let r = agent
                            .post(&format!("{url}/v1/licenses"))
                            .set("Authorization", &format!("Bearer {admin}"))
                            .send_json(json!({"product": "photo-pro", "order_id": order}));
                        r.map(|_| orders.lock().unwrap().push(order)).is_ok()
                    } else {
                        let r = agent.post(&format!("{url}/v1/activations")).send_json(
                            json!({"license_key": key, "fingerprint": format!("fp-{t}-{i}")}),
                        );
                        match r {
                            Ok(res) => {
                                let body: serde_json::Value = res.into_json().unwrap();
                                let id = body["activation"]["id"].as_str().unwrap().to_owned();
                                acts.lock().unwrap().push(id);
                                true
                            }
                            Err(_) => false,
                        }
                    };
                    if !ok {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Kill once a few hundred writes were acknowledged, while the clients keep writing.
    while count.load(Ordering::SeqCst) < 400 {
        assert!(
            !clients.iter().all(|c| c.is_finished()),
            "every client stopped before 400 writes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    for c in clients {
        c.join().unwrap();
    }

    let orders = acked_orders.lock().unwrap().clone();
    let activations = acked_activations.lock().unwrap().clone();
    assert!(orders.len() + activations.len() >= 400);

    let db = rusqlite::Connection::open(dirs.data().join("keyclerk.db")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(db);

    let server = TestServer::start_in(dirs);
    for order in &orders {
        let found = server
            .get(
                &format!("/v1/licenses?order_id={order}"),
                Some(&server.admin),
            )
            .expect(200);
        assert_eq!(
            found["items"].as_array().unwrap().len(),
            1,
            "order {order} lost"
        );
    }
    let machines = server
        .get(
            &format!("/v1/licenses/{seat_id}/activations"),
            Some(&server.admin),
        )
        .expect(200);
    let stored: Vec<&str> = machines["activations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    for a in &activations {
        assert!(stored.contains(&a.as_str()), "activation {a} lost");
    }
    let out = server.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
}
