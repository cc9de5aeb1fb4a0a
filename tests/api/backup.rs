//! A backup while the server takes writes, and a restore from it: on SQLite with
//! `keyclerk backup PATH`; on PostgreSQL with the `pg_dump` and `pg_restore`
//! commands `keyclerk backup` prints instead, run as printed.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{both_engines, cli_in, stderr, stdout, Dirs, Engine, TestServer};
use crate::pg::Database;
use crate::process::{admin_token, agent, ServerProcess};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Backs up the database of `dirs` into `file` as an operator would on its engine;
/// on PostgreSQL, returns the restore command keyclerk printed.
fn back_up(dirs: &Dirs, file: &Path) -> Option<String> {
    let out = cli_in(dirs, &["backup", file.to_str().unwrap()]);
    if dirs.database.is_none() {
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("chain verified"), "{}", stdout(&out));
        return None;
    }
    // keyclerk refuses, naming the commands that do it.
    assert!(
        !out.status.success(),
        "keyclerk backup copied a PostgreSQL database"
    );
    let advice = stderr(&out);
    let command = |tool: &str| {
        advice
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("no {tool} command in: {advice}"))
            .to_owned()
    };
    run_pg_tool(&command("pg_dump"));
    Some(command("pg_restore"))
}

/// Runs a command line of PostgreSQL's client tools, from the test server's binaries.
fn run_pg_tool(command: &str) {
    let bin = std::env::var("KC_TEST_POSTGRES_BIN")
        .unwrap_or_else(|_| panic!("KC_TEST_POSTGRES_BIN is not set: {command} needs it"));
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh")
        .args(["-c", command])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {}", stderr(&out));
}

/// A new home holding the backup in `file` of the server in `dirs`, with its admin
/// token file and keys; on PostgreSQL, restored into an empty database with
/// `pg_restore`, the command keyclerk printed.
fn restore(dirs: &Dirs, file: &Path, pg_restore: Option<String>) -> Dirs {
    let restored = match pg_restore {
        None => {
            let restored = Dirs::new();
            std::fs::create_dir_all(restored.data()).unwrap();
            std::fs::copy(file, restored.data().join("keyclerk.db")).unwrap();
            restored
        }
        Some(command) => {
            let mut restored = Dirs::new();
            let empty = Database::empty();
            let backed_up = dirs.database_url().unwrap();
            run_pg_tool(&command.replace(backed_up, &empty.url));
            restored.database = Some(empty);
            std::fs::create_dir_all(restored.data()).unwrap();
            restored
        }
    };
    std::fs::copy(
        dirs.data().join("admin-token"),
        restored.data().join("admin-token"),
    )
    .unwrap();
    copy_dir(&dirs.keys(), &restored.keys());
    restored
}

both_engines!(a_backup_taken_under_writes_restores_into_a_working_server);
fn a_backup_taken_under_writes_restores_into_a_working_server(engine: Engine) {
    let dirs = Dirs::on(engine);
    let server = ServerProcess::spawn(&dirs, &[]);
    let (url, admin) = (server.url(), admin_token(&dirs));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers: Vec<_> = (0..4)
        .map(|t| {
            let (agent, url, admin) = (agent(), url.clone(), admin.clone());
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let order = format!("bk-{t}-{i}");
                    agent
                        .post(&format!("{url}/v1/licenses"))
                        .set("Authorization", &format!("Bearer {admin}"))
                        .send_json(json!({"product": "photo-pro", "order_id": order}))
                        .unwrap_or_else(|e| panic!("mint {order}: {e}"));
                    acked.lock().unwrap().push(order);
                    i += 1;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = acked.lock().unwrap().len();
        if n >= 200 {
            break;
        }
        // A writer only ends when told to stop, or by failing.
        if let Some(i) = writers.iter().position(|w| w.is_finished()) {
            if let Err(panic) = writers.swap_remove(i).join() {
                std::panic::resume_unwind(panic);
            }
            panic!("a writer ended after {n} of 200 writes");
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of 200 writes acknowledged after 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let before_backup = acked.lock().unwrap().clone();
    let file = dirs.root.path().join("keyclerk-backup");
    let pg_restore = back_up(&dirs, &file);
    let during = acked.lock().unwrap().len();
    // The clients kept writing while the copy was made.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        if let Err(panic) = w.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let all = acked.lock().unwrap().clone();
    assert!(all.len() > during, "no write after the backup started");

    if engine == Engine::Sqlite {
        // A second backup never overwrites the first.
        let again = cli_in(&dirs, &["backup", file.to_str().unwrap()]);
        assert!(!again.status.success());
        assert!(
            stderr(&again).contains("already exists"),
            "{}",
            stderr(&again)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is readable by others");
    }
    drop(server.stop());

    let restored = restore(&dirs, &file, pg_restore);
    let server = TestServer::start_in(restored);
    let page = |after: Option<&str>| {
        let q = after.map_or(String::new(), |a| format!("&after={a}"));
        server
            .get(&format!("/v1/licenses?limit=100{q}"), Some(&server.admin))
            .expect(200)
    };
    let mut orders = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = page(after.as_deref());
        for l in body["items"].as_array().unwrap() {
            orders.push(l["order_id"].as_str().unwrap().to_owned());
        }
        match body["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    for o in &before_backup {
        assert!(
            orders.contains(o),
            "order {o}, acknowledged before the backup, is missing"
        );
    }
    for o in &orders {
        assert!(all.contains(o), "order {o} in the backup was never minted");
    }
    // A restored key still activates: the license and its signing key came back.
    let one = server
        .get(
            &format!("/v1/licenses?order_id={}", before_backup[0]),
            Some(&server.admin),
        )
        .expect(200);
    let id = one["items"][0]["id"].as_str().unwrap();
    let key = server
        .get(&format!("/v1/licenses/{id}"), Some(&server.admin))
        .expect(200)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "restored-machine"}),
        )
        .expect(201);
    let out = server.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn backup_without_a_database_says_so() {
    let dirs = Dirs::new();
    let out = cli_in(&dirs, &["backup", "copy.db"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no database here"),
        "{}",
        stderr(&out)
    );
    assert!(!dirs.root.path().join("copy.db").exists());
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
