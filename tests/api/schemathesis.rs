//! Schemathesis (from PyPI, installed by `scripts/test.sh`) against a live server,
//! from the server's own `/openapi.json`, with a token of every role: no 5xx, no
//! undocumented status or content type, no response outside its schema. One test
//! per role, each on its own server, so that they run in parallel. Ignored by a
//! plain `cargo test` (they need Python); `scripts/test.sh` runs them, and without
//! schemathesis they fail.

use std::process::Command;

use keyclerk::domain::time;
use serde_json::json;

use crate::helpers::{Dirs, TestServer};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,unsupported_method";

fn schemathesis() -> std::path::PathBuf {
    let python = std::env::var("KC_TEST_PYTHON").expect(
        "KC_TEST_PYTHON: run the suite with ./scripts/test.sh, which installs schemathesis",
    );
    std::path::Path::new(&python).with_file_name("st")
}

/// One schemathesis run; panics with its report unless it passed.
fn run(server: &TestServer, who: &str, token: Option<&str>, examples: u32, filter: &[&str]) {
    let seed = std::env::var("KC_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261121".into());
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(schemathesis());
    cmd.current_dir(work.path())
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &seed])
        .args(["--workers", "2"])
        .args(["--request-timeout", "30"])
        .args(["--output-truncate", "false"])
        .args(filter)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false");
    if let Some(t) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.output().expect("schemathesis did not start");
    let report = String::from_utf8_lossy(&out.stdout);
    let generated = report
        .lines()
        .skip_while(|l| !l.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_owned();
    eprintln!("schemathesis as {who}: {generated}");
    assert!(
        out.status.success(),
        "schemathesis as {who} failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server with something to find: licenses of each kind, a machine, a pending
/// claim, credit, and a token of every role. Each role's run gets its own.
struct Seeded {
    server: TestServer,
    vendor: String,
    support: String,
    second_admin: String,
}

fn seeded() -> Seeded {
    // Rate limits off, so that generated look-ups reach the code behind them.
    let server = TestServer::start_with(Dirs::new(), |s| s.rate_limits.enabled = false);
    let vendor = server.token("vendor");
    let support = server.token("support");
    let second_admin = server.token("admin");
    let long_ago = time::format(time::now() - chrono::Duration::days(800));
    let signed = server
        .mint(
            json!({"product": "photo-pro", "order_id": "st-1", "customer_email": "st@example.com"}),
        )
        .expect(201);
    server
        .mint(json!({"product": "font-pack", "order_id": "st-2"}))
        .expect(201);
    let old = server
        .mint(json!({"product": "photo-basic", "order_id": "st-3", "customer_email": "old@example.com",
                     "purchased_at": long_ago}))
        .expect(201);
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": signed["key"], "fingerprint": "st-machine"}),
        )
        .expect(201);
    server
        .post("/v1/claims", None, &json!({"license_key": old["key"]}))
        .expect(202);
    let old_id = old["license"]["id"].as_str().unwrap();
    server
        .post(
            &format!("/v1/licenses/{old_id}/grace-extension"),
            Some(&support),
            &json!({"remedy": "credit", "reason": "schemathesis seed"}),
        )
        .expect(201);
    Seeded {
        server,
        vendor,
        support,
        second_admin,
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break_as_admin() {
    let s = seeded();
    // Revoking is left to its own run, or the fuzzer would revoke the token it is using.
    run(
        &s.server,
        "admin",
        Some(&s.server.admin),
        300,
        &["--exclude-path-regex", "/revoke$"],
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break_as_vendor() {
    let s = seeded();
    run(
        &s.server,
        "vendor",
        Some(&s.vendor),
        100,
        &["--include-tag", "vendor"],
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break_as_support() {
    let s = seeded();
    run(
        &s.server,
        "support",
        Some(&s.support),
        100,
        &["--include-tag", "support"],
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break_as_an_app_without_a_token() {
    let s = seeded();
    run(
        &s.server,
        "an app (no token)",
        None,
        300,
        &["--include-tag-regex", "^(apps|operations)$"],
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break_revoking_tokens_as_a_second_admin() {
    let s = seeded();
    run(
        &s.server,
        "admin (revoke)",
        Some(&s.second_admin),
        100,
        &["--include-path-regex", "/revoke$"],
    );
}
