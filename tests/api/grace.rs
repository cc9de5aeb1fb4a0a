//! Late claims through HTTP: the one-year-later story, every remedy, idempotency, claims.

use std::sync::Arc;

use keyclerk::domain::time;
use serde_json::{json, Value};

use crate::helpers::{both_engines, into_resp, stdout, Dirs, Engine, Resp, TestServer};

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

/// A photo-pro (90-day window) bought a year ago and never activated.
fn late_license(server: &TestServer, order: &str) -> (String, String) {
    let m = server
        .mint(json!({"product": "photo-pro", "order_id": order,
                     "customer_email": format!("{order}@example.com"),
                     "purchased_at": days_ago(365)}))
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

fn grace(server: &TestServer, token: &str, id: &str, body: Value, idem: Option<&str>) -> Resp {
    let mut r = server.request(
        "POST",
        &format!("/v1/licenses/{id}/grace-extension"),
        Some(token),
    );
    if let Some(k) = idem {
        r = r.set("Idempotency-Key", k);
    }
    into_resp(r.send_json(body))
}

fn history(server: &TestServer, token: &str, id: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/licenses/{id}/history"), Some(token))
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn audit_verifies(server: &TestServer) {
    let out = server.cli(&["audit", "verify"]);
    assert!(out.status.success(), "audit verify: {}", stdout(&out));
}

both_engines!(a_year_late_customer_claims_and_the_policy_reopens_the_window);
fn a_year_late_customer_claims_and_the_policy_reopens_the_window(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let (id, key) = late_license(&server, "LATE-1");
    activate(&server, &key, "fp-1").expect_problem(403, "activation_window_closed");

    let claim = server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": key, "message": "I was travelling"}),
        )
        .expect(200);
    assert_eq!(claim["status"], "granted");
    assert_eq!(claim["decision"]["remedy"], "extend");
    assert_eq!(claim["decision"]["automatic"], true);
    let evidence = &claim["decision"]["evidence"];
    assert_eq!(evidence["days_late"], 275);
    assert_eq!(evidence["ever_presented"], true);
    assert_eq!(evidence["presented_before_deadline"], false);
    assert_eq!(
        evidence["refused_activations"][0]["code"],
        "activation_window_closed"
    );

    activate(&server, &key, "fp-1").expect(201);
    let again = server
        .post("/v1/claims", None, &json!({"license_key": key}))
        .expect(200);
    assert_eq!(again["status"], "not_needed");

    let events = history(&server, &support, &id);
    let k = kinds(&events);
    for expected in [
        "license_minted",
        "key_first_presented",
        "activation_refused",
        "grace_decision",
        "claim_filed",
        "activation_created",
    ] {
        assert!(k.contains(&expected.to_owned()), "{expected} in {k:?}");
    }
    audit_verifies(&server);
}

both_engines!(support_extends_with_a_fresh_key_and_a_retried_call_grants_once);
fn support_extends_with_a_fresh_key_and_a_retried_call_grants_once(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let (id, key) = late_license(&server, "LATE-2");
    let body =
        json!({"remedy": "extend", "reason": "ticket 81: paid, never activated", "days": 30});
    let first = grace(&server, &support, &id, body.clone(), Some("t81-extend")).expect(201);
    assert_eq!(first["replayed"], false);
    let by = time::parse(first["license"]["activate_by"].as_str().unwrap()).unwrap();
    let hours = (by - time::now()).num_hours();
    assert!(
        (30 * 24 - 1..=30 * 24).contains(&hours),
        "30 days from now: {hours}h"
    );
    let fresh = first["key"].as_str().unwrap();
    assert_ne!(fresh, key, "the fresh key carries the new deadline");

    let retry = grace(&server, &support, &id, body, Some("t81-extend")).expect(200);
    assert_eq!(retry["replayed"], true);
    assert_eq!(retry["decision"]["id"], first["decision"]["id"]);
    grace(
        &server,
        &support,
        &id,
        json!({"remedy": "decline", "reason": "other"}),
        Some("t81-extend"),
    )
    .expect_problem(409, "idempotency_key_reused");

    activate(&server, &key, "fp-a").expect(201);
    activate(&server, fresh, "fp-a").expect(200);
    let decisions = history(&server, &support, &id)
        .into_iter()
        .filter(|e| e["kind"] == "grace_decision")
        .count();
    assert_eq!(decisions, 1);
}

both_engines!(twenty_concurrent_extensions_with_one_idempotency_key_make_one_decision);
fn twenty_concurrent_extensions_with_one_idempotency_key_make_one_decision(engine: Engine) {
    let server = Arc::new(TestServer::start_on(engine));
    let support = Arc::new(server.token("support"));
    let (id, _) = late_license(&server, "LATE-RACE");
    let id = Arc::new(id);
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (s, t, id) = (Arc::clone(&server), Arc::clone(&support), Arc::clone(&id));
            std::thread::spawn(move || {
                let r = grace(
                    &s,
                    &t,
                    &id,
                    json!({"remedy": "extend", "reason": "double click"}),
                    Some("same-key"),
                );
                (r.status, r.body["decision"]["id"].clone())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1);
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 19);
    assert!(results.iter().all(|(_, d)| *d == results[0].1));
    let decisions = history(&server, &support, &id)
        .into_iter()
        .filter(|e| e["kind"] == "grace_decision")
        .count();
    assert_eq!(decisions, 1);
}

both_engines!(a_discontinued_products_customer_gets_a_substitute_and_the_old_key_is_superseded);
fn a_discontinued_products_customer_gets_a_substitute_and_the_old_key_is_superseded(
    engine: Engine,
) {
    let legacy = |s: &mut keyclerk::config::Settings| {
        let mut spec = s.products["photo-basic"].clone();
        spec.name = "Legacy Editor".into();
        spec.price.amount = 3900;
        spec.activation_window_days = Some(30);
        s.products.insert("legacy-editor".into(), spec);
    };
    let server = TestServer::start_with(Dirs::on(engine), legacy);
    let m = server
        .mint(json!({"product": "legacy-editor", "order_id": "LEG-1",
                     "customer_email": "leg@example.com", "purchased_at": days_ago(400)}))
        .expect(201);
    let (id, old_key) = (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    );
    // The product leaves the catalog.
    let server = TestServer::start_in(server.stop());
    let support = server.token("support");

    let too_dear = grace(
        &server,
        &support,
        &id,
        json!({"remedy": "substitute", "reason": "discontinued", "product": "photo-pro"}),
        None,
    );
    too_dear.expect_problem(422, "substitute_too_expensive");
    assert_eq!(too_dear.body["suggested_remedy"], "upgrade");

    let sub = grace(
        &server,
        &support,
        &id,
        json!({"remedy": "substitute", "reason": "discontinued", "product": "photo-basic"}),
        None,
    )
    .expect(201);
    let new_id = sub["new_license"]["id"].as_str().unwrap();
    assert_eq!(sub["new_license"]["supersedes"], id);
    assert_eq!(sub["license"]["superseded_by"], new_id);
    assert_eq!(sub["license"]["status"], "superseded");
    assert_eq!(sub["new_license"]["customer_email"], "leg@example.com");

    activate(&server, &old_key, "fp").expect_problem(403, "license_superseded");
    let v = server
        .post("/v1/validate", None, &json!({"license_key": old_key}))
        .expect(200);
    assert_eq!(v["code"], "SUPERSEDED");
    activate(&server, sub["key"].as_str().unwrap(), "fp").expect(201);
    let events = history(&server, &support, &id);
    let decision = events
        .iter()
        .find(|e| e["kind"] == "grace_decision")
        .unwrap();
    assert_eq!(decision["data"]["remedy"], "substitute");
    assert_eq!(decision["actor"]["role"], "support");
    audit_verifies(&server);
}

both_engines!(an_upgrade_waits_for_the_vendor_to_confirm_the_payment);
fn an_upgrade_waits_for_the_vendor_to_confirm_the_payment(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let (id, _) = late_license(&server, "UP-1");
    let up = grace(
        &server,
        &support,
        &id,
        json!({"remedy": "upgrade", "reason": "wants the suite", "product": "studio-suite"}),
        None,
    )
    .expect(201);
    assert_eq!(
        up["amount_due"],
        json!({"amount": 15000, "currency": "EUR"})
    );
    assert_eq!(up["new_license"]["status"], "pending_payment");
    let new_id = up["new_license"]["id"].as_str().unwrap();
    let new_key = up["key"].as_str().unwrap();
    activate(&server, new_key, "fp").expect_problem(403, "license_pending_payment");
    server
        .post(
            &format!("/v1/licenses/{new_id}/confirm-payment"),
            Some(&support),
            &json!({}),
        )
        .expect_problem(403, "forbidden");
    let paid = server
        .post(
            &format!("/v1/licenses/{new_id}/confirm-payment"),
            Some(&server.admin),
            &json!({}),
        )
        .expect(200);
    assert_eq!(paid["license"]["status"], "active");
    activate(&server, new_key, "fp").expect(201);
    server
        .post(
            &format!("/v1/licenses/{new_id}/confirm-payment"),
            Some(&server.admin),
            &json!({}),
        )
        .expect_problem(409, "invalid_transition");
    grace(
        &server,
        &support,
        &id,
        json!({"remedy": "upgrade", "reason": "x", "product": "photo-basic"}),
        None,
    )
    .expect_problem(409, "invalid_transition");
}

both_engines!(store_credit_is_granted_once_and_redeemed_once_per_order);
fn store_credit_is_granted_once_and_redeemed_once_per_order(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let vendor = server.token("vendor");
    let (id, key) = late_license(&server, "CRED-1");
    let credit = grace(
        &server,
        &support,
        &id,
        json!({"remedy": "credit", "reason": "prefers credit"}),
        Some("cred-1"),
    )
    .expect(201);
    assert_eq!(credit["credit"], json!({"amount": 4900, "currency": "EUR"}));
    assert_eq!(credit["license"]["status"], "credited");
    grace(
        &server,
        &support,
        &id,
        json!({"remedy": "credit", "reason": "prefers credit"}),
        Some("cred-1"),
    )
    .expect(200);
    activate(&server, &key, "fp").expect_problem(403, "license_revoked");

    let email = "cred-1@example.com";
    let ledger = server
        .get(&format!("/v1/credits?email={email}"), Some(&vendor))
        .expect(200);
    assert_eq!(ledger["balances"]["EUR"], 4900, "granted once");

    let redeem = json!({"email": email, "order_id": "NEW-77", "amount": 2900, "currency": "EUR"});
    let first = server
        .post("/v1/credits/redeem", Some(&vendor), &redeem)
        .expect(201);
    assert_eq!(first["balances"]["EUR"], 2000);
    let again = server
        .post("/v1/credits/redeem", Some(&vendor), &redeem)
        .expect(200);
    assert_eq!(again["entry"]["id"], first["entry"]["id"]);
    assert_eq!(again["balances"]["EUR"], 2000);
    server
        .post(
            "/v1/credits/redeem",
            Some(&vendor),
            &json!({"email": email, "order_id": "NEW-77", "amount": 100, "currency": "EUR"}),
        )
        .expect_problem(409, "order_conflict");
    let over = server.post(
        "/v1/credits/redeem",
        Some(&vendor),
        &json!({"email": email, "order_id": "NEW-78", "amount": 2001, "currency": "EUR"}),
    );
    over.expect_problem(409, "insufficient_credit");
    assert_eq!(over.body["balance"], 2000);
    server
        .mint(json!({"product": "photo-basic", "order_id": "NEW-77", "customer_email": email}))
        .expect(201);
    audit_verifies(&server);
}

both_engines!(decline_changes_nothing_refund_closes_and_both_carry_evidence);
fn decline_changes_nothing_refund_closes_and_both_carry_evidence(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let (id, key) = late_license(&server, "DEC-1");
    activate(&server, &key, "fp").expect_problem(403, "activation_window_closed");
    let declined = grace(
        &server,
        &support,
        &id,
        json!({"remedy": "decline", "reason": "bought at a reseller we do not honour"}),
        None,
    )
    .expect(201);
    assert_eq!(declined["license"]["status"], "active");
    assert_eq!(declined["decision"]["evidence"]["days_late"], 275);
    grace(&server, &support, &id, json!({"remedy": "extend"}), None)
        .expect_problem(400, "missing_field");
    grace(
        &server,
        &support,
        &id,
        json!({"remedy": "extend", "reason": "  "}),
        None,
    )
    .expect_problem(422, "invalid_field");
    grace(
        &server,
        &support,
        &id,
        json!({"remedy": "gift", "reason": "x"}),
        None,
    )
    .expect_problem(400, "invalid_field");
    let vendor = server.token("vendor");
    grace(
        &server,
        &vendor,
        &id,
        json!({"remedy": "decline", "reason": "x"}),
        None,
    )
    .expect_problem(403, "forbidden");

    let refund = grace(
        &server,
        &support,
        &id,
        json!({"remedy": "refund", "reason": "customer asked for the money back"}),
        None,
    )
    .expect(201);
    assert_eq!(refund["license"]["status"], "refunded");
    assert_eq!(refund["decision"]["result"]["refund"]["amount"], 4900);
    let earlier = &refund["decision"]["evidence"]["earlier_decisions"];
    assert_eq!(earlier[0]["remedy"], "decline");
    let events = history(&server, &support, &id);
    let decisions: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "grace_decision")
        .map(|e| e["data"]["remedy"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["decline", "refund"]);
}

both_engines!(claims_the_policy_cannot_grant_wait_for_support_who_resolves_them);
fn claims_the_policy_cannot_grant_wait_for_support_who_resolves_them(engine: Engine) {
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        s.late_claims.max_age_days = 300;
        s.late_claims.max_claims_per_key_per_day = 2;
    });
    let support = server.token("support");
    let (id, key) = late_license(&server, "CLM-1");
    let filed = server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": key, "email": "clm@example.com"}),
        )
        .expect(202);
    assert_eq!(filed["status"], "pending");
    let claim_id = filed["claim"]["id"].as_str().unwrap().to_owned();
    assert!(filed["claim"]["note"].as_str().unwrap().contains("older"));

    let pending = server
        .get("/v1/claims?status=pending", Some(&support))
        .expect(200);
    assert_eq!(pending["claims"][0]["id"], claim_id);
    assert_eq!(pending["claims"][0]["license_id"], id);

    let resolved = server
        .post(
            &format!("/v1/claims/{claim_id}/resolve"),
            Some(&support),
            &json!({"remedy": "extend", "reason": "goodwill", "days": 14}),
        )
        .expect(201);
    assert_eq!(resolved["decision"]["claim_id"], claim_id);
    activate(&server, &key, "fp").expect(201);
    let pending = server
        .get("/v1/claims?status=pending", Some(&support))
        .expect(200);
    assert!(pending["claims"].as_array().unwrap().is_empty());
    server
        .post(
            &format!("/v1/claims/{claim_id}/resolve"),
            Some(&support),
            &json!({"remedy": "decline", "reason": "again"}),
        )
        .expect_problem(409, "claim_resolved");

    // Two claims per key per day here: the third is refused.
    server
        .post("/v1/claims", None, &json!({"license_key": key}))
        .expect(200);
    let limited = server.post("/v1/claims", None, &json!({"license_key": key}));
    limited.expect_problem(429, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    server
        .post("/v1/claims", None, &json!({"license_key": "garbage"}))
        .expect_problem(404, "license_not_found");
}
