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

/// The modules of the example's SVG QR code drawn as a grey image and read back by
/// rqrr, a decoder someone else wrote.
fn scan(svg: &str) -> String {
    let side: usize = regex::Regex::new(r#"viewBox="0 0 (\d+) \d+""#)
        .unwrap()
        .captures(svg)
        .expect("a viewBox")[1]
        .parse()
        .unwrap();
    let mut dark = vec![false; side * side];
    for m in regex::Regex::new(r"M(\d+) (\d+)h1v1h-1z")
        .unwrap()
        .captures_iter(svg)
    {
        let (x, y): (usize, usize) = (m[1].parse().unwrap(), m[2].parse().unwrap());
        dark[y * side + x] = true;
    }
    let scale = 4;
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(side * scale, side * scale, |x, y| {
            if dark[(y / scale) * side + x / scale] {
                0
            } else {
                255
            }
        });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the SVG");
    grids[0].decode().unwrap().1
}

/// `--certificate-file` with the key and the pinned public key, on `machine`.
fn import_file(state: &Path, file: &Path, key: &str, public_key: &str, machine: &str) -> Output {
    let file = file.to_str().unwrap();
    let args = [
        "--certificate-file",
        file,
        "--key",
        key,
        "--public-key",
        public_key,
    ];
    run(state, &[&args[..], &["--machine-id", machine]].concat())
}

#[test]
fn the_example_app_activates_offline_from_a_request_code_and_the_certificate_file() {
    let server = TestServer::start();
    let key = server
        .mint(json!({"product": "photo-pro", "order_id": "APP-OFF"}))
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("app-state.json");
    let svg = work.path().join("request.svg");
    let url = server.url("");

    // The machine without internet shows its code (the server named only for the
    // QR code's link: nothing is sent).
    let shown = run(
        &state,
        &[
            "--offline",
            "--key",
            &key,
            "--server",
            &url,
            "--machine-id",
            "m-off",
            "--name",
            "cabin",
            "--qr-svg",
            svg.to_str().unwrap(),
        ],
    );
    assert!(shown.status.success(), "{}", stderr(&shown));
    let code = stdout(&shown)
        .lines()
        .find(|l| l.starts_with("KCA"))
        .unwrap_or_else(|| panic!("no code in {}", stdout(&shown)))
        .to_owned();
    assert!(stdout(&shown).contains(&format!("{url}/my/offline")));
    assert!(stdout(&shown).contains('▀'), "a QR code in the terminal");
    assert!(!state.exists(), "nothing stored before the certificate");
    // Its QR code opens the customer page with the code in the fragment.
    let scanned = scan(&std::fs::read_to_string(&svg).unwrap());
    assert_eq!(scanned, format!("{url}/my/offline#{code}"));

    // The customer pastes it on the page from another device.
    let mut c = crate::my_page::Customer::new(&server);
    let form = c.get("/my/offline");
    let answer = c.post("/my/offline", &form, &[("code", &code)]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let file = work.path().join("certificate.json");
    std::fs::write(&file, &answer.body).unwrap();

    let (_, public_key) = server.public_keys().remove(0);
    // The server is not reachable from the machine: nothing but the pinned key.
    let dirs = server.stop();
    let unpinned = run(
        &state,
        &[
            "--certificate-file",
            file.to_str().unwrap(),
            "--key",
            &key,
            "--machine-id",
            "m-off",
        ],
    );
    assert_eq!(unpinned.status.code(), Some(2), "{}", stdout(&unpinned));
    assert!(stderr(&unpinned).contains("--public-key"));
    let imported = import_file(&state, &file, &key, &public_key, "m-off");
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert!(
        stdout(&imported).starts_with("activated offline: license lic_"),
        "{}",
        stdout(&imported)
    );
    let later = run(&state, &["--machine-id", "m-off"]);
    assert!(later.status.success(), "{}", stderr(&later));
    assert!(
        stdout(&later).starts_with("started offline from the certificate"),
        "{}",
        stdout(&later)
    );

    // Another machine cannot take the file; an altered file does not verify.
    let other = import_file(
        &work.path().join("other.json"),
        &file,
        &key,
        &public_key,
        "m-other",
    );
    assert_eq!(other.status.code(), Some(3), "{}", stderr(&other));
    let body = std::fs::read_to_string(&file).unwrap();
    let cert: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = cert["certificate"].as_str().unwrap();
    let flipped = format!(
        "{}{}",
        &token[..token.len() - 1],
        if token.ends_with('A') { 'B' } else { 'A' }
    );
    let altered = work.path().join("altered.json");
    std::fs::write(&altered, body.replace(token, &flipped)).unwrap();
    let refused = import_file(
        &work.path().join("altered-state.json"),
        &altered,
        &key,
        &public_key,
        "m-off",
    );
    assert_eq!(refused.status.code(), Some(6), "{}", stderr(&refused));
    drop(dirs);
}
