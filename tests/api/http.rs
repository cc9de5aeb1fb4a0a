//! HTTP details (security findings F7, F8, F10): `Allow` on every 405, HEAD wherever
//! GET works, bodies keyclerk would misread are 415, two `Authorization` headers are
//! 400, and answers that carry a secret are not stored by caches.

use std::io::{Read, Write};

use keyclerk::routes::{allowed_methods, ROUTES};
use serde_json::json;

use crate::helpers::{into_resp, TestServer};

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern.replace("{id}", "x1")
}

#[test]
fn every_405_names_the_methods_the_route_has_in_allow() {
    let server = TestServer::start();
    let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
    paths.dedup();
    for path in paths {
        let expected = allowed_methods(path);
        assert!(!expected.is_empty(), "{path}");
        // Every method the path does not have, with a token and without one (a 405
        // comes before any access check: the method has no access to check).
        let missing = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO",
        ]
        .into_iter()
        .filter(|m| !expected.split(", ").any(|e| e == *m));
        for method in missing {
            for token in [Some(server.admin.as_str()), None] {
                let r = into_resp(server.request(method, &concrete(path), token).call());
                assert_eq!(r.status, 405, "{method} {path}");
                if method != "HEAD" {
                    assert_eq!(r.code(), "method_not_allowed", "{method} {path}");
                }
                assert_eq!(
                    r.header("allow"),
                    Some(expected.as_str()),
                    "{method} {path}"
                );
            }
        }
        // The methods it names are the table's, HEAD with every GET.
        let table: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.path == path)
            .flat_map(|r| {
                if r.method == "GET" {
                    vec!["GET", "HEAD"]
                } else {
                    vec![r.method]
                }
            })
            .collect();
        assert_eq!(expected, table.join(", "));
    }
    // A POST-only route names POST; a GET and POST route both and HEAD.
    assert_eq!(allowed_methods("/v1/licenses/batch"), "POST");
    assert_eq!(allowed_methods("/v1/licenses"), "GET, HEAD, POST");
}

