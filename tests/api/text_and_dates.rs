//! Free text and dates (security finding F10): no control characters but newline
//! and tab in reasons, messages and metadata, no invisible format characters in
//! order ids, and no date past 9999-12-31 accepted or produced.

use serde_json::json;

use crate::helpers::{both_engines, Engine, TestServer};

#[test]
fn control_characters_and_invisible_format_characters_are_refused_where_text_is_kept() {
    let server = TestServer::start();
    let id = server
        .mint(json!({"product": "photo-pro", "order_id": "text-1"}))
        .expect(201)["license"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = Some(server.admin.as_str());
    for (case, path, body) in [
        (
            "NUL in an order id",
            "/v1/licenses",
            json!({"product": "photo-pro", "order_id": "a\u{0}b"}),
        ),
        (
            "zero-width space in an order id",
            "/v1/licenses",
            json!({"product": "photo-pro", "order_id": "ord\u{200B}er"}),
        ),
        (
            "right-to-left override in an order id",
            "/v1/licenses",
            json!({"product": "photo-pro", "order_id": "\u{202E}fdp.exe"}),
        ),
        (
            "NUL in a metadata key",
            "/v1/licenses",
            json!({"product": "photo-pro", "order_id": "m1", "metadata": {"k\u{0}": 1}}),
        ),
        (
            "ESC in a metadata value",
            "/v1/licenses",
            json!({"product": "photo-pro", "order_id": "m2", "metadata": {"k": ["\u{1b}[31m"]}}),
        ),
        (
            "ESC in a reason",
            &format!("/v1/licenses/{id}/suspend"),
            json!({"reason": "\u{1b}[31mred"}),
        ),
        (
            "NUL in a grace reason",
            &format!("/v1/licenses/{id}/grace-extension"),
            json!({"remedy": "extend", "reason": "a\u{0}", "days": 5}),
        ),
    ] {
        let r = server.post(path, admin, &body);
        r.expect_problem(422, "invalid_field");
        assert!(r.body["field"].is_string(), "{case}: {}", r.body);
    }
    // Newlines and tabs are text.
    server
        .post(
            &format!("/v1/licenses/{id}/suspend"),
            admin,
            &json!({"reason": "line one\n\tline two"}),
        )
        .expect(200);
    server
        .mint(json!({"product": "photo-pro", "order_id": "m3", "metadata": {"note": "a\nb"}}))
        .expect(201);
}

both_engines!(no_date_past_9999_is_accepted_or_produced_and_renewal_beyond_it_is_422);
fn no_date_past_9999_is_accepted_or_produced_and_renewal_beyond_it_is_422(engine: Engine) {
    let server = TestServer::start_on(engine);
    let admin = Some(server.admin.as_str());
    // 9999-12-31T23:30:00-01:00 is 10000-01-01 in UTC.
    for field in ["purchased_at", "expires_at"] {
        let r = server.mint(json!({
            "product": "font-pack",
            "order_id": format!("late-{field}"),
            field: "9999-12-31T23:30:00-01:00",
        }));
        r.expect_problem(422, "date_out_of_range");
    }
    let minted = server
        .mint(json!({"product": "font-pack", "order_id": "far-future"}))
        .expect(201);
    let id = minted["license"]["id"].as_str().unwrap();
    let mut refused = None;
    for i in 0..100 {
        let r = server.post(
            &format!("/v1/licenses/{id}/renew"),
            admin,
            &json!({"days": 36_500}),
        );
        if r.status != 200 {
            refused = Some((i, r));
            break;
        }
        let expires = r.body["license"]["expires_at"].as_str().unwrap().to_owned();
        assert!(
            expires.len() == 20 && expires.as_str() <= "9999-12-31T23:59:59Z",
            "{expires}"
        );
    }
    let (renewals, r) = refused.expect("renewal went on past 9999");
    r.expect_problem(422, "date_out_of_range");
    assert!(renewals >= 70, "refused after only {renewals} renewals");
    let after = server.get(&format!("/v1/licenses/{id}"), admin).expect(200);
    assert!(after["license"]["expires_at"].as_str().unwrap() <= "9999-12-31T23:59:59Z");
}
