//! Several keyclerk processes on one PostgreSQL database, and the start-up refusals
//! of a database URL that cannot be used.

use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{into_resp, stderr, stdout, Dirs, Resp};
use crate::pg::{self, execute, query_i64, Database};
use crate::process::{admin_token, agent, ServerProcess};

/// Two servers on one fresh database, sharing keys (the first creates them and the
/// first admin token; the second starts once the first listens).
struct TwoInstances {
    servers: [ServerProcess; 2],
    admin: String,
    dirs: Dirs,
    _db: Database,
}

impl TwoInstances {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// Two servers with extra environment variables.
    fn start_with(extra: &[(&str, &str)]) -> Self {
        let db = Database::create();
        let dirs = Dirs::new();
        let mut env = vec![("KEYCLERK_DATABASE__URL", db.url.as_str())];
        env.extend_from_slice(extra);
        let first = ServerProcess::spawn(&dirs, &env);
        let second = ServerProcess::spawn(&dirs, &env);
        Self {
            admin: admin_token(&dirs),
            servers: [first, second],
            dirs,
            _db: db,
        }
    }

    fn post(&self, server: usize, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.post_with(server, path, token, None, body)
    }

    fn post_with(
        &self,
        server: usize,
        path: &str,
        token: Option<&str>,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> Resp {
        let mut r = agent().post(&format!("{}{path}", self.servers[server].url()));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        if let Some(k) = idempotency_key {
            r = r.set("Idempotency-Key", k);
        }
        into_resp(r.send_json(body.clone()))
    }

    /// The events of a license, asked of the second instance.
    fn history(&self, id: &str) -> Vec<Value> {
        into_resp(
            agent()
                .get(&format!(
                    "{}/v1/licenses/{id}/history",
                    self.servers[1].url()
                ))
                .set("Authorization", &format!("Bearer {}", self.admin))
                .call(),
        )
        .expect(200)["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Sends `n` requests at once, request `i` to instance `i % 2`; the answers in
    /// order.
    fn race(
        self: &Arc<Self>,
        n: usize,
        send: impl Fn(&Self, usize) -> Resp + Send + Sync + 'static,
    ) -> Vec<Resp> {
        let send = Arc::new(send);
        let barrier = Arc::new(std::sync::Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (both, send, barrier) =
                    (Arc::clone(self), Arc::clone(&send), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    send(&both, i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    /// `keyclerk audit verify` passes on the shared database.
    #[track_caller]
    fn assert_chain_verifies(&self) {
        let verified = self.audit_verify();
        assert!(verified.status.success(), "{}", stderr(&verified));
        assert!(
            stdout(&verified).contains("intact"),
            "{}",
            stdout(&verified)
        );
    }

    /// `keyclerk audit verify` on the shared database.
    fn audit_verify(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_keyclerk"))
            .args(["audit", "verify"])
            .current_dir(self.dirs.root.path())
            .env("KEYCLERK_DATA_DIR", self.dirs.data())
            .env("KEYCLERK_KEYS_DIR", self.dirs.keys())
            .env("KEYCLERK_DATABASE__URL", &self._db.url)
            .output()
            .unwrap()
    }
}

fn mint(both: &TwoInstances, server: usize, body: Value) -> (String, String) {
    let minted = both
        .post(server, "/v1/licenses", Some(&both.admin), &body)
        .expect(201);
    (
        minted["license"]["id"].as_str().unwrap().to_owned(),
        minted["key"].as_str().unwrap().to_owned(),
    )
}

fn count_kind(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["kind"] == kind).count()
}

#[test]
fn a_hundred_machines_split_across_two_instances_get_exactly_five_seats_and_one_chain() {
    let both = Arc::new(TwoInstances::start());
    let (id, key) = mint(
        &both,
        0,
        json!({"product": "studio-suite", "order_id": "PG-RACE", "seats": 5}),
    );
    let answers = both.race(100, move |both, i| {
        both.post(
            i % 2,
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": format!("fp-{i}")}),
        )
    });
    let granted: Vec<usize> = (0..100).filter(|i| answers[*i].status == 201).collect();
    let refused = answers
        .iter()
        .filter(|r| r.status == 409 && r.code() == "seat_limit_reached")
        .count();
    assert_eq!((granted.len(), refused), (5, 95), "granted: {granted:?}");
    assert_eq!(count_kind(&both.history(&id), "activation_created"), 5);
    both.assert_chain_verifies();
}

#[test]
fn fifty_activations_of_one_machine_across_two_instances_take_one_seat() {
    let both = Arc::new(TwoInstances::start());
    let (id, key) = mint(
        &both,
        1,
        json!({"product": "studio-suite", "order_id": "PG-SAME", "seats": 5}),
    );
    let answers = both.race(50, move |both, i| {
        both.post(
            i % 2,
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-one"}),
        )
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(count_kind(&both.history(&id), "activation_created"), 1);
    both.assert_chain_verifies();
}

#[test]
fn fifty_identical_mints_across_two_instances_make_one_license_and_fifty_identical_keys() {
    let both = Arc::new(TwoInstances::start());
    let answers = both.race(50, |both, i| {
        both.post(
            i % 2,
            "/v1/licenses",
            Some(&both.admin),
            &json!({"product": "photo-pro", "order_id": "PG-MINT"}),
        )
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        49,
        "{statuses:?}"
    );
    let key = &answers[0].body["key"];
    assert!(answers.iter().all(|r| &r.body["key"] == key));
    let id = answers[0].body["license"]["id"].as_str().unwrap();
    assert!(answers.iter().all(|r| r.body["license"]["id"] == id));
    assert_eq!(count_kind(&both.history(id), "license_minted"), 1);
    both.assert_chain_verifies();
}

#[test]
fn one_payment_event_delivered_twenty_times_across_two_instances_mints_once() {
    // The secret from the environment, as an operator may give it.
    let both = Arc::new(TwoInstances::start_with(&[(
        "KEYCLERK_PAYMENTS__STRIPE__WEBHOOK_SECRETS",
        crate::payments::STRIPE_SECRET,
    )]));
    let body = crate::payments::stripe_checkout("two-instances");
    let header = crate::payments::stripe_header(
        &body,
        crate::payments::STRIPE_SECRET,
        keyclerk::domain::time::now().timestamp(),
    );
    let answers = both.race(20, move |both, i| {
        into_resp(
            agent()
                .post(&format!("{}/v1/payments/stripe", both.servers[i % 2].url()))
                .set("Content-Type", "application/json")
                .set("Stripe-Signature", &header)
                .send_string(&body),
        )
    });
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body["events"][0]["outcome"], "applied", "{}", r.body);
            r.body["events"][0]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one stored event: {ids:?}");
    let license = answers[0].body["events"][0]["licenses"][0]
        .as_str()
        .unwrap();
    assert_eq!(count_kind(&both.history(license), "license_minted"), 1);
    assert_eq!(
        query_i64(&both._db.url, "SELECT count(*) FROM payment_events"),
        1
    );
    both.assert_chain_verifies();
}

#[test]
fn twenty_extensions_with_one_idempotency_key_across_two_instances_make_one_decision() {
    let both = Arc::new(TwoInstances::start());
    let (id, _) = mint(
        &both,
        0,
        json!({"product": "photo-pro", "order_id": "PG-LATE",
               "purchased_at": keyclerk::domain::time::format(
                   keyclerk::domain::time::now() - chrono::Duration::days(365))}),
    );
    let path = format!("/v1/licenses/{id}/grace-extension");
    let answers = both.race(20, move |both, i| {
        both.post_with(
            i % 2,
            &path,
            Some(&both.admin),
            Some("same-key"),
            &json!({"remedy": "extend", "reason": "double click"}),
        )
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        19,
        "{statuses:?}"
    );
    let decision = &answers[0].body["decision"]["id"];
    assert!(answers
        .iter()
        .all(|r| &r.body["decision"]["id"] == decision));
    assert_eq!(count_kind(&both.history(&id), "grace_decision"), 1);
    both.assert_chain_verifies();
}

/// Failed look-ups allowed per address in the rate-limit tests.
const GUESS_LIMIT: usize = 6;

/// A small failed-look-up limit, with the test client (127.0.0.1) as a trusted
/// proxy, so that `X-Forwarded-For` names the client and one test has several; the
/// per-key limit out of the way of a key asked again and again.
const SMALL_LIMIT: [(&str, &str); 3] = [
    (
        "KEYCLERK_RATE_LIMITS__FAILED_LOOKUPS_PER_ADDRESS_PER_HOUR",
        "6",
    ),
    ("KEYCLERK_RATE_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
    (
        "KEYCLERK_RATE_LIMITS__REQUESTS_PER_KEY_PER_MINUTE",
        "100000",
    ),
];

/// The block of an address that used up its failures: 429 until one more fits,
/// an hour / `GUESS_LIMIT` after the last failure (never the per-key limit's
/// seconds).
#[track_caller]
fn assert_blocked(r: &Resp) {
    r.expect_problem(429, "rate_limited");
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(after > 500, "Retry-After: {after}");
}

/// A POST to the server at `url` from `client` (behind the trusted proxy).
fn post_from(url: &str, path: &str, client: &str, body: &Value) -> Resp {
    into_resp(
        agent()
            .post(&format!("{url}{path}"))
            .set("X-Forwarded-For", client)
            .send_json(body.clone()),
    )
}

/// An activation with a key that matches no license.
fn guess(url: &str, client: &str) -> u16 {
    let key = format!(
        "v4.public.{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    post_from(
        url,
        "/v1/activations",
        client,
        &json!({"license_key": key, "fingerprint": "fp-guess"}),
    )
    .status
}

/// The statuses of `n` guesses from `client`, one after the other, guess `i` sent
/// to `urls[i % urls.len()]`.
fn guesses(urls: &[String], client: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| guess(&urls[i % urls.len()], client))
        .collect()
}

/// How a genuine key from `client` is answered by the server at `url`, asked again
/// until it is 429 (another instance's block reaches this one within a poll) or
/// 10 s have passed.
fn genuine_until_limited(url: &str, client: &str, key: &str) -> Resp {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = post_from(url, "/v1/validate", client, &json!({"license_key": key}));
        if r.status == 429 || std::time::Instant::now() > deadline {
            return r;
        }
        assert_eq!(r.status, 200, "{:?}", r.body);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn failed_look_ups_spread_over_two_instances_meet_429_at_the_count_of_one() {
    // One instance alone: the count to match.
    let db = Database::create();
    let dirs = Dirs::new();
    let mut env = vec![("KEYCLERK_DATABASE__URL", db.url.as_str())];
    env.extend_from_slice(&SMALL_LIMIT);
    let single = ServerProcess::spawn(&dirs, &env);
    let alone = guesses(&[single.url()], "203.0.113.1", GUESS_LIMIT + 3);
    let count_alone = alone.iter().take_while(|s| **s == 404).count();
    assert_eq!(count_alone, GUESS_LIMIT, "{alone:?}");
    assert!(alone[count_alone..].iter().all(|s| *s == 429), "{alone:?}");
    drop(single);

    let both = TwoInstances::start_with(&SMALL_LIMIT);
    let (_, key) = mint(
        &both,
        0,
        json!({"product": "photo-pro", "order_id": "PG-GUESS"}),
    );
    let urls = [both.servers[0].url(), both.servers[1].url()];
    // Guesses alternating between the instances: the same count, then 429.
    let spread = guesses(&urls, "203.0.113.2", GUESS_LIMIT + 3);
    assert_eq!(
        spread,
        [vec![404; count_alone], vec![429; 3]].concat(),
        "alternating between two instances"
    );
    // The genuine key too, on each instance (no oracle).
    for url in &urls {
        assert_blocked(&genuine_until_limited(url, "203.0.113.2", &key));
    }
    // Guesses all on the first instance: the block reaches the second by its poll.
    let on_one = guesses(&urls[..1], "203.0.113.3", GUESS_LIMIT);
    assert_eq!(on_one, vec![404; GUESS_LIMIT]);
    assert_blocked(&genuine_until_limited(&urls[1], "203.0.113.3", &key));
    assert_eq!(guess(&urls[1], "203.0.113.3"), 429);
    // Other clients are untouched on both.
    for url in &urls {
        let r = post_from(
            url,
            "/v1/validate",
            "203.0.113.4",
            &json!({"license_key": key}),
        );
        assert_eq!(r.expect(200)["code"], "VALID");
    }
}

#[test]
fn concurrent_guesses_across_two_instances_pass_no_more_failures_than_the_limit() {
    let both = Arc::new(TwoInstances::start_with(&[(
        "KEYCLERK_RATE_LIMITS__FAILED_LOOKUPS_PER_ADDRESS_PER_HOUR",
        "20",
    )]));
    let answers = both.race(200, |both, i| {
        let key = format!("v4.public.{:032x}{:032x}", rand::random::<u128>(), i);
        both.post(
            i % 2,
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-guess"}),
        )
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    // Every failure answered 404 was counted in the shared counter first, which
    // allows 20 whichever instance asks; the look-ups in flight past it get 429.
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        180,
        "{statuses:?}"
    );
}

/// `keyclerk serve` with a database URL; its output, which must be a refusal.
fn serve_refused(url: &str) -> String {
    let dirs = Dirs::new();
    let out = Command::new(env!("CARGO_BIN_EXE_keyclerk"))
        .arg("serve")
        .current_dir(dirs.root.path())
        .env("KEYCLERK_DATA_DIR", dirs.data())
        .env("KEYCLERK_KEYS_DIR", dirs.keys())
        .env("KEYCLERK_LISTEN", "127.0.0.1:0")
        .env("KEYCLERK_DATABASE__URL", url)
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve started on {url}");
    assert!(
        !dirs.keys().exists(),
        "a signing key was made before the refusal"
    );
    stderr(&out)
}

#[test]
fn a_database_url_that_cannot_be_parsed_stops_start_up_naming_the_setting_not_the_password() {
    for url in [
        "postgres://kc:s3cret@127.0.0.1:notaport/keyclerk",
        "mysql://kc:s3cret@127.0.0.1/keyclerk",
    ] {
        let message = serve_refused(url);
        assert!(message.contains("database.url"), "{url}: {message}");
        assert!(!message.contains("s3cret"), "{url}: {message}");
    }
}

#[test]
fn a_refused_login_stops_start_up_naming_the_setting_and_the_cause_not_the_password() {
    let server = pg::server_url();
    let url = pg::url_of(&server, "postgres").replacen("postgres@", "nobody:s3cret@", 1);
    let message = serve_refused(&url);
    assert!(
        message.contains("database.url: cannot connect"),
        "{message}"
    );
    assert!(
        message.contains("nobody"),
        "the cause names the role: {message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}

#[test]
fn a_database_of_a_newer_keyclerk_is_refused_at_start_up() {
    let db = Database::create();
    execute(
        &db.url,
        &format!(
            "UPDATE schema_version SET version = {}",
            keyclerk::storage::postgres::CURRENT_VERSION + 1
        ),
    );
    let message = serve_refused(&db.url);
    assert!(message.contains("database.url"), "{message}");
    assert!(
        message.contains("newer than this keyclerk knows"),
        "{message}"
    );
}

#[test]
fn audit_verify_on_postgres_names_the_edited_event() {
    let both = TwoInstances::start();
    for (i, server) in [0, 1, 0].into_iter().enumerate() {
        mint(
            &both,
            server,
            json!({"product": "photo-pro", "order_id": format!("PG-AV-{i}")}),
        );
    }
    both.assert_chain_verifies();
    let url = &both._db.url;
    let seq = query_i64(
        url,
        "SELECT seq FROM events WHERE kind = 'license_minted' ORDER BY seq LIMIT 1 OFFSET 1",
    );
    execute(
        url,
        &format!(
            "UPDATE events SET data = replace(data, '\"seats\":3', '\"seats\":30') WHERE seq = {seq}"
        ),
    );
    let out = both.audit_verify();
    assert!(!out.status.success(), "an edited chain verified");
    assert!(
        stderr(&out).contains(&format!("event {seq}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn instances_starting_at_once_on_a_new_database_make_one_first_admin_token() {
    let db = Database::create();
    // One keys directory for all, as the README asks: made by a start on SQLite.
    let keys = Dirs::new();
    ServerProcess::spawn(&keys, &[]).stop();
    let keys_dir = keys.keys();
    let dirs: Vec<Dirs> = (0..4).map(|_| Dirs::new()).collect();
    let env = [
        ("KEYCLERK_DATABASE__URL", db.url.as_str()),
        ("KEYCLERK_KEYS_DIR", keys_dir.to_str().unwrap()),
    ];
    let barrier = std::sync::Barrier::new(dirs.len());
    let servers: Vec<ServerProcess> = std::thread::scope(|s| {
        let started: Vec<_> = dirs
            .iter()
            .map(|d| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    ServerProcess::spawn(d, &env)
                })
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let token_file = keyclerk::startup::ADMIN_TOKEN_FILE;
    let holders: Vec<&Dirs> = dirs
        .iter()
        .filter(|d| d.data().join(token_file).exists())
        .collect();
    assert_eq!(
        holders.len(),
        1,
        "exactly one instance wrote the token file"
    );
    for d in &dirs {
        let left: Vec<_> = std::fs::read_dir(d.data())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{token_file}.")))
            .collect();
        assert!(left.is_empty(), "a pending token file was left: {left:?}");
    }
    // The token written works on every instance, and it is the only token.
    let admin = admin_token(holders[0]);
    for server in &servers {
        let tokens = into_resp(
            agent()
                .get(&format!("{}/v1/tokens", server.url()))
                .set("Authorization", &format!("Bearer {admin}"))
                .call(),
        )
        .expect(200);
        assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1, "{tokens}");
    }
}

#[test]
fn a_key_rotated_beside_two_instances_signs_on_both_and_no_request_fails() {
    let both = TwoInstances::start();
    let bases: Vec<String> = both.servers.iter().map(ServerProcess::url).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Mints on one instance, activates and fetches on the other, across the rotation.
    let busy = crate::keys::keep_busy(bases.clone(), both.admin.clone(), Arc::clone(&stop));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = crate::helpers::cli_in(&both.dirs, &["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_kid = stdout(&out).trim().to_owned();
    // One instance is told at once; the other finds the key by its watch, or when
    // asked for a license the first signed with it.
    let reloaded = into_resp(
        agent()
            .post(&format!("{}/v1/keys/reload", bases[0]))
            .set("Authorization", &format!("Bearer {}", both.admin))
            .call(),
    )
    .expect(200);
    assert_eq!(reloaded["active"], new_kid.as_str(), "{reloaded}");
    for base in &bases {
        crate::keys::wait_for_active(base, &new_kid);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (failures, keys) = busy.join().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(keys.len() > 2, "{keys:?}");
    both.assert_chain_verifies();
}
