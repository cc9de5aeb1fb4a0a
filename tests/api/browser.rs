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

use crate::console::{cli_with_stdin, staff, Browser, PASSWORD};
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

/// A support account set up through its link with a password and TOTP, the way
/// the setup page does it; the authenticator's base32 key.
fn staff_with_totp(server: &TestServer, email: &str) -> String {
    use keyclerk::domain::staff::{base32_decode, totp_sha1};
    let out = server.cli(&["users", "create", "--email", email, "--role", "support"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = stdout(&out).trim().to_owned();
    let path = &link[link.find("/console/setup/").unwrap()..];
    let mut b = Browser::new(server);
    let key = b.get(path).input("totp_secret").unwrap();
    let code = totp_sha1(&base32_decode(&key).unwrap(), time::now().timestamp(), 6);
    let done = b.post(
        path,
        &[
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("totp_secret", &key),
            ("totp", &code),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    key
}

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

/// Mints `body` over the API: the license id and the key.
fn minted(server: &TestServer, body: Value) -> (String, String) {
    let m = server.mint(body).expect(201);
    (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    )
}

fn activate(server: &TestServer, key: &str, fingerprint: &str) -> crate::helpers::Resp {
    server.post(
        "/v1/activations",
        None,
        &json!({"license_key": key, "fingerprint": fingerprint,
                "name": format!("{fingerprint} laptop"), "platform": "macOS 15"}),
    )
}

#[test]
fn an_agent_with_totp_extends_the_window_of_a_customer_who_bought_a_year_ago_and_the_app_activates()
{
    let server = TestServer::start_with(Dirs::on(Engine::Sqlite), |s| {
        s.console.require_totp = true;
    });
    let agent = "ann@example.com";
    let totp_key = staff_with_totp(&server, agent);
    let customer = "late.buyer@example.com";
    // photo-pro's window is 90 days: bought 365 days ago, it closed 275 days ago.
    let (id, key) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "o-year-ago",
               "customer_email": customer, "purchased_at": days_ago(365)}),
    );
    minted(
        &server,
        json!({"product": "font-pack", "order_id": "o-this-week",
               "customer_email": customer, "purchased_at": days_ago(3)}),
    );
    // The customer's app tried, and was refused.
    activate(&server, &key, "fp-customer").expect_problem(403, "activation_window_closed");
    let made = run_flow(
        &server,
        "late_customer",
        &json!({"email": agent, "password": PASSWORD, "totp_key": totp_key,
                "customer": customer, "license": id, "days_late": 275,
                "refused_code": "activation_window_closed"}),
    )
    .expect("the flow hands back the key");
    // The customer's app activates now with the key it has, and the key the
    // decision page showed (signed with the new deadline) is the same license's.
    let done = activate(&server, &key, "fp-customer").expect(201);
    assert_eq!(done["license"]["id"], id.as_str(), "{done}");
    let shown = made["key"].as_str().unwrap();
    let again = activate(&server, shown, "fp-customer-2").expect(201);
    assert_eq!(again["license"]["id"], id.as_str(), "{again}");
    let events = history(&server, &id);
    let decision = events
        .iter()
        .find(|e| e["kind"] == "grace_decision")
        .unwrap();
    assert_eq!(decision["actor"], json!({"type": "user", "email": agent}));
}

fn history(server: &TestServer, id: &str) -> Vec<Value> {
    server
        .get(
            &format!("/v1/licenses/{id}/history"),
            Some(&server.token("support")),
        )
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_pending_claim_is_resolved_from_the_queue_with_a_substitute_whose_key_activates() {
    // Claims older than 300 days wait for support.
    let server = TestServer::start_with(Dirs::on(Engine::Sqlite), |s| {
        s.late_claims.max_age_days = 300;
    });
    staff(&server, "ann@example.com", "support");
    let (id, key) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "o-claim",
               "customer_email": "fay@example.com", "purchased_at": days_ago(365)}),
    );
    let message = "I was travelling all year and never installed it.";
    let filed = server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": key, "message": message}),
        )
        .expect(202);
    assert_eq!(filed["status"], "pending", "{filed}");
    let claim = filed["claim"]["id"].as_str().unwrap().to_owned();
    let made = run_flow(
        &server,
        "claim_substitute",
        &json!({"email": "ann@example.com", "password": PASSWORD, "claim": claim,
                "license": id, "message": message, "product": "photo-basic",
                "allowed": ["photo-basic", "font-pack"], "refused": ["studio-suite"]}),
    )
    .expect("the flow hands back the new key");
    let new_key = made["key"].as_str().unwrap();
    assert_ne!(new_key, key);
    let done = activate(&server, new_key, "fp-new").expect(201);
    assert_eq!(done["license"]["product"], "photo-basic", "{done}");
    assert_eq!(done["license"]["id"], made["new_license"], "{done}");
    let support = server.token("support");
    let pending = server
        .get("/v1/claims?status=pending", Some(&support))
        .expect(200);
    assert!(!pending.to_string().contains(&claim), "{pending}");
    // The old license is superseded: its key no longer activates.
    let old = server
        .get(&format!("/v1/licenses/{id}"), Some(&support))
        .expect(200);
    assert_eq!(old["license"]["status"], "superseded", "{old}");
}

