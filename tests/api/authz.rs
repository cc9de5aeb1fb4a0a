//! The authorization matrix, built from the route table itself: every route gets no
//! token, a malformed one, an unknown one, a revoked one and one of each role, and
//! answers 401, 403 or lets the request through as its access says. A new route is
//! in the table, so it is in this test.

use keyclerk::routes::{Access, ROUTES};
use serde_json::json;

use crate::helpers::{both_engines, into_resp, Engine, Resp, TestServer};

#[derive(Debug, Clone, Copy)]
enum Cred<'a> {
    None,
    Malformed,
    Unknown,
    Revoked(&'a str),
    Role(&'static str, &'a str),
}

const AUTH_CODES: [&str; 4] = [
    "missing_token",
    "invalid_token",
    "token_revoked",
    "forbidden",
];

fn call(server: &TestServer, method: &str, path: &str, cred: Cred<'_>) -> Resp {
    let mut r = server.request(method, path, None);
    r = match cred {
        Cred::None => r,
        Cred::Malformed => r.set("Authorization", "Basic dXNlcjpwYXNz"),
        Cred::Unknown => r.set(
            "Authorization",
            "Bearer kc_0123456789abcdefghijklmnopqrstuvwxyzABCD",
        ),
        Cred::Revoked(t) | Cred::Role(_, t) => r.set("Authorization", &format!("Bearer {t}")),
    };
    into_resp(if method == "POST" {
        r.send_json(json!({}))
    } else {
        r.call()
    })
}

both_engines!(every_route_answers_each_credential_as_its_access_says);
fn every_route_answers_each_credential_as_its_access_says(engine: Engine) {
    let server = TestServer::start_on(engine);
    let vendor = server.token("vendor");
    let support = server.token("support");
    let made = server
        .post(
            "/v1/tokens",
            Some(&server.admin),
            &json!({"role": "vendor", "name": "to revoke"}),
        )
        .expect(201);
    let revoked = made["secret"].as_str().unwrap().to_owned();
    let revoked_id = made["token"]["id"].as_str().unwrap();
    server
        .post(
            &format!("/v1/tokens/{revoked_id}/revoke"),
            Some(&server.admin),
            &json!({}),
        )
        .expect(200);
    server.get("/v1/licenses", Some(&vendor)).expect(200);

    let creds = [
        Cred::None,
        Cred::Malformed,
        Cred::Unknown,
        Cred::Revoked(&revoked),
        Cred::Role("admin", &server.admin),
        Cred::Role("vendor", &vendor),
        Cred::Role("support", &support),
    ];
    let mut checked = 0;
    for route in ROUTES {
        let path = route.path.replace("{id}", "x_unknown");
        for cred in creds {
            let r = call(&server, route.method, &path, cred);
            let what = format!(
                "{} {} with {cred:?}: {} {}",
                route.method, route.path, r.status, r.body
            );
            assert!(r.status < 500, "{what}");
            let expected: Option<(u16, &str)> = match (route.access, cred) {
                (Access::Anyone | Access::LicenseKey | Access::ProviderSignature, _) => None,
                // No license key in the body either: no credentials at all.
                (Access::KeyOrRoles(_), Cred::None) => Some((401, "missing_credentials")),
                (_, Cred::None) => Some((401, "missing_token")),
                (_, Cred::Malformed | Cred::Unknown) => Some((401, "invalid_token")),
                (_, Cred::Revoked(_)) => Some((401, "token_revoked")),
                (Access::Roles(roles) | Access::KeyOrRoles(roles), Cred::Role(role, _)) => {
                    let may = role == "admin" || roles.iter().any(|r| r.as_str() == role);
                    (!may).then_some((403, "forbidden"))
                }
            };
            match expected {
                Some((status, code)) => {
                    assert_eq!((r.status, r.code()), (status, code), "{what}");
                    r.expect_problem(status, code);
                }
                None => assert!(
                    r.status != 401 && !AUTH_CODES.contains(&r.code()),
                    "allowed, yet refused: {what}"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * creds.len());
    assert!(
        ROUTES.len() >= 25,
        "the table lost routes: {}",
        ROUTES.len()
    );
}
