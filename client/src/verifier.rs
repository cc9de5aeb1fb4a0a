//! The offline verifier: keys, certificates and receipts checked with the public keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::VerifyingKey;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::claims::{
    ActivationClaims, Footer, LicenseClaims, ValidationReceipt, ACTIVATION_KIND, LICENSE_KIND,
    VALIDATION_KIND,
};
use crate::{paserk, paseto};

/// How far the clock may stray before a time is taken as a clock set back (seconds).
pub const CLOCK_SKEW_SECS: i64 = 300;

/// Why a key, certificate or receipt was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Not a keyclerk `v4.public` token at all.
    #[error("not a keyclerk token")]
    Malformed,
    /// A short (typed) key: only the server can check it; activate it online once.
    #[error("a short key cannot be checked offline; activate it online once")]
    NotOfflineVerifiable,
    /// The footer names a key this verifier does not hold (fetch `/v1/keys` again).
    #[error("signed by an unknown key ({kid})")]
    UnknownKey {
        /// The `k4.pid` the token names.
        kid: String,
    },
    /// The signature does not verify: the token was forged or altered.
    #[error("the signature does not verify: forged or altered")]
    BadSignature,
    /// A token of another kind (a license key where a certificate was expected, ...).
    #[error("a `{found}` token where a `{expected}` was expected")]
    WrongKind {
        /// The kind asked for.
        expected: &'static str,
        /// The kind found.
        found: String,
    },
    /// Signed by a known key but issued for another server name.
    #[error("issued by `{found}`, not `{expected}`")]
    WrongIssuer {
        /// The issuer required.
        expected: String,
        /// The issuer found.
        found: String,
    },
    /// The claims are not the ones keyclerk writes.
    #[error("the claims cannot be read")]
    BadClaims,
    /// The license key carries an expiry that has passed.
    #[error("the license expired at {at}")]
    LicenseExpired {
        /// When.
        at: DateTime<Utc>,
    },
    /// The certificate's lease has ended: refresh it online.
    #[error("the lease ended at {at}; refresh the certificate online")]
    LeaseExpired {
        /// When.
        at: DateTime<Utc>,
    },
    /// The certificate names another machine (it was copied).
    #[error("the certificate belongs to another machine")]
    FingerprintMismatch,
    /// The clock reads earlier than a time already seen: it was set back.
    #[error("the clock reads {now}, earlier than {seen} seen before: it was set back")]
    ClockSetBack {
        /// The clock's reading.
        now: DateTime<Utc>,
        /// The latest time seen before (last start, or the certificate's issue time).
        seen: DateTime<Utc>,
    },
    /// The receipt answers another request.
    #[error("the receipt carries another nonce (a replayed answer)")]
    NonceMismatch,
    /// The receipt is older than allowed.
    #[error("the receipt was issued at {at}, too long ago")]
    StaleReceipt {
        /// When it was issued.
        at: DateTime<Utc>,
    },
    /// A public key given to the verifier is not a `k4.public` key.
    #[error("not a k4.public key")]
    InvalidPublicKey,
    /// Not the certificate file of an offline activation.
    #[error("not a keyclerk certificate file")]
    NotACertificateFile,
}

/// Checks keyclerk tokens offline with the server's public keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<Key>,
    issuer: Option<String>,
}

/// A public key with the footer the server signs with under it.
#[derive(Debug, Clone)]
struct Key {
    kid: String,
    key: VerifyingKey,
    /// `{"kid":"k4.pid.…"}` as the server writes it (serde_json, no spaces).
    footer: Vec<u8>,
    /// [`Key::footer`] in base64url, as it stands in the token.
    footer_b64: String,
}

