//! Desktop activation through HTTP: seats under real concurrency, refusals, certificates.

use std::sync::Arc;

use keyclerk::domain::time;
use keyclerk::token::{paserk, paseto};
use serde_json::{json, Value};

use crate::helpers::{both_engines, flip_one_char, Engine, Resp, TestServer};

fn mint(server: &TestServer, body: Value) -> (String, String) {
    let minted = server.mint(body).expect(201);
    (
        minted["license"]["id"].as_str().unwrap().to_owned(),
        minted["key"].as_str().unwrap().to_owned(),
    )
}

fn activate(server: &TestServer, key: &str, fingerprint: &str) -> crate::helpers::Resp {
    server.post(
        "/v1/activations",
        None,
        &json!({"license_key": key, "fingerprint": fingerprint, "name": "studio-pc", "platform": "linux"}),
    )
}

/// How many new seats the license's history records.
fn seats_taken(server: &TestServer, id: &str) -> usize {
    let history = server
        .get(&format!("/v1/licenses/{id}/history"), Some(&server.admin))
        .expect(200);
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "activation_created")
        .count()
}

fn certificate_claims(server: &TestServer, certificate: &str) -> Value {
    let (_, public) = server.public_keys().remove(0);
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&paserk::parse_public(&public).unwrap()).unwrap();
    let parts = paseto::split(certificate).unwrap();
    serde_json::from_slice(&parts.verify(&key, b"").unwrap()).unwrap()
}

both_engines!(a_first_activation_takes_a_seat_starts_the_year_and_returns_a_signed_certificate);
fn a_first_activation_takes_a_seat_starts_the_year_and_returns_a_signed_certificate(
    engine: Engine,
) {
    let server = TestServer::start_on(engine);
    let (id, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "ACT-1"}),
    );
    let body = activate(&server, &key, "fp-machine-1").expect(201);
    assert_eq!(body["activation"]["license_id"], id);
    assert_eq!(body["activation"]["fingerprint"], "fp-machine-1");
    let expires = time::parse(body["license"]["expires_at"].as_str().unwrap()).unwrap();
    let hours = (expires - time::now()).num_hours();
    assert!(
        (365 * 24 - 1..=365 * 24).contains(&hours),
        "a year from activation: {hours}h"
    );
    let claims = certificate_claims(&server, body["certificate"].as_str().unwrap());
    assert_eq!(claims["kind"], "activation");
    assert_eq!(claims["fingerprint"], "fp-machine-1");
    assert_eq!(claims["license"], id);
    assert_eq!(claims["sub"], body["activation"]["id"]);
    let exp = time::parse(claims["exp"].as_str().unwrap()).unwrap();
    let hours = (exp - time::now()).num_hours();
    assert!(
        (30 * 24 - 1..=30 * 24).contains(&hours),
        "the 30-day lease: {hours}h"
    );
}

both_engines!(the_same_fingerprint_again_takes_no_new_seat_and_gets_a_fresh_certificate);
fn the_same_fingerprint_again_takes_no_new_seat_and_gets_a_fresh_certificate(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "ACT-2", "seats": 1}),
    );
    let first = activate(&server, &key, "fp-a").expect(201);
    let again = activate(&server, &key, "fp-a").expect(200);
    assert_eq!(first["activation"]["id"], again["activation"]["id"]);
    activate(&server, &key, "fp-b").expect_problem(409, "seat_limit_reached");
}

both_engines!(unknown_malformed_and_forged_keys_are_all_license_not_found);
fn unknown_malformed_and_forged_keys_are_all_license_not_found(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "ACT-3"}),
    );
    let other = TestServer::start_on(engine);
    let (_, foreign) = mint(&other, json!({"product": "photo-pro", "order_id": "ACT-3"}));
    for (case, k) in [
        ("flipped", flip_one_char(&key)),
        ("malformed", "hello".to_owned()),
        ("foreign server", foreign),
        (
            "short key never issued",
            "00000-00000-00000-00000-00000".to_owned(),
        ),
    ] {
        let r = activate(&server, &k, "fp-x");
        r.expect_problem(404, "license_not_found");
        assert!(!r.body["detail"].as_str().unwrap().contains(case));
    }
}

