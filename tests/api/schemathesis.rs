//! Schemathesis (from PyPI, installed by `scripts/test.sh`) against a live server,
//! from the server's own `/openapi.json`, with a token of every role, with every
//! check it has and every phase, the stateful one too (its sequences follow the
//! document's links: mint, look up, activate, validate, deactivate, decide). One
//! test per role, each on its own server, so that they run in parallel; without
//! schemathesis they fail.
//!
//! Every check runs (`--checks all`), and `tests/schemathesis/hooks.py` adds one:
//! a well-formed request is never refused for its shape. The one setting that
//! changes a check is in `tests/schemathesis/schemathesis.toml`, with its reason.

use std::process::Command;

use keyclerk::domain::time;
use serde_json::json;

use crate::helpers::{repo, Dirs, TestServer};

fn python() -> String {
    std::env::var("KC_TEST_PYTHON")
        .expect("KC_TEST_PYTHON: run the suite with ./scripts/test.sh, which installs schemathesis")
}

/// Seconds of the stateful phase: it runs sequence after sequence until they are
/// spent (Hypothesis ends one suite of sequences as soon as the server's state makes
/// a sequence go otherwise than before, which a stateful API always does).
const STATEFUL_SECONDS: u32 = 10;

/// The admin's stateful phase, which has every operation to follow links between.
const ADMIN_STATEFUL_SECONDS: u32 = 25;

/// Order ids the dictionary `orders` offers: more than a run mints, so that a
/// generated mint seldom repeats an order.
const FRESH_ORDERS: usize = 5000;

/// Writes the committed settings into `dir` with the data they name: order ids no
/// license has (none a run of other `phases` on the server used), and the seeded
/// licenses' keys (`tests/schemathesis/schemathesis.toml`
/// says why). Returns the settings' path.
fn settings(dir: &std::path::Path, keys: &[String], phases: &str) -> std::path::PathBuf {
    let quoted = |s: &str| format!("{:?}\n", s);
    let orders: String = (0..FRESH_ORDERS)
        .map(|i| quoted(&format!("st-{}-{i}", phases.len())))
        .collect();
    std::fs::write(dir.join("orders.dict"), orders).unwrap();
    let keys: String = keys.iter().map(|k| quoted(k)).collect();
    std::fs::write(dir.join("keys.dict"), keys).unwrap();
    let path = dir.join("schemathesis.toml");
    std::fs::copy(repo().join("tests/schemathesis/schemathesis.toml"), &path).unwrap();
    path
}

/// One schemathesis command of phases `phases`; its report and whether it passed.
fn schemathesis(
    s: &Seeded,
    token: Option<&str>,
    phases: &str,
    examples: u32,
    args: &[&str],
) -> (bool, String) {
    let seed = std::env::var("KC_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261121".into());
    let work = tempfile::tempdir().unwrap();
    let config_file = settings(work.path(), &s.keys, phases);
    let mut cmd = Command::new(python());
    cmd.current_dir(work.path())
        .args(["-m", "schemathesis.cli"])
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(s.server.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--phases", phases])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &seed])
        .args(["--workers", "2"])
        .args(["--request-timeout", "30"])
        .args(["--output-truncate", "false"])
        .arg("--continue-on-failure")
        .args(args)
        .env(
            "SCHEMATHESIS_HOOKS",
            repo().join("tests/schemathesis/hooks.py"),
        )
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false");
    if let Some(t) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    // `KC_SCHEMATHESIS_REPORTS=<dir>` keeps every run's NDJSON report there (each
    // step of each sequence, with its response), to see what a run covered.
    if let Some(dir) = std::env::var_os("KC_SCHEMATHESIS_REPORTS") {
        cmd.args(["--report", "ndjson", "--report-dir"]).arg(dir);
    }
    let out = cmd.output().expect("schemathesis did not start");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

/// The lines of a report that start with `prefix`, trimmed.
fn lines_after<'a>(report: &'a str, prefix: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(prefix))
        .map(|(i, l)| {
            if *l == prefix {
                lines.get(i + 1).copied().unwrap_or("")
            } else {
                l
            }
        })
        .collect()
}

