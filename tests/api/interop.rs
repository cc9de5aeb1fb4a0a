//! Other people's PASETO implementations against keyclerk, both ways: the Rust crate
//! `pasetors`, Python `pyseto` and Node `paseto` (installed by scripts/test.sh). Without
//! their library the Python and Node tests fail, never skip: `scripts/test.sh`
//! installs them.

use std::process::Command;

use ed25519_dalek::VerifyingKey;
use keyclerk::token::{paserk, paseto, Keyring};
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;
use serde_json::{json, Value};

use crate::helpers::{flip_one_char, repo, TestServer};

fn minted_key(server: &TestServer) -> (String, String, String) {
    let body = server
        .mint(json!({"product": "photo-pro", "order_id": "interop-1", "customer_email": "i@example.com"}))
        .expect(201);
    let (kid, public) = server.public_keys().remove(0);
    (body["key"].as_str().unwrap().to_owned(), kid, public)
}

fn footer_of(token: &str) -> Vec<u8> {
    paseto::split(token).unwrap().footer
}

#[test]
fn pasetors_verifies_a_key_keyclerk_minted_and_agrees_on_the_key_id() {
    let server = TestServer::start();
    let (key, kid, public) = minted_key(&server);
    let pk = AsymmetricPublicKey::<V4>::from(&paserk::parse_public(&public).unwrap()).unwrap();
    let mut their_kid = String::new();
    Id::from(&pk).fmt(&mut their_kid).unwrap();
    assert_eq!(their_kid, kid);
    let footer = footer_of(&key);
    let untrusted = UntrustedToken::<Public, V4>::try_from(key.as_str()).unwrap();
    let trusted = PublicToken::verify(&pk, &untrusted, Some(&footer), None).unwrap();
    let claims: Value = serde_json::from_str(trusted.payload()).unwrap();
    assert_eq!(claims["kind"], "license");
    assert_eq!(claims["product"], "photo-pro");

    let flipped = flip_one_char(&key);
    let refused = UntrustedToken::<Public, V4>::try_from(flipped.as_str())
        .map_err(|_| ())
        .and_then(|u| PublicToken::verify(&pk, &u, Some(&footer), None).map_err(|_| ()));
    assert!(refused.is_err(), "pasetors must refuse a flipped character");
}

#[test]
fn keyclerk_verifies_a_token_pasetors_signed() {
    let pair = AsymmetricKeyPair::<V4>::generate().unwrap();
    let public = VerifyingKey::from_bytes(pair.public.as_bytes().try_into().unwrap()).unwrap();
    let mut kid = String::new();
    Id::from(&pair.public).fmt(&mut kid).unwrap();
    let footer = json!({ "kid": kid }).to_string();
    let payload = br#"{"kind":"license","sub":"lic_from_pasetors"}"#;
    let token = PublicToken::sign(&pair.secret, payload, Some(footer.as_bytes()), None).unwrap();
    let ring = Keyring::from_public_keys([public]);
    let (got, got_kid) = ring.verify(&token).unwrap();
    assert_eq!(got, payload);
    assert_eq!(got_kid, kid);
    let _: &AsymmetricSecretKey<V4> = &pair.secret;
}

