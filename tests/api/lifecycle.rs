//! Suspend, reinstate, revoke, refund, renew, and the history they leave.

use serde_json::json;

use crate::helpers::{both_engines, Engine, TestServer};

fn mint(server: &TestServer, product: &str, order: &str) -> String {
    server
        .mint(json!({"product": product, "order_id": order}))
        .expect(201)["license"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn act(server: &TestServer, id: &str, verb: &str, body: serde_json::Value) -> crate::helpers::Resp {
    server.post(
        &format!("/v1/licenses/{id}/{verb}"),
        Some(&server.admin),
        &body,
    )
}

both_engines!(suspend_then_reinstate_returns_the_license_to_active);
fn suspend_then_reinstate_returns_the_license_to_active(engine: Engine) {
    let server = TestServer::start_on(engine);
    let id = mint(&server, "photo-pro", "LC-1");
    let s = act(
        &server,
        &id,
        "suspend",
        json!({"reason": "chargeback opened"}),
    )
    .expect(200);
    assert_eq!(s["license"]["status"], "suspended");
    let r = act(&server, &id, "reinstate", json!({})).expect(200);
    assert_eq!(r["license"]["status"], "active");
}

both_engines!(a_transition_that_does_not_apply_is_409_naming_the_current_status);
fn a_transition_that_does_not_apply_is_409_naming_the_current_status(engine: Engine) {
    let server = TestServer::start_on(engine);
    let id = mint(&server, "photo-pro", "LC-2");
    let r = act(&server, &id, "reinstate", json!({}));
    r.expect_problem(409, "invalid_transition");
    assert_eq!(r.body["current_status"], "active");
    act(&server, &id, "revoke", json!({"reason": "piracy"})).expect(200);
    let again = act(&server, &id, "revoke", json!({}));
    again.expect_problem(409, "invalid_transition");
    assert_eq!(again.body["current_status"], "revoked");
    let reinstate = act(&server, &id, "reinstate", json!({}));
    reinstate.expect_problem(409, "invalid_transition");
    assert_eq!(
        reinstate.body["current_status"], "revoked",
        "a revoked license stays closed"
    );
}

both_engines!(a_refunded_license_stays_closed);
fn a_refunded_license_stays_closed(engine: Engine) {
    let server = TestServer::start_on(engine);
    let id = mint(&server, "photo-pro", "LC-3");
    let r = act(&server, &id, "refund", json!({"reason": "customer asked"})).expect(200);
    assert_eq!(r["license"]["status"], "refunded");
    act(&server, &id, "reinstate", json!({})).expect_problem(409, "invalid_transition");
    act(&server, &id, "renew", json!({})).expect_problem(409, "invalid_transition");
}

both_engines!(renewal_moves_a_fixed_expiry_forward_and_a_perpetual_license_cannot_renew);
fn renewal_moves_a_fixed_expiry_forward_and_a_perpetual_license_cannot_renew(engine: Engine) {
    let server = TestServer::start_on(engine);
    let body = server
        .mint(json!({"product": "font-pack", "order_id": "LC-4", "purchased_at": "2026-01-01T00:00:00Z"}))
        .expect(201);
    let id = body["license"]["id"].as_str().unwrap();
    assert_eq!(body["license"]["expires_at"], "2027-01-01T00:00:00Z");
    let renewed = act(&server, id, "renew", json!({})).expect(200);
    assert_eq!(renewed["license"]["expires_at"], "2028-01-01T00:00:00Z");
    let more = act(&server, id, "renew", json!({"days": 30})).expect(200);
    assert_eq!(more["license"]["expires_at"], "2028-01-31T00:00:00Z");
    let perpetual = mint(&server, "studio-suite", "LC-5");
    act(&server, &perpetual, "renew", json!({})).expect_problem(422, "license_perpetual");
}

#[test]
fn a_lifecycle_call_without_a_body_is_accepted() {
    let server = TestServer::start();
    let id = mint(&server, "photo-pro", "LC-6");
    let r = crate::helpers::TestServer::request(
        &server,
        "POST",
        &format!("/v1/licenses/{id}/suspend"),
        Some(&server.admin),
    )
    .call()
    .unwrap();
    assert_eq!(r.status(), 200);
}

both_engines!(the_history_shows_every_change_with_its_actor);
fn the_history_shows_every_change_with_its_actor(engine: Engine) {
    let server = TestServer::start_on(engine);
    let vendor = server.token("vendor");
    let id = server
        .post(
            "/v1/licenses",
            Some(&vendor),
            &json!({"product": "photo-pro", "order_id": "LC-7"}),
        )
        .expect(201)["license"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            &format!("/v1/licenses/{id}/suspend"),
            Some(&vendor),
            &json!({"reason": "fraud check"}),
        )
        .expect(200);
    let support = server.token("support");
    let history = server
        .get(&format!("/v1/licenses/{id}/history"), Some(&support))
        .expect(200);
    let events = history["events"].as_array().unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["license_minted", "license_suspended"]);
    assert_eq!(events[0]["actor"]["name"], "vendor test");
    assert_eq!(events[0]["actor"]["role"], "vendor");
    assert_eq!(events[1]["data"]["reason"], "fraud check");
}
