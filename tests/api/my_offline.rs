//! Offline activation on the customer page (`/my/offline`): the request code the
//! client crate makes goes in, the certificate file comes out, and the seat is
//! taken and recorded exactly as `POST /v1/activations` takes and records it.

use keyclerk_client::offline::{ActivationRequest, CertificateFile};
use keyclerk_client::{machine_fingerprint, Verifier};
use serde_json::{json, Value};

use crate::helpers::{both_engines, Dirs, Engine, TestServer};
use crate::my_page::{Customer, Page};

fn mint(server: &TestServer, body: Value) -> (String, String) {
    let m = server.mint(body).expect(201);
    (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    )
}

fn code(key: &str, machine: &str) -> String {
    ActivationRequest::new(key, machine_fingerprint("offline-test", machine))
        .with_name(machine)
        .with_platform("linux")
        .code()
        .unwrap()
}

/// Sends a code from the form page, as a browser does.
fn send(c: &mut Customer, code: &str) -> Page {
    let form = c.get("/my/offline");
    assert_eq!(form.status, 200, "{}", form.body);
    c.post("/my/offline", &form, &[("code", code)])
}

fn verifier(server: &TestServer) -> Verifier {
    Verifier::from_keys_document(&server.get("/v1/keys", None).expect(200).to_string()).unwrap()
}

/// The kinds of the license's audit events, oldest first.
fn event_kinds(server: &TestServer, id: &str) -> Vec<String> {
    let history = server
        .get(&format!("/v1/licenses/{id}/history"), Some(&server.admin))
        .expect(200);
    let mut kinds: Vec<(i64, String)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    kinds.into_iter().map(|(_, k)| k).collect()
}

fn active_machines(server: &TestServer, id: &str) -> Vec<Value> {
    server
        .get(
            &format!("/v1/licenses/{id}/activations"),
            Some(&server.admin),
        )
        .expect(200)["activations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["deactivated_at"].is_null())
        .cloned()
        .collect()
}

both_engines!(an_offline_machine_gets_its_certificate_file_and_takes_a_seat_like_an_online_one);
fn an_offline_machine_gets_its_certificate_file_and_takes_a_seat_like_an_online_one(
    engine: Engine,
) {
    let server = TestServer::start_on(engine);
    let (online_id, online_key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "off-online", "seats": 2}),
    );
    let (id, key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "off-1", "seats": 2}),
    );
    // The same first activation, online on one license and offline on the other.
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": online_key, "fingerprint": machine_fingerprint("offline-test", "cabin-pc"),
                    "name": "cabin-pc", "platform": "linux"}),
        )
        .expect(201);

    let mut c = Customer::new(&server);
    let form = c.get("/my/offline");
    assert!(
        form.body.contains("Activate a machine without internet"),
        "{}",
        form.body
    );
    let got = send(&mut c, &code(&key, "cabin-pc"));
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let disposition = got.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"keyclerk-certificate-studio-suite-act_"),
        "{disposition}"
    );
    assert_eq!(got.header("cache-control"), Some("no-store"));
    let file = CertificateFile::parse(got.body.as_bytes()).expect("a certificate file");
    assert_eq!(file.license, id);
    assert_eq!(file.machine.as_deref(), Some("cabin-pc"));
    // The app checks it against the server's keys, for its own fingerprint only.
    let v = verifier(&server);
    let now = chrono::Utc::now();
    let fingerprint = machine_fingerprint("offline-test", "cabin-pc");
    let claims = v
        .verify_certificate_file(got.body.as_bytes(), &fingerprint, now, None)
        .unwrap();
    assert_eq!(claims.license, id);
    assert_eq!(claims.exp, file.lease_expires_at);
    assert!(v
        .verify_certificate_file(got.body.as_bytes(), "another-machine", now, None)
        .is_err());

    // It took a seat, recorded as an online activation records one.
    let machines = active_machines(&server, &id);
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["name"], "cabin-pc");
    assert_eq!(machines[0]["platform"], "linux");
    assert_eq!(event_kinds(&server, &id), event_kinds(&server, &online_id));

    // The same code again: a fresh certificate for the same seat.
    let again = send(&mut c, &code(&key, "cabin-pc"));
    assert_eq!(again.status, 200, "{}", again.body);
    let again = CertificateFile::parse(again.body.as_bytes()).unwrap();
    assert_eq!(again.activation, file.activation);
    assert_eq!(active_machines(&server, &id).len(), 1);

    // A second machine takes the second seat; a third finds none.
    assert_eq!(send(&mut c, &code(&key, "boat-pc")).status, 200);
    let full = send(&mut c, &code(&key, "attic-pc"));
    assert_eq!(full.status, 409, "{}", full.body);
    assert!(
        full.body.contains("Every seat of this license is taken"),
        "{}",
        full.body
    );
    assert_eq!(active_machines(&server, &id).len(), 2);

    // The machines show on the customer's page, like any other.
    assert_eq!(c.sign_in_with_key(&key).status, 303);
    let page = c.get("/my");
    assert!(
        page.body.contains("cabin-pc") && page.body.contains("boat-pc"),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/my/offline\""));
}

