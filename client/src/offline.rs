//! Offline activation, for a machine without internet.
//!
//! 1. The app makes an [`ActivationRequest`] (its license key, this machine's
//!    fingerprint, a name) and shows its [`code`](ActivationRequest::code): one
//!    line of Crockford base32 that starts with `KCA`, with a checksum, so that a
//!    code copied in part or mistyped is refused instead of activating something
//!    else. [`ActivationRequest::page_url`] makes the link to the customer page
//!    with the code in its fragment (never sent to a server), for a QR code.
//! 2. The customer pastes the code on the customer page (`/my/offline`) from any
//!    device; keyclerk activates exactly as `POST /v1/activations` does (a seat,
//!    the same rules and audit events) and hands back a [`CertificateFile`].
//! 3. The app reads the file with [`Verifier::verify_certificate_file`]: it trusts
//!    only the signed certificate inside, checked against the keys it embeds.
//!
//! [`Verifier::verify_certificate_file`]: crate::Verifier::verify_certificate_file

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::base32;

/// What every request code starts with.
pub const CODE_PREFIX: &str = "KCA";
/// The format of the codes this crate writes (the first byte of the payload).
const VERSION: u8 = 1;
/// Bytes of SHA-256 that end the payload: a damaged code is refused, not misread.
const CHECK_BYTES: usize = 5;
const CHECK_CONTEXT: &[u8] = b"keyclerk-activation-request\0";
const PASETO_PREFIX: &str = "v4.public.";

// The flags byte: how each field is written.
/// The fingerprint is 64 lower-case hex digits, carried as its 32 bytes.
const HEX_FINGERPRINT: u8 = 1;
/// The key is a `v4.public` token, carried as its decoded body.
const PASETO_KEY: u8 = 2;
/// The token has a footer (carried decoded).
const FOOTER: u8 = 4;
/// A machine name follows.
const NAME: u8 = 8;
/// A platform follows.
const PLATFORM: u8 = 16;
const KNOWN_FLAGS: u8 = HEX_FINGERPRINT | PASETO_KEY | FOOTER | NAME | PLATFORM;

/// Why a request code cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not a request code at all.
    #[error("not an activation request code (those start with {CODE_PREFIX})")]
    NotACode,
    /// Copied in part or mistyped: the checksum does not match.
    #[error("the request code is damaged or incomplete; copy it again, whole")]
    Damaged,
    /// Written by a newer app, in a format this version does not read.
    #[error("the request code is of format {0}, which this version does not read")]
    UnknownFormat(u8),
    /// A field longer than a code can carry.
    #[error("the {0} is too long for a request code")]
    TooLong(&'static str),
}

/// What a machine without internet asks for: a seat of the license of
/// `license_key` for the machine of `fingerprint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRequest {
    /// The license key as the customer has it.
    pub license_key: String,
    /// The machine's fingerprint ([`machine_fingerprint`](crate::machine_fingerprint)).
    pub fingerprint: String,
    /// A name for the machine, shown to the customer and support.
    pub name: Option<String>,
    /// The platform (`windows`, `macos`, `linux`, ...).
    pub platform: Option<String>,
}

impl ActivationRequest {
    /// A request for `license_key` on the machine of `fingerprint`.
    pub fn new(license_key: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        Self {
            license_key: license_key.into().trim().to_owned(),
            fingerprint: fingerprint.into(),
            name: None,
            platform: None,
        }
    }

    /// The same request with a machine name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same request with a platform.
    pub fn with_platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// The code to show: `KCA` and Crockford base32 of the version, the fields
    /// (a `v4.public` key and a hex fingerprint in their binary form) and a
    /// checksum.
    pub fn code(&self) -> Result<String, CodeError> {
        let mut flags = 0u8;
        let mut out = vec![VERSION, 0];
        match hex32(&self.fingerprint) {
            Some(raw) => {
                flags |= HEX_FINGERPRINT;
                out.extend_from_slice(&raw);
            }
            None => put(&mut out, self.fingerprint.as_bytes(), "fingerprint")?,
        }
        match paseto_parts(&self.license_key) {
            Some((body, footer)) => {
                flags |= PASETO_KEY;
                put(&mut out, &body, "license key")?;
                if let Some(footer) = footer {
                    flags |= FOOTER;
                    put(&mut out, &footer, "license key")?;
                }
            }
            None => put(&mut out, self.license_key.as_bytes(), "license key")?,
        }
        if let Some(name) = &self.name {
            flags |= NAME;
            put(&mut out, name.as_bytes(), "machine name")?;
        }
        if let Some(platform) = &self.platform {
            flags |= PLATFORM;
            put(&mut out, platform.as_bytes(), "platform")?;
        }
        out[1] = flags;
        let check = checksum(&out);
        out.extend_from_slice(&check);
        Ok(format!("{CODE_PREFIX}{}", base32::encode(&out)))
    }

