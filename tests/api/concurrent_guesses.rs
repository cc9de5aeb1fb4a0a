//! The failed-look-up limit under concurrency (security finding F2): a burst of
//! guesses from one address, all in flight at once, passes no more failures than
//! the limit allows, before the block and after it.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use rand::Rng;
use serde_json::json;

use crate::helpers::{Dirs, TestServer};

const LIMIT: u32 = 20;
const BURST: usize = 500;

fn guess() -> String {
    let mut rng = rand::thread_rng();
    let letters: String = (0..180)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect();
    format!("v4.public.{letters}")
}

/// Sends `BURST` requests at once (threads released together, one connection
/// each) and counts the statuses: (let through, rate limited, anything else).
fn burst(server: &TestServer, path: impl Fn(usize) -> String) -> (usize, usize, usize) {
    let barrier = Arc::new(Barrier::new(BURST));
    let handles: Vec<_> = (0..BURST)
        .map(|i| {
            let url = server.url(&path(i));
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(120))
                    .build();
                let body = if url.ends_with("/deactivate") {
                    json!({"license_key": guess()})
                } else {
                    json!({"license_key": guess(), "fingerprint": format!("fp-{i}")})
                };
                barrier.wait();
                match agent.post(&url).send_json(body) {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, _)) => s,
                    Err(e) => panic!("transport error: {e}"),
                }
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|&s| s == 404 || s == 429),
        "{:?}",
        statuses
            .iter()
            .filter(|&&s| s != 404 && s != 429)
            .collect::<Vec<_>>()
    );
    let through = statuses.iter().filter(|&&s| s == 404).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    (through, limited, BURST - through - limited)
}

fn server() -> TestServer {
    TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.failed_lookups_per_address_per_hour = LIMIT;
        // The bursts are one address's 500 connections at once, and the first
        // burst's connections may not all be closed on the server's side when the
        // second begins: no cap here (the cap has its own test).
        s.server.max_connections_per_address = 0;
    })
}

#[track_caller]
fn check(endpoint: &str, path: impl Fn(usize) -> String + Copy) {
    let server = server();
    let (through, limited, other) = burst(&server, path);
    println!("{endpoint}: {BURST} concurrent guesses: {through} looked up (404), {limited} refused (429)");
    assert_eq!(other, 0, "only 404 and 429");
    assert!(
        through <= LIMIT as usize,
        "{through} guesses got through, the limit is {LIMIT}"
    );
    assert!(through > 0, "the limit let nothing through");
    // Blocked now: one more fits every 3600 / LIMIT = 180 s, so a second burst at
    // once gets at most one through.
    let (through, limited, other) = burst(&server, path);
    println!("{endpoint}: the same after the block: {through} looked up, {limited} refused");
    assert_eq!(other, 0);
    assert!(
        through <= 1,
        "{through} guesses got through after the block"
    );
}

#[test]
fn concurrent_guesses_at_activations_pass_no_more_than_the_limit_before_and_after_the_block() {
    check("/v1/activations", |_| "/v1/activations".to_owned());
}

#[test]
fn concurrent_guesses_at_deactivate_pass_no_more_than_the_limit_before_and_after_the_block() {
    check("/v1/activations/{id}/deactivate", |i| {
        format!("/v1/activations/act_06h369j9s2rrgyckzrsqmd{i:04}/deactivate")
    });
}

#[test]
fn a_burst_of_genuine_keys_from_one_address_waits_for_reservations_instead_of_being_refused() {
    // Five failures an hour, and a hundred honest look-ups at once: each reserves a
    // failure while it is in flight, gives it back when its key is found, and the
    // others wait for that rather than get 429.
    let server = Arc::new(TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.failed_lookups_per_address_per_hour = 5;
    }));
    let key = server
        .mint(json!({"product": "studio-suite", "order_id": "burst-honest", "seats": 100}))
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let barrier = Arc::new(Barrier::new(100));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let (server, key, barrier) = (Arc::clone(&server), key.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let body = json!({"license_key": key, "fingerprint": format!("fp-{i}")});
                barrier.wait();
                // Activations go through the writer: many are in flight at once.
                server.post("/v1/activations", None, &body).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");
    // And the address's failures are all still there.
    for _ in 0..5 {
        let r = server.post("/v1/validate", None, &json!({"license_key": guess()}));
        assert_eq!(r.body["code"], "NOT_FOUND");
    }
    server
        .post("/v1/validate", None, &json!({"license_key": guess()}))
        .expect_problem(429, "rate_limited");
}
