//! Downloads through HTTP: signed links, the file whole and by ranges, refusals,
//! the audit event, downloads as pick-up evidence, and start-up checks of the
//! products' files.

use std::io::Read;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keyclerk::config::Settings;
use keyclerk::domain::download::{LinkClaims, LinkSecret, ProductFile};
use keyclerk::domain::time;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{both_engines, cli_in, stderr, try_start, Dirs, Engine, TestServer};

/// The bytes of the test's app file: 300,000 of them, not all alike.
fn app_bytes() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Puts the files in `<root>/files` and lists two of them on photo-pro.
fn with_files(dirs: &Dirs) -> impl FnOnce(&mut Settings) {
    let files = dirs.root.path().join("files");
    std::fs::create_dir_all(files.join("app")).unwrap();
    std::fs::write(files.join("app/App-1.2.dmg"), app_bytes()).unwrap();
    std::fs::write(files.join("Manual.pdf"), b"%PDF-1.4 the manual").unwrap();
    move |s: &mut Settings| {
        s.downloads.dir = files;
        s.products.get_mut("photo-pro").unwrap().files = vec![
            ProductFile {
                name: "App.dmg".into(),
                path: "app/App-1.2.dmg".into(),
            },
            ProductFile {
                name: "Manual.pdf".into(),
                path: "Manual.pdf".into(),
            },
        ];
    }
}

fn start(engine: Engine) -> TestServer {
    let dirs = Dirs::on(engine);
    let change = with_files(&dirs);
    TestServer::start_with(dirs, change)
}

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

/// Mints photo-pro for `order` bought `days` ago: the license id and key.
fn mint(server: &TestServer, order: &str, days: i64) -> (String, String) {
    let m = server
        .mint(json!({"product": "photo-pro", "order_id": order,
                     "customer_email": "ann@example.com", "purchased_at": days_ago(days)}))
        .expect(201);
    (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    )
}

/// The links of a license, by file name.
fn links(server: &TestServer, token: &str, id: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/licenses/{id}/downloads"), Some(token))
        .expect(200)["downloads"]
        .as_array()
        .unwrap()
        .clone()
}

fn link_of(server: &TestServer, token: &str, id: &str, name: &str) -> String {
    links(server, token, id)
        .into_iter()
        .find(|l| l["name"] == name)
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An answer with its body as bytes.
struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    #[track_caller]
    fn problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.json()["code"], code);
    }
}

fn fetch(server: &TestServer, method: &str, url: &str, headers: &[(&str, &str)]) -> Fetched {
    fetch_at(&server.url(url), method, headers)
}

fn fetch_at(full_url: &str, method: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut r = ureq::request(method, full_url).timeout(Duration::from_secs(60));
    for (n, v) in headers {
        r = r.set(n, v);
    }
    let resp = match r.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_owned();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    Fetched {
        status,
        headers,
        body,
    }
}

