//! The console's customer page and admin pages: who may open them, CSRF and Origin
//! on their forms, tokens made on a page working over the API, escaping.

use keyclerk::domain::time;
use serde_json::json;

use crate::console::{staff, Browser, PASSWORD};
use crate::helpers::{both_engines, Dirs, Engine, TestServer};

/// The routes of this module's pages, with sample parameters.
const GETS: &[&str] = &[
    "/console/customers?email=ann%40example.com",
    "/console/customers/ann%40example.com",
    "/console/admin/users",
    "/console/admin/tokens",
    "/console/admin/audit",
];
const ADMIN_GETS: &[&str] = &[
    "/console/admin/users",
    "/console/admin/tokens",
    "/console/admin/audit",
];
const ADMIN_POSTS: &[&str] = &[
    "/console/admin/users",
    "/console/admin/users/disable",
    "/console/admin/users/reset",
    "/console/admin/tokens",
    "/console/admin/tokens/tok_x/revoke",
];

/// The secret a page shows once (the input marked `data-secret`).
pub fn shown_secret(body: &str) -> Option<String> {
    let at = body.find("data-secret")?;
    let before = &body[..at];
    let v = before.rfind("value=\"")?;
    let rest = &before[v + 7..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn signed_in<'s>(server: &'s TestServer, email: &str, role: &str) -> Browser<'s> {
    staff(server, email, role);
    let mut b = Browser::new(server);
    assert_eq!(b.sign_in(email, PASSWORD, None).status, 303);
    b
}

both_engines!(the_customer_and_admin_pages_send_a_visitor_to_sign_in_and_support_gets_403);
fn the_customer_and_admin_pages_send_a_visitor_to_sign_in_and_support_gets_403(engine: Engine) {
    let server = TestServer::start_on(engine);
    let mut visitor = Browser::new(&server);
    for path in GETS {
        let res = visitor.get(path);
        assert_eq!(res.status, 303, "{path}");
        let to = res.header("location").unwrap_or("");
        assert!(to.starts_with("/console/login?next="), "{path}: {to}");
    }
    for path in ADMIN_POSTS {
        let res = visitor.post(path, &[("csrf", "x"), ("email", "a@b.c")]);
        assert_eq!(res.status, 303, "{path}");
    }
    let mut ann = signed_in(&server, "ann@example.com", "support");
    let csrf = ann.csrf();
    for path in ADMIN_GETS {
        let res = ann.get(path);
        assert_eq!(res.status, 403, "{path}");
        assert!(res.body.contains("for admins"), "{path}");
    }
    for path in ADMIN_POSTS {
        let res = ann.post(
            path,
            &[
                ("csrf", &csrf),
                ("email", "x@example.com"),
                ("role", "admin"),
                ("name", "n"),
            ],
        );
        assert_eq!(res.status, 403, "{path}");
    }
    // Nothing was made by the refused forms.
    assert_eq!(
        server.dirs().query_i64("SELECT count(*) FROM staff_users"),
        1
    );
    let customer = ann.get("/console/customers?email=Ann%40Example.com");
    assert_eq!(customer.status, 303);
    assert_eq!(
        customer.header("location"),
        Some("/console/customers/Ann%40Example.com")
    );
    assert_eq!(ann.get("/console/customers/Ann%40Example.com").status, 200);
}

both_engines!(the_admin_forms_refuse_a_missing_csrf_token_and_a_foreign_origin);
fn the_admin_forms_refuse_a_missing_csrf_token_and_a_foreign_origin(engine: Engine) {
    let server = TestServer::start_on(engine);
    let mut boss = signed_in(&server, "boss@example.com", "admin");
    let csrf = boss.csrf();
    let own = format!("http://127.0.0.1:{}", server.port);
    let forms: &[(&str, &[(&str, &str)])] = &[
        (
            "/console/admin/users",
            &[("email", "new@example.com"), ("role", "support")],
        ),
        (
            "/console/admin/users/disable",
            &[("email", "boss@example.com")],
        ),
        (
            "/console/admin/users/reset",
            &[("email", "boss@example.com")],
        ),
        (
            "/console/admin/tokens",
            &[("name", "shop"), ("role", "vendor")],
        ),
    ];
    for (path, fields) in forms {
        let without = boss.post_from(path, fields, Some(&own));
        assert_eq!(without.status, 403, "{path} without a token");
        assert!(without.body.contains("expired"), "{path}");
        let mut wrong = fields.to_vec();
        wrong.push(("csrf", "not-the-token"));
        assert_eq!(
            boss.post_from(path, &wrong, Some(&own)).status,
            403,
            "{path}"
        );
        let mut with = fields.to_vec();
        with.push(("csrf", &csrf));
        let foreign = boss.post_from(path, &with, Some("http://evil.example"));
        assert_eq!(foreign.status, 403, "{path} from elsewhere");
        assert_eq!(
            boss.post_from(path, &with, None).status,
            403,
            "{path} no Origin"
        );
    }
    // Nothing changed: one account, still active, and no token but the first.
    assert_eq!(
        server.dirs().query_i64("SELECT count(*) FROM staff_users"),
        1
    );
    assert_eq!(
        server
            .dirs()
            .query_i64("SELECT count(*) FROM staff_users WHERE disabled_at IS NULL AND password_hash IS NOT NULL"),
        1
    );
    assert_eq!(
        server.dirs().query_i64("SELECT count(*) FROM api_tokens"),
        1
    );
}

