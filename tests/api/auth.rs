//! API tokens: who may call what.

use std::os::unix::fs::PermissionsExt;

use keyclerk::startup::ADMIN_TOKEN_FILE;
use serde_json::json;

use crate::helpers::{both_engines, Engine, TestServer};

#[test]
fn the_first_start_writes_an_admin_token_to_a_private_file() {
    let server = TestServer::start();
    let path = server.dirs().data().join(ADMIN_TOKEN_FILE);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(server.admin.starts_with("kc_"));
    server.get("/v1/tokens", Some(&server.admin)).expect(200);
}

both_engines!(missing_malformed_unknown_and_revoked_tokens_get_401);
fn missing_malformed_unknown_and_revoked_tokens_get_401(engine: Engine) {
    let server = TestServer::start_on(engine);
    let mint = json!({"product": "photo-pro", "order_id": "AU-1"});
    let missing = server.post("/v1/licenses", None, &mint);
    missing.expect_problem(401, "missing_token");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    for bad in ["", "kc_", "not-a-token", "Basic abc"] {
        let r = crate::helpers::TestServer::request(&server, "POST", "/v1/licenses", None)
            .set("Authorization", &format!("Bearer {bad}"))
            .send_json(&mint);
        let status = match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(status, 401, "{bad:?}");
    }
    server
        .post("/v1/licenses", Some("kc_unknownunknownunknown"), &mint)
        .expect_problem(401, "invalid_token");
    let vendor = server.token("vendor");
    server
        .post("/v1/licenses", Some(&vendor), &mint)
        .expect(201);
    let listed = server.get("/v1/tokens", Some(&server.admin)).expect(200);
    let id = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "vendor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            &format!("/v1/tokens/{id}/revoke"),
            Some(&server.admin),
            &json!({}),
        )
        .expect(200);
    server
        .post("/v1/licenses", Some(&vendor), &mint)
        .expect_problem(401, "token_revoked");
}

both_engines!(a_wrong_role_gets_403);
fn a_wrong_role_gets_403(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let vendor = server.token("vendor");
    server
        .post(
            "/v1/licenses",
            Some(&support),
            &json!({"product": "photo-pro", "order_id": "AU-2"}),
        )
        .expect_problem(403, "forbidden");
    server
        .get("/v1/tokens", Some(&vendor))
        .expect_problem(403, "forbidden");
    server
        .post(
            "/v1/tokens",
            Some(&vendor),
            &json!({"role": "admin", "name": "escalate"}),
        )
        .expect_problem(403, "forbidden");
}

both_engines!(token_listings_never_show_secrets);
fn token_listings_never_show_secrets(engine: Engine) {
    let server = TestServer::start_on(engine);
    let vendor = server.token("vendor");
    let listed = server
        .get("/v1/tokens", Some(&server.admin))
        .expect(200)
        .to_string();
    assert!(!listed.contains(&vendor));
    assert!(!listed.contains(&server.admin));
    assert!(
        listed.contains(&vendor[..10]),
        "the visible prefix is shown"
    );
}

#[test]
fn public_endpoints_need_no_token() {
    let server = TestServer::start();
    server.get("/healthz", None).expect(200);
    server.get("/readyz", None).expect(200);
    server.get("/v1/keys", None).expect(200);
}
