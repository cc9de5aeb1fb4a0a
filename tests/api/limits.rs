//! Rate limits of the public endpoints: failed look-ups per address, requests per
//! key, `X-Forwarded-For` only from trusted proxies, honest offices untouched.

use serde_json::{json, Value};

use crate::helpers::{into_resp, Dirs, Resp, TestServer};

fn validate_from(server: &TestServer, key: &str, forwarded_for: Option<&str>) -> Resp {
    let mut r = server.request("POST", "/v1/validate", None);
    if let Some(f) = forwarded_for {
        r = r.set("X-Forwarded-For", f);
    }
    into_resp(r.send_json(json!({"license_key": key})))
}

fn key_of(server: &TestServer, order: &str, product: &str) -> String {
    server
        .mint(json!({"product": product, "order_id": order}))
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[track_caller]
fn assert_limited(r: &Resp) {
    r.expect_problem(429, "rate_limited");
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(after >= 1);
    assert_eq!(r.body["retry_after_seconds"], after);
}

#[test]
fn failed_look_ups_block_the_address_on_every_public_endpoint() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.failed_lookups_per_address_per_hour = 5;
    });
    let good = key_of(&server, "rl-good", "photo-pro");
    // A forged (one character changed) key and garbage: five failures are allowed.
    let forged = crate::helpers::flip_one_char(&good);
    for i in 0..5 {
        let key = if i % 2 == 0 {
            forged.as_str()
        } else {
            "ABCDE-FGHJK"
        };
        let body = validate_from(&server, key, None).expect(200);
        assert_eq!(body["code"], "NOT_FOUND");
    }
    // Then every look-up from this address waits, the genuine key included: a
    // guesser must not learn which of its guesses was right.
    assert_limited(&validate_from(&server, &good, None));
    let activate = server.post(
        "/v1/activations",
        None,
        &json!({"license_key": good, "fingerprint": "fp-1"}),
    );
    assert_limited(&activate);
    let claim = server.post("/v1/claims", None, &json!({"license_key": good}));
    assert_limited(&claim);
    let deactivate = server.post(
        "/v1/activations/act_x/deactivate",
        None,
        &json!({"license_key": good}),
    );
    assert_limited(&deactivate);
    // The vendor's side is not throttled.
    server
        .mint(json!({"product": "photo-pro", "order_id": "rl-other"}))
        .expect(201);
}

#[test]
fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    // No trusted proxy: a client cannot escape its block by writing the header.
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.failed_lookups_per_address_per_hour = 2;
    });
    for i in 0..2 {
        let r = validate_from(&server, "nope", Some(&format!("198.51.100.{i}")));
        assert_eq!(r.status, 200);
    }
    assert_limited(&validate_from(&server, "nope", Some("198.51.100.99")));

    // Behind a trusted proxy (the test client is 127.0.0.1): clients count apart.
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.failed_lookups_per_address_per_hour = 2;
        s.rate_limits.trusted_proxies = vec!["127.0.0.0/8".into()];
    });
    let good = key_of(&server, "rl-proxy", "photo-pro");
    for _ in 0..2 {
        assert_eq!(
            validate_from(&server, "nope", Some("203.0.113.5")).status,
            200
        );
    }
    assert_limited(&validate_from(&server, &good, Some("203.0.113.5")));
    // A spoofed left-hand entry does not help the blocked client either.
    assert_limited(&validate_from(
        &server,
        &good,
        Some("192.0.2.77, 203.0.113.5"),
    ));
    let other = validate_from(&server, &good, Some("203.0.113.6")).expect(200);
    assert_eq!(other["code"], "VALID");
}

#[test]
fn a_key_gets_its_requests_per_minute_and_other_keys_are_untouched() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.requests_per_key_per_minute = 10;
    });
    let a = key_of(&server, "rl-a", "photo-pro");
    let b = key_of(&server, "rl-b", "photo-pro");
    for _ in 0..10 {
        assert_eq!(validate_from(&server, &a, None).status, 200);
    }
    assert_limited(&validate_from(&server, &a, None));
    assert_limited(&server.post(
        "/v1/activations",
        None,
        &json!({"license_key": a, "fingerprint": "fp"}),
    ));
    assert_eq!(validate_from(&server, &b, None).status, 200);
}

#[test]
fn an_office_of_many_apps_behind_one_address_is_not_throttled() {
    // Shipped defaults; 200 machines, each with its own key, all from 127.0.0.1,
    // on eight concurrent connections: activate, validate at start, validate again.
    let server = TestServer::start();
    let items: Vec<Value> = (0..200)
        .map(|i| json!({"product": "photo-basic", "order_id": format!("office-{i}")}))
        .collect();
    let batch = server
        .post(
            "/v1/licenses/batch",
            Some(&server.admin),
            &json!({"licenses": items}),
        )
        .expect(200);
    let keys: Vec<String> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    let url = server.url("");
    let workers: Vec<_> = keys
        .chunks(25)
        .map(|chunk| {
            let (chunk, url) = (chunk.to_vec(), url.clone());
            std::thread::spawn(move || {
                let agent = ureq::agent();
                for (i, key) in chunk.iter().enumerate() {
                    let fp = format!("office-machine-{key:.40}-{i}");
                    let r = into_resp(
                        agent
                            .post(&format!("{url}/v1/activations"))
                            .send_json(json!({"license_key": key, "fingerprint": fp})),
                    );
                    assert_eq!(r.status, 201, "{}", r.body);
                    for _ in 0..2 {
                        let r = into_resp(
                            agent
                                .post(&format!("{url}/v1/validate"))
                                .send_json(json!({"license_key": key, "fingerprint": fp})),
                        );
                        assert_eq!(r.body["code"], "VALID", "{}", r.body);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