both_engines!(a_token_made_on_the_tokens_page_works_over_the_api_until_revoked_there);
fn a_token_made_on_the_tokens_page_works_over_the_api_until_revoked_there(engine: Engine) {
    let server = TestServer::start_on(engine);
    let mut boss = signed_in(&server, "boss@example.com", "admin");
    let csrf = boss.csrf();
    let made = boss.post(
        "/console/admin/tokens",
        &[
            ("csrf", &csrf),
            ("name", "shop <b>\"1\"</b>"),
            ("role", "vendor"),
        ],
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let secret = shown_secret(&made.body).expect("the secret is shown");
    assert!(secret.starts_with("kc_"), "{secret}");
    assert!(
        made.body.contains("shop &#60;b&#62;&#34;1&#34;"),
        "the name is escaped"
    );
    assert!(!made.body.contains("<b>\"1\"</b>"));
    // It is a vendor token: it mints, and may not list tokens.
    server
        .mint(json!({"product": "photo-pro", "order_id": "page-1"}))
        .expect(201);
    server
        .post(
            "/v1/licenses",
            Some(&secret),
            &json!({"product": "photo-pro", "order_id": "page-2"}),
        )
        .expect(201);
    server
        .get("/v1/tokens", Some(&secret))
        .expect_problem(403, "forbidden");
    // The list shows it without its secret; a fresh page does not show the secret.
    let list = boss.get("/console/admin/tokens");
    assert_eq!(list.status, 200);
    assert!(!list.body.contains(&secret));
    let id = server.get("/v1/tokens", Some(&server.admin)).expect(200)["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "vendor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(list
        .body
        .contains(&format!("/console/admin/tokens/{id}/revoke")));
    let revoked = boss.post(
        &format!("/console/admin/tokens/{id}/revoke"),
        &[("csrf", &csrf)],
    );
    assert_eq!(revoked.status, 303);
    server
        .post(
            "/v1/licenses",
            Some(&secret),
            &json!({"product": "photo-pro", "order_id": "page-3"}),
        )
        .expect_problem(401, "token_revoked");
    // Both changes are the staff member's.
    for kind in ["token_created", "token_revoked"] {
        let n = server.dirs().query_i64(&format!(
            "SELECT count(*) FROM events WHERE kind = '{kind}' AND actor LIKE '%\"user\"%' AND actor LIKE '%boss@example.com%'"
        ));
        assert_eq!(n, 1, "{kind}");
    }
    let unknown = boss.post("/console/admin/tokens/tok_nope/revoke", &[("csrf", &csrf)]);
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("not found"), "{}", unknown.body);
}

both_engines!(staff_accounts_are_made_disabled_and_reset_from_the_staff_page);
fn staff_accounts_are_made_disabled_and_reset_from_the_staff_page(engine: Engine) {
    let server = TestServer::start_on(engine);
    let mut boss = signed_in(&server, "boss@example.com", "admin");
    let csrf = boss.csrf();
    let made = boss.post(
        "/console/admin/users",
        &[
            ("csrf", &csrf),
            ("email", "Cat@Example.com"),
            ("role", "support"),
        ],
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let origin = format!("http://127.0.0.1:{}/console/setup/", server.port);
    assert!(
        made.body.contains(&origin),
        "the link is shown: {}",
        made.body
    );
    assert!(made.body.contains("cat@example.com"));
    let again = boss.post(
        "/console/admin/users",
        &[
            ("csrf", &csrf),
            ("email", "cat@example.com"),
            ("role", "admin"),
        ],
    );
    assert_eq!(again.status, 422);
    assert!(again.body.contains("exists"), "{}", again.body);
    let bad = boss.post(
        "/console/admin/users",
        &[
            ("csrf", &csrf),
            ("email", "x@example.com"),
            ("role", "owner"),
        ],
    );
    assert_eq!(bad.status, 422);

    // A signed-in agent loses their session when disabled from the page.
    let mut ann = signed_in(&server, "ann@example.com", "support");
    assert_eq!(ann.get("/console").status, 200);
    let res = boss.post(
        "/console/admin/users/disable",
        &[("csrf", &csrf), ("email", "ann@example.com")],
    );
    assert_eq!(res.status, 303);
    assert_eq!(ann.get("/console").status, 303, "signed out at once");
    let page = boss.get("/console/admin/users");
    assert!(page.body.contains("disabled"));

    let reset = boss.post(
        "/console/admin/users/reset",
        &[("csrf", &csrf), ("email", "ann@example.com")],
    );
    assert_eq!(reset.status, 200);
    assert!(reset.body.contains(&origin));
    let missing = boss.post(
        "/console/admin/users/reset",
        &[("csrf", &csrf), ("email", "nobody@example.com")],
    );
    assert_eq!(missing.status, 422, "{}", missing.body);
    for kind in [
        "staff_user_created",
        "staff_user_disabled",
        "staff_user_reset",
    ] {
        let n = server.dirs().query_i64(&format!(
            "SELECT count(*) FROM events WHERE kind = '{kind}' AND actor LIKE '%\"user\"%' AND actor LIKE '%boss@example.com%'"
        ));
        assert_eq!(n, 1, "{kind}");
    }
    let audit = boss.get("/console/admin/audit");
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("Verified"), "{}", audit.body);
    let events = server.dirs().query_i64("SELECT count(*) FROM events");
    assert!(
        audit
            .body
            .contains(&format!("<dd id=\"audit-length\">{events}</dd>")),
        "{}",
        audit.body
    );
}

both_engines!(the_customer_page_lists_licenses_credit_and_escapes_what_the_shop_sent);
fn the_customer_page_lists_licenses_credit_and_escapes_what_the_shop_sent(engine: Engine) {
    let server = TestServer::start_on(engine);
    let email = "o'brien&co/x+y%z@example.com";
    for (order, meta) in [
        (
            "ord-1",
            json!({"note": "<script>alert(\"x\")</script>", "q": "it's \"quoted\""}),
        ),
        ("ord-2", json!({"plain": 1})),
    ] {
        server
            .mint(json!({"product": "photo-pro", "order_id": order,
                         "customer_email": email, "metadata": meta}))
            .expect(201);
    }
    server
        .mint(
            json!({"product": "photo-pro", "order_id": "other", "customer_email": "z@example.com"}),
        )
        .expect(201);
    let mut ann = signed_in(&server, "ann@example.com", "support");
    // The look-up form leads to the page, the email in one path segment.
    let form = ann.get(&format!(
        "/console/customers?email={}",
        form_urlencoded::byte_serialize(email.to_uppercase().as_bytes()).collect::<String>()
    ));
    assert_eq!(form.status, 303);
    let page = ann.get(form.header("location").unwrap());
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page.body.contains("&#60;script&#62;"), "{}", page.body);
    assert!(!page.body.contains("it's \"quoted\""));
    assert!(
        page.body.contains("it&#39;s \\&#34;quoted\\&#34;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("o'brien&co"), "the email is escaped");
    assert!(
        page.body.contains("o&#39;brien&#38;co/x+y%z@example.com"),
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches("href=\"/console/licenses/lic_").count(),
        2
    );
    assert!(page.body.contains("ord-1") && page.body.contains("ord-2"));
    assert!(!page.body.contains(">other<"));
    assert!(page.body.contains("No store credit"));
    assert!(page.body.contains("No claim"));
    let nobody = ann.get("/console/customers/nobody%40example.com");
    assert_eq!(nobody.status, 200);
    assert!(nobody.body.contains("No license was sold to this email"));
}

both_engines!(the_customer_page_shows_the_credit_balance_and_every_claim_escaped);
fn the_customer_page_shows_the_credit_balance_and_every_claim_escaped(engine: Engine) {
    // Claims older than 300 days wait for support (they are not granted at once).
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        s.late_claims.max_age_days = 300;
    });
    let support = server.token("support");
    let year_ago = time::format(time::now() - chrono::Duration::days(365));
    let mint = |order: &str, email: &str| {
        let m = server
            .mint(json!({"product": "photo-pro", "order_id": order,
                         "customer_email": email, "purchased_at": year_ago}))
            .expect(201);
        (
            m["license"]["id"].as_str().unwrap().to_owned(),
            m["key"].as_str().unwrap().to_owned(),
        )
    };
    let (credited, _) = mint("late-1", "pat@example.com");
    let (claimed, key) = mint("late-2", "pat@example.com");
    let (elsewhere, other_key) = mint("late-3", "shop-typo@example.com");
    let (unrelated, unrelated_key) = mint("late-4", "z@example.com");
    server
        .post(
            &format!("/v1/licenses/{credited}/grace-extension"),
            Some(&support),
            &json!({"remedy": "credit", "reason": "prefers credit"}),
        )
        .expect(201);
    server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": key,
                    "message": "<script>alert(\"late\")</script> it's me"}),
        )
        .expect(202);
    // A claim on a license sold under another address, filed with this one.
    server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": other_key, "email": "pat@example.com"}),
        )
        .expect(202);
    server
        .post("/v1/claims", None, &json!({"license_key": unrelated_key}))
        .expect(202);

    let mut ann = signed_in(&server, "ann@example.com", "support");
    let page = ann.get("/console/customers/pat%40example.com");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<strong class=\"balance\">49.00 EUR</strong>"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(&format!("href=\"/console/licenses/{credited}\"")));
    assert!(page.body.contains("Claims (2)"), "{}", page.body);
    assert!(page
        .body
        .contains(&format!("href=\"/console/licenses/{claimed}\"")));
    assert!(page
        .body
        .contains(&format!("href=\"/console/licenses/{elsewhere}\"")));
    assert!(!page.body.contains(&unrelated));
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(
        page.body
            .contains("&#60;script&#62;alert(&#34;late&#34;)&#60;/script&#62; it&#39;s me"),
        "{}",
        page.body
    );
}
