//! Downloads: the files a product lists, the signed links that hand them out, and
//! the byte ranges a download asks for.
//!
//! A link is `{license}.{file}.{expires}.{mac}`: the license id, the file's name in
//! unpadded base64url, the expiry in Unix seconds, and HMAC-SHA256 under the server's
//! download secret of the three (with a domain label and NUL separators, so that no
//! two claims sign the same bytes). Changing any part, or using a link for another
//! license or another file, breaks the MAC; a link past its expiry is refused even
//! though its MAC holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::domain::ids::is_id;
use crate::domain::payments::{hmac_sha256, same};
use crate::domain::time::Timestamp;

/// Minutes a link lives, unless `[downloads] link_minutes` says.
pub const DEFAULT_LINK_MINUTES: u32 = 15;
/// The longest life a link may be given (a day).
pub const MAX_LINK_MINUTES: u32 = 1440;
/// Longest file name.
pub const MAX_FILE_NAME_CHARS: usize = 128;
/// Most files one product lists.
pub const MAX_FILES_PER_PRODUCT: usize = 64;
/// Bytes of the download secret.
pub const SECRET_BYTES: usize = 32;

/// What the MAC of a link starts with: the purpose and the format's version.
const MAC_LABEL: &[u8] = b"keyclerk download link v1";

/// A file a product lists (`files = [{ name = "App.dmg", path = "app/App-1.2.dmg" }]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductFile {
    /// The name the customer sees and saves the file as (and the link names).
    pub name: String,
    /// Where it is, relative to `[downloads] dir`.
    pub path: String,
}

/// Whether `c` may be in a file name: letters, digits, and `. _ - + ( )` and space.
pub fn is_file_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-+() ".contains(c)
}

/// Whether `name` may name a file: 1-128 of [`is_file_name_char`], not starting with
/// a dot or a space and not ending with a space.
pub fn is_file_name(name: &str) -> bool {
    (1..=MAX_FILE_NAME_CHARS).contains(&name.chars().count())
        && name.chars().all(is_file_name_char)
        && !name.starts_with(['.', ' '])
        && !name.ends_with(' ')
}

/// Why a file's `path` cannot be used, if it cannot: it must be relative and stay
/// inside the files directory (no `..`, no `.`, no empty part).
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return Some("must be relative to the files directory (no leading /, no \\)");
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Some("leaves the files directory or has an empty, . or .. part");
    }
    None
}

/// Every problem with a product's file list, as messages naming the file.
pub fn files_problems(files: &[ProductFile]) -> Vec<String> {
    let mut out = Vec::new();
    if files.len() > MAX_FILES_PER_PRODUCT {
        out.push(format!("at most {MAX_FILES_PER_PRODUCT} files"));
    }
    for (i, f) in files.iter().enumerate() {
        if !is_file_name(&f.name) {
            out.push(format!(
                "`{}`: a file name is 1-{MAX_FILE_NAME_CHARS} of letters, digits, . _ - + ( ) and spaces, not starting with . or a space",
                f.name
            ));
        }
        if let Some(why) = path_problem(&f.path) {
            out.push(format!("`{}`: path `{}` {why}", f.name, f.path));
        }
        if files[..i].iter().any(|g| g.name == f.name) {
            out.push(format!("`{}`: listed twice", f.name));
        }
    }
    out
}

/// What a link grants: one file of one license until a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// The license.
    pub license_id: String,
    /// The file's name, as the product lists it.
    pub file: String,
    /// The end of the link's life.
    pub expires_at: Timestamp,
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Not a link keyclerk made: malformed, altered, or for another license or file.
    Invalid,
    /// A link keyclerk made, past its expiry.
    Expired,
}

