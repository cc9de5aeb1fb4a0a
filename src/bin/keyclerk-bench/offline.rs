//! Work without HTTP: raw Ed25519 (the ceiling) and the client's offline checks.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use keyclerk_client::Verifier;

/// Operations per second of `op`, run on this thread for about `time`.
pub fn rate_of(time: Duration, mut op: impl FnMut(usize)) -> f64 {
    // Warm up caches and the branch predictor first.
    for i in 0..64 {
        op(i);
    }
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < time {
        for _ in 0..64 {
            op(done);
            done += 1;
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// Raw `ed25519-dalek` figures on one core, over a message of `len` bytes.
pub struct Raw {
    pub sign: f64,
    pub verify_strict: f64,
    pub verify: f64,
}

/// Measures raw signing and verification.
pub fn raw(time: Duration, len: usize) -> Raw {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key();
    let message = vec![0x5au8; len];
    let signature = key.sign(&message);
    Raw {
        sign: rate_of(time, |_| {
            black_box(key.sign(black_box(&message)));
        }),
        verify_strict: rate_of(time, |_| {
            let ok = public
                .verify_strict(black_box(&message), &signature)
                .is_ok();
            assert!(ok, "raw verify_strict failed");
        }),
        verify: rate_of(time, |_| {
            let ok = public
                .verify(black_box(&message), &signature)
                .map(|()| true)
                .unwrap_or(false);
            assert!(ok, "raw verify failed");
        }),
    }
}

/// `ed25519_dalek::Verifier` for `verify` above.
use ed25519_dalek::Verifier as _;

/// A client check's rate and the raw `verify_strict` rate measured in turns with it.
pub struct Measured {
    pub rate: f64,
    pub raw: f64,
}

impl Measured {
    /// The check's rate as a fraction of raw verification.
    pub fn ratio(&self) -> f64 {
        self.rate / self.raw
    }
}

/// The client's checks on one core, license keys and certificates (with their
/// fingerprints), each measured in 20 turns with raw `verify_strict` over a message
/// as long as the token's signed part, so that a busy machine slows both alike.
pub fn client(
    time: Duration,
    verifier: &Verifier,
    keys: &[String],
    certificates: &[(String, String)],
) -> Vec<(&'static str, Measured)> {
    let now = chrono::Utc::now();
    let turn = time / 40;
    let mut out = Vec::new();
    let mut key_check = |i: usize| {
        let key = &keys[i % keys.len()];
        assert!(verifier.verify_license(key, now).is_ok(), "a key failed");
    };
    out.push((
        "license key",
        interleaved(turn, keys[0].len() * 3 / 4, &mut key_check),
    ));
    let mut certificate_check = |i: usize| {
        let (certificate, fingerprint) = &certificates[i % certificates.len()];
        let ok = verifier
            .verify_certificate(certificate, fingerprint, now, None)
            .is_ok();
        assert!(ok, "a certificate failed");
    };
    let len = certificates.first().map_or(300, |c| c.0.len() * 3 / 4);
    out.push((
        "certificate",
        interleaved(turn, len, &mut certificate_check),
    ));
    out
}

fn interleaved(turn: Duration, len: usize, check: &mut dyn FnMut(usize)) -> Measured {
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let public = key.verifying_key();
    let message = vec![0x5au8; len];
    let signature = key.sign(&message);
    let (mut rate, mut raw) = (0.0, 0.0);
    for _ in 0..20 {
        rate += rate_of(turn, &mut *check);
        raw += rate_of(turn, |_| {
            let ok = public
                .verify_strict(black_box(&message), &signature)
                .is_ok();
            assert!(ok, "raw verify_strict failed");
        });
    }
    Measured {
        rate: rate / 20.0,
        raw: raw / 20.0,
    }
}
