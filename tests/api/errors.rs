//! Bad input gets problem+json with a stable code, never a 500.

use serde_json::json;

use crate::helpers::TestServer;

#[test]
fn each_kind_of_bad_request_gets_its_status_and_code() {
    let server = TestServer::start();
    let t = Some(server.admin.as_str());
    let big = format!(
        r#"{{"product":"photo-pro","order_id":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    for (case, content_type, body, status, code, field) in [
        (
            "too large",
            "application/json",
            big.as_str(),
            413,
            "payload_too_large",
            None,
        ),
        (
            "wrong content type",
            "text/plain",
            r#"{"product":"photo-pro","order_id":"E"}"#,
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "malformed json",
            "application/json",
            r#"{"product": "photo-pro", "#,
            400,
            "invalid_json",
            None,
        ),
        (
            "missing field",
            "application/json",
            r#"{"product":"photo-pro"}"#,
            400,
            "missing_field",
            Some("order_id"),
        ),
        (
            "wrong type",
            "application/json",
            r#"{"product":"photo-pro","order_id":"E","seats":"many"}"#,
            400,
            "invalid_field",
            Some("seats"),
        ),
        (
            "unknown field",
            "application/json",
            r#"{"product":"photo-pro","order_id":"E","colour":"red"}"#,
            400,
            "invalid_field",
            Some("colour"),
        ),
        (
            "negative seats",
            "application/json",
            r#"{"product":"photo-pro","order_id":"E","seats":-1}"#,
            400,
            "invalid_field",
            Some("seats"),
        ),
        (
            "zero seats",
            "application/json",
            r#"{"product":"photo-pro","order_id":"E","seats":0}"#,
            422,
            "invalid_field",
            Some("seats"),
        ),
        (
            "bad email",
            "application/json",
            r#"{"product":"photo-pro","order_id":"E","customer_email":"@"}"#,
            422,
            "invalid_field",
            Some("customer_email"),
        ),
        (
            "bad time",
            "application/json",
            r#"{"product":"photo-pro","order_id":"E","purchased_at":"last week"}"#,
            422,
            "invalid_field",
            Some("purchased_at"),
        ),
        (
            "expiry before purchase",
            "application/json",
            r#"{"product":"photo-pro","order_id":"E","purchased_at":"2026-01-01T00:00:00Z","expires_at":"2025-01-01T00:00:00Z"}"#,
            422,
            "invalid_expiry",
            None,
        ),
        (
            "empty order id",
            "application/json",
            r#"{"product":"photo-pro","order_id":"  "}"#,
            422,
            "invalid_field",
            Some("order_id"),
        ),
        (
            "not an object",
            "application/json",
            "[]",
            400,
            "invalid_field",
            None,
        ),
        (
            "empty body",
            "application/json",
            "",
            400,
            "invalid_json",
            None,
        ),
    ] {
        let r = server.post_raw("/v1/licenses", t, content_type, body.as_bytes());
        assert_eq!(r.status, status, "{case}: {}", r.body);
        assert_eq!(r.code(), code, "{case}: {}", r.body);
        assert_eq!(r.content_type, "application/problem+json", "{case}");
        if let Some(field) = field {
            assert_eq!(r.body["field"], field, "{case}");
        }
    }
    let none = server.get("/v1/licenses?order_id=E", t).expect(200);
    assert_eq!(
        none["items"],
        json!([]),
        "no bad request left anything behind"
    );
}

#[test]
fn unknown_routes_and_methods_are_problems_too() {
    let server = TestServer::start();
    server.get("/nope", None).expect_problem(404, "not_found");
    server
        .get("/v1/licenses/batch", Some(&server.admin))
        .expect_problem(405, "method_not_allowed");
    server
        .post(
            "/v1/licenses/lic_00000000000000000000000000/explode",
            Some(&server.admin),
            &json!({}),
        )
        .expect_problem(404, "not_found");
    server
        .get("/v1/licenses?colour=red", Some(&server.admin))
        .expect_problem(400, "invalid_parameter");
}

#[test]
fn a_lifecycle_body_with_days_on_a_non_renewal_is_refused() {
    let server = TestServer::start();
    let id = server
        .mint(json!({"product": "photo-pro", "order_id": "E-2"}))
        .expect(201)["license"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            &format!("/v1/licenses/{id}/suspend"),
            Some(&server.admin),
            &json!({"days": 3}),
        )
        .expect_problem(400, "invalid_field");
    server
        .post(
            &format!("/v1/licenses/{id}/renew"),
            Some(&server.admin),
            &json!({"days": 0}),
        )
        .expect_problem(422, "invalid_field");
}

#[test]
fn a_bad_email_is_reported_under_the_field_that_carried_it() {
    let server = TestServer::start();
    let support = server.token("support");
    let minted = server
        .mint(json!({"product": "photo-pro", "order_id": "EMAIL-1"}))
        .expect(201);
    let id = minted["license"]["id"].as_str().unwrap();
    let key = minted["key"].as_str().unwrap();
    for (path, token, body, field) in [
        (
            "/v1/licenses".to_owned(),
            Some(server.admin.clone()),
            json!({"product": "photo-pro", "order_id": "EMAIL-2", "customer_email": "nope"}),
            "customer_email",
        ),
        (
            "/v1/claims".to_owned(),
            None,
            json!({"license_key": key, "email": "nope"}),
            "email",
        ),
        (
            format!("/v1/licenses/{id}/grace-extension"),
            Some(support.clone()),
            json!({"remedy": "credit", "reason": "r", "email": "nope"}),
            "email",
        ),
    ] {
        let r = server.post(&path, token.as_deref(), &body);
        r.expect_problem(422, "invalid_field");
        assert_eq!(r.body["field"], field, "{path}: {}", r.body);
    }
}
