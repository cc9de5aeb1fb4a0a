//! Forwarded addresses behind a trusted proxy (security finding F6): a hop written
//! `ip:port` is its own client, so one client's failures lock out nobody else.

use serde_json::json;

use crate::helpers::{into_resp, Dirs, Resp, TestServer};

fn validate(server: &TestServer, header: (&str, &str)) -> Resp {
    into_resp(
        server
            .request("POST", "/v1/validate", None)
            .set(header.0, header.1)
            .send_json(json!({"license_key": "nope"})),
    )
}

#[test]
fn behind_a_proxy_clients_written_with_ports_are_counted_apart_from_each_other_and_the_proxy() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.trusted_proxies = vec!["127.0.0.1".into()];
        s.rate_limits.failed_lookups_per_address_per_hour = 3;
    });
    for _ in 0..3 {
        let r = validate(&server, ("X-Forwarded-For", "7.7.7.7:1234"));
        assert_eq!(r.body["code"], "NOT_FOUND");
    }
    validate(&server, ("X-Forwarded-For", "7.7.7.7:999")).expect_problem(429, "rate_limited");
    // Another client behind the same proxy, and the proxy itself, are not blocked.
    let other = validate(&server, ("X-Forwarded-For", "[2001:db8::6]:4321"));
    assert_eq!(other.body["code"], "NOT_FOUND");
    let proxy = validate(&server, ("X-Other", "x"));
    assert_eq!(proxy.body["code"], "NOT_FOUND");
    // A hop that is no address is a client of its own, not the proxy.
    for _ in 0..3 {
        validate(&server, ("X-Forwarded-For", "garbage"));
    }
    validate(&server, ("X-Forwarded-For", "garbage")).expect_problem(429, "rate_limited");
    let proxy = validate(&server, ("X-Other", "x"));
    assert_eq!(proxy.body["code"], "NOT_FOUND");
}

#[test]
fn with_forwarded_configured_its_for_is_read_and_x_forwarded_for_is_not() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.trusted_proxies = vec!["127.0.0.1".into()];
        s.rate_limits.forwarded_header = keyclerk::service::limits::ForwardedHeader::Forwarded;
        s.rate_limits.failed_lookups_per_address_per_hour = 2;
    });
    for _ in 0..2 {
        validate(
            &server,
            ("Forwarded", "for=\"198.51.100.7:80\";proto=https"),
        );
    }
    validate(&server, ("Forwarded", "for=198.51.100.7")).expect_problem(429, "rate_limited");
    // X-Forwarded-For is the client's word here: it does not move the count.
    let spoof = validate(&server, ("X-Forwarded-For", "203.0.113.1"));
    assert_eq!(spoof.body["code"], "NOT_FOUND");
    let spoof = validate(&server, ("X-Forwarded-For", "203.0.113.2"));
    assert_eq!(spoof.body["code"], "NOT_FOUND");
    validate(&server, ("X-Forwarded-For", "203.0.113.3")).expect_problem(429, "rate_limited");
}