#[test]
fn a_lost_machine_is_deactivated_from_the_license_page_and_its_seat_is_freed() {
    let server = TestServer::start_on(Engine::Sqlite);
    staff(&server, "ann@example.com", "support");
    let (id, key) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "o-two-machines",
               "customer_email": "gus@example.com"}),
    );
    let lost = activate(&server, &key, "fp-stolen").expect(201);
    let kept = activate(&server, &key, "fp-desk").expect(201);
    let (lost, kept) = (
        lost["activation"]["id"].as_str().unwrap().to_owned(),
        kept["activation"]["id"].as_str().unwrap().to_owned(),
    );
    let reason = "laptop stolen on a train";
    run_flow(
        &server,
        "lost_machine",
        &json!({"email": "ann@example.com", "password": PASSWORD, "license": id,
                "order_id": "o-two-machines", "lost": lost, "lost_name": "fp-stolen laptop",
                "kept": kept, "reason": reason}),
    );
    let seats = server
        .get(
            &format!("/v1/licenses/{id}/activations"),
            Some(&server.token("support")),
        )
        .expect(200);
    assert_eq!(seats["seats_in_use"], 1, "{seats}");
    let events = history(&server, &id);
    let off = events
        .iter()
        .find(|e| e["kind"] == "activation_deactivated")
        .unwrap();
    assert_eq!(off["actor"]["email"], "ann@example.com", "{off}");
    assert_eq!(off["data"]["reason"], reason, "{off}");
    // The freed seat takes a new machine; the kept one still validates.
    activate(&server, &key, "fp-new-laptop").expect(201);
}

#[test]
fn a_refund_in_the_console_asks_for_the_password_again_and_the_app_is_then_refused() {
    let server = TestServer::start_on(Engine::Sqlite);
    staff(&server, "ann@example.com", "support");
    let (id, key) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "o-refund",
               "customer_email": "hal@example.com"}),
    );
    activate(&server, &key, "fp-hal").expect(201);
    run_flow(
        &server,
        "refund",
        &json!({"email": "ann@example.com", "password": PASSWORD, "license": id,
                "reason": "asked for a refund within 14 days"}),
    );
    let got = server
        .get(
            &format!("/v1/licenses/{id}"),
            Some(&server.token("support")),
        )
        .expect(200);
    assert_eq!(got["license"]["status"], "refunded", "{got}");
    activate(&server, &key, "fp-hal").expect_problem(403, "license_revoked");
    activate(&server, &key, "fp-hal-2").expect_problem(403, "license_revoked");
    let refund = history(&server, &id)
        .into_iter()
        .find(|e| e["kind"] == "license_refunded")
        .unwrap();
    assert_eq!(refund["actor"]["email"], "ann@example.com", "{refund}");
}

