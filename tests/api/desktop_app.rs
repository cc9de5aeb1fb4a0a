//! `examples/desktop_app.rs` against a real server: activate once, start offline,
//! refresh, and refuse a certificate copied to another machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::{stderr, stdout, TestServer};

/// The example binary `cargo test` built beside this test binary.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("desktop_app");
    assert!(
        path.exists(),
        "{} is missing: run the whole suite (`cargo test --workspace`), which builds the examples",
        path.display()
    );
    path
}

fn run(state: &Path, args: &[&str]) -> Output {
    Command::new(example())
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_example_app_activates_once_starts_offline_and_refuses_a_copied_certificate() {
    let server = TestServer::start();
    let key = server
        .mint(json!({"product": "photo-pro", "order_id": "APP-1"}))
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("app-state.json");
    let url = server.url("");

    let first = run(
        &state,
        &["--server", &url, "--key", &key, "--machine-id", "m-1"],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).starts_with("activated: license lic_"),
        "{}",
        stdout(&first)
    );

    // The network is cut: the server is gone.
    let dirs = server.stop();
    let offline = run(&state, &["--machine-id", "m-1"]);
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert!(
        stdout(&offline).starts_with("started offline"),
        "{}",
        stdout(&offline)
    );

    // Near the lease's end with no server, it still starts on the certificate.
    let no_server = run(
        &state,
        &["--machine-id", "m-1", "--refresh-within-days", "60"],
    );
    assert!(no_server.status.success(), "{}", stderr(&no_server));
    assert!(
        stdout(&no_server).contains("refresh failed"),
        "{}",
        stdout(&no_server)
    );

    let copied = work.path().join("copied.json");
    std::fs::copy(&state, &copied).unwrap();
    let elsewhere = run(&copied, &["--machine-id", "m-2"]);
    assert_eq!(elsewhere.status.code(), Some(3), "{}", stdout(&elsewhere));
    assert!(stderr(&elsewhere).contains("another machine"));

    // Back online (a new port), a lease near its end is refreshed.
    let server = TestServer::start_in(dirs);
    let url = server.url("");
    let refreshed = run(
        &state,
        &[
            "--server",
            &url,
            "--machine-id",
            "m-1",
            "--refresh-within-days",
            "60",
        ],
    );
    assert!(refreshed.status.success(), "{}", stderr(&refreshed));
    assert!(
        stdout(&refreshed).starts_with("refreshed the certificate"),
        "{}",
        stdout(&refreshed)
    );
}

#[test]
fn the_example_app_explains_a_refusal() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let out = run(
        &work.path().join("s.json"),
        &[
            "--server",
            &server.url(""),
            "--key",
            "not-a-key",
            "--machine-id",
            "m",
        ],
    );
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).contains("license_not_found"),
        "{}",
        stderr(&out)
    );
    assert!(
        !work.path().join("s.json").exists(),
        "nothing stored on refusal"
    );
}
