//! Losing the database: keyclerk on a PostgreSQL of the test's own, stopped and
//! started again under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{into_resp, Dirs, Resp};
use crate::pg::Cluster;
use crate::process::{admin_token, agent, ServerProcess};

/// How long a request may take while the database is gone (the engine's
/// deadline is 10 s; a lost connection is usually noticed at once).
const BOUNDED: Duration = Duration::from_secs(15);

fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (Resp, Duration) {
    let started = Instant::now();
    let mut r = agent().request(method, &format!("{base}{path}"));
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = into_resp(match body {
        Some(b) => r.send_json(b.clone()),
        None => r.call(),
    });
    (resp, started.elapsed())
}

/// Asserts a refusal of a lost database: 503 problem+json with Retry-After.
#[track_caller]
fn assert_database_unavailable(r: &Resp, what: &str) {
    r.expect_problem(503, "database_unavailable");
    assert!(
        r.header("Retry-After")
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "{what}: Retry-After in {:?}",
        r.headers
    );
}

#[test]
fn a_stopped_database_answers_503_database_unavailable_and_service_resumes_without_a_restart() {
    let cluster = Cluster::start();
    let dirs = Dirs::new();
    let url = cluster.url();
    // The load would meet the per-key limits long before the outage.
    let server = ServerProcess::spawn(
        &dirs,
        &[
            ("KEYCLERK_DATABASE__URL", url.as_str()),
            ("KEYCLERK_RATE_LIMITS__ENABLED", "false"),
        ],
    );
    let base = server.url();
    let admin = admin_token(&dirs);
    let (minted, _) = call(
        &base,
        "POST",
        "/v1/licenses",
        Some(&admin),
        Some(&json!({"product": "studio-suite", "order_id": "OUT-1", "seats": 5})),
    );
    let key = minted.expect(201)["key"].as_str().unwrap().to_owned();

    // Load: machines activating and validating the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(u16, String, Duration)>::new()));
    let load: Vec<_> = (0..4)
        .map(|n| {
            let (stop, seen, base, key) = (
                Arc::clone(&stop),
                Arc::clone(&seen),
                base.clone(),
                key.clone(),
            );
            std::thread::spawn(move || {
                let body = json!({"license_key": key, "fingerprint": format!("fp-load-{n}")});
                while !stop.load(Ordering::Relaxed) {
                    for path in ["/v1/activations", "/v1/validate"] {
                        let (r, took) = call(&base, "POST", path, None, Some(&body));
                        if r.status == 503 {
                            assert_database_unavailable(&r, path);
                        }
                        seen.lock()
                            .unwrap()
                            .push((r.status, r.code().to_owned(), took));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    cluster.pg_ctl_stop();
    let activation = json!({"license_key": key, "fingerprint": "fp-during"});
    for _ in 0..3 {
        let (r, took) = call(&base, "POST", "/v1/activations", None, Some(&activation));
        assert_database_unavailable(&r, "an activation");
        assert!(took < BOUNDED, "an activation took {took:?}");
        let (r, took) = call(
            &base,
            "POST",
            "/v1/licenses",
            Some(&admin),
            Some(&json!({"product": "photo-pro", "order_id": "OUT-2"})),
        );
        assert_database_unavailable(&r, "a mint");
        assert!(took < BOUNDED, "a mint took {took:?}");
    }
    let (ready, took) = call(&base, "GET", "/readyz", None, None);
    assert_database_unavailable(&ready, "/readyz");
    assert!(took < BOUNDED, "/readyz took {took:?}");
    let (health, _) = call(&base, "GET", "/healthz", None, None);
    assert_eq!(health.status, 200);

    cluster.pg_ctl_start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ready, _) = call(&base, "GET", "/readyz", None, None);
        if ready.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after the database came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (r, _) = call(&base, "POST", "/v1/activations", None, Some(&activation));
    assert_eq!(r.status, 201, "after the outage: {:?}", r.body);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for h in load {
        h.join().unwrap();
    }

    let seen = seen.lock().unwrap();
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|(status, _, _)| !matches!(status, 200 | 201 | 503))
        .collect();
    assert!(unexpected.is_empty(), "besides 2xx and 503: {unexpected:?}");
    assert!(
        seen.iter().any(|(s, _, _)| *s == 503),
        "the load met the outage"
    );
    let slowest = seen.iter().map(|(_, _, t)| *t).max().unwrap();
    assert!(
        slowest < BOUNDED,
        "the slowest request under load took {slowest:?}"
    );
    let tail: Vec<_> = seen.iter().rev().take(4).collect();
    assert!(
        tail.iter().all(|(s, _, _)| *s == 200 || *s == 201),
        "the load is served again: {tail:?}"
    );
    drop(server.stop());
}