fn python() -> String {
    std::env::var("KC_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn require(ok: bool, what: &str, stderr: &str) {
    assert!(
        ok || !(stderr.contains("ModuleNotFoundError") || stderr.contains("Cannot find module")),
        "{what} is not installed: run the suite with ./scripts/test.sh, which installs it\n{stderr}"
    );
}

#[test]
fn pyseto_accepts_a_minted_key_and_refuses_a_flipped_one() {
    let server = TestServer::start();
    let (key, _, public) = minted_key(&server);
    let script = repo().join("tests/interop/pyseto_interop.py");
    let (ok, out, err) = run(Command::new(python())
        .arg(&script)
        .args(["verify", &public, &key]));
    require(ok, "pyseto", &err);
    assert!(ok, "pyseto refused a genuine key: {err}");
    let claims: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(claims["kind"], "license");
    assert_eq!(claims["iss"], "keyclerk-test");

    let (ok, _, err) =
        run(Command::new(python())
            .arg(&script)
            .args(["verify", &public, &flip_one_char(&key)]));
    assert!(!ok, "pyseto accepted a flipped key");
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn keyclerk_verifies_a_token_pyseto_signed() {
    let script = repo().join("tests/interop/pyseto_interop.py");
    let (ok, out, err) = run(Command::new(python()).arg(&script).arg("sign"));
    require(ok, "pyseto", &err);
    assert!(ok, "{err}");
    let sample: Value = serde_json::from_str(&out).unwrap();
    let public = paserk::parse_public(sample["public_key"].as_str().unwrap()).unwrap();
    let ring = Keyring::from_public_keys([VerifyingKey::from_bytes(&public).unwrap()]);
    assert_eq!(
        ring.active().unwrap().kid,
        sample["kid"].as_str().unwrap(),
        "k4.pid agrees"
    );
    let (payload, _) = ring.verify(sample["token"].as_str().unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["sub"], "lic_from_python");
}

#[test]
fn node_paseto_accepts_a_minted_key_and_refuses_a_flipped_one() {
    let server = TestServer::start();
    let (key, _, public) = minted_key(&server);
    let script = repo().join("tests/interop/node/paseto_interop.js");
    let (ok, out, err) = run(Command::new("node")
        .arg(&script)
        .args(["verify", &public, &key]));
    require(ok, "the Node paseto library", &err);
    assert!(ok, "node paseto refused a genuine key: {err}");
    let claims: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(claims["product"], "photo-pro");

    let (ok, _, err) =
        run(Command::new("node")
            .arg(&script)
            .args(["verify", &public, &flip_one_char(&key)]));
    assert!(!ok, "node paseto accepted a flipped key");
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn keyclerk_verifies_a_token_node_paseto_signed() {
    let script = repo().join("tests/interop/node/paseto_interop.js");
    let (ok, out, err) = run(Command::new("node").arg(&script).arg("sign"));
    require(ok, "the Node paseto library", &err);
    assert!(ok, "{err}");
    let sample: Value = serde_json::from_str(&out).unwrap();
    let public = paserk::parse_public(sample["public_key"].as_str().unwrap()).unwrap();
    let key = VerifyingKey::from_bytes(&public).unwrap();
    let payload = paseto::verify(&key, sample["token"].as_str().unwrap(), b"", b"").unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["sub"], "lic_from_node");
}

#[test]
fn a_python_app_activates_verifies_its_certificate_and_validates_with_a_receipt() {
    let server = TestServer::start();
    let body = server
        .mint(json!({"product": "photo-pro", "order_id": "py-app-1"}))
        .expect(201);
    let key = body["key"].as_str().unwrap();
    let id = body["license"]["id"].as_str().unwrap();
    let script = repo().join("tests/interop/pyseto_client.py");
    let (ok, out, err) = run(Command::new(python())
        .arg(&script)
        .arg(server.url(""))
        .arg(key)
        .arg("machine-42"));
    require(ok, "pyseto", &err);
    assert!(ok, "the Python app failed: {err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["status"], 201);
    assert_eq!(
        summary["fingerprint"],
        keyclerk_client::machine_fingerprint("keyclerk-demo", "machine-42"),
        "Python and Rust derive the same fingerprint"
    );
    assert_eq!(summary["certificate"]["license"], id);
    assert_eq!(
        summary["certificate"]["fingerprint"],
        summary["fingerprint"]
    );
    assert_eq!(summary["copied_certificate_refused"], true);
    assert_eq!(summary["validation"], "VALID");
    assert_eq!(summary["receipt"]["code"], "VALID");
    let machines = server
        .get(
            &format!("/v1/licenses/{id}/activations"),
            Some(&server.admin),
        )
        .expect(200);
    assert_eq!(machines["activations"][0]["id"], summary["activation"]);
    assert_eq!(machines["activations"][0]["platform"], "python");
}
