//! `GET /metrics`: read by someone else's parser (the Prometheus Python client's,
//! installed by `scripts/test.sh`; without it these tests fail), counting what the
//! traffic did, only for admin tokens on the API's address and for anyone on
//! `[metrics] listen`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::helpers::{into_resp, repo, Dirs, TestServer};

/// One sample as the parser read it.
#[derive(Debug, Clone)]
struct Sample {
    family_type: String,
    name: String,
    labels: Value,
    value: f64,
}

/// The samples of `text`, as `prometheus_client`'s text parser reads them.
fn parse(text: &str) -> Vec<Sample> {
    let python = std::env::var("KC_TEST_PYTHON").expect(
        "KC_TEST_PYTHON: run the suite with ./scripts/test.sh, which installs prometheus_client",
    );
    let mut child = Command::new(python)
        .arg(repo().join("tests/interop/prometheus_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python did not start");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    parsed
        .into_iter()
        .map(|s| Sample {
            family_type: s["type"].as_str().unwrap().to_owned(),
            name: s["name"].as_str().unwrap().to_owned(),
            labels: s["labels"].clone(),
            value: match &s["value"] {
                Value::String(inf) if inf == "+Inf" => f64::INFINITY,
                v => v.as_f64().unwrap(),
            },
        })
        .collect()
}

/// A parsed scrape.
struct Scrape(Vec<Sample>);

impl Scrape {
    fn of(text: &str) -> Self {
        Self(parse(text))
    }

    /// The value of the sample `name` whose labels include `labels` (0 if none:
    /// a counter never moved has no series).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels[*k] == *v))
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} is not one series: {found:?}"
        );
        found.first().map_or(0.0, |s| s.value)
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }

    fn type_of(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|s| s.name == name || s.name.starts_with(&format!("{name}_")))
            .map(|s| s.family_type.as_str())
    }
}

fn scrape_with_admin(server: &TestServer) -> (String, Scrape) {
    let r = server
        .request("GET", "/metrics", Some(&server.admin))
        .call()
        .unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.into_string().unwrap();
    let parsed = Scrape::of(&text);
    (text, parsed)
}