/// Why a download is refused, beside the license's own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DownloadRefusal {
    /// Malformed, altered, or made for another license or file (403).
    #[error("this download link is not valid; ask for a new one")]
    LinkInvalid,
    /// Past its expiry (410).
    #[error("this download link has expired; ask for a new one")]
    LinkExpired,
    /// The product no longer lists the file, or it is gone from the files directory (404).
    #[error("the file of this link is no longer offered")]
    FileNotFound,
    /// The range asked for lies past the end of the file (416).
    #[error("the range asked for lies outside the file of {size} bytes")]
    RangeNotSatisfiable {
        /// The file's size.
        size: u64,
    },
}

impl DownloadRefusal {
    /// The stable code of the problem answer.
    pub fn code(self) -> &'static str {
        match self {
            Self::LinkInvalid => "download_link_invalid",
            Self::LinkExpired => "download_link_expired",
            Self::FileNotFound => "file_not_found",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
        }
    }
}

impl From<LinkError> for DownloadRefusal {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Invalid => Self::LinkInvalid,
            LinkError::Expired => Self::LinkExpired,
        }
    }
}

/// The server's secret for download links (its `Debug` prints nothing of it).
#[derive(Clone)]
pub struct LinkSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSecret(…)")
    }
}

impl LinkSecret {
    /// The secret of these bytes.
    pub fn new(bytes: [u8; SECRET_BYTES]) -> Self {
        Self(bytes)
    }

    /// A new random secret.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut b = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Self(b)
    }

    /// The secret's bytes, to store.
    pub fn expose(&self) -> &[u8; SECRET_BYTES] {
        &self.0
    }

    fn mac(&self, license_id: &str, file: &str, expires: i64) -> [u8; 32] {
        hmac_sha256(
            &self.0,
            &[
                MAC_LABEL,
                b"\0",
                license_id.as_bytes(),
                b"\0",
                file.as_bytes(),
                b"\0",
                expires.to_string().as_bytes(),
            ],
        )
    }

    /// The link token of `claims`.
    pub fn sign(&self, claims: &LinkClaims) -> String {
        let expires = claims.expires_at.timestamp();
        let mac = self.mac(&claims.license_id, &claims.file, expires);
        format!(
            "{}.{}.{expires}.{}",
            claims.license_id,
            URL_SAFE_NO_PAD.encode(claims.file.as_bytes()),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The claims of `token` if this secret signed it and it has not expired at
    /// `now`. The MAC is compared in constant time and checked before the expiry.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<LinkClaims, LinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [license_id, file, expires, mac] = parts[..] else {
            return Err(LinkError::Invalid);
        };
        if !is_id("lic", license_id)
            || expires.is_empty()
            || !expires.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(LinkError::Invalid);
        }
        let file = URL_SAFE_NO_PAD
            .decode(file)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|f| is_file_name(f))
            .ok_or(LinkError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
        let given = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| LinkError::Invalid)?;
        if !same(&self.mac(license_id, &file, expires), &given) {
            return Err(LinkError::Invalid);
        }
        let expires_at = chrono::DateTime::from_timestamp(expires, 0).ok_or(LinkError::Invalid)?;
        if now >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok(LinkClaims {
            license_id: license_id.to_owned(),
            file,
            expires_at,
        })
    }
}

/// The part of a file a request asks for (RFC 9110 §14: one range of bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// The whole file (no `Range`, or one this server does not honour: several
    /// ranges, another unit, a malformed one).
    Whole,
    /// Bytes `start..=end` (206).
    Part {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// A range that lies past the end of the file (416).
    Unsatisfiable,
}

