//! `keyclerk backup PATH` while the server takes writes, and a restore from it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{cli_in, stderr, stdout, Dirs, TestServer};
use crate::process::{admin_token, agent, ServerProcess};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_backup_taken_under_writes_restores_into_a_working_server() {
    let dirs = Dirs::new();
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
    let file = dirs.root.path().join("keyclerk-backup.db");
    let out = cli_in(&dirs, &["backup", file.to_str().unwrap()]);
    let during = acked.lock().unwrap().len();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("chain verified"), "{}", stdout(&out));
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

    // A second backup never overwrites the first.
    let again = cli_in(&dirs, &["backup", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is readable by others");
    }
    drop(server.stop());

    // Restore: the backup file becomes the database of a new data directory.
    let restored = Dirs::new();
    std::fs::create_dir_all(restored.data()).unwrap();
    std::fs::copy(&file, restored.data().join("keyclerk.db")).unwrap();
    std::fs::copy(
        dirs.data().join("admin-token"),
        restored.data().join("admin-token"),
    )
    .unwrap();
    copy_dir(&dirs.keys(), &restored.keys());
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