#[test]
fn a_buyer_signs_in_on_the_customer_page_with_the_link_from_the_mail_and_deactivates_an_old_machine(
) {
    let inbox = tempfile::tempdir().unwrap();
    let port = crate::mail::free_port();
    let _smtp = crate::mail::Smtp::start(inbox.path(), port);
    let dirs = Dirs::on(Engine::Sqlite);
    // A file to download from the page, and its SHA-256 for the flow to compare.
    let files = dirs.root.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let installer: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(files.join("Studio-3.0.dmg"), &installer).unwrap();
    let sha256 =
        keyclerk::domain::payments::hex(&<sha2::Sha256 as sha2::Digest>::digest(&installer));
    let server = TestServer::start_with(dirs, |s| {
        s.mail = Some(crate::mail::mail_settings(port));
        s.downloads.dir = files;
        s.products.get_mut("studio-suite").unwrap().files =
            vec![keyclerk::domain::download::ProductFile {
                name: "Studio.dmg".into(),
                path: "Studio-3.0.dmg".into(),
            }];
    });
    let (id, key) = minted(
        &server,
        json!({"product": "studio-suite", "order_id": "my-browser-1", "seats": 3,
               "customer_email": "buyer@example.com", "send_email": false}),
    );
    let old = server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-old", "name": "old-laptop"}),
        )
        .expect(201)["activation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    activate(&server, &key, "fp-new").expect(201);
    run_flow(
        &server,
        "my_link",
        &json!({"email": "buyer@example.com", "inbox": inbox.path(), "order_id": "my-browser-1",
                "old": old, "old_name": "old-laptop", "file": "Studio.dmg", "sha256": sha256}),
    );
    let seats = server
        .get(
            &format!("/v1/licenses/{id}/activations"),
            Some(&server.token("support")),
        )
        .expect(200);
    assert_eq!(seats["seats_in_use"], 1, "{seats}");
    let events = history(&server, &id);
    let off = events
        .iter()
        .find(|e| e["kind"] == "activation_deactivated")
        .unwrap();
    assert_eq!(
        off["actor"]["type"], "license_key",
        "by the customer: {off}"
    );
    let fetched = events
        .iter()
        .find(|e| e["kind"] == "file_downloaded")
        .unwrap_or_else(|| panic!("the download is in the history: {events:?}"));
    assert_eq!(fetched["data"]["file"], "Studio.dmg", "{fetched}");
}

#[test]
fn a_buyer_of_400_days_ago_claims_on_the_customer_page_and_their_app_then_activates() {
    let server = TestServer::start_on(Engine::Sqlite);
    let (_, key) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "my-browser-late",
               "customer_email": "late@example.com", "purchased_at": days_ago(400)}),
    );
    activate(&server, &key, "fp-before").expect_problem(403, "activation_window_closed");
    run_flow(&server, "my_late", &json!({"key": key}));
    activate(&server, &key, "fp-after").expect(201);
}

#[test]
fn the_customer_page_speaks_french_with_accept_language_fr() {
    let server = TestServer::start_on(Engine::Sqlite);
    let (_, key) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "my-browser-fr",
               "customer_email": "fr@example.com"}),
    );
    activate(&server, &key, "fp-fr").expect(201);
    run_flow(&server, "my_french", &json!({"key": key}));
}

#[test]
fn a_machine_without_internet_is_activated_from_its_qr_codes_page_and_the_certificate_downloads() {
    use keyclerk_client::offline::ActivationRequest;
    use keyclerk_client::{machine_fingerprint, Verifier};
    let server = TestServer::start_on(Engine::Sqlite);
    let (id, key) = minted(
        &server,
        json!({"product": "photo-pro", "order_id": "my-browser-offline"}),
    );
    let fingerprint = machine_fingerprint("browser-test", "cabin");
    let request = ActivationRequest::new(&key, &fingerprint).with_name("cabin-pc");
    let url = request.page_url(&server.url("")).unwrap();
    let path = url.strip_prefix(&server.url("")).unwrap();
    let got = run_flow(
        &server,
        "my_offline",
        &json!({"path": path, "code": request.code().unwrap()}),
    )
    .expect("the flow hands back the file");
    let file = got["file"].as_str().unwrap();
    let keys = server.get("/v1/keys", None).expect(200).to_string();
    let claims = Verifier::from_keys_document(&keys)
        .unwrap()
        .verify_certificate_file(file.as_bytes(), &fingerprint, chrono::Utc::now(), None)
        .unwrap();
    assert_eq!(claims.license, id);
    let machines = server
        .get(
            &format!("/v1/licenses/{id}/activations"),
            Some(&server.admin),
        )
        .expect(200);
    assert_eq!(machines["activations"][0]["name"], "cabin-pc");
}