fn requests(s: &Scrape, method: &str, route: &str, status: &str) -> f64 {
    s.value(
        "keyclerk_http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
}

fn refusals(s: &Scrape, route: &str, code: &str) -> f64 {
    s.value(
        "keyclerk_refusals_total",
        &[("route", route), ("code", code)],
    )
}

#[test]
fn the_counters_move_by_what_the_traffic_did_and_a_prometheus_parser_reads_them() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.requests_per_key_per_minute = 3;
    });
    let (_, before) = scrape_with_admin(&server);

    let minted = server
        .mint(json!({"product": "photo-pro", "order_id": "metrics-1"}))
        .expect(201);
    let key = minted["key"].as_str().unwrap();
    let activate = json!({"license_key": key, "fingerprint": "fp-metrics"});
    server.post("/v1/activations", None, &activate).expect(201);
    server.post("/v1/activations", None, &activate).expect(200);
    let v = server
        .post("/v1/validate", None, &json!({"license_key": key}))
        .expect(200);
    assert_eq!(v["code"], "VALID");
    // The key's fourth request in the minute: over its limit of 3.
    server
        .post("/v1/activations", None, &activate)
        .expect_problem(429, "rate_limited");
    let forged = crate::helpers::flip_one_char(key);
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": forged, "fingerprint": "fp-metrics"}),
        )
        .expect_problem(404, "license_not_found");
    server
        .get("/no/such/path", None)
        .expect_problem(404, "not_found");
    server
        .request("DELETE", "/v1/licenses", Some(&server.admin))
        .call()
        .map(|_| ())
        .unwrap_or_else(|e| assert!(matches!(e, ureq::Error::Status(405, _)), "{e}"));

    let (text, after) = scrape_with_admin(&server);
    let moved = |f: &dyn Fn(&Scrape) -> f64| f(&after) - f(&before);
    let acts = "/v1/activations";
    for (what, got, expected) in [
        (
            "mint 201",
            moved(&|s| requests(s, "POST", "/v1/licenses", "201")),
            1.0,
        ),
        (
            "activate 201",
            moved(&|s| requests(s, "POST", acts, "201")),
            1.0,
        ),
        (
            "activate 200",
            moved(&|s| requests(s, "POST", acts, "200")),
            1.0,
        ),
        (
            "activate 429",
            moved(&|s| requests(s, "POST", acts, "429")),
            1.0,
        ),
        (
            "activate 404",
            moved(&|s| requests(s, "POST", acts, "404")),
            1.0,
        ),
        (
            "validate 200",
            moved(&|s| requests(s, "POST", "/v1/validate", "200")),
            1.0,
        ),
        (
            "unknown path",
            moved(&|s| requests(s, "other", "(unmatched)", "404")),
            1.0,
        ),
        (
            "a method the route lacks",
            moved(&|s| requests(s, "other", "/v1/licenses", "405")),
            1.0,
        ),
        (
            "refused: not found",
            moved(&|s| refusals(s, acts, "license_not_found")),
            1.0,
        ),
        (
            "refused: rate limited",
            moved(&|s| refusals(s, acts, "rate_limited")),
            1.0,
        ),
        (
            "refused: no such path",
            moved(&|s| refusals(s, "(unmatched)", "not_found")),
            1.0,
        ),
        (
            "rate-limit refusals",
            moved(&|s| {
                s.value(
                    "keyclerk_rate_limited_total",
                    &[("method", "POST"), ("route", acts)],
                )
            }),
            1.0,
        ),
        (
            "activations created",
            moved(&|s| s.value("keyclerk_activations_total", &[("outcome", "created")])),
            1.0,
        ),
        (
            "activations refreshed",
            moved(&|s| s.value("keyclerk_activations_total", &[("outcome", "refreshed")])),
            1.0,
        ),
        (
            "validations VALID",
            moved(&|s| s.value("keyclerk_validations_total", &[("code", "VALID")])),
            1.0,
        ),
        (
            "activation latencies",
            moved(&|s| {
                s.value(
                    "keyclerk_http_request_duration_seconds_count",
                    &[("method", "POST"), ("route", acts)],
                )
            }),
            4.0,
        ),
        (
            "the first scrape",
            moved(&|s| requests(s, "GET", "/metrics", "200")),
            1.0,
        ),
    ] {
        assert_eq!(got, expected, "{what}:\n{text}");
    }

    // Histograms: cumulative buckets, +Inf equal to the count, the sum in seconds.
    let buckets: Vec<&Sample> = after
        .0
        .iter()
        .filter(|s| {
            s.name == "keyclerk_http_request_duration_seconds_bucket"
                && s.labels["route"] == acts
                && s.labels["method"] == "POST"
        })
        .collect();
    assert!(buckets.len() > 10, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    let inf = buckets.iter().find(|b| b.labels["le"] == "+Inf").unwrap();
    let count = after.value(
        "keyclerk_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", acts)],
    );
    assert_eq!(inf.value, count);
    let sum = after.value(
        "keyclerk_http_request_duration_seconds_sum",
        &[("method", "POST"), ("route", acts)],
    );
    assert!(
        sum > 0.0 && sum < 60.0,
        "{sum} seconds for four activations"
    );

    // The writer and the pools: the mint and the activations went through group commits.
    assert_eq!(
        after.type_of("keyclerk_db_write_batch_size"),
        Some("histogram")
    );
    assert!(after.value("keyclerk_db_write_batch_size_count", &[]) >= 3.0);
    assert!(after.value("keyclerk_db_commit_duration_seconds_count", &[]) >= 3.0);
    assert!(after.value("keyclerk_db_write_batch_duration_seconds_count", &[]) >= 3.0);
    assert_eq!(after.value("keyclerk_db_write_queue_depth", &[]), 0.0);
    assert!(after.value("keyclerk_db_write_queue_capacity", &[]) > 0.0);
    assert_eq!(
        after.value(
            "keyclerk_db_pool_max_connections",
            &[("pool", "sqlite_read")]
        ),
        4.0
    );
    assert!(after.has("keyclerk_db_pool_connections"));
    assert!(after.has("keyclerk_db_pool_waiting"));
    assert!(after.has("keyclerk_last_seen_pending"));
    assert!(after.has("keyclerk_http_requests_in_flight"));
    assert_eq!(
        after.value("keyclerk_build_info", &[("engine", "sqlite")]),
        1.0
    );
    assert_eq!(
        after.type_of("keyclerk_http_requests_total"),
        Some("counter")
    );
    // The raw path never becomes a label: the unknown path is `(unmatched)`.
    assert!(!text.contains("/no/such/path"), "{text}");
}

