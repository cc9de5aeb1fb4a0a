//! Token verification under arbitrary input.
//!
//! Two properties per input:
//! 1. the bytes, as a token string, never panic any of the three checks (license key,
//!    certificate, receipt) and are never accepted (they were not signed by our key
//!    unless the fuzzer reproduced a signature, which would be a finding in itself);
//! 2. the bytes as an XOR mask over a genuine signed license key: every altered
//!    token is refused, only the untouched one verifies.

#![no_main]

use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey;
use keyclerk_client::{paserk, paseto, Verifier};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    verifier: Verifier,
    genuine: String,
    now: DateTime<Utc>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key().to_bytes();
        let kid = paserk::pid(&public).expect("a 32-byte key has an id");
        let verifier = Verifier::new([paserk::public(&public).expect("32 bytes")])
            .expect("our own key")
            .require_issuer("keyclerk");
        let payload = br#"{"kind":"license","iss":"keyclerk","sub":"lic_0000000000000000000000","product":"photo-pro","iat":"2026-01-01T00:00:00Z","seats":3,"entitlements":["export"]}"#;
        let footer = format!(r#"{{"kid":"{kid}"}}"#);
        let genuine = paseto::sign(&key, payload, footer.as_bytes(), b"");
        let now = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .expect("a valid time")
            .with_timezone(&Utc);
        assert!(verifier.verify_license(&genuine, now).is_ok());
        Fixture {
            verifier,
            genuine,
            now,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(s) = std::str::from_utf8(data) {
        if s.trim() != f.genuine {
            assert!(f.verifier.verify_license(s, f.now).is_err());
        }
        let _ = f.verifier.verify_certificate(s, "fp", f.now, None);
        let _ = f
            .verifier
            .verify_receipt(s, "nonce", f.now, Duration::minutes(5));
    }
    let mut altered = f.genuine.clone().into_bytes();
    for (b, m) in altered.iter_mut().zip(data) {
        *b ^= m;
    }
    if let Ok(s) = String::from_utf8(altered) {
        let unchanged = s.trim() == f.genuine;
        assert_eq!(f.verifier.verify_license(&s, f.now).is_ok(), unchanged);
    }
});
