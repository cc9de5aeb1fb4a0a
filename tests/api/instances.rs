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
        let mut r = agent().post(&format!("{}{path}", self.servers[server].url()));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        into_resp(r.send_json(body.clone()))
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

#[test]
#[ignore = "needs the PostgreSQL that scripts/test.sh starts"]
fn a_hundred_machines_split_across_two_instances_get_exactly_five_seats_and_one_chain() {
    let both = Arc::new(TwoInstances::start());
    let minted = both
        .post(
            0,
            "/v1/licenses",
            Some(&both.admin),
            &json!({"product": "studio-suite", "order_id": "PG-RACE", "seats": 5}),
        )
        .expect(201);
    let key = minted["key"].as_str().unwrap().to_owned();
    let id = minted["license"]["id"].as_str().unwrap().to_owned();
    let barrier = Arc::new(std::sync::Barrier::new(100));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let (both, key, barrier) = (Arc::clone(&both), key.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let r = both.post(
                    i % 2,
                    "/v1/activations",
                    None,
                    &json!({"license_key": key, "fingerprint": format!("fp-{i}")}),
                );
                (i % 2, r.status, r.code().to_owned())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let granted = results.iter().filter(|(_, s, _)| *s == 201).count();
    let refused = results
        .iter()
        .filter(|(_, s, c)| *s == 409 && c == "seat_limit_reached")
        .count();
    assert_eq!((granted, refused), (5, 95), "{results:?}");
    for server in 0..2 {
        assert!(
            results.iter().filter(|(s, _, _)| *s == server).count() == 50,
            "each instance answered half"
        );
    }
    let history = into_resp(
        agent()
            .get(&format!(
                "{}/v1/licenses/{id}/history",
                both.servers[1].url()
            ))
            .set("Authorization", &format!("Bearer {}", both.admin))
            .call(),
    )
    .expect(200);
    let created = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "activation_created")
        .count();
    assert_eq!(created, 5);
    let verified = both.audit_verify();
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        stdout(&verified).contains("intact"),
        "{}",
        stdout(&verified)
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
#[ignore = "needs the PostgreSQL that scripts/test.sh starts"]
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
#[ignore = "needs the PostgreSQL that scripts/test.sh starts"]
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
