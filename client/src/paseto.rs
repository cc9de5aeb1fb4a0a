//! PASETO `v4.public`: Ed25519 over the pre-authentication encoding (PAE).
//!
//! Spec: <https://github.com/paseto-standard/paseto-spec/blob/master/docs/01-Protocol-Versions/Version4.md>.
//! Verification uses `verify_strict`, which refuses small-order keys and
//! non-canonical signatures that plain `verify` would let through.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey, SIGNATURE_LENGTH};

/// The header of every token this module reads or writes.
pub const HEADER: &str = "v4.public.";

/// Why a token was not accepted. Callers facing the network must not tell these apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `v4.public.`, bad base64, too short, or too many parts.
    #[error("not a well-formed v4.public token")]
    Malformed,
    /// The footer names no key we know, or is not the JSON we expect.
    #[error("signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify (forged or altered)")]
    BadSignature,
    /// The payload is not the claims we expect.
    #[error("the payload is not valid claims")]
    BadClaims,
}

/// PAE: the count of pieces, then each piece's length, as little-endian u64 (top bit clear).
pub fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + pieces.iter().map(|p| p.len() + 8).sum::<usize>());
    out.extend_from_slice(&le64(pieces.len()));
    for p in pieces {
        out.extend_from_slice(&le64(p.len()));
        out.extend_from_slice(p);
    }
    out
}

fn le64(n: usize) -> [u8; 8] {
    ((n as u64) & (u64::MAX >> 1)).to_le_bytes()
}

/// Signs `payload` with `footer` and implicit assertion `implicit`.
pub fn sign(key: &SigningKey, payload: &[u8], footer: &[u8], implicit: &[u8]) -> String {
    let m2 = pae(&[HEADER.as_bytes(), payload, footer, implicit]);
    let sig = key.sign(&m2);
    let mut body = Vec::with_capacity(payload.len() + SIGNATURE_LENGTH);
    body.extend_from_slice(payload);
    body.extend_from_slice(&sig.to_bytes());
    let mut token =
        String::with_capacity(HEADER.len() + body.len() * 4 / 3 + footer.len() * 4 / 3 + 4);
    token.push_str(HEADER);
    URL_SAFE_NO_PAD.encode_string(&body, &mut token);
    if !footer.is_empty() {
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(footer, &mut token);
    }
    token
}

/// A token split into its parts, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    body: Vec<u8>,
    /// The footer (authenticated once the signature is checked).
    pub footer: Vec<u8>,
}

/// Splits and decodes a token without checking anything but its shape.
pub fn split(token: &str) -> Result<Unverified, TokenError> {
    let rest = token.strip_prefix(HEADER).ok_or(TokenError::Malformed)?;
    let mut parts = rest.split('.');
    let body_b64 = parts.next().ok_or(TokenError::Malformed)?;
    let footer_b64 = parts.next();
    if parts.next().is_some() {
        return Err(TokenError::Malformed);
    }
    let body = decode_body(body_b64)?;
    let footer = match footer_b64 {
        Some(f) => URL_SAFE_NO_PAD
            .decode(f)
            .map_err(|_| TokenError::Malformed)?,
        None => Vec::new(),
    };
    Ok(Unverified { body, footer })
}

/// The body of a token (payload and signature) from its base64 part.
fn decode_body(body_b64: &str) -> Result<Vec<u8>, TokenError> {
    let body = URL_SAFE_NO_PAD
        .decode(body_b64)
        .map_err(|_| TokenError::Malformed)?;
    if body.len() < SIGNATURE_LENGTH {
        return Err(TokenError::Malformed);
    }
    Ok(body)
}

impl Unverified {
    /// Checks the signature with `key`; returns the payload.
    pub fn verify(self, key: &VerifyingKey, implicit: &[u8]) -> Result<Vec<u8>, TokenError> {
        verify_body(key, self.body, &self.footer, implicit)
    }
}

/// The body of `token` if its footer is exactly `footer_b64` (base64url of the
/// footer, no padding), not yet verified; `None` for any other footer or shape.
///
/// base64url without padding has one encoding for given bytes (the decoder refuses
/// stray trailing bits), so the same text means the same footer: a verifier that
/// knows the footers its keys sign with finds the key without decoding or parsing it.
pub fn split_with_footer(token: &str, footer_b64: &str) -> Option<Result<Vec<u8>, TokenError>> {
    let rest = token.strip_prefix(HEADER)?;
    let body_b64 = rest.strip_suffix(footer_b64)?.strip_suffix('.')?;
    // A body holding a `.` is a token of more parts: base64 refuses it, as `split` does.
    Some(decode_body(body_b64))
}