#[test]
fn metrics_need_an_admin_token_on_the_api_address() {
    let server = TestServer::start();
    let vendor = server.token("vendor");
    server
        .get("/metrics", None)
        .expect_problem(401, "missing_token");
    server
        .get("/metrics", Some("kc_not_a_token_at_all_0000000000"))
        .expect_problem(401, "invalid_token");
    let r = server.get("/metrics", Some(&vendor));
    r.expect_problem(403, "forbidden");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // The refusals are counted like any answer.
    let (text, s) = scrape_with_admin(&server);
    assert_eq!(requests(&s, "GET", "/metrics", "401"), 2.0, "{text}");
    assert_eq!(refusals(&s, "/metrics", "forbidden"), 1.0, "{text}");
}

#[test]
fn the_metrics_address_answers_without_a_token_and_serves_nothing_else() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.metrics.listen = Some("127.0.0.1:0".into());
    });
    let port = server.metrics_port.expect("no metrics port");
    assert_ne!(port, server.port);
    server
        .mint(json!({"product": "photo-pro", "order_id": "metrics-listen-1"}))
        .expect(201);
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let r = ureq::get(&url("/metrics")).call().unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.header("x-request-id").is_some());
    let s = Scrape::of(&r.into_string().unwrap());
    assert_eq!(requests(&s, "POST", "/v1/licenses", "201"), 1.0);
    // Only /metrics: the API is not on this address.
    let other = into_resp(ureq::get(&url("/v1/licenses")).call());
    other.expect_problem(404, "not_found");
    let other = into_resp(ureq::get(&url("/healthz")).call());
    other.expect_problem(404, "not_found");
    // The API's address still wants the admin token.
    server
        .get("/metrics", None)
        .expect_problem(401, "missing_token");
    // It stops with the server (just after it: poll until it no longer answers).
    drop(server.stop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ureq::get(&url("/metrics"))
        .timeout(std::time::Duration::from_secs(5))
        .call()
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the metrics address outlived its server"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn on_postgresql_the_metrics_show_its_pool_its_commit_times_and_no_writer_queue() {
    let db = crate::pg::Database::create();
    let url = db.url.clone();
    let server = TestServer::start_with(Dirs::new(), move |s| s.database.url = Some(url));
    server
        .mint(json!({"product": "photo-pro", "order_id": "metrics-pg-1"}))
        .expect(201);
    let (text, s) = scrape_with_admin(&server);
    assert_eq!(
        s.value("keyclerk_build_info", &[("engine", "postgres")]),
        1.0
    );
    assert_eq!(requests(&s, "POST", "/v1/licenses", "201"), 1.0, "{text}");
    let max = s.value("keyclerk_db_pool_max_connections", &[("pool", "postgres")]);
    assert!(max >= 1.0, "{text}");
    let open = s.value(
        "keyclerk_db_pool_connections",
        &[("pool", "postgres"), ("state", "idle")],
    ) + s.value(
        "keyclerk_db_pool_connections",
        &[("pool", "postgres"), ("state", "in_use")],
    );
    assert!(open >= 1.0 && open <= max, "{text}");
    assert!(s.has("keyclerk_db_pool_waiting"));
    // One transaction per write, no group commits: no writer's queue to show, but
    // the time of each write transaction and of its commit.
    assert!(!s.has("keyclerk_db_write_queue_depth"), "{text}");
    let commits = s.value("keyclerk_db_commit_duration_seconds_count", &[]);
    assert!(commits >= 1.0, "the mint's commit: {text}");
    assert_eq!(
        s.value("keyclerk_db_write_batch_duration_seconds_count", &[]),
        commits,
        "one transaction per commit"
    );
    assert!(s.value("keyclerk_db_commit_duration_seconds_sum", &[]) > 0.0);
    drop(server);
}