    /// Reads a code as the customer pasted or typed it: spaces, line breaks and
    /// dashes do not matter, nor does case.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let Some(payload) = compact
            .get(..CODE_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(CODE_PREFIX))
            .and_then(|_| compact.get(CODE_PREFIX.len()..))
        else {
            return Err(CodeError::NotACode);
        };
        let bytes = base32::decode(payload).ok_or(CodeError::Damaged)?;
        if bytes.len() < 2 + CHECK_BYTES {
            return Err(CodeError::Damaged);
        }
        let (body, check) = bytes.split_at(bytes.len() - CHECK_BYTES);
        if checksum(body) != check {
            return Err(CodeError::Damaged);
        }
        if body[0] != VERSION {
            return Err(CodeError::UnknownFormat(body[0]));
        }
        let flags = body[1];
        if flags & !KNOWN_FLAGS != 0 || (flags & FOOTER != 0 && flags & PASETO_KEY == 0) {
            return Err(CodeError::Damaged);
        }
        let mut r = Reader(&body[2..]);
        let fingerprint = if flags & HEX_FINGERPRINT != 0 {
            r.take(32)?.iter().map(|b| format!("{b:02x}")).collect()
        } else {
            r.text()?
        };
        let license_key = if flags & PASETO_KEY != 0 {
            let mut key = format!("{PASETO_PREFIX}{}", URL_SAFE_NO_PAD.encode(r.field()?));
            if flags & FOOTER != 0 {
                key.push('.');
                key.push_str(&URL_SAFE_NO_PAD.encode(r.field()?));
            }
            key
        } else {
            r.text()?
        };
        let name = (flags & NAME != 0).then(|| r.text()).transpose()?;
        let platform = (flags & PLATFORM != 0).then(|| r.text()).transpose()?;
        if !r.0.is_empty() {
            return Err(CodeError::Damaged);
        }
        Ok(Self {
            license_key,
            fingerprint,
            name,
            platform,
        })
    }

    /// The customer page's offline activation with this code filled in:
    /// `{server}/my/offline#KCA…`. The code is in the fragment, which a browser
    /// does not send, so the key stays out of every server's logs.
    pub fn page_url(&self, server: &str) -> Result<String, CodeError> {
        Ok(format!(
            "{}/my/offline#{}",
            server.trim_end_matches('/'),
            self.code()?
        ))
    }
}

/// A field: its length (two bytes, big-endian) and its bytes.
fn put(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), CodeError> {
    let len = u16::try_from(bytes.len()).map_err(|_| CodeError::TooLong(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn checksum(body: &[u8]) -> [u8; CHECK_BYTES] {
    let digest = Sha256::new()
        .chain_update(CHECK_CONTEXT)
        .chain_update(body)
        .finalize();
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&digest[..CHECK_BYTES]);
    out
}

/// The 32 bytes of 64 lower-case hex digits (the form the crate's fingerprints
/// take); `None` for any other text, which the code carries as it is.
fn hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// The decoded body and footer of a `v4.public` token, when decoding and encoding
/// again gives back exactly the token (else the code carries the text).
fn paseto_parts(key: &str) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let rest = key.strip_prefix(PASETO_PREFIX)?;
    let mut parts = rest.split('.');
    let body = parts.next()?;
    let footer = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let body_bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    if URL_SAFE_NO_PAD.encode(&body_bytes) != body {
        return None;
    }
    let footer_bytes = match footer {
        Some(f) => {
            let bytes = URL_SAFE_NO_PAD.decode(f).ok()?;
            if URL_SAFE_NO_PAD.encode(&bytes) != f || bytes.is_empty() {
                return None;
            }
            Some(bytes)
        }
        None => None,
    };
    Some((body_bytes, footer_bytes))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodeError> {
        if self.0.len() < n {
            return Err(CodeError::Damaged);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<&'a [u8], CodeError> {
        let len = self.take(2)?;
        let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
        self.take(n)
    }

    fn text(&mut self) -> Result<String, CodeError> {
        let bytes = self.field()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodeError::Damaged)
    }
}

/// The `format` of a certificate file.
pub const CERTIFICATE_FILE_FORMAT: &str = "keyclerk-certificate";

/// The file the customer page hands out for an offline activation: the signed
/// certificate and, for people reading the file, what it is for. An app trusts
/// only `certificate`, after [`Verifier::verify_certificate`](crate::Verifier::verify_certificate)
/// (the other fields are not signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateFile {
    /// Always [`CERTIFICATE_FILE_FORMAT`].
    pub format: String,
    /// The file's format version (1).
    pub version: u32,
    /// The activation certificate (a `v4.public` token).
    pub certificate: String,
    /// The license's id.
    pub license: String,
    /// The activation's id.
    pub activation: String,
    /// The product.
    pub product: String,
    /// The machine's name, if the request gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// When the lease of the certificate ends (RFC 3339): before then, make a new
    /// request code (the same seat, a fresh certificate).
    pub lease_expires_at: String,
}

