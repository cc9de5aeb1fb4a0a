//! The client's offline checks, repeated, for instruction counts.
//!
//! ```text
//! cargo build --release -p keyclerk-client --example offline_cost
//! valgrind --tool=callgrind target/release/examples/offline_cost license 1000
//! ```
//!
//! The first argument is `license`, `certificate`, or `raw-license` / `raw-certificate`
//! (`verify_strict` over a message as long as that token's signed part, as
//! keyclerk-bench measures it); the second how many times.
//! Run it with 0 and with N: the difference over N is the cost of one check. The
//! tokens are shaped like the server's (same claims, a `k4.pid` footer).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an example: the unwraps are on values just built"
)]

use std::hint::black_box;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use keyclerk_client::claims::{ActivationClaims, Footer, LicenseClaims};
use keyclerk_client::{paserk, paseto, Verifier};

fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let footer = serde_json::to_vec(&Footer {
        kid: paserk::pid_of(key.verifying_key().as_bytes()),
    })
    .unwrap();
    paseto::sign(key, payload, &footer, b"")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "license".into());
    let times: usize = args.next().map_or(1000, |n| n.parse().expect("a count"));
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let verifier = Verifier::new([paserk::public_of(key.verifying_key().as_bytes())])
        .unwrap()
        .require_issuer("https://licenses.example.com");
    let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    let license = sign(
        &key,
        &serde_json::to_vec(&LicenseClaims {
            kind: "license".into(),
            iss: "https://licenses.example.com".into(),
            sub: "lic_01JD8X3K4M5N6P7Q8R9S0T1V2W".into(),
            product: "photo-pro".into(),
            iat: "2026-03-01T12:34:56Z".into(),
            activate_by: None,
            exp: Some("2027-03-01T12:34:56Z".into()),
            seats: 3,
            entitlements: vec!["raw".into(), "export".into()],
        })
        .unwrap(),
    );
    let fingerprint = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let certificate = sign(
        &key,
        &serde_json::to_vec(&ActivationClaims {
            kind: "activation".into(),
            iss: "https://licenses.example.com".into(),
            sub: "act_01JD8X3K4M5N6P7Q8R9S0T1V2W".into(),
            license: "lic_01JD8X3K4M5N6P7Q8R9S0T1V2W".into(),
            product: "photo-pro".into(),
            fingerprint: fingerprint.into(),
            iat: "2026-05-30T12:34:56Z".into(),
            exp: "2026-06-29T12:34:56Z".into(),
            license_expires: Some("2027-03-01T12:34:56Z".into()),
            entitlements: vec!["raw".into(), "export".into()],
        })
        .unwrap(),
    );
    let token = if what.ends_with("license") {
        &license
    } else {
        &certificate
    };
    let message = vec![0x5au8; token.len() * 3 / 4];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    for _ in 0..times {
        match what.as_str() {
            "raw-license" | "raw-certificate" => assert!(public
                .verify_strict(black_box(&message), &signature)
                .is_ok()),
            "license" => assert!(verifier.verify_license(black_box(&license), now).is_ok()),
            "certificate" => assert!(verifier
                .verify_certificate(black_box(&certificate), fingerprint, now, None)
                .is_ok()),
            other => panic!("unknown check {other}"),
        }
    }
}
