//! Signing keys: publication, rotation, permissions, and refusing a changed keyring.

use std::os::unix::fs::PermissionsExt;

use keyclerk::token::paserk;
use serde_json::json;

use crate::helpers::{both_engines, stderr, stdout, try_start, Dirs, Engine, TestServer};

#[test]
fn the_published_keys_are_k4_public_with_their_k4_pid() {
    let server = TestServer::start();
    let keys = server.get("/v1/keys", None).expect(200);
    let key = &keys["keys"][0];
    assert_eq!(key["status"], "active");
    let public = paserk::parse_public(key["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(key["kid"].as_str(), paserk::pid(&public).as_deref());
}

both_engines!(after_rotation_the_new_key_signs_and_the_retired_key_still_verifies);
fn after_rotation_the_new_key_signs_and_the_retired_key_still_verifies(engine: Engine) {
    let server = TestServer::start_on(engine);
    let old = server
        .mint(json!({"product": "photo-pro", "order_id": "R-1"}))
        .expect(201);
    let dirs = server.stop();
    let out = crate::helpers::cli_in(&dirs, &["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_kid = stdout(&out).trim().to_owned();

    let server = TestServer::start_in(dirs);
    let keys = server.get("/v1/keys", None).expect(200);
    let statuses: Vec<(String, String)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.contains(&(new_kid.clone(), "active".into())));
    assert_eq!(statuses.iter().filter(|(_, s)| s == "retired").count(), 1);

    let new = server
        .mint(json!({"product": "photo-pro", "order_id": "R-2"}))
        .expect(201);
    let again = server
        .mint(json!({"product": "photo-pro", "order_id": "R-1"}))
        .expect(200);
    assert_eq!(again["key"], old["key"], "an old order keeps its old key");
    for (key, expected_kid) in [(&old["key"], None), (&new["key"], Some(&new_kid))] {
        let out = server.cli(&["verify", key.as_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if let Some(kid) = expected_kid {
            assert_eq!(printed["kid"], kid.as_str());
        } else {
            assert_ne!(printed["kid"], new_kid.as_str());
        }
    }
    let listed = server.cli(&["keys", "list"]);
    assert_eq!(stdout(&listed).lines().count(), 2);
}

fn chmod_secrets(dirs: &Dirs, mode: u32) {
    for e in std::fs::read_dir(dirs.keys())
        .unwrap()
        .filter_map(Result::ok)
    {
        if e.path().extension().is_some_and(|x| x == "secret") {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

#[test]
fn serve_refuses_a_private_key_that_others_can_read() {
    let dirs = TestServer::start().stop();
    chmod_secrets(&dirs, 0o644);
    let err = try_start(dirs.settings(), false).err().unwrap();
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
    chmod_secrets(&dirs, 0o600);
    assert!(try_start(dirs.settings(), false).is_ok());
}

both_engines!(a_keyring_that_lost_a_key_the_database_used_is_refused_unless_forced);
fn a_keyring_that_lost_a_key_the_database_used_is_refused_unless_forced(engine: Engine) {
    let dirs = TestServer::start_on(engine).stop();
    std::fs::remove_dir_all(dirs.keys()).unwrap();
    let err = try_start(dirs.settings(), false).err().unwrap();
    assert!(
        err.contains("no longer holds") && err.contains("--force"),
        "{err}"
    );
    assert!(try_start(dirs.settings(), true).is_ok());
}

#[test]
fn a_database_from_a_newer_keyclerk_is_refused() {
    let dirs = TestServer::start().stop();
    let conn = rusqlite::Connection::open(dirs.data().join("keyclerk.db")).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = try_start(dirs.settings(), false).err().unwrap();
    assert!(err.contains("newer than this keyclerk"), "{err}");
}