/// Checks the signature of `body` (payload, then signature) under `footer` and
/// `implicit` with `key`; returns the payload.
pub fn verify_body(
    key: &VerifyingKey,
    mut body: Vec<u8>,
    footer: &[u8],
    implicit: &[u8],
) -> Result<Vec<u8>, TokenError> {
    let Some(split_at) = body.len().checked_sub(SIGNATURE_LENGTH) else {
        return Err(TokenError::Malformed);
    };
    let (payload, sig) = body.split_at(split_at);
    let m2 = pae(&[HEADER.as_bytes(), payload, footer, implicit]);
    if !signature_holds(key, &m2, sig) {
        return Err(TokenError::BadSignature);
    }
    body.truncate(split_at);
    Ok(body)
}

/// Whether `sig` is a valid Ed25519 signature of `msg` by `key`, under the strict
/// rules (`verify_strict`): no small-order keys, no non-canonical `S`.
pub fn signature_holds(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    Signature::from_slice(sig).is_ok_and(|sig| key.verify_strict(msg, &sig).is_ok())
}

/// Splits and verifies in one step; returns the payload.
pub fn verify(
    key: &VerifyingKey,
    token: &str,
    footer: &[u8],
    implicit: &[u8],
) -> Result<Vec<u8>, TokenError> {
    let parts = split(token)?;
    if parts.footer != footer {
        return Err(TokenError::Malformed);
    }
    parts.verify(key, implicit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_examples() {
        assert_eq!(pae(&[]), b"\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(
            pae(&[b""]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            pae(&[b"test"]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00test"
        );
    }

    #[test]
    fn a_token_round_trips_and_any_change_is_refused() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let token = sign(&key, b"{\"a\":1}", b"{\"kid\":\"x\"}", b"");
        let vk = key.verifying_key();
        assert_eq!(
            verify(&vk, &token, b"{\"kid\":\"x\"}", b"").unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            verify(&vk, &token, b"{\"kid\":\"x\"}", b"other"),
            Err(TokenError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(
            verify(&other, &token, b"{\"kid\":\"x\"}", b""),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let vk = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        for (case, token) in [
            ("empty", ""),
            ("local", "v4.local.AAAA"),
            ("v3", "v3.public.AAAA"),
            ("too short", "v4.public.AAAA"),
            ("bad base64", "v4.public.!!!!"),
            ("too many parts", "v4.public.AAAA.BBBB.CCCC"),
            ("padding", "v4.public.AAAA=="),
        ] {
            assert!(verify(&vk, token, b"", b"").is_err(), "{case}");
        }
    }
}

/// Wycheproof's Ed25519 vectors: `verify_strict` (what keyclerk uses) agrees with every
/// verdict, where plain `verify` accepts signatures that should be refused.
#[cfg(test)]
mod wycheproof_tests {
    use super::*;
    use wycheproof::eddsa::{TestName, TestSet};
    use wycheproof::TestResult;

    #[test]
    fn verify_strict_agrees_with_every_wycheproof_ed25519_verdict() {
        let set = TestSet::load(TestName::Ed25519).unwrap();
        let (mut checked, mut lax_accepts_invalid) = (0, 0);
        for group in set.test_groups {
            // Some vectors carry keys that are not even points; those must never verify.
            let key = <[u8; 32]>::try_from(&group.key.pk[..])
                .ok()
                .and_then(|b| VerifyingKey::from_bytes(&b).ok());
            for test in group.tests {
                let strict = key
                    .as_ref()
                    .is_some_and(|k| signature_holds(k, &test.msg, &test.sig));
                let lax = key.as_ref().is_some_and(|k| {
                    Signature::from_slice(&test.sig)
                        .is_ok_and(|s| ed25519_dalek::Verifier::verify(k, &test.msg, &s).is_ok())
                });
                match test.result {
                    TestResult::Valid => assert!(strict, "tc {}: {}", test.tc_id, test.comment),
                    TestResult::Invalid => {
                        assert!(!strict, "tc {}: {}", test.tc_id, test.comment);
                        lax_accepts_invalid += usize::from(lax);
                    }
                    TestResult::Acceptable => {}
                }
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} vectors");
        println!("{checked} vectors; plain verify accepts {lax_accepts_invalid} invalid ones");
    }

    /// Wycheproof's set has no small-order key, which is where the two differ: with
    /// the identity point as key and as `R`, and `s = 0`, plain `verify` accepts a
    /// "signature" of any message that nobody made. `verify_strict` refuses it.
    #[test]
    fn a_weak_key_forgery_passes_plain_verify_and_fails_verify_strict() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = VerifyingKey::from_bytes(&identity).unwrap();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        let forged = Signature::from_bytes(&sig);
        for msg in [&b"any message"[..], b"another"] {
            assert!(ed25519_dalek::Verifier::verify(&key, msg, &forged).is_ok());
            assert!(!signature_holds(&key, msg, &sig));
        }
    }
}