both_engines!(closed_licenses_and_closed_windows_are_refused_with_their_codes);
fn closed_licenses_and_closed_windows_are_refused_with_their_codes(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (_, late) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "ACT-4",
               "purchased_at": time::format(time::plus_days(time::now(), 0) - chrono::Duration::days(365))}),
    );
    activate(&server, &late, "fp").expect_problem(403, "activation_window_closed");
    for (verb, code) in [
        ("suspend", "license_suspended"),
        ("revoke", "license_revoked"),
    ] {
        let (id, key) = mint(
            &server,
            json!({"product": "photo-pro", "order_id": format!("ACT-{verb}")}),
        );
        server
            .post(
                &format!("/v1/licenses/{id}/{verb}"),
                Some(&server.admin),
                &json!({}),
            )
            .expect(200);
        activate(&server, &key, "fp").expect_problem(403, code);
    }
    let (_, expired) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "ACT-exp",
               "purchased_at": "2025-01-01T00:00:00Z", "expires_at": "2025-06-01T00:00:00Z"}),
    );
    activate(&server, &expired, "fp").expect_problem(403, "license_expired");
    let history = server
        .get("/v1/licenses?order_id=ACT-4", Some(&server.admin))
        .expect(200);
    let id = history["items"][0]["id"].as_str().unwrap().to_owned();
    let events = server
        .get(&format!("/v1/licenses/{id}/history"), Some(&server.admin))
        .expect(200);
    let kinds: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "license_minted",
            "key_first_presented",
            "activation_refused"
        ]
    );
    assert_eq!(
        events["events"][2]["data"]["code"],
        "activation_window_closed"
    );
}

both_engines!(a_hundred_concurrent_machines_on_five_seats_get_exactly_five);
fn a_hundred_concurrent_machines_on_five_seats_get_exactly_five(engine: Engine) {
    let server = Arc::new(TestServer::start_on(engine));
    let (id, key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "ACT-RACE", "seats": 5}),
    );
    let key = Arc::new(key);
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let (s, k) = (Arc::clone(&server), Arc::clone(&key));
            std::thread::spawn(move || {
                let r = activate(&s, &k, &format!("fp-{i}"));
                (r.status, r.code().to_owned())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 5);
    assert_eq!(
        results
            .iter()
            .filter(|(s, c)| *s == 409 && c == "seat_limit_reached")
            .count(),
        95
    );
    assert_eq!(seats_taken(&server, &id), 5);
}

both_engines!(fifty_concurrent_activations_of_one_machine_take_one_seat);
fn fifty_concurrent_activations_of_one_machine_take_one_seat(engine: Engine) {
    let server = Arc::new(TestServer::start_on(engine));
    let (id, key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "ACT-SAME", "seats": 5}),
    );
    let key = Arc::new(key);
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (s, k) = (Arc::clone(&server), Arc::clone(&key));
            std::thread::spawn(move || activate(&s, &k, "fp-one").status)
        })
        .collect();
    let statuses: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 49);
    assert_eq!(seats_taken(&server, &id), 1);
}

#[test]
fn bad_activation_requests_name_their_field() {
    let server = TestServer::start();
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "ACT-BAD"}),
    );
    server
        .post("/v1/activations", None, &json!({"license_key": key}))
        .expect_problem(400, "missing_field");
    let r = server.post(
        "/v1/activations",
        None,
        &json!({"license_key": key, "fingerprint": "x".repeat(300)}),
    );
    r.expect_problem(422, "invalid_field");
    assert_eq!(r.body["field"], "fingerprint");
}

fn deactivate(server: &TestServer, activation: &str, token: Option<&str>, body: &Value) -> Resp {
    server.post(
        &format!("/v1/activations/{activation}/deactivate"),
        token,
        body,
    )
}

