//! PASERK for v4: `k4.public`, `k4.secret` and `k4.pid` (the key id).
//!
//! Spec: <https://github.com/paseto-standard/paserk/blob/master/types/pid.md>.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blake2::digest::consts::U33;
use blake2::{Blake2b, Digest};

/// Prefix of a public key.
pub const PUBLIC_PREFIX: &str = "k4.public.";
/// Prefix of a secret key.
pub const SECRET_PREFIX: &str = "k4.secret.";
/// Prefix of a public key id.
pub const PID_PREFIX: &str = "k4.pid.";

/// `k4.public.` + base64url(public key).
pub fn public_of(key: &[u8; 32]) -> String {
    format!("{PUBLIC_PREFIX}{}", URL_SAFE_NO_PAD.encode(key))
}

/// `k4.pid.` + base64url(BLAKE2b-264(`k4.pid.` || `k4.public.`...)).
pub fn pid_of(key: &[u8; 32]) -> String {
    let mut h = Blake2b::<U33>::new();
    h.update(PID_PREFIX.as_bytes());
    h.update(public_of(key).as_bytes());
    format!("{PID_PREFIX}{}", URL_SAFE_NO_PAD.encode(h.finalize()))
}

/// `k4.secret.` + base64url(seed || public key).
pub fn secret_of(key: &[u8; 64]) -> String {
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(key))
}

/// [`public_of`] for bytes of any length: `None` unless there are 32.
pub fn public(key: &[u8]) -> Option<String> {
    key.try_into().ok().map(public_of)
}

/// [`pid_of`] for bytes of any length: `None` unless there are 32.
pub fn pid(key: &[u8]) -> Option<String> {
    key.try_into().ok().map(pid_of)
}

/// [`secret_of`] for bytes of any length: `None` unless there are 64.
pub fn secret(key: &[u8]) -> Option<String> {
    key.try_into().ok().map(secret_of)
}

fn decode(s: &str, prefix: &str, len: usize) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim().strip_prefix(prefix)?)
        .ok()?;
    (bytes.len() == len).then_some(bytes)
}

/// Reads a `k4.public.` key into its 32 bytes.
pub fn parse_public(s: &str) -> Option<[u8; 32]> {
    decode(s, PUBLIC_PREFIX, 32).and_then(|b| b.try_into().ok())
}

/// Reads a `k4.secret.` key into its 64 bytes (seed, then public key).
pub fn parse_secret(s: &str) -> Option<[u8; 64]> {
    decode(s, SECRET_PREFIX, 64).and_then(|b| b.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_versions_are_refused() {
        assert_eq!(parse_public("k3.public.AAAA"), None);
        assert_eq!(parse_secret("k4.public.AAAA"), None);
        assert_eq!(parse_public("k4.public."), None);
    }

    #[test]
    fn public_round_trips() {
        let key = [9u8; 32];
        assert_eq!(parse_public(&public(&key).unwrap()), Some(key));
    }
}
