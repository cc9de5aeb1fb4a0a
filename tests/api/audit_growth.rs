//! A key cannot grow the audit log without bound: repeated refusals and refreshes of
//! one machine are chained once a day and counted; the history is paged; the
//! evidence of a late claim counts every attempt; idempotency keys are per license.

use keyclerk::domain::time;
use serde_json::{json, Value};

use crate::helpers::{both_engines, into_resp, stdout, Engine, Resp, TestServer};

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

fn mint(server: &TestServer, order: &str, purchased_days_ago: i64) -> (String, String) {
    let m = server
        .mint(json!({"product": "photo-pro", "order_id": order,
                     "customer_email": format!("{order}@example.com"),
                     "purchased_at": days_ago(purchased_days_ago)}))
        .expect(201);
    (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    )
}

fn activate(server: &TestServer, key: &str, fp: &str) -> Resp {
    server.post(
        "/v1/activations",
        None,
        &json!({"license_key": key, "fingerprint": fp}),
    )
}

fn events(server: &TestServer, id: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/licenses/{id}/history"), Some(&server.admin))
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

fn audit_verifies(server: &TestServer) {
    let out = server.cli(&["audit", "verify"]);
    assert!(out.status.success(), "audit verify: {}", stdout(&out));
}

both_engines!(fifty_refusals_of_one_machine_are_one_chained_event_with_a_count);
fn fifty_refusals_of_one_machine_are_one_chained_event_with_a_count(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (id, key) = mint(&server, "GROW-1", 365);
    for _ in 0..50 {
        activate(&server, &key, "fp-leaked").expect_problem(403, "activation_window_closed");
    }
    activate(&server, &key, "fp-other").expect_problem(403, "activation_window_closed");
    let events = events(&server, &id);
    let refused = of_kind(&events, "activation_refused");
    assert_eq!(refused.len(), 2, "one per machine and code: {refused:?}");
    assert_eq!(refused[0]["data"]["fingerprint"], "fp-leaked");
    assert_eq!(refused[0]["repeats"]["count"], 50);
    assert!(time::parse(refused[0]["repeats"]["last_at"].as_str().unwrap()).is_some());
    assert!(
        refused[1].get("repeats").is_none(),
        "an event that happened once carries no repeats"
    );
    audit_verifies(&server);
}

both_engines!(refreshes_of_one_machine_are_counted_not_chained_each);
fn refreshes_of_one_machine_are_counted_not_chained_each(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (id, key) = mint(&server, "GROW-2", 1);
    activate(&server, &key, "fp-1").expect(201);
    for _ in 0..49 {
        activate(&server, &key, "fp-1").expect(200);
    }
    let events = events(&server, &id);
    assert_eq!(of_kind(&events, "activation_created").len(), 1);
    let refreshed = of_kind(&events, "activation_refreshed");
    assert_eq!(refreshed.len(), 1);
    assert_eq!(refreshed[0]["repeats"]["count"], 49);
    assert!(
        events.len() <= 4,
        "minted, presented, created, refreshed: {events:?}"
    );
    audit_verifies(&server);
}

both_engines!(the_evidence_of_a_late_claim_counts_every_refused_attempt);
fn the_evidence_of_a_late_claim_counts_every_refused_attempt(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let (id, key) = mint(&server, "GROW-3", 365);
    for _ in 0..5 {
        activate(&server, &key, "fp-1").expect_problem(403, "activation_window_closed");
    }
    let decided = server
        .post(
            &format!("/v1/licenses/{id}/grace-extension"),
            Some(&support),
            &json!({"remedy": "decline", "reason": "checking the evidence"}),
        )
        .expect(201);
    let refused = &decided["decision"]["evidence"]["refused_activations"];
    assert_eq!(refused.as_array().unwrap().len(), 1);
    assert_eq!(refused[0]["code"], "activation_window_closed");
    assert_eq!(refused[0]["attempts"], 5);
}

both_engines!(the_history_is_paged_with_limit_and_after);
fn the_history_is_paged_with_limit_and_after(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (id, _) = mint(&server, "GROW-4", 1);
    for action in ["suspend", "reinstate", "suspend", "reinstate"] {
        server
            .post(
                &format!("/v1/licenses/{id}/{action}"),
                Some(&server.admin),
                &json!({}),
            )
            .expect(200);
    }
    let all = events(&server, &id);
    assert_eq!(all.len(), 5);
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = server
            .get(
                &format!("/v1/licenses/{id}/history?limit=2{after}"),
                Some(&server.admin),
            )
            .expect(200);
        let items = page["events"].as_array().unwrap();
        assert!(items.len() <= 2);
        paged.extend(items.iter().cloned());
        match page["next"].as_i64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
    for bad in ["limit=0", "limit=1001", "after=-1", "after=x"] {
        server
            .get(
                &format!("/v1/licenses/{id}/history?{bad}"),
                Some(&server.admin),
            )
            .expect_problem(400, "invalid_parameter");
    }
}

fn grace(server: &TestServer, token: &str, id: &str, body: &Value, idem: &str) -> Resp {
    let r = server
        .request(
            "POST",
            &format!("/v1/licenses/{id}/grace-extension"),
            Some(token),
        )
        .set("Idempotency-Key", idem);
    into_resp(r.send_json(body.clone()))
}

both_engines!(an_idempotency_key_is_scoped_to_its_license);
fn an_idempotency_key_is_scoped_to_its_license(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let other_agent = server.token("support");
    let (first, _) = mint(&server, "GROW-5a", 365);
    let (second, _) = mint(&server, "GROW-5b", 365);
    let body = json!({"remedy": "extend", "reason": "ticket 7", "days": 30});
    let a = grace(&server, &support, &first, &body, "ticket-7").expect(201);
    let b = grace(&server, &support, &second, &body, "ticket-7").expect(201);
    assert_ne!(
        a["decision"]["id"], b["decision"]["id"],
        "the same key on another license is another decision, not a conflict"
    );
    let replay = grace(&server, &other_agent, &first, &body, "ticket-7").expect(200);
    assert_eq!(replay["replayed"], true);
    assert_eq!(replay["decision"]["id"], a["decision"]["id"]);
}