fn event_kinds(server: &TestServer, id: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/licenses/{id}/history"), Some(&server.admin))
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

both_engines!(a_deactivated_machine_frees_its_seat_for_another);
fn a_deactivated_machine_frees_its_seat_for_another(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (id, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "DEACT-1", "seats": 1}),
    );
    let first = activate(&server, &key, "fp-old").expect(201);
    activate(&server, &key, "fp-new").expect_problem(409, "seat_limit_reached");
    let act = first["activation"]["id"].as_str().unwrap();
    let done = deactivate(&server, act, None, &json!({"license_key": key})).expect(200);
    assert!(done["activation"]["deactivated_at"].is_string());
    assert_eq!(done["already_deactivated"], false);
    activate(&server, &key, "fp-new").expect(201);
    let again = deactivate(&server, act, None, &json!({"license_key": key})).expect(200);
    assert_eq!(
        again["already_deactivated"], true,
        "a retry changes nothing"
    );
    let machines = server
        .get(
            &format!("/v1/licenses/{id}/activations"),
            Some(&server.admin),
        )
        .expect(200);
    assert_eq!(machines["seats_in_use"], 1);
    assert_eq!(machines["activations"].as_array().unwrap().len(), 2);
    let deactivations: Vec<_> = event_kinds(&server, &id)
        .into_iter()
        .filter(|e| e["kind"] == "activation_deactivated")
        .collect();
    assert_eq!(deactivations.len(), 1);
    assert_eq!(deactivations[0]["data"]["by"], "customer");
    assert_eq!(deactivations[0]["actor"]["type"], "license_key");
}

both_engines!(another_licenses_key_or_a_bad_id_cannot_deactivate);
fn another_licenses_key_or_a_bad_id_cannot_deactivate(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "DEACT-2"}),
    );
    let (_, other) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "DEACT-3"}),
    );
    let act = activate(&server, &key, "fp").expect(201)["activation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (case, id, body) in [
        (
            "other license's key",
            act.as_str(),
            json!({"license_key": other}),
        ),
        (
            "forged key",
            act.as_str(),
            json!({"license_key": flip_one_char(&key)}),
        ),
        ("garbage key", act.as_str(), json!({"license_key": "nope"})),
        (
            "unknown activation",
            "act_00000000000000000000000000",
            json!({"license_key": key}),
        ),
        (
            "wrong prefix",
            "lic_00000000000000000000000000",
            json!({"license_key": key}),
        ),
    ] {
        let r = deactivate(&server, id, None, &body);
        assert_eq!(r.status, 404, "{case}");
        assert_eq!(r.code(), "activation_not_found", "{case}");
    }
    // Neither the key nor a token: no credentials at all.
    deactivate(&server, &act, None, &json!({})).expect_problem(401, "missing_credentials");
    let vendor = server.token("vendor");
    deactivate(&server, &act, Some(&vendor), &json!({})).expect_problem(403, "forbidden");
    deactivate(&server, &act, Some("kc_nope"), &json!({"license_key": key}))
        .expect_problem(401, "invalid_token");
}

both_engines!(churn_past_the_limit_is_refused_but_support_frees_a_lost_machine);
fn churn_past_the_limit_is_refused_but_support_frees_a_lost_machine(engine: Engine) {
    let server = TestServer::start_with(crate::helpers::Dirs::on(engine), |s| {
        s.products
            .get_mut("studio-suite")
            .unwrap()
            .max_deactivations_per_30_days = 2;
    });
    let (id, key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "CHURN-1", "seats": 1}),
    );
    for round in 0..2 {
        let act = activate(&server, &key, &format!("fp-{round}")).expect(201);
        let act = act["activation"]["id"].as_str().unwrap();
        deactivate(&server, act, None, &json!({"license_key": key})).expect(200);
    }
    let act = activate(&server, &key, "fp-office").expect(201)["activation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = deactivate(&server, &act, None, &json!({"license_key": key}));
    refused.expect_problem(429, "deactivation_limit_reached");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (29 * 86_400..=30 * 86_400).contains(&retry),
        "room again when the first leaves the 30 days: {retry}s"
    );
    activate(&server, &key, "fp-other").expect_problem(409, "seat_limit_reached");

    let support = server.token("support");
    let freed = deactivate(
        &server,
        &act,
        Some(&support),
        &json!({"reason": "laptop stolen, ticket 4411"}),
    )
    .expect(200);
    assert!(freed["activation"]["deactivated_at"].is_string());
    activate(&server, &key, "fp-other").expect(201);

    let events = event_kinds(&server, &id);
    let refusal = events
        .iter()
        .find(|e| e["kind"] == "deactivation_refused")
        .unwrap();
    assert_eq!(refusal["data"]["code"], "deactivation_limit_reached");
    let by_support = events
        .iter()
        .find(|e| e["kind"] == "activation_deactivated" && e["data"]["by"] == "support")
        .unwrap();
    assert_eq!(by_support["actor"]["role"], "support");
    assert_eq!(by_support["data"]["reason"], "laptop stolen, ticket 4411");
}
