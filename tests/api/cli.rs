//! The command line: tokens, offline verification, audit verification, configuration.

use keyclerk::token::Keyring;
use serde_json::json;

use crate::helpers::{
    both_engines, cli_in, flip_one_char, stderr, stdout, Dirs, Engine, TestServer,
};

both_engines!(tokens_create_prints_the_secret_alone_and_it_works_against_the_running_server);
fn tokens_create_prints_the_secret_alone_and_it_works_against_the_running_server(engine: Engine) {
    let server = TestServer::start_on(engine);
    let out = server.cli(&["tokens", "create", "--role", "vendor", "--name", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert_eq!(printed.lines().count(), 1);
    let secret = printed.trim();
    assert!(secret.starts_with("kc_"));
    server
        .post(
            "/v1/licenses",
            Some(secret),
            &json!({"product": "photo-pro", "order_id": "C-1"}),
        )
        .expect(201);
    let listed = stdout(&server.cli(&["tokens", "list"]));
    assert!(listed.contains("shop") && !listed.contains(secret));
    let id = listed
        .lines()
        .find(|l| l.contains("shop"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    assert!(server.cli(&["tokens", "revoke", &id]).status.success());
    server
        .post(
            "/v1/licenses",
            Some(secret),
            &json!({"product": "photo-pro", "order_id": "C-2"}),
        )
        .expect_problem(401, "token_revoked");
}

#[test]
fn verify_refuses_flipped_truncated_and_foreign_keys_with_a_reason() {
    let server = TestServer::start();
    let key = server
        .mint(json!({"product": "photo-pro", "order_id": "V-1"}))
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(server.cli(&["verify", &key]).status.success());

    let foreign_dir = tempfile::tempdir().unwrap();
    Keyring::init(foreign_dir.path(), keyclerk::domain::time::now()).unwrap();
    let foreign_ring = Keyring::load(foreign_dir.path()).unwrap();
    let kid = foreign_ring.active().unwrap().kid.clone();
    let payload = keyclerk::token::paseto::split(&key).unwrap();
    drop(payload);
    let foreign = foreign_ring
        .sign_with(&kid, br#"{"kind":"license","sub":"lic_forged"}"#)
        .unwrap();

    for (case, token, reason) in [
        ("flipped", flip_one_char(&key), "invalid"),
        ("truncated", key[..key.len() - 60].to_owned(), "invalid"),
        ("foreign", foreign, "unknown key"),
        ("garbage", "hello".to_owned(), "invalid"),
    ] {
        let out = server.cli(&["verify", &token]);
        assert!(!out.status.success(), "{case} was accepted");
        assert!(stderr(&out).contains(reason), "{case}: {}", stderr(&out));
    }
}

#[test]
fn verify_works_from_a_public_key_alone() {
    let server = TestServer::start();
    let key = server
        .mint(json!({"product": "photo-pro", "order_id": "V-2"}))
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, public) = server.public_keys().remove(0);
    let elsewhere = Dirs::new();
    let out = cli_in(&elsewhere, &["verify", &key, "--public-key", &public]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli_in(
        &elsewhere,
        &["verify", &flip_one_char(&key), "--public-key", &public],
    );
    assert!(!out.status.success());
}

both_engines!(audit_verify_passes_on_an_intact_chain_and_names_the_first_edited_or_removed_event);
fn audit_verify_passes_on_an_intact_chain_and_names_the_first_edited_or_removed_event(
    engine: Engine,
) {
    let server = TestServer::start_on(engine);
    for i in 0..4 {
        server
            .mint(json!({"product": "photo-pro", "order_id": format!("AV-{i}")}))
            .expect(201);
    }
    let ok = server.cli(&["audit", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("intact"));
    let dirs = server.stop();

    let seq = dirs.query_i64(
        "SELECT seq FROM events WHERE kind = 'license_minted' ORDER BY seq LIMIT 1 OFFSET 1",
    );
    dirs.execute(&format!(
        "UPDATE events SET data = replace(data, '\"seats\":3', '\"seats\":30') WHERE seq = {seq}"
    ));
    let edited = cli_in(&dirs, &["audit", "verify"]);
    assert!(!edited.status.success());
    assert!(
        stderr(&edited).contains(&format!("event {seq}")),
        "{}",
        stderr(&edited)
    );

    dirs.execute(&format!(
        "UPDATE events SET data = replace(data, '\"seats\":30', '\"seats\":3') WHERE seq = {seq}"
    ));
    assert!(
        cli_in(&dirs, &["audit", "verify"]).status.success(),
        "restored"
    );
    dirs.execute(&format!("DELETE FROM events WHERE seq = {seq}"));
    let removed = cli_in(&dirs, &["audit", "verify"]);
    assert!(!removed.status.success());
    assert!(
        stderr(&removed).contains(&format!("event {seq} is missing")),
        "{}",
        stderr(&removed)
    );
}

#[test]
fn a_bad_config_file_stops_start_up_naming_the_file_and_the_key() {
    let dirs = Dirs::new();
    let path = dirs.root.path().join("bad.toml");
    std::fs::write(
        &path,
        "[products.x]\nname = \"X\"\nprice = { amount = 100, currency = \"EUR\" }\nseats = \"lots\"\n",
    )
    .unwrap();
    let path_s = path.to_str().unwrap();
    for args in [
        vec!["--config", path_s, "serve"],
        vec!["serve", "--config", path_s],
    ] {
        let out = cli_in(&dirs, &args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("bad.toml")
                && err.contains("products.x.seats")
                && err.contains("invalid type"),
            "{err}"
        );
    }
    let missing = cli_in(&dirs, &["--config", "/nonexistent/keyclerk.toml", "serve"]);
    assert!(stderr(&missing).contains("/nonexistent/keyclerk.toml"));
}

#[test]
fn keys_init_then_list_shows_one_active_key() {
    let dirs = Dirs::new();
    let out = cli_in(&dirs, &["keys", "init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kid = stdout(&out).trim().to_owned();
    assert!(kid.starts_with("k4.pid."));
    assert!(
        !cli_in(&dirs, &["keys", "init"]).status.success(),
        "init twice is refused"
    );
    let listed = stdout(&cli_in(&dirs, &["keys", "list"]));
    assert!(listed.starts_with(&kid) && listed.contains("active"));
}
