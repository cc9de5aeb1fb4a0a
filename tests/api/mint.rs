//! Minting over HTTP: idempotency, defaults from the product, batches, look-ups.

use std::sync::Arc;

use keyclerk::domain::time;
use serde_json::json;

use crate::helpers::{both_engines, Engine, TestServer};

both_engines!(a_mint_returns_201_with_the_license_and_a_key_that_verifies_offline);
fn a_mint_returns_201_with_the_license_and_a_key_that_verifies_offline(engine: Engine) {
    let server = TestServer::start_on(engine);
    let body = server
        .mint(
            json!({"product": "photo-pro", "order_id": "A-1", "customer_email": "Ann@Example.com"}),
        )
        .expect(201);
    let license = &body["license"];
    assert_eq!(license["product"], "photo-pro");
    assert_eq!(license["seats"], 3, "seats default from the product");
    assert_eq!(license["entitlements"], json!(["export", "raw"]));
    assert_eq!(license["status"], "active");
    assert_eq!(license["customer_email"], "ann@example.com");
    let purchased = time::parse(license["purchased_at"].as_str().unwrap()).unwrap();
    let activate_by = time::parse(license["activate_by"].as_str().unwrap()).unwrap();
    assert_eq!((activate_by - purchased).num_days(), 90);
    assert!(license["expires_at"].is_null(), "counted from activation");

    let key = body["key"].as_str().unwrap();
    let out = server.cli(&["verify", key]);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["claims"]["sub"], license["id"]);
    assert_eq!(printed["claims"]["activate_by"], license["activate_by"]);
}

both_engines!(the_same_order_again_returns_200_the_same_license_and_the_same_key);
fn the_same_order_again_returns_200_the_same_license_and_the_same_key(engine: Engine) {
    let server = TestServer::start_on(engine);
    let req = json!({"product": "photo-pro", "order_id": "A-2", "seats": 2});
    let first = server.mint(req.clone()).expect(201);
    let again = server.mint(req).expect(200);
    assert_eq!(first["license"]["id"], again["license"]["id"]);
    assert_eq!(first["key"], again["key"]);
}

both_engines!(the_same_order_with_other_fields_is_an_order_conflict);
fn the_same_order_with_other_fields_is_an_order_conflict(engine: Engine) {
    let server = TestServer::start_on(engine);
    server
        .mint(json!({"product": "photo-pro", "order_id": "A-3"}))
        .expect(201);
    server
        .mint(json!({"product": "photo-pro", "order_id": "A-3", "seats": 9}))
        .expect_problem(409, "order_conflict");
    server
        .mint(json!({"product": "photo-basic", "order_id": "A-3"}))
        .expect_problem(409, "order_conflict");
}

both_engines!(fifty_concurrent_identical_mints_make_one_license_and_fifty_identical_keys);
fn fifty_concurrent_identical_mints_make_one_license_and_fifty_identical_keys(engine: Engine) {
    let server = Arc::new(TestServer::start_on(engine));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let s = Arc::clone(&server);
            std::thread::spawn(move || {
                let r = s.mint(json!({"product": "photo-pro", "order_id": "RACE-1"}));
                (r.status, r.body)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1);
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 49);
    let first_key = &results[0].1["key"];
    assert!(results.iter().all(|(_, b)| &b["key"] == first_key));
    let found = server
        .get("/v1/licenses?order_id=RACE-1", Some(&server.admin))
        .expect(200);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
}

#[test]
fn an_unknown_product_is_refused_with_unknown_product() {
    let server = TestServer::start();
    server
        .mint(json!({"product": "no-such-thing", "order_id": "A-4"}))
        .expect_problem(422, "unknown_product");
}

