//! `keyclerk db copy --to postgres://…`: a SQLite database built through the API,
//! copied into PostgreSQL, and the server run on the copy.

use std::process::{Command, Output};

use keyclerk::domain::time;
use serde_json::{json, Value};

use crate::helpers::{into_resp, stderr, stdout, Dirs, Resp, TestServer};
use crate::pg::Database;
use crate::process::{agent, ServerProcess};

fn keyclerk(dirs: &Dirs, args: &[&str], database_url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyclerk"));
    cmd.args(args)
        .current_dir(dirs.root.path())
        .env("KEYCLERK_DATA_DIR", dirs.data())
        .env("KEYCLERK_KEYS_DIR", dirs.keys());
    if let Some(url) = database_url {
        cmd.env("KEYCLERK_DATABASE__URL", url);
    }
    cmd.output().unwrap()
}

fn get(base: &str, path: &str, token: &str) -> Value {
    into_resp(
        agent()
            .get(&format!("{base}{path}"))
            .set("Authorization", &format!("Bearer {token}"))
            .call(),
    )
    .expect(200)
}

fn post(base: &str, path: &str, token: Option<&str>, idem: Option<&str>, body: Value) -> Resp {
    let mut r = agent().post(&format!("{base}{path}"));
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(k) = idem {
        r = r.set("Idempotency-Key", k);
    }
    into_resp(r.send_json(body))
}

#[test]
fn a_sqlite_database_copied_into_postgres_serves_the_same_licenses_and_its_chain_verifies() {
    // A SQLite database with a bit of everything, made through the API.
    let server = TestServer::start();
    let base = server.url("");
    let base = base.trim_end_matches('/').to_owned();
    let support = server.token("support");
    let year_ago = time::format(time::now() - chrono::Duration::days(365));
    let (mut ids, mut keys) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let m = server
            .mint(
                json!({"product": "photo-pro", "order_id": format!("COPY-{i}"),
                         "customer_email": format!("c{i}@example.com"),
                         "purchased_at": year_ago}),
            )
            .expect(201);
        ids.push(m["license"]["id"].as_str().unwrap().to_owned());
        keys.push(m["key"].as_str().unwrap().to_owned());
    }
    let seats = server
        .mint(json!({"product": "studio-suite", "order_id": "COPY-SEATS", "seats": 2}))
        .expect(201);
    let seats_key = seats["key"].as_str().unwrap().to_owned();
    let seats_id = seats["license"]["id"].as_str().unwrap().to_owned();
    for fp in ["fp-a", "fp-b", "fp-c"] {
        post(
            &base,
            "/v1/activations",
            None,
            None,
            json!({"license_key": seats_key, "fingerprint": fp}),
        );
    }
    let extended = post(
        &base,
        &format!("/v1/licenses/{}/grace-extension", ids[0]),
        Some(&support),
        Some("copy-idem"),
        json!({"remedy": "extend", "reason": "travelling"}),
    )
    .expect(201);
    post(
        &base,
        &format!("/v1/licenses/{}/grace-extension", ids[1]),
        Some(&support),
        None,
        json!({"remedy": "credit", "reason": "prefers credit"}),
    )
    .expect(201);
    post(
        &base,
        "/v1/claims",
        None,
        None,
        json!({"license_key": keys[2], "message": "late"}),
    );
    let events_before = server
        .get(
            &format!("/v1/licenses/{seats_id}/history"),
            Some(&server.admin),
        )
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .len();
    let admin = server.admin.clone();
    let dirs = server.stop();
    let verified = keyclerk(&dirs, &["audit", "verify"], None);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let sqlite_chain = stdout(&verified);

    let db = Database::create();
    let copied = keyclerk(&dirs, &["db", "copy", "--to", &db.url], None);
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert!(
        stdout(&copied).contains("chain verified"),
        "{}",
        stdout(&copied)
    );
    assert!(
        stderr(&copied).contains("licenses: 4 of 4"),
        "{}",
        stderr(&copied)
    );
    let on_postgres = keyclerk(&dirs, &["audit", "verify"], Some(&db.url));
    assert!(on_postgres.status.success(), "{}", stderr(&on_postgres));
    assert_eq!(
        stdout(&on_postgres),
        sqlite_chain,
        "the same chain, event for event"
    );

    // A second copy into the same database is refused and changes nothing.
    let again = keyclerk(&dirs, &["db", "copy", "--to", &db.url], None);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    // The server on the copy: same licenses, keys, seats, decisions, credit, tokens.
    let pg = ServerProcess::spawn(&dirs, &[("KEYCLERK_DATABASE__URL", db.url.as_str())]);
    let url = pg.url();
    for (i, id) in ids.iter().enumerate() {
        let found = get(&url, &format!("/v1/licenses?order_id=COPY-{i}"), &admin);
        assert_eq!(found["items"][0]["id"], id.as_str());
    }
    let machines = get(
        &url,
        &format!("/v1/licenses/{seats_id}/activations"),
        &admin,
    );
    assert_eq!(machines["seats_in_use"], 2);
    post(
        &url,
        "/v1/activations",
        None,
        None,
        json!({"license_key": seats_key, "fingerprint": "fp-a"}),
    )
    .expect(200);
    post(
        &url,
        "/v1/activations",
        None,
        None,
        json!({"license_key": seats_key, "fingerprint": "fp-d"}),
    )
    .expect_problem(409, "seat_limit_reached");
    let replayed = post(
        &url,
        &format!("/v1/licenses/{}/grace-extension", ids[0]),
        Some(&support),
        Some("copy-idem"),
        json!({"remedy": "extend", "reason": "travelling"}),
    )
    .expect(200);
    assert_eq!(replayed["decision"]["id"], extended["decision"]["id"]);
    let credit = get(&url, "/v1/credits?email=c1@example.com", &admin);
    assert_eq!(credit["balances"]["EUR"], 4900, "{credit}");
    assert_eq!(credit["entries"].as_array().unwrap().len(), 1, "{credit}");
    let history = get(&url, &format!("/v1/licenses/{seats_id}/history"), &admin);
    assert!(history["events"].as_array().unwrap().len() > events_before);
    drop(pg.stop());
    let after = keyclerk(&dirs, &["audit", "verify"], Some(&db.url));
    assert!(after.status.success(), "{}", stderr(&after));
}
