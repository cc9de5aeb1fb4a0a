//! Staff accounts of the support console: roles, emails, the password rule, TOTP
//! (RFC 6238), one-time secrets (setup links, session ids) and session time-outs.

use std::fmt;

use hmac::{KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::audit::AuditEvent;
use crate::domain::short_key::crockford_encode;
use crate::domain::time::Timestamp;

/// What a staff member may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// Support agents: find, read, remedies, claims.
    Support,
    /// Everything support does, and staff accounts, API tokens, the audit chain.
    Admin,
}

impl StaffRole {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Support => "support",
            Self::Admin => "admin",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Support, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Whether this role may open a page that asks for `needed`.
    pub fn may(self, needed: StaffRole) -> bool {
        self == Self::Admin || needed == Self::Support
    }
}

/// Longest email address kept (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// A staff member's email, trimmed and lower-cased: the account's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaffEmail(String);

impl StaffEmail {
    /// `local@domain` with printable characters, at most [`MAX_EMAIL`] long.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_lowercase();
        let (local, domain) = s.split_once('@')?;
        let printable = s.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii());
        let ok = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && s.len() <= MAX_EMAIL
            && printable
            && !s.chars().any(char::is_control);
        ok.then_some(Self(s))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StaffEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fewest characters a password may have (NIST SP 800-63B asks for 8 at least; the
/// console guards every customer's licenses, so more).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Most characters a password may have (the hash costs the same whatever the
/// length; the limit only bounds the work of reading the form).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Common passwords of 12 characters or more, one a line, lower case: a password
/// that is one of them, ignoring case, is refused.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Why a password is refused, in words for the person choosing it; `None` if it is
/// acceptable for `email`.
pub fn password_problem(password: &str, email: &StaffEmail) -> Option<&'static str> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Some("a password needs at least 12 characters");
    }
    if chars > MAX_PASSWORD_CHARS {
        return Some("a password may have at most 256 characters");
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.lines().any(|p| p.trim() == lower) {
        return Some("this password is on a list of common passwords; choose another");
    }
    let first = lower.chars().next();
    if lower.chars().all(|c| Some(c) == first) {
        return Some("a password of one repeated character is too easy to guess");
    }
    let local = email.as_str().split('@').next().unwrap_or("");
    if lower.contains(email.as_str()) || (local.len() >= 4 && lower == local) {
        return Some("a password must not be the email address");
    }
    None
}

/// A one-time secret: a setup link's token or a session id (256 random bits, in
/// lower-case base32). Only its SHA-256 is stored. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffSecret(String);

impl StaffSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(crockford_encode(&bytes, 52).to_ascii_lowercase())
    }

    /// Wraps what a browser presented.
    pub fn from_presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The secret, for the link or the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the secret: what the database keeps.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for StaffSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaffSecret(..)")
    }
}

/// Compares two strings in constant time (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// How long a setup link works.
pub const SETUP_VALID_HOURS: i64 = 24;

/// A staff account as stored (never with its password hash or TOTP secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffUser {
    /// `usr_…`
    pub id: String,
    /// Its email: the name to sign in with.
    pub email: String,
    /// What it may do.
    pub role: StaffRole,
    /// Whether a password is set (else only the setup link opens it).
    pub has_password: bool,
    /// Whether TOTP is set up.
    pub has_totp: bool,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was disabled, if it was.
    pub disabled_at: Option<Timestamp>,
    /// The last sign-in.
    pub last_sign_in_at: Option<Timestamp>,
}

impl StaffUser {
    /// The actor name of what this staff member does (`user:ann@example.com`).
    pub fn actor(&self) -> crate::domain::audit::Actor {
        crate::domain::audit::Actor::User {
            email: self.email.clone(),
        }
    }
}

/// What signing in needs of an account, read by email.
#[derive(Clone)]
pub struct Credentials {
    /// The account.
    pub user: StaffUser,
    /// The Argon2id PHC string, if a password is set.
    pub password_hash: Option<String>,
    /// The TOTP secret, if set up.
    pub totp_secret: Option<Vec<u8>>,
    /// The last TOTP time step accepted (a code is good once).
    pub totp_last_step: Option<i64>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A staff account to insert.
#[derive(Clone)]
pub struct NewStaffUser {
    /// `usr_…`
    pub id: String,
    /// Its email.
    pub email: StaffEmail,
    /// Its role.
    pub role: StaffRole,
    /// The Argon2id hash of a password given at once (`--password-stdin`).
    pub password_hash: Option<String>,
    /// The hash of the setup link's secret, when no password was given.
    pub setup: Option<Setup>,
    /// Now.
    pub created_at: Timestamp,
}

impl fmt::Debug for NewStaffUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewStaffUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl NewStaffUser {
    /// The account as it will be stored, and the event of its creation.
    pub fn created(&self) -> (StaffUser, AuditEvent) {
        (
            StaffUser {
                id: self.id.clone(),
                email: self.email.as_str().to_owned(),
                role: self.role,
                has_password: self.password_hash.is_some(),
                has_totp: false,
                created_at: self.created_at,
                disabled_at: None,
                last_sign_in_at: None,
            },
            AuditEvent::StaffUserCreated {
                user: self.id.clone(),
                email: self.email.as_str().to_owned(),
                role: self.role.as_str().to_owned(),
            },
        )
    }
}

/// A setup link: the hash of its secret and when it stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// SHA-256 of the link's secret.
    pub hash: [u8; 32],
    /// When it stops working.
    pub expires_at: Timestamp,
}

