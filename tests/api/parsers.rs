//! Parsers under attack (proptest): arbitrary input never panics the key,
//! certificate, fingerprint and request parsers, and a flipped bit anywhere in a
//! signed token (license key, certificate, receipt) is always refused.

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey;
use keyclerk::domain::activation::Fingerprint;
use keyclerk::domain::grace::Remedy;
use keyclerk::domain::key::LicenseKey;
use keyclerk::domain::license::MintRequest;
use keyclerk::domain::short_key::ShortKey;
use keyclerk::routes::extract::parse_json;
use keyclerk::service::grace::{ClaimBody, GraceBody, RedeemBody};
use keyclerk::service::{ActivationRequest, DeactivationRequest, ValidationRequest};
use keyclerk::token::{paserk, paseto, Keyring};
use keyclerk_client::Verifier;
use proptest::prelude::*;

struct Fixture {
    keyring: Keyring,
    verifier: Verifier,
    tokens: Vec<String>,
    now: DateTime<Utc>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::from_bytes(&[42; 32]);
        let public = key.verifying_key().to_bytes();
        let created = keyclerk::domain::time::now();
        let keyring = Keyring::from_signing_key(key, created);
        let verifier = Verifier::new([paserk::public(&public).unwrap()]).unwrap();
        let kid = paserk::pid(&public).unwrap();
        let sign = |payload: serde_json::Value| keyring.sign_with(&kid, payload.to_string().as_bytes()).unwrap();
        let tokens = vec![
            sign(serde_json::json!({"kind": "license", "iss": "keyclerk", "sub": "lic_1", "product": "p",
                "iat": "2026-01-01T00:00:00Z", "seats": 1, "entitlements": []})),
            sign(serde_json::json!({"kind": "activation", "iss": "keyclerk", "sub": "act_1", "license": "lic_1",
                "product": "p", "fingerprint": "fp", "iat": "2026-01-01T00:00:00Z",
                "exp": "2027-01-01T00:00:00Z", "entitlements": []})),
            sign(serde_json::json!({"kind": "validation", "iss": "keyclerk", "nonce": "nonce-0123456789",
                "code": "VALID", "valid": true, "license": "lic_1", "fingerprint": "fp",
                "iat": "2026-06-01T00:00:00Z"})),
        ];
        let now = DateTime::parse_from_rfc3339("2026-06-01T00:00:10Z").unwrap().with_timezone(&Utc);
        Fixture { keyring, verifier, tokens, now }
    })
}

/// Every way a token is checked, on either side; true if any accepted it.
fn accepted_anywhere(f: &Fixture, token: &str) -> bool {
    let max_age = Duration::minutes(5);
    f.keyring.verify(token).is_ok()
        || f.verifier.verify_license(token, f.now).is_ok()
        || f.verifier
            .verify_certificate(token, "fp", f.now, None)
            .is_ok()
        || f.verifier
            .verify_receipt(token, "nonce-0123456789", f.now, max_age)
            .is_ok()
        || paseto::split(token).is_ok_and(|p| {
            let key = SigningKey::from_bytes(&[42; 32]).verifying_key();
            p.verify(&key, b"").is_ok()
        })
}

#[test]
fn the_untouched_tokens_are_accepted() {
    let f = fixture();
    assert!(f.verifier.verify_license(&f.tokens[0], f.now).is_ok());
    assert!(f
        .verifier
        .verify_certificate(&f.tokens[1], "fp", f.now, None)
        .is_ok());
    assert!(f
        .verifier
        .verify_receipt(
            &f.tokens[2],
            "nonce-0123456789",
            f.now,
            Duration::minutes(5)
        )
        .is_ok());
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // Near-JSON: objects with the real field names and hostile values.
        (
            prop::sample::select(vec![
                "license_key",
                "fingerprint",
                "nonce",
                "name",
                "platform",
                "product",
                "order_id",
                "seats",
                "remedy",
                "reason",
                "days",
                "email",
                "amount",
                "currency",
                "purchased_at",
                "expires_at",
                "metadata",
                "entitlements",
            ]),
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|n| format!("{n:?}")),
                ".{0,300}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                Just("null".to_owned()),
                Just("[[[[[[[[[[]]]]]]]]]]".to_owned()),
                Just("{\"a\":{\"b\":{}}}".to_owned()),
            ],
        )
            .prop_map(|(k, v)| format!("{{\"{k}\": {v}}}").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn key_and_fingerprint_parsers_take_anything(s in ".{0,400}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let lossy = String::from_utf8_lossy(&bytes);
        for input in [s.as_str(), lossy.as_ref()] {
            let _ = LicenseKey::parse(input).map(|k| k.hash());
            let _ = ShortKey::parse(input);
            let _ = Fingerprint::parse(input);
            let _ = keyclerk::domain::time::parse(input);
        }
    }

    #[test]
    fn token_checks_take_anything_and_accept_nothing_unsigned(s in "(v4\\.public\\.)?[A-Za-z0-9_.-]{0,400}") {
        prop_assert!(!accepted_anywhere(fixture(), &s));
    }

    #[test]
    fn request_parsers_take_any_bytes(body in any_body()) {
        let _ = parse_json::<ActivationRequest>(&body);
        let _ = parse_json::<ValidationRequest>(&body);
        let _ = parse_json::<DeactivationRequest>(&body);
        let _ = parse_json::<MintRequest>(&body);
        let _ = parse_json::<GraceBody>(&body);
        let _ = parse_json::<ClaimBody>(&body);
        let _ = parse_json::<RedeemBody>(&body);
        let _ = parse_json::<Remedy>(&body);
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_signed_token_is_refused(which in 0usize..3, index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let f = fixture();
        let mut bytes = f.tokens[which].clone().into_bytes();
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(altered) = String::from_utf8(bytes) {
            // Whitespace at either end is trimmed by design, the only change that is
            // not a change.
            if altered.trim() != f.tokens[which] {
                prop_assert!(!accepted_anywhere(f, &altered), "accepted after flipping bit {bit} of byte {i}");
            }
        }
    }
}