impl Key {
    fn new(key: VerifyingKey) -> Self {
        let kid = paserk::pid_of(key.as_bytes());
        // Invariant: a struct of one string always serializes.
        let footer = serde_json::to_vec(&Footer { kid: kid.clone() })
            .expect("a struct of one string serializes");
        let footer_b64 = URL_SAFE_NO_PAD.encode(&footer);
        Self {
            kid,
            key,
            footer,
            footer_b64,
        }
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, ClientError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ClientError::BadClaims)
}

fn check_clock(
    now: DateTime<Utc>,
    seen: impl IntoIterator<Item = DateTime<Utc>>,
) -> Result<(), ClientError> {
    let skew = Duration::seconds(CLOCK_SKEW_SECS);
    match seen.into_iter().max() {
        Some(seen) if now + skew < seen => Err(ClientError::ClockSetBack { now, seen }),
        _ => Ok(()),
    }
}

impl Verifier {
    /// A verifier holding these public keys (PASERK `k4.public.…`).
    pub fn new<I, S>(public_keys: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = public_keys
            .into_iter()
            .map(|k| {
                let bytes =
                    paserk::parse_public(k.as_ref()).ok_or(ClientError::InvalidPublicKey)?;
                let key =
                    VerifyingKey::from_bytes(&bytes).map_err(|_| ClientError::InvalidPublicKey)?;
                Ok(Key::new(key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys, issuer: None })
    }

    /// A verifier from the body of `GET /v1/keys` (`{"keys": [{"public_key": …}]}`).
    pub fn from_keys_document(json: &str) -> Result<Self, ClientError> {
        let doc: serde_json::Value =
            serde_json::from_str(json).map_err(|_| ClientError::InvalidPublicKey)?;
        let keys = doc["keys"]
            .as_array()
            .ok_or(ClientError::InvalidPublicKey)?
            .iter()
            .map(|k| {
                k["public_key"]
                    .as_str()
                    .ok_or(ClientError::InvalidPublicKey)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// Also requires the `iss` claim to be `issuer` (the server's configured name).
    pub fn require_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `k4.pid` ids of the keys held.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// Checks a license key: signature, kind, issuer and, if it has one, its expiry.
    ///
    /// Offline, this cannot know of a revocation or a re-opened window; the server
    /// decides those at activation.
    pub fn verify_license(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<LicenseClaims, ClientError> {
        let key = key.trim();
        if !key.starts_with(paseto::HEADER) {
            let compact: String = key.chars().filter(|c| *c != '-').collect();
            return Err(
                if compact.len() == 25 && compact.chars().all(|c| c.is_ascii_alphanumeric()) {
                    ClientError::NotOfflineVerifiable
                } else {
                    ClientError::Malformed
                },
            );
        }
        let claims: LicenseClaims = self.open(key, LICENSE_KIND)?;
        if let Some(exp) = claims.exp.as_deref().map(parse_time).transpose()? {
            if now >= exp {
                return Err(ClientError::LicenseExpired { at: exp });
            }
        }
        Ok(claims)
    }

    /// Checks an activation certificate for this machine: signature, kind, issuer,
    /// the clock against `last_seen` (the latest time the app saw before) and the
    /// certificate's issue time, the fingerprint, and the lease.
    pub fn verify_certificate(
        &self,
        certificate: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        last_seen: Option<DateTime<Utc>>,
    ) -> Result<ActivationClaims, ClientError> {
        let claims: ActivationClaims = self.open(certificate, ACTIVATION_KIND)?;
        let issued = parse_time(&claims.iat)?;
        check_clock(now, last_seen.into_iter().chain([issued]))?;
        if claims.fingerprint != fingerprint {
            return Err(ClientError::FingerprintMismatch);
        }
        let exp = parse_time(&claims.exp)?;
        if now >= exp {
            return Err(ClientError::LeaseExpired { at: exp });
        }
        Ok(claims)
    }

    /// Checks the certificate file of an offline activation
    /// ([`CertificateFile`](crate::offline::CertificateFile)): the certificate in it,
    /// exactly as [`verify_certificate`](Self::verify_certificate) does (the file's
    /// other fields are for people and are not trusted).
    pub fn verify_certificate_file(
        &self,
        contents: &[u8],
        fingerprint: &str,
        now: DateTime<Utc>,
        last_seen: Option<DateTime<Utc>>,
    ) -> Result<ActivationClaims, ClientError> {
        let file = crate::offline::CertificateFile::parse(contents)
            .ok_or(ClientError::NotACertificateFile)?;
        self.verify_certificate(&file.certificate, fingerprint, now, last_seen)
    }

    /// Checks the receipt of `POST /v1/validate`: signed by the server, for the
    /// `nonce` the app sent, issued at most `max_age` ago.
    pub fn verify_receipt(
        &self,
        receipt: &str,
        nonce: &str,
        now: DateTime<Utc>,
        max_age: Duration,
    ) -> Result<ValidationReceipt, ClientError> {
        let claims: ValidationReceipt = self.open(receipt, VALIDATION_KIND)?;
        if claims.nonce != nonce {
            return Err(ClientError::NonceMismatch);
        }
        let at = parse_time(&claims.iat)?;
        check_clock(now, [at])?;
        if now - at > max_age {
            return Err(ClientError::StaleReceipt { at });
        }
        Ok(claims)
    }

    /// Verifies the signature with the key the footer names, then reads claims of `kind`.
    fn open<T: Claims>(&self, token: &str, kind: &'static str) -> Result<T, ClientError> {
        let payload = self.verified_payload(token.trim())?;
        // UTF-8 checked once for the whole payload, not string by string.
        let payload = std::str::from_utf8(&payload).map_err(|_| ClientError::BadClaims)?;
        // One pass into the claims; only when they do not read is the token read
        // again for its kind and issuer, so that a token of another kind or issuer
        // is named as such rather than as unreadable claims.
        match serde_json::from_str::<T>(payload) {
            Ok(claims) => {
                let (found_kind, found_iss) = claims.head();
                self.check_head(kind, found_kind, found_iss)?;
                Ok(claims)
            }
            Err(_) => {
                let head: ClaimsHead<'_> =
                    serde_json::from_str(payload).map_err(|_| ClientError::BadClaims)?;
                self.check_head(kind, &head.kind, &head.iss)?;
                Err(ClientError::BadClaims)
            }
        }
    }

    /// The payload of `token` once its signature holds under the key its footer names.
    fn verified_payload(&self, token: &str) -> Result<Vec<u8>, ClientError> {
        // The footers of the keys held, compared as they stand in the token: the
        // footer the server writes is found without decoding or parsing it.
        for k in &self.keys {
            if let Some(body) = paseto::split_with_footer(token, &k.footer_b64) {
                let body = body.map_err(|_| ClientError::Malformed)?;
                return paseto::verify_body(&k.key, body, &k.footer, b"")
                    .map_err(|_| ClientError::BadSignature);
            }
        }
        let parts = paseto::split(token).map_err(|_| ClientError::Malformed)?;
        let footer: Footer =
            serde_json::from_slice(&parts.footer).map_err(|_| ClientError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == footer.kid)
            .ok_or_else(|| ClientError::UnknownKey {
                kid: footer.kid.clone(),
            })?;
        parts
            .verify(&key.key, b"")
            .map_err(|_| ClientError::BadSignature)
    }

    /// The kind must be `kind`, and the issuer the one required, if any.
    fn check_head(&self, kind: &'static str, found: &str, iss: &str) -> Result<(), ClientError> {
        if found != kind {
            return Err(ClientError::WrongKind {
                expected: kind,
                found: found.to_owned(),
            });
        }
        if let Some(expected) = &self.issuer {
            if iss != expected.as_str() {
                return Err(ClientError::WrongIssuer {
                    expected: expected.clone(),
                    found: iss.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Claims that carry a kind and an issuer.
trait Claims: DeserializeOwned {
    /// The `kind` and `iss` claims.
    fn head(&self) -> (&str, &str);
}

impl Claims for LicenseClaims {
    fn head(&self) -> (&str, &str) {
        (&self.kind, &self.iss)
    }
}

impl Claims for ActivationClaims {
    fn head(&self) -> (&str, &str) {
        (&self.kind, &self.iss)
    }
}

impl Claims for ValidationReceipt {
    fn head(&self) -> (&str, &str) {
        (&self.kind, &self.iss)
    }
}

/// The two claims every token of keyclerk's carries, read alone when the rest does not read.
#[derive(serde::Deserialize)]
struct ClaimsHead<'a> {
    #[serde(borrow, default)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    iss: std::borrow::Cow<'a, str>,
}

/// The fingerprint to send for a machine: hex SHA-256 of the app's name and the
/// machine id. The raw id never leaves the machine, and two apps on one machine
/// send different fingerprints.
pub fn machine_fingerprint(app: &str, machine_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"keyclerk-fingerprint\0");
    h.update(app.as_bytes());
    h.update(b"\0");
    h.update(machine_id.trim().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn at(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    struct Issuer {
        key: SigningKey,
        kid: String,
    }

    impl Issuer {
        fn new(seed: u8) -> Self {
            let key = SigningKey::from_bytes(&[seed; 32]);
            let kid = paserk::pid(key.verifying_key().as_bytes()).unwrap();
            Self { key, kid }
        }

        fn public(&self) -> String {
            paserk::public(self.key.verifying_key().as_bytes()).unwrap()
        }

        fn sign(&self, claims: &serde_json::Value) -> String {
            let footer = serde_json::to_vec(&Footer {
                kid: self.kid.clone(),
            })
            .unwrap();
            paseto::sign(&self.key, claims.to_string().as_bytes(), &footer, b"")
        }
    }

    fn certificate(issuer: &Issuer, fingerprint: &str) -> String {
        issuer.sign(&serde_json::json!({
            "kind": "activation", "iss": "https://licenses.example.com", "sub": "act_1",
            "license": "lic_1", "product": "photo-pro", "fingerprint": fingerprint,
            "iat": "2026-03-01T00:00:00Z", "exp": "2026-03-31T00:00:00Z", "entitlements": []
        }))
    }

    #[test]
    fn a_certificate_is_good_on_its_machine_until_the_lease_ends() {
        let issuer = Issuer::new(1);
        let v = Verifier::new([issuer.public()]).unwrap();
        let cert = certificate(&issuer, "fp-a");
        let claims = v
            .verify_certificate(&cert, "fp-a", at("2026-03-10T00:00:00Z"), None)
            .unwrap();
        assert_eq!(claims.license, "lic_1");
        assert_eq!(
            v.verify_certificate(&cert, "fp-a", at("2026-03-31T00:00:00Z"), None),
            Err(ClientError::LeaseExpired {
                at: at("2026-03-31T00:00:00Z")
            })
        );
    }

    #[test]
    fn each_failure_has_its_own_error() {
        let issuer = Issuer::new(1);
        let stranger = Issuer::new(2);
        let v = Verifier::new([issuer.public()]).unwrap();
        let now = at("2026-03-10T00:00:00Z");
        let cert = certificate(&issuer, "fp-a");
        let mut flipped = cert.clone().into_bytes();
        flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let license_key = issuer.sign(&serde_json::json!({
            "kind": "license", "iss": "x", "sub": "lic_1", "product": "p",
            "iat": "2026-01-01T00:00:00Z", "seats": 1, "entitlements": []
        }));
        for (case, result, expected) in [
            (
                "copied to another machine",
                v.verify_certificate(&cert, "fp-b", now, None),
                ClientError::FingerprintMismatch,
            ),
            (
                "altered",
                v.verify_certificate(&flipped, "fp-a", now, None),
                ClientError::BadSignature,
            ),
            (
                "signed by a stranger",
                v.verify_certificate(&certificate(&stranger, "fp-a"), "fp-a", now, None),
                ClientError::UnknownKey {
                    kid: stranger.kid.clone(),
                },
            ),
            (
                "a license key offered as a certificate",
                v.verify_certificate(&license_key, "fp-a", now, None),
                ClientError::WrongKind {
                    expected: "activation",
                    found: "license".into(),
                },
            ),
            (
                "clock set back before the last start",
                v.verify_certificate(&cert, "fp-a", now, Some(at("2026-03-20T00:00:00Z"))),
                ClientError::ClockSetBack {
                    now,
                    seen: at("2026-03-20T00:00:00Z"),
                },
            ),
            (
                "clock set back before the certificate was issued",
                v.verify_certificate(&cert, "fp-a", at("2026-02-01T00:00:00Z"), None),
                ClientError::ClockSetBack {
                    now: at("2026-02-01T00:00:00Z"),
                    seen: at("2026-03-01T00:00:00Z"),
                },
            ),
            (
                "garbage",
                v.verify_certificate("v4.public.abc", "fp-a", now, None),
                ClientError::Malformed,
            ),
        ] {
            assert_eq!(result.unwrap_err(), expected, "{case}");
        }
        assert!(
            v.verify_certificate(&cert, "fp-a", now, Some(now + Duration::seconds(60)))
                .is_ok(),
            "a minute of drift is not a clock set back"
        );
    }

    #[test]
    fn license_keys_check_kind_issuer_and_expiry() {
        let issuer = Issuer::new(1);
        let v = Verifier::new([issuer.public()])
            .unwrap()
            .require_issuer("https://licenses.example.com");
        let key = issuer.sign(&serde_json::json!({
            "kind": "license", "iss": "https://licenses.example.com", "sub": "lic_1",
            "product": "p", "iat": "2026-01-01T00:00:00Z", "exp": "2027-01-01T00:00:00Z",
            "seats": 1, "entitlements": ["raw"]
        }));
        let claims = v.verify_license(&key, at("2026-06-01T00:00:00Z")).unwrap();
        assert_eq!(claims.entitlements, ["raw"]);
        assert_eq!(
            v.verify_license(&key, at("2027-01-01T00:00:00Z")),
            Err(ClientError::LicenseExpired {
                at: at("2027-01-01T00:00:00Z")
            })
        );
        let other = issuer.sign(&serde_json::json!({
            "kind": "license", "iss": "https://evil.example", "sub": "lic_1",
            "product": "p", "iat": "2026-01-01T00:00:00Z", "seats": 1, "entitlements": []
        }));
        assert!(matches!(
            v.verify_license(&other, at("2026-06-01T00:00:00Z")),
            Err(ClientError::WrongIssuer { .. })
        ));
        assert_eq!(
            v.verify_license("7K3QF-X9M2P-4TVWR-8HJCN-6YBDA", at("2026-06-01T00:00:00Z")),
            Err(ClientError::NotOfflineVerifiable)
        );
    }

    #[test]
    fn a_footer_written_another_way_still_names_its_key() {
        let issuer = Issuer::new(1);
        let v = Verifier::new([issuer.public()]).unwrap();
        let claims = serde_json::json!({
            "kind": "license", "iss": "x", "sub": "lic_1", "product": "p",
            "iat": "2026-01-01T00:00:00Z", "seats": 1, "entitlements": []
        });
        let spaced = format!("{{ \"kid\": \"{}\" }}", issuer.kid);
        let key = paseto::sign(
            &issuer.key,
            claims.to_string().as_bytes(),
            spaced.as_bytes(),
            b"",
        );
        let now = at("2026-06-01T00:00:00Z");
        assert_eq!(v.verify_license(&key, now).unwrap().sub, "lic_1");
        let (token, footer) = key.rsplit_once('.').unwrap();
        for (case, altered, expected) in [
            (
                "the footer of the token swapped for the usual one",
                format!("{token}.{}", v.keys[0].footer_b64),
                ClientError::BadSignature,
            ),
            (
                "a part more before the usual footer",
                format!("{token}.{footer}.{}", v.keys[0].footer_b64),
                ClientError::Malformed,
            ),
            (
                "no body before the usual footer",
                format!("v4.public..{}", v.keys[0].footer_b64),
                ClientError::Malformed,
            ),
        ] {
            assert_eq!(v.verify_license(&altered, now), Err(expected), "{case}");
        }
    }

    #[test]
    fn claims_of_the_right_kind_that_do_not_read_are_bad_claims() {
        let issuer = Issuer::new(1);
        let v = Verifier::new([issuer.public()])
            .unwrap()
            .require_issuer("x");
        let now = at("2026-06-01T00:00:00Z");
        for (case, claims, expected) in [
            (
                "no seats",
                serde_json::json!({"kind": "license", "iss": "x", "sub": "lic_1",
                    "product": "p", "iat": "2026-01-01T00:00:00Z", "entitlements": []}),
                ClientError::BadClaims,
            ),
            (
                "no seats, another issuer",
                serde_json::json!({"kind": "license", "iss": "y", "sub": "lic_1",
                    "product": "p", "iat": "2026-01-01T00:00:00Z", "entitlements": []}),
                ClientError::WrongIssuer {
                    expected: "x".into(),
                    found: "y".into(),
                },
            ),
            (
                "no kind",
                serde_json::json!({"iss": "x"}),
                ClientError::WrongKind {
                    expected: "license",
                    found: String::new(),
                },
            ),
            (
                "not an object",
                serde_json::json!([1, 2]),
                ClientError::BadClaims,
            ),
        ] {
            assert_eq!(
                v.verify_license(&issuer.sign(&claims), now),
                Err(expected),
                "{case}"
            );
        }
    }

    #[test]
    fn a_receipt_must_carry_the_nonce_sent_and_be_fresh() {
        let issuer = Issuer::new(1);
        let v = Verifier::new([issuer.public()]).unwrap();
        let receipt = issuer.sign(&serde_json::json!({
            "kind": "validation", "iss": "x", "nonce": "n-1", "code": "VALID", "valid": true,
            "license": "lic_1", "iat": "2026-03-10T00:00:00Z"
        }));
        let now = at("2026-03-10T00:00:30Z");
        let max = Duration::minutes(5);
        assert!(v.verify_receipt(&receipt, "n-1", now, max).unwrap().valid);
        assert_eq!(
            v.verify_receipt(&receipt, "n-2", now, max),
            Err(ClientError::NonceMismatch)
        );
        assert!(matches!(
            v.verify_receipt(&receipt, "n-1", at("2026-03-11T00:00:00Z"), max),
            Err(ClientError::StaleReceipt { .. })
        ));
    }

    #[test]
    fn fingerprints_hide_the_machine_id_and_differ_per_app() {
        let a = machine_fingerprint("photo-pro", "4c4c4544-0042");
        assert_eq!(a.len(), 64);
        assert!(!a.contains("4c4c4544"));
        assert_ne!(a, machine_fingerprint("font-pack", "4c4c4544-0042"));
        assert_eq!(a, machine_fingerprint("photo-pro", "4c4c4544-0042\n"));
    }

    #[test]
    fn public_keys_must_be_k4_public() {
        assert_eq!(
            Verifier::new(["k3.public.AAAA"]).unwrap_err(),
            ClientError::InvalidPublicKey
        );
        let doc =
            serde_json::json!({"keys": [{"kid": "x", "public_key": Issuer::new(3).public()}]});
        let v = Verifier::from_keys_document(&doc.to_string()).unwrap();
        assert_eq!(v.key_ids().collect::<Vec<_>>(), [Issuer::new(3).kid]);
    }
}