impl Setup {
    /// A fresh link made `now`, and its secret (to print once).
    pub fn generate(now: Timestamp) -> (Self, StaffSecret) {
        let secret = StaffSecret::generate();
        (
            Self {
                hash: secret.hash(),
                expires_at: now + chrono::Duration::hours(SETUP_VALID_HOURS),
            },
            secret,
        )
    }
}

/// A signed-in session as stored (its id only as a hash).
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie's value.
    pub id_hash: [u8; 32],
    /// The staff member.
    pub user_id: String,
    /// The token every state-changing request must carry.
    pub csrf_token: String,
    /// Sign-in time (the absolute time-out counts from it).
    pub created_at: Timestamp,
    /// The last request (the idle time-out counts from it).
    pub last_seen_at: Timestamp,
    /// When the password was last asked again (refund, credit).
    pub reauth_at: Option<Timestamp>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .finish_non_exhaustive()
    }
}

/// The console's time-outs (`[console]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: chrono::Duration,
    /// A session this old ends, however busy.
    pub absolute: chrono::Duration,
}

/// Why a session no longer works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Unused longer than the idle time-out.
    Idle,
    /// Older than the absolute time-out.
    Absolute,
}

/// How often a session's last-seen time is written (a request within this of the
/// last write changes nothing stored).
pub const TOUCH_EVERY_SECS: i64 = 60;

impl Session {
    /// A new session for `user_id` at `now`, and the secret for its cookie.
    pub fn start(user_id: &str, now: Timestamp) -> (Self, StaffSecret) {
        let secret = StaffSecret::generate();
        (
            Self {
                id_hash: secret.hash(),
                user_id: user_id.to_owned(),
                csrf_token: StaffSecret::generate().expose().to_owned(),
                created_at: now,
                last_seen_at: now,
                reauth_at: None,
            },
            secret,
        )
    }

    /// Whether the session has ended by `now`, and why.
    pub fn ended(&self, limits: SessionLimits, now: Timestamp) -> Option<SessionEnd> {
        if now >= self.created_at + limits.absolute {
            Some(SessionEnd::Absolute)
        } else if now >= self.last_seen_at + limits.idle {
            Some(SessionEnd::Idle)
        } else {
            None
        }
    }