both_engines!(damaged_foreign_and_refused_codes_get_a_clear_page_and_change_nothing);
fn damaged_foreign_and_refused_codes_get_a_clear_page_and_change_nothing(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (id, key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "off-bad"}),
    );
    let mut c = Customer::new(&server);
    let good = code(&key, "m-1");
    // One character changed in the middle.
    let mut damaged = good.clone().into_bytes();
    let i = damaged.len() / 2;
    damaged[i] = if damaged[i] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(damaged).unwrap();
    let cases = [
        (damaged.as_str(), 400, "This code is damaged or incomplete"),
        (
            &good[..good.len() - 3],
            400,
            "This code is damaged or incomplete",
        ),
        (key.as_str(), 400, "This is not a request code"),
        ("", 400, "This is not a request code"),
    ];
    for (sent, status, says) in cases {
        let page = send(&mut c, sent);
        assert_eq!(page.status, status, "{sent}: {}", page.body);
        assert!(page.body.contains(says), "{sent}: {}", page.body);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
    }
    // A well-formed code of a key the server never issued.
    let forged = code(&format!("{}x", &key[..key.len() - 1]), "m-1");
    let page = send(&mut c, &forged);
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.body.contains("is not one we know"), "{}", page.body);
    assert!(active_machines(&server, &id).is_empty());

    // A revoked license's code is refused, with the reason.
    server
        .post(
            &format!("/v1/licenses/{id}/revoke"),
            Some(&server.admin),
            &json!({"reason": "chargeback lost"}),
        )
        .expect(200);
    let page = send(&mut c, &good);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("This license was revoked or refunded"),
        "{}",
        page.body
    );
    assert!(active_machines(&server, &id).is_empty());

    // Without the form's token, nothing is activated.
    let (id2, key2) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "off-bad-2"}),
    );
    let origin = server.url("").trim_end_matches('/').to_owned();
    let page = c.post_from(
        "/my/offline",
        &[("code", &code(&key2, "m-2"))],
        Some(&origin),
    );
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(active_machines(&server, &id2).is_empty());
}

#[test]
fn unknown_keys_in_codes_are_throttled_like_activation() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.enabled = true;
        s.rate_limits.failed_lookups_per_address_per_hour = 5;
    });
    let mut c = Customer::new(&server);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let page = send(&mut c, &code(&format!("v4.public.guess{i}"), "m"));
        statuses.push(page.status);
        if page.status == 429 {
            assert!(page.header("retry-after").is_some());
            assert!(page.body.contains("Too many attempts"), "{}", page.body);
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 404));
}

#[test]
fn the_offline_page_speaks_french() {
    let server = TestServer::start();
    let mut c = Customer::new(&server);
    c.accept_language = Some("fr-FR,fr;q=0.9".into());
    let page = c.get("/my/offline");
    assert!(
        page.body.contains("Activer une machine sans internet"),
        "{}",
        page.body
    );
    let bad = c.post("/my/offline", &page, &[("code", "KCA123")]);
    assert!(bad.body.contains("Ce code est abîmé"), "{}", bad.body);
}