/// The example, coverage and fuzzing phases, then the stateful one; panics with
/// the report of any that did not pass.
fn run(s: &Seeded, who: &str, token: Option<&str>, examples: u32, filter: &[&str]) {
    let started = std::time::Instant::now();
    let (unit_passed, unit) = schemathesis(s, token, "examples,coverage,fuzzing", examples, filter);
    let unit_time = started.elapsed();
    let seconds = if who == "admin" {
        ADMIN_STATEFUL_SECONDS
    } else {
        STATEFUL_SECONDS
    };
    let max_time = seconds.to_string();
    let mut stateful_args = vec!["--max-time", max_time.as_str()];
    stateful_args.extend_from_slice(filter);
    let (stateful_passed, stateful) = schemathesis(s, token, "stateful", examples, &stateful_args);
    eprintln!(
        "schemathesis as {who}: {} in {:.0?}; stateful: {}; {}",
        lines_after(&unit, "Test cases:").join(""),
        unit_time,
        lines_after(&stateful, "Test cases:").join(""),
        [
            lines_after(&stateful, "Scenarios:"),
            lines_after(&stateful, "API Links:")
        ]
        .concat()
        .join("; ")
    );
    assert!(unit_passed, "schemathesis as {who} failed:\n{unit}");
    assert!(
        stateful_passed,
        "schemathesis (stateful) as {who} failed:\n{stateful}"
    );
}

/// A server with something to find: licenses of each kind, a machine, a pending
/// claim, credit, and a token of every role. Each role's run gets its own.
struct Seeded {
    server: TestServer,
    vendor: String,
    support: String,
    second_admin: String,
    /// The license keys of the seeded licenses.
    keys: Vec<String>,
}

fn seeded() -> Seeded {
    // Rate limits off, so that generated look-ups reach the code behind them.
    // Webhook endpoints the fuzzer adds name hosts it makes up: this server resolves
    // none of them (private addresses allowed, so nothing is looked up) and sends
    // nothing (delivery off: messages are still written, as the tests of the outbox
    // elsewhere show being sent).
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.enabled = false;
        s.webhooks.allow_private_addresses = true;
        s.webhooks.deliver = false;
    });
    server
        .post(
            "/v1/webhook-endpoints",
            Some(&server.admin),
            &json!({"url": "http://127.0.0.1:9/seeded", "events": ["*"]}),
        )
        .expect(201);
    let vendor = server.token("vendor");
    let support = server.token("support");
    let second_admin = server.token("admin");
    let long_ago = time::format(time::now() - chrono::Duration::days(800));
    let signed = server
        .mint(
            json!({"product": "photo-pro", "order_id": "st-1", "customer_email": "st@example.com"}),
        )
        .expect(201);
    let short = server
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
    let keys = [&signed, &short, &old]
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_owned())
        .collect();
    Seeded {
        server,
        vendor,
        support,
        second_admin,
        keys,
    }
}

/// The path of token revocation, which gets a run of its own.
const TOKEN_REVOCATION: &str = "^/v1/tokens/.*/revoke$";

/// Token revocation with the tokens it can revoke: those it creates (not the list,
/// whose ids would lead it to its own token).
const TOKENS: &str = "^(create_token|revoke_token)$";

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break_as_admin() {
    let s = seeded();
    // Revoking is left to its own run, or the fuzzer would revoke the token it is using.
    run(
        &s,
        "admin",
        Some(&s.server.admin),
        200,
        &["--exclude-path-regex", TOKEN_REVOCATION],
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break_as_vendor() {
    let s = seeded();
    run(
        &s,
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
        &s,
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
        &s,
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
        &s,
        "admin (revoke)",
        Some(&s.second_admin),
        100,
        &["--include-operation-id-regex", TOKENS],
    );
}
