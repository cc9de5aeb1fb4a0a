//! `POST /v1/validate`: codes, receipts, first presentation and last-seen without log growth.

use std::time::{Duration, Instant};

use keyclerk::domain::time;
use keyclerk::token::{paserk, paseto};
use serde_json::{json, Value};

use crate::helpers::{both_engines, flip_one_char, Engine, TestServer};

fn minted(server: &TestServer, body: Value) -> (String, String) {
    let m = server.mint(body).expect(201);
    (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    )
}

fn validate(server: &TestServer, body: Value) -> Value {
    server.post("/v1/validate", None, &body).expect(200)
}

fn events(server: &TestServer, id: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/licenses/{id}/history"), Some(&server.admin))
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

both_engines!(every_state_of_a_key_answers_with_its_code);
fn every_state_of_a_key_answers_with_its_code(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (_, fresh) = minted(&server, json!({"product": "photo-pro", "order_id": "V-1"}));
    let (_, late) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "V-2", "purchased_at": days_ago(365)}),
    );
    let (_, expired) = minted(
        &server,
        json!({"product": "studio-suite", "order_id": "V-3",
               "purchased_at": days_ago(400), "expires_at": days_ago(30)}),
    );
    let (suspended_id, suspended) =
        minted(&server, json!({"product": "photo-pro", "order_id": "V-4"}));
    let (revoked_id, revoked) = minted(&server, json!({"product": "photo-pro", "order_id": "V-5"}));
    for (id, verb) in [(&suspended_id, "suspend"), (&revoked_id, "revoke")] {
        server
            .post(
                &format!("/v1/licenses/{id}/{verb}"),
                Some(&server.admin),
                &json!({}),
            )
            .expect(200);
    }
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": fresh, "fingerprint": "fp-home"}),
        )
        .expect(201);
    for (case, body, code) in [
        (
            "activated machine",
            json!({"license_key": fresh, "fingerprint": "fp-home"}),
            "VALID",
        ),
        ("key alone", json!({"license_key": fresh}), "VALID"),
        (
            "machine without a seat",
            json!({"license_key": fresh, "fingerprint": "fp-work"}),
            "NOT_ACTIVATED",
        ),
        (
            "forged key",
            json!({"license_key": flip_one_char(&fresh)}),
            "NOT_FOUND",
        ),
        ("garbage", json!({"license_key": "hello"}), "NOT_FOUND"),
        (
            "window closed",
            json!({"license_key": late}),
            "ACTIVATION_WINDOW_CLOSED",
        ),
        ("expired", json!({"license_key": expired}), "EXPIRED"),
        ("suspended", json!({"license_key": suspended}), "SUSPENDED"),
        ("revoked", json!({"license_key": revoked}), "REVOKED"),
    ] {
        let v = validate(&server, body);
        assert_eq!(v["code"], code, "{case}");
        assert_eq!(v["valid"], code == "VALID", "{case}");
        assert_eq!(v["license"].is_null(), code == "NOT_FOUND", "{case}");
        assert!(v.get("receipt").is_none(), "{case}: no nonce, no receipt");
    }
}

#[test]
fn a_nonce_gets_a_receipt_signed_over_the_nonce_the_code_and_the_time() {
    let server = TestServer::start();
    let (id, key) = minted(&server, json!({"product": "photo-pro", "order_id": "V-R"}));
    let v = validate(&server, json!({"license_key": key, "nonce": "n-8f3a91c2"}));
    let (_, public) = server.public_keys().remove(0);
    let vk =
        ed25519_dalek::VerifyingKey::from_bytes(&paserk::parse_public(&public).unwrap()).unwrap();
    let receipt = v["receipt"].as_str().unwrap();
    let claims: Value =
        serde_json::from_slice(&paseto::split(receipt).unwrap().verify(&vk, b"").unwrap()).unwrap();
    assert_eq!(claims["kind"], "validation");
    assert_eq!(claims["nonce"], "n-8f3a91c2");
    assert_eq!(claims["code"], "VALID");
    assert_eq!(claims["valid"], true);
    assert_eq!(claims["license"], id);
    let at = time::parse(claims["iat"].as_str().unwrap()).unwrap();
    assert!((time::now() - at).num_seconds().abs() < 120);
    assert!(
        paseto::split(&flip_one_char(receipt))
            .and_then(|p| p.verify(&vk, b""))
            .is_err(),
        "an altered receipt does not verify"
    );

    let unknown = validate(&server, json!({"license_key": "nope", "nonce": "n-2"}));
    let claims: Value = serde_json::from_slice(
        &paseto::split(unknown["receipt"].as_str().unwrap())
            .unwrap()
            .verify(&vk, b"")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["code"], "NOT_FOUND");
    assert_eq!(claims["nonce"], "n-2");

    for (case, nonce) in [
        ("empty", json!("")),
        ("too long", json!("n".repeat(129))),
        ("spaces", json!("a b")),
        ("not text", json!(5)),
    ] {
        let r = server.post(
            "/v1/validate",
            None,
            &json!({"license_key": key, "nonce": nonce}),
        );
        assert!(r.status == 422 || r.status == 400, "{case}: {}", r.status);
        assert_eq!(r.body["field"], "nonce", "{case}");
    }
}

both_engines!(validations_record_the_first_presentation_once_and_do_not_grow_the_log);
fn validations_record_the_first_presentation_once_and_do_not_grow_the_log(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (id, key) = minted(&server, json!({"product": "photo-pro", "order_id": "V-L"}));
    validate(&server, json!({"license_key": key}));
    let after_first = events(&server, &id);
    let presented: Vec<_> = after_first
        .iter()
        .filter(|e| e["kind"] == "key_first_presented")
        .collect();
    assert_eq!(presented.len(), 1);
    assert_eq!(presented[0]["data"]["by"], "validation");

    let activation = server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-1"}),
        )
        .expect(201);
    let before = events(&server, &id).len();
    for _ in 0..20 {
        let v = validate(&server, json!({"license_key": key, "fingerprint": "fp-1"}));
        assert_eq!(v["code"], "VALID");
    }
    assert_eq!(
        events(&server, &id).len(),
        before,
        "no event per validation"
    );

    // The last-seen time is written in bulk, soon after: poll for it.
    let activated_at = activation["activation"]["activated_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        validate(&server, json!({"license_key": key, "fingerprint": "fp-1"}));
        let machines = server
            .get(
                &format!("/v1/licenses/{id}/activations"),
                Some(&server.admin),
            )
            .expect(200);
        let last_seen = machines["activations"][0]["last_seen"].as_str().unwrap();
        if time::parse(last_seen).unwrap() > time::parse(&activated_at).unwrap() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "last_seen never moved from {last_seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
