//! Signing keys: publication, rotation, permissions, and refusing a changed keyring.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyclerk::token::{paserk, Keyring};
use serde_json::json;

use crate::helpers::{
    both_engines, into_resp, stderr, stdout, try_start, Dirs, Engine, TestServer,
};
use crate::process::{admin_token, agent, ServerProcess};

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

/// The `kid` in the footer of a `v4.public` key.
fn kid_of_key(key: &str) -> String {
    use base64::Engine as _;
    let footer = key.rsplit('.').next().unwrap();
    let footer = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(footer)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&footer).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The active key id a server publishes.
fn active_kid(base: &str) -> String {
    let keys = into_resp(agent().get(&format!("{base}/v1/keys")).call()).expect(200);
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls until `base` signs with `kid`; fails after 30 s (a reload is seconds).
pub fn wait_for_active(base: &str, kid: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while active_kid(base) != kid {
        assert!(Instant::now() < deadline, "{base} never signed with {kid}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mints, activates and fetches licenses on `bases` in a loop until `stop`; every
/// answer that is not the expected 2xx is kept as a failure; the keys minted.
pub fn keep_busy(
    bases: Vec<String>,
    admin: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<String>, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut failures, mut keys) = (Vec::new(), Vec::new());
        let auth = format!("Bearer {admin}");
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let base = &bases[i % bases.len()];
            let other = &bases[(i + 1) % bases.len()];
            let order = format!("busy-{}-{i}", std::process::id());
            let minted = into_resp(
                agent()
                    .post(&format!("{base}/v1/licenses"))
                    .set("Authorization", &auth)
                    .send_json(json!({"product": "photo-pro", "order_id": order})),
            );
            if minted.status != 201 {
                failures.push(format!("mint: {} {}", minted.status, minted.body));
                i += 1;
                continue;
            }
            let key = minted.body["key"].as_str().unwrap().to_owned();
            let id = minted.body["license"]["id"].as_str().unwrap().to_owned();
            let activated = into_resp(
                agent()
                    .post(&format!("{other}/v1/activations"))
                    .send_json(json!({"license_key": key, "fingerprint": format!("fp-{i}")})),
            );
            if activated.status != 201 {
                failures.push(format!("activate: {} {}", activated.status, activated.body));
            }
            // Made again from what was stored, by the other instance.
            let fetched = into_resp(
                agent()
                    .get(&format!("{other}/v1/licenses/{id}"))
                    .set("Authorization", &auth)
                    .call(),
            );
            if fetched.status != 200 || fetched.body["key"] != key.as_str() {
                failures.push(format!("fetch: {} {}", fetched.status, fetched.body));
            }
            keys.push(key);
            i += 1;
        }
        (failures, keys)
    })
}

#[test]
fn a_key_rotated_beside_a_running_server_signs_within_seconds_and_no_request_fails() {
    let dirs = Dirs::new();
    let server = ServerProcess::spawn(&dirs, &[]);
    let (base, admin) = (server.url(), admin_token(&dirs));
    let old_kid = active_kid(&base);
    let stop = Arc::new(AtomicBool::new(false));
    let busy = keep_busy(vec![base.clone()], admin, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(300));
    let out = crate::helpers::cli_in(&dirs, &["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_kid = stdout(&out).trim().to_owned();
    wait_for_active(&base, &new_kid);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (failures, keys) = busy.join().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    let kids: Vec<String> = keys.iter().map(|k| kid_of_key(k)).collect();
    let last_old = kids
        .iter()
        .rposition(|k| *k == old_kid)
        .expect("keys by the old key");
    let first_new = kids
        .iter()
        .position(|k| *k == new_kid)
        .expect("keys by the new key");
    assert!(
        last_old < first_new,
        "once the new key signs, the old one no longer does"
    );
    assert!(kids.iter().all(|k| *k == old_kid || *k == new_kid));
    for key in [&keys[last_old], &keys[first_new]] {
        let out = crate::helpers::cli_in(&dirs, &["verify", key]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let log = server.stop();
    assert!(
        log.contains(&format!("loaded signing key(s) {new_kid}")),
        "{log}"
    );
}

#[test]
fn sighup_reloads_the_keys_and_a_directory_that_lost_a_key_is_refused() {
    let dirs = Dirs::new();
    let mut server = ServerProcess::spawn(&dirs, &[]);
    let (base, admin) = (server.url(), admin_token(&dirs));
    let old_kid = active_kid(&base);
    let pid = server.child.id().to_string();
    let hup = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(hup.success());
    let new_kid = Keyring::generate_into(&dirs.keys(), keyclerk::domain::time::now()).unwrap();
    wait_for_active(&base, &new_kid);
    // The old key's files are removed: the reload is refused, both keys stay.
    for entry in std::fs::read_dir(dirs.keys()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Key files are named key-<created>-<the first 12 characters of the id>.
        let old_body = &old_kid.trim_start_matches(paserk::PID_PREFIX)[..12];
        if name.contains(old_body) {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let refused = into_resp(
        agent()
            .post(&format!("{base}/v1/keys/reload"))
            .set("Authorization", &format!("Bearer {admin}"))
            .call(),
    );
    refused.expect_problem(409, "keys_not_reloaded");
    assert!(
        refused.body["detail"].as_str().unwrap().contains(&old_kid),
        "{}",
        refused.body
    );
    let keys = into_resp(agent().get(&format!("{base}/v1/keys")).call()).expect(200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
    assert!(server.is_running(), "SIGHUP does not end the server");
    let log = server.stop();
    assert!(log.contains("SIGHUP: reloading the signing keys"), "{log}");
}