both_engines!(a_purchase_in_the_past_is_accepted_and_in_the_future_refused);
fn a_purchase_in_the_past_is_accepted_and_in_the_future_refused(engine: Engine) {
    let server = TestServer::start_on(engine);
    let past = server
        .mint(json!({"product": "photo-pro", "order_id": "IMP-1", "purchased_at": "2025-01-01T00:00:00Z"}))
        .expect(201);
    assert_eq!(past["license"]["purchased_at"], "2025-01-01T00:00:00Z");
    assert_eq!(past["license"]["activate_by"], "2025-04-01T00:00:00Z");
    let future = time::format(time::plus_days(time::now(), 2));
    server
        .mint(json!({"product": "photo-pro", "order_id": "IMP-2", "purchased_at": future}))
        .expect_problem(422, "purchased_in_future");
}

both_engines!(a_yearly_license_from_purchase_expires_a_year_after_purchase);
fn a_yearly_license_from_purchase_expires_a_year_after_purchase(engine: Engine) {
    let server = TestServer::start_on(engine);
    let body = server
        .mint(json!({"product": "font-pack", "order_id": "F-0", "purchased_at": "2026-03-01T00:00:00Z"}))
        .expect(201);
    assert_eq!(body["license"]["expires_at"], "2027-03-01T00:00:00Z");
    let perpetual = server
        .mint(json!({"product": "studio-suite", "order_id": "S-0"}))
        .expect(201);
    assert!(perpetual["license"]["expires_at"].is_null());
    assert!(perpetual["license"]["activate_by"].is_null());
}

both_engines!(a_short_product_gets_a_typeable_key_found_however_it_is_typed);
fn a_short_product_gets_a_typeable_key_found_however_it_is_typed(engine: Engine) {
    let server = TestServer::start_on(engine);
    let body = server
        .mint(json!({"product": "font-pack", "order_id": "F-1"}))
        .expect(201);
    let key = body["key"].as_str().unwrap();
    assert_eq!(key.len(), 29);
    assert_eq!(key.split('-').count(), 5);
    let typed = key.to_lowercase().replace('-', " ");
    let found = server
        .get(
            &format!("/v1/licenses?key={}", typed.replace(' ', "%20")),
            Some(&server.admin),
        )
        .expect(200);
    assert_eq!(found["items"][0]["id"], body["license"]["id"]);
    let again = server
        .mint(json!({"product": "font-pack", "order_id": "F-1"}))
        .expect(200);
    assert_eq!(again["key"], key, "the same short key again");
}

both_engines!(licenses_are_found_by_id_order_email_and_key);
fn licenses_are_found_by_id_order_email_and_key(engine: Engine) {
    let server = TestServer::start_on(engine);
    let vendor = server.token("vendor");
    let support = server.token("support");
    let minted = server
        .mint(
            json!({"product": "photo-pro", "order_id": "L-1", "customer_email": "bo@example.com"}),
        )
        .expect(201);
    let id = minted["license"]["id"].as_str().unwrap();
    let key = minted["key"].as_str().unwrap();
    for token in [&vendor, &support] {
        let got = server
            .get(&format!("/v1/licenses/{id}"), Some(token))
            .expect(200);
        assert_eq!(got["license"]["id"], id);
        assert_eq!(got["key"], key, "the license's key is issued again");
    }
    for query in [
        "order_id=L-1",
        "email=BO@example.com",
        &format!("key={key}"),
    ] {
        let found = server
            .get(&format!("/v1/licenses?{query}"), Some(&vendor))
            .expect(200);
        assert_eq!(found["items"][0]["id"], id, "{query}");
    }
    let flipped = crate::helpers::flip_one_char(key);
    let none = server
        .get(&format!("/v1/licenses?key={flipped}"), Some(&vendor))
        .expect(200);
    assert_eq!(none["items"], json!([]));
    server
        .get("/v1/licenses/lic_00000000000000000000000000", Some(&vendor))
        .expect_problem(404, "license_not_found");
    server
        .get("/v1/licenses/not-an-id", Some(&vendor))
        .expect_problem(404, "license_not_found");
}

