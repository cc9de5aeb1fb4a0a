//! Several keyclerk processes on one PostgreSQL database, and the start-up refusals
//! of a database URL that cannot be used.

use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{into_resp, stderr, stdout, Dirs, Resp};
use crate::pg::{self, Database};
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
        let db = Database::create();
        let dirs = Dirs::new();
        let env = [("KEYCLERK_DATABASE__URL", db.url.as_str())];
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
fn backup_on_postgres_names_the_pg_dump_command() {
    let db = Database::create();
    let dirs = Dirs::new();
    let url = db.url.replacen("postgres@", "postgres:s3cret@", 1);
    let out = Command::new(env!("CARGO_BIN_EXE_keyclerk"))
        .args(["backup", "kc.dump"])
        .current_dir(dirs.root.path())
        .env("KEYCLERK_DATA_DIR", dirs.data())
        .env("KEYCLERK_DATABASE__URL", &url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains(&format!(
            "pg_dump --format=custom --file='kc.dump' '{}'",
            db.url
        )),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}

/// Runs one statement on a test database.
fn execute(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = driver.await;
    });
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

/// The one number a query on a test database answers.
fn query_i64(url: &str, sql: &str) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        drop(client);
        let _ = driver.await;
        n
    })
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
