//! Files private from the start (security finding F5): the database, its `-wal` and
//! `-shm` files and the admin token are 0600 whatever the umask, and `serve` warns
//! about a data or keys directory that group or others can read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::helpers::{Dirs, TestServer};
use crate::process::{admin_token, agent, ServerProcess};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file in `dir`, with its mode.
fn files(dir: &Path) -> Vec<(String, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                mode(&p),
            )
        })
        .collect()
}

#[track_caller]
fn assert_private(dir: &Path) {
    let files = files(dir);
    for name in [
        "keyclerk.db",
        "keyclerk.db-wal",
        "keyclerk.db-shm",
        "admin-token",
    ] {
        assert!(
            files.iter().any(|(n, _)| n == name),
            "no {name} in {files:?}"
        );
    }
    for (name, mode) in &files {
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}: {files:?}");
    }
}

#[test]
fn the_database_and_its_wal_and_shm_are_private_whatever_the_umask() {
    // In-process: the test's own umask (usually 022) applies, not keyclerk's.
    let server = TestServer::start();
    server
        .mint(json!({"product": "photo-pro", "order_id": "modes-1"}))
        .expect(201);
    assert_private(&server.dirs().data());
}

#[test]
fn a_database_left_readable_by_others_is_made_private_at_the_next_start() {
    let server = TestServer::start();
    server
        .mint(json!({"product": "photo-pro", "order_id": "modes-2"}))
        .expect(201);
    let dirs = server.stop();
    for (name, _) in files(&dirs.data()) {
        let path = dirs.data().join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = TestServer::start_in(dirs);
    server
        .mint(json!({"product": "photo-pro", "order_id": "modes-3"}))
        .expect(201);
    let data = server.dirs().data();
    for name in ["keyclerk.db", "keyclerk.db-wal", "keyclerk.db-shm"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
}

#[test]
fn serve_warns_about_data_and_keys_directories_open_to_others_and_still_writes_private_files() {
    let dirs = Dirs::new();
    // A first start makes the keys directory its own (below); keys already in a
    // directory that others can open are what the warning is for.
    drop(ServerProcess::spawn(&dirs, &[]).stop());
    for dir in [dirs.data(), dirs.keys()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let server = ServerProcess::spawn(&dirs, &[]);
    let admin = admin_token(&dirs);
    let r = agent()
        .post(&format!("{}/v1/licenses", server.url()))
        .set("Authorization", &format!("Bearer {admin}"))
        .send_json(json!({"product": "photo-pro", "order_id": "modes-4"}))
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_private(&dirs.data());
    let log = server.stop();
    for (what, dir) in [("data", dirs.data()), ("keys", dirs.keys())] {
        let line = format!(
            "the {what} directory {} is open to group or others (mode 755)",
            dir.display()
        );
        assert!(log.contains(&line), "no warning `{line}` in:\n{log}");
    }
    assert!(log.contains("chmod 700"), "{log}");
}

#[test]
fn a_checkouts_keys_directory_with_only_its_readme_is_made_private_at_the_first_key() {
    let dirs = Dirs::new();
    std::fs::create_dir(dirs.keys()).unwrap();
    std::fs::write(dirs.keys().join("README.md"), "keys live here\n").unwrap();
    std::fs::set_permissions(dirs.keys(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = ServerProcess::spawn(&dirs, &[]).stop();
    assert_eq!(mode(&dirs.keys()), 0o700);
    assert!(
        !log.contains("keys directory"),
        "a first start warns about nothing it made itself:\n{log}"
    );
}
