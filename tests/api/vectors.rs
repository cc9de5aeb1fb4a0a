//! Known answers: the official PASETO v4 and PASERK k4 vectors (see
//! tests/vectors/PROVENANCE.md), and a golden key pinning keyclerk's own format.

use ed25519_dalek::{SigningKey, VerifyingKey};
use keyclerk::domain::license::MintRequest;
use keyclerk::domain::product::{Catalog, Product, ProductId, ProductSpec};
use keyclerk::domain::time;
use keyclerk::token::claims::license_claims;
use keyclerk::token::{paserk, paseto, Keyring};
use serde_json::Value;

fn vectors(name: &str) -> Vec<Value> {
    let path = super::helpers::repo().join("tests/vectors").join(name);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["tests"].as_array().unwrap().clone()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("")
}

#[test]
fn every_v4_public_vector_signs_and_verifies_to_the_published_token() {
    let mut checked = 0;
    for v in vectors("v4.json") {
        let name = text(&v, "name");
        if !name.starts_with("4-S-") {
            continue;
        }
        let seed: [u8; 32] = hex(text(&v, "secret-key-seed")).try_into().unwrap();
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(
            key.verifying_key().as_bytes().to_vec(),
            hex(text(&v, "public-key")),
            "{name}"
        );
        let token = paseto::sign(
            &key,
            text(&v, "payload").as_bytes(),
            text(&v, "footer").as_bytes(),
            text(&v, "implicit-assertion").as_bytes(),
        );
        assert_eq!(token, text(&v, "token"), "{name}: signing");
        let payload = paseto::verify(
            &key.verifying_key(),
            text(&v, "token"),
            text(&v, "footer").as_bytes(),
            text(&v, "implicit-assertion").as_bytes(),
        )
        .unwrap();
        assert_eq!(payload, text(&v, "payload").as_bytes(), "{name}: verifying");
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn every_v4_failure_vector_is_refused() {
    let public: [u8; 32] = hex("1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2")
        .try_into()
        .unwrap();
    let key = VerifyingKey::from_bytes(&public).unwrap();
    let mut checked = 0;
    for v in vectors("v4.json") {
        if !v["expect-fail"].as_bool().unwrap() {
            continue;
        }
        let name = text(&v, "name");
        let result = paseto::verify(
            &key,
            text(&v, "token"),
            text(&v, "footer").as_bytes(),
            text(&v, "implicit-assertion").as_bytes(),
        );
        assert!(result.is_err(), "{name} must fail");
        let ring = Keyring::from_public_keys([key]);
        assert!(
            ring.verify(text(&v, "token")).is_err(),
            "{name} must fail through the ring"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn paserk_k4_pid_vectors() {
    for v in vectors("k4.pid.json") {
        let name = text(&v, "name");
        let got = paserk::pid(&hex(text(&v, "key")));
        if v["expect-fail"].as_bool().unwrap() {
            assert_eq!(got, None, "{name}");
        } else {
            assert_eq!(got.as_deref(), Some(text(&v, "paserk")), "{name}");
        }
    }
}

#[test]
fn paserk_k4_public_vectors() {
    for v in vectors("k4.public.json") {
        let name = text(&v, "name");
        let key = hex(text(&v, "key"));
        let got = paserk::public(&key);
        if v["expect-fail"].as_bool().unwrap() {
            assert_eq!(got, None, "{name}");
        } else {
            assert_eq!(got.as_deref(), Some(text(&v, "paserk")), "{name}");
            assert_eq!(
                paserk::parse_public(text(&v, "paserk")).map(|k| k.to_vec()),
                Some(key),
                "{name}"
            );
        }
    }
}

#[test]
fn paserk_k4_secret_vectors() {
    for v in vectors("k4.secret.json") {
        let name = text(&v, "name");
        let key = hex(text(&v, "key"));
        let got = paserk::secret(&key);
        if v["expect-fail"].as_bool().unwrap() {
            assert_eq!(got, None, "{name}");
        } else {
            assert_eq!(got.as_deref(), Some(text(&v, "paserk")), "{name}");
            assert_eq!(
                paserk::parse_secret(text(&v, "paserk")).map(|k| k.to_vec()),
                Some(key),
                "{name}"
            );
        }
    }
}

/// keyclerk's own license key for a fixed signing key and fixed claims. If this
/// changes, every key already in customers' hands changes meaning: don't.
#[test]
fn golden_license_key_for_a_fixed_key_and_fixed_claims() {
    let ring = Keyring::from_signing_key(SigningKey::from_bytes(&[0x42; 32]), time::from_unix(0));
    let spec: ProductSpec = serde_json::from_value(serde_json::json!({
        "name": "Photo Pro",
        "price": {"amount": 4900, "currency": "EUR"},
        "seats": 3,
        "activation_window_days": 90,
        "duration_days": 365,
        "duration_from": "activation",
        "entitlements": ["export", "raw"],
    }))
    .unwrap();
    let catalog = Catalog::new([Product {
        id: ProductId::parse("photo-pro").unwrap(),
        spec,
    }]);
    let req: MintRequest = serde_json::from_value(serde_json::json!({
        "product": "photo-pro",
        "order_id": "order-1",
        "purchased_at": "2026-01-15T10:00:00Z",
    }))
    .unwrap();
    let now = time::parse("2026-01-15T10:00:00Z").unwrap();
    let new = req
        .into_new_license(
            catalog.get("photo-pro").unwrap(),
            "lic_01kf3g0000000000000000000".into(),
            now,
        )
        .unwrap();
    let claims = license_claims(&new.license, "https://licenses.example.com");
    let payload = serde_json::to_string(&claims).unwrap();
    assert_eq!(
        payload,
        r#"{"kind":"license","iss":"https://licenses.example.com","sub":"lic_01kf3g0000000000000000000","product":"photo-pro","iat":"2026-01-15T10:00:00Z","activate_by":"2026-04-15T10:00:00Z","seats":3,"entitlements":["export","raw"]}"#
    );
    let kid = ring.active().unwrap().kid.clone();
    let token = ring.sign_with(&kid, payload.as_bytes()).unwrap();
    assert_eq!(token, GOLDEN);
    assert_eq!(ring.verify(GOLDEN).unwrap().0, payload.as_bytes());
}

const GOLDEN: &str = "v4.public.eyJraW5kIjoibGljZW5zZSIsImlzcyI6Imh0dHBzOi8vbGljZW5zZXMuZXhhbXBsZS5jb20iLCJzdWIiOiJsaWNfMDFrZjNnMDAwMDAwMDAwMDAwMDAwMDAwMCIsInByb2R1Y3QiOiJwaG90by1wcm8iLCJpYXQiOiIyMDI2LTAxLTE1VDEwOjAwOjAwWiIsImFjdGl2YXRlX2J5IjoiMjAyNi0wNC0xNVQxMDowMDowMFoiLCJzZWF0cyI6MywiZW50aXRsZW1lbnRzIjpbImV4cG9ydCIsInJhdyJdfcDREC-sDaQoDYyzZuVBR0iN35eUn00SjZOX_LE4l9ODAv2CtMzMmetyYorWuwJ0ZJg1ybSCPyLlbcA5A1MppAQ.eyJraWQiOiJrNC5waWQucE8xbHNHcFh2SjNXc1IwSkxUT2duVTFqWVhFQkdHc0lfSVNKYUtiQ0pfeG0ifQ";
