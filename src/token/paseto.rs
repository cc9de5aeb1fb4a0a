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
    let body = URL_SAFE_NO_PAD
        .decode(body_b64)
        .map_err(|_| TokenError::Malformed)?;
    if body.len() < SIGNATURE_LENGTH {
        return Err(TokenError::Malformed);
    }
    let footer = match footer_b64 {
        Some(f) => URL_SAFE_NO_PAD
            .decode(f)
            .map_err(|_| TokenError::Malformed)?,
        None => Vec::new(),
    };
    Ok(Unverified { body, footer })
}

impl Unverified {
    /// Checks the signature with `key`; returns the payload.
    pub fn verify(self, key: &VerifyingKey, implicit: &[u8]) -> Result<Vec<u8>, TokenError> {
        let split_at = self.body.len() - SIGNATURE_LENGTH;
        let (payload, sig) = self.body.split_at(split_at);
        let sig = Signature::from_slice(sig).map_err(|_| TokenError::Malformed)?;
        let m2 = pae(&[HEADER.as_bytes(), payload, &self.footer, implicit]);
        key.verify_strict(&m2, &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let mut body = self.body;
        body.truncate(split_at);
        Ok(body)
    }
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
