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

/// Every row of `table`, each one line of its columns as text (`-` for NULL), in
/// the order of `order`: the same query on both engines.
fn rows_sql(table: &str, columns: &[&str], order: &str) -> String {
    let line = columns
        .iter()
        .map(|c| format!("coalesce(CAST({c} AS TEXT), '-')"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    format!("SELECT {line} FROM {table} ORDER BY {order}")
}

/// The one-column rows of `sql` on the SQLite database of `dirs`.
fn sqlite_rows(dirs: &Dirs, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(dirs.data().join("keyclerk.db")).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The one-column rows of `sql` on the PostgreSQL database at `url`.
fn postgres_rows(url: &str, sql: &str) -> Vec<String> {
    crate::pg::simple_query(url, sql)
        .unwrap()
        .into_iter()
        .map(|row| row[0].clone().unwrap())
        .collect()
}

const ENDPOINT_COLUMNS: &[&str] = &[
    "id",
    "url",
    "events",
    "description",
    "CAST(enabled AS INTEGER)",
    "disabled_reason",
    "secret",
    "previous_secret",
    "previous_secret_until",
    "created_at",
    "updated_at",
];

const OUTBOX_COLUMNS: &[&str] = &[
    "id",
    "message_id",
    "channel",
    "target",
    "kind",
    "payload",
    "created_at",
    "status",
    "attempts",
    "next_at_ms",
    "lease_owner",
    "lease_until_ms",
    "last_status",
    "last_error",
    "last_attempt_at",
    "done_at",
];

#[test]
fn webhook_endpoints_and_undelivered_messages_are_copied_intact_and_delivered_from_postgres() {
    use crate::webhooks::{add_endpoint, fast, Receiver, FAST_ENV};
    // On SQLite, with delivery off: endpoints (one rotated, one disabled) and the
    // messages of two mints, all pending.
    let server = TestServer::start_with(Dirs::new(), |s| {
        fast(s);
        s.webhooks.deliver = false;
    });
    let (first, second) = (Receiver::start(&[]), Receiver::start(&[]));
    let (plain, plain_secret) = add_endpoint(&server, &first.url(), &["license.created"]);
    let (rotated, old_secret) = add_endpoint(&server, &second.url(), &["*"]);
    let new_secret = server
        .post(
            &format!("/v1/webhook-endpoints/{rotated}/rotate-secret"),
            Some(&server.admin),
            &json!({"overlap_hours": 24}),
        )
        .expect(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (disabled, _) = add_endpoint(&server, &first.url(), &["*"]);
    server
        .post(
            &format!("/v1/webhook-endpoints/{disabled}/disable"),
            Some(&server.admin),
            &json!({}),
        )
        .expect(200);
    first.trust(&[&plain_secret]);
    second.trust(&[&new_secret]);
    for order in ["COPY-HOOK-1", "COPY-HOOK-2"] {
        server
            .mint(json!({"product": "photo-pro", "order_id": order}))
            .expect(201);
    }
    let listed = server
        .get("/v1/webhook-endpoints", Some(&server.admin))
        .expect(200);
    let dirs = server.stop();
    let endpoints_sql = rows_sql("webhook_endpoints", ENDPOINT_COLUMNS, "id");
    let outbox_sql = rows_sql("outbox", OUTBOX_COLUMNS, "id");
    let on_sqlite = |sql: &str| sqlite_rows(&dirs, sql);
    let (endpoints, outbox) = (on_sqlite(&endpoints_sql), on_sqlite(&outbox_sql));
    assert_eq!(endpoints.len(), 3);
    assert!(endpoints.iter().any(|e| e.contains(&old_secret)));
    assert!(endpoints.iter().any(|e| e.contains(&new_secret)));
    // Each mint's license.created, to each enabled endpoint (none to the disabled one).
    assert_eq!(outbox.len(), 4, "{outbox:#?}");
    assert!(
        outbox.iter().all(|m| m.contains("|pending|0|")),
        "{outbox:#?}"
    );

    let db = Database::create();
    let copied = keyclerk(&dirs, &["db", "copy", "--to", &db.url], None);
    assert!(copied.status.success(), "{}", stderr(&copied));
    let on_postgres = |sql: &str| postgres_rows(&db.url, sql);
    assert_eq!(on_postgres(&endpoints_sql), endpoints, "secrets included");
    assert_eq!(on_postgres(&outbox_sql), outbox);

    // Served from PostgreSQL: the same endpoints, and every pending message
    // delivered, verified with the secrets of the copy.
    let pg = ServerProcess::spawn(
        &dirs,
        &[&[("KEYCLERK_DATABASE__URL", db.url.as_str())], FAST_ENV].concat(),
    );
    let admin = crate::process::admin_token(&dirs);
    assert_eq!(get(&pg.url(), "/v1/webhook-endpoints", &admin), listed);
    let ids = |rows: &[String], endpoint: &str| -> Vec<String> {
        let mut ids: Vec<String> = rows
            .iter()
            .filter(|m| m.split('|').nth(3) == Some(endpoint))
            .map(|m| m.split('|').nth(1).unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let got = first.wait_for("two messages", |r| Receiver::accepted_ids(r).len() >= 2);
    assert_eq!(Receiver::accepted_ids(&got), ids(&outbox, &plain));
    let got = second.wait_for("two messages", |r| Receiver::accepted_ids(r).len() >= 2);
    assert_eq!(Receiver::accepted_ids(&got), ids(&outbox, &rotated));
    drop(pg.stop());
}

/// Payment events (applied and unmapped) and the links later events find a
/// license by are copied row for row (both tables have no rowid: they are read in
/// order of their key), and on PostgreSQL the copied links still work: a refund of
/// the order's payment closes its license, the first delivery again is a
/// duplicate, and the unmapped event is listed.
#[test]
fn payment_events_and_their_links_are_copied_and_still_find_their_licenses() {
    use crate::payments::{configure, deliver, fixture, stripe_checkout, STRIPE_SECRET};
    let server = TestServer::start_with(Dirs::new(), |s| configure(s, &[]));
    let checkout = stripe_checkout("copied");
    let minted = deliver(&server, "stripe", &checkout).expect(200);
    assert_eq!(minted["events"][0]["outcome"], "applied", "{minted}");
    let license = minted["events"][0]["licenses"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let stray = fixture(
        "stripe/charge.refunded.json",
        &[
            ("ORDER", "never-seen"),
            ("evt_1PrefundAAA", "evt_refund_never_seen"),
        ],
    );
    let unmapped = deliver(&server, "stripe", &stray).expect(200);
    assert_eq!(unmapped["events"][0]["outcome"], "unmapped", "{unmapped}");
    let dirs = server.stop();

    let events_sql = rows_sql(
        "payment_events",
        &[
            "id",
            "provider",
            "event_id",
            "kind",
            "received_at",
            "outcome",
            "reason",
            "licenses",
            "decided_at",
            "body",
        ],
        "id",
    );
    let links_sql = rows_sql(
        "payment_links",
        &["provider", "reference", "license_id", "ended_at"],
        "provider, reference, license_id",
    );
    let on_sqlite = |sql: &str| sqlite_rows(&dirs, sql);
    let (events, links) = (on_sqlite(&events_sql), on_sqlite(&links_sql));
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        links.len(),
        3,
        "the session, its payment, its subscription: {links:#?}"
    );

    let db = Database::create();
    let copied = keyclerk(&dirs, &["db", "copy", "--to", &db.url], None);
    assert!(copied.status.success(), "{}", stderr(&copied));
    let on_postgres = |sql: &str| postgres_rows(&db.url, sql);
    assert_eq!(on_postgres(&events_sql), events);
    assert_eq!(on_postgres(&links_sql), links);

    let pg = ServerProcess::spawn(
        &dirs,
        &[
            ("KEYCLERK_DATABASE__URL", db.url.as_str()),
            ("KEYCLERK_PAYMENTS__STRIPE__WEBHOOK_SECRETS", STRIPE_SECRET),
        ],
    );
    let url = pg.url();
    let admin = crate::process::admin_token(&dirs);
    let stripe = |body: &str| -> Value {
        let header = crate::payments::stripe_header(body, STRIPE_SECRET, time::now().timestamp());
        into_resp(
            agent()
                .post(&format!("{url}/v1/payments/stripe"))
                .set("Content-Type", "application/json")
                .set("Stripe-Signature", &header)
                .send_string(body),
        )
        .expect(200)
    };
    let again = stripe(&checkout);
    assert_eq!(
        again["events"][0]["id"], minted["events"][0]["id"],
        "{again}"
    );
    let listed = get(&url, "/v1/payments/events?outcome=unmapped", &admin);
    assert_eq!(listed["events"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["events"][0]["id"], unmapped["events"][0]["id"]);
    let refund = fixture(
        "stripe/charge.refunded.json",
        &[
            ("ORDER", "copied"),
            ("evt_1PrefundAAA", "evt_refund_copied"),
        ],
    );
    let refunded = stripe(&refund);
    assert_eq!(refunded["events"][0]["outcome"], "applied", "{refunded}");
    assert_eq!(refunded["events"][0]["licenses"][0], license.as_str());
    let found = get(&url, &format!("/v1/licenses/{license}"), &admin);
    assert_eq!(found["license"]["status"], "refunded", "{found}");
    drop(pg.stop());
}