impl CertificateFile {
    /// Reads a certificate file; `None` for anything else.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let file: Self = serde_json::from_slice(bytes).ok()?;
        (file.format == CERTIFICATE_FILE_FORMAT && file.version == 1).then_some(file)
    }

    /// The file's contents.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// A file name for it: product and activation, safe on every system.
    pub fn file_name(&self) -> String {
        let safe: String = format!("{}-{}", self.product, self.activation)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("keyclerk-certificate-{safe}.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "v4.public.eyJraW5kIjoibGljZW5zZSIsInN1YiI6ImxpY18xIn0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.eyJraWQiOiJrNC5waWQuYWJjIn0";

    fn request() -> ActivationRequest {
        ActivationRequest::new(KEY, crate::machine_fingerprint("app", "machine-1"))
            .with_name("Studio PC")
            .with_platform("windows")
    }

    #[test]
    fn a_code_reads_back_as_the_request() {
        let r = request();
        let code = r.code().unwrap();
        assert!(code.starts_with("KCA"));
        assert_eq!(ActivationRequest::parse(&code).unwrap(), r);
        // Binary fields at 5 bits a character (285 characters here, for a key
        // of 162): a quarter shorter than the same fields as text would be.
        let as_text = (KEY.len() + 64 + "Studio PC".len() + "windows".len()) * 8 / 5;
        assert!(
            code.len() * 4 < as_text * 3,
            "{} for a key of {}",
            code.len(),
            KEY.len()
        );
    }

    #[test]
    fn pasting_is_forgiving_about_case_spaces_line_breaks_and_dashes() {
        let code = request().code().unwrap();
        let mangled: String = code
            .to_lowercase()
            .as_bytes()
            .chunks(30)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("-\n  ");
        assert_eq!(ActivationRequest::parse(&mangled).unwrap(), request());
    }

    #[test]
    fn short_keys_and_other_fingerprints_are_carried_as_text() {
        let r = ActivationRequest::new("04HMA-SW9NF-6YZZP-WQAC7-CN1JE", "My Machine ü");
        assert_eq!(ActivationRequest::parse(&r.code().unwrap()).unwrap(), r);
        // A token whose base64 is not canonical is kept exactly as written.
        let odd = ActivationRequest::new("v4.public.eyJ=", "fp");
        assert_eq!(ActivationRequest::parse(&odd.code().unwrap()).unwrap(), odd);
    }

    #[test]
    fn every_changed_character_and_every_cut_is_refused() {
        let code = request().code().unwrap();
        let alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        for i in CODE_PREFIX.len()..code.len() {
            let c = code.as_bytes()[i];
            let other = alphabet.bytes().find(|&a| a != c).unwrap();
            let mut changed = code.clone().into_bytes();
            changed[i] = other;
            let changed = String::from_utf8(changed).unwrap();
            assert!(
                ActivationRequest::parse(&changed).is_err(),
                "a change at {i} was read"
            );
        }
        for cut in CODE_PREFIX.len()..code.len() {
            assert!(
                ActivationRequest::parse(&code[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(
            ActivationRequest::parse("v4.public.abc"),
            Err(CodeError::NotACode)
        );
        assert_eq!(ActivationRequest::parse(""), Err(CodeError::NotACode));
    }

    #[test]
    fn a_newer_format_says_so() {
        let mut body = vec![2u8, 0];
        body.extend_from_slice(&checksum(&body));
        let code = format!("{CODE_PREFIX}{}", base32::encode(&body));
        assert_eq!(
            ActivationRequest::parse(&code),
            Err(CodeError::UnknownFormat(2))
        );
    }

    #[test]
    fn the_page_url_carries_the_code_in_its_fragment() {
        let url = request().page_url("https://licenses.example.com/").unwrap();
        let (page, code) = url.split_once('#').unwrap();
        assert_eq!(page, "https://licenses.example.com/my/offline");
        assert_eq!(ActivationRequest::parse(code).unwrap(), request());
    }

    #[test]
    fn a_certificate_file_reads_back_and_anything_else_is_refused() {
        let file = CertificateFile {
            format: CERTIFICATE_FILE_FORMAT.into(),
            version: 1,
            certificate: "v4.public.x".into(),
            license: "lic_1".into(),
            activation: "act_1".into(),
            product: "photo pro/2".into(),
            machine: Some("Studio".into()),
            lease_expires_at: "2027-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            CertificateFile::parse(file.to_json().as_bytes()),
            Some(file.clone())
        );
        assert_eq!(
            file.file_name(),
            "keyclerk-certificate-photo_pro_2-act_1.json"
        );
        assert!(CertificateFile::parse(b"{}").is_none());
        assert!(CertificateFile::parse(b"v4.public.x").is_none());
        let other = file.to_json().replace("keyclerk-certificate", "other");
        assert!(CertificateFile::parse(other.as_bytes()).is_none());
    }
}