fn history_kinds(server: &TestServer, id: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/licenses/{id}/history"), Some(&server.admin))
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// The evidence a decision would record now (a decline changes nothing).
fn evidence(server: &TestServer, id: &str) -> Value {
    server
        .post(
            &format!("/v1/licenses/{id}/grace-extension"),
            Some(&server.admin),
            &json!({"remedy": "decline", "reason": "reading the evidence"}),
        )
        .expect(201)["decision"]["evidence"]
        .clone()
}

both_engines!(a_license_downloads_its_file_whole_and_by_ranges_and_each_download_is_audited);
fn a_license_downloads_its_file_whole_and_by_ranges_and_each_download_is_audited(engine: Engine) {
    let server = start(engine);
    let support = server.token("support");
    let (id, _) = mint(&server, "DL-1", 1);
    let listed = links(&server, &support, &id);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "App.dmg");
    assert_eq!(listed[0]["size"], 300_000);
    assert!(listed[0]["url"]
        .as_str()
        .unwrap()
        .starts_with("/v1/downloads?link="));
    let expires = time::parse(listed[0]["expires_at"].as_str().unwrap()).unwrap();
    let minutes = (expires - time::now()).num_minutes();
    assert!(
        (14..=15).contains(&minutes),
        "15 minutes by default: {minutes}"
    );
    let url = link_of(&server, &support, &id, "App.dmg");
    let bytes = app_bytes();

    let whole = fetch(&server, "GET", &url, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(
        Sha256::digest(&whole.body).as_slice(),
        Sha256::digest(&bytes).as_slice(),
        "the file served is the file on disk"
    );
    assert_eq!(whole.header("content-length"), Some("300000"));
    assert_eq!(
        whole.header("content-type"),
        Some("application/x-apple-diskimage")
    );
    assert_eq!(
        whole.header("content-disposition"),
        Some("attachment; filename=\"App.dmg\"")
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert!(whole.header("last-modified").is_some());
    assert_eq!(whole.header("cache-control"), Some("private, no-store"));
    let etag = whole.header("etag").unwrap().to_owned();

    for (range, start, end) in [
        ("bytes=0-9", 0usize, 9usize),
        ("bytes=1000-", 1000, 299_999),
        ("bytes=-500", 299_500, 299_999),
        ("bytes=299990-400000", 299_990, 299_999),
    ] {
        let part = fetch(&server, "GET", &url, &[("Range", range)]);
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.body, bytes[start..=end], "{range}");
        assert_eq!(
            part.header("content-range").map(str::to_owned),
            Some(format!("bytes {start}-{end}/300000")),
            "{range}"
        );
        assert_eq!(
            part.header("content-length").map(str::to_owned),
            Some((end - start + 1).to_string())
        );
    }
    let past = fetch(&server, "GET", &url, &[("Range", "bytes=300000-")]);
    past.problem(416, "range_not_satisfiable");
    assert_eq!(past.header("content-range"), Some("bytes */300000"));
    let stale = fetch(
        &server,
        "GET",
        &url,
        &[("Range", "bytes=0-9"), ("If-Range", "\"another\"")],
    );
    assert_eq!(
        stale.status, 200,
        "If-Range of another version: the whole file"
    );
    assert_eq!(stale.body.len(), 300_000);
    let fresh = fetch(
        &server,
        "GET",
        &url,
        &[("Range", "bytes=5-9"), ("If-Range", &etag)],
    );
    assert_eq!(fresh.body, bytes[5..=9]);
    let head = fetch(&server, "HEAD", &url, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.body.is_empty());

    // Counted: the whole file twice (the first, and the one the stale If-Range
    // got) and the part from byte 0; not the parts further in, the 416 or the HEAD.
    let downloads: Vec<Value> = history_kinds(&server, &id)
        .into_iter()
        .filter(|e| e["kind"] == "file_downloaded")
        .collect();
    assert_eq!(downloads.len(), 1, "chained once that day: {downloads:?}");
    assert_eq!(downloads[0]["data"]["file"], "App.dmg");
    assert_eq!(downloads[0]["repeats"]["count"], 3);
    let e = evidence(&server, &id);
    assert_eq!(e["downloads"], 3);
    assert!(e["first_downloaded_at"].is_string(), "{e}");
    assert_eq!(e["ever_activated"], false);
    let out = server.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn altered_expired_and_foreign_links_are_refused() {
    let server = start(Engine::Sqlite);
    let (id, _) = mint(&server, "DL-2", 1);
    let (other, _) = mint(&server, "DL-3", 1);
    let url = link_of(&server, &server.admin, &id, "App.dmg");
    let token = url.strip_prefix("/v1/downloads?link=").unwrap().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    let at = |t: String| format!("/v1/downloads?link={t}");
    let mut flipped = parts[3].to_owned();
    let last = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);
    let manual = URL_SAFE_NO_PAD.encode("Manual.pdf");
    for (case, bad) in [
        (
            "an altered mac",
            format!("{}.{}.{}.{flipped}", parts[0], parts[1], parts[2]),
        ),
        (
            "another license's id",
            format!("{other}.{}.{}.{}", parts[1], parts[2], parts[3]),
        ),
        (
            "another file's name",
            format!("{}.{manual}.{}.{}", parts[0], parts[2], parts[3]),
        ),
        (
            "a later expiry",
            format!(
                "{}.{}.{}.{}",
                parts[0],
                parts[1],
                parts[2].to_owned() + "0",
                parts[3]
            ),
        ),
        ("not a link", "hello".to_owned()),
    ] {
        let refused = fetch(&server, "GET", &at(bad), &[]);
        assert_eq!(refused.status, 403, "{case}");
        refused.problem(403, "download_link_invalid");
    }
    let missing = fetch(&server, "GET", "/v1/downloads", &[]);
    missing.problem(400, "invalid_parameter");

    // A link the server's own secret signed, past its expiry.
    let secret: Vec<u8> = rusqlite::Connection::open(server.dirs().data().join("keyclerk.db"))
        .unwrap()
        .query_row(
            "SELECT secret FROM server_secrets WHERE name = 'download_links'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let secret = LinkSecret::new(secret.try_into().unwrap());
    let expired = secret.sign(&LinkClaims {
        license_id: id.clone(),
        file: "App.dmg".into(),
        expires_at: time::now() - chrono::Duration::seconds(1),
    });
    fetch(&server, "GET", &at(expired), &[]).problem(410, "download_link_expired");
    let gone = secret.sign(&LinkClaims {
        license_id: id.clone(),
        file: "Old.zip".into(),
        expires_at: time::now() + chrono::Duration::minutes(5),
    });
    fetch(&server, "GET", &at(gone), &[]).problem(404, "file_not_found");
    // The other license's own link works, for its own license only.
    let theirs = link_of(&server, &server.admin, &other, "Manual.pdf");
    let served = fetch(&server, "GET", &theirs, &[]);
    assert_eq!(served.body, b"%PDF-1.4 the manual");
    assert!(!history_kinds(&server, &id)
        .iter()
        .any(|e| e["kind"] == "file_downloaded"));
}

#[test]
fn a_revoked_refunded_or_superseded_license_gets_no_links_and_its_links_stop() {
    let server = start(Engine::Sqlite);
    let vendor = server.token("vendor");
    for (order, close, code) in [
        ("DL-R", "revoke", "license_revoked"),
        ("DL-F", "refund", "license_revoked"),
    ] {
        let (id, _) = mint(&server, order, 1);
        let url = link_of(&server, &vendor, &id, "App.dmg");
        server
            .post(
                &format!("/v1/licenses/{id}/{close}"),
                Some(&vendor),
                &json!({}),
            )
            .expect(200);
        fetch(&server, "GET", &url, &[]).problem(403, code);
        assert!(links(&server, &vendor, &id).is_empty(), "{close}");
    }
    let (id, _) = mint(&server, "DL-S", 400);
    let url = link_of(&server, &vendor, &id, "App.dmg");
    server
        .post(
            &format!("/v1/licenses/{id}/grace-extension"),
            Some(&server.admin),
            &json!({"remedy": "substitute", "reason": "another product", "product": "photo-basic"}),
        )
        .expect(201);
    fetch(&server, "GET", &url, &[]).problem(403, "license_superseded");
    assert!(links(&server, &vendor, &id).is_empty());
    server
        .get(
            "/v1/licenses/lic_00000000000000000000000000/downloads",
            Some(&vendor),
        )
        .expect_problem(404, "license_not_found");
}

both_engines!(a_download_makes_a_late_claim_on_a_never_activated_purchase_go_to_support);
fn a_download_makes_a_late_claim_on_a_never_activated_purchase_go_to_support(engine: Engine) {
    let server = start(engine);
    let (fetched, fetched_key) = mint(&server, "DL-LATE-1", 400);
    let (_, untouched_key) = mint(&server, "DL-LATE-2", 400);
    let url = link_of(&server, &server.admin, &fetched, "Manual.pdf");
    assert_eq!(fetch(&server, "GET", &url, &[]).status, 200);
    let e = evidence(&server, &fetched);
    assert_eq!(e["downloads"], 1);
    assert_eq!(e["ever_activated"], false);

    let filed = server
        .post("/v1/claims", None, &json!({"license_key": fetched_key}))
        .expect(202);
    assert_eq!(filed["status"], "pending");
    assert_eq!(filed["claim"]["note"], "the product was downloaded before");
    let granted = server
        .post("/v1/claims", None, &json!({"license_key": untouched_key}))
        .expect(200);
    assert_eq!(
        granted["status"], "granted",
        "never fetched and never activated: not picked up"
    );
}

/// The links' secret lives in the database: a link one instance made downloads from
/// another instance on the same PostgreSQL database.
#[test]
fn a_link_made_by_one_instance_downloads_from_another_on_one_postgresql_database() {
    let dirs = Dirs::on(Engine::Postgres);
    let change = with_files(&dirs);
    let mut settings = dirs.settings();
    change(&mut settings);
    let (first, _, stop_first) = try_start(settings.clone(), false).unwrap();
    let (second, _, stop_second) = try_start(settings, false).unwrap();
    let admin = std::fs::read_to_string(dirs.data().join(keyclerk::startup::ADMIN_TOKEN_FILE))
        .unwrap()
        .trim()
        .to_owned();
    let base = |port: u16| format!("http://127.0.0.1:{port}");
    let minted: Value = ureq::post(&format!("{}/v1/licenses", base(first)))
        .set("Authorization", &format!("Bearer {admin}"))
        .send_json(json!({"product": "photo-pro", "order_id": "DL-PG-1"}))
        .unwrap()
        .into_json()
        .unwrap();
    let id = minted["license"]["id"].as_str().unwrap();
    let listed: Value = ureq::get(&format!("{}/v1/licenses/{id}/downloads", base(first)))
        .set("Authorization", &format!("Bearer {admin}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let url = listed["downloads"][0]["url"].as_str().unwrap();
    let got = fetch_at(&format!("{}{url}", base(second)), "GET", &[]);
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(
        Sha256::digest(&got.body).as_slice(),
        Sha256::digest(app_bytes()).as_slice()
    );
    actix_web::rt::System::new().block_on(async {
        stop_first.stop(true).await;
        stop_second.stop(true).await;
    });
}

#[test]
fn start_up_stops_on_a_missing_file_or_one_leading_out_of_the_directory() {
    let dirs = Dirs::new();
    let change = with_files(&dirs);
    let mut settings = dirs.settings();
    change(&mut settings);
    settings.products.get_mut("photo-pro").unwrap().files[0].path = "app/App-9.9.dmg".into();
    let e = try_start(settings, false).err().unwrap();
    assert!(
        e.contains("products.photo-pro.files: `App.dmg`: app/App-9.9.dmg"),
        "{e}"
    );

    let outside = dirs.root.path().join("secret.txt");
    std::fs::write(&outside, "not for download").unwrap();
    std::os::unix::fs::symlink(&outside, dirs.root.path().join("files/escape.txt")).unwrap();
    let mut settings = dirs.settings();
    change_files(&mut settings, &dirs, "escape.txt");
    let e = try_start(settings, false).err().unwrap();
    assert!(
        e.contains("products.photo-pro.files: `App.dmg`: escape.txt: leads out of"),
        "{e}"
    );

    let mut settings = dirs.settings();
    change_files(&mut settings, &dirs, "app");
    let e = try_start(settings, false).err().unwrap();
    assert!(e.contains("is not a regular file"), "{e}");
}

fn change_files(settings: &mut Settings, dirs: &Dirs, path: &str) {
    settings.downloads.dir = dirs.root.path().join("files");
    settings.products.get_mut("photo-pro").unwrap().files = vec![ProductFile {
        name: "App.dmg".into(),
        path: path.into(),
    }];
}

#[test]
fn serve_refuses_a_file_list_that_escapes_or_repeats_a_name() {
    let dirs = Dirs::new();
    for (case, files, expected) in [
        (
            "escape",
            r#"[{ name = "App.dmg", path = "../App.dmg" }]"#,
            "products.photo-pro.files: `App.dmg`: path `../App.dmg`",
        ),
        (
            "twice",
            r#"[{ name = "App.dmg", path = "a" }, { name = "App.dmg", path = "b" }]"#,
            "products.photo-pro.files: `App.dmg`: listed twice",
        ),
    ] {
        let config = keyclerk::config::EMBEDDED_CONFIG.replace(
            "entitlements = [\"export\", \"raw\"]\n",
            &format!("entitlements = [\"export\", \"raw\"]\nfiles = {files}\n"),
        );
        let path = dirs.root.path().join(format!("{case}.toml"));
        std::fs::write(&path, config).unwrap();
        let out = cli_in(&dirs, &["--config", path.to_str().unwrap(), "serve"]);
        assert!(!out.status.success(), "{case}");
        assert!(stderr(&out).contains(expected), "{case}: {}", stderr(&out));
    }
}