impl RangeAsk {
    /// The part of a file of `size` bytes that `header` (the `Range` value) asks for.
    pub fn parse(header: Option<&str>, size: u64) -> Self {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
            return Self::Whole;
        };
        if spec.contains(',') {
            return Self::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Self::Whole;
        };
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        match (first.trim(), last.trim()) {
            ("", suffix) => match number(suffix) {
                None => Self::Whole,
                Some(0) => Self::Unsatisfiable,
                Some(_) if size == 0 => Self::Unsatisfiable,
                Some(n) => Self::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                },
            },
            (start, "") => match number(start) {
                None => Self::Whole,
                Some(s) if s >= size => Self::Unsatisfiable,
                Some(s) => Self::Part {
                    start: s,
                    end: size - 1,
                },
            },
            (start, end) => match (number(start), number(end)) {
                (Some(s), Some(e)) if s <= e => {
                    if s >= size {
                        Self::Unsatisfiable
                    } else {
                        Self::Part {
                            start: s,
                            end: e.min(size - 1),
                        }
                    }
                }
                _ => Self::Whole,
            },
        }
    }

    /// Whether serving this part starts a download (and so is recorded): the whole
    /// file, or a part from its first byte. A part further in continues a download
    /// already counted (a resumed or split transfer).
    pub fn starts_download(self) -> bool {
        match self {
            Self::Whole => true,
            Self::Part { start, .. } => start == 0,
            Self::Unsatisfiable => false,
        }
    }
}

/// The `Content-Type` a file is served with, by its name's extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("dmg") => "application/x-apple-diskimage",
        Some("pkg") => "application/vnd.apple.installer+xml",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("exe" | "msi") => "application/vnd.microsoft.portable-executable",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The `ETag` of a file of `size` bytes last modified at `modified` (Unix seconds):
