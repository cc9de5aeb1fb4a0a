//! Real-browser tests of the console: Debian's chromium, headless, driven by
//! playwright-core from `tests/browser` (one Node script per flow, with axe-core on
//! every page it reaches). `scripts/test.sh` installs chromium and the npm
//! packages; without them these tests fail, never skip.
//!
//! Adding a flow: write `tests/browser/<flow>.mjs` with `lib.mjs`, and a test here
//! that starts a server, prepares what the flow needs and calls [`run_flow`].

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::console::{cli_with_stdin, staff, PASSWORD};
use crate::helpers::{repo, stderr, stdout, Dirs, Engine, TestServer};
use keyclerk::domain::time;

/// The chromium executable: `KC_CHROMIUM`, else Debian's.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("KC_CHROMIUM") {
        return PathBuf::from(p);
    }
    // The binary itself: the /usr/bin/chromium wrapper adds nothing headless needs.
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no chromium: install Debian's (apt-get install chromium; scripts/test.sh \
                 does) or set KC_CHROMIUM"
            )
        })
}

/// Where screenshots go: `$CARGO_TARGET_DIR/screenshots`, else `target/screenshots`.
fn screenshots() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    target.join("screenshots")
}

/// Runs `tests/browser/<flow>.mjs` against `server` with `input`; fails unless it
/// exits 0, showing its output. The value it handed back with `result()`, if any.
pub fn run_flow(server: &TestServer, flow: &str, input: &Value) -> Option<Value> {
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && dir.join("node_modules/axe-core").is_dir(),
        "tests/browser has no node_modules: run `npm ci --prefix tests/browser` \
         (scripts/test.sh does)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(format!("{flow}.mjs")))
        .current_dir(&dir)
        .env("KC_URL", server.url(""))
        .env("KC_CHROMIUM", chromium())
        .env("KC_SCREENSHOTS", screenshots())
        .env("KC_INPUT", input.to_string());
    // KC_UPDATE_DOCS=1 copies the README's screenshots into docs/.
    if std::env::var_os("KC_UPDATE_DOCS").is_some() {
        cmd.env("KC_DOCS", repo().join("docs"));
    }
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (install Node.js): {e}"));
    let (so, se) = (stdout(&out), stderr(&out));
    println!("{flow}: {:.1} s\n{so}{se}", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "browser flow {flow} failed ({}):\n{so}\n{se}",
        out.status
    );
    so.lines()
        .find_map(|l| l.strip_prefix("KC_RESULT "))
        .map(|v| serde_json::from_str(v).unwrap())
}

#[test]
fn an_admin_sets_up_their_account_with_totp_then_signs_in_with_password_and_code() {
    let server = TestServer::start_on(Engine::Sqlite);
    let out = server.cli(&[
        "users",
        "create",
        "--email",
        "first@example.com",
        "--role",
        "admin",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = stdout(&out).trim().to_owned();
    run_flow(
        &server,
        "first_admin",
        &json!({"setup_link": link, "email": "first@example.com",
                "password": "plum tractor velvet orbit"}),
    );
    let listed = stdout(&server.cli(&["users", "list"]));
    assert!(
        listed.contains("first@example.com\tadmin\tactive\ttotp"),
        "{listed}"
    );
}

#[test]
fn an_admin_makes_an_api_token_on_the_tokens_page_and_the_api_takes_it() {
    let server = TestServer::start_on(Engine::Sqlite);
    staff(&server, "boss@example.com", "admin");
    let made = run_flow(
        &server,
        "api_token",
        &json!({"email": "boss@example.com", "password": PASSWORD}),
    )
    .expect("the flow hands back the secret");
    let secret = made["secret"].as_str().unwrap();
    let license = server
        .post(
            "/v1/licenses",
            Some(secret),
            &json!({"product": "photo-pro", "order_id": "from-browser-token"}),
        )
        .expect(201);
    assert_eq!(
        license["license"]["order_id"], "from-browser-token",
        "{license}"
    );
    let n = server.dirs().query_i64(
        "SELECT count(*) FROM events WHERE kind = 'token_created' \
         AND actor LIKE '%\"user\"%' AND actor LIKE '%boss@example.com%'",
    );
    assert_eq!(n, 1);
}

#[test]
fn a_support_agent_opens_a_customers_page_and_sees_their_licenses() {
    // Claims older than 300 days wait for support, so the page has one to show.
    let server = TestServer::start_with(Dirs::on(Engine::Sqlite), |s| {
        s.late_claims.max_age_days = 300;
    });
    let out = cli_with_stdin(
        server.dirs(),
        &[
            "users",
            "create",
            "--email",
            "ann@example.com",
            "--role",
            "support",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let customer = "buyer@example.com";
    let year_ago = time::format(time::now() - chrono::Duration::days(365));
    let mut licenses = Vec::new();
    let mut keys = Vec::new();
    for (order, meta) in [
        ("o-2025-1", json!({"note": "<script>alert(\"x\")</script>"})),
        ("o-2025-2", json!({"seat": "laptop"})),
        ("o-2025-3", json!({"seat": "studio"})),
    ] {
        let made = server
            .mint(json!({"product": "photo-pro", "order_id": order,
                         "customer_email": customer, "metadata": meta,
                         "purchased_at": year_ago}))
            .expect(201);
        licenses.push(made["license"]["id"].as_str().unwrap().to_owned());
        keys.push(made["key"].as_str().unwrap().to_owned());
    }
    let support = server.token("support");
    server
        .post(
            &format!("/v1/licenses/{}/grace-extension", licenses[2]),
            Some(&support),
            &json!({"remedy": "credit", "reason": "prefers credit"}),
        )
        .expect(201);
    server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": keys[1], "message": "I bought this last year and never installed it."}),
        )
        .expect(202);
    server
        .mint(json!({"product": "photo-pro", "order_id": "someone-else",
                     "customer_email": "other@example.com"}))
        .expect(201);
    run_flow(
        &server,
        "customer",
        &json!({"email": "ann@example.com", "password": PASSWORD,
                "customer": customer, "licenses": licenses,
                "balance": "49.00 EUR", "claims": 1}),
    );
}