#[test]
fn head_answers_wherever_get_does_with_the_same_status_and_access_and_no_body() {
    let server = TestServer::start();
    let id = server
        .mint(json!({"product": "photo-pro", "order_id": "head-1"}))
        .expect(201)["license"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for route in ROUTES.iter().filter(|r| r.method == "GET") {
        let path = route
            .path
            .replace("{id}", &id)
            .replace("/v1/credits", "/v1/credits?email=a@example.com");
        for token in [None, Some(server.admin.as_str())] {
            let get = into_resp(server.request("GET", &path, token).call());
            let head = server.request("HEAD", &path, token).call();
            let head = match head {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => panic!("HEAD {path}: {e}"),
            };
            assert_eq!(
                head.status(),
                get.status,
                "HEAD {path} with token {}",
                token.is_some()
            );
            assert_eq!(
                head.header("content-type").unwrap_or(""),
                get.content_type,
                "{path}"
            );
            assert_eq!(head.into_string().unwrap(), "", "HEAD {path} sent a body");
        }
    }
    // The health check a load balancer sends.
    let r = server.request("HEAD", "/healthz", None).call().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_compressed_body_or_a_charset_other_than_utf8_is_415() {
    let server = TestServer::start();
    let body = br#"{"license_key":"nope"}"#;
    for (case, encoding, content_type, code) in [
        (
            "gzip",
            Some("gzip"),
            "application/json",
            "unsupported_content_encoding",
        ),
        (
            "bogus",
            Some("bogus"),
            "application/json",
            "unsupported_content_encoding",
        ),
        (
            "listed",
            Some("identity, br"),
            "application/json",
            "unsupported_content_encoding",
        ),
        (
            "utf-16",
            None,
            "application/json; charset=utf-16",
            "unsupported_charset",
        ),
        (
            "latin-1",
            None,
            "application/json; charset=\"ISO-8859-1\"",
            "unsupported_charset",
        ),
    ] {
        let mut r = server
            .request("POST", "/v1/validate", None)
            .set("Content-Type", content_type);
        if let Some(e) = encoding {
            r = r.set("Content-Encoding", e);
        }
        let resp = into_resp(r.send_bytes(body));
        resp.expect_problem(415, code);
        if encoding.is_some() {
            assert_eq!(resp.header("accept-encoding"), Some("identity"), "{case}");
        }
    }
    // What is meant is accepted: identity, and UTF-8 however it is spelled.
    for (encoding, content_type) in [
        (Some("identity"), "application/json"),
        (None, "application/json; charset=utf-8"),
        (None, "application/json; charset=\"UTF-8\""),
    ] {
        let mut r = server
            .request("POST", "/v1/validate", None)
            .set("Content-Type", content_type);
        if let Some(e) = encoding {
            r = r.set("Content-Encoding", e);
        }
        let resp = into_resp(r.send_bytes(body));
        assert_eq!(resp.status, 200, "{content_type}: {}", resp.body);
    }
}

#[test]
fn two_authorization_headers_are_400_in_either_order() {
    let server = TestServer::start();
    let vendor = server.token("vendor");
    for (first, second) in [(&server.admin, &vendor), (&vendor, &server.admin)] {
        // ureq sets one value per header name: the request is written by hand.
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            stream,
            "GET /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {first}\r\nAuthorization: Bearer {second}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        assert!(response.contains("application/problem+json"), "{response}");
        assert!(
            response.contains("\"code\":\"duplicate_authorization\""),
            "{response}"
        );
    }
    // One is fine.
    server.get("/v1/tokens", Some(&server.admin)).expect(200);
}

#[test]
fn answers_that_carry_secrets_or_customer_data_are_not_stored_by_caches() {
    let server = TestServer::start();
    let created = server.post(
        "/v1/tokens",
        Some(&server.admin),
        &json!({"role": "vendor", "name": "cache test"}),
    );
    assert_eq!(created.status, 201);
    assert_eq!(
        created.header("cache-control"),
        Some("no-store"),
        "token creation"
    );
    let minted = server.mint(json!({"product": "photo-pro", "order_id": "cache-1"}));
    assert_eq!(minted.status, 201);
    assert_eq!(minted.header("cache-control"), Some("no-store"), "mint");
    let id = minted.body["license"]["id"].as_str().unwrap();
    let key = minted.body["key"].as_str().unwrap();
    for (what, r) in [
        (
            "license with key",
            server.get(&format!("/v1/licenses/{id}"), Some(&server.admin)),
        ),
        (
            "look-up by key",
            server.get(&format!("/v1/licenses?key={key}"), Some(&server.admin)),
        ),
        (
            "activation",
            server.post(
                "/v1/activations",
                None,
                &json!({"license_key": key, "fingerprint": "fp-cache"}),
            ),
        ),
        (
            "grace decision",
            server.post(
                &format!("/v1/licenses/{id}/grace-extension"),
                Some(&server.admin),
                &json!({"remedy": "extend", "reason": "cache test", "days": 10}),
            ),
        ),
    ] {
        assert!(r.status < 300, "{what}: {}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    }
    // Public documents may be cached.
    let keys = server.get("/v1/keys", None);
    assert_eq!(keys.header("cache-control"), None);
}

#[test]
fn a_request_that_does_not_parse_is_logged_at_debug_not_error() {
    let dirs = crate::helpers::Dirs::new();
    let server = crate::process::ServerProcess::spawn(&dirs, &[("KEYCLERK_LOG", "debug")]);
    for garbage in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\0b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(garbage.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    }
    let log = server.stop();
    let parse_errors: Vec<&str> = log.lines().filter(|l| l.contains("stream error")).collect();
    assert!(
        !parse_errors.is_empty(),
        "actix did not report them:\n{log}"
    );
    assert!(
        parse_errors.iter().all(|l| l.contains("DEBUG")),
        "{parse_errors:?}"
    );
    assert!(!log.contains(" ERROR"), "{log}");
}
