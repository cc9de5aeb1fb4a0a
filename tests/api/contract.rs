//! The published contract and the server agree at the edges the document states:
//! which query parameters combine, what a body is, how whole numbers may be
//! written, which fields each remedy takes, what an email is.

use serde_json::json;

use crate::helpers::TestServer;

#[test]
fn license_look_ups_take_one_key_and_no_page_parameters() {
    let server = TestServer::start();
    let admin = Some(server.admin.as_str());
    let minted = server
        .mint(json!({"product": "photo-pro", "order_id": "C-1", "customer_email": "c@example.com"}))
        .expect(201);
    for (case, query) in [
        ("two look-ups", "order_id=C-1&email=c@example.com"),
        ("three look-ups", "order_id=C-1&email=c@example.com&key=x"),
        ("a look-up with a status", "order_id=C-1&status=active"),
        ("a look-up with a limit", "email=c@example.com&limit=5"),
        ("a key with a cursor", "key=x&after=lic_x"),
    ] {
        let r = server.get(&format!("/v1/licenses?{query}"), admin);
        r.expect_problem(400, "conflicting_parameters");
        assert!(!r.body["detail"].as_str().unwrap().is_empty(), "{case}");
    }
    for (case, query, found) in [
        ("by order", "order_id=C-1".to_owned(), 1),
        ("by email", "email=c@example.com".to_owned(), 1),
        (
            "by key",
            format!("key={}", minted["key"].as_str().unwrap()),
            1,
        ),
        ("a page", "status=active&limit=5".to_owned(), 1),
        ("a malformed key finds nothing", "key=nope".to_owned(), 0),
    ] {
        let body = server
            .get(&format!("/v1/licenses?{query}"), admin)
            .expect(200);
        assert_eq!(body["items"].as_array().unwrap().len(), found, "{case}");
    }
    for (case, query) in [
        ("an empty order id", "order_id="),
        ("an order id of spaces", "order_id=%20%20"),
        ("an email with a space", "email=%20c@example.com"),
        ("limit 0", "limit=0"),
        ("an unknown parameter", "colour=red"),
    ] {
        let r = server.get(&format!("/v1/licenses?{query}"), admin);
        assert_eq!(r.status, 400, "{case}: {}", r.body);
        assert_eq!(r.code(), "invalid_parameter", "{case}");
    }
}

#[test]
fn a_body_is_an_object_never_the_array_of_its_fields() {
    let server = TestServer::start();
    let admin = Some(server.admin.as_str());
    for (path, token) in [
        ("/v1/licenses", admin),
        ("/v1/activations", None),
        ("/v1/validate", None),
        ("/v1/claims", None),
        ("/v1/licenses/lic_00000000000000000000000000/renew", admin),
    ] {
        for body in [
            json!([]),
            json!(["photo-pro", "A-1"]),
            json!("text"),
            json!(7),
        ] {
            let r = server.post(path, token, &body);
            r.expect_problem(400, "invalid_field");
            assert_eq!(r.body["field"], "body", "{path} {body}");
        }
    }
    // In a batch, an item that is not an object is refused as that item.
    let body = server
        .post(
            "/v1/licenses/batch",
            admin,
            &json!({"licenses": [["photo-pro", "B-1"], {"product": "photo-pro", "order_id": "B-2"}]}),
        )
        .expect(200);
    assert_eq!(body["results"][0]["error"]["code"], "invalid_field");
    assert_eq!(body["results"][1]["status"], 201);
}

#[test]
fn an_optional_body_may_be_left_out_or_null() {
    let server = TestServer::start();
    let admin = Some(server.admin.as_str());
    let id = server
        .mint(json!({"product": "photo-pro", "order_id": "N-1"}))
        .expect(201)["license"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(&format!("/v1/licenses/{id}/suspend"), admin, &json!(null))
        .expect(200);
    let r = server.post_raw(
        &format!("/v1/licenses/{id}/reinstate"),
        admin,
        "application/json",
        b"",
    );
    // An empty body with a JSON content type is no JSON at all.
    r.expect_problem(400, "invalid_json");
    let r = into_empty(&server, &format!("/v1/licenses/{id}/reinstate"));
    assert_eq!(r, 200);
}

/// POST with no body and no content type.
fn into_empty(server: &TestServer, path: &str) -> u16 {
    match server.request("POST", path, Some(&server.admin)).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(e) => panic!("{path}: {e}"),
    }
}

#[test]
fn an_integer_may_be_written_with_a_fraction_of_zero_but_not_with_another() {
    let server = TestServer::start();
    let minted = server
        .mint(json!({"product": "photo-pro", "order_id": "W-1", "seats": 4.0}))
        .expect(201);
    assert_eq!(minted["license"]["seats"], 4);
    let r = server.mint(json!({"product": "photo-pro", "order_id": "W-2", "seats": 4.5}));
    r.expect_problem(400, "invalid_field");
    assert_eq!(r.body["field"], "seats");
    let id = minted["license"]["id"].as_str().unwrap();
    server
        .post(
            &format!("/v1/licenses/{id}/grace-extension"),
            Some(&server.token("support")),
            &json!({"remedy": "extend", "reason": "late", "days": 30.0}),
        )
        .expect(201);
}

#[test]
fn each_remedy_takes_only_its_own_fields() {
    let server = TestServer::start();
    let support = server.token("support");
    let id = server
        .mint(json!({"product": "photo-pro", "order_id": "R-1", "customer_email": "r@example.com"}))
        .expect(201)["license"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/licenses/{id}/grace-extension");
    for (case, body, field) in [
        (
            "days with credit",
            json!({"remedy": "credit", "reason": "r", "days": 30}),
            "days",
        ),
        (
            "a product with extend",
            json!({"remedy": "extend", "reason": "r", "product": "font-pack"}),
            "product",
        ),
        (
            "an email with refund",
            json!({"remedy": "refund", "reason": "r", "email": "r@example.com"}),
            "email",
        ),
    ] {
        let r = server.post(&path, Some(&support), &body);
        r.expect_problem(422, "invalid_field");
        assert_eq!(r.body["field"], field, "{case}");
    }
    // Null is the same as leaving a field out.
    server
        .post(
            &path,
            Some(&support),
            &json!({"remedy": "decline", "reason": "no", "days": null, "product": null, "email": null}),
        )
        .expect(201);
}

#[test]
fn an_email_is_read_as_sent() {
    let server = TestServer::start();
    for (case, email, ok) in [
        ("plain", "ann@example.com", true),
        ("upper case, stored lower", "Ann@Example.COM", true),
        ("surrounding spaces", " ann@example.com ", false),
        ("not ascii", "ann@exämple.com", false),
        ("a quoted local part", "\"ann b\"@example.com", false),
        ("two dots", "ann..b@example.com", false),
    ] {
        let r = server.mint(json!({"product": "photo-pro", "order_id": format!("E-{case}"), "customer_email": email}));
        if ok {
            let body = r.expect(201);
            assert_eq!(
                body["license"]["customer_email"],
                email.to_ascii_lowercase(),
                "{case}"
            );
        } else {
            r.expect_problem(422, "invalid_field");
            assert_eq!(r.body["field"], "customer_email", "{case}");
        }
    }
}

#[test]
fn a_deactivation_without_a_key_or_a_token_is_unauthenticated() {
    let server = TestServer::start();
    let r = server.post(
        "/v1/activations/act_00000000000000000000000000/deactivate",
        None,
        &json!({}),
    );
    r.expect_problem(401, "missing_credentials");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
}