both_engines!(the_unfiltered_list_is_paged_with_a_cursor_and_filters);
fn the_unfiltered_list_is_paged_with_a_cursor_and_filters(engine: Engine) {
    let server = TestServer::start_on(engine);
    for i in 0..5 {
        server
            .mint(json!({"product": "photo-pro", "order_id": format!("P-{i}")}))
            .expect(201);
    }
    server
        .mint(json!({"product": "font-pack", "order_id": "P-font"}))
        .expect(201);
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = server
            .get(
                &format!("/v1/licenses?product=photo-pro&limit=2{after}"),
                Some(&server.admin),
            )
            .expect(200);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["order_id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["P-0", "P-1", "P-2", "P-3", "P-4"]);
    let revoked = server
        .get("/v1/licenses?status=revoked", Some(&server.admin))
        .expect(200);
    assert_eq!(revoked["items"], json!([]));
    server
        .get("/v1/licenses?limit=500", Some(&server.admin))
        .expect_problem(400, "invalid_parameter");
    server
        .get("/v1/licenses?status=happy", Some(&server.admin))
        .expect_problem(400, "invalid_parameter");
}

both_engines!(a_batch_answers_each_item_and_one_bad_item_does_not_sink_the_others);
fn a_batch_answers_each_item_and_one_bad_item_does_not_sink_the_others(engine: Engine) {
    let server = TestServer::start_on(engine);
    let body = server
        .post(
            "/v1/licenses/batch",
            Some(&server.admin),
            &json!({"licenses": [
                {"product": "photo-pro", "order_id": "B-1"},
                {"product": "nope", "order_id": "B-2"},
                {"product": "font-pack", "order_id": "B-3"},
                {"order_id": "B-4"},
                {"product": "photo-pro", "order_id": "B-1"},
            ]}),
        )
        .expect(200);
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 201, 400, 200]);
    assert_eq!(results[1]["error"]["code"], "unknown_product");
    assert_eq!(results[3]["error"]["code"], "missing_field");
    assert_eq!(results[3]["error"]["field"], "product");
    assert_eq!(results[0]["key"], results[4]["key"]);
    server
        .get("/v1/licenses?order_id=B-3", Some(&server.admin))
        .expect(200)["items"][0]["id"]
        .as_str()
        .unwrap();
}

both_engines!(a_batch_of_a_thousand_is_accepted_and_empty_or_larger_batches_are_refused);
fn a_batch_of_a_thousand_is_accepted_and_empty_or_larger_batches_are_refused(engine: Engine) {
    let server = TestServer::start_on(engine);
    let items: Vec<_> = (0..1000)
        .map(|i| json!({"product": "photo-pro", "order_id": format!("K{i}")}))
        .collect();
    let body = server
        .post(
            "/v1/licenses/batch",
            Some(&server.admin),
            &json!({ "licenses": items }),
        )
        .expect(200);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r["status"] == 201));
    server
        .post(
            "/v1/licenses/batch",
            Some(&server.admin),
            &json!({"licenses": []}),
        )
        .expect_problem(400, "empty_batch");
    let too_many: Vec<_> = (0..1001)
        .map(|i| json!({"order_id": i.to_string()}))
        .collect();
    server
        .post(
            "/v1/licenses/batch",
            Some(&server.admin),
            &json!({ "licenses": too_many }),
        )
        .expect_problem(400, "batch_too_large");
}

#[test]
fn a_batch_body_may_exceed_64_kib_but_a_single_mint_may_not() {
    let server = TestServer::start();
    let items: Vec<_> = (0..400)
        .map(|i| {
            json!({"product": "photo-pro", "order_id": format!("BIG-{i}"),
                   "customer_email": format!("customer-{i}@example.com"),
                   "metadata": {"note": "x".repeat(120)}})
        })
        .collect();
    let body = json!({ "licenses": items });
    assert!(body.to_string().len() > 64 * 1024);
    let results = server
        .post("/v1/licenses/batch", Some(&server.admin), &body)
        .expect(200);
    assert_eq!(results["results"].as_array().unwrap().len(), 400);
}