    /// Whether a request at `now` should write the last-seen time.
    pub fn needs_touch(&self, now: Timestamp) -> bool {
        (now - self.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS
    }

    /// Whether the password was asked again within `within` before `now`.
    pub fn reauthenticated(&self, within: chrono::Duration, now: Timestamp) -> bool {
        self.reauth_at.is_some_and(|at| now < at + within)
    }
}

/// TOTP parameters keyclerk uses (what every authenticator app reads by default):
/// HMAC-SHA-1, 30-second steps, 6 digits.
pub const TOTP_STEP_SECS: i64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: u32 = 6;
/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;

/// The HOTP value (RFC 4226 §5.3) of `counter` with HMAC-SHA-1, as `digits` digits.
pub fn hotp_sha1(secret: &[u8], counter: u64, digits: u32) -> String {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let code = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let modulus = 10u64.pow(digits);
    format!(
        "{:0width$}",
        u64::from(code) % modulus,
        width = digits as usize
    )
}

/// The TOTP time step (RFC 6238 §4) of Unix time `unix`.
pub fn totp_step(unix: i64) -> i64 {
    unix.div_euclid(TOTP_STEP_SECS)
}

/// The TOTP code (RFC 6238) of `secret` at Unix time `unix`, HMAC-SHA-1.
pub fn totp_sha1(secret: &[u8], unix: i64, digits: u32) -> String {
    hotp_sha1(secret, u64::try_from(totp_step(unix)).unwrap_or(0), digits)
}

/// The time step a presented `code` matches at `now`, allowing one step of clock
/// drift either way; never a step at or before `last_step` (a code is good once).
pub fn check_totp(
    secret: &[u8],
    code: &str,
    now: Timestamp,
    last_step: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = totp_step(now.timestamp());
    let mut found = None;
    for step in [now_step - 1, now_step, now_step + 1] {
        let expected = hotp_sha1(secret, u64::try_from(step).unwrap_or(0), TOTP_DIGITS);
        // Every candidate is compared, in constant time, whichever matches.
        if same_secret(&expected, &code) && last_step.is_none_or(|last| step > last) {
            found = Some(step);
        }
    }
    found
}

/// A new random TOTP secret.
pub fn new_totp_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; TOTP_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Reads RFC 4648 base32 (any case, spaces and padding ignored).
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub fn otpauth_uri(issuer: &str, email: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
        enc(issuer),
        enc(email),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_unix;

    /// RFC 6238 Appendix B: the SHA-1 column, with the 20-byte ASCII seed
    /// "12345678901234567890" and 8 digits.
    #[test]
    fn totp_matches_the_rfc_6238_test_vectors_for_sha1() {
        let seed = b"12345678901234567890";
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (unix, code) in vectors {
            assert_eq!(totp_sha1(seed, unix, 8), code, "T = {unix}");
        }
    }

    /// RFC 4226 Appendix D: HOTP of the same seed, counters 0 to 9, 6 digits.
    #[test]
    fn hotp_matches_the_rfc_4226_test_vectors() {
        let seed = b"12345678901234567890";
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                hotp_sha1(seed, counter as u64, 6),
                *code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn a_totp_code_is_good_within_one_step_of_drift_and_only_once() {
        let seed = b"12345678901234567890";
        let now = from_unix(1_111_111_111);
        let code = totp_sha1(seed, now.timestamp(), 6);
        let step = check_totp(seed, &code, now, None).expect("the current code");
        assert_eq!(step, totp_step(now.timestamp()));
        assert_eq!(check_totp(seed, &code, now, Some(step)), None, "replayed");
        let earlier = totp_sha1(seed, now.timestamp() - 30, 6);
        assert!(
            check_totp(seed, &earlier, now, None).is_some(),
            "one step late"
        );
        let old = totp_sha1(seed, now.timestamp() - 90, 6);
        assert_eq!(check_totp(seed, &old, now, None), None, "three steps late");
        for bad in ["", "12345", "1234567", "abcdef"] {
            assert_eq!(check_totp(seed, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_follows_rfc_4648_and_reads_back() {
        // RFC 4648 §10, without padding.
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6==="), Some(b"foo".to_vec()));
        assert_eq!(base32_decode("MZ1"), None);
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_account_and_secret() {
        let uri = otpauth_uri("keyclerk", "ann@example.com", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/keyclerk:ann@example.com?secret=MZXW6YTBOI&issuer=keyclerk\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn a_password_is_refused_when_short_common_repeated_or_the_email() {
        let email = StaffEmail::parse("Ann.Smith@Example.com").unwrap();
        assert_eq!(email.as_str(), "ann.smith@example.com");
        let cases = [
            ("short", "eleven char", true),
            ("common", "Password1234", true),
            ("common, upper case", "QWERTYUIOPASDFGH", true),
            ("repeated", "aaaaaaaaaaaaaa", true),
            ("the email", "ann.smith@example.com", true),
            ("the local part", "ann.smith", true),
            ("a passphrase", "plum tractor velvet orbit", false),
            ("twelve mixed", "v9#Lq2!mZr7w", false),
        ];
        for (case, password, refused) in cases {
            assert_eq!(
                password_problem(password, &email).is_some(),
                refused,
                "{case}: {password}"
            );
        }
    }

    #[test]
    fn an_email_is_trimmed_and_lower_cased_and_needs_an_at() {
        assert_eq!(
            StaffEmail::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "@example.com", "ann@", "a@b@c", "a b@c", "a\n@b"] {
            assert!(StaffEmail::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_session_ends_after_the_idle_and_the_absolute_time_outs() {
        let start = from_unix(1_700_000_000);
        let limits = SessionLimits {
            idle: chrono::Duration::minutes(30),
            absolute: chrono::Duration::hours(8),
        };
        let (mut session, _) = Session::start("usr_1", start);
        let min = chrono::Duration::minutes;
        assert_eq!(session.ended(limits, start + min(29)), None);
        assert_eq!(
            session.ended(limits, start + min(30)),
            Some(SessionEnd::Idle)
        );
        // Busy all day: each request keeps it alive until the eighth hour.
        session.last_seen_at = start + min(7 * 60 + 50);
        assert_eq!(session.ended(limits, start + min(7 * 60 + 59)), None);
        assert_eq!(
            session.ended(limits, start + min(8 * 60)),
            Some(SessionEnd::Absolute)
        );
    }

    #[test]
    fn a_role_may_open_its_own_pages_and_an_admin_every_page() {
        assert!(StaffRole::Support.may(StaffRole::Support));
        assert!(!StaffRole::Support.may(StaffRole::Admin));
        assert!(StaffRole::Admin.may(StaffRole::Support));
        assert!(StaffRole::Admin.may(StaffRole::Admin));
    }

    #[test]
    fn a_secret_is_random_and_its_debug_hides_it() {
        let (a, b) = (StaffSecret::generate(), StaffSecret::generate());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 52);
        assert_eq!(format!("{a:?}"), "StaffSecret(..)");
    }
}
