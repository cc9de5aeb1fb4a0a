//! keyclerk's own webhooks, with real receivers: a Python HTTP server
//! (`tests/interop/webhook_receiver.py`) that verifies every delivery with the PyPI
//! `standardwebhooks` library, and the npm `standardwebhooks` library verifying the
//! same deliveries again. A delivery either library cannot verify fails the test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyclerk::config::Settings;
use keyclerk::domain::webhook::WebhookSecret;
use serde_json::{json, Value};

use crate::helpers::{both_engines, repo, stderr, stdout, Dirs, Engine, TestServer};
use crate::process::{admin_token, agent, ServerProcess};

fn python() -> String {
    std::env::var("KC_TEST_PYTHON").expect(
        "KC_TEST_PYTHON: run the suite with ./scripts/test.sh, which installs standardwebhooks",
    )
}

/// The Python receiver, on a port of its own; what it received, as JSON lines.
pub(crate) struct Receiver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Receiver {
    pub(crate) fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python())
            .arg(repo().join("tests/interop/webhook_receiver.py"))
            .arg("--secret-file")
            .arg(dir.path().join("secret"))
            .arg("--log")
            .arg(dir.path().join("log"))
            .arg("--accept-file")
            .arg(dir.path().join("accept"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"))
            .parse()
            .unwrap();
        let r = Self { child, port, dir };
        r.accept();
        r
    }

    /// A receiver that answers 503 until [`Receiver::accept`].
    fn refusing(args: &[&str]) -> Self {
        let r = Self::start(args);
        std::fs::remove_file(r.dir.path().join("accept")).unwrap();
        r
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/keyclerk", self.port)
    }

    /// The secrets it verifies with (any of them).
    pub(crate) fn trust(&self, secrets: &[&str]) {
        std::fs::write(self.dir.path().join("secret"), secrets.join("\n")).unwrap();
    }

    /// Waits until no record has come for 300 ms.
    fn settle(&self) {
        let mut seen = self.records().len();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.records().len();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    fn accept(&self) {
        std::fs::write(self.dir.path().join("accept"), "").unwrap();
    }

    pub(crate) fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits (at most a minute) until `done` holds of the records; every record
    /// must have verified.
    pub(crate) fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let records = self.records();
            for r in &records {
                assert_eq!(r["verified"], true, "a delivery did not verify: {r}");
            }
            if done(&records) {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "waited a minute for {what}; received: {records:#?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The deliveries it accepted (2xx), by `webhook-id`, each once.
    pub(crate) fn accepted_ids(records: &[Value]) -> Vec<String> {
        let mut ids: Vec<String> = records
            .iter()
            .filter(|r| {
                r["answered"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .map(|r| r["webhook_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Test settings: private addresses allowed (the receivers listen on loopback), a
/// short retry schedule, a fast poll.
pub(crate) fn fast(s: &mut Settings) {
    s.webhooks.allow_private_addresses = true;
    s.webhooks.retry_schedule_seconds = vec![0.2; 5];
    s.webhooks.retry_jitter = 0.1;
    s.webhooks.poll_interval_ms = 20;
    s.webhooks.timeout_seconds = 5.0;
}

/// The same as environment variables, for a server process.
pub(crate) const FAST_ENV: &[(&str, &str)] = &[
    ("KEYCLERK_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES", "true"),
    (
        "KEYCLERK_WEBHOOKS__RETRY_SCHEDULE_SECONDS",
        "[0.2, 0.2, 0.2, 0.2, 0.2]",
    ),
    ("KEYCLERK_WEBHOOKS__POLL_INTERVAL_MS", "20"),
    ("KEYCLERK_WEBHOOKS__TIMEOUT_SECONDS", "5"),
];

/// Adds an endpoint for `events`; its id and secret.
pub(crate) fn add_endpoint(server: &TestServer, url: &str, events: &[&str]) -> (String, String) {
    let body = server
        .post(
            "/v1/webhook-endpoints",
            Some(&server.admin),
            &json!({"url": url, "events": events, "description": "the test's receiver"}),
        )
        .expect(201);
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{body}");
    (body["endpoint"]["id"].as_str().unwrap().to_owned(), secret)
}

fn mint(server: &TestServer, order: &str) -> Value {
    server
        .mint(
            json!({"product": "photo-pro", "order_id": order, "customer_email": "ann@example.com"}),
        )
        .expect(201)
}

#[test]
fn the_signer_gives_every_official_standard_webhooks_vector() {
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/vectors/standard-webhooks/sign.json")).unwrap(),
    )
    .unwrap();
    let tests = vectors["tests"].as_array().unwrap();
    assert!(tests.len() >= 2);
    for t in tests {
        let secret = WebhookSecret::parse(t["secret"].as_str().unwrap()).unwrap();
        let signed = secret.sign(
            t["msg_id"].as_str().unwrap(),
            t["timestamp"].as_i64().unwrap(),
            t["payload"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(signed, t["signature"].as_str().unwrap(), "{}", t["name"]);
        for not in vectors["not_signatures"].as_array().unwrap() {
            assert_ne!(signed, not["signature"].as_str().unwrap());
        }
    }
}

both_engines!(every_delivery_verifies_with_the_python_and_the_node_standard_webhooks_library);
fn every_delivery_verifies_with_the_python_and_the_node_standard_webhooks_library(engine: Engine) {
    let server = TestServer::start_with(Dirs::on(engine), fast);
    let receiver = Receiver::start(&[]);
    let (endpoint, old) = add_endpoint(&server, &receiver.url(), &["*"]);
    receiver.trust(&[&old]);
    let minted = mint(&server, "hook-verify-1");
    let license = minted["license"]["id"].as_str().unwrap().to_owned();
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": minted["key"], "fingerprint": "machine-1"}),
        )
        .expect(201);
    let records = receiver.wait_for("license.created and activation.created", |r| {
        Receiver::accepted_ids(r).len() >= 2
    });
    let created = records
        .iter()
        .find(|r| r["type"] == "license.created")
        .unwrap();
    let event: Value = serde_json::from_str(created["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["data"]["license_id"], license.as_str());
    assert_eq!(event["data"]["order_id"], "hook-verify-1");
    assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(records.iter().any(|r| r["type"] == "activation.created"));

    // After a rotation the old secret and the new one both sign.
    let rotated = server
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            Some(&server.admin),
            &json!({"overlap_hours": 1}),
        )
        .expect(200);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    server
        .post(
            &format!("/v1/licenses/{license}/suspend"),
            Some(&server.admin),
            &json!({}),
        )
        .expect(200);
    let records = receiver.wait_for("license.suspended", |r| {
        r.iter().any(|x| x["type"] == "license.suspended")
    });
    let suspended = records
        .iter()
        .find(|r| r["type"] == "license.suspended")
        .unwrap();
    assert_eq!(
        suspended["webhook_signature"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        2,
        "two signatures during the overlap: {suspended}"
    );

    // The same deliveries through the Node library: before the rotation with the
    // old secret, after it with the new one alone.
    let deliveries: Vec<Value> = records
        .iter()
        .map(|r| {
            let secret = if r["type"] == "license.suspended" {
                &new
            } else {
                &old
            };
            json!({
                "secret": secret,
                "body": r["body"],
                "headers": {
                    "webhook-id": r["webhook_id"],
                    "webhook-timestamp": r["webhook_timestamp"],
                    "webhook-signature": r["webhook_signature"],
                },
            })
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_string(&deliveries).unwrap()).unwrap();
    let node = Command::new("node")
        .arg(repo().join("tests/interop/node/webhook_verify.js"))
        .arg(file.path())
        .output()
        .expect("node: run the suite with ./scripts/test.sh");
    assert!(
        node.status.success(),
        "the Node library refused a delivery:\n{}{}",
        stdout(&node),
        stderr(&node)
    );
    assert_eq!(stdout(&node).matches("verified ").count(), deliveries.len());
}

#[test]
fn a_receiver_that_fails_three_times_gets_the_message_on_the_fourth_attempt_with_one_webhook_id() {
    let server = TestServer::start_with(Dirs::new(), fast);
    let receiver = Receiver::start(&["--fail-first", "3"]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-retry-1");
    let records = receiver.wait_for("an accepted delivery", |r| {
        !Receiver::accepted_ids(r).is_empty()
    });
    assert_eq!(records.len(), 4, "{records:#?}");
    let answered: Vec<u64> = records
        .iter()
        .map(|r| r["answered"].as_u64().unwrap())
        .collect();
    assert_eq!(answered, [500, 500, 500, 204]);
    let id = records[0]["webhook_id"].as_str().unwrap();
    assert!(id.starts_with("msg_"), "{id}");
    assert!(
        records.iter().all(|r| r["webhook_id"] == id),
        "one webhook-id: {records:#?}"
    );
    let listed = wait_for_delivery(&server, &endpoint, "delivered");
    assert_eq!(listed["attempts"], 4);
    assert_eq!(listed["message_id"], id);
    assert_eq!(listed["last_status"], 204);
}

/// Waits (at most a minute) for the endpoint's one delivery to reach `status`.
fn wait_for_delivery(server: &TestServer, endpoint: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = server
            .get(
                &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
                Some(&server.admin),
            )
            .expect(200);
        let d = &list["deliveries"][0];
        if d["status"] == status {
            return d.clone();
        }
        assert!(Instant::now() < deadline, "no {status} delivery: {list:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn an_endpoint_that_answers_410_is_disabled_and_sent_nothing_more() {
    let server = TestServer::start_with(Dirs::new(), fast);
    let receiver = Receiver::start(&["--status", "410"]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["*"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-gone-1");
    let failed = wait_for_delivery(&server, &endpoint, "failed");
    assert_eq!(failed["last_status"], 410);
    assert_eq!(failed["attempts"], 1, "410 is not retried");
    let e = server
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            Some(&server.admin),
        )
        .expect(200);
    assert_eq!(e["endpoint"]["status"], "disabled");
    assert_eq!(e["endpoint"]["disabled_reason"], "gone");
    mint(&server, "hook-gone-2");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.records().len(), 1, "nothing more after the 410");
    let list = server
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            Some(&server.admin),
        )
        .expect(200);
    assert_eq!(
        list["deliveries"].as_array().unwrap().len(),
        1,
        "a disabled endpoint gets no new messages"
    );
}

#[test]
fn a_failed_delivery_is_listed_and_sent_again_on_request_with_its_webhook_id() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        fast(s);
        s.webhooks.retry_schedule_seconds = vec![0.05];
    });
    let receiver = Receiver::refusing(&[]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-resend-1");
    wait_for_delivery(&server, &endpoint, "failed");
    let failed = server
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries?status=failed"),
            Some(&server.admin),
        )
        .expect(200);
    let d = &failed["deliveries"][0];
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["last_status"], 503);
    let path = format!(
        "/v1/webhook-endpoints/{endpoint}/deliveries/{}/resend",
        d["id"]
    );
    receiver.accept();
    let again = server
        .post(&path, Some(&server.admin), &json!({}))
        .expect(200);
    assert_eq!(again["delivery"]["status"], "pending");
    wait_for_delivery(&server, &endpoint, "delivered");
    let records = receiver.records();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r["webhook_id"] == d["message_id"]));
    server
        .post(&path, Some(&server.admin), &json!({}))
        .expect_problem(409, "delivery_not_failed");
}

#[test]
fn a_retry_after_of_a_throttling_receiver_is_honoured() {
    let server = TestServer::start_with(Dirs::new(), fast);
    let receiver = Receiver::start(&["--fail-first", "1", "--retry-after", "2"]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-throttled-1");
    let records = receiver.wait_for("the second attempt", |r| r.len() >= 2);
    assert_eq!(records[0]["answered"], 429);
    assert_eq!(records[1]["answered"], 204);
    let waited =
        records[1]["received_at"].as_f64().unwrap() - records[0]["received_at"].as_f64().unwrap();
    assert!(
        waited >= 1.9,
        "the schedule's 0.2 s gave way to Retry-After: 2 (waited {waited:.2} s)"
    );
    wait_for_delivery(&server, &endpoint, "delivered");
}

#[test]
fn a_retry_after_given_as_an_http_date_is_honoured() {
    let server = TestServer::start_with(Dirs::new(), fast);
    let receiver = Receiver::start(&["--fail-first", "1", "--retry-after-date", "2"]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-throttled-date-1");
    let records = receiver.wait_for("the second attempt", |r| r.len() >= 2);
    assert_eq!(records[0]["answered"], 429);
    assert_eq!(records[1]["answered"], 204);
    assert_eq!(records[0]["webhook_id"], records[1]["webhook_id"]);
    // The date is 2 s after the next whole second: at least 2 s after the answer.
    let waited =
        records[1]["received_at"].as_f64().unwrap() - records[0]["received_at"].as_f64().unwrap();
    assert!(
        waited >= 1.9,
        "the schedule's 0.2 s gave way to the date in Retry-After (waited {waited:.2} s)"
    );
    wait_for_delivery(&server, &endpoint, "delivered");
}

#[test]
fn a_redirect_is_a_failed_attempt_and_never_followed() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        fast(s);
        s.webhooks.retry_schedule_seconds = vec![0.05];
    });
    let receiver = Receiver::start(&["--status", "302"]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-redirect-1");
    let failed = wait_for_delivery(&server, &endpoint, "failed");
    assert_eq!(failed["last_status"], 302);
    let records = receiver.records();
    assert_eq!(records.len(), 2, "two attempts, each answered 302");
    assert!(
        records.iter().all(|r| r["path"] == "/hooks/keyclerk"),
        "the Location was never asked for: {records:#?}"
    );
}

#[test]
fn an_https_receiver_gets_its_delivery_once_its_ca_is_trusted_and_until_then_attempts_fail() {
    let tls = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&["--tls-dir", tls.path().to_str().unwrap()]);
    let url = receiver.url().replace("http://", "https://");

    // A certificate no trusted root signed: each attempt fails at the handshake and
    // is retried; nothing reaches the receiver.
    let server = TestServer::start_with(Dirs::new(), |s| {
        fast(s);
        s.webhooks.retry_schedule_seconds = vec![0.05];
    });
    let (endpoint, secret) = add_endpoint(&server, &url, &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-tls-1");
    let failed = wait_for_delivery(&server, &endpoint, "failed");
    assert_eq!(failed["attempts"], 2, "retried: {failed}");
    assert_eq!(failed["last_status"], Value::Null, "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{failed}"
    );
    assert!(receiver.records().is_empty());
    drop(server);

    // With `[webhooks] ca_file` naming the receiver's CA: delivered, verified.
    let server = TestServer::start_with(Dirs::new(), |s| {
        fast(s);
        s.webhooks.ca_file = Some(tls.path().join("ca.pem"));
    });
    let (endpoint, secret) = add_endpoint(&server, &url, &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-tls-2");
    wait_for_delivery(&server, &endpoint, "delivered");
    let records = receiver.wait_for("the delivery over https", |r| {
        Receiver::accepted_ids(r).len() == 1
    });
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["type"], "license.created");
}

both_engines!(with_no_endpoint_a_change_writes_no_outbox_row);
fn with_no_endpoint_a_change_writes_no_outbox_row(engine: Engine) {
    let server = TestServer::start_with(Dirs::on(engine), fast);
    mint(&server, "hook-none-1");
    assert_eq!(server.dirs().query_i64("SELECT count(*) FROM outbox"), 0);
    let receiver = Receiver::start(&[]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-none-2");
    wait_for_delivery(&server, &endpoint, "delivered");
    server
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/disable"),
            Some(&server.admin),
            &json!({}),
        )
        .expect(200);
    mint(&server, "hook-none-3");
    assert_eq!(
        server.dirs().query_i64("SELECT count(*) FROM outbox"),
        1,
        "one message, while the endpoint was enabled"
    );
}

#[test]
fn delivered_messages_past_keep_days_are_deleted() {
    let keep_none = |s: &mut Settings| {
        fast(s);
        s.webhooks.keep_days = 0.0;
    };
    let server = TestServer::start_with(Dirs::new(), keep_none);
    let receiver = Receiver::start(&[]);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["license.created"]);
    receiver.trust(&[&secret]);
    mint(&server, "hook-keep-1");
    wait_for_delivery(&server, &endpoint, "delivered");
    let dirs = server.stop();
    // Done more than a second ago: the restart's first clean-up takes it.
    std::thread::sleep(Duration::from_millis(1100));
    let server = TestServer::start_with(dirs, keep_none);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.dirs().query_i64("SELECT count(*) FROM outbox") > 0 {
        assert!(Instant::now() < deadline, "the delivered message was kept");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn loopback_private_and_link_local_addresses_are_refused_unless_allowed() {
    let server = TestServer::start();
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://localhost:9/hook",
    ] {
        server
            .post(
                "/v1/webhook-endpoints",
                Some(&server.admin),
                &json!({"url": url, "events": ["*"]}),
            )
            .expect_problem(422, "address_not_allowed");
    }
    for (body, code) in [
        (
            json!({"url": "ftp://93.184.215.14/x", "events": ["*"]}),
            "invalid_url",
        ),
        (
            json!({"url": "http://93.184.215.14/x", "events": ["license.exploded"]}),
            "invalid_field",
        ),
        (
            json!({"url": "http://93.184.215.14/x", "events": []}),
            "invalid_field",
        ),
    ] {
        server
            .post("/v1/webhook-endpoints", Some(&server.admin), &body)
            .expect_problem(422, code);
    }
    let vendor = server.token("vendor");
    server
        .post(
            "/v1/webhook-endpoints",
            Some(&vendor),
            &json!({"url": "http://93.184.215.14/x", "events": ["*"]}),
        )
        .expect_problem(403, "forbidden");
}

#[test]
fn an_endpoint_that_became_private_is_refused_at_delivery_and_nothing_is_sent() {
    let receiver = Receiver::start(&[]);
    let server = TestServer::start_with(Dirs::new(), fast);
    let (endpoint, secret) = add_endpoint(&server, &receiver.url(), &["*"]);
    receiver.trust(&[&secret]);
    let dirs = server.stop();
    let server = TestServer::start_with(dirs, |s| {
        fast(s);
        s.webhooks.allow_private_addresses = false;
        s.webhooks.retry_schedule_seconds = vec![0.05];
    });
    mint(&server, "hook-private-1");
    let failed = wait_for_delivery(&server, &endpoint, "failed");
    assert!(
        failed["last_error"].as_str().unwrap().contains("private"),
        "{failed}"
    );
    assert!(receiver.records().is_empty(), "no request left keyclerk");
}

#[test]
fn the_cli_adds_lists_disables_enables_rotates_and_removes_an_endpoint() {
    let server = TestServer::start();
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyclerk"));
        cmd.args(args)
            .current_dir(server.dirs().root.path())
            .env("KEYCLERK_DATA_DIR", server.dirs().data())
            .env("KEYCLERK_KEYS_DIR", server.dirs().keys())
            .env("KEYCLERK_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES", "true");
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let secret = cli(&[
        "webhooks",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "license.created,activation.created",
    ]);
    let secret = secret.trim();
    assert!(WebhookSecret::parse(secret).is_some(), "{secret}");
    let listed = cli(&["webhooks", "list"]);
    let id = listed.split('\t').next().unwrap().to_owned();
    assert!(
        listed.contains("enabled\tlicense.created,activation.created\thttp://127.0.0.1:9/hook"),
        "{listed}"
    );
    assert!(cli(&["webhooks", "disable", &id]).starts_with("disabled"));
    assert!(cli(&["webhooks", "list"]).contains("\tdisabled\t"));
    assert!(cli(&["webhooks", "enable", &id]).starts_with("enabled"));
    let new = cli(&["webhooks", "rotate-secret", &id, "--overlap-hours", "2"]);
    assert!(WebhookSecret::parse(new.trim()).is_some());
    assert_ne!(new.trim(), secret);
    let over_api = server
        .get(&format!("/v1/webhook-endpoints/{id}"), Some(&server.admin))
        .expect(200);
    assert!(over_api["endpoint"]["previous_secret_expires_at"].is_string());
    assert!(
        !over_api.to_string().contains("whsec_"),
        "a secret is shown once, never listed"
    );
    assert!(cli(&["webhooks", "remove", &id]).starts_with("removed"));
    assert_eq!(cli(&["webhooks", "list"]), "");
    server
        .get(&format!("/v1/webhook-endpoints/{id}"), Some(&server.admin))
        .expect_problem(404, "webhook_endpoint_not_found");
}

/// Mints `n` licenses on a server process; their order ids.
fn mint_on(url: &str, token: &str, prefix: &str, n: usize) {
    for i in 0..n {
        let r = agent()
            .post(&format!("{url}/v1/licenses"))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(json!({"product": "photo-pro", "order_id": format!("{prefix}-{i}")}))
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

fn add_endpoint_on(url: &str, token: &str, receiver: &Receiver) -> String {
    let body: Value = agent()
        .post(&format!("{url}/v1/webhook-endpoints"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(json!({"url": receiver.url(), "events": ["license.created"]}))
        .unwrap()
        .into_json()
        .unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    receiver.trust(&[&secret]);
    secret
}

both_engines!(
    messages_not_yet_delivered_when_keyclerk_is_sigkilled_are_all_delivered_after_the_restart
);
/// On PostgreSQL a message leased by the killed process waits for its lease to run
/// out (the attempt's timeout and 15 s); on SQLite the restart frees it at once.
fn messages_not_yet_delivered_when_keyclerk_is_sigkilled_are_all_delivered_after_the_restart(
    engine: Engine,
) {
    const N: usize = 20;
    let dirs = Dirs::on(engine);
    let receiver = Receiver::refusing(&[]);
    let first = ServerProcess::spawn(&dirs, FAST_ENV);
    let admin = admin_token(&dirs);
    add_endpoint_on(&first.url(), &admin, &receiver);
    mint_on(&first.url(), &admin, "hook-kill", N);
    // Attempts have begun (and been refused) for some of them.
    receiver.wait_for("a first attempt", |r| !r.is_empty());
    first.kill();
    // The receiver may still hold requests the killed process sent; were they
    // answered after it starts accepting, they would count as accepted though no
    // process lived to record it (and the restart sends them again, as at least once
    // means). So it takes them all, refusing, before it accepts.
    receiver.settle();
    receiver.accept();
    let second = ServerProcess::spawn(&dirs, FAST_ENV);
    let records = receiver.wait_for("every message", |r| {
        let mut ids = Receiver::accepted_ids(r);
        ids.dedup();
        ids.len() >= N
    });
    let mut ids = Receiver::accepted_ids(&records);
    let accepted = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), N, "every message delivered");
    assert_eq!(accepted, N, "each accepted once");
    let orders: std::collections::BTreeSet<String> = records
        .iter()
        .filter(|r| r["answered"] == 204)
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            body["data"]["order_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(orders.len(), N);
    drop(second);
}

#[test]
fn two_instances_on_postgresql_deliver_each_message_once() {
    const N: usize = 120;
    let dirs = Dirs::on(Engine::Postgres);
    let receiver = Receiver::start(&[]);
    let first = ServerProcess::spawn(&dirs, FAST_ENV);
    let second = ServerProcess::spawn(&dirs, FAST_ENV);
    let admin = admin_token(&dirs);
    add_endpoint_on(&first.url(), &admin, &receiver);
    let urls = [first.url(), second.url()];
    std::thread::scope(|s| {
        for (i, url) in urls.iter().enumerate() {
            let admin = &admin;
            s.spawn(move || mint_on(url, admin, &format!("hook-two-{i}"), N / 2));
        }
    });
    receiver.wait_for("every message", |r| Receiver::accepted_ids(r).len() >= N);
    // Time for a second delivery of any message to show.
    std::thread::sleep(Duration::from_secs(1));
    let records = receiver.records();
    let mut ids = Receiver::accepted_ids(&records);
    assert_eq!(records.len(), N, "no attempt failed, so none was retried");
    ids.dedup();
    assert_eq!(ids.len(), N, "each message delivered once");
    let _unused: PathBuf = dirs.data();
}

/// The text from the line starting with `from` to the first line after it equal to
/// `to`, both included.
fn snippet(text: &str, from: &str, to: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(from))
        .unwrap_or_else(|| panic!("no line starts with {from:?}"));
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.trim_end() == to)
            .unwrap_or_else(|| panic!("nothing ends {from:?} with {to:?}"));
    lines[start..=end].join("\n")
}

#[test]
fn the_readme_shows_the_verification_code_the_receivers_run() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let python = std::fs::read_to_string(repo().join("tests/interop/webhook_receiver.py")).unwrap();
    let node =
        std::fs::read_to_string(repo().join("tests/interop/node/webhook_verify.js")).unwrap();
    for code in [
        snippet(
            &python,
            "def verify_delivery(",
            "    return Webhook(secret).verify(body, headers)",
        ),
        snippet(&node, "function verifyDelivery(", "}"),
    ] {
        assert!(
            readme.contains(&code),
            "README.md does not show the code the tests run:\n{code}"
        );
    }
}