/// a new file under the same name gets a new tag.
pub fn etag(size: u64, modified: i64) -> String {
    format!("\"{size:x}-{modified:x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse;

    fn at(s: &str) -> Timestamp {
        parse(s).unwrap()
    }

    fn claims() -> LinkClaims {
        LinkClaims {
            license_id: LICENSE.into(),
            file: "App 1.2.dmg".into(),
            expires_at: at("2026-01-01T00:15:00Z"),
        }
    }

    const NOW: &str = "2026-01-01T00:00:00Z";
    const LICENSE: &str = "lic_0000000000000000000000000a";
    const OTHER: &str = "lic_0000000000000000000000000b";

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let s = LinkSecret::new([7; 32]);
        let token = s.sign(&claims());
        assert_eq!(s.verify(&token, at(NOW)), Ok(claims()));
        assert_eq!(
            s.verify(&token, at("2026-01-01T00:14:59Z")),
            Ok(claims()),
            "a second before its end"
        );
        assert_eq!(
            s.verify(&token, at("2026-01-01T00:15:00Z")),
            Err(LinkError::Expired)
        );
        assert!(!token.contains('/') && !token.contains('+') && !token.contains('='));
    }

    #[test]
    fn an_altered_or_foreign_link_is_invalid() {
        let s = LinkSecret::new([7; 32]);
        let token = s.sign(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let other_file = URL_SAFE_NO_PAD.encode("Other.zip");
        let later = (claims().expires_at.timestamp() + 3600).to_string();
        let mut flipped_mac = parts[3].to_owned();
        let last = if flipped_mac.ends_with('A') { "B" } else { "A" };
        flipped_mac.replace_range(flipped_mac.len() - 1.., last);
        for (case, bad) in [
            (
                "another license",
                format!("{OTHER}.{}.{}.{}", parts[1], parts[2], parts[3]),
            ),
            (
                "another file",
                format!("{}.{other_file}.{}.{}", parts[0], parts[2], parts[3]),
            ),
            (
                "a later expiry",
                format!("{}.{}.{later}.{}", parts[0], parts[1], parts[3]),
            ),
            (
                "a flipped mac",
                format!("{}.{}.{}.{flipped_mac}", parts[0], parts[1], parts[2]),
            ),
            ("a part missing", parts[..3].join(".")),
            ("a part too many", format!("{token}.x")),
            ("empty", String::new()),
            (
                "not base64",
                format!("{}.{}.{}.!!", parts[0], parts[1], parts[2]),
            ),
            (
                "a negative expiry",
                format!("{}.{}.-1.{}", parts[0], parts[1], parts[3]),
            ),
        ] {
            assert_eq!(s.verify(&bad, at(NOW)), Err(LinkError::Invalid), "{case}");
        }
        let other_secret = LinkSecret::new([8; 32]);
        assert_eq!(
            other_secret.verify(&token, at(NOW)),
            Err(LinkError::Invalid),
            "another server's secret"
        );
        assert_eq!(
            s.verify(&token, at("2027-01-01T00:00:00Z")),
            Err(LinkError::Expired),
            "expired and intact"
        );
        assert_eq!(
            s.verify(
                &format!("{}.{}.{later}.{}", parts[0], parts[1], parts[3]),
                at("2027-01-01T00:00:00Z")
            ),
            Err(LinkError::Invalid),
            "the MAC is checked before the expiry"
        );
        assert!(!format!("{s:?}").contains('7'));
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeAsk::{Part, Unsatisfiable, Whole};
        for (header, size, want) in [
            (None, 100, Whole),
            (Some("bytes=0-9"), 100, Part { start: 0, end: 9 }),
            (Some("bytes=10-"), 100, Part { start: 10, end: 99 }),
            (Some("bytes=-10"), 100, Part { start: 90, end: 99 }),
            (Some("bytes=-500"), 100, Part { start: 0, end: 99 }),
            (Some("bytes=90-500"), 100, Part { start: 90, end: 99 }),
            (Some("bytes=99-99"), 100, Part { start: 99, end: 99 }),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=100-200"), 100, Unsatisfiable),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=9-3"), 100, Whole),
            (Some("bytes=0-1,5-6"), 100, Whole),
            (Some("items=0-1"), 100, Whole),
            (Some("bytes=a-b"), 100, Whole),
            (Some("bytes=-"), 100, Whole),
            (Some("bytes=+1-2"), 100, Whole),
        ] {
            assert_eq!(RangeAsk::parse(header, size), want, "{header:?} of {size}");
        }
    }

    #[test]
    fn only_a_transfer_from_the_first_byte_counts_as_a_download() {
        assert!(RangeAsk::Whole.starts_download());
        assert!(RangeAsk::Part { start: 0, end: 9 }.starts_download());
        assert!(!RangeAsk::Part { start: 10, end: 99 }.starts_download());
        assert!(!RangeAsk::Unsatisfiable.starts_download());
    }

    #[test]
    fn file_lists_are_checked_naming_the_file() {
        let f = |name: &str, path: &str| ProductFile {
            name: name.into(),
            path: path.into(),
        };
        assert!(
            files_problems(&[f("App.dmg", "app/App-1.2.dmg"), f("App.exe", "App.exe")]).is_empty()
        );
        for (case, files, needle) in [
            (
                "escape",
                vec![f("A.dmg", "../etc/passwd")],
                "`A.dmg`: path `../etc/passwd`",
            ),
            (
                "absolute",
                vec![f("A.dmg", "/etc/passwd")],
                "must be relative",
            ),
            (
                "inner escape",
                vec![f("A.dmg", "a/../../b")],
                "leaves the files directory",
            ),
            ("empty path", vec![f("A.dmg", "")], "is empty"),
            (
                "twice",
                vec![f("A.dmg", "a"), f("A.dmg", "b")],
                "`A.dmg`: listed twice",
            ),
            ("slash in name", vec![f("a/b", "a")], "`a/b`: a file name"),
            (
                "dot name",
                vec![f(".hidden", "a")],
                "`.hidden`: a file name",
            ),
            ("quote in name", vec![f("a\"b", "a")], "a file name"),
        ] {
            let p = files_problems(&files);
            assert!(p.iter().any(|m| m.contains(needle)), "{case}: {p:?}");
        }
    }

    #[test]
    fn an_etag_changes_with_the_file() {
        assert_eq!(etag(255, 16), "\"ff-10\"");
        assert_ne!(etag(255, 16), etag(255, 17));
    }
}
